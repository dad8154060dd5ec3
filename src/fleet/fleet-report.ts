// `fleet status` and `fleet results` (docs/fleet.md): a run's members read back with their jobs' states
// and return values, turned into scan's per-file results (src/scan/results.ts, schema p2m-audit/scan@1:
// one reporter serves both) and scan's summary (src/scan/summary.ts), plus what only a queue knows:
// running / waiting / failed counts, throughput and an ETA by bytes. A file whose job was made by an
// earlier submission counts as resumed, as scan's --resume does. Each file is listed exactly once: a
// run's members are its files, each with one job.
import { Job, Queue } from 'bullmq';
import { EXIT_INPUT_ERROR, pagesToMib, type Verdict } from '../audit/verdict.js';
import type { ScanResult } from '../scan/results.js';
import { SummaryBuilder, type ScanSummary } from '../scan/summary.js';
import { openClient, type FleetConnection } from './connection.js';
import { FleetKeys, QUEUE_NAME } from './job-keys.js';
import type { FileOutcome, FleetJobData } from './fleet-task.js';
import { loadMembers, loadMeta, type Member, type RunMeta } from './run-record.js';

export const STATUS_SCHEMA = 'p2m-audit/fleet-status@1';
/** Jobs read concurrently. */
const READ_BATCH = 256;
const MS_PER_SECOND = 1000;

/** Where a member stands. */
export type MemberState = 'done' | 'running' | 'waiting' | 'missing';

export interface MemberView {
  member: Member;
  state: MemberState;
  /** set when state is done */
  result: ScanResult | null;
  /** job timestamps (ms), when known */
  processedOn: number | null;
  finishedOn: number | null;
  /** the job's last reported progress (percent), when running */
  progress: number | null;
  /** the job failed for good (no result from any attempt) */
  failed: boolean;
}

export interface FleetStatus {
  schema: typeof STATUS_SCHEMA;
  name: string;
  run: number;
  submittedAt: string;
  files: number;
  bytes: number;
  done: number;
  doneBytes: number;
  running: number;
  waiting: number;
  /** jobs gone from Redis before the run was read (expired, or removed by hand) */
  missing: number;
  /** files whose job failed on both attempts */
  failed: number;
  /** files that changed or vanished after submission */
  changed: number;
  /** bytes per second over the finished jobs of this run, and the ETA of the rest at that rate */
  bytesPerSecond: number;
  etaSeconds: number | null;
  summary: ScanSummary;
}

/** The scan@1 result of a finished file job. */
export function jobResult(m: Member, job: Job<FleetJobData, FileOutcome>): ScanResult {
  const ident = { file: m.file, resolved: m.resolved, size: m.size, mtimeMs: m.mtimeMs };
  const ms = job.finishedOn && job.processedOn ? job.finishedOn - job.processedOn : undefined;
  const at = job.finishedOn ? new Date(job.finishedOn).toISOString() : undefined;
  const out = job.returnvalue;
  if (out && typeof out === 'object' && 'status' in out) {
    const fatalPages = out.fatalPages ?? 0;
    return {
      ...ident,
      status: out.status,
      format: out.format ?? m.format,
      verdict: (out.verdict as Verdict | null) ?? null,
      exitCode: out.exitCode,
      fatalPages,
      fatalMib: pagesToMib(fatalPages),
      reason: out.reason,
      attempts: Math.max(1, job.attemptsStarted),
      ms,
      at,
    };
  }
  // failed on every attempt (or a shard's final failure failed it): an error with the last reason
  const last = (job.failedReason ?? 'unknown error').split('\n')[0]!;
  const reason = job.attemptsMade > 0 ? `worker failed ${job.attemptsMade} times (last: ${last})` : `failed: ${last}`;
  return { ...ident, status: 'error', format: m.format, verdict: null, exitCode: EXIT_INPUT_ERROR, fatalPages: 0, fatalMib: 0, reason, attempts: job.attemptsMade, ms, at };
}

async function viewOf(queue: Queue, m: Member): Promise<MemberView> {
  const none = { processedOn: null, finishedOn: null, progress: null, failed: false };
  if (m.result !== null) return { member: m, state: 'done', result: m.result, ...none };
  const job = (await Job.fromId(queue, m.job!)) as Job<FleetJobData, FileOutcome> | undefined;
  if (!job) return { member: m, state: 'missing', result: null, ...none };
  const times = { processedOn: job.processedOn ?? null, finishedOn: job.finishedOn ?? null };
  if (job.finishedOn) return { member: m, state: 'done', result: jobResult(m, job), ...times, progress: null, failed: job.returnvalue === null || job.returnvalue === undefined };
  const state = await job.getState();
  // a split file waits for its shards (waiting-children) until the merge runs: it counts as waiting
  return { member: m, state: state === 'active' ? 'running' : 'waiting', result: null, ...times, progress: typeof job.progress === 'number' ? job.progress : null, failed: false };
}

/** A run read back: its meta and every member's view, in submission order. */
export interface RunView {
  meta: RunMeta;
  views: MemberView[];
}

/** Read a run (the latest of the corpus unless `run` is given). */
export async function readRun(conn: FleetConnection, name: string, run?: number): Promise<RunView> {
  const keys = new FleetKeys(conn.prefix);
  const redis = await openClient(conn);
  const queue = new Queue(QUEUE_NAME, { connection: redis, prefix: conn.prefix });
  try {
    const meta = await loadMeta(redis, keys, name, run);
    const members = await loadMembers(redis, keys, meta);
    const views: MemberView[] = [];
    for (let i = 0; i < members.length; i += READ_BATCH) views.push(...(await Promise.all(members.slice(i, i + READ_BATCH).map((m) => viewOf(queue, m)))));
    return { meta, views };
  } finally {
    await queue.close();
    redis.disconnect();
  }
}

/** Counts, rate, ETA and scan's summary of a run read back. */
export function runStatus(r: RunView): FleetStatus {
  const { meta, views } = r;
  const summary = new SummaryBuilder(meta.files);
  let doneBytes = 0;
  let workBytes = 0;
  let first = Infinity;
  let last = 0;
  const count = { running: 0, waiting: 0, missing: 0, failed: 0, changed: 0 };
  for (const v of views) {
    if (v.state !== 'done') {
      count[v.state]++;
      continue;
    }
    const res = v.result!;
    doneBytes += v.member.size;
    summary.add(res, { resumed: v.member.known, bytes: v.member.size });
    if (v.failed) count.failed++;
    if (res.status === 'error' && v.member.job !== null && /(changed|vanished|cannot stat) since submission/.test(res.reason ?? '')) count.changed++;
    if (!v.member.known && v.processedOn && v.finishedOn) {
      workBytes += v.member.size;
      first = Math.min(first, v.processedOn);
      last = Math.max(last, v.finishedOn);
    }
  }
  const window = last > first ? last - first : 0;
  const bytesPerSecond = window > 0 ? (workBytes * MS_PER_SECOND) / window : 0;
  const restBytes = meta.bytes - doneBytes;
  const pending = count.running + count.waiting;
  const etaSeconds = pending === 0 ? 0 : bytesPerSecond > 0 ? restBytes / bytesPerSecond : null;
  const s = summary.finish({ elapsedMs: last > 0 ? last - meta.submittedAt : 0, tasks: meta.queued + meta.shardJobs, interrupted: false });
  return {
    schema: STATUS_SCHEMA,
    name: meta.name,
    run: meta.run,
    submittedAt: new Date(meta.submittedAt).toISOString(),
    files: meta.files,
    bytes: meta.bytes,
    done: s.done,
    doneBytes,
    running: count.running,
    waiting: count.waiting,
    missing: count.missing,
    failed: count.failed,
    changed: count.changed,
    bytesPerSecond,
    etaSeconds,
    summary: s,
  };
}

function formatEta(sec: number | null): string {
  if (sec === null) return 'unknown (no file finished yet)';
  const s = Math.round(sec);
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  return `${hh}:${String(mm).padStart(2, '0')}:${String(ss).padStart(2, '0')}`;
}

/** The status as text lines (the summary table follows, rendered by scan's renderSummary). */
export function statusLines(st: FleetStatus): string[] {
  const mib = (b: number): string => (b / (1 << 20)).toFixed(1);
  const pct = st.bytes > 0 ? Math.floor((st.doneBytes * 100) / st.bytes) : 100;
  return [
    `fleet ${st.name} run ${st.run} (submitted ${st.submittedAt}): ${st.done}/${st.files} files, ${mib(st.doneBytes)}/${mib(st.bytes)} MiB (${pct}%)`,
    `  running ${st.running}, waiting ${st.waiting}, failed ${st.failed}, changed ${st.changed}${st.missing ? `, missing ${st.missing} (jobs expired or removed)` : ''}`,
    `  ${mib(st.bytesPerSecond)} MiB/s, ETA ${formatEta(st.etaSeconds)}`,
  ];
}

/** Read the run until no file is running or waiting (`fleet status|results --wait`), `pollMs` apart. */
export async function readRunWhenDone(conn: FleetConnection, name: string, pollMs: number, onPoll?: (st: FleetStatus) => void): Promise<RunView> {
  for (;;) {
    const r = await readRun(conn, name);
    const st = runStatus(r);
    if (st.running + st.waiting === 0) return r;
    onPoll?.(st);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
