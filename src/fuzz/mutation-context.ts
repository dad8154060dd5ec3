// What a mutation class gets (the anatomy, the base file, a PRNG) and gives back (a Change), with the helpers
// every family uses: u64 encoding, random offsets in interesting regions, frame numbers worth pointing at.
import { PT_LEVELS_64 } from '../xen/abi.js';
import type { Anatomy, BaseReader } from './anatomy.js';
import type { Edit } from './patch.js';
import { p2msParts, type P2msParts } from './p2ms-builder.js';
import type { Rng } from './rng.js';
import { MAX_PTE_FRAME, TWO_POW_53, U64_MAX } from './numbers.js';

/** Share of random offsets drawn inside an interesting region (the rest: anywhere in the file). */
const IN_REGION_SHARE = 0.8;

/** What one class produced (null from a class = not applicable to this file). */
export interface Change {
  desc: string;
  edits?: Edit[];
  length?: number;
  fill?: Buffer;
  replace?: Buffer;
}

export interface GenContext {
  anatomy: Anatomy;
  base: BaseReader;
  /** lazily computed .p2ms parts (p2ms files only) */
  p2ms(): P2msParts | null;
}

export function genContext(anatomy: Anatomy, base: BaseReader): GenContext {
  let parts: P2msParts | null | undefined;
  return {
    anatomy,
    base,
    p2ms(): P2msParts | null {
      if (parts === undefined) parts = anatomy.p2ms ? p2msParts(base, anatomy.p2ms) : null;
      return parts;
    },
  };
}

export type ClassFn = (ctx: GenContext, rng: Rng) => Change | null;

export function u64Bytes(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, v));
  return b;
}

/** A random offset: mostly inside an interesting region, sometimes anywhere in the file. */
export function pickOffset(ctx: GenContext, rng: Rng): { offset: number; where: string } {
  const a = ctx.anatomy;
  if (a.regions.length > 0 && rng.chance(IN_REGION_SHARE)) {
    const g = rng.pick(a.regions);
    const len = Math.max(1, Math.min(g.length, a.size - g.start));
    return { offset: Math.min(a.size - 1, g.start + rng.below(len)), where: g.name };
  }
  return { offset: rng.below(a.size), where: 'anywhere' };
}

/** Frame numbers worth pointing at: absent, huge, the structures themselves. */
export function framePool(a: Anatomy): { frame: bigint; why: string }[] {
  const pool: { frame: bigint; why: string }[] = [
    { frame: 0n, why: 'frame 0' },
    { frame: 1n, why: 'frame 1' },
    { frame: BigInt(a.highFrame + 1), why: 'one past the highest frame' },
    { frame: BigInt(a.highFrame), why: 'the highest frame' },
    { frame: MAX_PTE_FRAME, why: '2^40 − 1 (largest PTE frame)' },
    { frame: (1n << 52n) - 1n, why: '2^52 − 1' },
    { frame: TWO_POW_53, why: '2^53' },
    { frame: U64_MAX, why: '~0' },
  ];
  if (a.frameList) pool.push({ frame: BigInt(a.frameList.fll.frame), why: 'the FLL page' });
  for (const s of a.frameList?.fl.slice(0, 2) ?? []) pool.push({ frame: BigInt(s.frame), why: s.role });
  for (const s of a.leaves.slice(0, 2)) pool.push({ frame: BigInt(s.frame), why: s.role });
  const l4 = a.ptSteps.find((s) => s.level === PT_LEVELS_64);
  if (l4) pool.push({ frame: BigInt(l4.table), why: `the L4 table (${l4.walk})` });
  return pool;
}
