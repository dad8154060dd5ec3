// Piscina worker entry for `sweep`: the cell itself is src/sweep/sweep-cell.ts.
export { default } from '../src/sweep/sweep-cell.js';
