// Work per file outside the guest view, bounded by counts (issue 17, the scan row): opening a .p2ms opens
// the file once and reads its header, metadata and index in two reads (src/formats/p2ms.ts layout: the
// header is the first 64 bytes, the probe openImage reads; the index follows the metadata); frame offsets
// are data offset + index position · 4096 on both sides of 2^30, where frameOffset computes them at two sites.
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { auditImage } from '../src/audit/audit-image.js';
import { openImage } from '../src/formats/open-image.js';
import { P2msImage } from '../src/formats/p2ms.js';
import { SCENARIO_VERDICTS } from './helpers/scenario-verdicts.js';

const scenario = (name: string): string => path.join(import.meta.dirname, '..', 'corpora', 'scenarios', `${name}.p2ms`);
const NAMES = Object.keys(SCENARIO_VERDICTS);

afterEach(() => {
  vi.restoreAllMocks();
});

describe('opening a .p2ms', () => {
  it.each(NAMES)('%s: one open, one fstat, two reads (the 64-byte probe = header; metadata + index)', (name) => {
    const opens = vi.spyOn(fs, 'openSync');
    const stats = vi.spyOn(fs, 'fstatSync');
    const reads = vi.spyOn(fs, 'readSync');
    const closes = vi.spyOn(fs, 'closeSync');
    const img = openImage(scenario(name));
    expect([opens.mock.calls.length, stats.mock.calls.length, reads.mock.calls.length, closes.mock.calls.length]).toEqual([1, 1, 2, 0]);
    img.close();
    expect(closes).toHaveBeenCalledTimes(1);
  });
});

describe('auditing a .p2ms on this thread', () => {
  it.each(NAMES)('%s: the leaf pages are read through the image\'s own descriptor (one open for the whole audit)', async (name) => {
    const img = openImage(scenario(name));
    const opens = vi.spyOn(fs, 'openSync');
    try {
      await auditImage(img, { jobs: 2 }); // a scenario guest is far below the size that starts workers
      // (the first audit in the process also opens the wasm leaf kernel: only the image's path counts here)
      expect(opens.mock.calls.filter((c) => c[0] === scenario(name))).toEqual([]);
    } finally {
      img.close();
    }
  });
});

describe('frame offsets past 2^31 (a 1 TiB image: 525,844 frames)', () => {
  // 261,887 / 261,888: the last offset below 2^30 and the first at or past it (computed at two sites)
  it.each([0, 261887, 261888, 524287, 524288, 525843])('index position %i: data offset + position · 4096', (k) => {
    // frames 0x1000, 0x1002, … (every other frame), data at 1 MiB; no file behind it (frameOffset reads nothing)
    const index = Float64Array.from({ length: 525844 }, (_, j) => 0x1000 + 2 * j);
    const img = new P2msImage('', -1, 'mfn', 8, null, 0n, new Map(), null, Infinity, 'test', index, 0x100000);
    expect(img.frameOffset(0x1000 + 2 * k)).toBe(0x100000 + k * 4096);
    expect(img.frameOffset(0x1001 + 2 * k)).toBe(-1);
  });
});
