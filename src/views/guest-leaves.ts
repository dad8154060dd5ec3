// A guest view's per-leaf arrays written in leaf order, with the trailing run of one shared page (p2m_missing
// or p2m_identity, arch/x86/xen/p2m.c) kept as a count: the GuestView tail (views/p2m-leaves.ts). A linux ≥ 3.19
// list maps xen_p2m_size = 512 GiB of pfns whatever the guest's size, so the arrays follow the guest's leaves.
import { GuestLeaf, type GuestLeafKind, type GuestView } from './p2m-leaves.js';

/** Leaves the arrays start with before they first grow. */
const INITIAL_CAPACITY = 1024;

/** The arrays a reader built, the uniform tail past them, and one past the last PAGE leaf (0 when none). */
export interface BuiltLeaves {
  kinds: Uint8Array;
  leafFrames: Float64Array;
  tail: { kind: GuestLeafKind; frame: number } | undefined;
  pagesEnd: number;
}

/**
 * Leaves appended in order (page / run / copy). A run of shared leaves is only counted while it is the
 * last thing appended; anything else after it writes it out first. Copies whose source lies inside the
 * pending run (the GiBs a list maps through one shared PTE page, a tree's shared p2m_mid_identity) extend it.
 */
export class LeafBuilder {
  private kinds: Uint8Array;
  private frames: Float64Array;
  /** leaves appended so far */
  private next = 0;
  /** leaves written into the arrays: [written, next) is the pending run */
  private written = 0;
  private runKind = -1;
  private runFrame = -1;
  private lastPage = -1;

  constructor(private readonly total: number) {
    const cap = Math.min(total, INITIAL_CAPACITY);
    this.kinds = new Uint8Array(cap);
    this.frames = new Float64Array(cap);
  }

  /** Append one leaf. */
  leaf(kind: GuestLeafKind, frame: number): void {
    if (kind !== GuestLeaf.PAGE) {
      if (kind === this.runKind && frame === this.runFrame) this.next++;
      else this.run(kind, frame, 1);
      return;
    }
    this.flush();
    this.reserve(1);
    const k = this.next++;
    this.kinds[k] = GuestLeaf.PAGE;
    this.frames[k] = frame;
    this.written = this.next;
    this.lastPage = k;
  }

  /** Append `n` leaves of one kind on one frame. */
  run(kind: GuestLeafKind, frame: number, n: number): void {
    if (kind !== GuestLeaf.PAGE) {
      if (kind !== this.runKind || frame !== this.runFrame) {
        this.flush();
        this.runKind = kind;
        this.runFrame = frame;
      }
      this.next += n;
      return;
    }
    this.flush();
    this.reserve(n);
    this.kinds.fill(kind, this.next, this.next + n);
    this.frames.fill(frame, this.next, this.next + n);
    this.next += n;
    this.written = this.next;
    this.lastPage = this.next - 1;
  }

  /** Append a copy of leaves [from, from + n) (appended earlier). */
  copy(from: number, n: number): void {
    if (this.runKind >= 0 && from >= this.written) {
      this.next += n; // the source is all in the pending run
      return;
    }
    const kind = this.kinds[from]!;
    if (kind !== GuestLeaf.PAGE && this.uniform(from, n)) {
      this.run(kind as GuestLeafKind, this.frames[from]!, n); // one shared page: a run, not a copy
      return;
    }
    this.flush();
    this.reserve(n);
    const at = this.next;
    this.kinds.copyWithin(at, from, from + n);
    this.frames.copyWithin(at, from, from + n);
    // the copy's last PAGE leaf: the source's, which is lastPage itself unless a later one follows it
    const last = this.lastPage;
    const inSource = last < from ? -1 : last < from + n ? last - from : this.kinds.subarray(from, from + n).lastIndexOf(GuestLeaf.PAGE);
    if (inSource >= 0) this.lastPage = at + inSource;
    this.next += n;
    this.written = this.next;
  }

  /** The arrays up to the uniform tail (see settleTail), once every leaf is appended. */
  finish(): BuiltLeaves {
    if (this.next !== this.total) throw new Error(`guest leaves: ${this.next} appended, ${this.total} expected`);
    const tail = this.runKind >= 0 ? { kind: this.runKind as GuestLeafKind, frame: this.runFrame } : undefined;
    const cut = settledLength(this.kinds, this.frames, this.written, tail);
    return {
      kinds: this.kinds.subarray(0, cut.length),
      leafFrames: this.frames.subarray(0, cut.length),
      tail: cut.tail,
      pagesEnd: this.lastPage + 1,
    };
  }

  /** Whether the written leaves [from, from + n) are all of one kind on one frame. */
  private uniform(from: number, n: number): boolean {
    const kinds = this.kinds;
    const frames = this.frames;
    const kind = kinds[from];
    const frame = frames[from];
    for (let k = from + 1; k < from + n; k++) if (kinds[k] !== kind || frames[k] !== frame) return false;
    return true;
  }

  /** Write the pending run into the arrays. */
  private flush(): void {
    if (this.runKind < 0) return;
    const n = this.next - this.written;
    this.next = this.written;
    this.reserve(n);
    this.kinds.fill(this.runKind, this.next, this.next + n);
    this.frames.fill(this.runFrame, this.next, this.next + n);
    this.next += n;
    this.written = this.next;
    this.runKind = -1;
    this.runFrame = -1;
  }

  /** Room for `n` more leaves in the arrays. */
  private reserve(n: number): void {
    const need = this.next + n;
    if (need <= this.kinds.length) return;
    const cap = Math.min(this.total, Math.max(need, this.kinds.length * 2));
    const kinds = new Uint8Array(cap);
    kinds.set(this.kinds.subarray(0, this.written));
    const frames = new Float64Array(cap);
    frames.set(this.frames.subarray(0, this.written));
    this.kinds = kinds;
    this.frames = frames;
  }
}

/**
 * The canonical cut: the arrays end at the last leaf that differs from the tail (kind and frame), the tail
 * being the leaves past `length` or, when there are none, the last leaf if it is a shared one.
 */
function settledLength(
  kinds: Uint8Array,
  frames: Float64Array,
  length: number,
  tail: { kind: GuestLeafKind; frame: number } | undefined,
): { length: number; tail: { kind: GuestLeafKind; frame: number } | undefined } {
  let n = length;
  let t = tail;
  if (!t && n > 0 && kinds[n - 1] !== GuestLeaf.PAGE) t = { kind: kinds[n - 1] as GuestLeafKind, frame: frames[n - 1]! };
  if (!t) return { length: n, tail: undefined };
  while (n > 0 && kinds[n - 1] === t.kind && frames[n - 1] === t.frame) n--;
  return { length: n, tail: t };
}

/** Cut a view's arrays back to its uniform tail after its kinds changed (views/guest-view.ts markSharedSentinels). */
export function settleTail(view: GuestView): void {
  const cut = settledLength(view.kinds, view.leafFrames, view.kinds.length, view.tail);
  view.kinds = view.kinds.subarray(0, cut.length);
  view.leafFrames = view.leafFrames.subarray(0, cut.length);
  if (cut.tail) view.tail = cut.tail;
}
