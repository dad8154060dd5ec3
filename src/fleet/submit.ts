// `fleet submit` (docs/fleet.md): walk the paths as `scan` does (src/scan/collect.ts: files, directories,
// globs; detection by content, unknown and compressed files skipped with scan's reasons), then queue one
// BullMQ job per file, keyed by its identity (src/fleet/job-keys.ts), under one parent job for this run
// of the corpus (a FlowProducer flow). A file whose job already exists — an unchanged file submitted
// before, in this corpus or another — is not queued again: the run points at the existing job and its
// result. Files from --shard-mib up are split: the file job becomes the parent of shard jobs, processed
// after them (src/fleet/fleet-task.ts). Job retention, attempts and backoff are set here, per job.
import path from 'node:path';
import { FlowProducer, type FlowJobNode, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { InputError } from '../common/errors.js';
import { detectFormat, readHead } from '../formats/open-image.js';
import { loadSymbols } from '../formats/symbols.js';
import type { ToolstackMethod } from '../views/toolstack-view.js';
import { collectEntries, type ScanEntry } from '../scan/collect.js';
import { problemResult } from '../scan/summary.js';
import { SHARDS_PER_WORKER } from '../audit/shard-plan.js';
import { openClient, type FleetConnection } from './connection.js';
import { corpusJobId, fileJobId, FleetKeys, QUEUE_NAME, shardJobId } from './job-keys.js';
import type { CorpusJobData, FileJobData, ShardJobData } from './fleet-task.js';
import { nextRun, saveRun, type Member, type RunMeta } from './run-record.js';

const MIB = 1 << 20;
const SECONDS_PER_DAY = 86400;
/** Default: files from this size up are split into shard jobs (scan's ALWAYS_SHARDED_FILE_BYTES). */
export const DEFAULT_SHARD_MIB = 64;
/** At most this many shard jobs per file. */
export const MAX_SHARDS_PER_FILE = 64;
/** Default days a result (and the run's records) stay in Redis. */
export const DEFAULT_KEEP_DAYS = 14;
/** BullMQ's attempts per job: the first, and one retry (on whichever worker takes it). */
export const JOB_ATTEMPTS = 2;
/** First retry after this long (exponential backoff). */
export const RETRY_BACKOFF_MS = 1000;
/** BullMQ's largest priority (Job: "Priority must be between 0 and 2097151"). */
export const MAX_PRIORITY = 2_097_151;
/** Job ids looked up per pipeline. */
const LOOKUP_BATCH = 1000;

export interface SubmitOptions {
  name: string;
  systemMap?: string;
  method?: ToolstackMethod;
  /** BullMQ priority of the file jobs (1 = first; none when undefined) */
  priority?: number;
  /** files from this many MiB up are split into shard jobs */
  shardMib?: number;
  /** days results and records are kept */
  keepDays?: number;
}

export interface SubmitOutcome {
  meta: RunMeta;
  /** members settled at submission (skipped, unreadable, listing problems) */
  settled: Member[];
}

/** Number of shard jobs for a file of `size` bytes (0: audited whole), a multiple of SHARDS_PER_WORKER. */
export function shardCount(size: number, shardMib: number): number {
  const bytes = shardMib * MIB;
  if (size < bytes) return 0;
  const n = Math.ceil(size / bytes);
  return Math.min(MAX_SHARDS_PER_FILE, Math.ceil(n / SHARDS_PER_WORKER) * SHARDS_PER_WORKER);
}

function checkOptions(o: SubmitOptions): void {
  if (!o.name || o.name.length > 200 || /[\n\r]/.test(o.name)) throw new InputError(`--name ${JSON.stringify(o.name)}: expected a corpus name of 1 to 200 characters on one line`);
  if (o.priority !== undefined && (!Number.isInteger(o.priority) || o.priority < 1 || o.priority > MAX_PRIORITY)) {
    throw new InputError(`--priority ${o.priority}: expected a whole number from 1 (first) to ${MAX_PRIORITY}`);
  }
  if (o.shardMib !== undefined && (!Number.isFinite(o.shardMib) || o.shardMib <= 0)) throw new InputError(`--shard-mib ${o.shardMib}: expected a size in MiB, > 0`);
  if (o.keepDays !== undefined && (!Number.isFinite(o.keepDays) || o.keepDays <= 0)) throw new InputError(`--keep-days ${o.keepDays}: expected a number of days, > 0`);
}

/** Detect by content as scan does; a member settled here when no worker is needed. */
function memberOf(e: ScanEntry): Member {
  const base = { file: e.file, resolved: e.resolved, size: e.size, mtimeMs: e.mtimeMs, job: null, known: false };
  let head: Buffer;
  try {
    head = readHead(e.file);
  } catch (err) {
    const reason = (err as Error).message.split('\n')[0]!;
    return { ...base, format: null, result: { ...problemResult(e.file, reason), fatalPages: 0, fatalMib: 0, resolved: e.resolved, size: e.size, mtimeMs: e.mtimeMs } };
  }
  const d = detectFormat(head, e.file); // the path lets an ELF be probed by its notes, as scan does
  if (d.format === null) {
    return {
      ...base,
      format: null,
      result: { file: e.file, status: 'skipped', format: null, verdict: null, exitCode: 0, fatalPages: 0, fatalMib: 0, reason: d.description, resolved: e.resolved, size: e.size, mtimeMs: e.mtimeMs, attempts: 0 },
    };
  }
  return { ...base, format: d.format, job: fileJobId(e.resolved, e.size, e.mtimeMs), result: null };
}

/** Which of these job ids already have a job hash in Redis. */
async function existingJobs(redis: Redis, keys: FleetKeys, ids: string[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (let i = 0; i < ids.length; i += LOOKUP_BATCH) {
    const part = ids.slice(i, i + LOOKUP_BATCH);
    const p = redis.pipeline();
    for (const id of part) p.exists(keys.job(id));
    const res = (await p.exec()) ?? [];
    res.forEach(([err, n], k) => {
      if (err) throw err;
      if (n === 1) found.add(part[k]!);
    });
  }
  return found;
}

/** Submit the files under `paths` as a new run of corpus `o.name`. Bad arguments throw InputError. */
export async function runSubmit(conn: FleetConnection, paths: string[], o: SubmitOptions): Promise<SubmitOutcome> {
  checkOptions(o);
  if (paths.length === 0) throw new InputError('fleet submit: give at least one file, directory or glob');
  // workers on other hosts read the same absolute path: resolve it, and read it once here (bad map: exit 2)
  const systemMap = o.systemMap ? path.resolve(o.systemMap) : null;
  if (systemMap) loadSymbols(systemMap);
  const shardMib = o.shardMib ?? DEFAULT_SHARD_MIB;
  const keepSeconds = Math.round((o.keepDays ?? DEFAULT_KEEP_DAYS) * SECONDS_PER_DAY);
  const retention: JobsOptions = { removeOnComplete: { age: keepSeconds }, removeOnFail: { age: keepSeconds } };

  const { entries, problems } = collectEntries(paths);
  const members: Member[] = problems.map((p) => ({ file: p.file, resolved: path.resolve(p.file), size: 0, mtimeMs: 0, format: null, job: null, known: false, result: problemResult(p.file, p.reason) }));
  for (const e of entries) members.push(memberOf(e));

  const keys = new FleetKeys(conn.prefix);
  const redis = await openClient(conn);
  const flows = new FlowProducer({ connection: redis, prefix: conn.prefix });
  try {
    const jobIds = members.filter((m) => m.job !== null).map((m) => m.job!);
    const existing = await existingJobs(redis, keys, jobIds);
    const run = await nextRun(redis, keys, o.name);
    const settings = { systemMap, method: o.method ?? null };
    const children: FlowJobNode[] = [];
    const queuedIds = new Set<string>();
    let shardJobs = 0;
    for (const m of members) {
      if (m.job === null) continue;
      if (existing.has(m.job) || queuedIds.has(m.job)) {
        m.known = existing.has(m.job);
        continue;
      }
      queuedIds.add(m.job);
      const shards = shardCount(m.size, shardMib);
      shardJobs += shards;
      const identity = { resolved: m.resolved, size: m.size, mtimeMs: m.mtimeMs };
      const data: FileJobData = { kind: 'file', file: m.file, format: m.format!, shards, ...identity, ...settings };
      const retry: JobsOptions = { attempts: JOB_ATTEMPTS, backoff: { type: 'exponential', delay: RETRY_BACKOFF_MS } };
      const opts = { ...retention, ...retry, jobId: m.job, priority: o.priority, ignoreDependencyOnFailure: true };
      if (shards === 0) {
        children.push({ name: 'file', queueName: QUEUE_NAME, data, opts });
        continue;
      }
      const shardChildren: FlowJobNode[] = [];
      for (let index = 0; index < shards; index++) {
        const sd: ShardJobData = { kind: 'shard', index, shards, ...identity, ...settings };
        // a shard's result lives on in its parent (BullMQ's processed set): the shard job itself goes at once
        shardChildren.push({ name: 'shard', queueName: QUEUE_NAME, data: sd, opts: { ...retry, jobId: shardJobId(m.job, index), priority: o.priority, removeOnComplete: true, removeOnFail: retention.removeOnFail, failParentOnFailure: true } });
      }
      children.push({ name: 'file', queueName: QUEUE_NAME, data, opts, children: shardChildren });
    }
    const parentJob = corpusJobId(o.name, run);
    const meta: RunMeta = {
      name: o.name,
      run,
      submittedAt: Date.now(),
      files: members.length,
      bytes: members.reduce((s, m) => s + m.size, 0),
      queued: queuedIds.size,
      shardJobs,
      known: members.filter((m) => m.known).length,
      settled: members.filter((m) => m.result !== null).length,
      parentJob,
    };
    // the records first: a worker may finish a job before the flow call returns, and status must know the run
    await saveRun(redis, keys, meta, members, keepSeconds);
    const corpus: CorpusJobData = { kind: 'corpus', name: o.name, run, files: members.length };
    await flows.add({ name: 'corpus', queueName: QUEUE_NAME, data: corpus, opts: { ...retention, jobId: parentJob }, children });
    return { meta, settled: members.filter((m) => m.result !== null) };
  } finally {
    await flows.close();
    redis.disconnect();
  }
}

/** The one-line report of a submission. */
export function submitLine(m: RunMeta): string {
  const gib = (m.bytes / (MIB * 1024)).toFixed(2);
  const shards = m.shardJobs ? ` (${m.shardJobs} shard jobs)` : '';
  return `submitted ${m.name} run ${m.run}: ${m.files} files (${gib} GiB): ${m.queued} queued${shards}, ${m.known} already audited or queued, ${m.settled} settled here (skipped or unreadable)`;
}
