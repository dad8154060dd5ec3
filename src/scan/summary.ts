// The scan summary: counts per verdict, fatal pages/MiB in all, the worst files first, the errors with
// their one-line reasons, throughput, and the scan's exit code. Built incrementally (a scan of a million
// files keeps counts, the WORST_LISTED worst files and the first ERRORS_LISTED errors, not every result).
import { EXIT_CLEAN, EXIT_FATAL, EXIT_INPUT_ERROR, EXIT_PARTIAL, EXIT_WARNINGS, formatMib, pagesToMib, type Verdict } from '../audit/verdict.js';
import type { ScanResult } from './results.js';

/** Exit code of a scan stopped by SIGINT (128 + signal 2, as shells report it). */
export const EXIT_INTERRUPTED = 130;
/** Files listed under "worst files" (most fatal pages first). */
export const WORST_LISTED = 10;
/** Errors listed with their reasons (the rest are counted; every one is in the results). */
export const ERRORS_LISTED = 50;
const MS_PER_SECOND = 1000;
const BYTES_PER_MIB = 1 << 20;

export const VERDICTS: readonly Verdict[] = ['CLEAN', 'WARN', 'FATAL', 'ERROR'];

export interface WorstFile {
  file: string;
  verdict: Verdict;
  fatalPages: number;
  fatalMib: number;
}

export interface ScanSummary {
  /** files found under the paths (plus paths that could not be listed) */
  files: number;
  /** files with a result: audited + skipped + errors (resumed ones included) */
  done: number;
  audited: number;
  skipped: number;
  errors: number;
  /** results taken from the --out log instead of scanning again */
  resumed: number;
  /** files whose first worker failed and that a fresh worker retried */
  retried: number;
  verdicts: Record<Verdict, number>;
  fatalPages: number;
  /** fatalPages / 256, exact */
  fatalMib: number;
  worst: WorstFile[];
  errorList: { file: string; reason: string }[];
  /** true when SIGINT (or the caller's signal) stopped the scan */
  interrupted: boolean;
  /** files handled in this run (resumed files not included), the bytes of those audited, wall time, rate */
  scannedFiles: number;
  scannedBytes: number;
  elapsedMs: number;
  filesPerSecond: number;
  /** worker tasks run in this scan (one per small file, one per shard of a large file, retries) */
  tasks: number;
  exitCode: number;
}

export class SummaryBuilder {
  private readonly s: ScanSummary;

  constructor(files: number) {
    this.s = {
      files,
      done: 0,
      audited: 0,
      skipped: 0,
      errors: 0,
      resumed: 0,
      retried: 0,
      verdicts: { CLEAN: 0, WARN: 0, FATAL: 0, ERROR: 0 },
      fatalPages: 0,
      fatalMib: 0,
      worst: [],
      errorList: [],
      interrupted: false,
      scannedFiles: 0,
      scannedBytes: 0,
      elapsedMs: 0,
      filesPerSecond: 0,
      tasks: 0,
      exitCode: EXIT_CLEAN,
    };
  }

  private anyError = false;
  private anyFatal = false;
  private anyWarn = false;

  add(r: ScanResult, how: { resumed: boolean; bytes: number }): void {
    const s = this.s;
    s.done++;
    if (how.resumed) s.resumed++;
    else {
      s.scannedFiles++;
      // only an audited file was read through: a skipped or failed one counts no bytes
      if (r.status === 'audited') s.scannedBytes += how.bytes;
    }
    if ((r.attempts ?? 1) > 1) s.retried++;
    if (r.status === 'skipped') {
      s.skipped++;
      return;
    }
    if (r.status === 'error') {
      s.errors++;
      this.anyError = true;
      if (s.errorList.length < ERRORS_LISTED) s.errorList.push({ file: r.file, reason: r.reason ?? 'error' });
      return;
    }
    s.audited++;
    const v = r.verdict ?? 'ERROR';
    s.verdicts[v]++;
    const code = r.exitCode ?? EXIT_INPUT_ERROR;
    if (code === EXIT_INPUT_ERROR || code === EXIT_PARTIAL) this.anyError = true;
    else if (code === EXIT_FATAL) this.anyFatal = true;
    else if (code === EXIT_WARNINGS) this.anyWarn = true;
    const pages = r.fatalPages ?? 0;
    if (pages > 0) {
      s.fatalPages += pages;
      this.keepWorst({ file: r.file, verdict: v, fatalPages: pages, fatalMib: pagesToMib(pages) });
    }
  }

  /** Keep the WORST_LISTED files with the most fatal pages (ties: by path, so the list does not depend on completion order). */
  private keepWorst(w: WorstFile): void {
    const list = this.s.worst;
    const before = (a: WorstFile, b: WorstFile): boolean => a.fatalPages > b.fatalPages || (a.fatalPages === b.fatalPages && a.file < b.file);
    if (list.length === WORST_LISTED && !before(w, list[list.length - 1]!)) return;
    let i = list.length;
    while (i > 0 && before(w, list[i - 1]!)) i--;
    list.splice(i, 0, w);
    if (list.length > WORST_LISTED) list.pop();
  }

  finish(o: { elapsedMs: number; tasks: number; interrupted: boolean }): ScanSummary {
    const s = this.s;
    s.fatalMib = pagesToMib(s.fatalPages);
    s.elapsedMs = o.elapsedMs;
    s.tasks = o.tasks;
    s.interrupted = o.interrupted;
    s.filesPerSecond = o.elapsedMs > 0 ? (s.scannedFiles * MS_PER_SECOND) / o.elapsedMs : 0;
    // precedence: interrupted, then any failed file or unreadable pages (a partial result: the scan
    // itself ran and reported; exit 2 is kept for a scan that could not run), fatal, warnings, clean
    s.exitCode = o.interrupted
      ? EXIT_INTERRUPTED
      : this.anyError
        ? EXIT_PARTIAL
        : this.anyFatal
          ? EXIT_FATAL
          : this.anyWarn
            ? EXIT_WARNINGS
            : EXIT_CLEAN;
    return s;
  }
}

/** Problems found while listing (unreadable directories) count as errors of the scan. */
export function problemResult(file: string, reason: string): ScanResult {
  return { file, status: 'error', format: null, exitCode: EXIT_INPUT_ERROR, reason, attempts: 0 };
}

/** A named path that is not a regular file (a FIFO, a device, '-'): skipped, with the reason. */
export function skippedResult(file: string, reason: string): ScanResult {
  return { file, status: 'skipped', format: null, exitCode: EXIT_CLEAN, reason, attempts: 0 };
}

/** "1 file", "2 files" */
function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The summary as text lines: totals, a verdict table, the worst files, the errors. */
export function renderSummary(s: ScanSummary): string[] {
  const out: string[] = [''];
  const secs = s.elapsedMs / MS_PER_SECOND;
  // "failed" (status error: the file could not be audited) is kept apart from the ERROR verdict of an audit
  const state = s.interrupted ? `interrupted after ${s.done} of ${count(s.files, 'file')}` : count(s.files, 'file');
  out.push(
    `summary: ${state}: ${s.audited} audited, ${s.skipped} skipped, ${s.errors} failed` +
      (s.resumed ? `, ${s.resumed} resumed from the results log` : '') +
      (s.retried ? `, ${s.retried} retried on a fresh worker` : ''),
  );
  out.push(
    `  scanned ${count(s.scannedFiles, 'file')} in ${secs.toFixed(1)} s (${(s.scannedBytes / BYTES_PER_MIB).toFixed(1)} MiB audited): ` +
      `${s.filesPerSecond.toFixed(1)} files/s, ${count(s.tasks, 'worker task')}`,
  );
  const w1 = Math.max('verdict'.length, ...VERDICTS.map((v) => v.length));
  const w2 = Math.max('files'.length, ...VERDICTS.map((v) => String(s.verdicts[v]).length));
  out.push(`  ${'verdict'.padEnd(w1)}  ${'files'.padStart(w2)}  (of the ${count(s.audited, 'audited file')})`);
  for (const v of VERDICTS) out.push(`  ${v.padEnd(w1)}  ${String(s.verdicts[v]).padStart(w2)}`);
  if (s.errors || s.skipped) out.push(`  (not audited: ${s.errors} failed, ${s.skipped} skipped)`);
  out.push(`  fatal: ${s.fatalPages} pages (${formatMib(s.fatalMib)} MiB) at risk in all`);
  if (s.worst.length) {
    out.push('worst files:');
    const mw = Math.max(...s.worst.map((w) => formatMib(w.fatalMib).length));
    for (const w of s.worst) out.push(`  ${formatMib(w.fatalMib).padStart(mw)} MiB  ${w.verdict.padEnd(w1)}  ${w.file}`);
  }
  if (s.errors) {
    out.push('failed:');
    for (const e of s.errorList) out.push(`  ${e.reason.startsWith(e.file) ? e.reason : `${e.file}: ${e.reason}`}`);
    if (s.errors > s.errorList.length) out.push(`  … and ${s.errors - s.errorList.length} more (every one is in the results)`);
  }
  if (s.interrupted) out.push(`interrupted: ${count(s.files - s.done, 'file')} not scanned (run again with --resume to finish)`);
  return out;
}
