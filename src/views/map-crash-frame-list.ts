// The toolstack side of a dom0 kdump (docs/spec-notes/dom0-kdump-views.md §5): nothing saves a dom0, so
// "what the tools can reach" is what crash reads — the frame list rooted at the crash note's last word,
// bounded only by crash's own rule (crash-frame-list.ts: the top page up to its first zero, the non-zero
// mid slots) — and, reported beside it, the same list bounded by arch.max_pfn from dom0's shared_info
// (dom0-kdump.ts) when the dump holds that page. makedumpfile's stop rule is read too and compared.
import type { CrashListFacts, ToolstackView } from './p2m-leaves.js';
import { dom0KdumpOf, type GuestImage } from '../formats/guest-image.js';
import { firstDisagreement, frameListOf, type FrameList } from './crash-frame-list.js';
import { searchDom0SharedInfo } from './dom0-kdump.js';
import { failedView } from './map-p2m-tree.js';
import { P2M_PER_PAGE, hex } from '../xen/abi.js';

/** Whether a page reads INVALID_P2M_ENTRY in every slot (Linux's shared p2m_missing / p2m_identity leaves). */
function allInvalid(page: Buffer): boolean {
  for (let o = 0; o < page.length; o += 4) if (page.readUInt32LE(o) !== 0xffffffff) return false;
  return true;
}

/**
 * Leaves crash reads something other than INVALID through: the list up to before its trailing run of one
 * all-INVALID leaf frame (Linux fills every absent slot with p2m_missing's mfn, so crash's p2m_frames
 * reaches 2^27 pfns while the pages past the last real leaf all read ~0). Unset slots at the end go too.
 */
export function leavesBeforeInvalidTail(img: GuestImage, list: FrameList): { leaves: number; tailFrame: number } {
  let n = list.p2mFrames;
  while (n > 0 && list.leaves[n - 1]! <= 0) n--;
  if (n === 0) return { leaves: 0, tailFrame: -1 };
  const f = list.leaves[n - 1]!;
  let start = n;
  while (start > 0 && list.leaves[start - 1] === f) start--;
  const page = img.readFrame(f);
  if (!page || !allInvalid(page)) return { leaves: n, tailFrame: -1 };
  return { leaves: start, tailFrame: f };
}

/** The arch.max_pfn bound beside crash's, from dom0's shared_info, and what it was read from. */
function maxPfnBeside(img: GuestImage, notes: string[]): CrashListFacts['maxPfnBound'] {
  const s = searchDom0SharedInfo(img);
  if (!s.found) {
    notes.push(`no arch.max_pfn bound beside crash's: dom0's shared_info was not found (${s.notes.join('; ') || 'no way to look'})`);
    return null;
  }
  const { arch, maddr, via } = s.found;
  notes.push(...s.notes);
  const boundPfn = arch.maxPfn > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(arch.maxPfn);
  const source = `dom0's shared_info at machine ${hex(maddr)} (through ${via})`;
  notes.push(`beside it: arch.max_pfn ${hex(arch.maxPfn)} in ${source} bounds the same list to pfns 0x0-${hex(Math.max(0, boundPfn - 1))}` + ` (p2m_cr3 ${hex(arch.p2mCr3)}, p2m_vaddr ${hex(arch.p2mVaddr)}, p2m_generation ${hex(arch.p2mGeneration)})`);
  return { archMaxPfn: arch.maxPfn, boundPfn, source };
}

/** The toolstack view of a dom0 kdump: crash's reading of the crash note's frame list. */
export function mapCrashFrameList(img: GuestImage): ToolstackView {
  const kdump = dom0KdumpOf(img);
  if (!kdump) throw new Error('mapCrashFrameList: not a dom0 kdump');
  const root = kdump.crashInfo.frameListListMfn;
  const notes: string[] = [`method crash: a dom0 kdump; crash reads every physical page through the frame list from the crash note (XEN_ELFNOTE_CRASH_INFO, last word: top page mfn ${root >= 0 ? hex(root) : 'none'})`];
  const bound = maxPfnBeside(img, notes);
  const archMaxPfn = bound?.archMaxPfn ?? 0n;
  if (root < 0) return failedView('crash', archMaxPfn, 'the crash note names no frame list (its last word is not a frame): crash cannot translate any pfn', new Set(), notes);
  const list = frameListOf(img, root, 'crash');
  notes.push(...list.notes);
  if (list.failure) return failedView('crash', archMaxPfn, list.failure, list.structureFrames, notes, list.structureFrames.has(root) ? undefined : root);
  const mdf = frameListOf(img, root, 'makedumpfile');
  const diff = mdf.failure ? null : firstDisagreement(list, mdf);
  const makedumpfileDiffers = diff
    ? `makedumpfile's stop rule reads leaf ${diff.leaf} (pfns ${hex(diff.leaf * P2M_PER_PAGE)}…) as ${diff.b < 0 ? 'unset' : hex(diff.b)} where crash has ${diff.a < 0 ? 'unset' : hex(diff.a)} (p2m_frames: crash ${list.p2mFrames}, makedumpfile ${mdf.p2mFrames})`
    : null;
  notes.push(makedumpfileDiffers ?? `makedumpfile's stop rule (first zero mid slot, stop after a partial mid page) reads the same ${mdf.p2mFrames} leaves`);
  const { leaves, tailFrame } = leavesBeforeInvalidTail(img, list);
  const reach = list.p2mFrames * P2M_PER_PAGE;
  if (tailFrame >= 0) {
    notes.push(`leaves ${leaves}..${list.p2mFrames - 1} (pfns ${hex(leaves * P2M_PER_PAGE)}-${hex(reach - 1)}) all name the shared all-INVALID leaf ${hex(tailFrame)}: crash reads ~0 there, so the audit compares pfns 0x0-${hex(Math.max(0, leaves * P2M_PER_PAGE - 1))}`);
  }
  if (leaves === 0) return failedView('crash', archMaxPfn, `the frame list reads INVALID for every pfn (p2m_frames ${list.p2mFrames})`, list.structureFrames, notes);
  const leafFrames = new Float64Array(leaves);
  for (let k = 0; k < leaves; k++) {
    const f = list.leaves[k]!;
    leafFrames[k] = f > 0 ? f : -1;
  }
  const crash: CrashListFacts = { rootMfn: root, p2mFrames: list.p2mFrames, maxPfnBound: bound, makedumpfileDiffers };
  return {
    method: 'crash',
    archMaxPfn,
    maxPfn: leaves * P2M_PER_PAGE - 1,
    leafFrames,
    failure: null,
    untrimmedMaxPfn: leaves < list.p2mFrames ? reach - 1 : null,
    structureFrames: list.structureFrames,
    notes,
    crash,
  };
}
