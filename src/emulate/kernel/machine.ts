// Xen's side of a PV guest's memory: which machine frames back which pfns (the domain builder's
// initial allocation, xen/arch/x86/pv/dom0_build.c), plus a pool of free host frames for
// XENMEM_populate_physmap and Xen-owned pages. Frames come from a seeded generator in shuffled
// extents drawn from host RAM, so an mfn is never pfn + constant across the guest.
import type { E820Entry } from '../../inputs/e820.js';
import { E820_RAM, PAGE_SIZE } from '../../xen/abi.js';

/** splitmix32-style PRNG: deterministic per seed, good enough for layout choices. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    this.s = (this.s + 0x9e3779b9) >>> 0;
    let z = this.s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  }
  /** integer in [0, n) */
  below(n: number): number {
    return Math.floor((this.next() / 0x100000000) * n);
  }
}

/** A run of machine frames: pfns [pfn, pfn+len) ↔ mfns [mfn, mfn+len). */
interface Extent {
  pfn: number;
  mfn: number;
  len: number;
}

/** Largest extent the allocator hands out, in pages (Xen allocates dom0 in chunks up to this order). */
const MAX_EXTENT_ORDER = 14;
/** Host frames Xen keeps for itself below this frame (its image, heap start) and never gives dom0. */
const XEN_LOW_RESERVED_FRAMES = 0x100;
/** Hosts with at most this much RAM (256 GiB) are cut into extents all at once (the layout every seed always had). */
const WHOLE_HOST_PAGES = 2 ** 26;
/** On larger hosts extents are drawn a window at a time: twice the guest, and at least this many pages. */
const MIN_WINDOW_PAGES = 2 ** 20;

export class MachineMemory {
  /** initial allocation, sorted by pfn */
  private readonly pfnStart: Float64Array;
  private readonly mfnStart: Float64Array;
  private readonly extLen: Float64Array;
  /** host frames not given to the guest, as a stack of extents (for populate / Xen pages) */
  private free: { mfn: number; len: number }[];
  /** highest host RAM frame + 1 (XENMEM_maximum_ram_page) */
  readonly maxMfn: number;
  /** frames handed out after the initial allocation, mfn by pfn */
  private readonly extra = new Map<number, number>();
  private readonly rng: Rng;
  /** host RAM as frame ranges, and how far drawBlocks has cut them into extents */
  private readonly ram: { start: number; end: number }[] = [];
  private ramIndex = 0;
  private ramNext = 0;
  /** extents cut from host RAM so far (bounded by the guest's needs, not by the host's size) */
  blocksDrawn = 0;

  /**
   * Back pfns [0, nrPages) with machine frames taken from host RAM in shuffled power-of-two
   * extents. Throws when the host has too little RAM.
   */
  constructor(hostE820: E820Entry[], nrPages: number, seed: number) {
    this.rng = new Rng(seed);
    let maxMfn = 0;
    let total = 0;
    for (const e of hostE820) {
      if (e.type !== E820_RAM) continue;
      const s = Math.max(Math.ceil(e.addr / PAGE_SIZE), XEN_LOW_RESERVED_FRAMES);
      const end = Math.floor((e.addr + e.size) / PAGE_SIZE);
      maxMfn = Math.max(maxMfn, end);
      if (s < end) {
        this.ram.push({ start: s, end });
        total += end - s;
      }
    }
    this.ramNext = this.ram[0]?.start ?? 0;
    const blocks = this.drawBlocks(total <= WHOLE_HOST_PAGES ? total : Math.max(2 * nrPages, MIN_WINDOW_PAGES));
    const ext: Extent[] = [];
    let pfn = 0;
    let bi = 0;
    while (pfn < nrPages) {
      let b = blocks[bi++];
      if (!b) {
        for (const more of this.drawBlocks(Math.max(nrPages - pfn, MIN_WINDOW_PAGES))) blocks.push(more);
        b = blocks[bi - 1];
      }
      if (!b) throw new Error(`host RAM too small for ${nrPages} guest pages`);
      const len = Math.min(b.len, nrPages - pfn);
      ext.push({ pfn, mfn: b.mfn, len });
      if (len < b.len) blocks.push({ mfn: b.mfn + len, len: b.len - len });
      pfn += len;
    }
    this.pfnStart = Float64Array.from(ext, (e) => e.pfn);
    this.mfnStart = Float64Array.from(ext, (e) => e.mfn);
    this.extLen = Float64Array.from(ext, (e) => e.len);
    this.free = blocks.slice(bi);
    this.maxMfn = maxMfn;
  }

  /** The next extents of host RAM (in address order) covering at least `pages` pages, shuffled (Fisher–Yates). */
  private drawBlocks(pages: number): { mfn: number; len: number }[] {
    const blocks: { mfn: number; len: number }[] = [];
    let drawn = 0;
    while (drawn < pages && this.ramIndex < this.ram.length) {
      const r = this.ram[this.ramIndex]!;
      const len = Math.min(r.end - this.ramNext, 2 ** (4 + this.rng.below(MAX_EXTENT_ORDER - 3)));
      blocks.push({ mfn: this.ramNext, len });
      drawn += len;
      this.ramNext += len;
      if (this.ramNext >= r.end) {
        this.ramIndex++;
        this.ramNext = this.ram[this.ramIndex]?.start ?? 0;
      }
    }
    this.blocksDrawn += blocks.length;
    // machine order unrelated to pfn order
    for (let i = blocks.length - 1; i > 0; i--) {
      const j = this.rng.below(i + 1);
      const t = blocks[i]!;
      blocks[i] = blocks[j]!;
      blocks[j] = t;
    }
    return blocks;
  }

  /** The machine frame Xen gave pfn at build time (or later via populate), or -1. */
  mfnOf(pfn: number): number {
    const x = this.extra.get(pfn);
    if (x !== undefined) return x;
    const idx = this.extentIndex(pfn);
    return idx < 0 ? -1 : this.mfnStart[idx]! + (pfn - this.pfnStart[idx]!);
  }

  /** Fill `out[i]` with mfnOf(first + i) for i < count, fast for runs (used by lazily generated leaves). */
  fillMfns(first: number, count: number, out: (i: number, mfn: number) => void): void {
    let i = 0;
    while (i < count) {
      const pfn = first + i;
      const idx = this.extra.has(pfn) ? -1 : this.extentIndex(pfn);
      if (idx < 0) {
        out(i, this.mfnOf(pfn));
        i++;
        continue;
      }
      // inside an extent: emit the rest of the extent in one go
      const mfn = this.mfnStart[idx]! + (pfn - this.pfnStart[idx]!);
      const run = Math.min(count - i, this.pfnStart[idx]! + this.extLen[idx]! - pfn);
      for (let k = 0; k < run; k++) out(i + k, mfn + k);
      i += run;
    }
  }

  private extentIndex(pfn: number): number {
    let lo = 0;
    let hi = this.pfnStart.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const s = this.pfnStart[mid]!;
      if (pfn < s) hi = mid - 1;
      else if (pfn >= s + this.extLen[mid]!) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  /** XENMEM_populate_physmap of one page at pfn: a fresh host frame. */
  populate(pfn: number): number {
    const mfn = this.takeFree();
    this.extra.set(pfn, mfn);
    return mfn;
  }

  /** A host frame for a Xen-owned page (shared_info, start_info...). */
  xenPage(): number {
    return this.takeFree();
  }

  /** A remap moving pfn's frame away (the frame stays the guest's, at another pfn). */
  forget(pfn: number): void {
    this.extra.set(pfn, -1);
  }

  /** XENMEM_decrease_reservation: the frame goes back to Xen's heap, where populate may find it again. */
  release(pfn: number): void {
    const mfn = this.mfnOf(pfn);
    if (mfn >= 0) this.free.push({ mfn, len: 1 });
    this.extra.set(pfn, -1);
  }

  /** Record that pfn is now backed by mfn (remap targets). */
  assign(pfn: number, mfn: number): void {
    this.extra.set(pfn, mfn);
  }

  private takeFree(): number {
    if (this.free.length === 0) this.free = this.drawBlocks(MIN_WINDOW_PAGES);
    const b = this.free[this.free.length - 1];
    if (!b) throw new Error('host has no free frames left');
    const mfn = b.mfn;
    b.mfn++;
    b.len--;
    if (b.len === 0) this.free.pop();
    return mfn;
  }
}
