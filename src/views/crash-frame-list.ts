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
import { P2M_MID_PER_PAGE, hex } from '../xen/abi.js';
import { pageWords } from '../xen/page-words.js';

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
  /** `leaves[k]` for any k (NO_LEAF outside 0 … p2mFrames − 1), read from the decoded mid pages: point reads never build `leaves` */
  leaf(k: number): number;
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
/** Value of a slot that is not a frame (a high word past 52-bit addresses, ~0 included). */
const NOT_A_FRAME = -1;

/**
 * A top or mid page decoded once: `slots[s]` = the frame slot s names (0 for a zero slot, −1 for a word
 * that is not a frame), `nonZero` = crash's count (every non-zero slot), `beforeZero` = makedumpfile's
 * (slots before the first zero). Words are read as u32 pairs through a typed view: no BigInt, no
 * allocation per slot.
 */
interface DecodedPage {
  slots: Float64Array;
  nonZero: number;
  beforeZero: number;
}

function decodePage(page: Buffer, scratch: Uint32Array): DecodedPage {
  const w = pageWords(page, scratch);
  const slots = new Float64Array(P2M_MID_PER_PAGE);
  let nonZero = 0;
  let beforeZero = -1;
  for (let s = 0, k = 0; s < P2M_MID_PER_PAGE; s++, k += 2) {
    const lo = w[k]!;
    const hi = w[k + 1]!;
    if ((lo | hi) === 0) {
      if (beforeZero < 0) beforeZero = s;
      continue; // slots[s] stays 0
    }
    nonZero++;
    slots[s] = hi > MAX_FRAME_HI ? NOT_A_FRAME : hi * WORD + lo;
  }
  return { slots, nonZero, beforeZero: beforeZero < 0 ? P2M_MID_PER_PAGE : beforeZero };
}

function failed(rule: FrameListRule, rootMfn: number, why: string, structure: Set<number>, midMfns: number[], notes: string[]): FrameList {
  return { rule, rootMfn, midMfns, counted: [], p2mFrames: 0, leaves: new Float64Array(0), leaf: () => NO_LEAF, failure: why, overflow: false, structureFrames: structure, notes };
}

/**
 * Read the frame list rooted at `rootMfn` by `rule`. Never throws on content: a page the dump lacks is the
 * tool's own fatal error ("cannot read xen kdump p2m mfn page"), reported in `failure`. Each distinct page
 * is read and decoded once (Linux points every unused top slot at one shared p2m_mid_missing page); the
 * tool's two passes (count, copy) then work on the decoded slots. The copy is kept as what each mid page
 * gives: point reads (`leaf`, listEntry) go to the decoded page, and the flat `leaves` array is built,
 * one native block per mid page, only when read.
 */
export function readFrameList(img: FrameReader, rootMfn: number, rule: FrameListRule = 'crash'): FrameList {
  const structure = new Set<number>();
  const notes: string[] = [];
  const scratch = new Uint32Array(P2M_MID_PER_PAGE * 2);
  const topPage = rootMfn >= 0 ? img.readFrame(rootMfn) : null;
  if (!topPage) {
    const msg = rule === 'crash' ? 'cannot read xen kdump p2m mfn page' : "Can't read p2m_mfn.";
    return failed(rule, rootMfn, `the top page (mfn ${hex(rootMfn)}) is not in the dump: ${rule} stops ("${msg}")`, structure, [], notes);
  }
  structure.add(rootMfn);
  const top = decodePage(topPage, scratch);
  const midMfns = Array.from(top.slots.subarray(0, top.beforeZero));
  // each distinct mid page is read and decoded once
  const mids = new Map<number, DecodedPage>();
  const midAt: DecodedPage[] = [];
  // count, as the tool does on its first pass over the mid pages
  const counted: number[] = [];
  let p2mFrames = 0;
  for (let i = 0; i < midMfns.length; i++) {
    const mfn = midMfns[i]!;
    let mid = mids.get(mfn);
    if (mid === undefined) {
      const page = mfn >= 0 ? img.readFrame(mfn) : null;
      if (!page) {
        const msg = rule === 'crash' ? 'cannot read xen kdump p2m mfn list page' : `Can't get frame_mfn[${i}].`;
        return failed(rule, rootMfn, `mid page ${i} (mfn ${mfn >= 0 ? hex(mfn) : 'not a frame'}) is not in the dump: ${rule} stops ("${msg}")`, structure, midMfns, notes);
      }
      mid = decodePage(page, scratch);
      mids.set(mfn, mid);
    }
    structure.add(mfn);
    midAt.push(mid);
    const n = rule === 'crash' ? mid.nonZero : mid.beforeZero;
    counted.push(n);
    p2mFrames += n;
  }
  // copy, as the tool does on its second pass: the first counted[i] slots of mid page i to leaf i·512 …
  // (what each mid page gives is noted here; the flat array is built only when someone reads `leaves`)
  const copied = new Int32Array(midMfns.length);
  let overflow = false;
  for (let i = 0, left = p2mFrames; i < midMfns.length && (rule === 'makedumpfile' || left > 0); i++) {
    const n = counted[i]!;
    const at = i * P2M_MID_PER_PAGE;
    const room = Math.max(0, p2mFrames - at);
    if (n > room) overflow = true;
    copied[i] = Math.min(n, room);
    left -= n;
    if (rule === 'makedumpfile' && n !== P2M_MID_PER_PAGE) {
      if (i + 1 < midMfns.length) notes.push(`makedumpfile stops copying after mid page ${i} (${n} of ${P2M_MID_PER_PAGE} slots before its first zero): leaves ${at + n}..${p2mFrames - 1} stay unset`);
      break;
    }
  }
  if (overflow) notes.push(`crash copies mid page slots past its ${p2mFrames}-entry p2m_mfn_frame_list buffer (a mid page with zero slots before a later mid page): what it reads there is undefined`);
  notes.push(`${rule}: ${midMfns.length} top entr${midMfns.length === 1 ? 'y' : 'ies'} before the first zero, p2m_frames ${p2mFrames}: pfns 0x0-${hex(Math.max(0, p2mFrames * P2M_MID_PER_PAGE - 1))} go through the list`);
  // leaf k is slot k % 512 of mid page ⌊k / 512⌋ when that page's copy reached it, else never written
  const leaf = (k: number): number => {
    if (!(k >= 0 && k < p2mFrames)) return NO_LEAF;
    const i = Math.floor(k / P2M_MID_PER_PAGE);
    const s = k % P2M_MID_PER_PAGE;
    return s < copied[i]! ? midAt[i]!.slots[s]! : NO_LEAF;
  };
  let leaves: Float64Array | null = null;
  return {
    rule,
    rootMfn,
    midMfns,
    counted,
    p2mFrames,
    /** the tool's p2m_mfn_frame_list (p2mFrames · 8 bytes: 2 MiB for a 3.x kernel's 512 × 512 slots), built on first read */
    get leaves(): Float64Array {
      if (leaves === null) {
        leaves = new Float64Array(p2mFrames).fill(NO_LEAF);
        for (let i = 0; i < copied.length; i++) if (copied[i]! > 0) leaves.set(midAt[i]!.slots.subarray(0, copied[i]!), i * P2M_MID_PER_PAGE);
      }
      return leaves;
    },
    leaf,
    failure: null,
    overflow,
    structureFrames: structure,
    notes,
  };
}

/** Lists already read per image and (root, rule). */
const readLists = new WeakMap<FrameReader, Map<string, FrameList>>();

/**
 * readFrameList, read once per image: the guest view's kernel-root search, the crash view and the
 * toolstack view of a dom0 kdump all ask for the same list. Only an image opened from a file is
 * remembered (its frames never change); an in-memory image (path '') may be rewritten by its builder
 * between reads, so it is read afresh. The list returned is shared: callers must not modify it.
 */
export function frameListOf(img: FrameReader & { readonly path: string }, rootMfn: number, rule: FrameListRule = 'crash'): FrameList {
  if (img.path === '') return readFrameList(img, rootMfn, rule);
  let lists = readLists.get(img);
  if (lists === undefined) readLists.set(img, (lists = new Map()));
  const key = `${rootMfn}:${rule}`;
  let list = lists.get(key);
  if (list === undefined) lists.set(key, (list = readFrameList(img, rootMfn, rule)));
  return list;
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
  const leaf = list.leaf(k);
  if (leaf < 0) return 'unset';
  out.leaf = leaf;
  const page = img.readFrame(leaf);
  if (!page) return 'leaf-absent';
  const s = pfn % P2M_MID_PER_PAGE;
  out.lo = page.readUInt32LE(s * 8);
  out.hi = page.readUInt32LE(s * 8 + 4);
  return 'ok';
}
