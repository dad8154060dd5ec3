// sweep: emulate and audit every (dom0_mem, profile) combination of a host map in the worker pool and
// tabulate verdicts — "for which configurations does this kernel lose memory?"
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { InputError } from '../common/errors.js';
import { type E820Entry } from '../inputs/e820.js';
import { computeDom0Pages, parseDom0Mem, type Dom0Pages } from '../inputs/dom0-mem.js';
import { PAGES_PER_MIB } from '../xen/abi.js';
import { findProfile, profileIds } from '../emulate/kernel/profiles.js';
import type { SweepTask, SweepCell } from './sweep-cell.js';

export type { SweepCell };

/** Size suffixes of Xen's parse_size_and_unit; no suffix means KiB. */
const UNIT: Record<string, number> = { '': 2 ** 10, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };
/** Rows a sweep may have (a range that would produce more is refused). */
export const MAX_SWEEP_ROWS = 512;

function parseSize(text: string, what: string): number {
  const m = /^(\d+)([bkmgt]?)$/i.exec(text.trim());
  if (!m) throw new InputError(`--dom0-mem ${what} "${text}": expected a size such as 512m, 4g or 1t (no suffix = KiB)`);
  return Number(m[1]) * UNIT[m[2]!.toLowerCase()]!;
}

/** Xen-style size text: the largest unit that divides the byte count. */
export function sizeText(bytes: number): string {
  for (const u of ['t', 'g', 'm', 'k'] as const) if (bytes % UNIT[u]! === 0) return `${bytes / UNIT[u]!}${u}`;
  return `${bytes}b`;
}

/** `FROM..TO[:STEP]`: STEP a size (linear), or absent for doubling. Returns byte sizes ascending. */
export function parseSweepRange(text: string): number[] {
  const m = /^([^.:]+)\.\.([^.:]+)(?::(.+))?$/.exec(text.trim());
  if (!m) throw new InputError(`--dom0-mem "${text}": expected FROM..TO or FROM..TO:STEP, e.g. 512m..64g or 1g..8g:1g`);
  const from = parseSize(m[1]!, 'start');
  const to = parseSize(m[2]!, 'end');
  if (from <= 0 || to < from) throw new InputError(`--dom0-mem "${text}": the range must be positive and ascending`);
  const out: number[] = [];
  const step = m[3] !== undefined ? parseSize(m[3], 'step') : 0;
  if (m[3] !== undefined && step <= 0) throw new InputError(`--dom0-mem "${text}": the step must be positive`);
  for (let v = from; v <= to; v = step ? v + step : v * 2) {
    out.push(v);
    if (out.length > MAX_SWEEP_ROWS) throw new InputError(`--dom0-mem "${text}": more than ${MAX_SWEEP_ROWS} rows; use a larger step`);
  }
  return out;
}

export interface SweepMatrixResult {
  schema: 'p2m-audit/sweep@1';
  rows: string[];
  cols: string[];
  cells: SweepCell[][];
  /** per row: what Xen did to the request (the clamp to avail), or null */
  rowNotes: (string | null)[];
}

/** MiB with one decimal: every size the sweep prints is in this one unit. */
function mib(pages: number): string {
  return `${(pages / PAGES_PER_MIB).toFixed(1)} MiB`;
}

/**
 * dom0_compute_nr_pages (xen/arch/x86/dom0_build.c) clamps nr_pages to avail without a message, and leaves
 * d->max_pages at max:. The row is emulated as Xen would build it; the note says so.
 */
function clampNote(row: string, p: Dom0Pages): string | null {
  if (!p.exceedsAvail) return null;
  return (
    `dom0_mem=${row} asks for ${mib(p.requestedPages)} but the host map leaves ${mib(p.availPages)} for dom0 (our estimate of Xen's avail): ` +
    `Xen clamps nr_pages to avail silently (dom0_compute_nr_pages), so this row is dom0 at ${mib(p.nrPages)}, max pages ${mib(p.maxPages)}`
  );
}

export function sweepWorkerPath(): string {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) return path.resolve(path.dirname(here), '../../dist/workers/sweep-worker.js');
  return path.resolve(path.dirname(here), '../../workers/sweep-worker.js');
}

export async function runSweep(opts: {
  hostE820: E820Entry[];
  range: string;
  profiles: string[];
  withMax: boolean;
  jobs: number;
  kconfig: Record<string, string> | null;
  config: Record<string, string>;
  seed: number;
  onProgress?: (done: number, total: number) => void;
}): Promise<SweepMatrixResult> {
  for (const p of opts.profiles) {
    if (!findProfile(p)) throw new InputError(`--profile ${p}: unknown profile; expected one of ${profileIds().join(', ')}`);
  }
  const sizes = parseSweepRange(opts.range);
  const rows = sizes.map((b) => (opts.withMax ? `${sizeText(b)},max:${sizeText(b)}` : sizeText(b)));
  // a row Xen cannot give is clamped as Xen clamps it; a row that cannot be computed at all is an error cell
  const pages = rows.map((r) => {
    try {
      return computeDom0Pages(parseDom0Mem(r), opts.hostE820);
    } catch (e) {
      if (e instanceof InputError) return e.message;
      throw e;
    }
  });
  const rowNotes = rows.map((r, i) => (typeof pages[i] === 'string' ? null : clampNote(r, pages[i] as Dom0Pages)));
  const pool = new Piscina<SweepTask, SweepCell>({ filename: sweepWorkerPath(), maxThreads: opts.jobs, minThreads: 1 });
  const total = rows.length * opts.profiles.length;
  let done = 0;
  try {
    const cells = await Promise.all(
      rows.map((row, r) =>
        Promise.all(
          opts.profiles.map((profile) => {
            const p = pages[r]!;
            if (typeof p === 'string') {
              opts.onProgress?.(++done, total);
              return Promise.resolve<SweepCell>({ verdict: 'ERROR', exitCode: 2, fatalPages: 0, fatalMib: 0, uncoveredPages: 0, uncoveredMib: 0, archMaxPfn: '', kernelMaxPfn: '', nrPages: '', error: p });
            }
            return pool
              .run({ profile, hostE820: opts.hostE820, nrPages: p.nrPages, maxPages: p.maxPages, kconfig: opts.kconfig, config: opts.config, seed: opts.seed, dom0Mem: row })
              .then((c) => {
                opts.onProgress?.(++done, total);
                return c;
              });
          }),
        ),
      ),
    );
    return { schema: 'p2m-audit/sweep@1', rows, cols: opts.profiles, cells, rowNotes };
  } finally {
    await pool.destroy();
  }
}

function cellText(c: SweepCell): string {
  if (c.error) return 'ERROR';
  return c.uncoveredMib > 0 || c.verdict === 'FATAL' ? `${c.verdict} ${c.fatalMib.toFixed(1)} MiB` : c.verdict;
}

export function renderSweepText(m: SweepMatrixResult): string {
  const head = ['dom0_mem', ...m.cols];
  const label = (r: string, i: number) => (m.rowNotes[i] ? `${r} (clamped)` : r);
  const body = m.rows.map((r, i) => [label(r, i), ...m.cells[i]!.map(cellText)]);
  const widths = head.map((h, k) => Math.max(h.length, ...body.map((row) => row[k]!.length)));
  const line = (cols: string[]) => cols.map((c, k) => c.padEnd(widths[k]!)).join('  ').trimEnd();
  const out = [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)];
  const unsafe = m.cols.map((c, k) => `${c}: ${m.rows.filter((_, i) => m.cells[i]![k]!.verdict === 'FATAL').join(' ') || 'none'}`);
  out.push('', 'unsafe dom0_mem values (FATAL: RAM save/migration would lose):', ...unsafe.map((u) => `  ${u}`));
  const notes = m.rowNotes.filter((n): n is string => n !== null);
  if (notes.length) out.push('', 'clamped rows:', ...notes.map((n) => `  ${n}`));
  const errors = distinctErrors(m);
  if (errors.length) out.push('', 'errors (each once):', ...errors.map((e) => `  ${e.message} [${e.where.join('; ')}]`));
  return out.join('\n') + '\n';
}

/** Every distinct error message once, with the cells (row: profiles) it came from. */
export function distinctErrors(m: SweepMatrixResult): { message: string; where: string[] }[] {
  const byMessage = new Map<string, Map<string, string[]>>();
  m.cells.forEach((row, i) =>
    row.forEach((c, k) => {
      if (!c.error) return;
      const rows = byMessage.get(c.error) ?? new Map<string, string[]>();
      byMessage.set(c.error, rows);
      const cols = rows.get(m.rows[i]!) ?? [];
      rows.set(m.rows[i]!, cols);
      cols.push(m.cols[k]!);
    }),
  );
  return [...byMessage].map(([message, rows]) => ({
    message,
    where: [...rows].map(([r, cols]) => (cols.length === m.cols.length ? `dom0_mem=${r}: every profile` : `dom0_mem=${r}: ${cols.join(', ')}`)),
  }));
}

export function renderSweepCsv(m: SweepMatrixResult): string {
  const lines = ['dom0_mem,profile,verdict,exit_code,fatal_pages,fatal_mib,uncovered_pages,uncovered_mib,arch_max_pfn,kernel_max_pfn,nr_pages,error'];
  m.rows.forEach((r, i) =>
    m.cols.forEach((p, k) => {
      const c = m.cells[i]![k]!;
      lines.push([r, p, c.verdict, c.exitCode, c.fatalPages, c.fatalMib, c.uncoveredPages, c.uncoveredMib, c.archMaxPfn, c.kernelMaxPfn, c.nrPages, c.error ?? ''].map((v) => (/[,"]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v))).join(','));
    }),
  );
  return lines.join('\n') + '\n';
}
