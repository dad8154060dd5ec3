// `p2m` printing in the text of xen-project/xen tools/misc/xen-mfndump.c dump_p2m_func (RELEASE-4.17.0): a " --- Dumping P2M" line, the " Guest Width" header, one "  pfn=0x… ==> mfn=0x…" line per pfn, an end line.
//
// Views:
//  * toolstack — pfns 0..max_pfn of the save side's p2m (mapP2m leaves: what save/restore uses), each
//    entry as the leaf page holds it. xen-mfndump walks the same structure (xc_map_domain_meminfo →
//    xc_core_arch_map_p2m_writable) with p2m_size = XENMEM_maximum_gpfn + 1, which for a PV guest is
//    arch.max_pfn: the same pfns unless a tree walk was trimmed.
//  * guest — the guest's own p2m (readGuestView): private leaves as read, p2m_missing leaves as
//    INVALID_P2M_ENTRY (~0), p2m_identity leaves as IDENTITY_FRAME(pfn) = 0x4000000000000000 | pfn;
//    printed up to the last private leaf (trailing shared leaves describe no RAM and can span 2^27 pfns).
//  * dump — the pfn → gmfn pairs an xl dump-core file carries (.xen_p2m); pfns it left out (INVALID,
//    identity, foreign or above max_mfn: the dump does not say which) print as ~0.
//  * crash — the frame list crash reads (crash-utility x86_64_xen_kdump_p2m_create: a dom0 kdump's crash
//    note root, else arch.pfn_to_mfn_frame_list_list) over crash's whole reach, p2m_frames · 512 pfns, each
//    leaf as its page holds it (views/crash-frame-list.ts).
// Page types: xen-mfndump appends " (type 0x…)" and " L1".." pinned L4"/" broken"/" xalloc"/" invalid"
// from XEN_DOMCTL_getpageframeinfo3. Only a source that knows types (opts.pfnType) gets that suffix;
// an xc_core dump or an emulated guest does not, so its lines end after the mfn
// (docs/spec-notes/xc-core.md). The domain id is not in any image: opts.domid, else "?".
// Output is streamed line by line; entries are read as two u32 words (no BigInt per pfn). It is bounded by
// what the image holds, not by what a header claims (mfndump-printer.ts): a run of 512 or more pfns without
// RAM (INVALID_P2M_ENTRY, IDENTITY_FRAME) is one "pfn=0xA..0xB ==> …" line, as is a run of pfns whose leaf
// page the image lacks ("not in the image": the output is partial) and a leaf page with RAM met again.
import { GuestLeaf } from '../views/p2m-leaves.js';
import { readGuestViewOrMirror } from '../views/guest-mirror.js';
import { InputError } from '../common/errors.js';
import { type GuestImage } from '../formats/guest-image.js';
import { mapP2m } from '../views/toolstack-view.js';
import { crashFrameList } from '../views/crash-view.js';
import { leavesBeforeInvalidTail } from '../views/map-crash-frame-list.js';
import { P2M_PER_PAGE, PAGE_SIZE, PT_LEVELS_64, hex } from '../xen/abi.js';
import { MfndumpPrinter } from './mfndump-printer.js';

const WORD_SCALE = 2 ** 32;

export type MfndumpView = 'toolstack' | 'guest' | 'dump' | 'crash';

export interface MfndumpOptions {
  /** the domain id printed in the first and last lines (no image records it) */
  domid?: number;
  /** XEN_DOMCTL_PFINFO type nibble (0..15) of a pfn, when the source knows page types */
  pfnType?: (pfn: number) => number | undefined;
}

export interface MfndumpResult {
  /** the "P2M size" printed (as a number: exact below 2^53; the header prints a u64 exactly): pfns 0..p2mSize−1 were listed or summarised */
  p2mSize: number;
  /** pfns printed as "not in the image" (their leaf pages are absent): the output is partial */
  notHeldPfns: number;
}

const UNKNOWN_DOMID = '?';

export { typeSuffix } from './mfndump-printer.js';

function where(img: GuestImage): string {
  return img.path || '<image>';
}

/**
 * Print the p2m of `img` as `xen-mfndump dump-p2m <domid>` prints it, one line per call of `out`
 * (no newline), bounded by what the image holds (mfndump-printer.ts: long runs without RAM, absent and
 * repeated leaf pages are one line each). Throws InputError, before printing anything, when the view
 * cannot be built; leaf pages the image lacks are printed as "not in the image" runs and counted in
 * `notHeldPfns` (the command exits 5, partial).
 */
export function renderMfndump(img: GuestImage, view: MfndumpView, out: (line: string) => void, opts: MfndumpOptions = {}): MfndumpResult {
  const domid = opts.domid === undefined ? UNKNOWN_DOMID : String(opts.domid);
  const p = new MfndumpPrinter(out, opts.pfnType);
  const leafCopy = Buffer.alloc(PAGE_SIZE);
  // the image's page buffer is reused by every read: the printer gets its own copy
  const readPage = (frame: number): Buffer | null => {
    const page = img.readFrame(frame);
    if (page === null) return null;
    page.copy(leafCopy);
    return leafCopy;
  };
  const header = (size: number | bigint): void => {
    out(` --- Dumping P2M for domain ${domid} ---`);
    out(` Guest Width: ${img.guestWidth}, PT Levels: ${PT_LEVELS_64} P2M size: = ${size.toString()}`);
  };

  let size: number;
  if (view === 'toolstack') {
    const tool = mapP2m(img);
    if (tool.failure !== null || tool.maxPfn < 0) throw new InputError(`${where(img)}: the toolstack's p2m cannot be mapped (${tool.method} walk: ${tool.failure ?? 'no pfns'})`);
    size = tool.maxPfn + 1;
    header(size);
    for (let k = 0; k < tool.leafFrames.length; k++) {
      const base = k * P2M_PER_PAGE;
      p.leafFrame(tool.leafFrames[k]!, base, Math.min(P2M_PER_PAGE, size - base), readPage, `toolstack p2m leaf ${k}`);
    }
  } else if (view === 'guest') {
    const g = readGuestViewOrMirror(img); // a failed save's stream: through the frame-list mirror
    let leaves = 0;
    for (let k = 0; k < g.kinds.length; k++) if (g.kinds[k] === GuestLeaf.PAGE) leaves = k + 1;
    size = leaves * P2M_PER_PAGE;
    header(size);
    for (let k = 0; k < leaves; k++) {
      const base = k * P2M_PER_PAGE;
      const kind = g.kinds[k];
      if (kind === GuestLeaf.PAGE) p.leafFrame(g.leafFrames[k]!, base, P2M_PER_PAGE, readPage, `guest p2m leaf ${k}`);
      else p.noRam(kind === GuestLeaf.MISSING ? 'invalid' : 'identity', base, P2M_PER_PAGE);
    }
  } else if (view === 'crash') {
    size = printCrashList(img, p, header, readPage);
  } else {
    if (img.formatFacts.kind !== 'dump-core') throw new InputError(`${where(img)}: the dump view needs an xl dump-core file (${img.format} images carry no .xen_p2m table)`);
    const { pfns, gmfns } = img.formatFacts.p2mPairs();
    const order = pfnOrder(pfns);
    // checked before the header, so a bad table prints nothing
    for (let i = 1; i < order.length; i++) {
      if (pfns[order[i]!] === pfns[order[i - 1]!]) throw new InputError(`${where(img)}: .xen_p2m names pfn ${hex(pfns[order[i]!]!)} twice`);
    }
    const last = order.length ? pfns[order[order.length - 1]!]! : -1;
    // "P2M size" as dump-core's p2m_size: arch.max_pfn (a u64, printed exactly), or past the last pair
    const sizeBig = img.arch.maxPfn > BigInt(last + 1) ? img.arch.maxPfn : BigInt(Math.max(1, last + 1));
    header(sizeBig);
    let next = 0;
    for (let i = 0; i < order.length; i++) {
      const pfn = pfns[order[i]!]!;
      p.noRam('invalid', next, pfn - next);
      const g = gmfns[order[i]!]!;
      p.entry(pfn, g % WORD_SCALE, Math.floor(g / WORD_SCALE));
      next = pfn + 1;
    }
    p.invalidUpTo(next, sizeBig);
    size = Number(sizeBig);
  }
  p.flush();
  out(` --- End of P2M for domain ${domid} ---`);
  return { p2mSize: size, notHeldPfns: p.notHeld };
}

/**
 * The crash view: the frame list crash reads (a dom0 kdump's crash note, else arch.pfn_to_mfn_frame_list_list),
 * "P2M size" = crash's p2m_frames · 512; every leaf as its page holds it up to the trailing run of one
 * all-INVALID leaf, which (like a slot crash never wrote) reads ~0 and is folded.
 */
function printCrashList(img: GuestImage, p: MfndumpPrinter, header: (size: number) => void, readPage: (frame: number) => Buffer | null): number {
  const found = crashFrameList(img);
  if ('why' in found) throw new InputError(`${where(img)}: no frame list for the crash view: ${found.why}`);
  const { list, label } = found;
  if (list.failure) throw new InputError(`${where(img)}: ${label}: ${list.failure}`);
  const size = list.p2mFrames * P2M_PER_PAGE;
  const shown = leavesBeforeInvalidTail(img, list).leaves * P2M_PER_PAGE;
  header(size);
  for (let k = 0; k * P2M_PER_PAGE < shown; k++) {
    const leaf = list.leaves[k]!;
    const base = k * P2M_PER_PAGE;
    if (leaf > 0) p.leafFrame(leaf, base, P2M_PER_PAGE, readPage, `crash's p2m leaf ${k}`);
    else p.noRam('invalid', base, P2M_PER_PAGE);
  }
  p.invalidUpTo(shown, BigInt(size));
  return size;
}

/** Indexes of `pfns` in ascending pfn order (the identity when already ascending, as dump-core writes them). */
function pfnOrder(pfns: Float64Array): Uint32Array {
  const order = new Uint32Array(pfns.length);
  let sorted = true;
  for (let i = 0; i < pfns.length; i++) {
    order[i] = i;
    if (i > 0 && pfns[i]! < pfns[i - 1]!) sorted = false;
  }
  if (!sorted) order.sort((a, b) => pfns[a]! - pfns[b]!);
  return order;
}
