// The fuzz harness's deterministic PRNG (docs/fuzz.md): sfc32 seeded with splitmix32, so mutant `id` under
// `seed` is the same bytes in any process; and the --seed parser (FNV-1a for strings).
import { U32_LIMIT } from './numbers.js';

const BYTE_VALUES = 256;
/** splitmix32: golden-ratio increment and the two multipliers of its 32-bit finaliser (Vigna / Ettinger). */
const SPLITMIX_GAMMA = 0x9e3779b9;
const SPLITMIX_MUL1 = 0x21f0aaad;
const SPLITMIX_MUL2 = 0x735a2d97;
/** Mixes the mutant id into the seed (murmur3's c1 multiplier). */
const STREAM_MUL = 0x85ebca6b;
/** FNV-1a 32-bit offset basis and prime. */
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
/** sfc32 outputs discarded after seeding (its authors' recommendation). */
const SFC32_WARMUP = 12;

/** splitmix32 step, used to seed sfc32. */
function splitmix32(state: number): [number, number] {
  const s = (state + SPLITMIX_GAMMA) >>> 0;
  let z = s;
  z = Math.imul(z ^ (z >>> 16), SPLITMIX_MUL1);
  z = Math.imul(z ^ (z >>> 15), SPLITMIX_MUL2);
  return [s, (z ^ (z >>> 15)) >>> 0];
}

/** Turn a --seed argument (a number or any string) into a u32. FNV-1a for strings. */
export function seedFrom(value: string | number): number {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value >>> 0;
  const s = String(value);
  if (/^\d+$/.test(s) && Number.isSafeInteger(Number(s))) return Number(s) >>> 0;
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME) >>> 0;
  return h;
}

/** sfc32 (Chris Doty-Humphrey's small fast counting generator), seeded from (seed, stream). */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d = 1;

  constructor(seed: number, stream = 0) {
    let st = (seed ^ Math.imul(stream >>> 0, STREAM_MUL)) >>> 0;
    let v: number;
    [st, v] = splitmix32(st);
    this.a = v;
    [st, v] = splitmix32(st ^ (stream >>> 0));
    this.b = v;
    [st, v] = splitmix32(st + Math.floor(stream / U32_LIMIT));
    this.c = v;
    for (let i = 0; i < SFC32_WARMUP; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** uniform integer in [0, n) for 0 < n ≤ 2^53 */
  below(n: number): number {
    if (n <= 0) return 0;
    if (n <= U32_LIMIT) return Math.floor((this.u32() / U32_LIMIT) * n);
    return Math.floor(((this.u32() * U32_LIMIT + this.u32()) / (U32_LIMIT * U32_LIMIT)) * n);
  }

  /** uniform integer in [lo, hi] */
  range(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.u32() / U32_LIMIT < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.pick: empty list');
    return items[this.below(items.length)]!;
  }

  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & (BYTE_VALUES - 1);
    return b;
  }

  /** pick by weight; items with weight ≤ 0 are never chosen */
  weighted<T>(items: readonly (readonly [T, number])[]): T {
    let total = 0;
    for (const [, w] of items) if (w > 0) total += w;
    let r = (this.u32() / U32_LIMIT) * total;
    for (const [item, w] of items) {
      if (w <= 0) continue;
      if (r < w) return item;
      r -= w;
    }
    return items.find(([, w]) => w > 0)![0];
  }
}
