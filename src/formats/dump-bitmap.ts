// The two page bitmaps of a makedumpfile compressed dump and the rank index over the 2nd, after crash diskdump.c (read_dump_header's valid_pages[] prefix counts per BITMAP_SECT_LEN pfns, pfn_to_pos, page_is_ram, page_is_dumpable) and makedumpfile.h is_on.
//
// The 1st bitmap marks the pfns that were memory (crash: page_is_ram), the 2nd the pfns whose page was
// dumped (page_is_dumpable); page_desc k belongs to the k-th set bit of the 2nd, so a pfn's descriptor
// index is its rank: the set bits below it. Bits are LSB-first in bytes, so as little-endian u32 words
// pfn p is bit (p & 31) of word p >> 5.
//
// Memory: the 1st bitmap is kept as its runs (the machine's RAM ranges: a handful; read in chunks, capped
// by the caller), the 2nd as words (max_mapnr / 8 bytes, read from the file, so bounded by it) plus one
// prefix count per RANK_BLOCK_PFNS pfns (1/64 of the words' size). A rank adds the popcount of at most
// RANK_BLOCK_WORDS words to a prefix count: nothing is allocated per pfn or per lookup.

/** pfns per prefix count (one p2m leaf's worth): a rank adds at most 16 word popcounts to it. */
export const RANK_BLOCK_PFNS = 512;
const WORD_BITS = 32;
const WORD_SHIFT = 5;
const WORD_MASK = WORD_BITS - 1;
const ALL_ONES = 0xffffffff;
export const RANK_BLOCK_WORDS = RANK_BLOCK_PFNS / WORD_BITS;

/** Set bits of a u32 (SWAR popcount, as Linux hweight32). */
export function popcount32(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  v = (v + (v >>> 4)) & 0x0f0f0f0f;
  return Math.imul(v, 0x01010101) >>> 24;
}

/** Little-endian u32 words of a bitmap's bytes (the last word zero-padded). */
export function bitmapWords(bytes: Uint8Array): Uint32Array {
  const words = new Uint32Array(Math.ceil(bytes.length / 4));
  new Uint8Array(words.buffer).set(bytes);
  return words;
}

/** A run of set bits: pfns [start, end). */
export interface BitRun {
  start: number;
  end: number;
}

/**
 * Runs of set bits of a bitmap fed in word chunks, in order. `add` returns false once more than `max`
 * runs were seen (the caller refuses the file; nothing more is kept).
 */
export class BitRunCollector {
  readonly runs: BitRun[] = [];
  private start = -1;
  private overflow = false;

  constructor(private readonly max: number) {}

  /** Words of the bitmap whose first bit is pfn `firstPfn` (a multiple of 32); bits ≥ limit are ignored. */
  add(words: Uint32Array, firstPfn: number, limit: number): boolean {
    for (let w = 0; w < words.length && !this.overflow; w++) {
      const base = firstPfn + w * WORD_BITS;
      if (base >= limit) break;
      let v = words[w]!;
      if (limit - base < WORD_BITS) v &= (1 << (limit - base)) - 1;
      // a whole word of the current state changes nothing
      if (v === 0 ? this.start < 0 : v === ALL_ONES && this.start >= 0) continue;
      for (let bit = 0; bit < WORD_BITS; bit++) {
        const on = ((v >>> bit) & 1) === 1;
        if (on && this.start < 0) this.start = base + bit;
        else if (!on && this.start >= 0) this.push(base + bit);
      }
    }
    return !this.overflow;
  }

  /** Close a run still open at `end`; false when the runs overflowed. */
  finish(end: number): boolean {
    if (this.start >= 0) this.push(end);
    return !this.overflow;
  }

  private push(end: number): void {
    if (this.runs.length === this.max) this.overflow = true;
    else this.runs.push({ start: this.start, end });
    this.start = -1;
  }
}

export class DumpBitmaps {
  /** dumped pfns below each RANK_BLOCK_PFNS boundary: prefix[b] = rank(b · RANK_BLOCK_PFNS) */
  private readonly prefix: Float64Array;
  private readonly runStart: Float64Array;
  private readonly runEnd: Float64Array;
  /** pfns in memory (1st bitmap) and dumped (2nd) below maxMapnr */
  readonly validCount: number;
  readonly dumpedCount: number;

  /**
   * `valid`: the 1st bitmap's runs, ascending and disjoint; `dumped`: the 2nd bitmap as words (bits at or
   * above maxMapnr are cleared here: the bitmap is padded to whole blocks, makedumpfile never sets them).
   */
  constructor(
    readonly valid: readonly BitRun[],
    private readonly dumped: Uint32Array,
    readonly maxMapnr: number,
  ) {
    const words = Math.ceil(maxMapnr / WORD_BITS);
    if (dumped.length < words) throw new Error(`a bitmap of ${dumped.length} words cannot hold ${maxMapnr} pfns`);
    const tail = maxMapnr & WORD_MASK;
    if (tail !== 0) dumped[words - 1]! &= (1 << tail) - 1;
    dumped.fill(0, words);
    this.runStart = Float64Array.from(valid, (r) => r.start);
    this.runEnd = Float64Array.from(valid, (r) => r.end);
    this.validCount = valid.reduce((n, r) => n + r.end - r.start, 0);
    const blocks = Math.ceil(maxMapnr / RANK_BLOCK_PFNS);
    this.prefix = new Float64Array(blocks + 1);
    let sum = 0;
    for (let b = 0; b < blocks; b++) {
      this.prefix[b] = sum;
      const end = Math.min(words, (b + 1) * RANK_BLOCK_WORDS);
      for (let w = b * RANK_BLOCK_WORDS; w < end; w++) sum += popcount32(dumped[w]!);
    }
    this.prefix[blocks] = sum;
    this.dumpedCount = sum;
  }

  /** pfn is in the 1st bitmap (was memory). */
  isValid(pfn: number): boolean {
    let lo = 0;
    let hi = this.runStart.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (pfn < this.runStart[mid]!) hi = mid - 1;
      else if (pfn >= this.runEnd[mid]!) lo = mid + 1;
      else return true;
    }
    return false;
  }

  /** pfn is in the 2nd bitmap (its page was dumped). */
  isDumped(pfn: number): boolean {
    return pfn >= 0 && pfn < this.maxMapnr && ((this.dumped[pfn >>> WORD_SHIFT]! >>> (pfn & WORD_MASK)) & 1) === 1;
  }

  /** Dumped pfns below `pfn` (0 ≤ pfn ≤ maxMapnr): the page_desc index of a dumped pfn. */
  rank(pfn: number): number {
    const block = Math.floor(pfn / RANK_BLOCK_PFNS);
    let r = this.prefix[block]!;
    const lastWord = Math.floor(pfn / WORD_BITS);
    for (let w = block * RANK_BLOCK_WORDS; w < lastWord; w++) r += popcount32(this.dumped[w]!);
    const below = pfn & WORD_MASK;
    if (below !== 0) r += popcount32(this.dumped[lastWord]! & ((1 << below) - 1));
    return r;
  }

  /** The lowest pfn dumped but not in memory (2nd bitmap outside the 1st), or −1: one pass over the words beside the runs. */
  firstDumpedNotValid(): number {
    let run = 0;
    const runs = this.runStart.length;
    for (let w = 0; w < this.dumped.length; w++) {
      const d = this.dumped[w]!;
      if (d === 0) continue;
      const base = w * WORD_BITS;
      while (run < runs && this.runEnd[run]! <= base) run++;
      // the word's bits covered by runs [run, …) that start before its end
      let covered = 0;
      for (let r = run; r < runs && this.runStart[r]! < base + WORD_BITS; r++) {
        const lo = Math.max(0, this.runStart[r]! - base);
        const hi = Math.min(WORD_BITS, this.runEnd[r]! - base);
        covered |= hi - lo === WORD_BITS ? ALL_ONES : ((1 << (hi - lo)) - 1) << lo;
      }
      const stray = d & ~covered;
      if (stray !== 0) return base + 31 - Math.clz32(stray & -stray);
    }
    return -1;
  }

  /** The highest pfn in memory, or −1. */
  highestValid(): number {
    const n = this.runEnd.length;
    return n === 0 ? -1 : this.runEnd[n - 1]! - 1;
  }
}
