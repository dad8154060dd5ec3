import { describe, it, expect } from 'vitest';
import { computeDom0Pages, estimateDom0Avail, formatPages, parseDom0Mem, type Dom0MemSpec } from '../src/inputs/dom0-mem.js';
import { parseE820 } from '../src/inputs/e820.js';
import { InputError } from '../src/common/errors.js';

const K = 2 ** 10;
const M = 2 ** 20;
const G = 2 ** 30;
const T = 2 ** 40;

const bytes = (n: number, negative = false) => ({ kind: 'bytes' as const, bytes: n, negative });
const percent = (p: number, negative = false) => ({ kind: 'percent' as const, percent: p, negative });

import { SEED_HOST_LINES } from './helpers/seed-host.js';

const HOST = parseE820(
  SEED_HOST_LINES.join('\n'),
  'host',
);

describe('parseDom0Mem syntax', () => {
  it.each<[string, Omit<Dom0MemSpec, 'text'>]>([
    ['1G', { amount: bytes(G) }],
    ['dom0_mem=1g', { amount: bytes(G) }],
    ['512M', { amount: bytes(512 * M) }],
    ['512m', { amount: bytes(512 * M) }],
    ['2T', { amount: bytes(2 * T) }],
    ['1048576k', { amount: bytes(G) }],
    ['1048576K', { amount: bytes(G) }],
    ['4096', { amount: bytes(4096 * K) }],
    ['8192B', { amount: bytes(8192) }],
    ['0x100000', { amount: bytes(0x100000 * K) }],
    ['010M', { amount: bytes(8 * M) }],
    ['-512M', { amount: bytes(512 * M, true) }],
    ['min:1G', { min: bytes(G) }],
    ['max:2G', { max: bytes(2 * G) }],
    ['dom0_mem=1g,max:1g', { amount: bytes(G), max: bytes(G) }],
    ['min:512M,max:2G,1G', { amount: bytes(G), min: bytes(512 * M), max: bytes(2 * G) }],
    ['max:-1G', { max: bytes(G, true) }],
    ['10%', { amount: percent(10) }],
    ['-10%', { amount: percent(10, true) }],
    ['1G+25%', { amount: { kind: 'bytes+percent', bytes: G, percent: 25, negative: false } }],
    ['1G,2G', { amount: bytes(2 * G) }],
  ])('%s', (text, expected) => {
    const spec = parseDom0Mem(text);
    const { text: value, ...rest } = spec;
    expect(rest).toEqual(expected);
    expect(value).toBe(text.replace(/^dom0_mem=/, ''));
  });

  it.each([
    ['', 'dom0_mem: empty value'],
    ['dom0_mem=', 'dom0_mem: empty value'],
    ['abc', 'item 1 "abc"'],
    ['1G,', 'item 2 ""'],
    ['1Q', 'item 1 "1Q" of "1Q": unexpected "Q"'],
    ['1 G', 'item 1 "1 G"'],
    ['100%', 'percentage 100 is not below 100'],
    ['10%+1G', 'item 1 "10%+1G"'],
    ['1G+2G', 'a <size> must come before the <frac>%'],
    ['1G+', 'item 1 "1G+"'],
    ['MIN:1G', 'item 1 "MIN:1G"'],
    ['1G,min:x', 'item 2 "min:x"'],
    ['2K', 'rounds to 0 pages'],
    ['0', 'rounds to 0 pages'],
    ['99999T', 'beyond 2^52'],
  ])('rejects "%s"', (text, message) => {
    let err: unknown;
    try {
      parseDom0Mem(text);
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toContain(message);
    expect((err as Error).message).toContain('expected');
  });
});

describe('estimateDom0Avail', () => {
  it('worked example: RAM 0xfff7e pages - frame table ceil(0xfff7e*32/4096) - M2P ceil(0xfff7e*8/4096)', () => {
    expect(estimateDom0Avail(HOST)).toEqual({
      ramPages: 0xfff7e,
      frameTablePages: 0x1fff,
      m2pPages: 0x800,
      availPages: 0xfff7e - 0x1fff - 0x800,
    });
  });
});

describe('computeDom0Pages', () => {
  it.each<[string, string | null, number | undefined, number, number]>([
    // worked example of the spec, avail estimated from the host map
    ['spec: 1g,max:1g', 'dom0_mem=1g,max:1g', undefined, 0x40000, 0x40000],
    ['spec: 1g', 'dom0_mem=1g', undefined, 0x40000, 0xffffffff],
    // no amount: avail - min(avail/16, 128 MiB = 0x8000 pages)
    ['no dom0_mem, estimated avail 0xfd77f', null, undefined, 0xfd77f - 0x8000, 0xffffffff],
    ['no dom0_mem, avail 4 GiB: reserve 128 MiB', null, 0x100000, 0xf8000, 0xffffffff],
    ['no dom0_mem, avail 1 GiB: reserve 1/16', null, 0x40000, 0x3c000, 0xffffffff],
    ['max only: default then max', 'max:512M', 0x100000, 0x20000, 0x20000],
    // negative amounts are subtracted from avail
    ['-512M of 4 GiB', '-512M', 0x100000, 0xe0000, 0xffffffff],
    ['-512M,max:-1G of 4 GiB', '-512M,max:-1G', 0x100000, 0xc0000, 0xc0000],
    ['-8G of 4 GiB wraps, clamped to avail', '-8G', 0x100000, 0x100000, 0xffffffff],
    // percentages of avail
    ['25% of 4 GiB', '25%', 0x100000, 0x40000, 0xffffffff],
    ['1G+25% of 4 GiB', '1G+25%', 0x100000, 0x80000, 0xffffffff],
    // min/max clamps
    ['min raises', '512M,min:1G', 0x100000, 0x40000, 0xffffffff],
    ['max beats min', 'min:2G,max:1G,512M', 0x100000, 0x40000, 0x40000],
    ['more than the host: clamped', '64G', 0x100000, 0x100000, 0xffffffff],
    ['max above UINT_MAX pages', '1G,max:32T', 0x100000, 0x40000, 0xffffffff],
  ])('%s', (_name, text, availPages, nrPages, maxPages) => {
    const r = computeDom0Pages(text === null ? null : parseDom0Mem(text), HOST, availPages === undefined ? {} : { availPages });
    expect([r.nrPages, r.maxPages]).toEqual([nrPages, maxPages]);
    expect(r.nrPages).toBeLessThanOrEqual(r.availPages);
  });

  it('notes say where the numbers came from', () => {
    const none = computeDom0Pages(null, HOST, { availPages: 0x100000 });
    expect(none.notes.join('\n')).toContain('default');
    expect(none.notes.join('\n')).toContain('UINT_MAX');
    const clamped = computeDom0Pages(parseDom0Mem('64G'), HOST, { availPages: 0x100000 });
    expect(clamped.notes.join('\n')).toContain('Xen clamps to 0x100000 pages (4096 MiB)');
    const est = computeDom0Pages(parseDom0Mem('1G'), HOST);
    expect(est.availPages).toBe(0xfd77f);
    expect(est.notes.join('\n')).toContain('estimate');
  });

  it('refuses a host with no available memory', () => {
    expect(() => computeDom0Pages(null, [], {})).toThrow(InputError);
  });
});

describe('formatPages', () => {
  it.each([
    [0x40000, '0x40000 pages (1024 MiB)'],
    [0x100, '0x100 pages (1 MiB)'],
    [0x9f, '0x9f pages (636 KiB)'],
    [0, '0x0 pages (0 MiB)'],
  ])('%d', (pages, text) => {
    expect(formatPages(pages)).toBe(text);
  });
});
