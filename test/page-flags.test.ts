// The WebAssembly leaf kernel (src/wasm/page-flags.ts via the loader src/audit/page-flags-loader.ts) against an
// independent BigInt reference: crafted pages, a single marker at every entry / a single cleared bit at
// every byte, seeded random pages; classifyLeaf with the kernel's flags against classifyLeaf without
// them; and the worker pool (runAudit, which reads through the kernel) against auditInProcess (JS path)
// over corpus scenarios and seeded mutations of them. Needs dist/ (`npm test` builds first; by hand,
// `npm run build` before vitest).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyLeaf, PAGE_FLAG_ALL_INVALID, PAGE_FLAG_HI_WORDS_ZERO, PAGE_FLAGS_UNKNOWN, RangeSink, type GuestLeafInput, type ToolLeafInput } from '../src/audit/compare-leaf.js';
import { compileLeafScan, LeafScanBatch, leafScanStatus, leafScanWasmPath } from '../src/audit/page-flags-loader.js';
import { GuestLeaf, type GuestLeafKind } from '../src/views/p2m-leaves.js';
import { PfnClass, ToolLeaf } from '../src/audit/pfn-class.js';
import { auditInProcess, runAudit } from '../src/audit/run-audit.js';
import { Rng } from '../src/fuzz/rng.js';
import { readGuestView } from '../src/views/guest-view.js';
import { openImage } from '../src/formats/open-image.js';
import { mapP2m } from '../src/views/toolstack-view.js';
import { FOREIGN_FRAME_BIT, IDENTITY_FRAME_BIT, P2M_ENTRY_SIZE, P2M_PER_PAGE, PAGE_SIZE } from '../src/xen/abi.js';

const repo = path.resolve(__dirname, '..');
const scenarios = path.join(repo, 'corpora/scenarios');

// ---- the reference: 64-bit entries as BigInt, straight from the ABI's definitions -----------------------
const INVALID_P2M_ENTRY = (1n << 64n) - 1n; // ~0UL
const IDENTITY_FRAME = (pfn: number): bigint => BigInt(pfn) | (1n << BigInt(IDENTITY_FRAME_BIT));
const FOREIGN_FRAME = (mfn: number): bigint => BigInt(mfn) | (1n << BigInt(FOREIGN_FRAME_BIT));
const HI_SHIFT = 32n;

function refFlags(p: Buffer): number {
  let hiZero = true;
  let allInvalid = true;
  for (let e = 0; e < P2M_PER_PAGE; e++) {
    const v = p.readBigUInt64LE(e * P2M_ENTRY_SIZE);
    if (v >> HI_SHIFT !== 0n) hiZero = false;
    if (v !== INVALID_P2M_ENTRY) allInvalid = false;
  }
  return (hiZero ? PAGE_FLAG_HI_WORDS_ZERO : 0) | (allInvalid ? PAGE_FLAG_ALL_INVALID : 0);
}

// ---- page builders ------------------------------------------------------------------------------------
const BATCH = 32;
const RAM_MFN_BASE = 0x100000;
const LAST = P2M_PER_PAGE - 1;
const MID = P2M_PER_PAGE / 2;

function pageOf(entry: (i: number) => bigint): Buffer {
  const b = Buffer.alloc(PAGE_SIZE);
  for (let i = 0; i < P2M_PER_PAGE; i++) b.writeBigUInt64LE(entry(i), i * P2M_ENTRY_SIZE);
  return b;
}
const ram = (i: number): bigint => BigInt(RAM_MFN_BASE + i);
const invalid = (): bigint => INVALID_P2M_ENTRY;
/** `base` everywhere except entry `at`, which reads `e(at)`. */
const with1 =
  (base: (i: number) => bigint, at: number, e: (i: number) => bigint) =>
  (i: number): bigint =>
    i === at ? e(i) : base(i);
/** A copy of `p` with byte `at` set to `v`. */
function withByte(p: Buffer, at: number, v: number): Buffer {
  const q = Buffer.from(p);
  q[at] = v;
  return q;
}

/** The kernel's flags for `pages`, scanned BATCH pages per call through one LeafScanBatch. */
function kernelFlags(pages: Buffer[]): number[] {
  const batch = new LeafScanBatch(BATCH);
  const out: number[] = [];
  for (let first = 0; first < pages.length; first += BATCH) {
    const n = Math.min(BATCH, pages.length - first);
    for (let p = 0; p < n; p++) pages[first + p]!.copy(batch.buf, p * PAGE_SIZE);
    batch.scan(n);
    for (let p = 0; p < n; p++) out.push(batch.flags(p));
  }
  return out;
}

const HI0 = PAGE_FLAG_HI_WORDS_ZERO;
const INV = PAGE_FLAG_ALL_INVALID;
const ALL_INVALID = pageOf(invalid);

describe('leaf-scan loader', () => {
  it('uses the built wasm kernel (dist/wasm/page-flags.wasm)', () => {
    const s = leafScanStatus();
    expect(s).toEqual({ backend: 'wasm', wasmPath: path.join(repo, 'dist/wasm/page-flags.wasm'), reason: null });
    expect(leafScanWasmPath()).toBe(s.wasmPath);
  });

  it('batch buffers are page-aligned views of the kernel memory, one instance each', () => {
    const a = new LeafScanBatch(BATCH);
    const b = new LeafScanBatch(BATCH);
    expect(a.buf.length).toBe(BATCH * PAGE_SIZE);
    expect(a.buf.byteOffset % PAGE_SIZE).toBe(0);
    expect(a.buf.buffer).not.toBe(b.buf.buffer);
  });

  it('falls back to the JS path: a missing or broken .wasm is reported, a batch without a module has no flags', () => {
    expect(compileLeafScan(path.join(os.tmpdir(), 'no-such-page-flags.wasm'))).toMatch(/ENOENT/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-leaf-scan-'));
    try {
      const bad = path.join(dir, 'bad.wasm');
      fs.writeFileSync(bad, 'not wasm');
      expect(typeof compileLeafScan(bad)).toBe('string');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const js = new LeafScanBatch(4, null);
    ALL_INVALID.copy(js.buf);
    js.scan(4);
    expect(js.buf.length).toBe(4 * PAGE_SIZE);
    expect(js.flags(0)).toBe(PAGE_FLAGS_UNKNOWN);
  });
});

describe('pageFlags kernel vs the BigInt reference', () => {
  const crafted: [name: string, page: Buffer, want: number][] = [
    ['all zero', Buffer.alloc(PAGE_SIZE), HI0],
    ['plain RAM', pageOf(ram), HI0],
    ['low words all ones, high words 0 (only the high lanes count)', pageOf(() => 0xffffffffn), HI0],
    ['one identity entry first', pageOf(with1(ram, 0, IDENTITY_FRAME)), 0],
    ['one identity entry middle', pageOf(with1(ram, MID, IDENTITY_FRAME)), 0],
    ['one identity entry last', pageOf(with1(ram, LAST, IDENTITY_FRAME)), 0],
    ['one foreign entry', pageOf(with1(ram, 7, FOREIGN_FRAME)), 0],
    ['one INVALID entry in RAM', pageOf(with1(ram, 100, invalid)), 0],
    ['INVALID everywhere', ALL_INVALID, INV],
    ['INVALID except the first byte', withByte(ALL_INVALID, 0, 0xfe), 0],
    ['INVALID except one low-word byte in the middle', withByte(ALL_INVALID, MID * P2M_ENTRY_SIZE + 1, 0x7f), 0],
    ['INVALID except the last byte', withByte(ALL_INVALID, PAGE_SIZE - 1, 0), 0],
    ['high word nonzero only in the last entry (mfn ≥ 2^32)', pageOf(with1(ram, LAST, (i) => ram(i) | (1n << HI_SHIFT))), 0],
    ['high word nonzero only in the first entry', pageOf(with1(ram, 0, () => 1n << HI_SHIFT)), 0],
    ['every mfn ≥ 2^32', pageOf((i) => ram(i) | (1n << HI_SHIFT)), 0],
    ['identity everywhere (p2m_identity-like private leaf)', pageOf(IDENTITY_FRAME), 0],
  ];

  it.each(crafted)('%s', (_name, page, want) => {
    expect(refFlags(page)).toBe(want);
    expect(kernelFlags([page])).toEqual([want]);
  });

  it('the crafted pages in one batch: each page gets its own flags', () => {
    const pages = crafted.map(([, p]) => p);
    expect(kernelFlags(pages)).toEqual(crafted.map(([, , want]) => want));
  });

  it('a single high-word bit at each of the 512 entries clears HI_WORDS_ZERO', () => {
    const pages: Buffer[] = [];
    for (let e = 0; e < P2M_PER_PAGE; e++) pages.push(pageOf(with1(ram, e, (i) => ram(i) | (1n << BigInt(32 + (e % 32))))));
    expect(kernelFlags(pages)).toEqual(pages.map(refFlags));
    expect(new Set(kernelFlags(pages))).toEqual(new Set([0]));
  });

  it('a single cleared bit at each of the 4096 bytes clears ALL_INVALID', () => {
    const pages: Buffer[] = [];
    for (let at = 0; at < PAGE_SIZE; at++) pages.push(withByte(ALL_INVALID, at, 0xff ^ (1 << (at % 8))));
    const got = kernelFlags(pages);
    expect(got.every((f) => (f & INV) === 0)).toBe(true);
    expect(got).toEqual(pages.map(refFlags));
  });

  it('400 seeded random pages', () => {
    const rng = new Rng(0x1eaf5ca7);
    const pages: Buffer[] = [];
    for (let n = 0; n < 400; n++) {
      const base = rng.pick(['zero', 'ram', 'invalid', 'random'] as const);
      const p =
        base === 'zero' ? Buffer.alloc(PAGE_SIZE) : base === 'ram' ? pageOf(ram) : base === 'invalid' ? Buffer.from(ALL_INVALID) : rng.bytes(PAGE_SIZE);
      // 0-3 edits: a marker entry, an INVALID entry, an mfn ≥ 2^32, or one random byte
      for (let k = rng.below(4); k > 0; k--) {
        const e = rng.below(P2M_PER_PAGE) * P2M_ENTRY_SIZE;
        const edit = rng.below(4);
        if (edit === 0) p.writeBigUInt64LE(rng.chance(0.5) ? IDENTITY_FRAME(e) : FOREIGN_FRAME(e), e);
        else if (edit === 1) p.writeBigUInt64LE(INVALID_P2M_ENTRY, e);
        else if (edit === 2) p.writeUInt32LE(rng.range(1, 0xffff), e + 4);
        else p[rng.below(PAGE_SIZE)] = rng.below(256);
      }
      pages.push(p);
    }
    const want = pages.map(refFlags);
    expect(kernelFlags(pages)).toEqual(want);
    // not vacuous: every flag value occurs
    expect(new Set(want)).toEqual(new Set([0, HI0, INV]));
  });
});

describe('classifyLeaf with kernel flags = classifyLeaf scanning the pages', () => {
  const F = 0x40000;
  const rng = new Rng(0xc1a551f7);
  // guest/tool page pool: RAM, RAM with a foreign/identity/INVALID/high-mfn/other-mfn entry, INVALID pages
  const pool: Buffer[] = [pageOf(ram), ALL_INVALID, withByte(ALL_INVALID, 9, 0), pageOf(IDENTITY_FRAME)];
  for (let n = 0; n < 60; n++) {
    const p = pageOf(ram);
    for (let k = rng.range(1, 3); k > 0; k--) {
      const e = rng.below(P2M_PER_PAGE);
      const v = rng.pick([IDENTITY_FRAME(F + e), FOREIGN_FRAME(e), INVALID_P2M_ENTRY, ram(e) | (1n << HI_SHIFT), ram(e + 1)]);
      p.writeBigUInt64LE(v, e * P2M_ENTRY_SIZE);
    }
    pool.push(p);
  }
  const flags = kernelFlags(pool);
  const bounds = [F + 2 * P2M_PER_PAGE, F + MID, F];
  const kinds: GuestLeafKind[] = [GuestLeaf.PAGE, GuestLeaf.IDENTITY, GuestLeaf.MISSING];

  function classify(kind: GuestLeafKind, gi: number, ti: number, same: boolean, bound: number, withFlags: boolean): number[] {
    const sink = new RangeSink();
    const g: GuestLeafInput = { kind, page: kind === GuestLeaf.PAGE ? pool[gi]! : null, flags: withFlags ? flags[gi]! : PAGE_FLAGS_UNKNOWN };
    const tIdx = same ? gi : ti;
    const t: ToolLeafInput = { code: 0x5000, page: pool[tIdx]!, samePage: same, flags: withFlags ? flags[tIdx]! : PAGE_FLAGS_UNKNOWN };
    classifyLeaf(F, g, t, bound, sink);
    return Array.from(sink.toFloat64Array());
  }

  it('every guest kind, tool page, bound and same-frame case over a seeded pool of pages', () => {
    let cases = 0;
    for (const kind of kinds) {
      for (let gi = 0; gi < pool.length; gi++) {
        const ti = rng.below(pool.length);
        for (const bound of bounds) {
          for (const same of kind === GuestLeaf.PAGE ? [false, true] : [false]) {
            expect(classify(kind, gi, ti, same, bound, true)).toEqual(classify(kind, gi, ti, same, bound, false));
            cases++;
          }
        }
      }
    }
    expect(cases).toBe(pool.length * bounds.length * 4);
  });

  it('a tool code (no tool page) with and without guest flags', () => {
    for (let gi = 0; gi < pool.length; gi++) {
      for (const code of [ToolLeaf.BEYOND, ToolLeaf.ABSENT, ToolLeaf.SHARED_MISSING]) {
        const run = (withFlags: boolean): number[] => {
          const sink = new RangeSink();
          const g: GuestLeafInput = { kind: GuestLeaf.PAGE, page: pool[gi]!, flags: withFlags ? flags[gi]! : PAGE_FLAGS_UNKNOWN };
          const t: ToolLeafInput = { code, page: null, samePage: false };
          classifyLeaf(F, g, t, F + MID, sink);
          return Array.from(sink.toFloat64Array());
        };
        expect(run(true)).toEqual(run(false));
      }
    }
  });
});

// ---- the worker pool (wasm flags) against auditInProcess (JS scans) --------------------------------------
async function poolVsInProcess(file: string): Promise<{ pages: number[] }> {
  const img = openImage(file);
  try {
    const tool = mapP2m(img);
    const guest = readGuestView(img);
    const pool = await runAudit(img, tool, guest, { jobs: 2 });
    const inProc = auditInProcess(img, tool, guest);
    expect(pool.threads).toBeGreaterThan(0);
    expect(pool.ranges).toEqual(inProc.ranges);
    expect(pool.stats).toEqual(inProc.stats);
    return { pages: inProc.stats!.pages };
  } finally {
    img.close();
  }
}

describe('runAudit (worker pool, wasm flags) = auditInProcess (JS path)', () => {
  it.each(['seed-4x', 'seed-3.18', 'seed-3.8-unpatched', 'seed-backport-nomax', 'above-4g-backport', 'multi-hole-backport'])(
    'scenario %s',
    async (name) => {
      await poolVsInProcess(path.join(scenarios, `${name}.p2ms`));
    },
  );

  describe('seeded mutations of scenario leaf pages', () => {
    let dir = '';
    beforeAll(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-leaf-scan-pool-'));
    });
    afterAll(() => {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    /** A copy of the scenario with `edits` random entries of its guest and toolstack leaf pages rewritten. */
    function mutate(name: string, seed: number, edits: number): string {
      const src = path.join(scenarios, `${name}.p2ms`);
      const img = openImage(src);
      const offsets: number[] = [];
      try {
        const guest = readGuestView(img);
        const tool = mapP2m(img);
        const frames = new Set<number>();
        for (let k = 0; k < guest.kinds.length; k++) if (guest.kinds[k] === GuestLeaf.PAGE && guest.leafFrames[k]! >= 0) frames.add(guest.leafFrames[k]!);
        for (const f of tool.leafFrames) if (f >= 0) frames.add(f);
        for (const f of frames) {
          const off = img.frameOffset(f);
          if (off >= 0) offsets.push(off);
        }
        for (const f of [guest.missingFrame, guest.identityFrame]) if (f >= 0 && img.frameOffset(f) >= 0) offsets.push(img.frameOffset(f));
      } finally {
        img.close();
      }
      const data = fs.readFileSync(src);
      const rng = new Rng(seed);
      for (let n = 0; n < edits; n++) {
        const at = rng.pick(offsets) + rng.below(P2M_PER_PAGE) * P2M_ENTRY_SIZE;
        const old = data.readBigUInt64LE(at);
        const v = rng.pick([IDENTITY_FRAME(rng.below(1 << 20)), FOREIGN_FRAME(rng.below(1 << 20)), INVALID_P2M_ENTRY, old | (1n << HI_SHIFT), old ^ 1n, 0n]);
        data.writeBigUInt64LE(v, at);
      }
      const out = path.join(dir, `${name}-${seed}.p2ms`);
      fs.writeFileSync(out, data);
      return out;
    }

    it.each([
      ['seed-4x', 1],
      ['seed-3.18', 2],
      ['seed-backport-nomax', 3],
      ['multi-hole-backport', 4],
    ] as const)('%s, seed %i, 400 edited entries', async (name, seed) => {
      const { pages } = await poolVsInProcess(mutate(name, seed, 400));
      // not vacuous: the edits reach the guest's leaves (FOREIGN entries classify as foreign whatever the toolstack says)
      expect(pages[PfnClass.FOREIGN]).toBeGreaterThan(0);
    });
  });
});
