// Piscina worker entry for `scan`: the task itself is src/scan/scan-task.ts.
export { default } from '../src/scan/scan-task.js';
