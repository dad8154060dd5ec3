// The scan's work scheduler (docs/scan.md "How the work is spread"): ONE piscina pool of `jobs`
// threads (src/scan/scan-task.ts) for every file of a scan.
//   - A small file is one task: the worker audits it whole.
//   - A large file (size ≥ shardThreshold) is planned here on the main thread — both views read, leaves
//     planned (planLeaves) and cut into shards (planShards) — and its shards (shardTask, the audit
//     worker's task) go into the same pool, between other files' tasks. Results merge in shard order.
// Large files go first (longest work first keeps every core busy to the end); at most
// MAX_OPEN_LARGE_FILES are planned at once, and their shards go before new files. At most
// jobs · IN_FLIGHT_PER_THREAD tasks are handed to the pool at a time, so memory does not grow with the
// number of files; each thread holds its waiting task itself (piscina's concurrentTasksPerWorker), so it
// starts on it as soon as the running one ends instead of waiting a round trip through the main thread.
// A task whose worker throws is retried once, on a fresh single-thread pool (a fresh worker), one file at
// a time; a worker that exits fails both tasks it holds, and both are retried so. A second failure makes
// the file's result an error. Results are reported through `onResult` exactly once per file, never after
// abort().
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { RangeSink } from '../audit/compare-leaf.js';
import type { GuestView, ToolstackView } from '../views/p2m-leaves.js';
import { addTail, planLeaves, shardTask, sinkStats, type LeafPlan } from '../audit/run-audit.js';
import { planShards, SHARDS_PER_WORKER, type Shard } from '../audit/shard-plan.js';
import { readGuestViewOrMirror } from '../views/guest-mirror.js';
import { InputError } from '../common/errors.js';
import { FRAMES_AT_FILE_OFFSETS, type GuestImage, type ImageFormat } from '../formats/guest-image.js';
import { detectFormat, openImage, readHead } from '../formats/open-image.js';
import type { SymbolTable } from '../formats/symbols.js';
import { buildReport, EXIT_INPUT_ERROR, type Verdict } from '../audit/verdict.js';
import { mapP2m } from '../views/toolstack-view.js';
import type { FaultHook, FileOutcome, ScanTask, ShardTask } from './scan-task.js';
import type { ScanEntry } from './collect.js';
import type { ScanResult } from './results.js';

const MIB = 1 << 20;
/** Files below this are never split (fewer leaf pages than two minimum shards, in practice). */
export const MIN_SHARDED_FILE_BYTES = 4 * MIB;
/** Files from this size up are always split, however many other files there are. */
export const ALWAYS_SHARDED_FILE_BYTES = 64 * MIB;
/**
 * Tasks handed to the pool per thread: one running, one waiting, so no thread idles between tasks. The
 * waiting one sits in the thread's own queue (piscina's concurrentTasksPerWorker): answering a task and
 * being sent the next one took a round trip through the main thread — 8–9 % of each worker's time over
 * the 2,000-file bench corpus (docs/bench-notes.md, "scan: per-file cost").
 */
export const IN_FLIGHT_PER_THREAD = 2;
/** Large files planned (their views and leaf plans held) at once. */
export const MAX_OPEN_LARGE_FILES = 2;
/** Attempt number of a retry (on a fresh worker). */
const RETRY_ATTEMPT = 2;

/**
 * The size from which a file is split into shards: a file larger than one thread's fair share of the
 * scan's bytes (split SHARDS_PER_WORKER ways, like planShards), clamped to [MIN, ALWAYS].
 */
export function shardThreshold(totalBytes: number, jobs: number): number {
  if (jobs === 1) return ALWAYS_SHARDED_FILE_BYTES; // one thread: splitting buys no parallelism
  const share = totalBytes / (jobs * SHARDS_PER_WORKER);
  return Math.min(ALWAYS_SHARDED_FILE_BYTES, Math.max(MIN_SHARDED_FILE_BYTES, share));
}

/** Compiled layout: dist/src/scan/scheduler.js → dist/workers/scan-worker.js; from TS source → <repo>/dist/…. */
export function scanWorkerPath(): string {
  const here = import.meta.url;
  const rel = here.endsWith('.ts') ? '../../dist/workers/scan-worker.js' : '../../workers/scan-worker.js';
  return fileURLToPath(new URL(rel, here));
}

/** A result as the scheduler knows it (scan.ts adds the file's identity and timing fields). */
export type PartialResult = Pick<ScanResult, 'status' | 'format' | 'verdict' | 'exitCode' | 'fatalPages' | 'reason' | 'attempts'>;

export interface SchedulerOptions {
  jobs: number;
  fault: FaultHook | null;
  /** scan --system-map: its path (for the workers) and its table (for large files opened here) */
  systemMap?: { path: string; symbols: SymbolTable };
  /** once per file, in completion order */
  onResult: (entry: ScanEntry, r: PartialResult, ms: number) => void;
  /** work done: whole files and bytes (a large file's bytes arrive shard by shard) */
  onProgress?: (files: number, bytes: number) => void;
}

interface LargeJob {
  entry: ScanEntry;
  started: number;
  img: GuestImage;
  tool: ToolstackView;
  guest: GuestView;
  plan: LeafPlan;
  shards: Shard[];
  /** next shard to dispatch */
  next: number;
  parts: (Float64Array | null)[];
  outstanding: number;
  failed: { shard: Shard; error: string }[];
  /** bytes already reported through onProgress */
  credited: number;
  retrying: boolean;
}

interface SmallRetry {
  kind: 'small';
  entry: ScanEntry;
  format: string;
  started: number;
  error: string;
}

type RetryItem = SmallRetry | { kind: 'large'; job: LargeJob };

/** First line of an error's message (results are one line each). */
function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0]!.trim() || 'unknown error';
}


export class ScanScheduler {
  /** worker tasks run (file tasks, shards and retries) */
  tasks = 0;
  private readonly pool: Piscina<ScanTask, FileOutcome | Float64Array>;
  private readonly workerPath: string;
  private readonly limit: number;
  private readonly large: ScanEntry[] = [];
  private readonly small: ScanEntry[] = [];
  private largeAt = 0;
  private smallAt = 0;
  private inflight = 0;
  private readonly open = new Set<LargeJob>();
  private readonly retryQueue: RetryItem[] = [];
  private retrying = false;
  private retryPool: Piscina<ScanTask, FileOutcome | Float64Array> | null = null;
  private aborted = false;
  /** why the scan stopped by itself (a result that could not be recorded), or null */
  failure: unknown = null;
  private pumping = false;
  private finished = false;
  private resolveDone: () => void = () => {};
  private readonly done: Promise<void>;

  constructor(
    entries: ScanEntry[],
    private readonly opts: SchedulerOptions,
  ) {
    this.workerPath = scanWorkerPath();
    if (!fs.existsSync(this.workerPath)) throw new Error(`scan worker not built: ${this.workerPath} is missing (run npm run build)`);
    const totalBytes = entries.reduce((s, e) => s + e.size, 0);
    const threshold = shardThreshold(totalBytes, opts.jobs);
    for (const e of entries) (e.size >= threshold ? this.large : this.small).push(e);
    this.large.sort((a, b) => b.size - a.size);
    this.limit = opts.jobs * IN_FLIGHT_PER_THREAD;
    this.pool = this.newPool(opts.jobs);
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }

  private newPool(threads: number): Piscina<ScanTask, FileOutcome | Float64Array> {
    const pool = new Piscina<ScanTask, FileOutcome | Float64Array>({ filename: this.workerPath, minThreads: threads, maxThreads: threads, concurrentTasksPerWorker: IN_FLIGHT_PER_THREAD });
    // a worker that dies with no task in flight: its replacement is started by piscina; nothing is lost
    pool.on('error', () => {});
    return pool;
  }

  /** Resolves when every file has a result, or at once after abort(). */
  run(): Promise<void> {
    this.pump();
    return this.done;
  }

  /** Stop: no new work, no more results. Call shutdown() next. */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.resolveDone();
  }

  /** Destroy the pools (running tasks are dropped) and close the images of large files. */
  async shutdown(): Promise<void> {
    this.aborted = true;
    for (const job of this.open) job.img.close();
    this.open.clear();
    const pools = [this.pool, this.retryPool].filter((p): p is Piscina<ScanTask, FileOutcome | Float64Array> => p !== null);
    await Promise.allSettled(pools.map((p) => p.destroy()));
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.aborted && this.inflight < this.limit && this.dispatchNext());
    } finally {
      this.pumping = false;
    }
    this.maybeDone();
  }

  private maybeDone(): void {
    if (this.aborted || this.finished) return;
    const idle =
      this.inflight === 0 && this.open.size === 0 && this.retryQueue.length === 0 && !this.retrying && this.largeAt === this.large.length && this.smallAt === this.small.length;
    if (idle) {
      this.finished = true;
      this.resolveDone();
    }
  }

  private report(entry: ScanEntry, r: PartialResult, started: number, credited = 0): void {
    if (this.aborted) return;
    try {
      this.opts.onResult(entry, r, performance.now() - started);
      this.opts.onProgress?.(1, Math.max(0, entry.size - credited));
    } catch (e) {
      // the result could not be recorded (results log unwritable, output closed): stop, keep the error
      this.failure ??= e;
      this.abort();
    }
  }

  private fail(entry: ScanEntry, format: string | null, reason: string, started: number, attempts: number, credited = 0): void {
    this.report(entry, { status: 'error', format, verdict: null, exitCode: EXIT_INPUT_ERROR, fatalPages: 0, reason, attempts }, started, credited);
  }

  /** Format by content; reports skipped/unreadable files itself and returns null for them. */
  private detect(entry: ScanEntry, started: number): ImageFormat | null {
    let head: Buffer;
    try {
      head = readHead(entry.file);
    } catch (e) {
      this.fail(entry, null, oneLine(e), started, 0);
      return null;
    }
    const d = detectFormat(head, entry.file); // the path lets an ELF be probed by its notes (a native Linux vmcore is skipped)
    if (d.format === null) {
      this.report(entry, { status: 'skipped', format: null, verdict: null, exitCode: 0, fatalPages: 0, reason: d.description, attempts: 0 }, started);
      return null;
    }
    return d.format;
  }

  private dispatchNext(): boolean {
    for (const job of this.open) {
      if (job.next < job.shards.length) {
        this.dispatchShard(job);
        return true;
      }
    }
    while (this.largeAt < this.large.length && this.open.size < MAX_OPEN_LARGE_FILES) {
      const job = this.planLarge(this.large[this.largeAt++]!);
      if (job) {
        this.dispatchShard(job);
        return true;
      }
      if (this.aborted) return false;
    }
    while (this.smallAt < this.small.length) {
      if (this.dispatchSmall(this.small[this.smallAt++]!)) return true;
      if (this.aborted) return false;
    }
    return false;
  }

  // ---- small files: one task each ----------------------------------------------------------------

  private dispatchSmall(entry: ScanEntry): boolean {
    const started = performance.now();
    const format = this.detect(entry, started);
    if (format === null) return false;
    this.inflight++;
    this.tasks++;
    this.pool.run({ kind: 'file', path: entry.file, systemMap: this.opts.systemMap?.path ?? null, attempt: 1, fault: this.opts.fault }).then(
      (out) => {
        this.inflight--;
        this.finishSmall(entry, format, out as FileOutcome, 1, started);
        this.pump();
      },
      (e: unknown) => {
        this.inflight--;
        if (!this.aborted) this.enqueueRetry({ kind: 'small', entry, format, started, error: oneLine(e) });
        this.pump();
      },
    );
    return true;
  }

  private finishSmall(entry: ScanEntry, format: string, out: FileOutcome, attempts: number, started: number): void {
    this.report(
      entry,
      { status: out.status, format: out.format ?? format, verdict: (out.verdict as Verdict | null) ?? null, exitCode: out.exitCode, fatalPages: out.fatalPages, reason: out.reason, attempts },
      started,
    );
  }

  // ---- large files: planned here, shards in the shared pool -------------------------------------

  private planLarge(entry: ScanEntry): LargeJob | null {
    const started = performance.now();
    const format = this.detect(entry, started);
    if (format === null) return null;
    // frames without file offsets (makedumpfile's compressed pages) cannot go to shard workers: one task, read through readFrame
    if (!FRAMES_AT_FILE_OFFSETS[format]) {
      this.small.push(entry);
      return null;
    }
    let img: GuestImage | null = null;
    try {
      img = openImage(entry.file, { defaultSymbols: this.opts.systemMap?.symbols });
      const tool = mapP2m(img);
      if (tool.absentFrame !== undefined) {
        throw new InputError(`${entry.file}: the ${tool.method} walk's ${tool.failure}: the frame list points outside the image`);
      }
      const guest = readGuestViewOrMirror(img);
      const plan = planLeaves(tool, guest);
      const shards = planShards(plan.activeLeaves, this.opts.jobs);
      const job: LargeJob = {
        entry,
        started,
        img,
        tool,
        guest,
        plan,
        shards,
        next: 0,
        parts: shards.map(() => null),
        outstanding: 0,
        failed: [],
        credited: 0,
        retrying: false,
      };
      if (shards.length === 0) {
        this.completeLarge(job, 1);
        return null;
      }
      this.open.add(job);
      return job;
    } catch (e) {
      img?.close();
      this.fail(entry, format, e instanceof InputError ? e.message : `internal error: ${oneLine(e)}`, started, 0); // main thread: no worker attempt
      return null;
    }
  }

  private shardTaskOf(job: LargeJob, shard: Shard, attempt: number): ShardTask {
    return { kind: 'shard', attempt, fault: this.opts.fault, shard: shardTask(job.img, job.plan, shard) };
  }

  private creditShard(job: LargeJob, shard: Shard): void {
    const bytes = Math.floor((job.entry.size * (shard.endLeaf - shard.firstLeaf)) / job.plan.activeLeaves);
    job.credited += bytes;
    this.opts.onProgress?.(0, bytes);
  }

  private dispatchShard(job: LargeJob): void {
    const shard = job.shards[job.next++]!;
    const task = this.shardTaskOf(job, shard, 1);
    this.inflight++;
    this.tasks++;
    job.outstanding++;
    this.pool.run(task).then(
      (triples) => {
        this.inflight--;
        job.outstanding--;
        if (!this.aborted) {
          job.parts[shard.index] = triples as Float64Array;
          this.creditShard(job, shard);
          this.settleLarge(job);
        }
        this.pump();
      },
      (e: unknown) => {
        this.inflight--;
        job.outstanding--;
        if (!this.aborted) {
          job.failed.push({ shard, error: oneLine(e) });
          this.settleLarge(job);
        }
        this.pump();
      },
    );
  }

  private settleLarge(job: LargeJob): void {
    if (job.next < job.shards.length || job.outstanding > 0 || job.retrying) return;
    if (job.failed.length) {
      job.retrying = true;
      this.enqueueRetry({ kind: 'large', job });
      return;
    }
    this.completeLarge(job, 1);
  }

  private completeLarge(job: LargeJob, attempts: number): void {
    this.open.delete(job);
    try {
      const sink = new RangeSink();
      for (const p of job.parts) sink.addPacked(p!);
      addTail(sink, job.plan);
      const report = buildReport({ img: job.img, tool: job.tool, guest: job.guest, ranges: sink.toRanges(), stats: sinkStats(sink) });
      this.report(
        job.entry,
        { status: 'audited', format: job.img.format, verdict: report.verdict, exitCode: report.exitCode, fatalPages: report.fatalPages, reason: report.reason, attempts },
        job.started,
        job.credited,
      );
    } catch (e) {
      this.fail(job.entry, job.img.format, e instanceof InputError ? e.message : `internal error: ${oneLine(e)}`, job.started, attempts, job.credited);
    } finally {
      job.img.close();
    }
  }

  // ---- retries: once, on a fresh worker --------------------------------------------------------------

  private enqueueRetry(item: RetryItem): void {
    this.retryQueue.push(item);
    void this.runRetries();
  }

  private async runRetries(): Promise<void> {
    if (this.retrying) return;
    this.retrying = true;
    try {
      while (!this.aborted && this.retryQueue.length) {
        const item = this.retryQueue.shift()!;
        const pool = this.newPool(1); // a new pool is a new worker thread: nothing left from the failed one
        this.retryPool = pool;
        try {
          if (item.kind === 'small') await this.retrySmall(pool, item);
          else await this.retryLarge(pool, item.job);
        } finally {
          this.retryPool = null;
          await pool.destroy();
        }
      }
    } finally {
      this.retrying = false;
    }
    this.pump();
  }

  private async retrySmall(pool: Piscina<ScanTask, FileOutcome | Float64Array>, item: SmallRetry): Promise<void> {
    this.tasks++;
    try {
      const out = await pool.run({ kind: 'file', path: item.entry.file, systemMap: this.opts.systemMap?.path ?? null, attempt: RETRY_ATTEMPT, fault: this.opts.fault });
      this.finishSmall(item.entry, item.format, out as FileOutcome, RETRY_ATTEMPT, item.started);
    } catch (e) {
      this.fail(item.entry, item.format, `worker failed twice (first: ${item.error}; retry: ${oneLine(e)})`, item.started, RETRY_ATTEMPT);
    }
  }

  private async retryLarge(pool: Piscina<ScanTask, FileOutcome | Float64Array>, job: LargeJob): Promise<void> {
    const failed = job.failed.splice(0);
    for (const f of failed) {
      if (this.aborted) return;
      this.tasks++;
      const task = this.shardTaskOf(job, f.shard, RETRY_ATTEMPT);
      try {
        job.parts[f.shard.index] = (await pool.run(task)) as Float64Array;
        this.creditShard(job, f.shard);
      } catch (e) {
        this.open.delete(job);
        job.img.close();
        const reason = `worker failed twice on shard ${f.shard.index} (first: ${f.error}; retry: ${oneLine(e)})`;
        this.fail(job.entry, job.img.format, reason, job.started, RETRY_ATTEMPT, job.credited);
        return;
      }
    }
    if (!this.aborted) this.completeLarge(job, RETRY_ATTEMPT);
  }
}
