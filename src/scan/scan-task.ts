// The task a `scan` worker runs (docs/scan.md; its piscina entry is src/scan/scan-task.ts): one pool serves
// every file of a scan. Two kinds of task arrive here:
//   file   a small image audited whole on this thread (open, both views, per-leaf classification,
//          report) — returns only the verdict line's facts, never the report or any page data;
//   shard  one shard of a large image planned on the main thread — delegated to the audit worker's
//          shard function (readShard, as workers/audit-worker.ts runs it), so a large file's shards share the pool with
//          other files' work.
// Bad input (InputError) is an answer, not a failure: the file's result says why. Anything else thrown,
// or the thread exiting, fails the task and the scan retries it once on a fresh worker.
//
// Test hook (harmless, off unless asked for): a task may carry `fault`, set by the main thread from the
// P2M_AUDIT_SCAN_FAULT environment variable ("exit:<suffix>" or "throw:<suffix>") or runScan's
// `fault` option. On the task's FIRST attempt at a file whose path ends with <suffix>, the worker
// thread exits (process.exit in a worker thread ends only that thread, as a crash would) or throws.
// Retries (attempt 2) never fault, so the hook shows the retry path without breaking the scan.
import { auditImage } from '../audit/audit-image.js';
import { InputError } from '../common/errors.js';
import { openImage } from '../formats/open-image.js';
import { loadSymbols } from '../formats/symbols.js';
import type { SymbolTable } from '../formats/symbols.js';
import { EXIT_INPUT_ERROR } from '../audit/verdict.js';
import { readShard, type AuditTask } from '../audit/shard-reader.js';

/** What the fault hook does (see the header). */
export interface FaultHook {
  mode: 'exit' | 'throw';
  /** the file's path must end with this */
  suffix: string;
}

/** Exit status of a worker thread ended by the fault hook (any non-zero value would do). */
const FAULT_EXIT_CODE = 86;

interface TaskBase {
  /** 1 on the shared pool, 2 on the fresh worker of a retry */
  attempt: number;
  fault: FaultHook | null;
}

export interface FileTask extends TaskBase {
  kind: 'file';
  path: string;
  /** scan --system-map: symbols for images that carry none and have no PATH.map beside them */
  systemMap: string | null;
}

/** --system-map tables this thread has loaded, by path (one parse per worker, not per file). */
const symbolTables = new Map<string, SymbolTable>();

export function defaultSymbols(file: string | null): SymbolTable | undefined {
  if (file === null) return undefined;
  let t = symbolTables.get(file);
  if (t === undefined) {
    t = loadSymbols(file);
    symbolTables.set(file, t);
  }
  return t;
}

export interface ShardTask extends TaskBase {
  kind: 'shard';
  shard: AuditTask;
}

export type ScanTask = FileTask | ShardTask;

/** A whole-file audit's answer. */
export interface FileOutcome {
  status: 'audited' | 'error';
  format: string | null;
  verdict: string | null;
  exitCode: number;
  fatalPages: number;
  reason: string;
}

function maybeFault(task: ScanTask, path: string): void {
  const f = task.fault;
  if (f === null || task.attempt !== 1 || !path.endsWith(f.suffix)) return;
  if (f.mode === 'exit') process.exit(FAULT_EXIT_CODE);
  throw new Error(`test fault hook: worker threw on ${path}`);
}

async function auditWhole(task: FileTask): Promise<FileOutcome> {
  let format: string | null = null;
  try {
    const img = openImage(task.path, { defaultSymbols: defaultSymbols(task.systemMap) });
    format = img.format;
    try {
      maybeFault(task, task.path); // mid-file: the image is open
      const { report } = await auditImage(img, { jobs: 0 });
      return { status: 'audited', format, verdict: report.verdict, exitCode: report.exitCode, fatalPages: report.fatalPages, reason: report.reason };
    } finally {
      img.close();
    }
  } catch (e) {
    if (e instanceof InputError) return { status: 'error', format, verdict: null, exitCode: EXIT_INPUT_ERROR, fatalPages: 0, reason: e.message };
    throw e;
  }
}

export default async function scanTask(task: ScanTask): Promise<FileOutcome | Float64Array> {
  if (task.kind === 'file') return auditWhole(task);
  maybeFault(task, task.shard.path);
  return readShard(task.shard); // copied, not transferred, as the audit worker does
}
