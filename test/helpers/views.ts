// Hand-built audit views for tests: a toolstack view whose walk succeeded up to a bound, and a guest view
// of given leaf kinds and frames (no symbols, no structure frames, no notes).
import type { GuestView, ToolstackView } from '../../src/views/p2m-leaves.js';
import { P2M_PER_PAGE } from '../../src/xen/abi.js';

/** A successful walk covering pfns [0, boundPfn) with these leaf frames (< 0 = absent leaf). */
export function toolView(method: ToolstackView['method'], boundPfn: number, leafFrames: Float64Array): ToolstackView {
  return {
    method,
    archMaxPfn: BigInt(boundPfn),
    maxPfn: boundPfn - 1,
    leafFrames,
    failure: null,
    untrimmedMaxPfn: null,
    structureFrames: new Set(),
    notes: [],
  };
}

/** A guest view of kinds.length leaves; pfns past them read as `beyond`. */
export function guestView(
  layout: GuestView['layout'],
  beyond: GuestView['beyond'],
  kinds: Uint8Array,
  leafFrames: Float64Array,
  missingFrame: number,
  identityFrame: number,
): GuestView {
  return {
    layout,
    limitPfn: kinds.length * P2M_PER_PAGE,
    beyond,
    kinds,
    leafFrames,
    missingFrame,
    identityFrame,
    vars: {},
    structureFrames: new Set(),
    notes: [],
  };
}
