// The guest's own p2m read through the kernel's frame-list mirror, for a save stream whose page tables
// cannot be walked (a failed `xl save` writes no vCPU record, and the kernel's top-level table can itself
// be a page the saver sent without data). Linux ≥ 3.19 (arch/x86/xen/p2m.c xen_build_mfn_list_list, loop
// `pfn < xen_max_p2m_pfn && pfn < MAX_P2M_PFN`, kept in step by xen_alloc_p2m_entry) mirrors every leaf of
// its linear list: p2m_top_mfn_p[top] is the kernel pointer to a mid-mfn page, whose slot [mid] is the mfn
// of the list page for pfns (top·512 + mid)·512 …, or the mfn of p2m_missing / p2m_identity; a top slot
// equal to p2m_mid_missing_mfn stands for a GiB without RAM. In a PV guest the kernel image and the direct
// map are linear over pfns (pfn = va − __START_KERNEL_map, or va − page_offset_base), so in a stream's pfn
// space every pointer is followed without page tables; the leaf mfns are turned into pfns through the
// stream's own p2m leaves (X86_PV_P2M_FRAMES), as restore would. Kernels ≤ 3.18 are not read this way:
// their mirror is exactly what the seed's bug leaves short, so it cannot stand for the guest's own tree.
import { InputError } from '../common/errors.js';
import { savedP2mOf, type GuestImage, type SavedP2m } from '../formats/guest-image.js';
import { GuestLeaf, type GuestView } from './p2m-leaves.js';
import { readGuestView, readVars } from './guest-view.js';
import { MAX_P2M_PFN, P2M_ENTRY_SIZE, P2M_MID_PER_PAGE, P2M_PER_PAGE, PAGE_OFFSET_LEGACY, PAGE_SHIFT, PAGE_SIZE, START_KERNEL_MAP, hex } from '../xen/abi.js';

/** The symbols the mirror walk needs (xen_p2m_addr marks a linear-list kernel). */
export const MIRROR_SYMBOLS = ['xen_p2m_addr', 'p2m_top_mfn_p', 'p2m_mid_missing_mfn', 'p2m_missing', 'p2m_identity'] as const;
const WORD = 2 ** 32;
/** Leaf mfns are looked up through a bitmap over mfn space; a larger mfn is not a frame this view follows. */
const MAX_LOOKUP_MFN = 2 ** 32;
const PAGE_SHIFT_N = BigInt(PAGE_SHIFT);
/** pfns have at most 40 bits (52-bit addresses). */
const MAX_PFN_N = 1n << 40n;
/** High-word bits that mark a p2m entry as no frame (FOREIGN, IDENTITY; INVALID has both). */
const ENTRY_MARK_HI = 0xc0000000;

/**
 * The guest view, through the page tables when they can be walked, else (a save stream of a linear-list
 * kernel) through the frame-list mirror. The first failure is kept in the mirror view's notes.
 */
export function readGuestViewOrMirror(img: GuestImage): GuestView {
  try {
    return readGuestView(img);
  } catch (e) {
    if (!(e instanceof InputError) || !mirrorApplies(img)) throw e;
    const own = `${img.path}: `;
    return readMirrorView(img, img.path && e.message.startsWith(own) ? e.message.slice(own.length) : e.message);
  }
}

/** A save stream (pfn space, its own p2m leaves) of a kernel with a linear list and the mirror's symbols. */
export function mirrorApplies(img: GuestImage): boolean {
  return img.frameSpace === 'pfn' && savedP2mOf(img) !== null && MIRROR_SYMBOLS.every((s) => img.symbols.has(s));
}

/** Kernel-image and direct-map addresses of a PV guest as pfns (−1 for any other address). */
export class LinearMaps {
  constructor(readonly pageOffset: bigint) {}

  pfnOf(va: bigint): number {
    if (va >= START_KERNEL_MAP) return Number((va - START_KERNEL_MAP) >> PAGE_SHIFT_N);
    if (va < this.pageOffset) return -1;
    const pfn = (va - this.pageOffset) >> PAGE_SHIFT_N;
    return pfn < MAX_PFN_N ? Number(pfn) : -1;
  }
}

/**
 * Reads kernel variables of a PV guest in a pfn-space image (a save stream) without page tables: through
 * the kernel-image mapping and the direct map (page_offset_base, else the pre-4.9 constant).
 */
export class PvLinearReader {
  readonly seen = new Set<number>();
  maps: LinearMaps;

  constructor(readonly img: GuestImage) {
    this.maps = new LinearMaps(PAGE_OFFSET_LEGACY);
    const base = this.u64('page_offset_base');
    if (base !== undefined) this.maps = new LinearMaps(base);
  }

  where(): string {
    return this.img.path || '<image>';
  }

  /** u64 at a kernel VA, or undefined when its page is not in the stream. */
  u64At(va: bigint): bigint | undefined {
    const pfn = this.maps.pfnOf(va);
    if (pfn < 0) return undefined;
    const page = this.img.readFrame(pfn);
    if (!page) return undefined;
    this.seen.add(pfn);
    return page.readBigUInt64LE(Number(va % BigInt(PAGE_SIZE)) & ~7);
  }

  u64(name: string): bigint | undefined {
    const va = this.img.symbols.get(name);
    return va === undefined ? undefined : this.u64At(va);
  }

  need(name: string): bigint {
    const v = this.u64(name);
    if (v === undefined) throw new InputError(`${this.where()}: ${name} (pfn ${hex(this.maps.pfnOf(this.img.symbols.get(name) ?? 0n))}) is not in the stream: the guest's p2m cannot be read through its frame-list mirror`);
    return v;
  }

  /** A copy of the page a kernel pointer points to, or null. */
  pageAt(va: bigint): Buffer | null {
    const pfn = this.maps.pfnOf(va);
    const page = pfn >= 0 ? this.img.readFrame(pfn) : null;
    if (!page) return null;
    this.seen.add(pfn);
    return Buffer.from(page);
  }
}

/** The saver's p2m entry of `pfn` (a source-host mfn), −1 when the stream does not hold it or it is no frame. */
function savedEntry(img: GuestImage, saved: SavedP2m, pfn: number): number {
  const k = Math.floor(pfn / P2M_PER_PAGE) - Math.floor(saved.startPfn / P2M_PER_PAGE);
  if (pfn > saved.endPfn || k < 0 || k >= saved.leafPfns.length) return -1;
  const page = img.readFrame(saved.leafPfns[k]!);
  if (!page) return -1;
  const i = (pfn % P2M_PER_PAGE) * P2M_ENTRY_SIZE;
  const hi = page.readUInt32LE(i + 4);
  return (hi & ENTRY_MARK_HI) !== 0 ? -1 : hi * WORD + page.readUInt32LE(i);
}

/**
 * mfn → pfn for the given mfns, through the stream's p2m leaves (pfns ≤ its end pfn): one pass over the
 * saved entries with a bitmap test each. Unknown mfns are left out.
 */
function invertSaved(img: GuestImage, saved: SavedP2m, mfns: number[]): Map<number, number> {
  const out = new Map<number, number>();
  const wanted = mfns.filter((m) => m >= 0 && m < MAX_LOOKUP_MFN);
  if (wanted.length === 0) return out;
  const top = Math.max(...wanted);
  const bits = new Uint8Array((top >>> 3) + 1);
  for (const m of wanted) bits[m >>> 3]! |= 1 << (m & 7);
  const first = Math.floor(saved.startPfn / P2M_PER_PAGE);
  for (let k = 0; k < saved.leafPfns.length; k++) {
    const page = img.readFrame(saved.leafPfns[k]!);
    if (!page) continue;
    for (let i = 0; i < P2M_PER_PAGE; i++) {
      const hi = page.readUInt32LE(i * P2M_ENTRY_SIZE + 4);
      if (hi !== 0) continue; // mfns below 2^32 only (MAX_LOOKUP_MFN); marked entries have high bits
      const m = page.readUInt32LE(i * P2M_ENTRY_SIZE);
      if (m > top || (bits[m >>> 3]! & (1 << (m & 7))) === 0) continue;
      const pfn = (first + k) * P2M_PER_PAGE + i;
      if (pfn <= saved.endPfn && !out.has(m)) out.set(m, pfn);
    }
  }
  return out;
}

/** The guest view through the frame-list mirror (see the header); `why` says why the page tables were not used. */
export function readMirrorView(img: GuestImage, why: string): GuestView {
  const saved = savedP2mOf(img);
  if (!saved || img.frameSpace !== 'pfn') throw new InputError(`${img.path || '<image>'}: the frame-list mirror is read only from a save stream`);
  const r = new PvLinearReader(img);
  const vars = readVars(r);
  const size = vars.xenP2mSize ?? vars.xenMaxP2mPfn ?? 0;
  const limitPfn = Math.min(Math.ceil(size / P2M_PER_PAGE) * P2M_PER_PAGE, MAX_P2M_PFN);
  const nLeaves = limitPfn / P2M_PER_PAGE;
  const topVa = r.need('p2m_top_mfn_p');
  if (topVa === 0n) throw new InputError(`${r.where()}: p2m_top_mfn_p is NULL: the kernel built no frame-list mirror (SIF_VIRT_P2M_4TOOLS), and no page table can be walked`);
  const top = r.pageAt(topVa);
  if (!top) throw new InputError(`${r.where()}: the mirror's top page (p2m_top_mfn_p ${hex(topVa)}, pfn ${hex(r.maps.pfnOf(topVa))}) is not in the stream`);
  const midMissing = r.need('p2m_mid_missing_mfn');
  const missingPfn = r.maps.pfnOf(r.need('p2m_missing'));
  const identityPfn = r.maps.pfnOf(r.need('p2m_identity'));
  const missingMfn = savedEntry(img, saved, missingPfn);
  const identityMfn = savedEntry(img, saved, identityPfn);

  const kinds = new Uint8Array(nLeaves);
  const leafFrames = new Float64Array(nLeaves).fill(-1);
  const leafMfns = new Float64Array(nLeaves).fill(-1);
  const notes = [
    `guest p2m read through the kernel's frame-list mirror (p2m_top_mfn_p ${hex(topVa)}, xen_p2m_size ${hex(size)}): no page table could be walked (${why})`,
  ];
  let unreadableMids = 0;
  for (let t = 0; t * P2M_MID_PER_PAGE < nLeaves; t++) {
    const base = t * P2M_MID_PER_PAGE;
    const end = Math.min(nLeaves, base + P2M_MID_PER_PAGE);
    const midVa = top.readBigUInt64LE(t * P2M_ENTRY_SIZE);
    if (midVa === midMissing) {
      kinds.fill(GuestLeaf.MISSING, base, end);
      leafFrames.fill(missingPfn, base, end);
      continue;
    }
    const mid = r.pageAt(midVa);
    if (!mid) {
      unreadableMids++;
      continue; // kinds PAGE, frames −1: unreadable
    }
    for (let k = base; k < end; k++) {
      const i = (k - base) * P2M_ENTRY_SIZE;
      const hi = mid.readUInt32LE(i + 4);
      const mfn = hi > 0xff ? -1 : hi * WORD + mid.readUInt32LE(i);
      if (mfn >= 0 && mfn === missingMfn) {
        kinds[k] = GuestLeaf.MISSING;
        leafFrames[k] = missingPfn;
      } else if (mfn >= 0 && mfn === identityMfn) {
        kinds[k] = GuestLeaf.IDENTITY;
        leafFrames[k] = identityPfn;
      } else leafMfns[k] = mfn;
    }
  }
  // leaves inside X86_PV_P2M_FRAMES are the pages the saver named (it walked this mirror); the rest by m2p
  const firstSaved = Math.floor(saved.startPfn / P2M_PER_PAGE);
  const pending: number[] = [];
  let disagree = 0;
  for (let k = 0; k < nLeaves; k++) {
    if (kinds[k] !== GuestLeaf.PAGE || leafMfns[k]! < 0) continue;
    const j = k - firstSaved;
    if (j >= 0 && j < saved.leafPfns.length) {
      leafFrames[k] = saved.leafPfns[j]!;
      if (savedEntry(img, saved, saved.leafPfns[j]!) !== leafMfns[k]) disagree++;
    } else pending.push(leafMfns[k]!);
  }
  const m2p = invertSaved(img, saved, pending);
  let unknown = 0;
  for (let k = 0; k < nLeaves; k++) {
    if (kinds[k] !== GuestLeaf.PAGE || leafFrames[k]! >= 0 || leafMfns[k]! < 0) continue;
    const pfn = m2p.get(leafMfns[k]!);
    if (pfn === undefined) unknown++;
    else leafFrames[k] = pfn;
  }
  if (disagree > 0) notes.push(`${disagree} mirror slot(s) name another page than X86_PV_P2M_FRAMES does: the saver's record was used`);
  if (unreadableMids > 0) notes.push(`${unreadableMids} mid-mfn page(s) of the mirror are not in the stream: their pfns are unchecked`);
  if (unknown > 0) notes.push(`${unknown} leaf page(s) lie at mfns no saved pfn maps (past the saver's bound): their pfns are unchecked`);
  if (size > MAX_P2M_PFN) notes.push(`the mirror stops at MAX_P2M_PFN ${hex(MAX_P2M_PFN)}; pfns above it (xen_p2m_size ${hex(size)}) are not described`);
  return {
    layout: 'list',
    limitPfn,
    beyond: 'identity',
    kinds,
    leafFrames,
    missingFrame: missingPfn,
    identityFrame: identityPfn,
    vars,
    structureFrames: r.seen,
    notes,
  };
}
