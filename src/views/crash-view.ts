// How the crash utility finds a dom0's p2m in a Xen kdump (crash-utility x86_64.c
// x86_64_xen_kdump_p2m_create, xen_dom0.c; linux-p2m.md §6): kernels with the xen_p2m_addr symbol
// (≥ 3.19, crash ≥ 7.1.5) use the kernel's own linear list; older ones the frame list from the crash
// note, read without any max_pfn bound (top page up to its first zero entry, every mid page whole).
import type { GuestView } from './p2m-leaves.js';
import type { GuestImage } from '../formats/guest-image.js';
import { P2M_MID_PER_PAGE, P2M_TOP_PER_PAGE } from '../xen/abi.js';

/** FLL values Linux uses for "not set up" and "invalid, use the linear list". */
const FLL_UNSET = 0n;
const FLL_INVALID = 0xffffffffffffffffn;

export interface CrashView {
  source: 'linear-list' | 'frame-list' | 'none';
  /** leaf page frame crash uses for leaf k, or -1 when it has none */
  leafFrame(k: number): number;
  /** the frame-list pages crash reads (mid pages of every top entry it follows) */
  structureFrames(): number[];
}

export function crashView(img: GuestImage, guest: GuestView): CrashView {
  if (guest.layout === 'list') {
    return { source: 'linear-list', leafFrame: (k) => (k < guest.leafFrames.length ? guest.leafFrames[k]! : -1), structureFrames: () => [] };
  }
  const fll = img.arch.pfnToMfnFrameListList;
  const fllPage = fll === FLL_UNSET || fll === FLL_INVALID || fll > BigInt(Number.MAX_SAFE_INTEGER) ? null : img.readFrame(Number(fll));
  if (!fllPage) return { source: 'none', leafFrame: () => -1, structureFrames: () => [] };
  const tops: number[] = [];
  for (let t = 0; t < P2M_TOP_PER_PAGE; t++) {
    const lo = fllPage.readUInt32LE(t * 8);
    const hi = fllPage.readUInt32LE(t * 8 + 4);
    if (lo === 0 && hi === 0) break;
    tops.push(hi * 0x100000000 + lo);
  }
  const mids = new Map<number, Float64Array | null>();
  const midOf = (t: number): Float64Array | null => {
    if (!mids.has(t)) {
      const page = t < tops.length ? img.readFrame(tops[t]!) : null;
      let arr: Float64Array | null = null;
      if (page) {
        arr = new Float64Array(P2M_MID_PER_PAGE);
        for (let m = 0; m < P2M_MID_PER_PAGE; m++) arr[m] = page.readUInt32LE(m * 8 + 4) * 0x100000000 + page.readUInt32LE(m * 8);
      }
      mids.set(t, arr);
    }
    return mids.get(t)!;
  };
  return {
    source: 'frame-list',
    leafFrame: (k) => {
      const mid = midOf(Math.floor(k / P2M_MID_PER_PAGE));
      const f = mid ? mid[k % P2M_MID_PER_PAGE]! : 0;
      return f > 0 ? f : -1;
    },
    structureFrames: () => [...new Set(tops)],
  };
}

/** Pages of [start, end) that crash reads through the same leaf pages as the guest (so correctly). */
export function crashReadablePages(cv: CrashView, guest: GuestView, start: number, end: number): number {
  let n = 0;
  for (let pfn = start; pfn < end; ) {
    const k = Math.floor(pfn / 512);
    const leafEnd = Math.min(end, (k + 1) * 512);
    const g = k < guest.leafFrames.length ? guest.leafFrames[k]! : -1;
    const c = cv.leafFrame(k);
    if (g >= 0 && c === g && c !== guest.missingFrame) n += leafEnd - pfn;
    pfn = leafEnd;
  }
  return n;
}
