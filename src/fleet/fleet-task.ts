// The fleet worker's processor (docs/fleet.md; its BullMQ sandbox entry is workers/fleet-processor.ts): it
// runs in a worker thread of BullMQ's sandbox pool (useWorkerThreads), one job at a time per thread, on
// the same engine as `scan` (src/scan/scan-task.ts: open, both views, per-leaf classification, verdict).
// Three kinds of job arrive:
//   file    a file audited whole — or, when it was split, its shards' results merged in shard order
//           (RangeSink.addPacked, as scan's scheduler merges them) and the report built;
//   shard   one shard of a split file: the views and the leaf plan rebuilt here (they are a pure
//           function of the file), its leaves classified (readShard), the packed ranges returned;
//   corpus  the parent of a submission: all its files have results; it returns their count.
// Before and after the audit the file's size and mtime are compared with those submitted: a file that
// vanished or changed is reported as such (status error, reason "changed since submission: …"), never
// audited half-way. Bad input (InputError) is an answer; anything else thrown (or the thread dying, or
// running out of its heap limit) fails the attempt and BullMQ retries the job once (attempts: 2).
//
// Test hook (off unless set): P2M_AUDIT_FLEET_FAULT=exit:<suffix> makes the thread exit, hang:<suffix>
// makes it block forever, on the FIRST attempt at a file or shard whose path ends with <suffix>;
// crash:<suffix> makes it exit on EVERY attempt (a file that kills its worker each time).
import fs from 'node:fs';
import type { SandboxedJob } from 'bullmq';
import { auditImage } from '../audit/audit-image.js';
import { RangeSink } from '../audit/compare-leaf.js';
import { addTail, planLeaves, shardTask, sinkStats, type LeafPlan } from '../audit/run-audit.js';
import { planShards, SHARDS_PER_WORKER } from '../audit/shard-plan.js';
import { readShard } from '../audit/shard-reader.js';
import { buildReport, EXIT_INPUT_ERROR, type AuditReport } from '../audit/verdict.js';
import { InputError } from '../common/errors.js';
import type { GuestImage } from '../formats/guest-image.js';
import { openImage } from '../formats/open-image.js';
import type { GuestView, ToolstackView } from '../views/p2m-leaves.js';
import { readGuestView } from '../views/guest-view.js';
import { mapP2m, type ToolstackMethod } from '../views/toolstack-view.js';
import { defaultSymbols, type FileOutcome as ScanFileOutcome } from '../scan/scan-task.js';

/** Environment variable of the test hook (see the header). */
export const FLEET_FAULT_ENV = 'P2M_AUDIT_FLEET_FAULT';
/** Exit status of a thread ended by the hook. */
const FAULT_EXIT_CODE = 86;
/** Progress is reported in steps of this many percent. */
const PROGRESS_STEP = 10;
const PERCENT = 100;

/** What identifies the file as submitted (checked before and after the audit). */
export interface FileIdentity {
  resolved: string;
  size: number;
  mtimeMs: number;
}

interface AuditSettings {
  /** --system-map: symbols for images that carry none and have no FILE.map beside them */
  systemMap: string | null;
  method: ToolstackMethod | null;
}

export interface FileJobData extends FileIdentity, AuditSettings {
  kind: 'file';
  /** the path as given to submit (what results print) */
  file: string;
  format: string;
  /** 0: audited whole; else the number of shard jobs (its children) */
  shards: number;
}

export interface ShardJobData extends FileIdentity, AuditSettings {
  kind: 'shard';
  index: number;
  shards: number;
}

export interface CorpusJobData {
  kind: 'corpus';
  name: string;
  run: number;
  files: number;
}

export type FleetJobData = FileJobData | ShardJobData | CorpusJobData;

/** A file job's return value (the facts of scan's result line; the rest comes from the job). */
export interface FileOutcome extends ScanFileOutcome {
  /** the file changed or vanished since submission */
  changed: boolean;
}

/** A shard job's return value. */
export interface ShardOutcome {
  index: number;
  /** packed ranges (RangeSink.toPacked) as plain numbers; empty when `problem` is set */
  packed: number[];
  /** the file changed (changed: true) or is bad input: the file's result says so */
  problem: { reason: string; changed: boolean } | null;
}

/** Why the file no longer is the one submitted, or null when it still is. */
export function changedSince(id: FileIdentity): string | null {
  let st: fs.Stats;
  try {
    st = fs.statSync(id.resolved);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    return code === 'ENOENT' ? 'vanished since submission' : `cannot stat since submission (${code})`;
  }
  if (!st.isFile()) return 'changed since submission: no longer a regular file';
  if (st.size !== id.size) return `changed since submission: size ${id.size} → ${st.size} bytes`;
  if (st.mtimeMs !== id.mtimeMs) return `changed since submission: mtime ${new Date(id.mtimeMs).toISOString()} → ${new Date(st.mtimeMs).toISOString()}`;
  return null;
}

function changedOutcome(format: string | null, reason: string): FileOutcome {
  return { status: 'error', format, verdict: null, exitCode: EXIT_INPUT_ERROR, fatalPages: 0, reason: `${reason}; not audited`, changed: true };
}

function openFor(path: string, s: AuditSettings): GuestImage {
  return openImage(path, { defaultSymbols: defaultSymbols(s.systemMap) }); // scan's per-thread table cache
}

function maybeFault(job: SandboxedJob, path: string): void {
  const v = process.env[FLEET_FAULT_ENV];
  const m = v ? /^(exit|crash|hang):(.+)$/.exec(v) : null;
  if (!m || !path.endsWith(m[2]!) || (m[1] !== 'crash' && job.attemptsStarted > 1)) return;
  if (m[1] !== 'hang') process.exit(FAULT_EXIT_CODE); // in a worker thread: ends this thread only
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); // blocks this thread for good
}

/** Both views and the leaf plan of an image (what a shard and the merge both need). */
interface Planned {
  tool: ToolstackView;
  guest: GuestView;
  plan: LeafPlan;
}

function planImage(img: GuestImage, method: ToolstackMethod | null): Planned {
  const tool = mapP2m(img, { method: method ?? undefined });
  if (tool.absentFrame !== undefined) throw new InputError(`${img.path}: the ${tool.method} walk's ${tool.failure}: the frame list points outside the image`);
  const guest = readGuestView(img);
  return { tool, guest, plan: planLeaves(tool, guest) };
}

/**
 * Open the file, build its report with `audit`, close it: the verdict line's facts, or the file's error
 * when it is bad input (an answer, not a failure: the job is not retried).
 */
async function auditOpened(d: FileJobData, audit: (img: GuestImage) => Promise<AuditReport>): Promise<FileOutcome> {
  let format: string | null = d.format;
  try {
    const img = openFor(d.resolved, d);
    format = img.format;
    try {
      const report = await audit(img);
      return { status: 'audited', format, verdict: report.verdict, exitCode: report.exitCode, fatalPages: report.fatalPages, reason: report.reason, changed: false };
    } finally {
      img.close();
    }
  } catch (e) {
    if (e instanceof InputError) return { status: 'error', format, verdict: null, exitCode: EXIT_INPUT_ERROR, fatalPages: 0, reason: e.message, changed: false };
    throw e;
  }
}

function auditWhole(job: SandboxedJob<FileJobData>): Promise<FileOutcome> {
  const d = job.data;
  return auditOpened(d, async (img) => {
    maybeFault(job, d.resolved);
    let reported = 0;
    const onProgress = (done: number, total: number): void => {
      const pct = total > 0 ? Math.floor((done * PERCENT) / total / PROGRESS_STEP) * PROGRESS_STEP : PERCENT;
      if (pct > reported) {
        reported = pct;
        void job.updateProgress(pct);
      }
    };
    return (await auditImage(img, { jobs: 0, method: d.method ?? undefined, onProgress })).report;
  });
}

async function auditShard(job: SandboxedJob<ShardJobData>): Promise<ShardOutcome> {
  const d = job.data;
  const changed = changedSince(d);
  if (changed !== null) return { index: d.index, packed: [], problem: { reason: changed, changed: true } };
  try {
    const img = openFor(d.resolved, d);
    try {
      maybeFault(job, d.resolved);
      const { plan } = planImage(img, d.method);
      const shards = planShards(plan.activeLeaves, Math.max(1, Math.ceil(d.shards / SHARDS_PER_WORKER)));
      const shard = shards[d.index];
      const packed = shard === undefined ? [] : Array.from(readShard(shardTask(img, plan, shard)));
      const after = changedSince(d);
      if (after !== null) return { index: d.index, packed: [], problem: { reason: after, changed: true } };
      return { index: d.index, packed, problem: null };
    } finally {
      img.close();
    }
  } catch (e) {
    if (e instanceof InputError) return { index: d.index, packed: [], problem: { reason: e.message, changed: false } };
    throw e;
  }
}

async function mergeShards(job: SandboxedJob<FileJobData>): Promise<FileOutcome> {
  const d = job.data;
  const parts = Object.values(await job.getChildrenValues<ShardOutcome>()).sort((a, b) => a.index - b.index);
  const problem = parts.find((p) => p.problem !== null)?.problem;
  if (problem) return problem.changed ? changedOutcome(d.format, problem.reason) : { status: 'error', format: d.format, verdict: null, exitCode: EXIT_INPUT_ERROR, fatalPages: 0, reason: problem.reason, changed: false };
  if (parts.length !== d.shards) throw new Error(`${d.file}: ${parts.length} of ${d.shards} shard results found`);
  return auditOpened(d, async (img) => {
    const { tool, guest, plan } = planImage(img, d.method);
    const sink = new RangeSink();
    for (const p of parts) if (p.packed.length) sink.addPacked(Float64Array.from(p.packed));
    addTail(sink, plan);
    return buildReport({ img, tool, guest, ranges: sink.toRanges(), stats: sinkStats(sink) });
  });
}

async function fileJob(job: SandboxedJob<FileJobData>): Promise<FileOutcome> {
  const before = changedSince(job.data);
  if (before !== null) return changedOutcome(job.data.format, before);
  const out = job.data.shards > 0 ? await mergeShards(job) : await auditWhole(job);
  const after = changedSince(job.data); // changed while being read: the verdict is of no file
  return after !== null ? changedOutcome(out.format, after) : out;
}

export default async function fleetTask(job: SandboxedJob<FleetJobData>): Promise<FileOutcome | ShardOutcome | { files: number }> {
  const d = job.data;
  if (d.kind === 'corpus') return { files: d.files };
  if (d.kind === 'shard') return auditShard(job as SandboxedJob<ShardJobData>);
  return fileJob(job as SandboxedJob<FileJobData>);
}
