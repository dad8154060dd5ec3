// Per-file scan results: the record, its JSON line (schema p2m-audit/scan@1, docs/scan.md), its text
// line, and the append-only results log behind --out / --resume. The log is written one whole line per
// fs.writeSync followed by fdatasync, so a result is on disk before the next one is started on; a
// process killed mid-write can leave at most one partial last line, which the next open cuts off, and a
// failed write (a full disk) is cut off at once. The log obeys the rules of every output
// (formats/output-file.ts): never a scanned file, never anything but a regular file.
import fs from 'node:fs';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { InputError } from '../common/errors.js';
import { checkOutput, ioCause } from '../formats/output-file.js';
import { SYMBOLS_BESIDE_SUFFIX } from '../formats/symbols.js';
import { EXIT_INPUT_ERROR, formatMib, pagesToMib, type Verdict } from '../audit/verdict.js';

export const SCAN_SCHEMA = 'p2m-audit/scan@1';

export type ScanStatus = 'audited' | 'skipped' | 'error';

export interface ScanResult {
  /** the path as found */
  file: string;
  status: ScanStatus;
  /** detected format; null for files no reader recognises */
  format?: string | null;
  /** audited files only */
  verdict?: Verdict | null;
  /** the audit's exit code (0 for skipped files, 2 for errors) */
  exitCode?: number;
  fatalPages?: number;
  /** fatalPages / 256, exact (json-report.md convention) */
  fatalMib?: number;
  /** audited: the audit's one-line reason; skipped: what the file looks like; error: what went wrong */
  reason?: string;
  /** absolute path, size in bytes and mtime (ms) when scanned: the --resume key */
  resolved?: string;
  size?: number;
  mtimeMs?: number;
  /** worker attempts (2 when the first worker failed and a fresh one retried the file) */
  attempts?: number;
  /** wall time from first dispatch to result, ms */
  ms?: number;
  /** ISO time the result was written */
  at?: string;
}

/** The JSON line of a result (fields always in this order; null where not applicable). */
export function resultJson(r: ScanResult): string {
  return JSON.stringify({
    schema: SCAN_SCHEMA,
    file: r.file,
    resolved: r.resolved ?? path.resolve(r.file),
    size: r.size ?? null,
    mtimeMs: r.mtimeMs ?? null,
    status: r.status,
    format: r.format ?? null,
    verdict: r.verdict ?? null,
    exitCode: r.exitCode ?? (r.status === 'error' ? EXIT_INPUT_ERROR : 0),
    fatalPages: r.fatalPages ?? 0,
    fatalMib: r.fatalMib ?? pagesToMib(r.fatalPages ?? 0),
    reason: r.reason ?? null,
    attempts: r.attempts ?? null,
    ms: r.ms ?? null,
    at: r.at ?? null,
  });
}

/** Width of the first column of a text line (the longest verdict/status word plus a space). */
const TAG_WIDTH = 8;

/** The text line of a result. */
export function resultText(r: ScanResult): string {
  const retried = r.attempts !== undefined && r.attempts > 1 ? '  (retried on a fresh worker)' : '';
  if (r.status === 'skipped') return `${'SKIPPED'.padEnd(TAG_WIDTH)} ${r.file}  (${r.reason ?? 'unrecognised'})`;
  if (r.status === 'error') return `${'FAILED'.padEnd(TAG_WIDTH)} ${r.file}  ${r.reason ?? 'error'}${retried}`;
  const pages = r.fatalPages ?? 0;
  const fatal = pages ? `  ${pages} pages (${formatMib(pagesToMib(pages))} MiB) at risk` : '';
  const why = r.verdict === 'ERROR' || r.verdict === 'WARN' ? `  ${r.reason ?? ''}` : '';
  return `${(r.verdict ?? '?').padEnd(TAG_WIDTH)} ${r.file}  [${r.format ?? '?'}]${fatal}${why}${retried}`;
}

function isStatus(v: unknown): v is ScanStatus {
  return v === 'audited' || v === 'skipped' || v === 'error';
}

/** Parse one results-log line; null for a line that is not a complete scan@1 record. */
export function parseResultLine(line: string): ScanResult | null {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof o !== 'object' || o === null) return null;
  const j = o as Record<string, unknown>;
  if (j.schema !== SCAN_SCHEMA || typeof j.file !== 'string' || !isStatus(j.status)) return null;
  if (typeof j.resolved !== 'string' || typeof j.size !== 'number' || typeof j.mtimeMs !== 'number') return null;
  const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
  return {
    file: j.file,
    status: j.status,
    format: typeof j.format === 'string' ? j.format : null,
    verdict: typeof j.verdict === 'string' ? (j.verdict as Verdict) : null,
    exitCode: num(j.exitCode),
    fatalPages: num(j.fatalPages),
    fatalMib: num(j.fatalMib),
    reason: typeof j.reason === 'string' ? j.reason : undefined,
    resolved: j.resolved,
    size: j.size,
    mtimeMs: j.mtimeMs,
    attempts: num(j.attempts),
    ms: num(j.ms),
    at: typeof j.at === 'string' ? j.at : undefined,
  };
}

/** The --resume key of a file: resolved path, size and mtime must all match. */
export function resumeKey(resolved: string, size: number, mtimeMs: number): string {
  return `${size}:${mtimeMs}:${resolved}`;
}

/** Bytes read per chunk when reading a results log. */
const READ_CHUNK_BYTES = 1 << 20;
/** A results line is a few hundred bytes; a longer "line" is not one (it is skipped as it streams past). */
const MAX_RESULT_LINE_CHARS = 64 * 1024;

/**
 * Call `onLine` for each complete ('\n'-terminated) line of a file, reading it in chunks; a line longer
 * than MAX_RESULT_LINE_CHARS is passed as null (not kept: memory stays bounded whatever the file holds).
 */
function forEachLine(file: string, onLine: (line: string | null) => void): void {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(READ_CHUNK_BYTES);
    const decoder = new StringDecoder('utf8');
    let carry = '';
    let overlong = false;
    let pos = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, READ_CHUNK_BYTES, pos);
      if (n === 0) break;
      pos += n;
      const text = carry + decoder.write(buf.subarray(0, n));
      let start = 0;
      for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
        const line = text.slice(start, nl);
        start = nl + 1;
        if (overlong || line.length > MAX_RESULT_LINE_CHARS) onLine(null);
        else if (line.trim() !== '') onLine(line);
        overlong = false;
      }
      carry = text.slice(start);
      if (carry.length > MAX_RESULT_LINE_CHARS) {
        overlong = true;
        carry = '';
      }
    }
    // a last line without '\n' is a write cut short: not a result (ResultLog.open cuts it off)
  } finally {
    fs.closeSync(fd);
  }
}

export interface ResumeIndex {
  /** resumeKey → the recorded result, slimmed to what the summary uses (the last one, when a file appears twice) */
  byKey: Map<string, ScanResult>;
  /** lines that are not scan@1 records (garbage, other schemas, over-long lines) */
  ignoredLines: number;
}

/** What the summary needs of a resumed result (a log of a million files stays small in memory). */
function slim(r: ScanResult): ScanResult {
  return {
    file: r.file,
    status: r.status,
    verdict: r.verdict,
    exitCode: r.exitCode,
    fatalPages: r.fatalPages,
    attempts: r.attempts,
    reason: r.status === 'error' ? r.reason : undefined,
  };
}

/**
 * Read a results log for --resume. A missing file is an empty log. Records without a resume key (paths
 * that could not be listed, named FIFOs or devices: they are listed again by every run) are neither
 * indexed nor counted as ignored.
 */
export function readResumeIndex(file: string): ResumeIndex {
  const byKey = new Map<string, ScanResult>();
  let ignoredLines = 0;
  if (!fs.existsSync(file)) return { byKey, ignoredLines };
  try {
    forEachLine(file, (line) => {
      const r = line === null ? null : parseResultLine(line);
      if (r === null) {
        if (line === null || !isKeylessRecord(line)) ignoredLines++;
      } else byKey.set(resumeKey(r.resolved!, r.size!, r.mtimeMs!), slim(r));
    });
  } catch (e) {
    throw new InputError(`${file}: cannot read the results log (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return { byKey, ignoredLines };
}

/** A scan@1 line this scan wrote without size and mtime (nothing to resume from, but not garbage). */
function isKeylessRecord(line: string): boolean {
  try {
    const j = JSON.parse(line) as Record<string, unknown>;
    return j !== null && typeof j === 'object' && j.schema === SCAN_SCHEMA && typeof j.file === 'string' && isStatus(j.status) && j.size === null;
  } catch {
    return false;
  }
}

/** The append-only results log (--out). */
export class ResultLog {
  private fd: number;

  private constructor(
    readonly file: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /**
   * Refuse (InputError, before any work) a log that is one of the scanned files or the symbols read for
   * them, or anything but a regular file — or that, created now, would lie inside a scanned directory and
   * be a scanned file of the next --resume. An existing log is appended to, never replaced.
   */
  static check(file: string, scanned: { paths: readonly string[]; resolved: readonly string[]; systemMap?: string }): void {
    const inputs: string[] = scanned.systemMap ? [scanned.systemMap] : [];
    for (const r of scanned.resolved) inputs.push(r, r + SYMBOLS_BESIDE_SUFFIX);
    const target = checkOutput(file, { inputs, append: true });
    if (fs.existsSync(target)) return;
    const where = path.join(fs.realpathSync(path.dirname(target)), path.basename(target));
    for (const p of scanned.paths) {
      let dir: string;
      try {
        if (!fs.statSync(p).isDirectory()) continue;
        dir = fs.realpathSync(p);
      } catch {
        continue; // a glob, or a path collect already reported
      }
      if (where.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep)) {
        throw new InputError(`${file}: is inside the scanned directory ${p}; the results log would be scanned as an input (write it elsewhere)`);
      }
    }
  }

  /**
   * Open for appending (created when missing). A last line without its '\n' — left by a process killed
   * mid-write — is cut off first, so every line in the log stays a whole record.
   */
  static open(file: string): ResultLog {
    let fd: number;
    try {
      fd = fs.openSync(file, 'a+');
    } catch (e) {
      throw new InputError(`${file}: cannot open the results log for appending (${ioCause(e)})`);
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new InputError(`${file}: is not a regular file; the results log is written only as one`);
      if (st.size > 0) {
        const keep = lastNewlineEnd(fd, st.size);
        if (keep < st.size) fs.ftruncateSync(fd, keep);
      }
    } catch (e) {
      fs.closeSync(fd);
      if (e instanceof InputError) throw e;
      throw new InputError(`${file}: cannot repair the results log (${ioCause(e)})`);
    }
    return new ResultLog(file, fd);
  }

  /**
   * Append one result as one line, then flush it to disk. A line is written whole or not at all: when a
   * write fails (ENOSPC, EIO, EFBIG, …) the log is cut back to its last whole line and the error is an
   * InputError naming the log and the cause.
   */
  append(r: ScanResult): void {
    if (this.fd < 0) throw new Error(`${this.file}: results log is closed`);
    const data = Buffer.from(resultJson(r) + '\n', 'utf8');
    let before = -1;
    try {
      before = fs.fstatSync(this.fd).size;
      let done = 0;
      while (done < data.length) done += fs.writeSync(this.fd, data, done, data.length - done);
      fs.fdatasyncSync(this.fd);
    } catch (e) {
      if (before >= 0) {
        try {
          fs.ftruncateSync(this.fd, before);
        } catch {
          // the next open cuts a partial last line off as well
        }
      }
      throw new InputError(`${this.file}: cannot append to the results log (${ioCause(e)})`);
    }
  }

  close(): void {
    if (this.fd >= 0) {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
  }
}

/** Bytes looked at per step when searching backwards for the last '\n'. */
const TAIL_PROBE_BYTES = 4096;
const NEWLINE = 0x0a;

/** Length of the file up to and including its last '\n' (0 when it has none). */
function lastNewlineEnd(fd: number, size: number): number {
  const buf = Buffer.alloc(TAIL_PROBE_BYTES);
  let end = size;
  while (end > 0) {
    const start = Math.max(0, end - TAIL_PROBE_BYTES);
    const n = fs.readSync(fd, buf, 0, end - start, start);
    const at = buf.subarray(0, n).lastIndexOf(NEWLINE);
    if (at >= 0) return start + at + 1;
    end = start;
  }
  return 0;
}
