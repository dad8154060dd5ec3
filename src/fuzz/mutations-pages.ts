// Mutation classes on whole pages (docs/fuzz.md): p2m leaf entries (the values the audit compares), the
// range bomb, and splices of one structure page (or a chunk) over another.
import { _PAGE_PRESENT, FOREIGN_FRAME_BIT, IDENTITY_FRAME_BIT, P2M_ENTRY_SIZE, P2M_PER_PAGE, PAGE_SHIFT, PAGE_SIZE, PTRS_PER_TABLE, hex } from '../xen/abi.js';
import { pickOffset, u64Bytes, type ClassFn } from './mutation-context.js';
import { U64_MAX } from './numbers.js';

/** Share of leaf mutations that overwrite the whole leaf page, and of splices that move whole pages. */
const WHOLE_LEAF_SHARE = 0.3;
/** Share of those that alternate entries instead of filling the page. */
const ALTERNATING_SHARE = 0.5;
const PAGE_SPLICE_SHARE = 0.7;

/** p2m leaf entries (the values the audit compares). */
export const p2mEntry: ClassFn = (ctx, rng) => {
  const leaves = ctx.anatomy.leaves;
  if (leaves.length === 0) return null;
  const leaf = rng.pick(leaves);
  const slot = rng.below(P2M_PER_PAGE);
  const [value, why] = rng.pick<[bigint, string]>([
    [U64_MAX, 'INVALID_P2M_ENTRY'],
    [(1n << BigInt(IDENTITY_FRAME_BIT)) | BigInt(slot), 'IDENTITY_FRAME'],
    [(1n << BigInt(FOREIGN_FRAME_BIT)) | 1n, 'FOREIGN_FRAME'],
    [(1n << BigInt(FOREIGN_FRAME_BIT)) | (1n << BigInt(IDENTITY_FRAME_BIT)), 'both marker bits'],
    [(1n << 52n) - 1n, '2^52 − 1'],
    [BigInt(leaf.frame), 'the leaf page itself'],
    [0n, '0'],
  ]);
  if (rng.chance(WHOLE_LEAF_SHARE)) {
    if (rng.chance(ALTERNATING_SHARE)) {
      // every other entry changed: up to 512 class ranges per leaf that uses this page
      const page = Buffer.from(ctx.base.read(leaf.offset, PAGE_SIZE));
      for (let k = 1; k < P2M_PER_PAGE; k += 2) page.writeBigUInt64LE(BigInt.asUintN(64, value), k * P2M_ENTRY_SIZE);
      return { desc: `${leaf.role} page ${hex(leaf.frame)}: every odd entry → ${hex(value)} (${why}), fragmenting the classes`, edits: [{ offset: leaf.offset, bytes: page }] };
    }
    const fillByte = rng.pick([0, 0xff]);
    return { desc: `whole ${leaf.role} page ${hex(leaf.frame)} set to ${hex(fillByte)} bytes`, edits: [{ offset: leaf.offset, bytes: Buffer.alloc(PAGE_SIZE, fillByte) }] };
  }
  return { desc: `${leaf.role} page ${hex(leaf.frame)} entry ${slot} → ${hex(value)} (${why})`, edits: [{ offset: leaf.offset + slot * P2M_ENTRY_SIZE, bytes: u64Bytes(value) }] };
};

/**
 * Range bomb: every entry of a guest-list L2 table → one L1 table, every entry of that L1 → one leaf,
 * and that leaf's entries alternating between their value and INVALID. One 4 KiB leaf then stands for up
 * to 2^18 leaves whose classes change at every pfn: the audit's range list grows with the pfn count.
 */
export const rangeBomb: ClassFn = (ctx, rng) => {
  const a = ctx.anatomy;
  const l2 = a.ptSteps.filter((s) => s.level === 2 && s.walk === 'guest linear list');
  const l1 = a.ptSteps.filter((s) => s.level === 1 && s.walk === 'guest linear list');
  const leaves = a.leaves.filter((l) => !l.role.includes('shared'));
  if (l2.length === 0 || l1.length === 0 || leaves.length === 0) return null;
  const t2 = rng.pick(l2);
  const t1 = rng.pick(l1);
  const leaf = rng.pick(leaves);
  const pte = (frame: number): bigint => (BigInt(frame) << BigInt(PAGE_SHIFT)) | BigInt(_PAGE_PRESENT);
  const table = (frame: number): Buffer => Buffer.concat(Array.from({ length: PTRS_PER_TABLE }, () => u64Bytes(pte(frame))));
  const page = Buffer.from(ctx.base.read(leaf.offset, PAGE_SIZE));
  for (let k = 1; k < P2M_PER_PAGE; k += 2) page.writeBigUInt64LE(U64_MAX, k * P2M_ENTRY_SIZE);
  return {
    desc: `range bomb: every entry of L2 table ${hex(t2.table)} → L1 table ${hex(t1.table)}, every entry of it → ${leaf.role} ${hex(leaf.frame)}, whose odd entries → INVALID`,
    edits: [
      { offset: t2.tableOffset, bytes: table(t1.table) },
      { offset: t1.tableOffset, bytes: table(leaf.frame) },
      { offset: leaf.offset, bytes: page },
    ],
  };
};

/** Copy one structure page (or a random chunk) over another. */
export const splice: ClassFn = (ctx, rng) => {
  const pages = [...ctx.anatomy.structure, ...ctx.anatomy.leaves, ...(ctx.anatomy.frameList ? [ctx.anatomy.frameList.fll] : [])];
  if (pages.length >= 2 && rng.chance(PAGE_SPLICE_SHARE)) {
    const from = rng.pick(pages);
    const to = rng.pick(pages.filter((p) => p.frame !== from.frame));
    return { desc: `page ${hex(to.frame)} (${to.role}) overwritten with page ${hex(from.frame)} (${from.role})`, edits: [{ offset: to.offset, bytes: ctx.base.read(from.offset, PAGE_SIZE) }] };
  }
  const src = pickOffset(ctx, rng);
  const dst = pickOffset(ctx, rng);
  const len = rng.pick([8, 16, 64, 512]);
  return { desc: `${len} bytes from @${src.offset} (${src.where}) copied to @${dst.offset} (${dst.where})`, edits: [{ offset: dst.offset, bytes: ctx.base.read(src.offset, len) }] };
};
