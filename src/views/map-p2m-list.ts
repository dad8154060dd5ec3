// Save-side linear p2m list walk: xen-project/xen tools/libs/guest/xg_sr_save_x86_pv.c map_p2m_list (identical at RELEASE-4.17.0 and RELEASE-4.22.0).
import { exactPfn, type ToolstackView } from './p2m-leaves.js';
import type { GuestImage } from '../formats/guest-image.js';
import { pageWords } from '../xen/page-words.js';
import { hex, L1_SHIFT, L2_SHIFT, L3_SHIFT, L4_SHIFT, PAGE_SHIFT, PAGE_SIZE, PT_LEVELS_64, PTE_PFN_MASK_HI, PTE_PFN_MASK_LO, PTE_SIZE, PTRS_PER_TABLE, XEN_VIRT_HOLE_END, XEN_VIRT_HOLE_START } from '../xen/abi.js';
import { archMaxPfnOf, effectiveMaxMfn, failedView, FPP, leafCount, maxMfnNote, toXenPfn, U64_BITS, UINT_BITS } from './map-p2m-tree.js';

/** Index bits per table level (log2 PTRS_PER_TABLE = 9). */
const TABLE_INDEX_BITS = Math.log2(PTRS_PER_TABLE);
/** Virtual-address bits a 4-level walk translates (48); bit 47 is the one canonical addresses sign-extend. */
const VA_BITS = L4_SHIFT + TABLE_INDEX_BITS;
/** map_p2m_list's `mask` for a 64-bit guest: 0x0000ffffffffffff. */
const VA_MASK = (1n << BigInt(VA_BITS)) - 1n;
/** The VA shift of each level's index (map_p2m_list's `shift = level * 9 + 3`), indexed by level. */
const LEVEL_SHIFT = [0, L1_SHIFT, L2_SHIFT, L3_SHIFT, L4_SHIFT];
/** u32 words per page-table entry (lo, then hi). */
const WORDS_PER_PTE = PTE_SIZE / Uint32Array.BYTES_PER_ELEMENT;
/** Multiplier from the high PTE word's frame bits to the frame number (2^(32 − PAGE_SHIFT)). */
const HI_FRAME_SCALE = 2 ** (32 - PAGE_SHIFT);
/** pfns one level-2 entry covers: an L1 table of PTRS_PER_TABLE leaves of fpp entries (2^18). */
const PFNS_PER_L2_ENTRY = BigInt(PTRS_PER_TABLE * FPP);

/** is_canonical_address: bits 63..47 all equal. */
export function isCanonical(va: bigint): boolean {
  const s = BigInt.asIntN(U64_BITS, va);
  return s >> BigInt(VA_BITS - 1) === s >> BigInt(U64_BITS - 1);
}

/** A 48-bit address as the canonical (sign-extended) u64, for messages. */
function canonicalOf(va48: bigint): bigint {
  return BigInt.asUintN(U64_BITS, BigInt.asIntN(VA_BITS, va48));
}

/** Why [start, end] is a "Bad virtual p2m address range" for a 64-bit guest, or null when it is fine. */
export function vaddrRangeProblem(start: bigint, end: bigint): string | null {
  if (!isCanonical(start)) return `its start ${hex(start)} is not canonical`;
  if (!isCanonical(end)) return `its end ${hex(end)} is not canonical`;
  if (end < start) return 'it wraps past the top of the address space';
  if (start <= XEN_VIRT_HOLE_END && end > XEN_VIRT_HOLE_START) {
    return `it overlaps Xen's hole ${hex(XEN_VIRT_HOLE_START)}–${hex(XEN_VIRT_HOLE_END)}`;
  }
  return null;
}

/** One level's index into its tables mapped back to back: ((va − off) & mask) >> shift, as an unsigned int. */
function levelIndex(va: bigint, off: bigint, shift: number): number {
  const rel = BigInt.asUintN(U64_BITS, va - off) & VA_MASK;
  return Number(BigInt.asUintN(UINT_BITS, rel >> BigInt(shift)));
}

/** p2m_end = p2m_vaddr + p2m_frames · PAGE_SIZE − 1 (u64 arithmetic). */
function listEnd(vaddr: bigint, p2mFrames: bigint): bigint {
  return BigInt.asUintN(U64_BITS, vaddr + p2mFrames * BigInt(PAGE_SIZE) - 1n);
}

/** p2m_frames is an unsigned int: (max_pfn / fpp + 1) truncated to 32 bits. */
function framesFor(maxPfn: bigint): bigint {
  return BigInt.asUintN(UINT_BITS, maxPfn / BigInt(FPP) + 1n);
}

/** Frames read from one level: entry idxStart + i at frames[i]. */
interface LevelRead {
  frames: Float64Array;
  absent: string | null;
  absentFrame?: number;
}

/**
 * Map the `tables` of one level back to back and take pte_to_frame of entries idxStart..idxEnd.
 * Every table page is read once; the first absent one stops the read (the save side's mapping fails).
 */
function readLevel(
  img: GuestImage,
  tables: Float64Array,
  idxStart: number,
  idxEnd: number,
  level: number,
  parentStart: number,
  structure: Set<number>,
): LevelRead {
  const frames = new Float64Array(idxEnd - idxStart + 1);
  for (let p = 0; p < tables.length; p++) {
    const frame = tables[p];
    const page = img.readFrame(frame);
    if (page === null) {
      const from = level === PT_LEVELS_64 ? 'named by arch.p2m_cr3' : `named by level-${level + 1} entry ${parentStart + p}`;
      return { frames: new Float64Array(0), absent: `frame ${hex(frame)} (level-${level} page table ${from}) is not in the image`, absentFrame: frame };
    }
    structure.add(frame);
    const base = p * PTRS_PER_TABLE;
    const first = Math.max(idxStart, base);
    const last = Math.min(idxEnd, base + PTRS_PER_TABLE - 1);
    if (first > last) continue;
    const words = pageWords(page);
    for (let idx = first, w = (first - base) * WORDS_PER_PTE; idx <= last; idx++, w += WORDS_PER_PTE) {
      frames[idx - idxStart] = (words[w + 1]! & PTE_PFN_MASK_HI) * HI_FRAME_SCALE + ((words[w]! & PTE_PFN_MASK_LO) >>> PAGE_SHIFT);
    }
  }
  return { frames, absent: null };
}

/** Position of the first frame that is 0 or above max_mfn (map_p2m_list's per-entry check), or −1. */
function firstBadFrame(frames: Float64Array, maxMfn: number): number {
  for (let i = 0; i < frames.length; i++) {
    const mfn = frames[i]!;
    if (mfn === 0 || mfn > maxMfn) return i;
  }
  return -1;
}

/** Where the trailing run of identical frames starts: map_p2m_list's saved_idx, relative to the level's first index. */
function trailingRunStart(frames: Float64Array): number {
  let i = frames.length - 1;
  while (i > 0 && frames[i - 1] === frames[i]) i--;
  return Math.max(0, i);
}

/**
 * map_p2m_list for a 64-bit guest: walk the page tables rooted at arch.p2m_cr3 over
 * [arch.p2m_vaddr, p2m_end] level 4 → 1; the level-1 frames are the leaf pages.
 * `maxPfn` is arch.max_pfn − 1 (a negative number or a bigint is taken modulo 2^64, as xen_pfn_t).
 */
export function mapP2mList(img: GuestImage, maxPfn: number | bigint): ToolstackView {
  let maxPfnX = toXenPfn(maxPfn);
  const archMaxPfn = archMaxPfnOf(maxPfnX);
  const maxMfn = effectiveMaxMfn(img);
  const structure = new Set<number>();
  const notes: string[] = [`list walk: max_pfn ${hex(maxPfnX)} (arch.max_pfn ${hex(archMaxPfn)} − 1)`, maxMfnNote(img, maxMfn)];
  const fail = (why: string, absent?: number): ToolstackView => failedView('list', archMaxPfn, why, structure, notes, absent);
  const arch = img.arch;

  const cr3 = arch.p2mCr3;
  const root = cr3 >> BigInt(PAGE_SHIFT);
  if (root === 0n) return fail(`arch.p2m_cr3 ${hex(cr3)} names root frame 0, which the save side asserts cannot happen`);
  if (root > BigInt(maxMfn)) return fail(`arch.p2m_cr3 ${hex(cr3)} names root frame ${hex(root)}, above max_mfn ${hex(maxMfn)}`);
  notes.push(`p2m_generation ${hex(arch.p2mGeneration)} (re-checked only between live-migration passes)`);

  const vaddr = arch.p2mVaddr;
  let p2mFrames = framesFor(maxPfnX);
  let p2mEnd = listEnd(vaddr, p2mFrames);
  const problem = vaddrRangeProblem(vaddr, p2mEnd);
  if (problem) return fail(`bad virtual p2m address range ${hex(vaddr)}-${hex(p2mEnd)}: ${problem}`);
  notes.push(`p2m list ${hex(vaddr)}-${hex(p2mEnd)} (${p2mFrames} frames), root frame ${hex(root)}`);

  let tables: Float64Array = Float64Array.of(Number(root));
  let off = 0n;
  let idxStart = 0;
  let idxEnd = 0;
  let untrimmedMaxPfn: number | bigint | null = null;
  let leaves: Float64Array = new Float64Array(0);
  for (let level = PT_LEVELS_64; level > 0; level--) {
    const shift = LEVEL_SHIFT[level];
    const parentStart = idxStart;
    idxStart = levelIndex(vaddr, off, shift);
    idxEnd = levelIndex(p2mEnd, off, shift);
    if (idxEnd < idxStart || idxEnd >= tables.length * PTRS_PER_TABLE) {
      return fail(`level-${level} index range ${idxStart}..${idxEnd} runs outside the ${tables.length} table pages mapped (the save side would read beyond its mapping)`);
    }
    const read = readLevel(img, tables, idxStart, idxEnd, level, parentStart, structure);
    if (read.absent !== null) return fail(read.absent, read.absentFrame);
    const frames = read.frames;
    // the per-entry loops are functions of their own: they run once per level (OSR-compiled on a 1 TiB
    // guest's 524,288 leaves), and code after an OSR-compiled loop that has never run deoptimises
    const bad = firstBadFrame(frames, maxMfn);
    if (bad >= 0) {
      const idx = idxStart + bad;
      const mfn = frames[bad]!;
      const va = canonicalOf(off + (BigInt(idx) << BigInt(shift)));
      const why = mfn === 0 ? 'frame 0' : `frame ${hex(mfn)}, above max_mfn ${hex(maxMfn)}`;
      const table = tables[Math.floor(idx / PTRS_PER_TABLE)];
      return fail(`level-${level} entry ${idx % PTRS_PER_TABLE} of table frame ${hex(table)} (vaddr ${hex(va)}) names ${why}`);
    }

    if (level === 2) {
      // saved_idx: the last entry that differs from its predecessor (every entry is non-zero here)
      let savedIdx = trailingRunStart(frames);
      // Same reasoning as the tree: a trailing run of identical L2 entries maps all-invalid leaves.
      // The save side compares the relative saved_idx with the absolute idx_end (xen-toolstack.md §8).
      const relativeLast = savedIdx === idxEnd - idxStart;
      if (savedIdx === idxEnd) savedIdx++;
      const trimmed = BigInt.asUintN(U64_BITS, BigInt(savedIdx) * PFNS_PER_L2_ENTRY - 1n);
      if (trimmed < maxPfnX) {
        untrimmedMaxPfn = exactPfn(maxPfnX);
        notes.push(`trimmed at level 2: the last run of identical entries starts at relative index ${savedIdx} of ${idxEnd - idxStart + 1}, so max_pfn drops from ${hex(maxPfnX)} to ${hex(trimmed)}`);
        if (relativeLast && idxStart !== 0) {
          notes.push(`the level-2 range starts at index ${idxStart}, so the save side's saved_idx == idx_end test misses that the last entry differs from its predecessor and drops it`);
        }
        maxPfnX = trimmed;
        p2mFrames = BigInt(leafCount(Number(maxPfnX)));
        p2mEnd = listEnd(vaddr, p2mFrames);
        idxEnd = (idxStart + savedIdx) >>> 0;
      }
    }

    tables = frames.subarray(0, idxEnd - idxStart + 1);
    leaves = tables;
    off = vaddr & ((VA_MASK >> BigInt(shift)) << BigInt(shift));
  }

  // With p2m_frames wrapped to 32 bits and no trimming, max_pfn can outrun the leaves the walk found.
  const needed = maxPfnX < BigInt(Number.MAX_SAFE_INTEGER) ? leafCount(Number(maxPfnX)) : Infinity;
  if (leaves.length < needed) {
    return fail(`max_pfn ${hex(maxPfnX)} needs more leaf pages than the ${leaves.length} the walk found (p2m_frames is a 32-bit count), so the save side would use a p2m larger than it mapped`);
  }
  if (leaves.length > needed) {
    notes.push(`p2m_vaddr ${hex(vaddr)} is not page-aligned: the walk found ${leaves.length} leaf pages, the save side indexes the first ${needed} from their page boundary`);
  }
  const max = Number(maxPfnX);
  notes.push(`${needed} leaf pages cover pfns 0..${hex(max)}`);
  return {
    method: 'list',
    archMaxPfn,
    maxPfn: max,
    leafFrames: leaves.slice(0, needed),
    failure: null,
    untrimmedMaxPfn,
    structureFrames: structure,
    notes,
  };
}
