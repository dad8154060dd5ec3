// Unit table for the per-leaf classifier (src/audit/compare-leaf.ts): one row per classification rule
// of ARCHITECTURE.md "Classification", leaf pages built by hand, expected ranges written by hand.
import { describe, expect, it } from 'vitest';
import { ALL_INVALID_PAGE, RangeSink, classifyLeaf, triplesToRanges, type GuestLeafInput, type ToolLeafInput } from '../src/audit/compare-leaf.js';
import { GuestLeaf } from '../src/views/p2m-leaves.js';
import { PfnClass, ToolLeaf, type PfnClassName } from '../src/audit/pfn-class.js';
import { FOREIGN_FRAME_HI, IDENTITY_FRAME_HI, INVALID_P2M_ENTRY_WORD, P2M_PER_PAGE, PAGE_SIZE } from '../src/xen/abi.js';

type Entry = readonly [lo: number, hi: number];
type Want = [start: number, end: number, cls: PfnClassName][];

/** The leaf under test covers pfns 0x40000..0x401ff. */
const F = 0x40000;
/** A toolstack bound well past the leaf. */
const FAR = 0x80000;

const INVALID: Entry = [INVALID_P2M_ENTRY_WORD, INVALID_P2M_ENTRY_WORD];
/** RAM: pfn 0x40000+i → mfn 0x200000+i. */
const ram = (i: number): Entry => [0x200000 + i, 0];
/** IDENTITY_FRAME(pfn) = pfn | 1 << 62. */
const ident = (i: number): Entry => [F + i, IDENTITY_FRAME_HI];
/** FOREIGN_FRAME(mfn) = mfn | 1 << 63. */
const foreign = (i: number): Entry => [0x300000 + i, FOREIGN_FRAME_HI];

function page(entry: (i: number) => Entry): Buffer {
  const b = Buffer.alloc(PAGE_SIZE);
  for (let i = 0; i < P2M_PER_PAGE; i++) {
    const [lo, hi] = entry(i);
    b.writeUInt32LE(lo >>> 0, i * 8);
    b.writeUInt32LE(hi >>> 0, i * 8 + 4);
  }
  return b;
}

/** `base(i)` everywhere, except entries i in [from, to) which read `e(i)`. */
function patch(base: (i: number) => Entry, from: number, to: number, e: (i: number) => Entry): (i: number) => Entry {
  return (i) => (i >= from && i < to ? e(i) : base(i));
}

const RAM_PAGE = page(ram);
const PAGE = GuestLeaf.PAGE;
const g = (p: Buffer | null): GuestLeafInput => ({ kind: PAGE, page: p });
const gKind = (kind: GuestLeafInput['kind']): GuestLeafInput => ({ kind, page: null });
const t = (p: Buffer | null, samePage = false): ToolLeafInput => ({ code: 0x5000, page: p, samePage });
const tCode = (code: number): ToolLeafInput => ({ code, page: null, samePage: false });

interface Row {
  name: string;
  g: GuestLeafInput;
  t: ToolLeafInput;
  bound: number;
  want: Want;
}

const rows: Row[] = [
  // ram
  { name: 'ram: equal pages (memcmp fast path)', g: g(RAM_PAGE), t: t(page(ram)), bound: FAR, want: [[0x40000, 0x40200, 'ram']] },
  { name: 'ram: same frame on both sides', g: g(RAM_PAGE), t: t(RAM_PAGE, true), bound: FAR, want: [[0x40000, 0x40200, 'ram']] },
  {
    name: 'ram: mfns ≥ 2^32 (high word set, decoded per entry)',
    g: g(page((i) => [i, 0x1])),
    t: t(page((i) => [i, 0x1])),
    bound: FAR,
    want: [[0x40000, 0x40200, 'ram']],
  },
  // identity
  {
    name: 'identity: bit 62 in a private leaf, toolstack identity (0-7) or INVALID (8-15)',
    g: g(page(patch(ram, 0, 16, ident))),
    t: t(page(patch(patch(ram, 0, 8, ident), 8, 16, () => INVALID))),
    bound: FAR,
    want: [
      [0x40000, 0x40010, 'identity'],
      [0x40010, 0x40200, 'ram'],
    ],
  },
  {
    name: 'identity: IDENTITY leaf, toolstack reads an all-INVALID page',
    g: gKind(GuestLeaf.IDENTITY),
    t: t(page(() => INVALID)),
    bound: FAR,
    want: [[0x40000, 0x40200, 'identity']],
  },
  {
    name: 'identity: IDENTITY leaf, toolstack reads identity markers',
    g: gKind(GuestLeaf.IDENTITY),
    t: t(page(ident)),
    bound: FAR,
    want: [[0x40000, 0x40200, 'identity']],
  },
  { name: 'identity: IDENTITY leaf not covered (BEYOND)', g: gKind(GuestLeaf.IDENTITY), t: tCode(ToolLeaf.BEYOND), bound: FAR, want: [[0x40000, 0x40200, 'identity']] },
  // missing
  {
    name: 'missing: INVALID entries in a private leaf',
    g: g(page(patch(ram, 0x100, 0x200, () => INVALID))),
    t: t(page(patch(ram, 0x100, 0x200, () => INVALID))),
    bound: FAR,
    want: [
      [0x40000, 0x40100, 'ram'],
      [0x40100, 0x40200, 'missing'],
    ],
  },
  { name: 'missing: MISSING leaf, toolstack reads the all-INVALID page', g: gKind(GuestLeaf.MISSING), t: t(ALL_INVALID_PAGE), bound: FAR, want: [[0x40000, 0x40200, 'missing']] },
  { name: 'missing: MISSING leaf not covered (BEYOND)', g: gKind(GuestLeaf.MISSING), t: tCode(ToolLeaf.BEYOND), bound: FAR, want: [[0x40000, 0x40200, 'missing']] },
  { name: 'missing: MISSING leaf, toolstack on the shared missing page', g: gKind(GuestLeaf.MISSING), t: tCode(ToolLeaf.SHARED_MISSING), bound: FAR, want: [[0x40000, 0x40200, 'missing']] },
  // foreign
  {
    name: 'foreign: whatever the toolstack reads (INVALID at 0-1, an mfn at 2-3)',
    g: g(page(patch(ram, 0, 4, foreign))),
    t: t(page(patch(ram, 0, 2, () => INVALID))),
    bound: FAR,
    want: [
      [0x40000, 0x40004, 'foreign'],
      [0x40004, 0x40200, 'ram'],
    ],
  },
  // uncovered
  { name: 'uncovered: leaf past the bound (BEYOND)', g: g(RAM_PAGE), t: tCode(ToolLeaf.BEYOND), bound: F, want: [[0x40000, 0x40200, 'uncovered']] },
  { name: 'uncovered: BEYOND alone (failed walk)', g: g(RAM_PAGE), t: tCode(ToolLeaf.BEYOND), bound: 0, want: [[0x40000, 0x40200, 'uncovered']] },
  { name: 'uncovered: BEYOND code even below the bound', g: g(RAM_PAGE), t: tCode(ToolLeaf.BEYOND), bound: FAR, want: [[0x40000, 0x40200, 'uncovered']] },
  { name: 'uncovered: SHARED_MISSING', g: g(RAM_PAGE), t: tCode(ToolLeaf.SHARED_MISSING), bound: FAR, want: [[0x40000, 0x40200, 'uncovered']] },
  {
    name: 'uncovered: SHARED_MISSING, identity entries stay identity',
    g: g(page(patch(ram, 0, 0x9f, ident))),
    t: tCode(ToolLeaf.SHARED_MISSING),
    bound: FAR,
    want: [
      [0x40000, 0x4009f, 'identity'],
      [0x4009f, 0x40200, 'uncovered'],
    ],
  },
  {
    name: 'uncovered: partial-bound leaf (bound 0x40100, equal pages)',
    g: g(RAM_PAGE),
    t: t(page(ram)),
    bound: 0x40100,
    want: [
      [0x40000, 0x40100, 'ram'],
      [0x40100, 0x40200, 'uncovered'],
    ],
  },
  {
    name: 'uncovered: partial-bound leaf, identity entries past the bound stay identity',
    g: g(page(patch(ram, 0x1f0, 0x200, ident))),
    t: t(page(patch(ram, 0x1f0, 0x200, ident))),
    bound: 0x40100,
    want: [
      [0x40000, 0x40100, 'ram'],
      [0x40100, 0x401f0, 'uncovered'],
      [0x401f0, 0x40200, 'identity'],
    ],
  },
  // lost
  {
    name: 'lost: toolstack reads INVALID (0x10-0x1f), an identity marker (0x20), a foreign marker (0x21)',
    g: g(RAM_PAGE),
    t: t(
      page(
        patch(
          patch(
            patch(ram, 0x10, 0x20, () => INVALID),
            0x20,
            0x21,
            (i) => [0x200000 + i, IDENTITY_FRAME_HI],
          ),
          0x21,
          0x22,
          (i) => [0x200000 + i, FOREIGN_FRAME_HI],
        ),
      ),
    ),
    bound: FAR,
    want: [
      [0x40000, 0x40010, 'ram'],
      [0x40010, 0x40022, 'lost'],
      [0x40022, 0x40200, 'ram'],
    ],
  },
  // mismatch
  {
    name: 'mismatch: low word differs at 5, high word at 6',
    g: g(RAM_PAGE),
    t: t(page(patch(patch(ram, 5, 6, (i) => [0x200000 + i + 1, 0]), 6, 7, (i) => [0x200000 + i, 1]))),
    bound: FAR,
    want: [
      [0x40000, 0x40005, 'ram'],
      [0x40005, 0x40007, 'mismatch'],
      [0x40007, 0x40200, 'ram'],
    ],
  },
  // stale
  {
    name: 'stale from identity: IDENTITY leaf, toolstack holds an mfn at entry 7',
    g: gKind(GuestLeaf.IDENTITY),
    t: t(page(patch(() => INVALID, 7, 8, ram))),
    bound: FAR,
    want: [
      [0x40000, 0x40007, 'identity'],
      [0x40007, 0x40008, 'stale'],
      [0x40008, 0x40200, 'identity'],
    ],
  },
  {
    name: 'stale from identity: bit-62 entries 0-1, toolstack holds mfns',
    g: g(page(patch(ram, 0, 2, ident))),
    t: t(page(ram)),
    bound: FAR,
    want: [
      [0x40000, 0x40002, 'stale'],
      [0x40002, 0x40200, 'ram'],
    ],
  },
  {
    name: 'stale from missing: MISSING leaf, toolstack holds mfns at 0x1fe-0x1ff',
    g: gKind(GuestLeaf.MISSING),
    t: t(page(patch(() => INVALID, 0x1fe, 0x200, ram))),
    bound: FAR,
    want: [
      [0x40000, 0x401fe, 'missing'],
      [0x401fe, 0x40200, 'stale'],
    ],
  },
  {
    name: 'stale from missing: INVALID entry 0, toolstack holds an mfn',
    g: g(page(patch(ram, 0, 1, () => INVALID))),
    t: t(page(ram)),
    bound: FAR,
    want: [
      [0x40000, 0x40001, 'stale'],
      [0x40001, 0x40200, 'ram'],
    ],
  },
  {
    name: 'partial-bound leaf: MISSING leaf, mfns inside the bound stale, past it missing',
    g: gKind(GuestLeaf.MISSING),
    t: t(page(ram)),
    bound: 0x40100,
    want: [
      [0x40000, 0x40100, 'stale'],
      [0x40100, 0x40200, 'missing'],
    ],
  },
  // unreadable
  { name: 'unreadable: guest leaf page absent', g: g(null), t: t(page(ram)), bound: FAR, want: [[0x40000, 0x40200, 'unreadable']] },
  { name: 'unreadable: toolstack leaf frame ABSENT', g: g(RAM_PAGE), t: tCode(ToolLeaf.ABSENT), bound: FAR, want: [[0x40000, 0x40200, 'unreadable']] },
  { name: 'unreadable: toolstack location given but page unreadable', g: g(RAM_PAGE), t: t(null), bound: FAR, want: [[0x40000, 0x40200, 'unreadable']] },
  { name: 'unreadable: MISSING leaf, toolstack frame ABSENT', g: gKind(GuestLeaf.MISSING), t: tCode(ToolLeaf.ABSENT), bound: FAR, want: [[0x40000, 0x40200, 'unreadable']] },
  {
    name: 'unreadable: ABSENT toolstack frame matters only inside the bound; foreign needs no toolstack value',
    g: g(page(patch(ram, 0x1ff, 0x200, foreign))),
    t: tCode(ToolLeaf.ABSENT),
    bound: 0x40100,
    want: [
      [0x40000, 0x40100, 'unreadable'],
      [0x40100, 0x401ff, 'uncovered'],
      [0x401ff, 0x40200, 'foreign'],
    ],
  },
];

describe('classifyLeaf', () => {
  it.each(rows)('$name', ({ g: gIn, t: tIn, bound, want }) => {
    const sink = new RangeSink();
    classifyLeaf(F, gIn, tIn, bound, sink);
    expect(sink.toRanges().map((r) => [r.start, r.end, r.cls])).toEqual(want);
  });

  it('decodes pages that are not 4-byte aligned (copied before decoding)', () => {
    const misaligned = (p: Buffer): Buffer => {
      const b = Buffer.alloc(PAGE_SIZE + 1).subarray(1);
      p.copy(b);
      return b;
    };
    const sink = new RangeSink();
    const gp = misaligned(page(patch(ram, 0, 2, ident)));
    const tp = misaligned(page(patch(ram, 0x100, 0x101, (i) => [0x200000 + i + 1, 0])));
    classifyLeaf(F, g(gp), t(tp), FAR, sink);
    expect(sink.toRanges().map((r) => [r.start, r.end, r.cls])).toEqual([
      [0x40000, 0x40002, 'stale'],
      [0x40002, 0x40100, 'ram'],
      [0x40100, 0x40101, 'mismatch'],
      [0x40101, 0x40200, 'ram'],
    ]);
  });

  it('merges a class run across consecutive leaves into one range', () => {
    const sink = new RangeSink();
    classifyLeaf(F, g(RAM_PAGE), t(RAM_PAGE, true), FAR, sink);
    classifyLeaf(F + P2M_PER_PAGE, g(RAM_PAGE), t(RAM_PAGE, true), FAR, sink);
    classifyLeaf(F + 2 * P2M_PER_PAGE, gKind(GuestLeaf.MISSING), tCode(ToolLeaf.BEYOND), FAR, sink);
    expect(sink.toRanges()).toEqual([
      { start: 0x40000, end: 0x40400, cls: 'ram' },
      { start: 0x40400, end: 0x40600, cls: 'missing' },
    ]);
  });
});

describe('RangeSink', () => {
  it('merges contiguous same-class ranges, keeps gaps and class changes, grows past its initial size', () => {
    const sink = new RangeSink(1);
    sink.add(0, 10, PfnClass.RAM);
    sink.add(10, 20, PfnClass.RAM); // merged
    sink.add(20, 20, PfnClass.LOST); // empty: ignored
    sink.add(20, 25, PfnClass.LOST);
    sink.add(30, 40, PfnClass.LOST); // gap: not merged
    expect(sink.count).toBe(3);
    expect(Array.from(sink.toFloat64Array())).toEqual([0, 20, PfnClass.RAM, 20, 25, PfnClass.LOST, 30, 40, PfnClass.LOST]);
  });

  it('addTriples merges at the seam between two shards', () => {
    const sink = new RangeSink();
    sink.addTriples(Float64Array.of(0, 512, PfnClass.RAM, 512, 1024, PfnClass.MISSING));
    sink.addTriples(Float64Array.of(1024, 2048, PfnClass.MISSING, 2048, 2560, PfnClass.UNCOVERED));
    expect(sink.toRanges()).toEqual([
      { start: 0, end: 512, cls: 'ram' },
      { start: 512, end: 2048, cls: 'missing' },
      { start: 2048, end: 2560, cls: 'uncovered' },
    ]);
  });

  it('triplesToRanges rejects an unknown class code', () => {
    expect(() => triplesToRanges(Float64Array.of(0, 1, 99))).toThrow(/unknown class code 99/);
  });
});

describe('RangeSink cap (a p2m that changes class at every pfn)', () => {
  it('keeps at most the cap, counts pages and ranges exactly, merges a worker result', async () => {
    const { RangeSink } = await import('../src/audit/compare-leaf.js');
    const worker = new RangeSink(16, 4);
    // 10 one-pfn ranges alternating RAM / LOST: 5 of each, 10 ranges, only 4 kept
    for (let p = 0; p < 10; p++) worker.add(p, p + 1, p % 2 === 0 ? PfnClass.RAM : PfnClass.LOST);
    expect(worker.count).toBe(4);
    expect(worker.dropped).toBe(6);
    expect(worker.pages[PfnClass.RAM]).toBe(5);
    expect(worker.pages[PfnClass.LOST]).toBe(5);
    const main = new RangeSink();
    main.addPacked(worker.toPacked());
    expect(main.count).toBe(4);
    expect(main.dropped).toBe(6);
    expect([...main.pages].slice(0, 6)).toEqual([5, 0, 0, 0, 0, 5]);
    expect(main.ranges[PfnClass.RAM]).toBe(5);
    expect(main.ranges[PfnClass.LOST]).toBe(5);
  });
});
