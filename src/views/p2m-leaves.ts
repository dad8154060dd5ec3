// The vocabulary shared by the two views and the audit: where each p2m leaf page lives
// (ARCHITECTURE.md: views output leaf-page locations, never copies of entries) and the pfn classes.
import { P2M_PER_PAGE } from '../xen/abi.js';

/** Kind of one guest leaf (512 pfns). */
export const GuestLeaf = {
  /** a private leaf page: entries decoded one by one */
  PAGE: 0,
  /** the shared p2m_missing page (tree: also a leaf under p2m_mid_missing) */
  MISSING: 1,
  /** the shared p2m_identity page (every pfn reads IDENTITY_FRAME(pfn)) */
  IDENTITY: 2,
} as const;
export type GuestLeafKind = (typeof GuestLeaf)[keyof typeof GuestLeaf];

/** The guest's own p2m, as leaf locations (src/views/guest-view.ts). */
export interface GuestView {
  layout: 'tree' | 'list';
  /** pfns [0, limitPfn) are the p2m area the kernel maps (`kinds`/`leafFrames`, then `tail`); limitPfn is a multiple of 512 */
  limitPfn: number;
  /** what pfns ≥ limitPfn read as in the guest (list: identity, per __pfn_to_mfn; tree: missing) */
  beyond: 'identity' | 'missing';
  /** per leaf k < kinds.length (pfns 512k .. 512k+511) */
  kinds: Uint8Array;
  /** frame (image frame space) of leaf k's page (k < kinds.length); for MISSING/IDENTITY the shared page's frame or -1 */
  leafFrames: Float64Array;
  /**
   * Leaves [kinds.length, limitPfn/512): all of one shared kind (never PAGE) on one frame — the uniform tail
   * of a p2m area sized for far more pfns than the guest has (a linux ≥ 3.19 list's xen_p2m_size is 512 GiB
   * of pfns whatever the guest's size). Absent: the arrays cover every leaf below limitPfn.
   */
  tail?: { kind: GuestLeafKind; frame: number };
  /** frame of the shared p2m_missing / p2m_identity leaf pages, -1 when unknown */
  missingFrame: number;
  identityFrame: number;
  /** kernel variables read through symbols (absent ones are undefined) */
  vars: KernelVars;
  /** every frame the walk read (page tables, tree pages, variable pages) */
  structureFrames: Set<number>;
  notes: string[];
  /** the top-level page table the walk started from (views/kernel-root.ts), when the view was read from an image */
  root?: { source: 'p2m_cr3' | 'kernel-table' | 'vcpu-cr3'; frame: number; text: string };
}

export interface KernelVars {
  nrPages?: number;
  maxPfn?: number;
  xenMaxP2mPfn?: number;
  xenP2mSize?: number;
  xenP2mLastPfn?: number;
  /** direct-map base (page_offset_base, or the version's constant) */
  pageOffset?: bigint;
  /** VA of the linear list (xen_p2m_addr) */
  p2mAddr?: bigint;
}

/** The save side's view of the p2m (src/views/toolstack-view.ts, map-p2m-tree.ts, map-p2m-list.ts), exactly as map_p2m_tree / map_p2m_list find it. */
export interface ToolstackView {
  /** tree / list: Xen's save walk (map_p2m); crash: the frame list a dom0 kdump's crash note names, read as crash reads it */
  method: 'tree' | 'list' | 'crash';
  /** arch.max_pfn as read (a count) */
  archMaxPfn: bigint;
  /** the highest pfn save/restore uses, after trimming (inclusive); -1 when the walk failed */
  maxPfn: number;
  /** frame (image frame space) of leaf k for k in [0, floor(maxPfn/512)]; empty when the walk failed */
  leafFrames: Float64Array;
  /** why the walk failed (save would abort), or null */
  failure: string | null;
  /** when the walk stopped because the image lacks a frame it needs: that frame (an input problem, not the guest's) */
  absentFrame?: number;
  /** max_pfn before trimming, when trimming lowered it (a u64: a bigint when it is not a safe number, see exactPfn) */
  untrimmedMaxPfn: number | bigint | null;
  /** every frame the walk read (frame-list pages or page tables) */
  structureFrames: Set<number>;
  notes: string[];
  /** method 'crash' only: the list crash reads, and beside it the arch.max_pfn bound (views/map-crash-frame-list.ts) */
  crash?: CrashListFacts;
}

/** A dom0 kdump's toolstack side: what crash (and makedumpfile) reach through the crash note's frame list. */
export interface CrashListFacts {
  /** the crash note's root (the top page's mfn) */
  rootMfn: number;
  /** leaves crash knows (Σ non-zero mid slots): pfns [0, p2mFrames · 512) go through the list */
  p2mFrames: number;
  /** the same list bounded by arch.max_pfn of dom0's shared_info, when the dump holds that page */
  maxPfnBound: { archMaxPfn: bigint; boundPfn: number; source: string } | null;
  /** where makedumpfile's stop rule reads the list differently, or null when both read the same leaves */
  makedumpfileDiffers: string | null;
}

/** Leaves of the p2m area: pfns [0, limitPfn). */
export function guestLeafCount(view: GuestView): number {
  return view.limitPfn / P2M_PER_PAGE;
}

/** Kind of guest leaf k, past the arrays too (the tail, then `beyond`). */
export function kindAt(view: GuestView, k: number): GuestLeafKind {
  if (k < view.kinds.length) return view.kinds[k] as GuestLeafKind;
  if (k < guestLeafCount(view) && view.tail) return view.tail.kind;
  return view.beyond === 'identity' ? GuestLeaf.IDENTITY : GuestLeaf.MISSING;
}

/** Frame of guest leaf k's page (the tail's shared page past the arrays), −1 past limitPfn or when unknown. */
export function frameAt(view: GuestView, k: number): number {
  if (k < view.leafFrames.length) return view.leafFrames[k]!;
  return k < guestLeafCount(view) && view.tail ? view.tail.frame : -1;
}

/** A u64 pfn as a number when that is exact (below 2^53), else the bigint itself: printed with hex(), never rounded. */
export function exactPfn(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}
