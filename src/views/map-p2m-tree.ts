import { PADDR_BITS, MAX_MFN_ARCH } from '../xen/abi.js';
// Save-side p2m tree walk: xen-project/xen tools/libs/guest/xg_sr_save_x86_pv.c map_p2m_tree (identical at RELEASE-4.17.0 and RELEASE-4.22.0).
import { exactPfn, type ToolstackView } from './p2m-leaves.js';
import type { GuestImage } from '../formats/guest-image.js';
import { hex, P2M_ENTRY_SIZE, P2M_PER_PAGE, P2M_PFNS_PER_TOP } from '../xen/abi.js';

// ---- shared with map-p2m-list.ts and toolstack-view.ts-----------------------------------------

/** fpp = PAGE_SIZE / guest width: mfns per frame-list page, entries per leaf (64-bit guest: 512). */
export const FPP = P2M_PER_PAGE;

const U32_RANGE = 2 ** 32;
export const U64_BITS = 64;
/** Width of the save side's `unsigned int` counters (fll_entries, p2m_frames, idx_*). */
export const UINT_BITS = 32;

/** max_mfn as the save side would have it: the image's bound, else the architectural one. */
export function effectiveMaxMfn(img: GuestImage): number {
  return Number.isFinite(img.maxFrame) ? img.maxFrame : MAX_MFN_ARCH;
}

/** A caller's max_pfn as the save side's 64-bit xen_pfn_t (−1 is ~0, what arch.max_pfn = 0 gives). */
export function toXenPfn(maxPfn: number | bigint): bigint {
  if (typeof maxPfn === 'number' && !Number.isSafeInteger(maxPfn)) {
    throw new RangeError(`max_pfn ${maxPfn} is not a safe integer`);
  }
  return BigInt.asUintN(U64_BITS, BigInt(maxPfn));
}

/** arch.max_pfn that produces a given max_pfn (max_pfn = arch.max_pfn − 1, modulo 2^64). */
export function archMaxPfnOf(maxPfn: bigint): bigint {
  return BigInt.asUintN(U64_BITS, maxPfn + 1n);
}

/** The number a u64 (lo, hi) names; exact below 2^53, and any larger value is above every max_mfn. */
export function u64Value(lo: number, hi: number): number {
  return hi * U32_RANGE + lo;
}

/** Exact 0x-hex of a u64 given as words. */
export function u64Hex(lo: number, hi: number): string {
  return hex((BigInt(hi) << 32n) | BigInt(lo));
}

/** Leaf pages covering pfns [0, maxPfn]: floor(maxPfn / fpp) + 1. */
export function leafCount(maxPfn: number): number {
  return Math.floor(maxPfn / FPP) + 1;
}

/** The view the save side's failure leaves: nothing usable, the reason in one sentence. */
export function failedView(
  method: ToolstackView['method'],
  archMaxPfn: bigint,
  failure: string,
  structureFrames: Set<number>,
  notes: string[],
  absentFrame?: number,
): ToolstackView {
  return {
    method,
    archMaxPfn,
    maxPfn: -1,
    leafFrames: new Float64Array(0),
    failure,
    ...(absentFrame === undefined ? {} : { absentFrame }),
    untrimmedMaxPfn: null,
    structureFrames,
    notes,
  };
}

/** Note stating the bound every mfn check uses. */
export function maxMfnNote(img: GuestImage, maxMfn: number): string {
  return Number.isFinite(img.maxFrame)
    ? `max_mfn ${hex(maxMfn)} (the image's highest frame)`
    : `max_mfn unknown to the image: using ${hex(maxMfn)}, the highest frame PADDR_BITS = ${PADDR_BITS} allows`;
}

// ---- the tree walk --------------------------------------------------------------------------

/** u64 entries read from guest pages as words, entry i at lo[i] / hi[i]. */
interface Words {
  lo: Uint32Array;
  hi: Uint32Array;
}

/** Copy `count` u64 entries of a page starting at slot `first` into `out` from index `at`. */
function copyEntries(page: Buffer, first: number, count: number, out: Words, at: number): void {
  for (let i = 0; i < count; i++) {
    const off = (first + i) * P2M_ENTRY_SIZE;
    out.lo[at + i] = page.readUInt32LE(off);
    out.hi[at + i] = page.readUInt32LE(off + 4);
  }
}

/** Why entry value (lo, hi) is not a usable mfn for the save side, or null when it is. */
function badMfn(lo: number, hi: number, maxMfn: number): string | null {
  if (lo === 0 && hi === 0) return 'is 0';
  if (u64Value(lo, hi) > maxMfn) return `is ${u64Hex(lo, hi)}, above max_mfn ${hex(maxMfn)}`;
  return null;
}

/** Index where the last run of identical entries begins (saved_x; the scan starts from saved_mfn = 0). */
function lastRunStart(w: Words, count: number): number {
  let savedX = 0;
  let savedLo = 0;
  let savedHi = 0;
  for (let x = 0; x < count; x++) {
    if (w.lo[x] !== savedLo || w.hi[x] !== savedHi) {
      savedLo = w.lo[x];
      savedHi = w.hi[x];
      savedX = x;
    }
  }
  return savedX;
}

/**
 * map_p2m_tree for a 64-bit guest: FLL (arch.pfn_to_mfn_frame_list_list) → frame-list pages → leaves.
 * `maxPfn` is arch.max_pfn − 1 (a negative number or a bigint is taken modulo 2^64, as xen_pfn_t).
 */
export function mapP2mTree(img: GuestImage, maxPfn: number | bigint): ToolstackView {
  let maxPfnX = toXenPfn(maxPfn);
  const archMaxPfn = archMaxPfnOf(maxPfnX);
  const maxMfn = effectiveMaxMfn(img);
  const structure = new Set<number>();
  const notes: string[] = [`tree walk: max_pfn ${hex(maxPfnX)} (arch.max_pfn ${hex(archMaxPfn)} − 1)`, maxMfnNote(img, maxMfn)];
  const fail = (why: string, absent?: number): ToolstackView => failedView('tree', archMaxPfn, why, structure, notes, absent);
  const fppSquared = BigInt(P2M_PFNS_PER_TOP);

  // fll_entries is an unsigned int: the quotient is truncated to 32 bits before the bound check.
  const fllWide = maxPfnX / fppSquared + 1n;
  let fllEntries = Number(BigInt.asUintN(UINT_BITS, fllWide));
  if (BigInt(fllEntries) !== fllWide) {
    notes.push(`fll_entries ${hex(fllWide)} is truncated to the unsigned int ${hex(fllEntries)} before the bound check`);
  }
  if (fllEntries > FPP) {
    return fail(`max_pfn ${hex(maxPfnX)} is too large for the p2m tree: it needs ${fllEntries} frame-list-list entries, more than the ${FPP} one page holds`);
  }
  if (fllEntries === 0) {
    return fail(`max_pfn ${hex(maxPfnX)} makes fll_entries wrap to 0, so the save side would read frame-list-list slot 0 from a zero-length copy (undefined behaviour)`);
  }

  const fllMfn = img.arch.pfnToMfnFrameListList;
  if (fllMfn === 0n) return fail('arch.pfn_to_mfn_frame_list_list is 0 (the guest has not set up its frame-list list)');
  if (fllMfn > BigInt(maxMfn)) {
    const hint = fllMfn === BigInt.asUintN(U64_BITS, -1n) ? ' (~0: the guest publishes only the linear list)' : '';
    return fail(`arch.pfn_to_mfn_frame_list_list ${hex(fllMfn)}${hint} is above max_mfn ${hex(maxMfn)}`);
  }
  const fllFrame = Number(fllMfn);
  const fllPage = img.readFrame(fllFrame);
  if (fllPage === null) return fail(`frame ${hex(fllFrame)} (frame-list-list page) is not in the image`, fllFrame);
  structure.add(fllFrame);

  const fll: Words = { lo: new Uint32Array(fllEntries), hi: new Uint32Array(fllEntries) };
  copyEntries(fllPage, 0, fllEntries, fll, 0);
  for (let x = 0; x < fllEntries; x++) {
    const bad = badMfn(fll.lo[x], fll.hi[x], maxMfn);
    if (bad) return fail(`frame-list-list entry ${x} (of ${fllEntries}) in frame ${hex(fllFrame)} ${bad}`);
  }

  // Trimming: a trailing run of identical FLL entries is taken to point at all-invalid mid pages.
  const savedX = lastRunStart(fll, fllEntries);
  const trimmed = BigInt((savedX + 1) * P2M_PFNS_PER_TOP - 1);
  let untrimmedMaxPfn: number | bigint | null = null;
  if (trimmed < maxPfnX) {
    untrimmedMaxPfn = exactPfn(maxPfnX);
    notes.push(`trimmed: the last run of identical frame-list-list entries starts at slot ${savedX}, so max_pfn drops from ${hex(maxPfnX)} to ${hex(trimmed)}`);
    maxPfnX = trimmed;
    fllEntries = savedX + 1;
  }
  // Here max_pfn < fll_entries · fpp² ≤ 2^27: a safe number.
  const max = Number(maxPfnX);
  const flEntries = leafCount(max);

  // All fll_entries frame-list pages are mapped back to back, then fl_entries mfns read from them.
  const fl: Words = { lo: new Uint32Array(flEntries), hi: new Uint32Array(flEntries) };
  for (let slot = 0; slot < fllEntries; slot++) {
    const frame = u64Value(fll.lo[slot], fll.hi[slot]);
    const page = img.readFrame(frame);
    if (page === null) return fail(`frame ${hex(frame)} (frame-list page for FLL slot ${slot}) is not in the image`, frame);
    structure.add(frame);
    const first = slot * FPP;
    copyEntries(page, 0, Math.min(FPP, flEntries - first), fl, first);
  }
  const leafFrames = new Float64Array(flEntries);
  for (let x = 0; x < flEntries; x++) {
    const bad = badMfn(fl.lo[x], fl.hi[x], maxMfn);
    if (bad) {
      return fail(`frame-list entry ${x} (FLL slot ${Math.floor(x / FPP)}, FL slot ${x % FPP}; of ${flEntries}) ${bad}`);
    }
    leafFrames[x] = u64Value(fl.lo[x], fl.hi[x]);
  }
  notes.push(`${fllEntries} frame-list pages, ${flEntries} leaf pages cover pfns 0..${hex(max)}`);
  return { method: 'tree', archMaxPfn, maxPfn: max, leafFrames, failure: null, untrimmedMaxPfn, structureFrames: structure, notes };
}
