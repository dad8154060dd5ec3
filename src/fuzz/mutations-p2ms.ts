// .p2ms structure rewrites (docs/fuzz.md): metadata values the type checks accept and some they must refuse
// (cr3, maxFrame, symbols, sharedInfo, bootFacts …), and frames dropped from or added to the snapshot.
import { unpack } from 'msgpackr';
import { E820_RAM, E820_RESERVED, GiB, PAGE_SHIFT, PAGE_SIZE, START_KERNEL_MAP, XEN_VIRT_HOLE_START, hex } from '../xen/abi.js';
import type { Anatomy } from './anatomy.js';
import { framePool, type ClassFn } from './mutation-context.js';
import { U32_LIMIT, U64_MAX, VA_NONCANONICAL_LOW } from './numbers.js';
import { buildP2ms } from './p2ms-builder.js';
import type { Rng } from './rng.js';

type Meta = Record<string, unknown>;
type MetaEdit = (m: Meta, rng: Rng, a: Anatomy) => string;

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** Counts large enough to stress loops without the mutant file itself growing past a few MiB. */
const MANY = 50_000;

function bootFacts(m: Meta): Meta | null {
  const bf = m.bootFacts;
  return typeof bf === 'object' && bf !== null && !Array.isArray(bf) ? (bf as Meta) : null;
}

const META_EDITS: [string, MetaEdit][] = [
  ['cr3', (m, rng, a) => {
    const f = rng.pick(framePool(a));
    const v = rng.pick([
      '0x0',
      '0xffffffffffffffff',
      hex(BigInt.asUintN(64, f.frame << BigInt(PAGE_SHIFT))),
      hex(a.cr3 | BigInt(PAGE_SIZE - 1)),
      hex(a.arch.p2mCr3),
    ]);
    m.cr3 = v;
    return `metadata cr3 = ${v}`;
  }],
  ['cr3 type', (m, rng) => {
    const v = rng.pick<unknown>([5, null, '0xZZ', '', '0x' + 'f'.repeat(40), '-0x1']);
    m.cr3 = v;
    return `metadata cr3 = ${JSON.stringify(v)}`;
  }],
  ['maxFrame', (m, rng, a) => {
    const v = rng.pick<unknown>([0, 1, null, MAX_SAFE, -1, 0.5, 'x', Math.max(0, a.highFrame - 1), 2 ** 40]);
    m.maxFrame = v;
    return `metadata maxFrame = ${JSON.stringify(v)}`;
  }],
  ['frameSpace', (m, rng) => {
    const v = rng.pick(['pfn', 'mfn', 'xyz']);
    m.frameSpace = v;
    return `metadata frameSpace = ${v}`;
  }],
  ['guestWidth', (m, rng) => {
    const v = rng.pick([4, 0, 16]);
    m.guestWidth = v;
    return `metadata guestWidth = ${v}`;
  }],
  ['symbol drop', (m, rng) => {
    const syms = Array.isArray(m.symbols) ? (m.symbols as unknown[][]) : [];
    if (syms.length === 0) return 'no symbols to drop';
    const k = rng.below(syms.length);
    const name = String(syms[k]![0]);
    m.symbols = syms.filter((_, i) => i !== k);
    return `symbol ${name} removed`;
  }],
  ['symbol value', (m, rng) => {
    const syms = Array.isArray(m.symbols) ? (m.symbols as unknown[][]) : [];
    if (syms.length === 0) return 'no symbols to change';
    const k = rng.below(syms.length);
    const pair = syms[k]!;
    const cur = typeof pair[1] === 'string' && /^0x[0-9a-f]+$/i.test(pair[1]) ? BigInt(pair[1]) : 0n;
    const other = syms[rng.below(syms.length)]![1];
    const v = rng.pick<unknown>([
      '0x0',
      hex(U64_MAX),
      hex(VA_NONCANONICAL_LOW),
      hex(cur + BigInt(PAGE_SIZE - 3)),
      hex(cur + 1n),
      hex(XEN_VIRT_HOLE_START),
      other,
      12345,
      '0x' + '1'.repeat(17),
    ]);
    syms[k] = [pair[0], v];
    return `symbol ${String(pair[0])} = ${JSON.stringify(v)}`;
  }],
  ['symbols shape', (m, rng) => {
    const v = rng.pick<unknown>([null, 'x', [[]], [['only-a-name']], [['a', '0x1', 'extra']], [[1, '0x1']]]);
    m.symbols = v;
    return `metadata symbols = ${JSON.stringify(v)}`;
  }],
  ['symbols many', (m) => {
    const syms = Array.isArray(m.symbols) ? (m.symbols as unknown[][]) : [];
    const junk = Array.from({ length: MANY }, (_, i) => [`junk_${i}`, hex(START_KERNEL_MAP + BigInt(i * PAGE_SIZE))]);
    m.symbols = [...syms, ...junk];
    return `${MANY} extra symbols`;
  }],
  ['sharedInfo', (m, rng) => {
    const v = rng.pick<unknown>([null, Buffer.alloc(PAGE_SIZE - 1), Buffer.alloc(PAGE_SIZE), 'x', Buffer.alloc(PAGE_SIZE, 0xff)]);
    m.sharedInfo = v;
    return `metadata sharedInfo = ${v === null ? 'null' : Buffer.isBuffer(v) ? `${v.length} bytes of ${hex(v[0] ?? 0)}` : JSON.stringify(v)}`;
  }],
  ['bootFacts null', (m) => {
    m.bootFacts = null;
    return 'metadata bootFacts = null';
  }],
  ['bootFacts count', (m, rng) => {
    const bf = bootFacts(m);
    if (!bf) return 'no bootFacts';
    const key = rng.pick(['nrPages', 'maxPages', 'kernelMaxPfn', 'buildBound', 'released', 'seed']);
    const v = rng.pick<unknown>([0, 1, MAX_SAFE, 2 ** 40, -1, 1.5, NaN, Infinity]);
    bf[key] = v;
    return `bootFacts.${key} = ${String(v)}`;
  }],
  ['bootFacts e820', (m, rng) => {
    const bf = bootFacts(m);
    if (!bf) return 'no bootFacts';
    const key = rng.pick(['hostE820', 'kernelE820']);
    const e820 = Array.isArray(bf[key]) ? [...(bf[key] as unknown[])] : [];
    const mode = rng.pick(['huge entry', 'overflowing entry', 'many entries', 'unsorted', 'zero size', 'empty']);
    if (mode === 'huge entry') e820.push({ addr: 0, size: MAX_SAFE, type: E820_RAM });
    else if (mode === 'overflowing entry') e820.push({ addr: MAX_SAFE - 1, size: MAX_SAFE, type: E820_RAM });
    else if (mode === 'many entries') for (let i = 0; i < MANY; i++) e820.push({ addr: i * PAGE_SIZE * 2, size: PAGE_SIZE, type: i % 2 === 0 ? E820_RAM : E820_RESERVED });
    else if (mode === 'unsorted') e820.reverse().push({ addr: 0, size: GiB, type: E820_RESERVED });
    else if (mode === 'zero size') e820.push({ addr: U32_LIMIT, size: 0, type: E820_RAM });
    else e820.length = 0;
    bf[key] = e820;
    return `bootFacts.${key}: ${mode}`;
  }],
  ['bootFacts ranges', (m, rng) => {
    const bf = bootFacts(m);
    if (!bf) return 'no bootFacts';
    const key = rng.pick(['identity', 'extraRegions']);
    const ranges = Array.isArray(bf[key]) ? [...(bf[key] as unknown[])] : [];
    const r = rng.pick([
      { start: 0, end: MAX_SAFE },
      { start: 10, end: 5 },
      { start: MAX_SAFE - 1, end: MAX_SAFE },
      { start: 0, end: 2 ** 40 },
    ]);
    ranges.push(r);
    bf[key] = ranges;
    return `bootFacts.${key} += ${JSON.stringify(r)}`;
  }],
  ['bootFacts remapped', (m, rng) => {
    const bf = bootFacts(m);
    if (!bf) return 'no bootFacts';
    const rec = rng.pick([
      { from: { start: 0, end: MAX_SAFE }, to: { start: 0, end: MAX_SAFE }, how: 'remap' },
      { from: { start: 100, end: 50 }, to: { start: 0, end: 2 ** 40 }, how: 'populate' },
      { from: { start: 0, end: 1 }, to: { start: MAX_SAFE - 1, end: MAX_SAFE }, how: 'remap' },
    ]);
    bf.remapped = [...(Array.isArray(bf.remapped) ? bf.remapped : []), rec];
    return `bootFacts.remapped += ${JSON.stringify(rec)}`;
  }],
  ['bootFacts history', (m, rng) => {
    const bf = bootFacts(m);
    if (!bf) return 'no bootFacts';
    const v = rng.pick<unknown[]>([[], [{ value: MAX_SAFE, by: 'x' }], Array.from({ length: MANY }, (_, i) => ({ value: i, by: 'step' }))]);
    bf.xenMaxP2mPfnHistory = v;
    return `bootFacts.xenMaxP2mPfnHistory = ${v.length} entries`;
  }],
  ['bootFacts strings', (m, rng) => {
    const bf = bootFacts(m);
    if (!bf) return 'no bootFacts';
    const mode = rng.pick(['profile', 'messages', 'config', 'dom0Mem', 'role']);
    if (mode === 'profile') bf.profile = rng.pick(['', 'no-such-profile', 'x'.repeat(MANY)]);
    else if (mode === 'messages') bf.messages = Array.from({ length: MANY }, (_, i) => `message ${i}`);
    else if (mode === 'config') bf.config = { dom0_mem: '-1', junk: 'x'.repeat(MANY) };
    else if (mode === 'dom0Mem') bf.dom0Mem = rng.pick(['', 'max:0', '-99999999999999g', '1t,max:2t']);
    else bf.role = 'domX';
    return `bootFacts.${mode} changed`;
  }],
  ['createdBy', (m, rng) => {
    const v = rng.pick<unknown>([7, 'x'.repeat(MANY), null]);
    m.createdBy = v;
    return `metadata createdBy = ${typeof v === 'string' ? `${v.length} chars` : JSON.stringify(v)}`;
  }],
  ['unknown keys', (m) => {
    m.__proto__junk = { a: 1 };
    m.extra = Array.from({ length: 16 }, (_, i) => i);
    return 'unknown metadata keys added';
  }],
];

export const p2msMeta: ClassFn = (ctx, rng) => {
  const parts = ctx.p2ms();
  if (!parts) return null;
  const meta = unpack(parts.metaBlock) as Meta;
  const [name, edit] = rng.pick(META_EDITS);
  const what = edit(meta, rng, ctx.anatomy);
  return { desc: `p2ms rewrite (${name}): ${what}`, replace: buildP2ms(meta, parts.frames, (f) => parts.pageOf(f)) };
};

export const p2msFrames: ClassFn = (ctx, rng) => {
  const parts = ctx.p2ms();
  if (!parts) return null;
  const meta = unpack(parts.metaBlock) as Meta;
  const a = ctx.anatomy;
  const structure = [...a.structure, ...(a.frameList ? [a.frameList.fll, ...a.frameList.fl] : []), ...a.leaves];
  const mode = rng.pick(['drop structure', 'drop structure', 'drop random', 'add huge', 'add copy', 'drop all']);
  let frames = [...parts.frames];
  let what: string;
  const extra = new Map<number, Buffer>();
  if (mode === 'drop structure' && structure.length > 0) {
    const s = rng.pick(structure);
    frames = frames.filter((f) => f !== s.frame);
    what = `frame ${hex(s.frame)} (${s.role}) dropped from the snapshot`;
  } else if (mode === 'drop random' && frames.length > 0) {
    const f = rng.pick(frames);
    frames = frames.filter((x) => x !== f);
    what = `frame ${hex(f)} dropped from the snapshot`;
  } else if (mode === 'add huge' || mode === 'add copy') {
    const f = rng.pick([MAX_SAFE, 2 ** 52 - 1, 2 ** 40, a.highFrame + 1]);
    const src = structure.length > 0 ? rng.pick(structure) : null;
    const page = mode === 'add copy' && src ? Buffer.from(parts.pageOf(src.frame)) : Buffer.alloc(PAGE_SIZE, rng.pick([0, 0xff]));
    if (!frames.includes(f)) frames.push(f);
    frames.sort((x, y) => x - y);
    extra.set(f, page);
    what = `frame ${hex(f)} added (${mode === 'add copy' && src ? `a copy of ${src.role}` : `filled with ${hex(page[0] ?? 0)}`})`;
  } else {
    frames = [];
    what = 'every frame dropped';
  }
  return { desc: `p2ms rewrite (frames): ${what}`, replace: buildP2ms(meta, frames, (f) => extra.get(f) ?? parts.pageOf(f)) };
};
