// Shared by every section: units, the repo paths every section needs, the emulated guest profile and seed,
// progress logging and the number/table formatting of the printed results.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PAGE_SIZE } from '../src/xen/abi.js';

export const PROFILE_ID = 'linux-4.x';
export const GiB = 2 ** 30;
export const MiB = 2 ** 20;
export const PAGES_PER_GiB = GiB / PAGE_SIZE;

/** Children that may hang (the scan, Xen's verifier) are killed after this long. */
export const CHILD_TIMEOUT_S = 1800;

export const JOBS = [1, 2] as const;

/** Emulation seed (machine-frame shuffle); fixed so runs are comparable. */
export const SEED = 1;

export const ROOT = fileURLToPath(new URL('../..', import.meta.url)); // dist/bench/common.js → repo root
export const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
/** The package's command (package.json "bin"): node from the startup snapshot when node accepts it, else CLI. */
export const BIN = path.join(ROOT, 'bin', 'p2m-audit');

export function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

export const f2 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(2));
export const f3 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(3));
export const f1 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(1));
export const f0 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '-' : Math.round(x).toString());

/** A text table; the first `left` columns are left-aligned, the others right-aligned. */
export function table(head: string[], rows: string[][], left = 1): string {
  const w = head.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]): string => cells.map((s, c) => (c < left ? s.padEnd(w[c]!) : s.padStart(w[c]!))).join('  ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n') + '\n';
}

export const mib = (kib: number | null | undefined): string => (kib === null || kib === undefined ? '-' : f0(kib / 1024));
