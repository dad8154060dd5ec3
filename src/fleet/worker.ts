// `fleet worker` (docs/fleet.md): one BullMQ Worker per process whose processor runs sandboxed in worker
// threads (useWorkerThreads; src/fleet/fleet-task.ts through workers/fleet-processor.js): `jobs` threads,
// each auditing one file or shard at a time and kept warm between jobs (BullMQ's ChildPool reuses a
// thread once its job is done). The lock of every active job is renewed from this process's main thread,
// so a long audit keeps its job; a process that dies stops renewing, and after lockDuration any other
// worker's stalled-job check puts the job back in the queue (BullMQ "Stalled jobs"). A thread that dies
// or exceeds its heap limit fails only its attempt; BullMQ retries the job once (attempts: 2, set at
// submission). SIGTERM or SIGINT: stop taking jobs, let the running ones finish, exit 0; a second signal
// exits at once (143), also while Redis is unreachable (the running jobs stall and another worker takes
// them up).
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker, type Job, type RedisOptions } from 'bullmq';
import { InputError } from '../common/errors.js';
import { pagesToMib, formatMib } from '../audit/verdict.js';
import { redisOptions, type FleetConnection } from './connection.js';
import { QUEUE_NAME } from './job-keys.js';
import type { FileOutcome, FleetJobData } from './fleet-task.js';

/** Defaults of BullMQ's Worker (docs.bullmq.io: lockDuration 30 s, stalledInterval 30 s). */
export const DEFAULT_LOCK_MS = 30_000;
export const DEFAULT_STALLED_MS = 30_000;
/** Heap limit of an audit thread (MiB): a thread past it dies, and its job is retried once. */
export const DEFAULT_HEAP_MIB = 1024;
const MAX_JOBS = 256;
/** Exit status after a second signal (128 + SIGTERM). */
const EXIT_FORCED = 143;

export interface WorkerOptions {
  jobs: number;
  lockMs?: number;
  stalledMs?: number;
  heapMib?: number;
  /** one line (no trailing newline) per finished file, and state changes */
  write: (line: string) => void;
  /** one line of trouble (connection lost, a job failing) */
  warn: (line: string) => void;
}

/** Compiled layout: dist/src/fleet/worker.js → dist/workers/fleet-processor.js; from TS source → <repo>/dist/…. */
export function fleetProcessorPath(): string {
  const here = import.meta.url;
  const rel = here.endsWith('.ts') ? '../../dist/workers/fleet-processor.js' : '../../workers/fleet-processor.js';
  return fileURLToPath(new URL(rel, here));
}

function checkOptions(o: WorkerOptions): void {
  if (!Number.isInteger(o.jobs) || o.jobs < 1 || o.jobs > MAX_JOBS) throw new InputError(`--jobs ${o.jobs}: expected a whole number of worker threads from 1 to ${MAX_JOBS}`);
  for (const [flag, v] of [['--lock-ms', o.lockMs], ['--stalled-ms', o.stalledMs], ['--heap-mib', o.heapMib]] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v <= 0)) throw new InputError(`${flag} ${v}: expected a whole number > 0`);
  }
}

function fileLine(job: Job<FleetJobData>, out: FileOutcome): string {
  const d = job.data;
  const file = d.kind === 'file' ? d.file : '?';
  const tag = out.status === 'error' ? (out.changed ? 'CHANGED' : 'FAILED') : (out.verdict ?? '?');
  const fatal = out.fatalPages ? `  ${out.fatalPages} pages (${formatMib(pagesToMib(out.fatalPages))} MiB) at risk` : '';
  const why = out.status === 'error' || out.verdict === 'WARN' || out.verdict === 'ERROR' ? `  ${out.reason}` : '';
  return `${tag.padEnd(8)} ${file}${out.format ? `  [${out.format}]` : ''}${fatal}${why}`;
}

/**
 * Run a worker until SIGTERM/SIGINT; resolves with the exit code. The connection has been probed
 * (connectFleet): from here on a lost server is waited for (reconnect), not an error.
 */
export async function runWorker(conn: FleetConnection, o: WorkerOptions): Promise<number> {
  checkOptions(o);
  const processor = fleetProcessorPath();
  if (!fs.existsSync(processor)) throw new Error(`fleet processor not built: ${processor} is missing (run npm run build)`);
  const connection: RedisOptions = redisOptions(conn.address, 'worker');
  const worker = new Worker<FleetJobData>(QUEUE_NAME, processor, {
    connection,
    prefix: conn.prefix,
    concurrency: o.jobs,
    useWorkerThreads: true,
    workerThreadsOptions: { resourceLimits: { maxOldGenerationSizeMb: o.heapMib ?? DEFAULT_HEAP_MIB } },
    lockDuration: o.lockMs ?? DEFAULT_LOCK_MS,
    stalledInterval: o.stalledMs ?? DEFAULT_STALLED_MS,
    maxStalledCount: 1,
    autorun: false,
  });
  let lastError = '';
  worker.on('error', (e) => {
    const line = `${conn.address.shown}: ${(e?.message ?? String(e)).split('\n')[0]}`;
    if (line !== lastError) o.warn(line); // a server that is down repeats itself: once per change
    lastError = line;
  });
  worker.on('ready', () => {
    if (lastError) o.warn(`${conn.address.shown}: connected again`);
    lastError = '';
  });
  worker.on('completed', (job, result) => {
    if (job.data.kind === 'file') o.write(fileLine(job, result as FileOutcome));
  });
  worker.on('failed', (job, err) => {
    if (!job) return;
    const final = job.attemptsMade >= (job.opts.attempts ?? 1);
    o.warn(`${job.data.kind} job ${job.id}: attempt ${job.attemptsMade} failed (${err.message.split('\n')[0]})${final ? '' : '; it will be retried'}`);
  });
  worker.on('stalled', (id) => o.warn(`job ${id} stalled (its worker stopped renewing the lock): back in the queue`));

  let stopping = false;
  const stopped = new Promise<number>((resolve) => {
    const onSignal = (): void => {
      if (stopping) {
        // at once, even with the server unreachable (BullMQ's close waits for it): the running jobs stall
        // and another worker takes them up (see the header)
        process.exit(EXIT_FORCED);
      }
      stopping = true;
      o.warn('stopping: no new jobs; waiting for the running ones to finish (signal again to stop now)');
      void worker.close().then(
        () => resolve(0),
        () => resolve(0),
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  await worker.waitUntilReady();
  o.write(`worker: ${o.jobs} audit threads on ${conn.address.shown} (prefix ${conn.prefix}, Redis ${conn.server.version})`);
  void worker.run();
  return stopped;
}
