// Cycles and bad pointers in the structures the walks follow (docs/fuzz.md): the frame list (map_p2m_tree),
// page tables (map_p2m_list, the guest's translations; Intel SDM vol. 3A §4.5 P/PS bits), the p2m_top tree.
import { _PAGE_PRESENT, _PAGE_PSE, L3_SHIFT, P2M_ENTRY_SIZE, PAGE_SHIFT, PAGE_SIZE, PT_LEVELS_64, PTE_SIZE, PTRS_PER_TABLE, hex } from '../xen/abi.js';
import type { FrameSite } from './anatomy.js';
import { framePool, u64Bytes, type Change, type ClassFn } from './mutation-context.js';
import { MAX_PTE_FRAME, PTE_FRAME_MASK, PTR_SIZE, U64_MAX, U64_PER_PAGE, VA_NONCANONICAL_LOW } from './numbers.js';

/** PTE bits that are neither flags nor frame (52..62: ignored/protection keys) and NX (63). */
const PTE_HIGH_BITS = U64_MAX ^ PTE_FRAME_MASK ^ BigInt(PAGE_SIZE - 1);
/** Share of guest-tree mutations aimed at a mid page (the rest: the top page). */
const MID_PAGE_SHARE = 0.5;
/** Frames in a 1 GiB leaf (PS at L3): its frame must be aligned to this. */
const FRAMES_PER_1G = 1n << BigInt(L3_SHIFT - PAGE_SHIFT);

/** Frame-list cycles and bad entries (map_p2m_tree). */
export const flCycle: ClassFn = (ctx, rng) => {
  const fl = ctx.anatomy.frameList;
  if (!fl) return null;
  const frames = framePool(ctx.anatomy);
  const entryAt = (s: FrameSite, slot: number): number => s.offset + slot * P2M_ENTRY_SIZE;
  const used = Math.max(1, fl.fl.length);
  const kind = rng.pick(['fll→fll', 'fll→fl', 'fll→x', 'fl→self', 'fl→fll', 'fl→x', 'fll-run', 'fl-all→fll', 'fll-tail']);
  const flPage = fl.fl.length > 0 ? rng.pick(fl.fl) : null;
  const slot = rng.below(used);
  switch (kind) {
    case 'fll→fll':
      return { desc: `FLL entry ${slot} → the FLL page itself (${hex(fl.fll.frame)}): a frame-list cycle`, edits: [{ offset: entryAt(fl.fll, slot), bytes: u64Bytes(BigInt(fl.fll.frame)) }] };
    case 'fll→fl': {
      if (!flPage) return null;
      return { desc: `FLL entry ${slot} → ${flPage.role} (${hex(flPage.frame)}): two FLL slots share a frame-list page`, edits: [{ offset: entryAt(fl.fll, slot), bytes: u64Bytes(BigInt(flPage.frame)) }] };
    }
    case 'fll→x': {
      const f = rng.pick(frames);
      return { desc: `FLL entry ${slot} → ${hex(f.frame)} (${f.why})`, edits: [{ offset: entryAt(fl.fll, slot), bytes: u64Bytes(f.frame) }] };
    }
    case 'fl→self': {
      if (!flPage) return null;
      const s = rng.below(U64_PER_PAGE);
      return { desc: `${flPage.role} entry ${s} → the frame-list page itself (${hex(flPage.frame)}): a leaf that is the frame list`, edits: [{ offset: entryAt(flPage, s), bytes: u64Bytes(BigInt(flPage.frame)) }] };
    }
    case 'fl→fll': {
      if (!flPage) return null;
      const s = rng.below(U64_PER_PAGE);
      return { desc: `${flPage.role} entry ${s} → the FLL page (${hex(fl.fll.frame)})`, edits: [{ offset: entryAt(flPage, s), bytes: u64Bytes(BigInt(fl.fll.frame)) }] };
    }
    case 'fl→x': {
      if (!flPage) return null;
      const s = rng.below(U64_PER_PAGE);
      const f = rng.pick(frames);
      return { desc: `${flPage.role} entry ${s} → ${hex(f.frame)} (${f.why})`, edits: [{ offset: entryAt(flPage, s), bytes: u64Bytes(f.frame) }] };
    }
    case 'fll-run': {
      const v = BigInt(fl.fl[0]?.frame ?? fl.fll.frame);
      const bytes = Buffer.concat(Array.from({ length: U64_PER_PAGE }, () => u64Bytes(v)));
      return { desc: `every FLL entry → ${hex(v)} (one run of identical entries: trimming to slot 0)`, edits: [{ offset: fl.fll.offset, bytes }] };
    }
    case 'fl-all→fll': {
      if (!flPage) return null;
      const bytes = Buffer.concat(Array.from({ length: U64_PER_PAGE }, () => u64Bytes(BigInt(fl.fll.frame))));
      return { desc: `every entry of ${flPage.role} → the FLL page (${hex(fl.fll.frame)})`, edits: [{ offset: flPage.offset, bytes }] };
    }
    default: {
      const s = rng.range(used, U64_PER_PAGE - 1);
      const f = rng.pick(frames);
      return { desc: `FLL entry ${s} (past the used ones) → ${hex(f.frame)} (${f.why})`, edits: [{ offset: entryAt(fl.fll, s), bytes: u64Bytes(f.frame) }] };
    }
  }
};

/** Page-table cycles and bad entries on the walks the views take (map_p2m_list, the guest's translations). */
export const ptCycle: ClassFn = (ctx, rng) => {
  const steps = ctx.anatomy.ptSteps;
  if (steps.length === 0) return null;
  const s = rng.pick(steps);
  const flags = s.entry & BigInt(PAGE_SIZE - 1);
  const withFrame = (frame: bigint, f = flags | BigInt(_PAGE_PRESENT)): bigint => ((frame << BigInt(PAGE_SHIFT)) & PTE_FRAME_MASK) | f | (s.entry & PTE_HIGH_BITS);
  const root = steps.find((x) => x.walk === s.walk && x.level === PT_LEVELS_64) ?? s;
  const parent = steps.find((x) => x.walk === s.walk && x.level === s.level + 1);
  const at = s.tableOffset + s.index * PTE_SIZE;
  const where = `L${s.level} entry ${s.index} of table ${hex(s.table)} (${s.walk}, VA ${hex(s.va)})`;
  const kind = rng.pick(['self', 'self', 'root', 'parent', 'pse', 'not-present', 'frame', 'all-ones', 'high-bits', 'table-self', 'l4-all-self']);
  const one = (value: bigint, why: string): Change => ({ desc: `${where}: ${hex(s.entry)} → ${hex(value)} (${why})`, edits: [{ offset: at, bytes: u64Bytes(value) }] });
  switch (kind) {
    case 'self':
      return one(withFrame(BigInt(s.table)), 'points at its own table');
    case 'root':
      return one(withFrame(BigInt(root.table)), `points at the L4 table ${hex(root.table)}`);
    case 'parent':
      return parent ? one(withFrame(BigInt(parent.table)), `points at its parent L${parent.level} table`) : one(withFrame(BigInt(s.table)), 'points at its own table');
    case 'pse': {
      const frame = rng.pick([MAX_PTE_FRAME & ~(FRAMES_PER_1G - 1n), BigInt(s.table), 0n]);
      return one(withFrame(frame, flags | BigInt(_PAGE_PRESENT | _PAGE_PSE)), s.level === PT_LEVELS_64 ? 'reserved PS bit in an L4 entry' : `large leaf at L${s.level} naming ${hex(frame)}`);
    }
    case 'not-present':
      return one(s.entry & ~BigInt(_PAGE_PRESENT), 'present bit cleared');
    case 'frame': {
      const f = rng.pick(framePool(ctx.anatomy));
      return one(withFrame(f.frame), `names ${f.why}`);
    }
    case 'all-ones':
      return one(U64_MAX, 'every bit set');
    case 'high-bits':
      return one(s.entry | PTE_HIGH_BITS, 'bits 52..63 set (ignored bits and NX)');
    case 'table-self': {
      const v = withFrame(BigInt(s.table), BigInt(_PAGE_PRESENT));
      return { desc: `every entry of L${s.level} table ${hex(s.table)} (${s.walk}) → the table itself`, edits: [{ offset: s.tableOffset, bytes: Buffer.concat(Array.from({ length: PTRS_PER_TABLE }, () => u64Bytes(v))) }] };
    }
    default: {
      const v = ((BigInt(root.table) << BigInt(PAGE_SHIFT)) & PTE_FRAME_MASK) | BigInt(_PAGE_PRESENT);
      return { desc: `every L4 entry of ${hex(root.table)} (${root.walk}) → the L4 itself`, edits: [{ offset: root.tableOffset, bytes: Buffer.concat(Array.from({ length: PTRS_PER_TABLE }, () => u64Bytes(v))) }] };
    }
  }
};

/** p2m_top / mid pointer cycles (guest-view.ts readTree). */
export const guestTree: ClassFn = (ctx, rng) => {
  const t = ctx.anatomy.guestTree;
  if (!t) return null;
  const mid = t.mids.length > 0 ? rng.pick(t.mids) : null;
  const targets: [bigint, string][] = [
    [t.topVa, 'the p2m_top page'],
    [0n, '0'],
    [VA_NONCANONICAL_LOW, 'non-canonical 2^47'],
    [U64_MAX, '~0'],
    [t.topVa + 8n, 'p2m_top + 8 (unaligned)'],
  ];
  if (mid) targets.push([mid.va, `mid page ${hex(mid.site.frame)}`]);
  if (t.missingVa !== null) targets.push([t.missingVa, 'p2m_missing']);
  if (t.identityVa !== null) targets.push([t.identityVa, 'p2m_identity']);
  if (t.midMissingVa !== null) targets.push([t.midMissingVa, 'p2m_mid_missing']);
  const [value, why] = rng.pick(targets);
  if (mid && rng.chance(MID_PAGE_SHARE)) {
    const slot = rng.below(U64_PER_PAGE);
    return { desc: `mid page ${hex(mid.site.frame)} entry ${slot} → ${hex(value)} (${why})`, edits: [{ offset: mid.site.offset + slot * PTR_SIZE, bytes: u64Bytes(value) }] };
  }
  const slot = rng.below(U64_PER_PAGE);
  return { desc: `p2m_top page ${hex(t.top.frame)} entry ${slot} → ${hex(value)} (${why})`, edits: [{ offset: t.top.offset + slot * PTR_SIZE, bytes: u64Bytes(value) }] };
};
