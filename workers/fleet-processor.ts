// BullMQ sandboxed-processor entry for `fleet worker` (run in a worker thread): the job itself is src/fleet/fleet-task.ts.
export { default } from '../src/fleet/fleet-task.js';
