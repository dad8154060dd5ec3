// The pfn index of a save stream (src/formats/save-stream.ts): pfn → file offset of the page's 4096 bytes (or
// a no-data code) and the XEN_DOMCTL_PFINFO_* type nibble of its last PAGE_DATA entry. Typed arrays only, no
// object per pfn: the PAGE_DATA entries are logged as runs (consecutive pfns of one type whose pages follow
// each other in the file); disjoint ascending runs (a non-live save) are searched directly, anything else
// (pfns repeated by live-migration passes) is expanded per pfn into a dense table or sorted arrays.
import { findSorted } from './file-io.js';
import { PAGE_SIZE } from '../xen/abi.js';
import { PFINFO_BROKEN, PFINFO_LTABTYPE_MASK, PFINFO_NOTAB, PFINFO_XTAB } from '../xen/stream-format.js';

// ---- index codes -------------------------------------------------------------------------------------
/** frameCode(pfn) values that are not file offsets: the pfn is not in the stream, or carries no data. */
export const FRAME_ABSENT = -1;
export const FRAME_XTAB = -2;
export const FRAME_BROKEN = -3;
export const FRAME_XALLOC = -4;
/** Type byte for a pfn that is not in the stream. */
export const NO_TYPE = 0xff;

/** The code of a pfn whose type carries no data (XTAB, BROKEN, XALLOC). */
export function codeOfNoDataType(nibble: number): number {
  if (nibble === PFINFO_XTAB) return FRAME_XTAB;
  if (nibble === PFINFO_BROKEN) return FRAME_BROKEN;
  return FRAME_XALLOC;
}

const INITIAL_LOG_ENTRIES = 65536;
/** Initial capacity of the run log (grows by doubling). */
const INITIAL_RUNS = 4096;
/** A direct pfn-indexed table is used when it is at most this many times the entries (or tiny). */
const DENSE_FACTOR = 4;
const DENSE_MIN_PFNS = 1 << 20;

// ---- the index -------------------------------------------------------------------------------------
/** Append-only log of PAGE_DATA entries in stream order: pfn, location code, type nibble. */
class PfnLog {
  pfn = new Float64Array(INITIAL_LOG_ENTRIES);
  loc = new Float64Array(INITIAL_LOG_ENTRIES);
  type = new Uint8Array(INITIAL_LOG_ENTRIES);
  n = 0;
  maxPfn = -1;

  push(pfn: number, loc: number, type: number): void {
    if (this.n === this.pfn.length) {
      const cap = this.pfn.length * 2;
      const p = new Float64Array(cap);
      p.set(this.pfn);
      const l = new Float64Array(cap);
      l.set(this.loc);
      const t = new Uint8Array(cap);
      t.set(this.type);
      this.pfn = p;
      this.loc = l;
      this.type = t;
    }
    this.pfn[this.n] = pfn;
    this.loc[this.n] = loc;
    this.type[this.n] = type;
    this.n++;
    if (pfn > this.maxPfn) this.maxPfn = pfn;
  }
}

/** Counts over the final index (each pfn once, its last PAGE_DATA entry). */
export interface PfnCounts {
  /** pfn entries in all PAGE_DATA records */
  pfnEntries: number;
  /** distinct pfns in the stream */
  pfns: number;
  /** distinct pfns whose last entry carries data */
  withData: number;
  xtab: number;
  broken: number;
  xalloc: number;
  /** entries overridden by a later entry for the same pfn */
  overridden: number;
  /** distinct pfns whose last entry is a page table (L1–L4, pinned or not) */
  pageTables: number;
}

/**
 * The PAGE_DATA log as runs: consecutive pfns of one type whose data pages follow each other in the file (or
 * share one no-data code). A non-live save of a 64 GiB guest is ~16k runs instead of 16M entries.
 */
export class RunLog {
  first = new Float64Array(INITIAL_RUNS);
  count = new Float64Array(INITIAL_RUNS);
  loc = new Float64Array(INITIAL_RUNS);
  type = new Uint8Array(INITIAL_RUNS);
  n = 0;
  entries = 0;
  maxPfn = -1;

  push(pfn: number, loc: number, type: number): void {
    this.entries++;
    if (pfn > this.maxPfn) this.maxPfn = pfn;
    const r = this.n - 1;
    if (r >= 0 && this.type[r] === type && this.first[r]! + this.count[r]! === pfn) {
      const l = this.loc[r]!;
      const next = l >= 0 ? l + this.count[r]! * PAGE_SIZE : l;
      if (next === loc) {
        this.count[r]!++;
        return;
      }
    }
    if (this.n === this.first.length) {
      const grow = <T extends Float64Array | Uint8Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.first = grow(this.first);
      this.count = grow(this.count);
      this.loc = grow(this.loc);
      this.type = grow(this.type);
    }
    this.first[this.n] = pfn;
    this.count[this.n] = 1;
    this.loc[this.n] = loc;
    this.type[this.n] = type;
    this.n++;
  }

  /** Runs ascending and disjoint: every pfn appears once (a non-live save). */
  disjointAscending(): boolean {
    for (let r = 1; r < this.n; r++) if (this.first[r]! < this.first[r - 1]! + this.count[r - 1]!) return false;
    return true;
  }

  /** Expand into a per-pfn log (streams that repeat pfns: live migration passes). */
  expand(): PfnLog {
    const log = new PfnLog();
    for (let r = 0; r < this.n; r++) {
      const l = this.loc[r]!;
      for (let k = 0; k < this.count[r]!; k++) log.push(this.first[r]! + k, l >= 0 ? l + k * PAGE_SIZE : l, this.type[r]!);
    }
    return log;
  }
}

/** pfn → location over disjoint ascending runs (binary search on the run starts). */
class RunIndex {
  constructor(private readonly runs: RunLog) {}

  private find(pfn: number): number {
    const f = this.runs.first;
    let lo = 0;
    let hi = this.runs.n - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (pfn < f[mid]!) hi = mid - 1;
      else if (pfn >= f[mid]! + this.runs.count[mid]!) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  loc(pfn: number): number {
    if (!Number.isInteger(pfn) || pfn < 0) return FRAME_ABSENT;
    const r = this.find(pfn);
    if (r < 0) return FRAME_ABSENT;
    const l = this.runs.loc[r]!;
    return l >= 0 ? l + (pfn - this.runs.first[r]!) * PAGE_SIZE : l;
  }

  type(pfn: number): number {
    if (!Number.isInteger(pfn) || pfn < 0) return NO_TYPE;
    const r = this.find(pfn);
    return r < 0 ? NO_TYPE : this.runs.type[r]!;
  }

  forEachRun(fn: RunVisitor): void {
    const r = this.runs;
    for (let i = 0; i < r.n; i++) fn(r.first[i]!, r.count[i]!, r.loc[i]!, r.type[i]!);
  }

  get counts(): PfnCounts {
    const c = { pfnEntries: this.runs.entries, pfns: this.runs.entries, withData: 0, xtab: 0, broken: 0, xalloc: 0, overridden: 0, pageTables: 0 };
    for (let r = 0; r < this.runs.n; r++) {
      const n = this.runs.count[r]!;
      const l = this.runs.loc[r]!;
      const t = this.runs.type[r]!;
      if (l >= 0) {
        c.withData += n;
        if ((t & PFINFO_LTABTYPE_MASK) !== PFINFO_NOTAB) c.pageTables += n;
      } else if (l === FRAME_XTAB) c.xtab += n;
      else if (l === FRAME_BROKEN) c.broken += n;
      else if (l === FRAME_XALLOC) c.xalloc += n;
    }
    return c;
  }
}

/**
 * One run of the final index, ascending: `count` pfns from `first` of one type; loc is the first page's file
 * offset (the next pages follow it) or the run's no-data code.
 */
export type RunVisitor = (first: number, count: number, loc: number, type: number) => void;

/** What the image needs of a pfn index. */
export interface PfnLookup {
  loc(pfn: number): number;
  type(pfn: number): number;
  /** every pfn the stream holds, as ascending runs (each pfn once, its last entry) */
  forEachRun(fn: RunVisitor): void;
  readonly counts: PfnCounts;
}

/** pfn → location lookup: a direct table when the pfns are dense, else sorted arrays (binary search). */
class PfnIndex {
  private dense: { loc: Float64Array; type: Uint8Array } | null = null;
  private sorted: { pfn: Float64Array; loc: Float64Array; type: Uint8Array } | null = null;
  readonly counts: PfnCounts;

  constructor(log: PfnLog) {
    const n = log.n;
    const span = log.maxPfn + 1;
    let uniq = 0;
    if (span <= Math.max(DENSE_MIN_PFNS, DENSE_FACTOR * n)) {
      const loc = new Float64Array(span).fill(FRAME_ABSENT);
      const type = new Uint8Array(span).fill(NO_TYPE);
      for (let i = 0; i < n; i++) {
        const p = log.pfn[i]!;
        if (type[p] === NO_TYPE) uniq++;
        loc[p] = log.loc[i]!;
        type[p] = log.type[i]!;
      }
      this.dense = { loc, type };
    } else {
      // stable order by (pfn, position in stream); the last entry of each pfn wins
      const order = new Uint32Array(n);
      for (let i = 0; i < n; i++) order[i] = i;
      const pf = log.pfn;
      order.sort((a, b) => pf[a]! - pf[b]! || a - b);
      const sp = new Float64Array(n);
      const sl = new Float64Array(n);
      const st = new Uint8Array(n);
      for (let k = 0; k < n; k++) {
        const i = order[k]!;
        if (uniq > 0 && sp[uniq - 1] === pf[i]) {
          sl[uniq - 1] = log.loc[i]!;
          st[uniq - 1] = log.type[i]!;
        } else {
          sp[uniq] = pf[i]!;
          sl[uniq] = log.loc[i]!;
          st[uniq] = log.type[i]!;
          uniq++;
        }
      }
      this.sorted = { pfn: sp.slice(0, uniq), loc: sl.slice(0, uniq), type: st.slice(0, uniq) };
    }
    const c = { pfnEntries: n, pfns: uniq, withData: 0, xtab: 0, broken: 0, xalloc: 0, overridden: n - uniq, pageTables: 0 };
    const tally = (loc: number, type: number): void => {
      if (type === NO_TYPE) return;
      if (loc >= 0) {
        c.withData++;
        if ((type & PFINFO_LTABTYPE_MASK) !== PFINFO_NOTAB) c.pageTables++;
      } else if (loc === FRAME_XTAB) c.xtab++;
      else if (loc === FRAME_BROKEN) c.broken++;
      else if (loc === FRAME_XALLOC) c.xalloc++;
    };
    if (this.dense) for (let p = 0; p < this.dense.loc.length; p++) tally(this.dense.loc[p]!, this.dense.type[p]!);
    else for (let k = 0; k < this.sorted!.pfn.length; k++) tally(this.sorted!.loc[k]!, this.sorted!.type[k]!);
    this.counts = c;
  }

  private find(pfn: number): number {
    return findSorted(this.sorted!.pfn, pfn);
  }

  forEachRun(fn: RunVisitor): void {
    const t = this.dense ?? this.sorted!;
    const n = t.loc.length;
    const pfnAt = (k: number): number => (this.dense ? k : this.sorted!.pfn[k]!);
    let k = 0;
    while (k < n) {
      if (t.type[k] === NO_TYPE) {
        k++;
        continue;
      }
      const first = pfnAt(k);
      const loc = t.loc[k]!;
      const type = t.type[k]!;
      let c = 1;
      // extend while the next entry is the next pfn, same type, and its page follows (or shares the code)
      while (k + c < n && pfnAt(k + c) === first + c && t.type[k + c] === type && t.loc[k + c] === (loc >= 0 ? loc + c * PAGE_SIZE : loc)) c++;
      fn(first, c, loc, type);
      k += c;
    }
  }

  loc(pfn: number): number {
    if (!Number.isInteger(pfn) || pfn < 0) return FRAME_ABSENT;
    if (this.dense) return pfn < this.dense.loc.length ? this.dense.loc[pfn]! : FRAME_ABSENT;
    const k = this.find(pfn);
    return k < 0 ? FRAME_ABSENT : this.sorted!.loc[k]!;
  }

  type(pfn: number): number {
    if (!Number.isInteger(pfn) || pfn < 0) return NO_TYPE;
    if (this.dense) return pfn < this.dense.type.length ? this.dense.type[pfn]! : NO_TYPE;
    const k = this.find(pfn);
    return k < 0 ? NO_TYPE : this.sorted!.type[k]!;
  }
}

/** The lookup for a stream's PAGE_DATA runs: the runs themselves when disjoint and ascending, else per pfn. */
export function pfnIndexOf(runs: RunLog): PfnLookup {
  return runs.disjointAscending() ? new RunIndex(runs) : new PfnIndex(runs.expand());
}
