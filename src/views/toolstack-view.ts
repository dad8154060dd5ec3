// The save side's choice of p2m walk: xen-project/xen tools/libs/guest/xg_sr_save_x86_pv.c map_p2m (identical at RELEASE-4.17.0 and RELEASE-4.22.0).
import { exactPfn, type ToolstackView } from './p2m-leaves.js';
import type { GuestImage } from '../formats/guest-image.js';
import { hex, P2M_ENTRY_SIZE } from '../xen/abi.js';
import { failedView, FPP, mapP2mTree, toXenPfn } from './map-p2m-tree.js';
import { mapP2mList } from './map-p2m-list.js';
import { dom0KdumpOf, savedP2mOf } from '../formats/guest-image.js';
import { mapCrashFrameList } from './map-crash-frame-list.js';
import { searchDom0SharedInfo, withDom0SharedInfo } from './dom0-kdump.js';

export type ToolstackMethod = 'tree' | 'list';

export interface MapP2mOptions {
  /** walk this way whatever arch.p2m_cr3 says */
  method?: ToolstackMethod;
}

/** The method map_p2m takes (list when arch.p2m_cr3 ≠ 0) and why, unless the caller forces one. */
export function chooseMethod(img: GuestImage, forced?: ToolstackMethod): { method: ToolstackMethod; why: string } {
  if (forced) return { method: forced, why: `forced by the caller (arch.p2m_cr3 is ${hex(img.arch.p2mCr3)})` };
  const cr3 = img.arch.p2mCr3;
  return cr3 !== 0n
    ? { method: 'list', why: `arch.p2m_cr3 ${hex(cr3)} is non-zero` }
    : { method: 'tree', why: 'arch.p2m_cr3 is 0' };
}

/**
 * map_p2m for a 64-bit PV guest: max_pfn = arch.max_pfn − 1 (u64), then the linear-list walk when
 * arch.p2m_cr3 ≠ 0, else the frame-list tree. Leaf validation against the m2p is not emulated.
 */
export function mapP2m(img: GuestImage, opts: MapP2mOptions = {}): ToolstackView {
  const saved = savedP2mOf(img);
  if (saved) return savedP2mView(img, saved, opts);
  if (dom0KdumpOf(img)) return opts.method ? forcedOnKdump(img, opts.method) : mapCrashFrameList(img);
  return saveWalk(img, opts);
}

/** map_p2m itself, over the image's arch fields. */
function saveWalk(img: GuestImage, opts: MapP2mOptions): ToolstackView {
  const { method, why } = chooseMethod(img, opts.method);
  const arch = img.arch;
  const first = `method ${method}: ${why} (map_p2m)`;
  if (img.guestWidth !== P2M_ENTRY_SIZE) {
    return failedView(method, arch.maxPfn, `guest width ${img.guestWidth}: only 64-bit PV guests are emulated`, new Set(), [first]);
  }
  const maxPfn = toXenPfn(arch.maxPfn - 1n);
  const view = method === 'list' ? mapP2mList(img, maxPfn) : mapP2mTree(img, maxPfn);
  view.notes.unshift(first);
  if (img.sharedInfo === null) view.notes.push('the image holds no shared_info page: the arch fields are the reader\'s defaults');
  view.notes.push('leaf pages are not checked with mfn_in_pseudophysmap (map_p2m_leaves): images carry no m2p');
  return view;
}

/**
 * --method tree|list on a dom0 kdump: Xen's save walk as if it could save dom0, over the arch fields of
 * dom0's shared_info found in the dump; without that page there is no bound to walk by.
 */
function forcedOnKdump(img: GuestImage, method: ToolstackMethod): ToolstackView {
  const search = searchDom0SharedInfo(img);
  if (!search.found) {
    return failedView(method, 0n, `--method ${method} needs arch.max_pfn, and dom0's shared_info is not in this dump (${search.notes.join('; ') || 'not found'})`, new Set(), []);
  }
  const view = saveWalk(withDom0SharedInfo(img), { method });
  view.notes.unshift(`a dom0 kdump walked the way Xen's save would (--method ${method}), with dom0's shared_info at machine ${hex(search.found.maddr)}`);
  return view;
}

/**
 * A save stream already holds the save side's result: X86_PV_P2M_FRAMES names the leaf pages (as pfns)
 * and its end pfn is the max_pfn save used (after trimming). The view IS that record; the walk cannot be
 * redone in pfn space (arch.p2m_cr3 and the frame-list root in SHARED_INFO are source-host mfns). The
 * method is the one map_p2m chose from that SHARED_INFO (list when arch.p2m_cr3 ≠ 0). Leaves before
 * start_pfn (never written by a non-live save) are reported absent (−1).
 */
function savedP2mView(img: GuestImage, rec: { startPfn: number; endPfn: number; leafPfns: Float64Array }, opts: MapP2mOptions): ToolstackView {
  const { method, why } = chooseMethod(img);
  const startLeaf = Math.floor(rec.startPfn / FPP);
  const leaves = Math.floor(rec.endPfn / FPP) + 1;
  const leafFrames = new Float64Array(leaves).fill(-1);
  leafFrames.set(rec.leafPfns.subarray(0, leaves - startLeaf), startLeaf);
  const walkMax = img.arch.maxPfn - 1n;
  const trimmed = walkMax >= 0n && walkMax > BigInt(rec.endPfn) && walkMax <= BigInt(Number.MAX_SAFE_INTEGER);
  const notes = [
    `method ${method}: ${why} in the stream's SHARED_INFO (map_p2m, run by the saver)`,
    `X86_PV_P2M_FRAMES: pfns ${hex(rec.startPfn)}-${hex(rec.endPfn)} in ${rec.leafPfns.length} leaf pages (the saver's max_pfn ${hex(rec.endPfn)})`,
  ];
  if (opts.method && opts.method !== method) notes.push(`--method ${opts.method} ignored: a save stream records the walk the saver made`);
  if (trimmed) notes.push(`the saver trimmed max_pfn from arch.max_pfn − 1 = ${hex(walkMax)} to ${hex(rec.endPfn)}`);
  return {
    method,
    archMaxPfn: img.arch.maxPfn,
    maxPfn: rec.endPfn,
    leafFrames,
    failure: null,
    untrimmedMaxPfn: trimmed ? exactPfn(walkMax) : null,
    structureFrames: new Set(),
    notes,
  };
}
