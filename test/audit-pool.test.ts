// The shard planner table, and the worker pool end to end over a hand-built file of raw 4 KiB pages:
// runAudit with 1 and 4 threads and auditInProcess must give the same ranges, equal to ranges derived
// by hand from the layout below. The pool runs the compiled worker (dist/workers/audit-worker.js):
// `npm test` builds first (pretest); by hand, run `npx tsc -p tsconfig.json` before vitest.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GuestLeaf, type GuestView, type ToolstackView } from '../src/views/p2m-leaves.js';
import { type ClassRange, type PfnClassName } from '../src/audit/pfn-class.js';
import { auditInProcess, runAudit } from '../src/audit/run-audit.js';
import { planShards } from '../src/audit/shard-plan.js';
import { guestView, toolView } from './helpers/views.js';
import type { GuestImage } from '../src/formats/guest-image.js';
import { FOREIGN_FRAME_HI, IDENTITY_FRAME_HI, INVALID_P2M_ENTRY_WORD, P2M_PER_PAGE, PAGE_SIZE } from '../src/xen/abi.js';

describe('planShards', () => {
  const table: [nLeaves: number, jobs: number, want: [number, number][]][] = [
    [0, 4, []],
    [10, 4, [[0, 10]]],
    [64, 1, [[0, 64]]],
    [130, 2, [[0, 65], [65, 130]]],
    [300, 4, [[0, 75], [75, 150], [150, 225], [225, 300]]],
    [1000, 1, [[0, 250], [250, 500], [500, 750], [750, 1000]]],
    [
      1000,
      4,
      [
        [0, 67], [67, 134], [134, 201], [201, 268], [268, 335], [335, 402], [402, 469], [469, 536], [536, 603], [603, 670],
        [670, 736], [736, 802], [802, 868], [868, 934], [934, 1000],
      ],
    ],
  ];
  it.each(table)('%i leaves, %i jobs', (nLeaves, jobs, want) => {
    const shards = planShards(nLeaves, jobs);
    expect(shards.map((s) => [s.firstLeaf, s.endLeaf])).toEqual(want);
    expect(shards.map((s) => s.index)).toEqual(want.map((_, i) => i));
  });

  it('512 GiB guest (262144 leaves), 8 jobs: 32 shards of 8192 leaves', () => {
    const shards = planShards(262144, 8);
    expect(shards.length).toBe(32);
    expect(shards.every((s) => s.endLeaf - s.firstLeaf === 8192)).toBe(true);
    expect(shards[31]!.endLeaf).toBe(262144);
  });

  it.each([
    [10, 0],
    [10, 1.5],
    [-1, 1],
  ])('rejects nLeaves %d with jobs %d', (n, j) => {
    expect(() => planShards(n, j)).toThrow(RangeError);
  });
});

// ---- the hand-built image ------------------------------------------------------------------------
//
// 300 guest leaves (pfns 0 .. 0x257ff); the toolstack covers pfns 0 .. 280·512+99 (281 leaves).
//   leaf 0-99     PAGE, RAM (mfn = 0x100000 + pfn); toolstack reads the same frame
//   leaf 100      PAGE, entries 0-96 IDENTITY_FRAME(pfn), rest RAM; same frame
//   leaf 101-149  IDENTITY (shared p2m_identity); toolstack reads p2m_identity, except leaf 120: a
//                 page all INVALID but entry 7 = an mfn
//   leaf 150-199  PAGE, RAM (leaf 199: entries 0-4 FOREIGN_FRAME); toolstack reads copies, except
//                 leaf 160 entry 3 holds another mfn, leaf 161 entries 10-19 INVALID
//   leaf 200      PAGE, RAM; toolstack's entry leads to the shared p2m_missing page
//   leaf 201      PAGE, but its frame is absent from the image
//   leaf 202-279  MISSING (shared p2m_missing); toolstack reads p2m_missing
//   leaf 280      PAGE, RAM, same frame; toolstack bound inside it at entry 100
//   leaf 281-289  PAGE, RAM; past the toolstack's leaves
//   leaf 290-299  MISSING
const LEAVES = 300;
const T_BOUND = 280 * P2M_PER_PAGE + 100;
const IDENTITY_FRAME = 0x10;
const MISSING_FRAME = 0x11;
const gFrame = (k: number): number => 0x1000 + k;
const tFrame = (k: number): number => 0x3000 + k;
const STALE_FRAME = 0x2000 + 120;

const WANT: [number, number, PfnClassName][] = [
  [0, 51200, 'ram'],
  [51200, 51297, 'identity'],
  [51297, 51712, 'ram'],
  [51712, 61447, 'identity'],
  [61447, 61448, 'stale'],
  [61448, 76800, 'identity'],
  [76800, 81923, 'ram'],
  [81923, 81924, 'mismatch'],
  [81924, 82442, 'ram'],
  [82442, 82452, 'lost'],
  [82452, 101888, 'ram'],
  [101888, 101893, 'foreign'],
  [101893, 102400, 'ram'],
  [102400, 102912, 'uncovered'],
  [102912, 103424, 'unreadable'],
  [103424, 143360, 'missing'],
  [143360, 143460, 'ram'],
  [143460, 148480, 'uncovered'],
  [148480, 153600, 'missing'],
];

function setEntry(p: Buffer, i: number, lo: number, hi: number): void {
  p.writeUInt32LE(lo >>> 0, i * 8);
  p.writeUInt32LE(hi >>> 0, i * 8 + 4);
}

function ramLeaf(k: number): Buffer {
  const p = Buffer.alloc(PAGE_SIZE);
  for (let i = 0; i < P2M_PER_PAGE; i++) setEntry(p, i, 0x100000 + k * P2M_PER_PAGE + i, 0);
  return p;
}

const invalidPage = (): Buffer => Buffer.alloc(PAGE_SIZE, 0xff);

interface Built {
  file: string;
  img: GuestImage;
  tool: ToolstackView;
  guest: GuestView;
}

function fakeImage(file: string, offsets: Map<number, number>): GuestImage {
  const data = fs.readFileSync(file);
  return {
    path: file,
    format: 'p2ms',
    frameSpace: 'mfn',
    guestWidth: 8,
    sharedInfo: null,
    arch: { maxPfn: 0n, pfnToMfnFrameListList: 0n, nmiReason: 0n, p2mCr3: 0n, p2mVaddr: 0n, p2mGeneration: 0n },
    cr3: 0n,
    symbols: new Map(),
    formatFacts: { kind: 'snapshot', boot: null },
    maxFrame: Infinity,
    readFrame: (f) => {
      const off = offsets.get(f);
      return off === undefined ? null : data.subarray(off, off + PAGE_SIZE);
    },
    frameOffset: (f) => offsets.get(f) ?? -1,
    frameCount: () => offsets.size,
    close: () => {},
  };
}

function build(dir: string): Built {
  const pages: Buffer[] = [Buffer.alloc(PAGE_SIZE, 0x5a)]; // a header page: no frame at offset 0
  const offsets = new Map<number, number>();
  const put = (frame: number, p: Buffer): void => {
    offsets.set(frame, pages.length * PAGE_SIZE);
    pages.push(p);
  };
  const filler = (): void => void pages.push(Buffer.alloc(PAGE_SIZE, 0x33));

  const kinds = new Uint8Array(LEAVES);
  const leafFrames = new Float64Array(LEAVES).fill(-1);
  const tLeaves = Math.floor((T_BOUND - 1) / P2M_PER_PAGE) + 1; // 281
  const tFrames = new Float64Array(tLeaves);

  put(IDENTITY_FRAME, invalidPage());
  put(MISSING_FRAME, invalidPage());

  for (let k = 0; k < LEAVES; k++) {
    if ((k >= 101 && k <= 149) || k >= 290) {
      kinds[k] = k >= 290 ? GuestLeaf.MISSING : GuestLeaf.IDENTITY;
      leafFrames[k] = k >= 290 ? MISSING_FRAME : IDENTITY_FRAME;
    } else if (k >= 202 && k <= 279) {
      kinds[k] = GuestLeaf.MISSING;
      leafFrames[k] = MISSING_FRAME;
    } else {
      kinds[k] = GuestLeaf.PAGE;
      leafFrames[k] = gFrame(k);
      const p = ramLeaf(k);
      if (k === 100) for (let i = 0; i < 97; i++) setEntry(p, i, k * P2M_PER_PAGE + i, IDENTITY_FRAME_HI);
      if (k === 199) for (let i = 0; i < 5; i++) setEntry(p, i, 0x700000 + i, FOREIGN_FRAME_HI);
      if (k !== 201) put(gFrame(k), p); // leaf 201's frame stays absent
    }
  }

  const stale = invalidPage();
  setEntry(stale, 7, 0x123456, 0);
  put(STALE_FRAME, stale);
  for (let k = 150; k <= 201; k++) {
    if (k === 200) continue;
    const p = ramLeaf(k);
    if (k === 199) for (let i = 0; i < 5; i++) setEntry(p, i, 0x700000 + i, FOREIGN_FRAME_HI);
    if (k === 160) setEntry(p, 3, 0x999999, 0);
    if (k === 161) for (let i = 10; i < 20; i++) setEntry(p, i, INVALID_P2M_ENTRY_WORD, INVALID_P2M_ENTRY_WORD);
    put(tFrame(k), p);
    if (k === 175) filler(); // breaks the run of consecutive offsets
  }

  for (let k = 0; k < tLeaves; k++) {
    if (k >= 101 && k <= 149) tFrames[k] = k === 120 ? STALE_FRAME : IDENTITY_FRAME;
    else if (k >= 150 && k <= 199) tFrames[k] = tFrame(k);
    else if (k === 200) tFrames[k] = MISSING_FRAME;
    else if (k === 201) tFrames[k] = tFrame(k);
    else if (k >= 202 && k <= 279) tFrames[k] = MISSING_FRAME;
    else tFrames[k] = gFrame(k);
  }

  const file = path.join(dir, 'pool.img');
  fs.writeFileSync(file, Buffer.concat(pages));
  const tool = toolView('tree', T_BOUND, tFrames);
  const guest = guestView('tree', 'missing', kinds, leafFrames, MISSING_FRAME, IDENTITY_FRAME);
  return { file, img: fakeImage(file, offsets), tool, guest };
}

const asTuples = (rs: ClassRange[]): [number, number, PfnClassName][] => rs.map((r) => [r.start, r.end, r.cls]);

describe('audit pool', () => {
  let dir = '';
  let b: Built;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-audit-pool-'));
    b = build(dir);
  });
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('auditInProcess gives the hand-derived ranges', () => {
    const r = auditInProcess(b.img, b.tool, b.guest);
    expect(r.leaves).toBe(300);
    expect(r.endPfn).toBe(153600);
    expect(r.tBoundPfn).toBe(T_BOUND);
    expect(asTuples(r.ranges)).toEqual(WANT);
  });

  it('runAudit with 1 and 4 threads equals auditInProcess, merged across shard borders', async () => {
    const progress: [number, number][] = [];
    const one = await runAudit(b.img, b.tool, b.guest, { jobs: 1 });
    const four = await runAudit(b.img, b.tool, b.guest, { jobs: 4, onProgress: (d, t) => progress.push([d, t]) });
    const inProc = auditInProcess(b.img, b.tool, b.guest);
    expect(one.threads).toBe(1);
    expect(one.shards).toBe(4); // 290 active leaves, 1 job: min(4, floor(290/64)) = 4 shards
    expect(four.threads).toBe(4);
    expect(four.shards).toBe(4); // 4 jobs: min(16, 4) = 4 shards
    expect(asTuples(one.ranges)).toEqual(WANT);
    expect(four.ranges).toEqual(one.ranges);
    expect(four.ranges).toEqual(inProc.ranges);
    // leaves 290-299 (guest MISSING, past the toolstack's 281 leaves) are the uniform tail, one range added
    // by the main thread: the shards cover leaves 0-289 (planShards(290, 4): four shards of 72/73 leaves).
    // Progress is cumulative in completion order: its steps are the shard sizes, in any order.
    expect(one.leaves).toBe(300);
    expect(progress.map(([, total]) => total)).toEqual([290, 290, 290, 290]);
    const steps = progress.map(([done], i) => done - (i > 0 ? progress[i - 1]![0] : 0));
    expect(steps.sort((x, y) => x - y)).toEqual(planShards(290, 4).map((s) => s.endLeaf - s.firstLeaf).sort((x, y) => x - y));
    expect(progress[3]![0]).toBe(290);
  });

  it('a toolstack walk that failed: every guest RAM page uncovered, same in the pool and in process', async () => {
    const failed: ToolstackView = { ...b.tool, maxPfn: -1, leafFrames: new Float64Array(0), failure: 'frame list list mfn is 0' };
    const pool = await runAudit(b.img, failed, b.guest, { jobs: 2 });
    const inProc = auditInProcess(b.img, failed, b.guest);
    expect(pool.tBoundPfn).toBe(0);
    expect(pool.ranges).toEqual(inProc.ranges);
    const uncovered = pool.ranges.filter((r) => r.cls === 'uncovered').reduce((s, r) => s + r.end - r.start, 0);
    // RAM: leaves 0-99 (51200) + 100 (415) + 150-198 (25088) + 199 (507) + 200 (512) + 280-289 (5120);
    // leaf 201 is unreadable (its guest frame is absent)
    expect(uncovered).toBe(51200 + 415 + 25088 + 507 + 512 + 5120);
    expect(pool.ranges.filter((r) => r.cls === 'unreadable')).toEqual([{ start: 102912, end: 103424, cls: 'unreadable' }]);
  });

  it('a worker failure names the shard', async () => {
    const gone = { ...b.img, path: path.join(dir, 'does-not-exist.img') } as GuestImage;
    await expect(runAudit(gone, b.tool, b.guest, { jobs: 2 })).rejects.toThrow(/audit shard \d \(leaves \d+-\d+, pfns 0x[0-9a-f]+-0x[0-9a-f]+\) of .*does-not-exist\.img failed: .*ENOENT/);
  });

  it('rejects jobs < 1 and images without a file', async () => {
    await expect(runAudit(b.img, b.tool, b.guest, { jobs: 0 })).rejects.toThrow(RangeError);
    const inMemory = { ...b.img, path: '' } as GuestImage;
    await expect(runAudit(inMemory, b.tool, b.guest, { jobs: 1 })).rejects.toThrow(/file-backed/);
  });
});
