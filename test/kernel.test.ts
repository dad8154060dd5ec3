// The boot emulator's building blocks against values derived by hand from linux-p2m.md and the real
// 4.19 boot log (shared/real-logs/latitude-e6420-xen4.14-linux4.19.txt).
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { GuestLeaf, kindAt } from '../src/views/p2m-leaves.js';
import { readGuestView } from '../src/views/guest-view.js';
import { parseE820 } from '../src/inputs/e820.js';
import { emulate } from '../src/emulate/kernel/boot.js';
import { MachineMemory } from '../src/emulate/kernel/machine.js';
import { nonRamRuns } from '../src/emulate/kernel/memory-setup.js';
import { findProfile } from '../src/emulate/kernel/profiles.js';
import { mapP2m } from '../src/views/toolstack-view.js';

const corpora = path.resolve(__dirname, '../corpora/scenarios/hosts');
const seedHost = parseE820(fs.readFileSync(path.join(corpora, 'seed-host.txt'), 'utf8'), 'seed');

/** The host map of the real Latitude E6420 log (Xen-e820, end exclusive), kept here verbatim. */
const LATITUDE = `(XEN)  0000000000000000 - 000000000009a800 (usable)
(XEN)  000000000009a800 - 00000000000a0000 (reserved)
(XEN)  00000000000e0000 - 0000000000100000 (reserved)
(XEN)  0000000000100000 - 0000000020000000 (usable)
(XEN)  0000000020000000 - 0000000020200000 (reserved)
(XEN)  0000000020200000 - 0000000040000000 (usable)
(XEN)  0000000040000000 - 0000000040200000 (reserved)
(XEN)  0000000040200000 - 00000000ca61f000 (usable)
(XEN)  00000000ca61f000 - 00000000ca663000 (reserved)
(XEN)  00000000ca663000 - 00000000ca9b7000 (usable)
(XEN)  00000000ca9b7000 - 00000000ca9e7000 (reserved)
(XEN)  00000000ca9e7000 - 00000000cabe7000 (ACPI NVS)
(XEN)  00000000cabe7000 - 00000000cabff000 (ACPI data)
(XEN)  00000000cabff000 - 00000000cac00000 (usable)
(XEN)  00000000cb800000 - 00000000cfa00000 (reserved)
(XEN)  00000000fed1c000 - 00000000fed20000 (reserved)
(XEN)  00000000ffc00000 - 00000000ffc20000 (reserved)
(XEN)  0000000100000000 - 000000042e000000 (usable)`;

describe('non-RAM runs (xen_foreach_remap_area walker)', () => {
  it('seed host: A = [0x9f,0x100), B = [0x7ffdf,0x100000)', () => {
    expect(nonRamRuns(seedHost)).toEqual([
      { start: 0x9f, end: 0x100 },
      { start: 0x7ffdf, end: 0x100000 },
    ]);
  });

  it('real 4.19 host: runs below nr_pages 0x100000 add up to the logged "Remapped 219890 page(s)"', () => {
    const runs = nonRamRuns(parseE820(LATITUDE, 'latitude'));
    // by hand: 0x9a-0xff 102, 0x20000-0x201ff 512, 0x40000-0x401ff 512, 0xca61f-0xca662 68,
    // 0xca9b7-0xcabfe 584, 0xcac00-0xfffff 218112 (gaps and reserved entries merge up to the next RAM)
    expect(runs.slice(0, 6)).toEqual([
      { start: 0x9a, end: 0x100 },
      { start: 0x20000, end: 0x20200 },
      { start: 0x40000, end: 0x40200 },
      { start: 0xca61f, end: 0xca663 },
      { start: 0xca9b7, end: 0xcabff },
      { start: 0xcac00, end: 0x100000 },
    ]);
    const below = runs.reduce((n, r) => n + Math.max(0, Math.min(r.end, 0x100000) - r.start), 0);
    expect(below).toBe(219890);
  });
});

describe('the 4.x emulator reproduces the real 4.19 boot (nr_pages = max pages = 0x100000, P2M_LIMIT 0)', () => {
  const g = emulate({
    profile: findProfile('linux-4.x')!,
    hostE820: parseE820(LATITUDE, 'latitude'),
    nrPages: 0x100000,
    maxPages: 0x100000,
    config: { CONFIG_XEN_BALLOON_MEMORY_HOTPLUG: 'n' },
  });
  it.each([
    ['Remapped 219890 page(s)'],
    ['last_pfn = 0x135af2 max_arch_pfn = 0x400000000'],
    ['Xen: [mem 0x0000000100000000-0x0000000135af1fff] usable'],
  ])('prints %s', (line) => {
    expect(g.facts.messages).toContain(line);
  });
  it('p2m virtual area size a00000', () => {
    expect(g.facts.messages.some((m) => /^p2m virtual area at .*, size is a00000$/.test(m))).toBe(true);
  });
  it('kernel max_pfn 0x135af2 and arch.max_pfn = xen_p2m_last_pfn = 0x135af2', () => {
    expect(g.facts.kernelMaxPfn).toBe(0x135af2);
    expect(g.image.arch.maxPfn).toBe(0x135af2n);
  });
});

describe('machine frames', () => {
  it('are seeded, inside host RAM, and not pfn + constant', () => {
    const m = new MachineMemory(seedHost, 0x40000, 42);
    const deltas = new Set<number>();
    const seen = new Set<number>();
    for (let pfn = 0; pfn < 0x40000; pfn += 97) {
      const mfn = m.mfnOf(pfn);
      expect(mfn).toBeGreaterThanOrEqual(0);
      const inRam = seedHost.some((e) => e.type === 1 && mfn * 4096 >= e.addr && (mfn + 1) * 4096 <= e.addr + e.size);
      expect(inRam).toBe(true);
      expect(seen.has(mfn)).toBe(false);
      seen.add(mfn);
      deltas.add(mfn - pfn);
    }
    expect(deltas.size).toBeGreaterThan(10);
    expect(new MachineMemory(seedHost, 0x40000, 42).mfnOf(12345)).toBe(m.mfnOf(12345));
    expect(new MachineMemory(seedHost, 0x40000, 43).mfnOf(12345)).not.toBe(m.mfnOf(12345));
  });
});

describe('3.8 tree details (seed host, dom0_mem=1g,max:1g)', () => {
  const g = emulate({ profile: findProfile('linux-3.8.13-backport')!, hostE820: seedHost, nrPages: 0x40000, maxPages: 0x40000 });
  const view = readGuestView(g.image);
  it('prints the 3.8 messages', () => {
    expect(g.facts.messages).toContain('Released 97 pages of unused memory');
    expect(g.facts.messages).toContain('Set 524418 page(s) to 1-1 mapping'); // 97 + 0x80021
  });
  it('tops 0-3 in use; [1][511] is a private boundary leaf, [2][*] and [3][*] are p2m_identity', () => {
    expect(view.layout).toBe('tree');
    expect(view.limitPfn).toBe(0x100000);
    expect(view.kinds[0x3ff]).toBe(GuestLeaf.PAGE); // pfns 0x7fe00-0x7ffff
    // (tops 2 and 3 are the view's uniform tail, past its arrays: read through kindAt)
    for (const leaf of [0x400, 0x5ff, 0x600, 0x7ff]) expect(kindAt(view, leaf)).toBe(GuestLeaf.IDENTITY);
    expect(view.kinds[0x200]).toBe(GuestLeaf.PAGE); // the populated leaf 0x40000-0x401ff
    expect(view.kinds[0x201]).toBe(GuestLeaf.MISSING);
  });
  it('the delayed build mirrors top 0 only: arch.max_pfn 0x40000, toolstack 512 leaves', () => {
    const t = mapP2m(g.image);
    expect(t.method).toBe('tree');
    expect(t.maxPfn).toBe(0x3ffff);
    expect(t.leafFrames.length).toBe(512);
    // the toolstack's leaf frames are the guest's own leaf pages
    for (let k = 0; k < 512; k++) expect(t.leafFrames[k]).toBe(view.leafFrames[k]);
  });
  it('the populated pfns hold fresh machine frames in the guest p2m', () => {
    const leafFrame = view.leafFrames[0x200]!;
    const page = Buffer.from(g.image.readFrame(leafFrame)!);
    for (let i = 0; i < 0x61; i++) expect(page.readUInt32LE(i * 8 + 4)).toBe(0); // real mfns, no markers
    for (let i = 0x61; i < 512; i++) expect(page.readUInt32LE(i * 8 + 4)).toBe(0xffffffff); // INVALID
  });
});
