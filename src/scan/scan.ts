// Bulk scanning (docs/scan.md): every file under the given paths, directories and globs, detected by
// content (unknown files are listed as skipped), audited on ONE shared worker pool — small files whole,
// large files in shards between other files' work (src/scan/scheduler.ts). A result line per file as it
// completes (text, or JSON lines with --json), appended to the --out log (fdatasync'ed per line) so
// --resume can skip what is done; then a summary. SIGINT stops cleanly: no new work, the pool destroyed,
// every written line whole, exit code 130.
import path from 'node:path';
import { auditImage } from '../audit/audit-image.js';
import { InputError } from '../common/errors.js';
import { STDIO_NAME } from '../common/input-file.js';
import { detectFormat, openImage, readHead } from '../formats/open-image.js';
import { loadSymbols } from '../formats/symbols.js';
import { EXIT_INPUT_ERROR, pagesToMib } from '../audit/verdict.js';
import type { FaultHook } from './scan-task.js';
import { collectEntries, type ScanEntry } from './collect.js';
import type { ScanProgress } from './progress.js';
import { readResumeIndex, resultJson, resultText, resumeKey, ResultLog, SCAN_SCHEMA, type ScanResult } from './results.js';
import { ScanScheduler, type PartialResult } from './scheduler.js';
import { EXIT_INTERRUPTED, problemResult, renderSummary, skippedResult, SummaryBuilder, type ScanSummary } from './summary.js';

export { collectEntries, collectFiles, type ScanEntry } from './collect.js';
export { EXIT_INTERRUPTED, type ScanSummary } from './summary.js';
export type { ScanResult } from './results.js';

export const SUMMARY_SCHEMA = 'p2m-audit/scan-summary@1';
/** Environment variable of the worker fault test hook (src/scan/scan-task.ts, docs/scan.md). */
export const FAULT_ENV = 'P2M_AUDIT_SCAN_FAULT';
/** Largest --jobs accepted (as the CLI's parseJobs). */
const MAX_JOBS = 256;

export interface ScanOptions {
  /** worker threads of the shared pool */
  jobs: number;
  /** JSON lines (p2m-audit/scan@1 per file, then one p2m-audit/scan-summary@1) instead of text */
  json: boolean;
  /** results log: each result is appended as one JSON line as it completes */
  out?: string;
  /** skip files whose path, size and mtime match a result already in `out` */
  resume?: boolean;
  /** draw a progress bar on stderr (only when stderr is a terminal) */
  progress?: boolean;
  /** one output line (no trailing newline) */
  write: (line: string) => void;
  /** aborting it stops the scan as SIGINT does (exit code 130) */
  signal?: AbortSignal;
  /** test hook (docs/scan.md); defaults to the P2M_AUDIT_SCAN_FAULT environment variable */
  fault?: FaultHook | null;
  /** kernel symbols (System.map / kallsyms) for images that carry none and have no FILE.map beside them */
  systemMap?: string;
  /** one line for standard error (notes such as lines of the --resume log that were not results); default: stderr */
  warn?: (line: string) => void;
}

export interface ScanOutcome {
  exitCode: number;
  summary: ScanSummary;
}

/** Parse the fault hook's "exit:<suffix>" / "throw:<suffix>" (undefined or empty: no hook). */
export function parseFaultHook(v: string | undefined): FaultHook | null {
  if (v === undefined || v === '') return null;
  const m = /^(exit|throw):(.+)$/.exec(v);
  if (!m) throw new InputError(`${FAULT_ENV}=${v}: expected exit:<path suffix> or throw:<path suffix>`);
  return { mode: m[1] as FaultHook['mode'], suffix: m[2]! };
}

function fullResult(entry: ScanEntry, r: PartialResult, ms: number): ScanResult {
  const fatalPages = r.fatalPages ?? 0;
  return {
    file: entry.file,
    status: r.status,
    format: r.format ?? null,
    verdict: r.verdict ?? null,
    exitCode: r.exitCode,
    fatalPages,
    fatalMib: pagesToMib(fatalPages),
    reason: r.reason,
    resolved: entry.resolved,
    size: entry.size,
    mtimeMs: entry.mtimeMs,
    attempts: r.attempts,
    ms: Math.round(ms),
    at: new Date().toISOString(),
  };
}

/** Scan files, directories and globs; see ScanOptions. Bad arguments throw InputError. */
export async function runScan(paths: string[], opts: ScanOptions): Promise<ScanOutcome> {
  if (!Number.isInteger(opts.jobs) || opts.jobs < 1 || opts.jobs > MAX_JOBS) throw new InputError(`--jobs ${opts.jobs}: expected a whole number of worker threads from 1 to ${MAX_JOBS}`);
  if (paths.length === 0) throw new InputError('scan: give at least one file, directory or glob');
  if (opts.resume && !opts.out) throw new InputError('--resume needs --out FILE (the results log to resume from)');
  if (opts.out === STDIO_NAME) throw new InputError(`--out ${STDIO_NAME}: the results log is appended to and read back by --resume, so it must be a file; --json prints the same lines on standard output`);
  if (opts.systemMap === STDIO_NAME) throw new InputError(`--system-map ${STDIO_NAME}: every worker thread of a scan reads the symbol file itself, so it must be a file`);
  const warn = opts.warn ?? ((line: string) => process.stderr.write(`p2m-audit: ${line}\n`));
  const fault = opts.fault !== undefined ? opts.fault : parseFaultHook(process.env[FAULT_ENV]);
  // a bad --system-map is an input error before any file is scanned
  const systemMap = opts.systemMap ? { path: path.resolve(opts.systemMap), symbols: loadSymbols(opts.systemMap) } : undefined;
  const t0 = performance.now();

  const { entries, problems, skipped } = collectEntries(paths);
  // the results log may not be (or become) a scanned file: checked before any file is audited
  if (opts.out) ResultLog.check(opts.out, { paths, resolved: entries.map((e) => e.resolved), systemMap: opts.systemMap });
  const summary = new SummaryBuilder(entries.length + problems.length + skipped.length);
  const resumeIndex = opts.resume && opts.out ? readResumeIndex(opts.out) : null;
  if (resumeIndex && resumeIndex.ignoredLines > 0) {
    const n = resumeIndex.ignoredLines;
    warn(`--resume: ${n} line${n === 1 ? '' : 's'} of ${opts.out} ${n === 1 ? 'is' : 'are'} not ${SCAN_SCHEMA} results and ${n === 1 ? 'was' : 'were'} ignored`);
  }
  const todo: ScanEntry[] = [];
  for (const e of entries) {
    const prev = resumeIndex?.byKey.get(resumeKey(e.resolved, e.size, e.mtimeMs));
    if (prev) summary.add(prev, { resumed: true, bytes: e.size });
    else todo.push(e);
  }

  const log = opts.out ? ResultLog.open(opts.out) : null;
  let progress: ScanProgress | null = null;
  let scheduler: ScanScheduler | null = null;
  let interrupted = false;
  const onSigint = (): void => {
    if (interrupted) process.exit(EXIT_INTERRUPTED); // a second Ctrl-C while stopping: stop now
    interrupted = true;
    scheduler?.abort();
  };
  const onAbort = (): void => {
    interrupted = true;
    scheduler?.abort();
  };
  try {
    const emit = (r: ScanResult, bytes: number): void => {
      log?.append(r);
      const line = opts.json ? resultJson(r) : resultText(r);
      if (progress) progress.above(() => opts.write(line));
      else opts.write(line);
      summary.add(r, { resumed: false, bytes });
    };
    for (const p of problems) emit(problemResult(p.file, p.reason), 0);
    for (const k of skipped) emit(skippedResult(k.file, k.reason), 0);

    if (opts.progress && process.stderr.isTTY && todo.length) {
      const { startProgress } = await import('./progress.js');
      progress = startProgress(
        todo.length,
        todo.reduce((s, e) => s + e.size, 0),
      );
    }
    scheduler = new ScanScheduler(todo, {
      jobs: opts.jobs,
      fault,
      systemMap,
      onResult: (entry, r, ms) => emit(fullResult(entry, r, ms), entry.size),
      onProgress: progress ? (f, b) => progress!.advance(f, b) : undefined,
    });
    process.on('SIGINT', onSigint);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
    await scheduler.run();
  } finally {
    process.off('SIGINT', onSigint);
    opts.signal?.removeEventListener('abort', onAbort);
    await scheduler?.shutdown();
    progress?.stop();
    log?.close();
  }
  if (scheduler.failure !== null) throw scheduler.failure;

  const s = summary.finish({ elapsedMs: performance.now() - t0, tasks: scheduler.tasks, interrupted });
  if (opts.json) opts.write(JSON.stringify({ schema: SUMMARY_SCHEMA, ...s }));
  else for (const line of renderSummary(s)) opts.write(line);
  return { exitCode: s.exitCode, summary: s };
}

/**
 * One file on its own (detect, open, audit with its own pool of `jobs` threads). Kept for callers of the
 * earlier sequential scan; runScan is the bulk path.
 */
export async function scanFile(file: string, jobs: number): Promise<ScanResult> {
  let head: Buffer;
  try {
    head = readHead(file);
  } catch (e) {
    return { file, status: 'error', format: null, exitCode: EXIT_INPUT_ERROR, reason: (e as Error).message };
  }
  const d = detectFormat(head, file); // the path lets an ELF be probed by its notes (a native Linux vmcore is skipped)
  if (!d.format) return { file, status: 'skipped', format: null, exitCode: 0, reason: d.description };
  try {
    const img = openImage(file);
    try {
      const { report } = await auditImage(img, { jobs });
      return {
        file,
        status: 'audited',
        format: d.format,
        verdict: report.verdict,
        exitCode: report.exitCode,
        fatalPages: report.fatalPages,
        fatalMib: pagesToMib(report.fatalPages),
        reason: report.reason,
      };
    } finally {
      img.close();
    }
  } catch (e) {
    if (e instanceof InputError) return { file, status: 'error', format: d.format, exitCode: EXIT_INPUT_ERROR, reason: e.message };
    throw e;
  }
}
