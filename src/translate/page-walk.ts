// x86-64 4-level page walk over an image's frame space.
//
// Follows the IA-32e paging rules of the Intel SDM vol. 3A §4.5 (4-level paging: PML4 → PDPT → PD → PT,
// 9 index bits per level, PS bit at the PDPT/PD level selecting a 1 GiB/2 MiB page) and the entry
// layout Linux names in arch/x86/include/asm/pgtable_types.h (_PAGE_PRESENT, _PAGE_PSE, PTE_PFN_MASK).
// Levels are numbered as Xen and Linux do: L4 = PML4 (the table cr3 names) … L1 = the PTE page.
//
// Conventions:
//  * Frames named in entries are taken to be in the image's frame space (bits 12..51 of the entry),
//    so the same code walks machine frames (dump-core, snapshots) and pfns (save streams).
//  * Entries are read as two u32 words (low word first); no BigInt touches the per-entry loop.
//  * Flag bits other than P and PS are ignored (RW/US/NX/A/D/PAT do not change which frame is named);
//    bits 52..63 are masked away with PTE_PFN_MASK. In a large leaf the frame bits below the leaf's
//    alignment (PAT bit 12 and the reserved bits) are ignored, as the MMU does: a 2 MiB leaf names
//    a 512-frame aligned run, a 1 GiB leaf a 262144-frame aligned run.
//  * PS in an L4 entry is reserved on x86-64 (SDM §4.5.4): the walk reports it as a failure.
//  * A walk reads at most PT_LEVELS_64 tables, so it always terminates. A table entry that names a
//    table already on the path (a loop, e.g. L4[i] → the L4 page itself) is followed exactly as the
//    MMU would (the "recursive mapping" trick): that page is simply read again as the next lower
//    level's table, and the walk still stops after the L1 entry. The result is therefore defined
//    and is the hardware's result (a loop at every level makes the page tables readable as data).
//  * Failures carry the level of the table being read (4..1), that table's frame and the entry index.
//    Level 0 means the failure is not at a table: a non-canonical VA (tableFrame −1) or, for
//    readVirt, a data frame absent from the image (tableFrame is that data frame). index is −1 then.
import { _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_PSE, _PAGE_RW, L1_SHIFT, L2_SHIFT, L3_SHIFT, L4_SHIFT, PAGE_SHIFT, PAGE_SIZE, PT_LEVELS_64, PTE_PFN_MASK_HI, PTE_PFN_MASK_LO, PTE_SIZE, PTRS_PER_TABLE, SIZE_1G, SIZE_2M, SIZE_4K, hex } from '../xen/abi.js';
import { pageWords } from '../xen/page-words.js';

/** Anything that hands out 4 KiB frames (every GuestImage does). The buffer may be reused by the next call. */
export type FrameReader = { readFrame(frame: number): Buffer | null };

/** Tables a TableCache keeps per level: the kernel's variables (kernel-image mapping) and the pages they
 * point to (direct map, vmalloc) sit under different upper tables, and a walk alternates between them. */
const TABLES_PER_LEVEL = 2;

/**
 * A FrameReader that keeps the last TABLES_PER_LEVEL table pages each level of translate() read, as
 * private copies (at most 8 pages): walks of neighbouring addresses (a mid page's 512 leaf pointers, a
 * symbol's u64s) re-read no table they share. Data frames and every first read of a table go to the inner
 * reader, so the set of frames it is asked for is the same as without the cache. Valid while the frames do
 * not change.
 */
export class TableCache implements FrameReader {
  /** per level × slot, most recently used slot first: the table's frame (−1 = empty) … */
  private readonly frames = new Float64Array((PT_LEVELS_64 + 1) * TABLES_PER_LEVEL).fill(-1);
  /** … whether the image has it … */
  private readonly present = new Uint8Array((PT_LEVELS_64 + 1) * TABLES_PER_LEVEL);
  /** … and the private copy of it (made on first use; moves with its slot) */
  private readonly copies: (Buffer | undefined)[] = new Array<Buffer | undefined>((PT_LEVELS_64 + 1) * TABLES_PER_LEVEL);

  /**
   * The L1 table the last walk through this cache reached, and what it was reached from: the top table and
   * the VA's bits above the L1 index (one 2 MiB region). A walk in the same region from the same top table
   * goes through the same L4..L2 entries (the frames do not change), so it starts at that L1 table.
   */
  readonly lastL1 = { cr3: -1, hi: -1, region: -1, frame: -1 };

  constructor(private readonly inner: FrameReader) {}

  readFrame(frame: number): Buffer | null {
    return this.inner.readFrame(frame);
  }

  /** The table page at `frame` read as level `level` (null when absent), from the cache when it is one of the last ones. */
  table(level: number, frame: number): Buffer | null {
    const at = level * TABLES_PER_LEVEL;
    let slot = 0;
    while (slot < TABLES_PER_LEVEL && this.frames[at + slot] !== frame) slot++;
    if (slot === TABLES_PER_LEVEL) {
      // replace the least recently used slot
      slot = TABLES_PER_LEVEL - 1;
      const page = this.inner.readFrame(frame);
      this.frames[at + slot] = frame;
      this.present[at + slot] = page === null ? 0 : 1;
      if (page !== null) page.copy((this.copies[at + slot] ??= Buffer.allocUnsafe(PAGE_SIZE)), 0, 0, PAGE_SIZE);
    }
    // move it to the front, the slots before it one back
    const present = this.present[at + slot]!;
    const copy = this.copies[at + slot];
    for (; slot > 0; slot--) {
      this.frames[at + slot] = this.frames[at + slot - 1]!;
      this.present[at + slot] = this.present[at + slot - 1]!;
      this.copies[at + slot] = this.copies[at + slot - 1];
    }
    this.frames[at] = frame;
    this.present[at] = present;
    this.copies[at] = copy;
    return present ? copy! : null;
  }
}

function readTable(img: FrameReader, level: number, frame: number): Buffer | null {
  return img instanceof TableCache ? img.table(level, frame) : img.readFrame(frame);
}

export interface Translation {
  /** the 4 KiB frame (image frame space) holding the byte at the VA */
  frame: number;
  /** byte offset of the VA inside that 4 KiB frame */
  offset: number;
  /** size of the leaf that mapped it */
  pageSize: 4096 | 2097152 | 1073741824;
}

export type WalkFailure = { error: string; level: number; tableFrame: number; index: number };

type PageSize = Translation['pageSize'];

// ---- derived geometry -------------------------------------------------------------------------
/** Bits of VA one table level resolves (log2 PTRS_PER_TABLE = 9). */
const INDEX_BITS = 31 - Math.clz32(PTRS_PER_TABLE);
/** Mask of one table index. */
const INDEX_MASK = PTRS_PER_TABLE - 1;
/** Implemented linear-address bits with 4-level paging: 48. */
const VA_BITS = L4_SHIFT + INDEX_BITS;
/** Width of one entry word. */
const WORD_BITS = 32;
export const WORD_BYTES = PTE_SIZE / 2;
/** Multiplier turning the high entry word's address bits into frame-number bits (2^20). */
export const HI_WORD_FRAME_SCALE = 2 ** (WORD_BITS - PAGE_SHIFT);
/** u32 words per page-table entry (lo, then hi). */
const WORDS_PER_PTE = PTE_SIZE / WORD_BYTES;
/** 2^64: the first value that is not a 64-bit address. */
const VA_LIMIT = 1n << 64n;
/** Mask of the implemented VA bits, and the sign-extension boundary values. */
export const VA_MASK = (1n << BigInt(VA_BITS)) - 1n;
const CANONICAL_SIGN_SHIFT = BigInt(VA_BITS - 1);
/** bits 63..47 all ones */
const CANONICAL_HIGH_TOP = (1n << BigInt(64 - (VA_BITS - 1))) - 1n;
const PAGE_SIZE_N = BigInt(PAGE_SIZE);
/** The same boundaries as page numbers (VA / 4 KiB): 2^64, the end of the lower half (2^47), the upper half's start, 2^48. */
const PAGE_LIMIT = 2 ** (64 - PAGE_SHIFT);
const LOWER_HALF_PAGES = 2 ** (VA_BITS - 1 - PAGE_SHIFT);
const UPPER_HALF_FIRST_PAGE = PAGE_LIMIT - LOWER_HALF_PAGES;
const PAGES_PER_VA48 = 2 ** (VA_BITS - PAGE_SHIFT);

/** VA shift of each level's index, by level number (index 0 unused: the byte offset). */
const LEVEL_SHIFT = [PAGE_SHIFT, L1_SHIFT, L2_SHIFT, L3_SHIFT, L4_SHIFT];
/** Bytes one entry at each level spans (level 1: 4 KiB … level 4: 512 GiB). */
const LEVEL_SPAN = LEVEL_SHIFT.map((s) => 2 ** s);
/** 4 KiB frames in a 2 MiB and a 1 GiB leaf. */
export const FRAMES_PER_2M = SIZE_2M / SIZE_4K;
export const FRAMES_PER_1G = SIZE_1G / SIZE_4K;

// ---- entry helpers ----------------------------------------------------------------------------
/** Frame named by an entry given as its two words (bits 12..51 of the entry). */
export function entryFrame(lo: number, hi: number): number {
  return (hi & PTE_PFN_MASK_HI) * HI_WORD_FRAME_SCALE + ((lo & PTE_PFN_MASK_LO) >>> PAGE_SHIFT);
}

/** Index of the entry covering a 48-bit VA (as a number) in the table of `level`. */
export function levelIndex(v48: number, level: number): number {
  return Math.floor(v48 / LEVEL_SPAN[level]!) % PTRS_PER_TABLE;
}

export function isCanonical(va: bigint): boolean {
  if (va < 0n || va >= VA_LIMIT) return false;
  const top = va >> CANONICAL_SIGN_SHIFT;
  return top === 0n || top === CANONICAL_HIGH_TOP;
}

function nonCanonical(va: bigint): WalkFailure {
  const why = va < 0n || va >= VA_LIMIT ? 'is not a 64-bit address' : `is not canonical (bits 63..${VA_BITS - 1} differ)`;
  return { error: `VA ${hex(va)} ${why}`, level: 0, tableFrame: -1, index: -1 };
}

function failure(error: string, level: number, tableFrame: number, index: number): WalkFailure {
  return { error, level, tableFrame, index };
}

export function isWalkFailure(x: Translation | WalkFailure): x is WalkFailure {
  return (x as WalkFailure).error !== undefined;
}

/** Why walk48 stopped short of a leaf: a table absent from the image, a non-present entry, PS in an L4 entry. */
const Stop = { NONE: 0, ABSENT: 1, NOT_PRESENT: 2, RESERVED_PS: 3 } as const;
type Stop = (typeof Stop)[keyof typeof Stop];

/**
 * Where the last walk48 ended: the leaf's 4 KiB frame and size, or the stop, the level, table and index it
 * stopped at. One object for the module, written only when a walk returns (a reader that translates
 * inside readFrame cannot tear it): the walk itself allocates nothing.
 */
const walked = { frame: 0, pageSize: SIZE_4K as PageSize, stop: Stop.NONE as Stop, level: 0, table: -1, index: -1 };

function stopAt(stop: Stop, level: number, table: number, index: number): false {
  walked.stop = stop;
  walked.level = level;
  walked.table = table;
  walked.index = index;
  return false;
}

/** Index of the entry covering a VA in the table of `level`, from the VA's two words (integer shifts only). */
function wordIndex(lo: number, hi: number, level: number): number {
  const shift = LEVEL_SHIFT[level]!;
  if (shift >= WORD_BITS) return (hi >>> (shift - WORD_BITS)) & INDEX_MASK;
  return ((lo >>> shift) | (shift + INDEX_BITS > WORD_BITS ? hi << (WORD_BITS - shift) : 0)) & INDEX_MASK;
}

/**
 * The page walk of a VA's low 48 bits given as two words (`hi` holding bits 32..47; the canonical check is
 * the caller's): true and `walked` holds the 4 KiB frame, or false and `walked` says where it stopped.
 */
function walk48(img: FrameReader, cr3Frame: number, lo: number, hi: number): boolean {
  let table = cr3Frame;
  let top = PT_LEVELS_64;
  const memo = img instanceof TableCache ? img.lastL1 : null;
  const region = lo >>> L2_SHIFT;
  if (memo !== null && memo.cr3 === cr3Frame && memo.hi === hi && memo.region === region) {
    table = memo.frame;
    top = 1;
  }
  for (let level = top; level >= 1; level--) {
    const idx = wordIndex(lo, hi, level);
    if (level === 1 && memo !== null) {
      memo.cr3 = cr3Frame;
      memo.hi = hi;
      memo.region = region;
      memo.frame = table;
    }
    const page = readTable(img, level, table);
    if (page === null) return stopAt(Stop.ABSENT, level, table, idx);
    const elo = page.readUInt32LE(idx * PTE_SIZE);
    const ehi = page.readUInt32LE(idx * PTE_SIZE + WORD_BYTES);
    if ((elo & _PAGE_PRESENT) === 0) return stopAt(Stop.NOT_PRESENT, level, table, idx);
    const named = entryFrame(elo, ehi);
    if (level === 1) {
      walked.frame = named;
      walked.pageSize = SIZE_4K as PageSize;
      return true;
    }
    if ((elo & _PAGE_PSE) !== 0) {
      if (level === PT_LEVELS_64) return stopAt(Stop.RESERVED_PS, level, table, idx);
      const perLeaf = level === 3 ? FRAMES_PER_1G : FRAMES_PER_2M;
      // the 4 KiB frame within the leaf: the VA's page bits below the leaf's span (≤ 1 GiB: all in the low word)
      walked.frame = named - (named % perLeaf) + ((lo >>> PAGE_SHIFT) & (perLeaf - 1));
      walked.pageSize = (level === 3 ? SIZE_1G : SIZE_2M) as PageSize;
      return true;
    }
    table = named;
  }
  // unreachable: level 1 always returns
  return stopAt(Stop.ABSENT, 0, -1, -1);
}

/**
 * VA → (4 KiB frame holding it, byte offset in that frame). 2 MiB and 1 GiB leaves (PSE at L2/L3)
 * give the right 4K frame inside the big page. Non-canonical VA, non-present entry, PSE in an L4 entry,
 * absent table frame → failure (never throws). Through a TableCache, tables read by the previous walk at
 * the same level are not read again.
 */
export function translate(img: FrameReader, cr3Frame: number, va: bigint): Translation | WalkFailure {
  if (!isCanonical(va)) return nonCanonical(va);
  const lo = Number(va & LO_WORD_MASK);
  if (walk48(img, cr3Frame, lo, Number((va >> WORD_SHIFT_N) & HI_VA_MASK_N))) return { frame: walked.frame, offset: lo % PAGE_SIZE, pageSize: walked.pageSize };
  const { stop, level, table, index } = walked;
  if (level === 0) return failure('walk did not reach a leaf', 0, -1, -1);
  if (stop === Stop.ABSENT) return failure(`L${level} table frame ${hex(table)} is absent from the image (walking VA ${hex(va)})`, level, table, index);
  if (stop === Stop.NOT_PRESENT) return failure(`L${level} entry ${index} of table ${hex(table)} is not present (walking VA ${hex(va)})`, level, table, index);
  return failure(`L4 entry ${index} of table ${hex(table)} has the reserved PS bit set (walking VA ${hex(va)})`, level, table, index);
}

/** Bits 63..47 of a canonical VA, as they sit in its high word (bits 31..15): all clear or all set. */
const HI_SIGN_SHIFT = VA_BITS - 1 - WORD_BITS;
const HI_SIGN_ALL = 2 ** (WORD_BITS - HI_SIGN_SHIFT) - 1;
/** The VA bits (32..47) a high word contributes, and the same split for a BigInt VA. */
const HI_VA_MASK = 2 ** (VA_BITS - WORD_BITS) - 1;
const HI_VA_MASK_N = BigInt(HI_VA_MASK);
const LO_WORD_MASK = 0xffffffffn;
const WORD_SHIFT_N = BigInt(WORD_BITS);

/**
 * The 4 KiB frame holding the byte at the VA given as its two u32 words (low word first, as a pointer
 * sits in memory), or −1 when translate() would fail: translate's walk without a BigInt or an object per
 * call, for loops over pointer pages (a p2m mid page's 512 leaf pointers).
 */
export function frameOfVaWords(img: FrameReader, cr3Frame: number, lo: number, hi: number): number {
  const sign = hi >>> HI_SIGN_SHIFT;
  if (sign !== 0 && sign !== HI_SIGN_ALL) return -1;
  return walk48(img, cr3Frame, lo >>> 0, hi & HI_VA_MASK) ? walked.frame : -1;
}

/**
 * Walk `count` consecutive 4 KiB pages from page-aligned `va`, calling visit(i, frame, l1TableFrame)
 * once per page, in order. frame is −1 for a page that is not mapped (non-present entry at any level,
 * absent table frame, reserved PS at L4, non-canonical VA, or past 2^64). l1TableFrame is the PTE page
 * whose entry mapped the page, −1 for pages mapped by a 2 MiB/1 GiB leaf and for unmapped pages.
 *
 * Each table page is read once per run of pages it covers (the last table seen at each level is cached
 * in the walker's own copy, so a reader that reuses its buffer is safe and visit may read frames), and
 * a non-present L4/L3/L2 entry skips its whole span without further reads. Every step of the loop
 * consumes at least one page and reads at most four tables, so the cost is O(count) even when tables
 * form a cycle; results always equal per-page translate().
 *
 * With `repeat`, a run of pages mapped through the same PTE page, at the same entries, as the previous
 * run is reported as repeat(i, n, from) — pages i..i+n−1 map exactly as pages from..from+n−1 did —
 * instead of n visits: Linux ≥ 4.0 maps every all-missing or all-identity GiB of its p2m list through
 * one shared PTE page (p2m_missing_pte / p2m_identity_pte), so the area past RAM costs one call per GiB.
 * Throws RangeError for a va that is not a page-aligned 64-bit address or a count that is not a
 * non-negative integer.
 */
export function walkRange(
  img: FrameReader,
  cr3Frame: number,
  va: bigint,
  count: number,
  visit: (i: number, frame: number, l1TableFrame: number) => void,
  repeat?: (i: number, n: number, from: number) => void,
): void {
  if (va < 0n || va >= VA_LIMIT || va % PAGE_SIZE_N !== 0n) throw new RangeError(`walkRange: VA ${hex(va)} is not a page-aligned 64-bit address`);
  if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`walkRange: count ${count} is not a non-negative integer`);

  // Per-level cache of the last table read: frame number and a private copy (null = absent from image).
  const cachedFrame = [-1, -1, -1, -1, -1];
  const cachedPage: (Buffer | null)[] = [null, null, null, null, null];
  const copies = [0, 1, 2, 3, 4].map(() => Buffer.alloc(PAGE_SIZE));
  const load = (level: number, frame: number): Buffer | null => {
    if (cachedFrame[level] !== frame) {
      const page = img.readFrame(frame);
      cachedFrame[level] = frame;
      if (page === null) {
        cachedPage[level] = null;
      } else {
        const copy = copies[level]!;
        page.copy(copy, 0, 0, PAGE_SIZE);
        cachedPage[level] = copy;
      }
    }
    return cachedPage[level]!;
  };

  // the last run of pages visited through a PTE page: its frame, first entry, length and first page index
  const lastRun = { table: -1, idx: 0, n: 0, i: 0 };
  let i = 0;
  // the walk's position as a page number (VA / 4 KiB < 2^52: an exact double, no BigInt in the loop)
  let page = Number(va / PAGE_SIZE_N);
  /** report `n` unmapped pages and advance */
  const skip = (n: number): void => {
    for (let k = 0; k < n; k++) visit(i + k, -1, -1);
    i += n;
    page += n;
  };
  /** pages from v48 to the end of the span of a level-`level` entry, capped by what remains */
  const pagesToSpanEnd = (v48: number, level: number): number => {
    const span = LEVEL_SPAN[level]!;
    const left = (span - (v48 % span)) / PAGE_SIZE;
    return Math.min(left, count - i);
  };

  while (i < count) {
    if (page >= PAGE_LIMIT) {
      skip(count - i);
      break;
    }
    if (page >= LOWER_HALF_PAGES && page < UPPER_HALF_FIRST_PAGE) {
      // in the hole between the halves: jump to the upper half
      skip(Math.min(UPPER_HALF_FIRST_PAGE - page, count - i));
      continue;
    }
    const v48 = (page % PAGES_PER_VA48) * PAGE_SIZE;

    let table = cr3Frame;
    let mappedBy = -1; // level of the leaf that maps the page, or -1 when unmapped
    let failedLevel = -1;
    let named = 0;
    for (let level = PT_LEVELS_64; level >= 1; level--) {
      const page = load(level, table);
      if (page === null) {
        // the table for this level is absent: everything the entry above it spans is unmapped
        failedLevel = Math.min(level + 1, PT_LEVELS_64);
        break;
      }
      const idx = levelIndex(v48, level);
      if (level === 1) {
        mappedBy = 1;
        break;
      }
      const lo = page.readUInt32LE(idx * PTE_SIZE);
      const hi = page.readUInt32LE(idx * PTE_SIZE + WORD_BYTES);
      if ((lo & _PAGE_PRESENT) === 0 || (level === PT_LEVELS_64 && (lo & _PAGE_PSE) !== 0)) {
        failedLevel = level;
        break;
      }
      named = entryFrame(lo, hi);
      if ((lo & _PAGE_PSE) !== 0) {
        mappedBy = level;
        break;
      }
      table = named;
    }

    if (failedLevel >= 0) {
      skip(pagesToSpanEnd(v48, failedLevel));
      continue;
    }
    if (mappedBy === 1) {
      // run through the rest of this L1 table with plain numbers
      const n = pagesToSpanEnd(v48, 2);
      const firstIdx = levelIndex(v48, 1);
      if (repeat && table === lastRun.table && firstIdx >= lastRun.idx && firstIdx + n <= lastRun.idx + lastRun.n) {
        repeat(i, n, lastRun.i + (firstIdx - lastRun.idx));
      } else {
        lastRun.table = table;
        lastRun.idx = firstIdx;
        lastRun.n = n;
        lastRun.i = i;
        const pte = pageWords(cachedPage[1]!);
        let w = firstIdx * WORDS_PER_PTE;
        for (let k = 0; k < n; k++, w += WORDS_PER_PTE) {
          // `| 0`: an entry word with bit 31 set (frames ≥ 0x80000) would not fit the int32 V8 speculates on
          // for a Uint32Array load, and deoptimise the loop ("lost precision"); the bits are what count
          const lo = pte[w]! | 0;
          if ((lo & _PAGE_PRESENT) === 0) {
            visit(i + k, -1, -1);
          } else {
            visit(i + k, entryFrame(lo, pte[w + 1]! | 0), table);
          }
        }
      }
      i += n;
      page += n;
      if (repeat) {
        // the next entries of the same L2 table (same L4 and L3 entries) that name this PTE page again, each
        // spanning pages the last run covers: repeats, without walking down from the top for each 2 MiB
        const l2 = cachedPage[2]!;
        for (let idx2 = levelIndex(v48, 2) + 1; idx2 < PTRS_PER_TABLE && i < count; idx2++) {
          const lo = l2.readUInt32LE(idx2 * PTE_SIZE);
          if ((lo & (_PAGE_PRESENT | _PAGE_PSE)) !== _PAGE_PRESENT) break;
          if (entryFrame(lo, l2.readUInt32LE(idx2 * PTE_SIZE + WORD_BYTES)) !== lastRun.table) break;
          const n2 = Math.min(PTRS_PER_TABLE, count - i);
          if (lastRun.idx !== 0 || lastRun.n < n2) break;
          repeat(i, n2, lastRun.i);
          i += n2;
          page += n2;
        }
      }
      continue;
    }
    // a 2 MiB (level 2) or 1 GiB (level 3) leaf
    const perLeaf = mappedBy === 3 ? FRAMES_PER_1G : FRAMES_PER_2M;
    const base = named - (named % perLeaf);
    const first = Math.floor((v48 % LEVEL_SPAN[mappedBy]!) / PAGE_SIZE);
    const n = pagesToSpanEnd(v48, mappedBy);
    for (let k = 0; k < n; k++) visit(i + k, base + first + k, -1);
    i += n;
    page += n;
  }
}

/**
 * Read `len` bytes at a VA (may cross pages, each page translated on its own) or return the WalkFailure
 * of the first page that cannot be read (a data frame absent from the image gives level 0 with the
 * data frame as tableFrame). Throws RangeError for a len that is not a non-negative integer.
 */
export function readVirt(img: FrameReader, cr3Frame: number, va: bigint, len: number): Buffer | WalkFailure {
  if (!Number.isSafeInteger(len) || len < 0) throw new RangeError(`readVirt: length ${len} is not a non-negative integer`);
  const out = Buffer.alloc(len);
  let done = 0;
  while (done < len) {
    const at = va + BigInt(done);
    const t = translate(img, cr3Frame, at);
    if (isWalkFailure(t)) return t;
    const page = img.readFrame(t.frame);
    if (page === null) {
      return failure(`data frame ${hex(t.frame)} (VA ${hex(at)}) is absent from the image`, 0, t.frame, -1);
    }
    const n = Math.min(len - done, PAGE_SIZE - t.offset);
    page.copy(out, done, t.offset, t.offset + n);
    done += n;
  }
  return out;
}

/** Read a little-endian u64 at a VA (may straddle two pages). */
export function readVirtU64(img: FrameReader, cr3Frame: number, va: bigint): bigint | WalkFailure {
  // the usual u64 lies in one page: read it there, without readVirt's buffer
  const t = translate(img, cr3Frame, va);
  if (!isWalkFailure(t) && t.offset <= PAGE_SIZE - PTE_SIZE) {
    const page = img.readFrame(t.frame);
    if (page === null) return failure(`data frame ${hex(t.frame)} (VA ${hex(va)}) is absent from the image`, 0, t.frame, -1);
    return page.readBigUInt64LE(t.offset);
  }
  const b = readVirt(img, cr3Frame, va, PTE_SIZE);
  if (!Buffer.isBuffer(b)) return b;
  return b.readBigUInt64LE(0);
}

