// A dom0's 3-level p2m frame list read the way the dump tools read it: crash-utility/crash x86_64.c
// x86_64_xen_kdump_p2m_create + xen_dom0.c xen_kdump_p2m, and makedumpfile arch/x86_64.c
// get_machdep_info_x86_64 + makedumpfile.c ptom_xen (docs/spec-notes/dom0-kdump-views.md §1).
//
// Both read the top page at the root mfn (the crash note's last word), follow its entries up to the first
// zero (at most 512), and count per mid page the slots they will use:
//  * crash counts every non-zero slot of a mid page (mfns[i]), and copies the first mfns[i] slots of mid
//    page i to p2m_mfn_frame_list[i·512 …], for every mid page, into a buffer of Σ mfns[i] entries;
//  * makedumpfile counts up to the first zero slot, and stops copying after the first mid page that is not
//    full (mfns[i] ≠ 512).
// A pfn is then read through leaf k = pfn / 512 when k < p2m_frames = Σ mfns[i] (else the read fails), at
// entry pfn % 512 of that leaf page, read from the machine address the list names. For Linux ≥ 3.x (every
// slot filled, absent ranges pointing at the shared missing pages) the two rules give the same list.
// Frames are read through the image (machine frames); leaf k's slot holds −1 when the tool never wrote it
// (uninitialised memory in the tool) or k ≥ p2m_frames.
import type { FrameReader } from '../translate/page-walk.js';
import { P2M_MID_PER_PAGE, P2M_TOP_PER_PAGE, hex } from '../xen/abi.js';

export type FrameListRule = 'crash' | 'makedumpfile';

/** Leaf slot value for a slot the tool never wrote, or a leaf index past p2m_frames. */
export const NO_LEAF = -1;

export interface FrameList {
  rule: FrameListRule;
  /** the top page's mfn (the root) */
  rootMfn: number;
  /** mid-page mfns the tool follows: top entries up to the first zero */
  midMfns: number[];
  /** per followed mid page: the slots the tool counts (mfns[i]) */
  counted: number[];
  /** Σ counted: leaves the tool knows; pfns ≥ p2mFrames · 512 fail */
  p2mFrames: number;
  /** leaf page mfn per leaf index k < p2mFrames (NO_LEAF where the tool never wrote the slot; 0 is a copied zero slot) */
  leaves: Float64Array;
  /** why the tool gives up before using the list (a top or mid page not in the dump), or null */
  failure: string | null;
  /** crash only: it writes past the end of its p2m_frames buffer (a mid page with zero slots before a later one) */
  overflow: boolean;
  /** every frame read (top and mid pages) */
  structureFrames: Set<number>;
  notes: string[];
}

/** Largest frame number a list entry may name (52-bit machine addresses); larger words are not frames. */
const MAX_FRAME_HI = 0xff;
const WORD = 2 ** 32;

/** u64 slot s of a page as a frame number, or −1 for a value that is not one (also ~0). */
function slotFrame(page: Buffer, s: number): number {
  const hi = page.readUInt32LE(s * 8 + 4);
  if (hi > MAX_FRAME_HI) return -1;
  return hi * WORD + page.readUInt32LE(s * 8);
}

function slotIsZero(page: Buffer, s: number): boolean {
  return page.readUInt32LE(s * 8) === 0 && page.readUInt32LE(s * 8 + 4) === 0;
}

function failed(rule: FrameListRule, rootMfn: number, why: string, structure: Set<number>, midMfns: number[], notes: string[]): FrameList {
  return { rule, rootMfn, midMfns, counted: [], p2mFrames: 0, leaves: new Float64Array(0), failure: why, overflow: false, structureFrames: structure, notes };
}

/**
 * Read the frame list rooted at `rootMfn` by `rule`. Never throws on content: a page the dump lacks is the
 * tool's own fatal error ("cannot read xen kdump p2m mfn page"), reported in `failure`.
 */
export function readFrameList(img: FrameReader, rootMfn: number, rule: FrameListRule = 'crash'): FrameList {
  const structure = new Set<number>();
  const notes: string[] = [];
  const top = rootMfn >= 0 ? img.readFrame(rootMfn) : null;
  if (!top) {
    const msg = rule === 'crash' ? 'cannot read xen kdump p2m mfn page' : "Can't read p2m_mfn.";
    return failed(rule, rootMfn, `the top page (mfn ${hex(rootMfn)}) is not in the dump: ${rule} stops ("${msg}")`, structure, [], notes);
  }
  structure.add(rootMfn);
  const midMfns: number[] = [];
  for (let t = 0; t < P2M_TOP_PER_PAGE; t++) {
    if (slotIsZero(top, t)) break;
    midMfns.push(slotFrame(top, t));
  }
  // count, as the tool does on its first pass over the mid pages
  const counted: number[] = [];
  let p2mFrames = 0;
  for (let i = 0; i < midMfns.length; i++) {
    const mfn = midMfns[i]!;
    const mid = mfn >= 0 ? img.readFrame(mfn) : null;
    if (!mid) {
      const msg = rule === 'crash' ? 'cannot read xen kdump p2m mfn list page' : `Can't get frame_mfn[${i}].`;
      return failed(rule, rootMfn, `mid page ${i} (mfn ${mfn >= 0 ? hex(mfn) : 'not a frame'}) is not in the dump: ${rule} stops ("${msg}")`, structure, midMfns, notes);
    }
    structure.add(mfn);
    let n = 0;
    for (let s = 0; s < P2M_MID_PER_PAGE; s++) {
      if (slotIsZero(mid, s)) {
        if (rule === 'makedumpfile') break;
      } else n++;
    }
    counted.push(n);
    p2mFrames += n;
  }
  // copy, as the tool does on its second pass
  const leaves = new Float64Array(p2mFrames).fill(NO_LEAF);
  let overflow = false;
  for (let i = 0, left = p2mFrames; i < midMfns.length && (rule === 'makedumpfile' || left > 0); i++) {
    const mid = img.readFrame(midMfns[i]!)!;
    const n = counted[i]!;
    for (let s = 0; s < n; s++) {
      const k = i * P2M_MID_PER_PAGE + s;
      if (k >= p2mFrames) {
        overflow = true;
        break;
      }
      leaves[k] = slotIsZero(mid, s) ? 0 : slotFrame(mid, s);
    }
    left -= n;
    if (rule === 'makedumpfile' && n !== P2M_MID_PER_PAGE) {
      if (i + 1 < midMfns.length) notes.push(`makedumpfile stops copying after mid page ${i} (${n} of ${P2M_MID_PER_PAGE} slots before its first zero): leaves ${i * P2M_MID_PER_PAGE + n}..${p2mFrames - 1} stay unset`);
      break;
    }
  }
  if (overflow) notes.push(`crash copies mid page slots past its ${p2mFrames}-entry p2m_mfn_frame_list buffer (a mid page with zero slots before a later mid page): what it reads there is undefined`);
  notes.push(`${rule}: ${midMfns.length} top entr${midMfns.length === 1 ? 'y' : 'ies'} before the first zero, p2m_frames ${p2mFrames}: pfns 0x0-${hex(Math.max(0, p2mFrames * P2M_MID_PER_PAGE - 1))} go through the list`);
  return { rule, rootMfn, midMfns, counted, p2mFrames, leaves, failure: null, overflow, structureFrames: structure, notes };
}

/** Where the two rules part: the first leaf index whose slot differs, with both values, or null when they agree. */
export function firstDisagreement(a: FrameList, b: FrameList): { leaf: number; a: number; b: number } | null {
  const n = Math.max(a.p2mFrames, b.p2mFrames);
  for (let k = 0; k < n; k++) {
    const x = k < a.p2mFrames ? a.leaves[k]! : NO_LEAF;
    const y = k < b.p2mFrames ? b.leaves[k]! : NO_LEAF;
    if (x !== y) return { leaf: k, a: x, b: y };
  }
  return null;
}

/**
 * The p2m entry a tool reads for `pfn` through the list: the (lo, hi) words of the leaf slot, or a reason
 * why the read fails before an entry is read. `out` receives the words (no allocation per call).
 */
export function listEntry(img: FrameReader, list: FrameList, pfn: number, out: { lo: number; hi: number; leaf: number }): 'ok' | 'beyond' | 'unset' | 'leaf-absent' {
  const k = Math.floor(pfn / P2M_MID_PER_PAGE);
  out.leaf = -1;
  if (k >= list.p2mFrames) return 'beyond';
  const leaf = list.leaves[k]!;
  if (leaf < 0) return 'unset';
  out.leaf = leaf;
  const page = img.readFrame(leaf);
  if (!page) return 'leaf-absent';
  const s = pfn % P2M_MID_PER_PAGE;
  out.lo = page.readUInt32LE(s * 8);
  out.hi = page.readUInt32LE(s * 8 + 4);
  return 'ok';
}
