// Per-leaf comparison of the guest's p2m against the save side's view (ARCHITECTURE.md
// "Classification"): for one leaf page (512 pfns) it decides, pfn by pfn, which class each pfn falls
// in and emits run-length ranges. Pure and synchronous: the worker (workers/audit-worker.ts) and the
// in-process path (run-audit.ts auditInProcess) both drive it through `classifyShard`, so the two give
// identical ranges by construction.
//
// Entries are u64 little-endian, read as (lo, hi) u32 words: INVALID_P2M_ENTRY = both words all ones,
// hi bit 31 = FOREIGN_FRAME_BIT, hi bit 30 = IDENTITY_FRAME_BIT, mfn = (hi & FRAME_HI_MASK)·2^32 + lo.
// The toolstack (x86_pv_pfn_to_gfn + Xen's getpageframeinfo) has no mfn for any entry with bit 62 or 63
// set (INVALID has both), so "toolstack invalid" is simply `hi & (IDENTITY_FRAME_HI | FOREIGN_FRAME_HI)`.
//
// Cost model: a memcmp (Buffer.compare) per leaf first; entries are decoded only where the pages
// differ or carry markers, through a Uint32Array view of the page (about ten times faster than
// Buffer.readUInt32LE). No allocation per entry: one view per page, ranges appended to a growable
// Float64Array. A page source may hand over per-page flags computed in advance (PAGE_FLAG_*: the audit
// worker computes them for a whole read batch in WebAssembly SIMD, src/audit/page-flags-loader.ts); with them the
// fast path's "every high word 0" and "all INVALID" tests are a bit test instead of a scan of the page.
// Without them (auditInProcess, the JS fallback) the page is scanned here; the ranges are the same.
import { pageWords } from '../xen/page-words.js';
import { FOREIGN_FRAME_HI, IDENTITY_FRAME_HI, INVALID_P2M_ENTRY_WORD, P2M_ENTRY_SIZE, P2M_PER_PAGE, PAGE_SIZE } from '../xen/abi.js';
import { GuestLeaf, type GuestLeafKind } from '../views/p2m-leaves.js';
import { PfnClass, PFN_CLASS_NAMES, ToolLeaf, type ClassRange, type PfnClassCode } from './pfn-class.js';

/** u32 words per entry and per page; an entry's low word comes first (little-endian). */
const WORD_BYTES = Uint32Array.BYTES_PER_ELEMENT;
const WORDS_PER_ENTRY = P2M_ENTRY_SIZE / WORD_BYTES;
const WORDS_PER_PAGE = PAGE_SIZE / WORD_BYTES;
const HI_WORD = 1;
/** High-word bits that make an entry "not an mfn" for the toolstack (bit 62 identity, bit 63 foreign/INVALID). */
export const TOOL_INVALID_HI = (IDENTITY_FRAME_HI | FOREIGN_FRAME_HI) >>> 0;
/** Numbers per range in the flat Float64Array form: [start, end, cls]. */
export const RANGE_TRIPLE = 3;
const INITIAL_SINK_RANGES = 64;

/** A leaf page whose 512 entries are all INVALID_P2M_ENTRY (p2m_missing / p2m_identity contents). */
export const ALL_INVALID_PAGE: Buffer = Buffer.alloc(PAGE_SIZE, 0xff);

// Per-page flags a page source may compute in advance (mirrored in src/wasm/page-flags.ts).
/** Every entry's high word is 0: plain RAM with mfn < 2^32, no markers, no INVALID (allHiWordsZero). */
export const PAGE_FLAG_HI_WORDS_ZERO = 1;
/** Every entry is INVALID_P2M_ENTRY: the page equals ALL_INVALID_PAGE. */
export const PAGE_FLAG_ALL_INVALID = 2;
/** Flags not computed: the classifier inspects the page itself. */
export const PAGE_FLAGS_UNKNOWN = -1;

/**
 * Run-length class ranges [start, end) in ascending pfn order, stored flat as Float64Array triples.
 * `add` merges with the previous range when it is contiguous and of the same class.
 */
/** Ranges a sink stores; past this it still counts pages and ranges per class exactly (a corrupt p2m that
 * changes class at every pfn would otherwise make one range per pfn). */
export const MAX_KEPT_RANGES = 1 << 16;
/** Number of pfn classes (the PfnClass codes 0..8). */
export const CLASS_COUNT = 9;
/** Header of a packed sink: [dropped ranges, pages of dropped ranges per class ×9, dropped ranges per class ×9]. */
const PACK_HEADER = 1 + 2 * CLASS_COUNT;

export class RangeSink {
  private data: Float64Array;
  private n = 0;
  /** the last range added, stored or not (so contiguous additions merge either way) */
  private lastEnd = -1;
  private lastCls = -1;
  private lastStored = false;
  /** exact totals of every range added (stored or dropped), per class */
  readonly pages = new Float64Array(CLASS_COUNT);
  readonly ranges = new Float64Array(CLASS_COUNT);
  /** totals of the ranges that were not stored */
  readonly droppedPages = new Float64Array(CLASS_COUNT);
  readonly droppedRangesByClass = new Float64Array(CLASS_COUNT);
  dropped = 0;

  constructor(
    initialRanges = INITIAL_SINK_RANGES,
    private readonly cap = MAX_KEPT_RANGES,
  ) {
    this.data = new Float64Array(Math.max(1, Math.min(initialRanges, cap)) * RANGE_TRIPLE);
  }

  /** number of ranges held */
  get count(): number {
    return this.n;
  }

  add(start: number, end: number, cls: number): void {
    if (end <= start) return;
    this.pages[cls] += end - start;
    if (this.lastEnd === start && this.lastCls === cls) {
      this.lastEnd = end;
      if (this.lastStored) this.data[(this.n - 1) * RANGE_TRIPLE + 1] = end;
      else this.droppedPages[cls] += end - start;
      return;
    }
    this.ranges[cls]++;
    this.lastEnd = end;
    this.lastCls = cls;
    if (this.n >= this.cap) {
      this.lastStored = false;
      this.dropped++;
      this.droppedRangesByClass[cls]++;
      this.droppedPages[cls] += end - start;
      return;
    }
    this.lastStored = true;
    let at = this.n * RANGE_TRIPLE;
    if (at + RANGE_TRIPLE > this.data.length) {
      const grown = new Float64Array(Math.min(this.data.length * 2, this.cap * RANGE_TRIPLE));
      grown.set(this.data);
      this.data = grown;
    }
    const w = this.data;
    w[at++] = start;
    w[at++] = end;
    w[at] = cls;
    this.n++;
  }

  /** Append ranges given as flat triples (a worker's result), merging at the seam. */
  addTriples(triples: Float64Array): void {
    for (let i = 0; i + RANGE_TRIPLE <= triples.length; i += RANGE_TRIPLE) {
      this.add(triples[i]!, triples[i + 1]!, triples[i + 2]!);
    }
  }

  /** A fresh, exactly sized copy of the stored triples (safe to transfer to another thread). */
  toFloat64Array(): Float64Array {
    return this.data.slice(0, this.n * RANGE_TRIPLE);
  }

  /** Stored triples behind a header with the dropped ranges' totals (a worker's result). */
  toPacked(): Float64Array {
    const out = new Float64Array(PACK_HEADER + this.n * RANGE_TRIPLE);
    out[0] = this.dropped;
    out.set(this.droppedPages, 1);
    out.set(this.droppedRangesByClass, 1 + CLASS_COUNT);
    out.set(this.data.subarray(0, this.n * RANGE_TRIPLE), PACK_HEADER);
    return out;
  }

  /** Merge a packed worker result: its stored ranges one by one, its dropped ranges as totals. */
  addPacked(packed: Float64Array): void {
    this.addTriples(packed.subarray(PACK_HEADER));
    const dropped = packed[0]!;
    if (dropped === 0) return;
    this.dropped += dropped;
    for (let c = 0; c < CLASS_COUNT; c++) {
      const p = packed[1 + c]!;
      const r = packed[1 + CLASS_COUNT + c]!;
      this.pages[c] += p;
      this.ranges[c] += r;
      this.droppedPages[c] += p;
      this.droppedRangesByClass[c] += r;
    }
    this.lastEnd = -1; // the shard's dropped tail ends somewhere unknown: do not merge across it
  }

  toRanges(): ClassRange[] {
    return triplesToRanges(this.data, this.n);
  }
}

/** Flat [start, end, cls] triples → ClassRange objects (class codes → names). */
export function triplesToRanges(triples: Float64Array, count = Math.floor(triples.length / RANGE_TRIPLE)): ClassRange[] {
  const out: ClassRange[] = new Array(count);
  for (let r = 0; r < count; r++) {
    const i = r * RANGE_TRIPLE;
    const code = triples[i + 2]!;
    const cls = PFN_CLASS_NAMES[code];
    if (cls === undefined) throw new Error(`range ${r}: unknown class code ${code}`);
    out[r] = { start: triples[i]!, end: triples[i + 1]!, cls };
  }
  return out;
}

/** The guest side of one leaf. `page` is needed only for kind PAGE (null there = unreadable). */
export interface GuestLeafInput {
  kind: GuestLeafKind;
  page: Buffer | null;
  /** PAGE_FLAG_* bits of `page`; PAGE_FLAGS_UNKNOWN or absent = not computed */
  flags?: number;
}

/** The toolstack side of one leaf: `code` ≥ 0 = a location (page given), or a ToolLeaf.* code. */
export interface ToolLeafInput {
  code: number;
  page: Buffer | null;
  /** both views name the same frame: the pages are equal without a memcmp */
  samePage: boolean;
  /** PAGE_FLAG_* bits of `page`; PAGE_FLAGS_UNKNOWN or absent = not computed */
  flags?: number;
}

/** Scratch words for the rare page that cannot be viewed in place (misaligned, big-endian host). */
const gScratchWords = new Uint32Array(WORDS_PER_PAGE);
const tScratchWords = new Uint32Array(WORDS_PER_PAGE);

/** True when every entry's high word is 0: plain RAM with mfn < 2^32, no markers, no INVALID. */
function allHiWordsZero(w: Uint32Array): boolean {
  for (let i = HI_WORD; i < WORDS_PER_PAGE; i += WORDS_PER_ENTRY) {
    if (w[i] !== 0) return false;
  }
  return true;
}

/** Whether every entry of `page` is INVALID_P2M_ENTRY: from its flags when known, else a memcmp. */
function allInvalid(page: Buffer, flags: number | undefined): boolean {
  if (flags === undefined || flags === PAGE_FLAGS_UNKNOWN) return Buffer.compare(page, ALL_INVALID_PAGE) === 0;
  return (flags & PAGE_FLAG_ALL_INVALID) !== 0;
}

/**
 * Classify the 512 pfns of the leaf starting at `firstPfn` and append the ranges to `out`.
 * `tBoundPfn` is the toolstack bound (a count: pfns < tBoundPfn are covered by its walk).
 *
 * Rules (g = guest entry, t = toolstack entry):
 *  - guest leaf PAGE with no page → unreadable (whole leaf);
 *  - g foreign → foreign (t not consulted);
 *  - g identity (bit 62, or guest leaf IDENTITY) / g missing (INVALID, or guest leaf MISSING):
 *    not covered (pfn ≥ bound, BEYOND, SHARED_MISSING) or t invalid → identity / missing, t an mfn → stale;
 *  - g RAM(m): not covered → uncovered; t invalid → lost; t ≠ m → mismatch; else ram;
 *  - a covered pfn whose t is needed but the tool page is absent (ABSENT, or no page) → unreadable.
 * `g.flags` / `t.flags`, when given, must be the pages' PAGE_FLAG_* bits; they only spare the scans.
 */
export function classifyLeaf(
  firstPfn: number,
  g: GuestLeafInput,
  t: ToolLeafInput,
  tBoundPfn: number,
  out: RangeSink,
): void {
  const end = firstPfn + P2M_PER_PAGE;
  if (g.kind === GuestLeaf.PAGE && g.page === null) {
    out.add(firstPfn, end, PfnClass.UNREADABLE);
    return;
  }
  const notCovered = t.code === ToolLeaf.BEYOND || t.code === ToolLeaf.SHARED_MISSING;
  // pfns [firstPfn, coveredEnd) are inside the toolstack's reach for this leaf
  const coveredEnd = notCovered ? firstPfn : Math.min(end, Math.max(firstPfn, tBoundPfn));
  const tPage = t.code >= 0 ? t.page : null;
  const tAbsent = !notCovered && tPage === null; // ABSENT, or a location whose page could not be read

  if (g.kind !== GuestLeaf.PAGE) {
    const benign: PfnClassCode = g.kind === GuestLeaf.IDENTITY ? PfnClass.IDENTITY : PfnClass.MISSING;
    if (coveredEnd === firstPfn || (tPage !== null && allInvalid(tPage, t.flags))) {
      out.add(firstPfn, end, benign);
      return;
    }
    if (tAbsent) {
      out.add(firstPfn, coveredEnd, PfnClass.UNREADABLE);
      out.add(coveredEnd, end, benign);
      return;
    }
    const tw = pageWords(tPage!, tScratchWords);
    const n = coveredEnd - firstPfn;
    let runStart = firstPfn;
    let runCls: number = -1;
    for (let i = 0, hi = HI_WORD; i < n; i++, hi += WORDS_PER_ENTRY) {
      const cls = (tw[hi]! & TOOL_INVALID_HI) !== 0 ? benign : PfnClass.STALE;
      if (cls !== runCls) {
        if (runCls >= 0) out.add(runStart, firstPfn + i, runCls);
        runStart = firstPfn + i;
        runCls = cls;
      }
    }
    if (runCls >= 0) out.add(runStart, coveredEnd, runCls);
    out.add(coveredEnd, end, benign);
    return;
  }

  const gp = g.page!;
  const gFlags = g.flags ?? PAGE_FLAGS_UNKNOWN;
  let gw: Uint32Array | null = null;
  // Fast paths: a leaf of plain RAM entries (every high word 0) equal on both sides, or not covered at all.
  // Known flags are tested first (a bit test spares the memcmp); unknown ones after it (a scan).
  if (
    (gFlags === PAGE_FLAGS_UNKNOWN || (gFlags & PAGE_FLAG_HI_WORDS_ZERO) !== 0) &&
    (coveredEnd === firstPfn || (tPage !== null && (t.samePage || Buffer.compare(gp, tPage) === 0)))
  ) {
    if (gFlags !== PAGE_FLAGS_UNKNOWN || allHiWordsZero((gw = pageWords(gp, gScratchWords)))) {
      out.add(firstPfn, coveredEnd, PfnClass.RAM);
      out.add(coveredEnd, end, PfnClass.UNCOVERED);
      return;
    }
  }

  gw ??= pageWords(gp, gScratchWords);
  const tw = tPage !== null ? (t.samePage ? gw : pageWords(tPage, tScratchWords)) : gw;
  let runStart = firstPfn;
  let runCls: number = -1;
  for (let i = 0, lo = 0; i < P2M_PER_PAGE; i++, lo += WORDS_PER_ENTRY) {
    const pfn = firstPfn + i;
    const glo = gw[lo]!;
    const ghi = gw[lo + HI_WORD]!;
    let cls: number;
    // guest-side type: benign code for identity/missing, or RAM
    let gBenign: number = -1;
    if (glo === INVALID_P2M_ENTRY_WORD && ghi === INVALID_P2M_ENTRY_WORD) gBenign = PfnClass.MISSING;
    else if ((ghi & FOREIGN_FRAME_HI) !== 0) gBenign = PfnClass.FOREIGN;
    else if ((ghi & IDENTITY_FRAME_HI) !== 0) gBenign = PfnClass.IDENTITY;

    if (gBenign === PfnClass.FOREIGN) {
      cls = PfnClass.FOREIGN;
    } else if (pfn >= coveredEnd) {
      cls = gBenign >= 0 ? gBenign : PfnClass.UNCOVERED;
    } else if (tAbsent) {
      cls = PfnClass.UNREADABLE;
    } else {
      const tlo = tw[lo]!;
      const thi = tw[lo + HI_WORD]!;
      const tInvalid = (thi & TOOL_INVALID_HI) !== 0;
      if (gBenign >= 0) cls = tInvalid ? gBenign : PfnClass.STALE;
      else if (tInvalid) cls = PfnClass.LOST;
      else if (tlo !== glo || thi !== ghi) cls = PfnClass.MISMATCH;
      else cls = PfnClass.RAM;
    }
    if (cls !== runCls) {
      if (runCls >= 0) out.add(runStart, pfn, runCls);
      runStart = pfn;
      runCls = cls;
    }
  }
  out.add(runStart, end, runCls);
}

/**
 * One shard's leaves, as the main thread hands them over. Locations are file offsets (worker) or
 * frame numbers (in process); a negative guest location means "no page"; a negative tool location
 * is a ToolLeaf.* code.
 */
export interface ShardLeaves {
  firstLeaf: number;
  /** per leaf of the shard (index 0 = firstLeaf): GuestLeaf.* */
  gKinds: Uint8Array;
  gLocs: Float64Array;
  tLocs: Float64Array;
  tBoundPfn: number;
  /** location of the guest's shared p2m_missing / p2m_identity page, −1 when unknown */
  missingLoc: number;
  identityLoc: number;
}

/** Where the pages come from. A returned buffer must stay valid until the next call for the same side. */
export interface LeafPageSource {
  guestPage(leafIndex: number, loc: number): Buffer | null;
  toolPage(leafIndex: number, loc: number): Buffer | null;
  /** PAGE_FLAG_* bits of the page the last guestPage / toolPage call returned, or PAGE_FLAGS_UNKNOWN;
   * a source without them leaves the scans to classifyLeaf */
  guestFlags?(): number;
  toolFlags?(): number;
}

const UNKNOWN = -1;
const NO = 0;
const YES = 1;

/** Run classifyLeaf over every leaf of a shard (shared by the worker and auditInProcess), passing on
 * the source's page flags when it has them. */
export function classifyShard(sh: ShardLeaves, src: LeafPageSource, out: RangeSink): void {
  const g: GuestLeafInput = { kind: GuestLeaf.PAGE, page: null, flags: PAGE_FLAGS_UNKNOWN };
  const t: ToolLeafInput = { code: ToolLeaf.BEYOND, page: null, samePage: false, flags: PAGE_FLAGS_UNKNOWN };
  // Whether the shared missing / identity page (as the toolstack reaches it) is all INVALID: read once.
  let missingAllInvalid = UNKNOWN;
  let identityAllInvalid = UNKNOWN;
  const n = sh.gKinds.length;
  for (let i = 0; i < n; i++) {
    const firstPfn = (sh.firstLeaf + i) * P2M_PER_PAGE;
    const kind = sh.gKinds[i]! as GuestLeafKind;
    const gLoc = sh.gLocs[i]!;
    const tLoc = sh.tLocs[i]!;
    g.kind = kind;
    g.page = null;
    g.flags = PAGE_FLAGS_UNKNOWN;
    t.code = tLoc;
    t.page = null;
    t.samePage = false;
    t.flags = PAGE_FLAGS_UNKNOWN;
    if (kind === GuestLeaf.PAGE) {
      g.page = gLoc >= 0 ? src.guestPage(i, gLoc) : null;
      if (g.page === null) {
        classifyLeaf(firstPfn, g, t, sh.tBoundPfn, out);
        continue;
      }
      g.flags = src.guestFlags?.() ?? PAGE_FLAGS_UNKNOWN;
    }
    const needTool = tLoc >= 0 && firstPfn < sh.tBoundPfn;
    if (!needTool) {
      // not covered (or a code): the page is never consulted
    } else if (kind === GuestLeaf.PAGE && gLoc === tLoc) {
      t.page = g.page;
      t.samePage = true;
      t.flags = g.flags;
    } else if (kind !== GuestLeaf.PAGE && (tLoc === sh.missingLoc || tLoc === sh.identityLoc)) {
      const isMissing = tLoc === sh.missingLoc;
      const known = isMissing ? missingAllInvalid : identityAllInvalid;
      if (known === YES) {
        t.page = ALL_INVALID_PAGE;
        t.flags = PAGE_FLAG_ALL_INVALID;
      } else {
        t.page = src.toolPage(i, tLoc);
        if (t.page !== null) t.flags = src.toolFlags?.() ?? PAGE_FLAGS_UNKNOWN;
        if (known === UNKNOWN && t.page !== null) {
          const v = allInvalid(t.page, t.flags) ? YES : NO;
          if (isMissing) missingAllInvalid = v;
          else identityAllInvalid = v;
        }
      }
    } else {
      t.page = src.toolPage(i, tLoc);
      if (t.page !== null) t.flags = src.toolFlags?.() ?? PAGE_FLAGS_UNKNOWN;
    }
    classifyLeaf(firstPfn, g, t, sh.tBoundPfn, out);
  }
}
