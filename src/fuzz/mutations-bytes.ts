// Format-blind mutation classes (docs/fuzz.md): bit flips, byte runs, truncations, extensions, and length
// inflation of the layout's length/offset/count fields and of length-like integers.
import { PAGE_SIZE, hex } from '../xen/abi.js';
import type { IntField } from './anatomy.js';
import { pickOffset, type Change, type ClassFn, type GenContext } from './mutation-context.js';
import { TWO_POW_53, U32_LIMIT } from './numbers.js';
import type { Edit } from './patch.js';
import type { Rng } from './rng.js';
import { recordFlood } from './mutations-stream.js';

const BITS_PER_BYTE = 8;
/** Share of truncations cut at a landmark (region/field boundary) rather than anywhere. */
const LANDMARK_CUT_SHARE = 0.7;
/** Largest random extension. */
const MAX_EXTENSION = 64 * 1024;

function intBytes(v: bigint, width: number, endian: 'le' | 'be'): Buffer {
  const b = Buffer.alloc(width);
  let x = BigInt.asUintN(width * BITS_PER_BYTE, v);
  for (let i = 0; i < width; i++) {
    b[endian === 'le' ? i : width - 1 - i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return b;
}

function readInt(b: Buffer, width: number, endian: 'le' | 'be'): bigint {
  let x = 0n;
  for (let i = 0; i < width; i++) x |= BigInt(b[endian === 'le' ? i : width - 1 - i] ?? 0) << BigInt(i * BITS_PER_BYTE);
  return x;
}

/** How many bits a bitflip mutant flips (single flips most often). */
const FLIP_COUNTS = [1, 1, 1, 2, 3, 4, 8];

export const bitflip: ClassFn = (ctx, rng) => {
  const n = rng.pick(FLIP_COUNTS);
  const edits: Edit[] = [];
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    const { offset, where } = pickOffset(ctx, rng);
    const old = ctx.base.read(offset, 1)[0] ?? 0;
    const bit = rng.below(BITS_PER_BYTE);
    const now = old ^ (1 << bit);
    edits.push({ offset, bytes: Buffer.of(now) });
    parts.push(`@${offset} (${where}) bit ${bit}: ${hex(old)} → ${hex(now)}`);
  }
  return { desc: `bit flip ${parts.join('; ')}`, edits };
};

export const byteRun: ClassFn = (ctx, rng) => {
  const { offset, where } = pickOffset(ctx, rng);
  const len = Math.min(ctx.anatomy.size - offset, rng.pick([1, 2, 4, 8, 8, 16, 64, 256, 1024, PAGE_SIZE]));
  const mode = rng.pick(['0x00', '0xff', 'random', '0x80']);
  const bytes = mode === 'random' ? rng.bytes(len) : Buffer.alloc(len, mode === '0x00' ? 0 : mode === '0xff' ? 0xff : 0x80);
  return { desc: `byte run @${offset} (${where}) length ${len} set to ${mode}`, edits: [{ offset, bytes }] };
};

export const truncate: ClassFn = (ctx, rng) => {
  const a = ctx.anatomy;
  const bounds: number[] = [0, 1, 7, 8, 63, 64, 65, a.size - 1, a.size - 8, a.size - PAGE_SIZE, a.size - PAGE_SIZE + 1, Math.floor(a.size / 2)];
  for (const g of a.regions) bounds.push(g.start, g.start + 1, g.start + g.length - 1, g.start + g.length);
  for (const f of a.fields) bounds.push(f.offset, f.offset + f.width - 1);
  const choice = rng.chance(LANDMARK_CUT_SHARE) ? rng.pick(bounds) : rng.below(a.size);
  const length = Math.max(0, Math.min(a.size - 1, choice));
  return { desc: `truncate to ${length} of ${a.size} bytes`, length };
};

/** Share of stream extensions that insert a flood of empty records before END instead of appending bytes. */
const FLOOD_SHARE = 0.25;

export const extend: ClassFn = (ctx, rng) => {
  const flood = recordFlood(ctx, rng, FLOOD_SHARE);
  if (flood) return flood;
  const n = rng.pick([1, 7, 8, PAGE_SIZE, rng.range(1, MAX_EXTENSION)]);
  const mode = rng.pick(['zeros', '0xff', 'random', 'copy of the head']);
  const fill =
    mode === 'random' ? rng.bytes(n) : mode === 'zeros' ? Buffer.alloc(n) : mode === '0xff' ? Buffer.alloc(n, 0xff) : Buffer.concat([ctx.base.read(0, n), Buffer.alloc(n)]).subarray(0, n);
  return { desc: `append ${n} bytes of ${mode}`, length: ctx.anatomy.size + n, fill };
};

/** New values for a length/offset/count field of `width` bytes holding `v`. */
function inflatedValue(v: bigint, width: number, rng: Rng): { value: bigint; how: string } {
  const max = (1n << BigInt(width * BITS_PER_BYTE)) - 1n;
  const choices: [string, () => bigint][] = [
    ['0', () => 0n],
    ['1', () => 1n],
    ['−1', () => v - 1n],
    ['+1', () => v + 1n],
    ['+8', () => v + 8n],
    ['×2', () => v * 2n],
    ['×4096', () => v * BigInt(PAGE_SIZE)],
    ['×2^20', () => v << 20n],
    ['all ones', () => max],
    ['top bit', () => 1n << BigInt(width * BITS_PER_BYTE - 1)],
    ['2^31', () => 1n << 31n],
    ['2^32 − 1', () => BigInt(U32_LIMIT - 1)],
    ['2^32', () => BigInt(U32_LIMIT)],
    ['2^40', () => 1n << 40n],
    ['2^53 − 1', () => TWO_POW_53 - 1n],
    ['2^53', () => TWO_POW_53],
    ['2^53 + 1', () => TWO_POW_53 + 1n],
    ['<<32', () => v << 32n],
    ['random', () => rng.u64()],
  ];
  const [how, f] = rng.pick(choices);
  return { value: BigInt.asUintN(width * BITS_PER_BYTE, f()), how };
}

function inflateField(ctx: GenContext, rng: Rng, f: IntField, label: string): Change {
  const old = readInt(ctx.base.read(f.offset, f.width), f.width, f.endian);
  const { value, how } = inflatedValue(old, f.width, rng);
  return {
    desc: `${label} ${f.name} (u${f.width * BITS_PER_BYTE}${f.endian} @${f.offset}) ${hex(old)} → ${hex(value)} (${how})`,
    edits: [{ offset: f.offset, bytes: intBytes(value, f.width, f.endian) }],
  };
}

export const fieldInflate: ClassFn = (ctx, rng) => {
  const fields = ctx.anatomy.fields.filter((f) => f.offset + f.width <= ctx.anatomy.size);
  return fields.length === 0 ? null : inflateField(ctx, rng, rng.pick(fields), 'length field');
};

export const intInflate: ClassFn = (ctx, rng) => {
  const ints = ctx.anatomy.genericInts;
  return ints.length === 0 ? null : inflateField(ctx, rng, rng.pick(ints), 'length-like integer');
};
