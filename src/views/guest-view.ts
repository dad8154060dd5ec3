// The guest's own p2m, found the way the kernel finds it: through its symbols and page tables
// (arch/x86/xen/p2m.c: the p2m_top tree of ≤ 3.18, the xen_p2m_addr linear list of ≥ 3.19; crash's
// x86_64 Xen p2m handling reads the same variables), walked from the kernel's own top-level table
// (kernel-root.ts). Output: leaf-page locations, never entry copies.
import { GuestLeaf, type GuestView, type KernelVars } from './p2m-leaves.js';
import { LeafBuilder, settleTail } from './guest-leaves.js';
import { InputError } from '../common/errors.js';
import { dom0KdumpOf, type GuestImage } from '../formats/guest-image.js';
import { hasSymbols } from '../formats/symbols.js';
import { describeRoot, findKernelRoot, type KernelRootOptions } from './kernel-root.js';
import { dom0SharedInfo } from './dom0-kdump.js';
import { frameOfVaWords, isWalkFailure, readVirtU64, TableCache, translate, walkRange, type FrameReader } from '../translate/page-walk.js';
import { pageWords } from '../xen/page-words.js';
import { P2M_MID_PER_PAGE, P2M_PER_PAGE, P2M_PFNS_PER_TOP, P2M_TOP_PER_PAGE, PAGE_OFFSET_LEGACY, PAGE_SIZE, START_INFO_NR_PAGES_OFFSET, hex } from '../xen/abi.js';

/**
 * Most pfns a guest view describes (2^32 pfns = 16 TiB): the per-leaf arrays stay under 100 MiB. A kernel
 * variable claiming more is corrupt.
 */
export const MAX_GUEST_VIEW_PFNS = 2 ** 32;

/** A FrameReader that remembers every frame it handed out. */
function recording(img: FrameReader, seen: Set<number>): FrameReader {
  return {
    readFrame(frame: number): Buffer | null {
      seen.add(frame);
      return img.readFrame(frame);
    },
  };
}

/** Frames one view keeps copies of: its page tables, variable pages and tree pages are ~15–30 frames. */
const FRAME_COPIES_MAX = 64;
const FRAME_COPIES_PER_SLAB = 16;

/**
 * A FrameReader that keeps a copy of the first FRAME_COPIES_MAX frames it read: the root's probe walk, the
 * variables (several on one page, each read through readVirt) and the p2m walks read the same few frames
 * again, each a system call for a file image. Valid while the frames do not change (one view's read).
 */
class FrameCopies implements FrameReader {
  private readonly copies = new Map<number, Buffer | null>();
  /** the copies' storage, FRAME_COPIES_PER_SLAB frames at a time (one allocation, not one per frame) */
  private slab: Buffer | null = null;
  private used = 0;
  constructor(private readonly img: FrameReader) {}

  readFrame(frame: number): Buffer | null {
    const kept = this.copies.get(frame);
    if (kept !== undefined) return kept;
    const page = this.img.readFrame(frame);
    if (this.copies.size >= FRAME_COPIES_MAX) return page;
    let copy: Buffer | null = null;
    if (page !== null) {
      if (this.slab === null || this.used === this.slab.length) {
        this.slab = Buffer.allocUnsafe(FRAME_COPIES_PER_SLAB * PAGE_SIZE);
        this.used = 0;
      }
      copy = this.slab.subarray(this.used, this.used + PAGE_SIZE);
      page.copy(copy, 0, 0, PAGE_SIZE);
      this.used += PAGE_SIZE;
    }
    this.copies.set(frame, copy);
    return copy;
  }
}

class SymbolReader {
  constructor(
    private readonly img: GuestImage,
    readonly reader: FrameReader,
    readonly cr3Frame: number,
  ) {}

  has(name: string): boolean {
    return this.img.symbols.has(name);
  }

  /** u64 at a symbol, or undefined when the symbol is absent or its page unreadable */
  u64(name: string): bigint | undefined {
    const va = this.img.symbols.get(name);
    if (va === undefined) return undefined;
    const v = readVirtU64(this.reader, this.cr3Frame, va);
    return typeof v === 'bigint' ? v : undefined;
  }

  /** u64 at a symbol that must be readable */
  need(name: string): bigint {
    const va = this.img.symbols.get(name);
    if (va === undefined) throw new InputError(`${this.where()}: kernel symbol ${name} is missing (give --system-map)`);
    const v = readVirtU64(this.reader, this.cr3Frame, va);
    if (typeof v !== 'bigint') throw new InputError(`${this.where()}: cannot read ${name} at ${hex(va)}: ${v.error}`);
    return v;
  }

  /** frame holding the page a kernel pointer points to, or -1 */
  frameOfVa(va: bigint): number {
    const t = translate(this.reader, this.cr3Frame, va);
    return isWalkFailure(t) ? -1 : t.frame;
  }

  u64At(va: bigint): bigint | undefined {
    const v = readVirtU64(this.reader, this.cr3Frame, va);
    return typeof v === 'bigint' ? v : undefined;
  }

  where(): string {
    return this.img.path || '<image>';
  }
}

const num = (v: bigint | undefined): number | undefined => (v === undefined ? undefined : Number(v));

/** The kernel variables the report names, through any reader of kernel addresses (page tables, or a PV guest's linear maps). */
export function readVars(s: Pick<SymbolReader, 'u64' | 'u64At'>): KernelVars {
  const vars: KernelVars = {
    maxPfn: num(s.u64('max_pfn')),
    xenMaxP2mPfn: num(s.u64('xen_max_p2m_pfn')),
    xenP2mSize: num(s.u64('xen_p2m_size')),
    xenP2mLastPfn: num(s.u64('xen_p2m_last_pfn')),
    p2mAddr: s.u64('xen_p2m_addr'),
  };
  const si = s.u64('xen_start_info');
  if (si !== undefined && si !== 0n) vars.nrPages = num(s.u64At(si + BigInt(START_INFO_NR_PAGES_OFFSET)));
  // page_offset_base is a variable from 4.9 (KASLR) on; older kernels use the constant
  vars.pageOffset = s.u64('page_offset_base') ?? PAGE_OFFSET_LEGACY;
  return vars;
}

/** What findKernelRoot may take p2m_cr3 from when the image has no shared_info: a dom0 kdump's own, found through its symbols. */
function rootOptions(img: GuestImage): KernelRootOptions {
  if (img.sharedInfo || !dom0KdumpOf(img)) return {};
  const si = dom0SharedInfo(img);
  return si ? { arch: si.arch, archSource: `dom0's shared_info (machine ${hex(si.maddr)}, through ${si.via})` } : {};
}

/** Read the guest's p2m layout. Throws InputError when the image lacks what the walk needs. */
export function readGuestView(img: GuestImage): GuestView {
  const seen = new Set<number>();
  const copies = new FrameCopies(img);
  // the walks of neighbouring kernel addresses (a mid page's leaf pointers) share their upper tables
  const reader = new TableCache(recording(copies, seen));
  if (!hasSymbols(img.symbols)) throw new InputError(`${img.path || '<image>'}: the image carries no kernel symbols (give --system-map)`);
  // (the root's probe reads through the copies, unrecorded: a candidate passed over is no structure of the view)
  const root = findKernelRoot(img, { ...rootOptions(img), reader: copies });
  const s = new SymbolReader(img, reader, root.frame);
  const vars = readVars(s);
  let read: ReadLeaves;
  if (s.has('xen_p2m_addr')) read = readLinear(s, vars);
  else if (s.has('p2m_top')) read = readTree(s, vars);
  else throw new InputError(`${s.where()}: no p2m symbols found (need xen_p2m_addr for Linux ≥ 3.19 or p2m_top for ≤ 3.18)`);
  const view = read.view;
  view.structureFrames = seen;
  view.root = { source: root.source, frame: root.frame, text: root.text };
  view.notes.unshift(describeRoot(root));
  markSharedSentinels(img, view, read.pagesEnd);
  return view;
}

/**
 * In the kernel only p2m_missing and p2m_identity back more than one leaf. A private-looking leaf frame that
 * serves several leaves therefore is a sentinel whose pointer variable did not match (a corrupt or missing
 * symbol): when it reads all INVALID it is taken as p2m_identity (p2m_missing is recognised by its own
 * pointer), so the audit does not decode the same page once per leaf.
 */
function markSharedSentinels(img: GuestImage, view: GuestView, end: number): void {
  // frames of private-looking leaves, in leaf order. Past the last of them (`end`, counted by the reader
  // while it wrote the leaves) the view is the shared pages only: a linear list's xen_p2m_size spans 512 GiB
  // of pfns whatever the guest's size, and is not walked again here.
  const kinds = view.kinds;
  let m = 0;
  const frames = new Float64Array(end);
  for (let k = 0; k < end; k++) {
    if (kinds[k] === GuestLeaf.PAGE && view.leafFrames[k]! >= 0) frames[m++] = view.leafFrames[k]!;
  }
  const uses = repeatedFrames(frames.subarray(0, m));
  let turned = false;
  for (const [frame, n] of uses) {
    const page = img.readFrame(frame);
    if (!page || !page.every((b) => b === 0xff)) {
      view.notes.push(`leaf frame ${hex(frame)} backs ${n} leaves but is not all INVALID: the p2m is corrupt there`);
      continue;
    }
    for (let k = 0; k < end; k++) {
      if (view.kinds[k] === GuestLeaf.PAGE && view.leafFrames[k] === frame) view.kinds[k] = GuestLeaf.IDENTITY;
    }
    turned = true;
    if (view.identityFrame < 0 || view.identityFrame === frame) view.identityFrame = frame;
    view.notes.push(`leaf frame ${hex(frame)} backs ${n} leaves and reads all INVALID: taken as the shared p2m_identity page (the p2m_identity symbol did not point at it)`);
  }
  if (turned) settleTail(view); // the leaves turned into p2m_identity may end the arrays
}

/** More contiguous runs than frames / this: the list is scattered, sort it at once. */
const FRAMES_PER_RUN_MIN = 8;

/** Repeats among `frames` by sorting a copy and comparing neighbours. */
function sortedRepeats(frames: Float64Array, uses: Map<number, number>): Map<number, number> {
  const sorted = frames.slice().sort();
  for (let i = 1; i < sorted.length; i++) if (sorted[i] === sorted[i - 1]) uses.set(sorted[i]!, (uses.get(sorted[i]!) ?? 1) + 1);
  return uses;
}

/**
 * Frames that occur more than once, with their counts. The usual list has none and is made of long runs
 * of neighbouring frames (memblock hands out pages top-down, vmalloc in batches): a run that steps by +1
 * or −1 holds distinct frames, so when the runs' spans do not overlap no frame repeats — one pass and a
 * sort of the (few) spans. Overlapping spans or a scattered list: sort a copy of the frames.
 */
export function repeatedFrames(frames: Float64Array): Map<number, number> {
  const uses = new Map<number, number>();
  const m = frames.length;
  if (m < 2) return uses;
  const lows: number[] = [];
  const highs: number[] = [];
  let start = 0;
  let dir = 0; // +1 / −1 once the run has two frames
  for (let i = 1; i <= m; i++) {
    if (i < m) {
      const d = frames[i]! - frames[i - 1]!;
      if ((d === 1 || d === -1) && (dir === 0 || d === dir)) {
        dir = d;
        continue;
      }
    }
    const a = frames[start]!;
    const b = frames[i - 1]!;
    lows.push(Math.min(a, b));
    highs.push(Math.max(a, b));
    if (lows.length * FRAMES_PER_RUN_MIN > m) return sortedRepeats(frames, uses);
    start = i;
    dir = 0;
  }
  const order = Array.from(lows.keys()).sort((x, y) => lows[x]! - lows[y]!);
  for (let r = 1; r < order.length; r++) {
    if (lows[order[r]!]! <= highs[order[r - 1]!]!) return sortedRepeats(frames, uses);
  }
  return uses;
}

/** A reader's view, and one past its last PAGE leaf (0 when it has none), counted as the leaves were written. */
interface ReadLeaves {
  view: GuestView;
  pagesEnd: number;
}

function readLinear(s: SymbolReader, vars: KernelVars): ReadLeaves {
  const p2mAddr = s.need('xen_p2m_addr');
  // the mapped area spans xen_max_p2m_pfn entries; xen_p2m_size equals it after xen_vmalloc_p2m_tree
  const size = vars.xenP2mSize ?? vars.xenMaxP2mPfn ?? 0;
  if (!Number.isSafeInteger(size) || size < 0 || size > MAX_GUEST_VIEW_PFNS) {
    throw new InputError(`${s.where()}: xen_p2m_size ${hex(BigInt(Math.min(size, Number.MAX_SAFE_INTEGER)))} is not a plausible p2m size (expected at most ${hex(MAX_GUEST_VIEW_PFNS)} pfns)`);
  }
  const limitPfn = Math.ceil(size / P2M_PER_PAGE) * P2M_PER_PAGE;
  const nLeaves = limitPfn / P2M_PER_PAGE;
  const missingFrame = framePointedBy(s, 'p2m_missing');
  const identityFrame = framePointedBy(s, 'p2m_identity');
  const notes: string[] = [`linear p2m list at ${hex(p2mAddr)}, ${hex(size)} entries (xen_p2m_size)`];
  if (p2mAddr % BigInt(PAGE_SIZE) !== 0n) throw new InputError(`${s.where()}: xen_p2m_addr ${hex(p2mAddr)} is not page aligned`);
  // walkRange reports every page once, in order (visit or repeat)
  const leaves = new LeafBuilder(nLeaves);
  walkRange(
    s.reader,
    s.cr3Frame,
    p2mAddr,
    nLeaves,
    (_i, frame) => {
      if (frame >= 0 && frame === missingFrame) leaves.leaf(GuestLeaf.MISSING, frame);
      else if (frame >= 0 && frame === identityFrame) leaves.leaf(GuestLeaf.IDENTITY, frame);
      else leaves.leaf(GuestLeaf.PAGE, frame);
    },
    // a 2 MiB of the list mapped through the same shared PTE page as before: the same leaves
    (_i, n, from) => leaves.copy(from, n),
  );
  const built = leaves.finish();
  const view: GuestView = {
    layout: 'list',
    limitPfn,
    beyond: 'identity',
    kinds: built.kinds,
    leafFrames: built.leafFrames,
    missingFrame,
    identityFrame,
    vars,
    structureFrames: new Set(),
    notes,
  };
  if (built.tail) view.tail = built.tail;
  return { view, pagesEnd: built.pagesEnd };
}

function framePointedBy(s: SymbolReader, name: string): number {
  const ptr = s.u64(name);
  if (ptr === undefined || ptr === 0n) return -1;
  return s.frameOfVa(ptr);
}

/** A kernel pointer's two u32 words (low word first). */
const wordsOf = (v: bigint): [number, number] => [Number(v & 0xffffffffn), Number(v >> 32n)];
/** The u64 a pointer page's slot holds, for messages. */
const slotValue = (w: Uint32Array, k: number): bigint => (BigInt(w[k + 1]!) << 32n) | BigInt(w[k]!);

/**
 * Copy the 512 u64 pointers of the page at a kernel VA (a p2m_top or mid page, the VA given as its two
 * words) into `into` as u32 words (lo, hi per slot): the reader may reuse its buffer on the next read, and
 * the caller walks other pointers while it reads these. False when the page is not readable.
 */
function readPtrWords(s: SymbolReader, reader: FrameReader, lo: number, hi: number, into: Uint32Array): boolean {
  const frame = frameOfVaWords(reader, s.cr3Frame, lo, hi);
  const page = frame < 0 ? null : reader.readFrame(frame);
  if (!page) return false;
  into.set(pageWords(page, into));
  return true;
}

/**
 * The p2m_top tree (arch/x86/xen/p2m.c ≤ 3.18: p2m_top[512] → mid pages[512] → leaf pages). Slots are
 * compared as u32 word pairs and walked without BigInt (translate's walk through frameOfVaWords).
 */
function readTree(s: SymbolReader, vars: KernelVars): ReadLeaves {
  const reader = s.reader;
  const topVa = s.need('p2m_top');
  const [mmLo, mmHi] = wordsOf(s.need('p2m_mid_missing'));
  const missing = s.need('p2m_missing');
  const identity = s.need('p2m_identity');
  const [missLo, missHi] = wordsOf(missing);
  const [idLo, idHi] = wordsOf(identity);
  const top = new Uint32Array(P2M_TOP_PER_PAGE * 2);
  const [topLo, topHi] = wordsOf(topVa);
  if (!readPtrWords(s, reader, topLo, topHi, top)) throw new InputError(`${s.where()}: p2m_top page at ${hex(topVa)} is not readable`);
  let lastTop = 0;
  for (let t = 0, k = 0; t < P2M_TOP_PER_PAGE; t++, k += 2) if (top[k] !== mmLo || top[k + 1] !== mmHi) lastTop = t + 1;
  const limitPfn = lastTop * P2M_PFNS_PER_TOP;
  const leaves = new LeafBuilder(limitPfn / P2M_PER_PAGE);
  const missingFrame = s.frameOfVa(missing);
  const identityFrame = s.frameOfVa(identity);
  const notes: string[] = [`p2m_top tree at ${hex(topVa)}, ${lastTop} top entr${lastTop === 1 ? 'y' : 'ies'} in use`];
  // top slot that first read each mid page (by the pointer's words): a mid page shared by several slots (p2m_mid_identity) is read once
  const firstSlot = new Map<string, number>();
  const mid = new Uint32Array(P2M_MID_PER_PAGE * 2);
  let readSlot = -1; // the last slot whose leaves came from a readable mid page
  for (let t = 0; t < lastTop; t++) {
    const lo = top[2 * t]!;
    const hi = top[2 * t + 1]!;
    if (lo === mmLo && hi === mmHi) {
      leaves.run(GuestLeaf.MISSING, missingFrame, P2M_MID_PER_PAGE);
      continue;
    }
    // the slot before names the same, readable mid page (the usual run of p2m_mid_identity): no key to build
    const same = readSlot === t - 1 && lo === top[2 * t - 2] && hi === top[2 * t - 1];
    const key = same ? '' : `${hi}:${lo}`;
    const earlier = same ? t - 1 : firstSlot.get(key);
    if (earlier !== undefined) {
      leaves.copy(earlier * P2M_MID_PER_PAGE, P2M_MID_PER_PAGE);
      readSlot = t;
      continue;
    }
    if (!readPtrWords(s, reader, lo, hi, mid)) {
      notes.push(`mid page of top ${t} at ${hex(slotValue(top, 2 * t))} is not readable`);
      leaves.run(GuestLeaf.PAGE, -1, P2M_MID_PER_PAGE); // unreadable
      continue;
    }
    for (let k = 0; k < 2 * P2M_MID_PER_PAGE; k += 2) {
      const plo = mid[k]!;
      const phi = mid[k + 1]!;
      if (plo === missLo && phi === missHi) leaves.leaf(GuestLeaf.MISSING, missingFrame);
      else if (plo === idLo && phi === idHi) leaves.leaf(GuestLeaf.IDENTITY, identityFrame);
      else leaves.leaf(GuestLeaf.PAGE, frameOfVaWords(reader, s.cr3Frame, plo, phi));
    }
    firstSlot.set(key, t);
    readSlot = t;
  }
  const built = leaves.finish();
  const view: GuestView = {
    layout: 'tree',
    limitPfn,
    beyond: 'missing',
    kinds: built.kinds,
    leafFrames: built.leafFrames,
    missingFrame,
    identityFrame,
    vars,
    structureFrames: new Set(),
    notes,
  };
  if (built.tail) view.tail = built.tail;
  return { view, pagesEnd: built.pagesEnd };
}
