// Xen kdump ELF vmcores: the real dom0 vmcore of corpora/real/dom0-6.1-clean.vmcore.zst read against its README
// (../shared/real-dom0-kdump/README.md: notes table, crash_xen_info_t table, PT_LOAD table, shared_info and frame
// list pages; the crash regs from its readelf-n-l.txt; the host map and crash region from its xen-dmesg.txt),
// the writer's layout checked against the same tables, its files re-read by the reader and by binutils'
// readelf, and bad input built byte by byte from the System V gABI note/program-header layout.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/common/errors.js';
import { emulate } from '../src/emulate/kernel/boot.js';
import { findProfile } from '../src/emulate/kernel/profiles.js';
import { crashMemoryRanges, hostRamRanges, kdumpNoteArea, planDom0Kdump } from '../src/emulate/kdump-host.js';
import { vmcoreHead, vmcoreLayout, writeVmcore } from '../src/emulate/vmcore-writer.js';
import type { MemoryImage } from '../src/formats/memory-image.js';
import { detectFormat, openImage, readHead } from '../src/formats/open-image.js';
import { openVmcore, type VmcoreImage } from '../src/formats/vmcore.js';
import { parseE820 } from '../src/inputs/e820.js';
import { inputErrorAt } from './helpers/input-error.js';
import { realVmcorePath } from './helpers/real-vmcore.js';
import { SEED_HOST_LINES } from './helpers/seed-host.js';
import { elfNote } from './helpers/elf-note.js';

const PAGE = 4096;
const MiB = 1024 * 1024;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmcore-test-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const tmp = (name: string): string => path.join(dir, `${seq++}-${name}`);

/** README "PT_LOAD" table: p_paddr, size, file offset. */
const REAL_LOADS: [number, number, number][] = [
  [0x0, 0x9fc00, 0x3000],
  [0x100000, 0xf900000, 0xa3000],
  [0x1fa00000, 0x5da000, 0xf9a3000],
  [0x100000000, 0x60000000, 0xff7d000],
];
/** README notes table: note header at, name, type, descsz, desc at. */
const REAL_NOTES: [number, string, number, number, number][] = [
  [0x1000, 'CORE', 1, 336, 0x1014],
  [0x1164, 'Xen', 0x1000002, 32, 0x1174],
  [0x1194, 'Xen', 0x1000001, 80, 0x11a4],
  [0x11f4, 'CORE', 1, 336, 0x1208],
  [0x1358, 'Xen', 0x1000002, 32, 0x1368],
  [0x1388, 'VMCOREINFO_XEN', 0, 4068, 0x13a4],
];
/** xen-dmesg.txt: Xen's machine map, and "Kdump: 256MB (262144kB) at 0xfa00000". */
const REAL_E820 = [
  '(XEN)  [0000000000000000, 000000000009fbff] (usable)',
  '(XEN)  [000000000009fc00, 000000000009ffff] (reserved)',
  '(XEN)  [00000000000f0000, 00000000000fffff] (reserved)',
  '(XEN)  [0000000000100000, 000000001ffd9fff] (usable)',
  '(XEN)  [000000001ffda000, 000000001fffffff] (reserved)',
  '(XEN)  [00000000fffc0000, 00000000ffffffff] (reserved)',
  '(XEN)  [0000000100000000, 000000015fffffff] (usable)',
  '(XEN)  [000000fd00000000, 000000ffffffffff] (reserved)',
].join('\n');
const REAL_CRASH = { start: 0xfa00000, size: 256 * MiB };
/** kexec-tools: p_vaddr = X86_64_PAGE_OFFSET + p_paddr (readelf-n-l.txt shows 0xffff888000000000 + p_paddr). */
const PAGE_OFFSET = 0xffff888000000000n;

/** The file offset README's PT_LOAD table gives a machine address, or −1 outside every segment. */
function realOffsetOf(maddr: number): number {
  const l = REAL_LOADS.find(([p, size]) => maddr >= p && maddr + PAGE <= p + size);
  return l ? l[2] + (maddr - l[0]) : -1;
}

function bytesAt(file: string, offset: number, length: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(length);
    fs.readSync(fd, b, 0, length, offset);
    return b;
  } finally {
    fs.closeSync(fd);
  }
}

/** readelf -n -l: exit status, stderr, program headers (type, offset, vaddr, paddr, filesz) and note owners/sizes. */
function readelf(file: string): { status: number | null; stderr: string; phdrs: [string, number, bigint, number, number][]; notes: [string, number][] } {
  const r = spawnSync('readelf', ['-n', '-l', '-W', file], { encoding: 'utf8', maxBuffer: 64 * MiB });
  const phdrs: [string, number, bigint, number, number][] = [];
  const notes: [string, number][] = [];
  for (const line of r.stdout.split('\n')) {
    const p = /^\s+(NOTE|LOAD)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)/.exec(line);
    if (p) phdrs.push([p[1]!, parseInt(p[2]!, 16), BigInt('0x' + p[3]!), parseInt(p[4]!, 16), parseInt(p[5]!, 16)]);
    const n = /^\s+(CORE|Xen|VMCOREINFO_XEN)\s+0x([0-9a-f]+)\s/.exec(line);
    if (n) notes.push([n[1]!, parseInt(n[2]!, 16)]);
  }
  return { status: r.status, stderr: r.stderr, phdrs, notes };
}

// ---- the real dom0 vmcore -------------------------------------------------------------------------------
describe('real Xen 4.17 dom0 vmcore (corpora/real/dom0-6.1-clean.vmcore.zst)', () => {
  let file: string;
  let img: VmcoreImage;
  beforeAll(() => {
    file = realVmcorePath();
    img = openVmcore(file);
  });
  afterAll(() => img?.close());

  it('is detected by content as a vmcore, with and without a look at its notes, and openImage reads it', () => {
    expect(detectFormat(readHead(file), file).format).toBe('vmcore');
    expect(detectFormat(readHead(file)).format).toBe('vmcore');
    const viaOpen = openImage(file);
    expect(viaOpen.format).toBe('vmcore');
    viaOpen.close();
    expect(img.frameSpace).toBe('mfn');
    expect(img.sharedInfo).toBeNull();
    expect(img.cr3).toBe(0n);
  });

  it.each(REAL_NOTES)('note header at %i: %s type %i, descsz %i, desc at %i', (_at, name, type, descSize, descOffset) => {
    const notes = img.formatFacts.notes;
    expect(notes).toHaveLength(REAL_NOTES.length);
    expect(notes).toContainEqual({ name, type, descSize, descOffset });
  });

  it.each([
    ['xen_major_version', 0, 4n],
    ['xen_minor_version', 1, 0x11n],
    ['xen_extra_version', 2, 0x1fba053fn],
    ['xen_changeset', 3, 0x1fbb1b3fn],
    ['xen_compiler', 4, 0x1fba0508n],
    ['xen_compile_date', 5, 0x1fba0490n],
    ['xen_compile_time', 6, 0x1fba04adn],
    ['tainted', 7, 0n],
    ['xen_phys_start', 8, 0x1f800000n],
    ['dom0_pfn_to_mfn_frame_list_list', 9, 0x13513bn],
  ])('crash_xen_info_t %s (word %i) = %s', (_name, word, value) => {
    expect(img.formatFacts.crashInfo.words[word]).toBe(value);
  });

  it('crash_xen_info_t as named fields: 80 bytes, Xen 4.17, the frame-list root is the last word (crash: p2m_mfn 13513b)', () => {
    expect(img.formatFacts.crashInfo).toMatchObject({ descSize: 80, xenMajor: 4, xenMinor: 17, tainted: 0, xenPhysStart: 0x1f800000, frameListListMfn: 0x13513b });
    expect(img.arch.pfnToMfnFrameListList).toBe(0x13513bn);
    expect(img.arch.maxPfn).toBe(0n); // not in the note: only dom0's shared_info page has it
  });

  it('the PT_LOAD table, frames held (whole pages only) and the highest frame', () => {
    expect(img.formatFacts.segments.map((s) => [s.maddr, s.size, s.fileOffset])).toEqual(REAL_LOADS);
    expect(img.formatFacts.compression).toBeNull();
    const whole = REAL_LOADS.reduce((n, [p, size]) => n + Math.floor((p + size) / PAGE) - Math.ceil(p / PAGE), 0);
    expect(img.frameCount()).toBe(whole);
    expect(img.maxFrame).toBe((0x100000000 + 0x60000000) / PAGE - 1);
  });

  it.each([0x0, 0x9e, 0x100, 0xf9ff, 0x1fa00, 0x1ffd6, 0x1ffd9, 0x100000, 0x13513b, 0x13781e, 0x15ffff])('frame %i is read at the file offset the PT_LOAD table gives', (mfn) => {
    const off = realOffsetOf(mfn * PAGE);
    expect(off).toBeGreaterThan(0);
    expect(img.frameOffset(mfn)).toBe(off);
    expect(img.readFrame(mfn)!.equals(bytesAt(file, off, PAGE))).toBe(true);
  });

  it.each([
    ['0x9f: only 0x9f000-0x9fbff is dumped', 0x9f],
    ['0xfa00: the crash region', 0xfa00],
    ['0x1f9ff: the crash region', 0x1f9ff],
    ['0x1ffda: reserved', 0x1ffda],
    ['0x160000: above RAM', 0x160000],
  ])('frame %s is not in the dump', (_why, mfn) => {
    expect(img.frameOffset(mfn)).toBe(-1);
    expect(img.readFrame(mfn)).toBeNull();
  });

  it("the frame list's top page and shared missing pages read as the README's walk found them", () => {
    const top = Buffer.from(img.readFrame(0x13513b)!);
    const slots = Array.from({ length: 512 }, (_, i) => top.readBigUInt64LE(i * 8));
    expect(slots[0]).toBe(0x13513an);
    expect(slots[4]).toBe(0x135139n);
    expect(slots.filter((s) => s === 0x13513dn)).toHaveLength(510);
    const mid = Buffer.from(img.readFrame(0x13513d)!);
    expect(Array.from({ length: 512 }, (_, i) => mid.readBigUInt64LE(i * 8)).every((s) => s === 0x13781en)).toBe(true);
    expect(img.readFrame(0x13781e)!.equals(Buffer.alloc(PAGE, 0xff))).toBe(true);
  });

  it.each([
    [0xc10, 0x120087n],
    [0xc18, 0x13513bn],
    [0xc20, 0n],
    [0xc28, 0x152a10000n],
    [0xc30, 0xffffc90000000000n],
    [0xc38, 0n],
  ])("dom0's shared_info page (maddr 0x1ffd6000) holds at +%i the README's arch value", (at, value) => {
    expect(img.readFrame(0x1ffd6)!.readBigUInt64LE(at)).toBe(value);
  });

  it("VMCOREINFO_XEN is Xen's text; the CRASH_REGS notes hold readelf's cr0/cr3 of each pCPU", () => {
    expect(img.formatFacts.vmcoreInfoXen!.startsWith('PAGESIZE=4096\nSYMBOL(domain_list)=ffff82d04057b380\nSYMBOL(frame_table)=ffff82d04039e858\n')).toBe(true);
    const regs = (descAt: number) => [bytesAt(file, descAt, 8).readBigUInt64LE(0), bytesAt(file, descAt + 16, 8).readBigUInt64LE(0)];
    expect(regs(0x1174)).toEqual([0x80050033n, 0x139240000n]);
    expect(regs(0x1368)).toEqual([0x8005003bn, 0x1fc6e000n]);
  });

  it('readelf reads the same notes and program headers', () => {
    const r = readelf(file);
    expect(r.status).toBe(0);
    expect(r.notes).toEqual(REAL_NOTES.map(([, name, , size]) => [name, size]));
    expect(r.phdrs.slice(1).map(([, off, vaddr, paddr, size]) => [paddr, size, off, vaddr])).toEqual(REAL_LOADS.map(([p, s, o]) => [p, s, o, PAGE_OFFSET + BigInt(p)]));
  });

  it('inspect --json names the notes, Xen 4.17.7 (".7" read from the dump), xen_phys_start, the root and the ranges', () => {
    const r = spawnSync(process.execPath, [path.resolve(__dirname, '../dist/src/cli.js'), 'inspect', file, '--json'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const k = (JSON.parse(r.stdout) as { kdump: Record<string, any> }).kdump;
    expect(k['xenVersion']).toBe('4.17.7');
    expect(k['xenPhysStart']).toBe('0x1f800000');
    expect(k['frameListRoot']).toBe('0x13513b');
    expect(k['compression']).toBe('none (ELF)');
    expect(k['notes'].map((n: any) => n.type)).toEqual(['NT_PRSTATUS', 'XEN_ELFNOTE_CRASH_REGS', 'XEN_ELFNOTE_CRASH_INFO', 'NT_PRSTATUS', 'XEN_ELFNOTE_CRASH_REGS', '0x0']);
    expect(k['segments'].map((s: any) => s.fileOffset)).toEqual(REAL_LOADS.map((l) => l[2]));
  });
});

// ---- the writer -------------------------------------------------------------------------------------------
describe('vmcore writer', () => {
  it("lays out the real host's map less its crash region exactly as the real file (fs/proc/vmcore.c offsets, kexec-tools p_vaddr)", () => {
    const ranges = crashMemoryRanges(hostRamRanges(parseE820(REAL_E820, 'xen-dmesg.txt')), REAL_CRASH);
    const notes = kdumpNoteArea({ pcpus: 2, xenMajor: 4, xenMinor: 17, xenPhysStart: 0x1f800000, frameListList: 0x13513bn, cr3: 0n });
    const l = vmcoreLayout(ranges, notes.length);
    expect(l.loads.map((x) => [x.paddr, x.size, x.offset])).toEqual(REAL_LOADS);
    expect(l.loads.map((x) => x.vaddr)).toEqual(REAL_LOADS.map(([p]) => PAGE_OFFSET + BigInt(p)));
    expect([l.phnum, l.noteOffset, l.noteSize, l.fileSize]).toEqual([5, 0x1000, 0x1388, 1_878_511_616]);
    // the notes at the real file's offsets: walk the headers (namesz, descsz, type; name and desc padded to 4)
    const seen: [number, string, number, number][] = [];
    for (let o = 0; o < notes.length; ) {
      const [namesz, descsz, type] = [notes.readUInt32LE(o), notes.readUInt32LE(o + 4), notes.readUInt32LE(o + 8)];
      seen.push([0x1000 + o, notes.subarray(o + 12, o + 11 + namesz).toString('latin1'), type, descsz]);
      o += 12 + Math.ceil(namesz / 4) * 4 + Math.ceil(descsz / 4) * 4;
    }
    expect(seen).toEqual(REAL_NOTES.map(([at, name, type, size]) => [at, name, type, size]));
    // and the first 0x3000 bytes' header fields as the real file has them (its first 0x150 bytes with this PT_NOTE)
    expect(vmcoreHead(l, notes).subarray(0, 0x160).equals(bytesAt(realVmcorePath(), 0, 0x160))).toBe(true);
  });

  describe('an emulated linux-6.1 dom0 on the seed host, dom0_mem=1g,max:1g', () => {
    let mem: MemoryImage;
    let file: string;
    let written: ReturnType<typeof writeVmcore>;
    let img: VmcoreImage;
    beforeAll(() => {
      mem = emulate({ profile: findProfile('linux-6.1')!, hostE820: parseE820(SEED_HOST_LINES.join('\n'), 'seed-host'), nrPages: 0x40000, maxPages: 0x40000 }).image;
      file = tmp('seed-6.1.vmcore');
      written = writeVmcore(mem, file);
      img = openVmcore(file, { symbols: mem.symbols });
    });
    afterAll(() => img?.close());

    it('the crash region is 256 MiB of RAM below 4 GiB holding none of the machine frames, cut out of the ranges', () => {
      const c = written.crashRegion;
      expect(c.size).toBe(256 * MiB);
      expect(c.start + c.size).toBeLessThanOrEqual(4096 * MiB);
      expect([...mem.frames()].filter((f) => f * PAGE >= c.start && f * PAGE < c.start + c.size)).toEqual([]);
      // the seed host's RAM: 0-0x9fbff, 0x100000-0x7ffdefff, 0x100000000-0x17fffffff; the area sits at the top below 4 GiB
      expect(img.formatFacts.segments.map((s) => [s.maddr, s.size])).toEqual([
        [0, 0x9fc00],
        [0x100000, c.start - 0x100000],
        [0x100000000, 0x80000000],
      ]);
      expect(c.start + c.size).toBe(0x7ffdf000);
    });

    it('every frame the emulated machine holds reads back the same; the note carries its frame-list root', () => {
      let n = 0;
      for (const f of mem.frames()) {
        expect(img.readFrame(f)!.equals(mem.readFrame(f)!)).toBe(true);
        n++;
      }
      expect(n).toBe(written.frames);
      expect(img.formatFacts.crashInfo.frameListListMfn).toBe(Number(mem.arch.pfnToMfnFrameListList));
      expect(img.arch.pfnToMfnFrameListList).toBe(mem.arch.pfnToMfnFrameListList);
      expect(img.formatFacts.crashInfo.descSize).toBe(80);
      expect(img.symbols).toBe(mem.symbols);
    });

    it('readelf -n -l accepts it: the PT_NOTE and PT_LOADs written, the notes of two pCPUs', () => {
      const r = readelf(file);
      expect(r.status).toBe(0);
      expect(r.stderr).toBe('');
      expect(r.phdrs).toEqual([
        ['NOTE', 0x1000, 0n, 0, 0x1388],
        ...written.loads.map((l): [string, number, bigint, number, number] => ['LOAD', l.offset, l.vaddr, l.paddr, l.size]),
      ]);
      expect(r.notes).toEqual(REAL_NOTES.map(([, name, , size]) => [name, size]));
    });

    it('emulate --format vmcore writes it with FILE.map beside, and inspect reads it', () => {
      const cli = path.resolve(__dirname, '../dist/src/cli.js');
      const out = tmp('cli.vmcore');
      const host = path.resolve(__dirname, '../corpora/scenarios/hosts/seed-host.txt');
      const w = spawnSync(process.execPath, [cli, 'emulate', '--profile', 'linux-6.1', '--e820', host, '--dom0-mem', '1g,max:1g', '--format', 'vmcore', '-o', out], { encoding: 'utf8' });
      expect(w.status).toBe(0);
      expect(fs.existsSync(out + '.map')).toBe(true);
      const i = spawnSync(process.execPath, [cli, 'inspect', out, '--json'], { encoding: 'utf8' });
      const info = JSON.parse(i.stdout) as { format: string; kdump: { frameListRoot: string } };
      expect(info.format).toBe('vmcore');
      expect(info.kdump.frameListRoot).toBe('0x' + mem.arch.pfnToMfnFrameListList.toString(16));
    });
  });

  it('refuses a domU (no kdump of its own) and a crash region holding machine frames', () => {
    const guest = emulate({ profile: findProfile('linux-6.1')!, hostE820: parseE820(SEED_HOST_LINES.join('\n'), 'seed-host'), nrPages: 0x8000, maxPages: 0x8000, role: 'domU' });
    expect(() => planDom0Kdump(guest.image, guest.facts)).toThrow(/a domU has no kdump vmcore/);
    const dom0 = emulate({ profile: findProfile('linux-6.1')!, hostE820: parseE820(SEED_HOST_LINES.join('\n'), 'seed-host'), nrPages: 0x8000, maxPages: 0x8000 });
    const f = [...dom0.image.frames()][0]!;
    expect(() => planDom0Kdump(dom0.image, dom0.facts, { crashRegion: { start: f * PAGE, size: 2 * MiB } })).toThrow(/holds frames the emulated machine uses/);
  });
});

// ---- bad input ---------------------------------------------------------------------------------------------
const note = elfNote;
const crashInfo = (bytes: number): Buffer => {
  const d = Buffer.alloc(bytes);
  d.writeBigUInt64LE(4n, 0);
  d.writeBigUInt64LE(17n, 8);
  d.writeBigUInt64LE(0x1234n, bytes - 8);
  return d;
};
const PRSTATUS = note('CORE', 1, Buffer.alloc(336));
const REGS = note('Xen', 0x1000002, Buffer.alloc(32));
const XEN_NOTES = Buffer.concat([PRSTATUS, REGS, note('Xen', 0x1000001, crashInfo(80)), note('VMCOREINFO_XEN', 0, Buffer.from('PAGESIZE=4096\n'))]);
const TINY_RANGES = [
  { start: 0x100000, size: 0x4000 },
  { start: 0x200000, size: 0x2000 },
];
const PHDR = (i: number): number => 64 + 56 * i;

/** A vmcore of the tiny ranges and these notes, then patched. */
function tiny(notes: Buffer, patch: (b: Buffer) => Buffer = (b) => b, ranges = TINY_RANGES): string {
  const l = vmcoreLayout(ranges, notes.length);
  const b = Buffer.alloc(l.fileSize);
  vmcoreHead(l, notes).copy(b);
  const p = tmp('bad.vmcore');
  fs.writeFileSync(p, patch(b));
  return p;
}

describe('bad input', () => {
  it('a 72-byte crash_xen_info_t (Xen before 3.3) is read: no xen_phys_start, the root is the last word', () => {
    const img = openVmcore(tiny(Buffer.concat([PRSTATUS, note('Xen', 0x1000001, crashInfo(72))])));
    expect(img.formatFacts.crashInfo).toMatchObject({ descSize: 72, xenPhysStart: null, frameListListMfn: 0x1234 });
    expect(img.frameOffset(0x101)).toBe(0x2000 + PAGE); // notes at 0x1000 (one page), the first PT_LOAD at 0x2000
    img.close();
  });

  it.each([
    ['crash-info of unknown length (88)', () => tiny(Buffer.concat([PRSTATUS, note('Xen', 0x1000001, crashInfo(88))])), /: offset 4456: XEN_ELFNOTE_CRASH_INFO descsz 88, expected 80 .* or 72/],
    ['crash-info without the root (64, xen_crash_info_com_t)', () => tiny(Buffer.concat([PRSTATUS, note('Xen', 0x1000001, crashInfo(64))])), /descsz 64 \(xen_crash_info_com_t: no dom0_pfn_to_mfn_frame_list_list/],
    ['two crash-info notes', () => tiny(Buffer.concat([XEN_NOTES, note('Xen', 0x1000001, crashInfo(80))])), /a second XEN_ELFNOTE_CRASH_INFO note \(the first is at offset 4500\)/],
    ['CRASH_REGS not crash_xen_core_t', () => tiny(Buffer.concat([note('Xen', 0x1000002, Buffer.alloc(24)), note('Xen', 0x1000001, crashInfo(80))])), /XEN_ELFNOTE_CRASH_REGS descsz 24, expected 32/],
    ['truncated notes (PT_NOTE p_filesz cut)', () => tiny(XEN_NOTES, (b) => (b.writeBigUInt64LE(BigInt(XEN_NOTES.length - 8), PHDR(0) + 32), b)), /: offset 4596: PT_NOTE segment 0 note of type 0x0: descsz 14 runs past the segment end \(536 bytes\)/],
    ['PT_LOADs overlapping in machine memory', () => tiny(XEN_NOTES, (b) => (b.writeBigUInt64LE(0x102000n, PHDR(2) + 24), b)), /: offset 200: segment 2 \(PT_LOAD\) holds machine 0x102000-0x103fff, which overlaps segment 1 \(0x100000-0x103fff\); expected disjoint/],
    ['a PT_LOAD past the end of the file', () => tiny(XEN_NOTES, (b) => b.subarray(0, b.length - PAGE)), /: offset 208: segment 2: p_offset 24576 \+ p_filesz 8192 runs past the end of the file \(28672 bytes\)/],
    ['no PT_LOAD', () => tiny(XEN_NOTES, (b) => (b.writeUInt16LE(1, 56), b)), /: offset 56: no PT_LOAD segment \(1 program headers\)/],
    ['p_paddr beyond 52 bits', () => tiny(XEN_NOTES, (b) => (b.writeBigUInt64LE(1n << 52n, PHDR(2) + 24), b)), /segment 2 \(PT_LOAD\): p_paddr 0x10000000000000 .* beyond 52-bit machine addresses/],
    ['a native Linux vmcore', () => tiny(Buffer.concat([PRSTATUS, note('VMCOREINFO', 0, Buffer.from('OSRELEASE=6.1\n'))])), /: offset 4096: a native Linux vmcore \(no Xen crash note\).*notes: CORE\/0x1, VMCOREINFO\/0x0/],
    ['Xen notes without CRASH_INFO', () => tiny(Buffer.concat([PRSTATUS, REGS])), /Xen crash notes without XEN_ELFNOTE_CRASH_INFO/],
    ['an early NT_XEN_KDUMP_CR3 dump', () => tiny(note('Xen', 0x10000001, Buffer.alloc(8))), /obsolete NT_XEN_KDUMP_CR3/],
  ])('%s: one InputError line naming file, offset and expectation', (_name, make, want) => {
    const p = make();
    expect(inputErrorAt(p, () => openVmcore(p).close())).toMatch(want);
  });

  it.each([
    ['a native Linux vmcore', () => tiny(Buffer.concat([PRSTATUS, note('VMCOREINFO', 0, Buffer.from('OSRELEASE=6.1\n'))])), /^a native Linux vmcore \(no Xen crash note\)/],
    ['an ELF executable', () => tiny(XEN_NOTES, (b) => (b.writeUInt16LE(2, 16), b)), /^an ELF executable \(ET_EXEC\), not a dump$/],
    ['a shared object', () => tiny(XEN_NOTES, (b) => (b.writeUInt16LE(3, 16), b)), /^an ELF shared object or position-independent executable \(ET_DYN\), not a dump$/],
  ])('detection refuses %s, and openImage says what it is', (_name, make, want) => {
    const p = make();
    const d = detectFormat(readHead(p), p);
    expect(d.format).toBeNull();
    expect(d.description).toMatch(want);
    expect(() => openImage(p)).toThrow(InputError);
    expect(() => openImage(p)).toThrow(`not a supported image (${d.description})`);
  });

  it('a vmcore whose notes cannot be parsed is still sent to the vmcore reader, which reports where', () => {
    const p = tiny(Buffer.concat([PRSTATUS, note('Xen', 0x1000001, crashInfo(88))]));
    expect(detectFormat(readHead(p), p).format).toBe('vmcore');
    expect(() => openImage(p)).toThrow(/XEN_ELFNOTE_CRASH_INFO descsz 88/);
  });
});
