// planLeaves' uniform tail (leaves the toolstack never reaches whose guest side is a shared identity /
// missing page become one range), repeatedFrames (the guest view's search for a leaf frame that backs
// several leaves) and auditImage's choice of thread (small guests on the calling thread), each against an
// independent derivation: the tail against classifying every leaf one by one, repeatedFrames against
// counting with a Map, the thread choice against the JS path (auditInProcess).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { auditImage, IN_THREAD_MAX_LEAVES, IN_THREAD_MAX_LEAVES_WARM } from '../src/audit/audit-image.js';
import { openImage } from '../src/formats/open-image.js';
import type { E820Entry } from '../src/inputs/e820.js';
import type { GuestImage } from '../src/formats/guest-image.js';
import { emulate } from '../src/emulate/kernel/boot.js';
import { findProfile } from '../src/emulate/kernel/profiles.js';
import { writeEmulatedP2ms } from '../src/emulate/snapshot.js';
import { ALL_INVALID_PAGE, classifyLeaf, RangeSink } from '../src/audit/compare-leaf.js';
import { GuestLeaf, type GuestView, type ToolstackView } from '../src/views/p2m-leaves.js';
import { PFN_CLASS_NAMES, PfnClass, ToolLeaf } from '../src/audit/pfn-class.js';
import { addTail, auditInProcess, createAuditPool, planLeaves } from '../src/audit/run-audit.js';
import { repeatedFrames } from '../src/views/guest-view.js';
import { E820_RAM, P2M_PER_PAGE, PAGE_SIZE } from '../src/xen/abi.js';
import { guestView, toolView } from './helpers/views.js';

const I = GuestLeaf.IDENTITY;
const M = GuestLeaf.MISSING;
const P = GuestLeaf.PAGE;
const IDENTITY_FRAME = 7;
const MISSING_FRAME = 8;
/** a private guest leaf page: plain RAM entries, mfn = 0x1000 + pfn (high words 0) */
const RAM_FRAME_BASE = 100;

function ramPage(leaf: number): Buffer {
  const b = Buffer.alloc(PAGE_SIZE);
  for (let i = 0; i < P2M_PER_PAGE; i++) b.writeUInt32LE(0x1000 + leaf * P2M_PER_PAGE + i, i * 8);
  return b;
}

/** An in-memory image: identity/missing frames all INVALID, leaf k's page at frame RAM_FRAME_BASE + k. */
function image(): GuestImage {
  return {
    path: '',
    readFrame: (f: number) => (f === IDENTITY_FRAME || f === MISSING_FRAME ? ALL_INVALID_PAGE : f >= RAM_FRAME_BASE ? ramPage(f - RAM_FRAME_BASE) : null),
    frameOffset: (f: number) => f * PAGE_SIZE,
  } as unknown as GuestImage;
}

function views(kinds: number[], beyond: 'identity' | 'missing', tLeaves: number): { tool: ToolstackView; guest: GuestView } {
  const leafFrames = Float64Array.from(kinds, (k, i) => (k === P ? RAM_FRAME_BASE + i : k === I ? IDENTITY_FRAME : MISSING_FRAME));
  const tFrames = Float64Array.from({ length: tLeaves }, (_, i) => (i < kinds.length ? leafFrames[i]! : IDENTITY_FRAME));
  const guest = guestView('list', beyond, Uint8Array.from(kinds), leafFrames, MISSING_FRAME, IDENTITY_FRAME);
  const tool = toolView('list', tLeaves * P2M_PER_PAGE, tFrames);
  return { tool, guest };
}

/** The ranges of every leaf classified one by one (no tail), straight from classifyLeaf. */
function leafByLeaf(kinds: number[], beyond: 'identity' | 'missing', tLeaves: number): [number, number, number][] {
  const sink = new RangeSink();
  const leaves = Math.max(kinds.length, tLeaves);
  for (let k = 0; k < leaves; k++) {
    const kind = k < kinds.length ? kinds[k]! : beyond === 'identity' ? I : M;
    const page = kind === P ? ramPage(k) : null;
    const covered = k < tLeaves;
    const tPage = covered ? (kind === P ? page : ALL_INVALID_PAGE) : null;
    classifyLeaf(k * P2M_PER_PAGE, { kind: kind as 0, page }, { code: covered ? 0 : ToolLeaf.BEYOND, page: tPage, samePage: kind === P }, tLeaves * P2M_PER_PAGE, sink);
  }
  const t = sink.toFloat64Array();
  const out: [number, number, number][] = [];
  for (let i = 0; i < t.length; i += 3) out.push([t[i]!, t[i + 1]!, t[i + 2]!]);
  return out;
}

describe('planLeaves: the uniform tail', () => {
  const table: [name: string, kinds: number[], beyond: 'identity' | 'missing', tLeaves: number, wantActive: number, wantTail: number][] = [
    ['linear list: RAM then identity to xen_p2m_size', [P, P, P, I, I, I, I, I], 'identity', 3, 3, PfnClass.IDENTITY],
    ['the toolstack reaches into the identity leaves: they stay active', [P, P, I, I, I, I], 'identity', 4, 4, PfnClass.IDENTITY],
    ['mixed kinds at the end: only the last uniform run is the tail', [P, I, I, M, M], 'missing', 1, 3, PfnClass.MISSING],
    ['tree: leaves past limitPfn read as missing', [P, P, M], 'missing', 2, 2, PfnClass.MISSING],
    ['ends with a private page: no tail', [P, I, I, P], 'identity', 1, 4, PfnClass.MISSING],
    ['no guest leaves, toolstack beyond: all active', [], 'identity', 3, 3, PfnClass.IDENTITY],
    ['identity in the middle, RAM last', [I, I, P], 'identity', 0, 3, PfnClass.MISSING],
  ];
  it.each(table)('%s', (_name, kinds, beyond, tLeaves, wantActive, wantTail) => {
    const { tool, guest } = views(kinds, beyond, tLeaves);
    const plan = planLeaves(tool, guest);
    expect(plan.leaves).toBe(Math.max(kinds.length, tLeaves));
    expect(plan.activeLeaves).toBe(wantActive);
    expect(plan.gKinds.length).toBe(wantActive);
    if (wantActive < plan.leaves) expect(plan.tailClass).toBe(wantTail);
    // the audit with the tail folded equals classifying every leaf
    const r = auditInProcess(image(), tool, guest);
    const got = r.ranges.map((x) => [x.start, x.end, x.cls]);
    const want = leafByLeaf(kinds, beyond, tLeaves).map(([a, b, c]) => [a, b, PFN_CLASS_NAMES[c]]);
    expect(got).toEqual(want);
    expect(r.endPfn).toBe(plan.leaves * P2M_PER_PAGE);
  });

  it('addTail merges with a preceding range of the same class', () => {
    const { tool, guest } = views([P, I, I, I], 'identity', 1);
    const plan = planLeaves(tool, guest);
    expect(plan.activeLeaves).toBe(1);
    const sink = new RangeSink();
    sink.add(0, P2M_PER_PAGE, PfnClass.IDENTITY);
    addTail(sink, plan);
    expect(sink.count).toBe(1);
    expect(Array.from(sink.toFloat64Array())).toEqual([0, 4 * P2M_PER_PAGE, PfnClass.IDENTITY]);
  });
});

/** Repeats counted the obvious way. */
function countRepeats(frames: number[]): Map<number, number> {
  const n = new Map<number, number>();
  for (const f of frames) n.set(f, (n.get(f) ?? 0) + 1);
  return new Map([...n].filter(([, c]) => c > 1));
}

describe('repeatedFrames', () => {
  const table: [string, number[]][] = [
    ['empty', []],
    ['one', [5]],
    ['ascending', [1, 2, 3, 10, 11]],
    ['descending (memblock top-down)', [100, 99, 98, 50, 49]],
    ['disjoint runs in both directions', [10, 11, 12, 5, 4, 3, 20, 21]],
    ['back-to-back repeat', [1, 2, 2, 3]],
    ['repeat across runs', [1, 2, 3, 9, 8, 2]],
    ['overlapping runs without a repeat', [1, 5, 9, 2, 6, 10]],
    ['a shared frame many times', [7, 30, 7, 31, 7, 32, 7]],
    ['two repeated frames', [4, 4, 4, 9, 1, 9]],
    ['frames past 2^32 (sorted as doubles)', [2 ** 40, 3, 2 ** 40, 2 ** 33, 3, 3]],
    ['frames just below and at 2^32', [2 ** 32 - 1, 5, 2 ** 32 - 1, 2 ** 32, 5]],
    ['frames at 2^32 and beyond, close together', [2 ** 32 + 5, 2 ** 32 + 1, 2 ** 32 + 5, 2 ** 32 + 31, 2 ** 32 + 32]],
  ];
  it.each(table)('%s', (_name, frames) => {
    expect(repeatedFrames(Float64Array.from(frames))).toEqual(countRepeats(frames));
  });

  const run = (from: number, n: number, step: 1 | -1): number[] => Array.from({ length: n }, (_, k) => from + step * k);
  it.each([
    ['one long descending run (the memblock layout)', run(100_000, 5000, -1)],
    ['long runs in both directions, spans apart', [...run(10_000, 300, -1), ...run(20_000, 300, 1), ...run(5_000, 300, -1)]],
    ['long runs whose spans overlap: the shared frames repeat', [...run(1_000, 300, 1), ...run(1_250, 300, 1)]],
    ['a long run re-entered backwards', [...run(1_000, 400, 1), ...run(1_100, 50, -1)]],
    ['long runs joined by a jump of 2 (not contiguous)', [...run(0, 200, 1), ...run(201, 200, 1), ...run(500, 200, 1)]],
  ])('long runs: %s', (_name, frames) => {
    expect(repeatedFrames(Float64Array.from(frames))).toEqual(countRepeats(frames));
  });

  it('matches a plain count on seeded random lists', () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    for (let t = 0; t < 300; t++) {
      const len = rnd(40);
      const frames: number[] = [];
      // runs of neighbouring frames, sometimes overlapping, sometimes repeating
      while (frames.length < len) {
        const start = rnd(200);
        const dir = rnd(2) ? 1 : -1;
        const run = 1 + rnd(8);
        for (let k = 0; k < run && frames.length < len; k++) frames.push(start + dir * k);
      }
      expect(repeatedFrames(Float64Array.from(frames))).toEqual(countRepeats(frames));
    }
  });

  it('matches a plain count on seeded random lists of long runs', () => {
    let seed = 777;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    for (let t = 0; t < 100; t++) {
      const frames: number[] = [];
      const runs = 1 + rnd(6);
      for (let r = 0; r < runs; r++) frames.push(...run(rnd(5000), 50 + rnd(200), rnd(2) ? 1 : -1));
      expect(repeatedFrames(Float64Array.from(frames))).toEqual(countRepeats(frames));
    }
  });
});

describe('auditImage: small guests on the calling thread, large ones on the pool', () => {
  const GiB = 2 ** 30;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-audit-threads-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A linux-4.x dom0 of `guestGiB` on a host with RAM above 4 GiB, written as .p2ms. */
  function emulated(guestGiB: number): string {
    const hostE820: E820Entry[] = [
      { addr: 0, size: 0x9fc00, type: E820_RAM },
      { addr: 0x100000, size: 3 * GiB - 0x100000, type: E820_RAM },
      { addr: 4 * GiB, size: (guestGiB + 4) * GiB, type: E820_RAM },
    ];
    const nrPages = guestGiB * (GiB / PAGE_SIZE);
    const g = emulate({ profile: findProfile('linux-4.x')!, hostE820, nrPages, maxPages: nrPages, seed: 1 });
    const file = path.join(dir, `g${guestGiB}.p2ms`);
    writeEmulatedP2ms(g.image, file);
    return file;
  }

  // Without a running pool, workers are started only past IN_THREAD_MAX_LEAVES (262 144 leaves = 512 GiB);
  // with one (scan), past IN_THREAD_MAX_LEAVES_WARM (8192 = 16 GiB). 2 GiB has 1025 active leaves, 20 GiB
  // 10 241. Either way the ranges equal those of the JS path (auditInProcess through readFrame).
  const files = new Map<number, string>();
  const fileOf = (gib: number): string => {
    if (!files.has(gib)) files.set(gib, emulated(gib));
    return files.get(gib)!;
  };
  it.each([
    [2, false, 0],
    [20, false, 0],
    [2, true, 0],
    [20, true, 2],
  ])('%i GiB guest, --jobs 2, pool running %s: %i worker threads, the ranges of the JS path', async (guestGiB, withPool, threads) => {
    expect([IN_THREAD_MAX_LEAVES, IN_THREAD_MAX_LEAVES_WARM]).toEqual([262144, 8192]);
    const img = openImage(fileOf(guestGiB));
    const pool = withPool ? createAuditPool(2) : undefined;
    try {
      const out = await auditImage(img, { jobs: 2, pool });
      expect(out.audit.threads).toBe(threads);
      expect(out.audit.ranges).toEqual(auditInProcess(img, out.tool, out.guest).ranges);
      expect(out.report.verdict).toBe('CLEAN');
    } finally {
      img.close();
      await pool?.destroy();
    }
  });
});
