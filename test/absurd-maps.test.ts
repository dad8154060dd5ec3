// Issue 12.6: absurd but parseable host maps (src/fuzz/absurd-maps.ts) are refused in one line when no x86-64
// Xen prints such a map (E820MAX = 1024 entries; no RAM above 2^47 bytes: docs/spec-notes/xen-dom0-map.md), and
// are otherwise emulated with work bounded by the map and the guest, counted — never timed: entries visited by
// xen_find_pfn_range, binary-search probes of the hole index, extents cut from host RAM.
import { describe, expect, it } from 'vitest';
import { ABSURD_KINDS, absurdMap, runAbsurdMap } from '../src/fuzz/absurd-maps.js';
import { RamRangeCursor, RunIndex } from '../src/emulate/kernel/memory-setup.js';
import { MachineMemory } from '../src/emulate/kernel/machine.js';
import { checkXenHostMap, sanitizeE820, XEN_E820MAX } from '../src/inputs/e820.js';
import { estimateDom0Avail, XEN_MAX_PAGE } from '../src/inputs/dom0-mem.js';
import { E820_ACPI, E820_RAM, E820_RESERVED } from '../src/xen/abi.js';

describe('refused in one line: maps no Xen prints', () => {
  it.each([
    ['ram-to-2^52', 1, /beyond 2\^47 bytes \(128 TiB\): Xen's clip_to_limit/],
    ['ram-to-2^47', 1, /beyond 2\^47 bytes/],
    // 600 RAM/hole pairs after the 3 low entries: 1203 > E820MAX; refused at the 1025th entry, on line 1026
    // (the header is line 1), without reading on
    ['entries-beyond-e820max', 600, /:1026: a memory map of more than 1024 entries, but Xen's e820 holds at most E820MAX = 1024/],
    ['overlapping-pile', 2000, /:1026: a memory map of more than 1024 entries/],
  ] as const)('%s', (kind, scale, why) => {
    const r = runAbsurdMap(absurdMap(kind, scale));
    expect(r.outcome).toBe('rejected');
    expect(r.message).toMatch(why);
    expect(r.message!.split('\n')).toHaveLength(1);
  });

  it('a dom0 Xen could give but the emulator cannot hold (RAM to 2^46, no dom0_mem): one line naming the size', () => {
    const r = runAbsurdMap(absurdMap('ram-to-2^46', 1));
    expect(r.outcome).toBe('rejected');
    // avail counts RAM below Xen's max_page 0xfffffffe only (setup_max_pdx): about 16 TiB, more than 4 TiB
    expect(r.message).toMatch(/a guest of 0x[0-9a-f]+ pages \(1[56]\.\d TiB\) is more than the emulator holds/);
  });

  it("Xen's avail never counts RAM above frame 0xfffffffe (FRAMETABLE_NR, 32-bit __pdx_t)", () => {
    const est = estimateDom0Avail([{ addr: 0, size: 2 ** 46, type: E820_RAM }]);
    expect(est.ramPages).toBe(XEN_MAX_PAGE);
  });
});

describe('emulated with bounded work', () => {
  it('RAM to 2^46 with dom0_mem=1g,max:1g: extents are cut for the guest, not for 64 TiB of host', () => {
    const r = runAbsurdMap(absurdMap('ram-to-2^46', 1), { dom0Mem: '1g,max:1g' });
    expect(r.outcome).toBe('ok');
    // one window of max(2 × 0x40000, 2^20) pages in extents of at least 16 pages, plus at most one refill window
    expect(r.work!.machineBlocks).toBeLessThanOrEqual((2 * 2 ** 20) / 16 + 8);
  });

  it('1000 entries (500 4 KiB holes) under a dom0 spanning them: xen_find_pfn_range visits each entry about once', () => {
    const map = absurdMap('many-holes', 500, 7);
    expect(map.entries).toBeLessThanOrEqual(XEN_E820MAX);
    const r = runAbsurdMap(map, { dom0Mem: '6g' });
    expect(r.outcome).toBe('ok');
    // Linux rescans from the first entry on every call (O(entries) each, ~500 calls here); the cursor passes each once
    expect(r.work!.findSteps).toBeGreaterThan(0);
    expect(r.work!.findSteps).toBeLessThanOrEqual(3 * map.entries);
  });

  it.each(ABSURD_KINDS.map((k) => [k] as const))('%s: refused or emulated, never another error', (kind) => {
    const r = runAbsurdMap(absurdMap(kind, 200, 3), { dom0Mem: '512m,max:512m' });
    expect(['ok', 'rejected']).toContain(r.outcome);
  });
});

describe('the linear pieces', () => {
  it('RamRangeCursor: the same answers as a rescan from the start, each entry stepped over once', () => {
    const map = Array.from({ length: 2000 }, (_, i) => ({ addr: i * 0x3000, size: i % 2 ? 0x1000 : 0x2000, type: i % 2 ? E820_RESERVED : E820_RAM }));
    const rescan = (min: number) => {
      for (const e of map) {
        if (e.type !== E820_RAM) continue;
        const ePfn = Math.floor((e.addr + e.size) / 4096);
        if (ePfn <= min) continue;
        const sPfn = Math.ceil(e.addr / 4096);
        return sPfn <= min ? { start: min, size: ePfn - min } : { start: sPfn, size: ePfn - sPfn };
      }
      return { start: min, size: 0 };
    };
    const c = new RamRangeCursor(map);
    for (let min = 0; min < 6000; min += 1) expect(c.find(min)).toEqual(rescan(min));
    expect(c.steps).toBeLessThanOrEqual(map.length + 6000);
  });

  it('RunIndex: at most ⌈log2(runs + 1)⌉ probes per lookup', () => {
    const runs = Array.from({ length: 100_000 }, (_, i) => ({ start: i * 10, end: i * 10 + 3 }));
    const idx = new RunIndex(runs);
    let hits = 0;
    for (let pfn = 0; pfn < 100_000; pfn += 7) if (idx.has(pfn)) hits++;
    expect(hits).toBe(Array.from({ length: Math.ceil(100_000 / 7) }, (_, k) => (k * 7) % 10).filter((r) => r < 3).length);
    expect(idx.probes).toBeLessThanOrEqual(Math.ceil(100_000 / 7) * Math.ceil(Math.log2(100_001)));
  });

  it('sanitize: a pile of overlapping entries comes out as one entry of the highest type', () => {
    const pile = Array.from({ length: 3000 }, (_, i) => ({ addr: 0x100000, size: 0x100000, type: [E820_RAM, E820_ACPI, E820_RESERVED][i % 3]! }));
    expect(sanitizeE820(pile)).toEqual([{ addr: 0x100000, size: 0x100000, type: E820_ACPI }]);
  });

  it('MachineMemory on a 256 GiB-or-smaller host cuts all of it at once (the layout seeds always gave)', () => {
    const host = [{ addr: 0, size: 2 ** 33, type: E820_RAM }];
    const m = new MachineMemory(host, 0x40000, 9);
    // 2^21 pages in extents of 16 … 16384 pages: at least 2^21 / 16384 of them
    expect(m.blocksDrawn).toBeGreaterThanOrEqual(2 ** 21 / 2 ** 14);
    expect(() => checkXenHostMap(host, 'h')).not.toThrow();
  });
});
