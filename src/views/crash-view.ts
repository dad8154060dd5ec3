// Which p2m the crash utility reads physical pages through (docs/spec-notes/dom0-kdump-views.md §4).
//  * A dom0 kdump (vmcore or makedumpfile's compressed form): every physical read goes through
//    xen_kdump_p2m (netdump.c read_kdump, diskdump.c read_diskdump → xen_dom0.c), i.e. the frame list
//    whose root is the crash note's last word, read by x86_64_xen_kdump_p2m_create without any max_pfn
//    bound (crash-frame-list.ts) — for every kernel: kernel.c uses the same list for m2p even when the
//    kernel has xen_p2m_addr (__xen_pvops_m2p_hyper when XEN_CORE_DUMPFILE()). An emulated dom0 snapshot
//    stands for such a dump: its arch.pfn_to_mfn_frame_list_list is what Xen writes into the note.
//  * A domU (xl dump-core, a save stream, a domU snapshot): kernels with xen_p2m_addr (≥ 3.19, crash ≥
//    7.1.5) are read through the kernel's own linear list (__xen_pvops_m2p_domU / read_xc_p2m); older
//    ones through the frame list at arch.pfn_to_mfn_frame_list_list, read the same unbounded way.
import { frameAt, type GuestView } from './p2m-leaves.js';
import { bootFactsOf, dom0KdumpOf, type GuestImage } from '../formats/guest-image.js';
import { frameListOf, type FrameList } from './crash-frame-list.js';
import { P2M_PER_PAGE, hex } from '../xen/abi.js';

/** FLL values Linux uses for "not set up" and "invalid, use the linear list". */
const FLL_UNSET = 0n;
const FLL_INVALID = 0xffffffffffffffffn;

export interface CrashView {
  source: 'linear-list' | 'frame-list' | 'none';
  /** where a frame list's root comes from: the crash note (a dom0 kdump), or arch.pfn_to_mfn_frame_list_list */
  root: 'crash-note' | 'shared-info' | null;
  /** the frame list as crash reads it (null for the linear list) */
  list: FrameList | null;
  /** why crash reads this p2m, in words */
  why: string;
  /** leaf page frame crash uses for leaf k, or -1 when it has none */
  leafFrame(k: number): number;
  /** the frame-list pages crash reads (top and mid pages) */
  structureFrames(): number[];
}

const NONE = (why: string): CrashView => ({ source: 'none', root: null, list: null, why, leafFrame: () => -1, structureFrames: () => [] });

function fromList(list: FrameList, root: CrashView['root'], why: string): CrashView {
  if (list.failure) return NONE(`${why}, but ${list.failure}`);
  return {
    source: 'frame-list',
    root,
    list,
    why,
    leafFrame: (k) => {
      const f = list.leaf(k);
      return f > 0 ? f : -1;
    },
    structureFrames: () => [...list.structureFrames],
  };
}

/** Whether the image is a dom0's, for crash: a kdump, or an emulated dom0 snapshot. */
function isDom0(img: GuestImage): boolean {
  return dom0KdumpOf(img) !== null || bootFactsOf(img)?.role === 'dom0';
}

/**
 * The frame list crash reads for this image without the guest view: a dom0 kdump's from its crash note,
 * any other image's at arch.pfn_to_mfn_frame_list_list (what Xen would put into a crash note). Null, with
 * the reason, when there is none.
 */
export function crashFrameList(img: GuestImage): { list: FrameList; label: string } | { why: string } {
  const kdump = dom0KdumpOf(img);
  const root = kdump ? kdump.crashInfo.frameListListMfn : img.arch.pfnToMfnFrameListList;
  if (kdump && kdump.crashInfo.frameListListMfn < 0) return { why: 'the crash note names no frame list (its last word is not a frame)' };
  if (!kdump && (root === FLL_UNSET || root === FLL_INVALID || BigInt(root) > BigInt(Number.MAX_SAFE_INTEGER))) {
    return { why: `arch.pfn_to_mfn_frame_list_list is ${hex(root)}: no frame list to read` };
  }
  const label = kdump ? `the crash note's frame list (top page mfn ${hex(root)})` : `the frame list at arch.pfn_to_mfn_frame_list_list ${hex(root)}`;
  return { list: frameListOf(img, Number(root)), label };
}

export function crashView(img: GuestImage, guest: GuestView): CrashView {
  const kdump = dom0KdumpOf(img);
  if (kdump) {
    const root = kdump.crashInfo.frameListListMfn;
    if (root < 0) return NONE('the crash note names no frame list (its last word is not a frame)');
    return fromList(frameListOf(img, root), 'crash-note', `dom0 kdump: crash reads every physical page through the frame list from the crash note (top page mfn ${hex(root)}), without a max_pfn bound`);
  }
  if (guest.layout === 'list' && !isDom0(img)) {
    return {
      source: 'linear-list',
      root: null,
      list: null,
      why: "domU with xen_p2m_addr: crash reads the kernel's own linear p2m list",
      leafFrame: (k) => frameAt(guest, k),
      structureFrames: () => [],
    };
  }
  const fll = img.arch.pfnToMfnFrameListList;
  if (fll === FLL_UNSET || fll === FLL_INVALID || fll > BigInt(Number.MAX_SAFE_INTEGER)) return NONE(`arch.pfn_to_mfn_frame_list_list is ${hex(fll)}: no frame list to read`);
  const who = isDom0(img) ? "dom0: crash on this dom0's kdump reads the frame list Xen puts into the crash note" : 'domU without xen_p2m_addr: crash reads the frame list';
  return fromList(frameListOf(img, Number(fll)), 'shared-info', `${who} (arch.pfn_to_mfn_frame_list_list ${hex(fll)}), without a max_pfn bound`);
}

/** Pages of [start, end) that crash reads through the same leaf pages as the guest (so correctly). */
export function crashReadablePages(cv: CrashView, guest: GuestView, start: number, end: number): number {
  let n = 0;
  for (let pfn = start; pfn < end; ) {
    const k = Math.floor(pfn / P2M_PER_PAGE);
    const leafEnd = Math.min(end, (k + 1) * P2M_PER_PAGE);
    const g = frameAt(guest, k);
    const c = cv.leafFrame(k);
    if (g >= 0 && c === g && c !== guest.missingFrame) n += leafEnd - pfn;
    pfn = leafEnd;
  }
  return n;
}
