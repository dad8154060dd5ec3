// xl dump-core (xc_core ELF) reader and writer. Expected layouts are derived by hand from
// xen-toolstack.md §4.1–4.5 (offsets below) and checked with binutils' readelf; the emulated round trip
// must audit exactly as the in-memory guest does. The audit pool runs the compiled worker
// (dist/workers/audit-worker.js): `npm test` builds first; by hand, run `npx tsc -p tsconfig.json` first.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditImage, type AuditOutcome } from '../src/audit/audit-image.js';
import { InputError } from '../src/common/errors.js';
import { writeArchSharedInfo } from '../src/xen/shared-info.js';
import { type E820Entry } from '../src/inputs/e820.js';
import { MemoryImage } from '../src/formats/memory-image.js';
import { detectFormat, openImage, readHead } from '../src/formats/open-image.js';
import { writeXcCore } from '../src/emulate/dump-core-writer.js';
import { openXcCore, type XcCoreImage } from '../src/formats/dump-core.js';
import { emulate } from '../src/emulate/kernel/boot.js';
import { findProfile } from '../src/emulate/kernel/profiles.js';
import { renderMfndump } from '../src/report/mfndump.js';
import { PAGE_SIZE } from '../src/xen/abi.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xc-core-test-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const tmpPath = (name: string): string => path.join(dir, `${seq++}-${name}`);

// ---- readelf (binutils): required, never skipped ---------------------------------------------------
function readelf(...args: string[]): string {
  const r = spawnSync('readelf', args, { encoding: 'utf8' });
  if (r.error) throw new Error(`readelf (GNU binutils) is required by this test and could not be run: ${r.error.message}`);
  expect(r.stderr, `readelf ${args.join(' ')} printed warnings`).toBe('');
  expect(r.status).toBe(0);
  return r.stdout;
}

interface ElfSection {
  nr: number;
  name: string;
  type: string;
  offset: number;
  size: number;
  entsize: number;
  align: number;
}

/** `readelf -S -W` rows. */
function readelfSections(file: string): ElfSection[] {
  const rows: ElfSection[] = [];
  const re = /^\s*\[\s*(\d+)\]\s+(\.\S+)?\s*(NULL|STRTAB|NOTE|PROGBITS)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/;
  for (const line of readelf('-S', '-W', file).split('\n')) {
    const m = re.exec(line);
    if (!m) continue;
    rows.push({ nr: +m[1]!, name: m[2] ?? '', type: m[3]!, offset: parseInt(m[5]!, 16), size: parseInt(m[6]!, 16), entsize: parseInt(m[7]!, 16), align: +m[10]! });
  }
  return rows;
}

/** The bytes of a section from `readelf -x NAME` (its hex dump). */
function readelfHex(file: string, name: string): Buffer {
  const bytes: number[] = [];
  for (const line of readelf('-x', name, file).split('\n')) {
    const m = /^\s+0x[0-9a-f]+ ((?:[0-9a-f]{2,8} ){1,4})/.exec(line + ' ');
    if (!m) continue;
    for (const word of m[1]!.trim().split(' ')) for (let i = 0; i < word.length; i += 2) bytes.push(parseInt(word.slice(i, i + 2), 16));
  }
  return Buffer.from(bytes);
}

/** Notes parsed by hand (Elf64_Nhdr: namesz, descsz, type; name and desc padded to 4). */
function parseNotes(b: Buffer): { name: string; type: number; desc: Buffer }[] {
  const out: { name: string; type: number; desc: Buffer }[] = [];
  let o = 0;
  while (o < b.length) {
    const namesz = b.readUInt32LE(o);
    const descsz = b.readUInt32LE(o + 4);
    const type = b.readUInt32LE(o + 8);
    const name = b.subarray(o + 12, o + 12 + namesz).toString('latin1');
    const d = o + 12 + Math.ceil(namesz / 4) * 4;
    out.push({ name, type, desc: b.subarray(d, d + descsz) });
    o = d + Math.ceil(descsz / 4) * 4;
  }
  return out;
}

// ---- a tiny hand-built guest: 64-bit PV, tree p2m (arch.p2m_cr3 = 0), arch.max_pfn 6 -------------
//   FLL frame 0x10 → FL frame 0x11 → leaf frame 0x12:
//   pfn 0 → 0x20, 1 → 0x21, 2 → IDENTITY_FRAME(2), 3 → 0x23 (no content: zeros), 4 → 0x200 (above
//   max_mfn 0x100), 5 → 0x25, 6.. INVALID.
// dump-core keeps pfns 0, 1, 3, 5 (skips identity and > max_mfn), pfn-ascending.
const TINY_PAIRS: [number, number][] = [
  [0, 0x20],
  [1, 0x21],
  [3, 0x23],
  [5, 0x25],
];
const TINY_CR3 = 0x30n << 12n;
function pattern(frame: number): Buffer {
  const b = Buffer.alloc(PAGE_SIZE);
  for (let i = 0; i < PAGE_SIZE; i++) b[i] = (frame * 13 + i) & 0xff;
  return b;
}
function tinyGuest(): MemoryImage {
  const img = new MemoryImage('mfn');
  img.maxFrame = 0x100;
  img.cr3 = TINY_CR3;
  img.newFrame(0x10).writeBigUInt64LE(0x11n, 0);
  img.newFrame(0x11).writeBigUInt64LE(0x12n, 0);
  const leaf = img.newFrame(0x12);
  leaf.fill(0xff);
  const entries = [0x20n, 0x21n, 0x4000000000000002n, 0x23n, 0x200n, 0x25n];
  entries.forEach((v, i) => leaf.writeBigUInt64LE(v, i * 8));
  for (const f of [0x20, 0x21, 0x25]) img.setFrame(f, pattern(f));
  const si = Buffer.alloc(PAGE_SIZE);
  writeArchSharedInfo(si, { maxPfn: 6n, pfnToMfnFrameListList: 0x10n, nmiReason: 0n, p2mCr3: 0n, p2mVaddr: 0n, p2mGeneration: 0n });
  img.sharedInfo = si;
  return img;
}

// By hand (§4.2, N = 4 pages, one vCPU, shared_info present):
//   .note.Xen 512 (1384) · .xen_prstatus 1896 (5168) · .xen_shared_info 7064 (4096) · pad to 12288 ·
//   .xen_pages 12288 (4 × 4096 = 16384) · .xen_p2m 28672 (4 × 16 = 64) · .shstrtab 28736 (72) → 28808 bytes.
const TINY_LAYOUT = { note: 512, prstatus: 1896, sharedInfo: 7064, pages: 12288, p2m: 28672, strtab: 28736, size: 28808 };
/** Byte offsets in the tiny dump used to patch it (section header i at 64 + 64·i; notes at 512). */
const SHDR = (i: number): number => 64 + 64 * i;
const OFF = {
  eMachine: 18,
  eiClass: 4,
  eShstrndx: 62,
  pagesShOffset: SHDR(5) + 24,
  p2mShSize: SHDR(6) + 32,
  xchMagic: 512 + 16 + 16, // note 0 is 16 bytes; note 1's descriptor starts 16 bytes in
  xchNrPages: 512 + 16 + 16 + 16,
  xchPageSize: 512 + 16 + 16 + 24,
  formatVersion: 1872 + 16,
  noteXenName: TINY_LAYOUT.strtab + 11, // ".note.Xen" in .shstrtab
};

let tinyFile = '';
beforeAll(() => {
  tinyFile = tmpPath('tiny.core');
  writeXcCore(tinyGuest(), tinyFile);
});

describe('writer: the tiny hand-built guest', () => {
  it('writes what dump-core writes: 4 pages, pairs pfn-ascending, layout of §4.2', () => {
    expect(fs.statSync(tinyFile).size).toBe(TINY_LAYOUT.size);
    const img = openXcCore(tinyFile);
    try {
      const { pfns, gmfns } = img.p2mPairs();
      expect([...pfns].map((p, i) => [p, gmfns[i]])).toEqual(TINY_PAIRS);
      expect(img.frameCount()).toBe(4);
      expect(img.maxFrame).toBe(0x25);
      expect(img.cr3).toBe(TINY_CR3);
      expect(img.arch.maxPfn).toBe(6n);
      expect(img.arch.pfnToMfnFrameListList).toBe(0x10n);
      expect(img.frameOffset(0x20)).toBe(TINY_LAYOUT.pages);
      expect(img.frameOffset(0x25)).toBe(TINY_LAYOUT.pages + 3 * PAGE_SIZE);
      expect(img.frameOffset(0x10)).toBe(-1); // the FLL page is not mapped by any pfn
      expect(img.readFrame(0x21)!.equals(pattern(0x21))).toBe(true);
      expect(img.readFrame(0x23)!.equals(Buffer.alloc(PAGE_SIZE))).toBe(true); // no emulator content: zeros
      expect(img.readFrame(0x200)).toBeNull();
    } finally {
      img.close();
    }
  });

  it('readelf -h -S: ET_CORE, EM_X86_64, ABI version 1, no program headers, 7 sections at the §4.2 offsets', () => {
    const h = readelf('-h', tinyFile);
    expect(h).toMatch(/Class:\s+ELF64/);
    expect(h).toMatch(/Type:\s+CORE \(Core file\)/);
    expect(h).toMatch(/Machine:\s+Advanced Micro Devices X86-64/);
    expect(h).toMatch(/ABI Version:\s+1/);
    expect(h).toMatch(/Number of program headers:\s+0/);
    expect(h).toMatch(/Number of section headers:\s+7/);
    expect(h).toMatch(/Section header string table index:\s+1/);
    expect(readelfSections(tinyFile)).toEqual([
      { nr: 0, name: '', type: 'NULL', offset: 0, size: 0, entsize: 0, align: 0 },
      { nr: 1, name: '.shstrtab', type: 'STRTAB', offset: TINY_LAYOUT.strtab, size: 72, entsize: 0, align: 0 },
      { nr: 2, name: '.note.Xen', type: 'NOTE', offset: TINY_LAYOUT.note, size: 1384, entsize: 0, align: 0 },
      { nr: 3, name: '.xen_prstatus', type: 'PROGBITS', offset: TINY_LAYOUT.prstatus, size: 5168, entsize: 5168, align: 8 },
      { nr: 4, name: '.xen_shared_info', type: 'PROGBITS', offset: TINY_LAYOUT.sharedInfo, size: 4096, entsize: 4096, align: 8 },
      { nr: 5, name: '.xen_pages', type: 'PROGBITS', offset: TINY_LAYOUT.pages, size: 4 * 4096, entsize: 4096, align: 4096 },
      { nr: 6, name: '.xen_p2m', type: 'PROGBITS', offset: TINY_LAYOUT.p2m, size: 4 * 16, entsize: 16, align: 8 },
    ]);
  });

  it('readelf -x: four "Xen" notes (NONE, HEADER, XEN_VERSION, FORMAT_VERSION) and ctrlreg[3] = cr3', () => {
    // readelf -n shows notes of an ET_CORE file only through PT_NOTE program headers, which dump-core
    // never writes (the real dump prints "No notes found" too, see real-core.test.ts): read the hex dump.
    const notes = parseNotes(readelfHex(tinyFile, '.note.Xen'));
    expect(notes.map((n) => [n.name, n.type.toString(16), n.desc.length])).toEqual([
      ['Xen\0', '2000000', 0],
      ['Xen\0', '2000001', 32],
      ['Xen\0', '2000002', 1280],
      ['Xen\0', '2000003', 8],
    ]);
    const header = notes[1]!.desc;
    expect([header.readBigUInt64LE(0), header.readBigUInt64LE(8), header.readBigUInt64LE(16), header.readBigUInt64LE(24)]).toEqual([0xf00febedn, 1n, 4n, 4096n]);
    expect(notes[3]!.desc.readBigUInt64LE(0)).toBe(1n); // format (0, 1)
    const version = notes[2]!.desc;
    expect([version.readBigUInt64LE(0), version.readBigUInt64LE(8), version.readBigUInt64LE(1272)]).toEqual([4n, 17n, 4096n]);
    const prstatus = readelfHex(tinyFile, '.xen_prstatus');
    expect(prstatus.length).toBe(5168);
    expect(prstatus.readBigUInt64LE(5008)).toBe(TINY_CR3);
    expect(readelfHex(tinyFile, '.shstrtab').toString('latin1')).toBe('\0.shstrtab\0.note.Xen\0.xen_prstatus\0.xen_shared_info\0.xen_pages\0.xen_p2m\0');
  });

  it('tot_pages above the pages found pads with zero pages and {~0, ~0}; below drops the last ones', () => {
    const padded = tmpPath('padded.core');
    writeXcCore(tinyGuest(), padded, { totPages: 6 });
    const raw = fs.readFileSync(padded);
    const p2mAt = 12288 + 6 * 4096;
    expect(raw.subarray(p2mAt + 4 * 16, p2mAt + 6 * 16).equals(Buffer.alloc(32, 0xff))).toBe(true);
    const img = openXcCore(padded);
    expect(img.frameCount()).toBe(4);
    expect([...img.p2mPairs().pfns]).toEqual([0, 1, 3, 5]);
    img.close();
    const dropped = tmpPath('dropped.core');
    writeXcCore(tinyGuest(), dropped, { totPages: 2 });
    const d = openXcCore(dropped);
    expect([...d.p2mPairs().gmfns]).toEqual([0x20, 0x21]);
    d.close();
  });

  it('tot_pages above arch.max_pfn: dump-core refuses ("p2m_size < nr_pages"), so does the writer', () => {
    const p = tmpPath('too-many.core');
    expect(() => writeXcCore(tinyGuest(), p, { totPages: 7 })).toThrow(/^xl dump-core would fail for this guest: p2m_size 0x6 .* is below tot_pages 0x7/);
    expect(fs.existsSync(p)).toBe(false);
  });

  it('refuses to overwrite unless asked', () => {
    expect(() => writeXcCore(tinyGuest(), tinyFile)).toThrow(InputError);
    expect(() => writeXcCore(tinyGuest(), tinyFile, { overwrite: true })).not.toThrow();
  });

  it('p2m printing of the three views of the tiny dump', () => {
    const img = openXcCore(tinyFile);
    const lines: string[] = [];
    renderMfndump(img, 'dump', (l) => lines.push(l), { domid: 7 });
    img.close();
    expect(lines).toEqual([
      ' --- Dumping P2M for domain 7 ---',
      ' Guest Width: 8, PT Levels: 4 P2M size: = 6',
      '  pfn=0x0 ==> mfn=0x20',
      '  pfn=0x1 ==> mfn=0x21',
      '  pfn=0x2 ==> mfn=0xffffffffffffffff',
      '  pfn=0x3 ==> mfn=0x23',
      '  pfn=0x4 ==> mfn=0xffffffffffffffff',
      '  pfn=0x5 ==> mfn=0x25',
      ' --- End of P2M for domain 7 ---',
    ]);
    const t: string[] = [];
    renderMfndump(tinyGuest(), 'toolstack', (l) => t.push(l), { pfnType: (pfn) => (pfn === 1 ? 0xc : 0) });
    expect(t.slice(1, 8)).toEqual([
      ' Guest Width: 8, PT Levels: 4 P2M size: = 6',
      '  pfn=0x0 ==> mfn=0x20 (type 0x0)',
      '  pfn=0x1 ==> mfn=0x21 (type 0xc) pinned L4',
      '  pfn=0x2 ==> mfn=0x4000000000000002 (type 0x0)',
      '  pfn=0x3 ==> mfn=0x23 (type 0x0)',
      '  pfn=0x4 ==> mfn=0x200 (type 0x0)',
      '  pfn=0x5 ==> mfn=0x25 (type 0x0)',
    ]);
    expect(t[0]).toBe(' --- Dumping P2M for domain ? ---');
  });
});

// ---- bad input: one-line InputError naming the file, a byte offset and what was expected ---------
describe('reader: bad input', () => {
  const patched = (name: string, patch: (b: Buffer) => Buffer): string => {
    const p = tmpPath(name);
    fs.writeFileSync(p, patch(Buffer.from(fs.readFileSync(tinyFile))));
    return p;
  };
  const cases: [string, (b: Buffer) => Buffer, RegExp][] = [
    ['wrong magic', (b) => (b.write('\x7fELG', 0, 'latin1'), b), /: offset 0: expected the ELF magic 7f 45 4c 46, found 7f 45 4c 47/],
    ['empty file', () => Buffer.alloc(0), /: offset 0: expected the ELF magic .*found an empty file/],
    ['truncated header', (b) => b.subarray(0, 40), /: offset 0: truncated: file is 40 bytes, shorter than the 64-byte ELF64 header/],
    ['truncated inside .shstrtab', (b) => b.subarray(0, 28740), /: offset 160: section 1: sh_offset 28736 \+ sh_size 72 runs past the end of the file \(28740 bytes\), expected the section inside the file/],
    ['truncated before .shstrtab', (b) => b.subarray(0, 20000), /: offset 152: section 1: sh_offset 28736 is beyond the end of the file \(20000 bytes\)/],
    ['ELFCLASS32', (b) => ((b[OFF.eiClass] = 1), b), /: offset 4: ELF class 1 \(ELFCLASS32\), expected 2/],
    ['EM_386', (b) => (b.writeUInt16LE(3, OFF.eMachine), b), /: offset 18: e_machine 3 \(EM_386\): 32-bit PV guest dumps are not supported, expected 62/],
    ['section out of file', (b) => (b.writeBigUInt64LE(0x7fffffffn, OFF.pagesShOffset), b), /: offset 408: section 5: sh_offset 2147483647 is beyond the end of the file \(28808 bytes\), expected the section inside the file/],
    ['e_shstrndx out of range', (b) => (b.writeUInt16LE(9, OFF.eShstrndx), b), /: offset 62: e_shstrndx 9, expected an index below e_shnum 7/],
    ['.xen_p2m count ≠ .xen_pages', (b) => (b.writeBigUInt64LE(48n, OFF.p2mShSize), b), /: offset 480: \.xen_p2m holds 3 \{pfn, gmfn\} entries but \.xen_pages holds 4 pages, expected the same count/],
    ['HVM magic', (b) => (b.writeUInt32LE(0xf00febee, OFF.xchMagic), b), /: offset 544: xch_magic 0xf00febee: an HVM guest dump .*expected 0xf00febed/],
    ['other magic', (b) => (b.writeUInt32LE(0x12345678, OFF.xchMagic), b), /: offset 544: xch_magic 0x12345678, expected 0xf00febed/],
    ['page size', (b) => (b.writeUInt32LE(8192, OFF.xchPageSize), b), /: offset 568: xch_page_size 0x2000, expected 4096/],
    ['xch_nr_pages vs .xen_pages', (b) => (b.writeUInt32LE(0x80000000, OFF.xchNrPages), b), /: offset 416: \.xen_pages holds 4 pages, expected xch_nr_pages 2147483648/],
    ['format major 1', (b) => (b.writeUInt32LE(1, OFF.formatVersion + 4), b), /: offset 1888: dump-core format version \(1, 1\), expected major 0/],
    ['no .note.Xen', (b) => (b.write('.note.Xyz', OFF.noteXenName, 'latin1'), b), /: offset 64: no \.note\.Xen section .*not an xl dump-core file/],
    ['duplicate gmfn', (b) => (b.writeUInt32LE(0x20, 28672 + 16 + 8), b), /: offset 28696: \.xen_p2m entries 0 and 1 both name gmfn 0x20, expected each machine frame once/],
  ];
  it.each(cases)('%s', (name, patch, want) => {
    const p = patched(name.replace(/\W+/g, '-'), patch);
    let err: unknown;
    try {
      openXcCore(p).close();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    expect(msg.startsWith(`${p}: offset `)).toBe(true);
    expect(msg).toMatch(want);
  });

  // magic numbers: RFC 1952 (gzip), the xz and zstd format specifications, bzip2's "BZh"
  it.each([
    ['gzip', [0x1f, 0x8b, 0x08, 0x00], 'zcat'],
    ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04], 'xzcat'],
    ['zstd', [0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x00], 'zstdcat'],
    ['bzip2', [0x42, 0x5a, 0x68, 0x39, 0x31, 0x41], 'bzcat'],
  ])('a %s-compressed file is not an image, and the reason says how to decompress it', (name, bytes, tool) => {
    const d = detectFormat(Buffer.from(bytes as number[]));
    expect(d.format).toBeNull();
    expect(d.description).toBe(`${name}-compressed data: decompress it first (${tool} FILE > FILE.raw)`);
  });

  it('content detection sends any ELF to the dump-core reader; p2ms detection is unchanged', () => {
    expect(detectFormat(readHead(tinyFile)).format).toBe('xc-core');
    const img = openImage(tinyFile);
    expect(img.format).toBe('xc-core');
    img.close();
  });
});

// ---- emulated guests: write, read back, audit equals the in-memory audit -------------------------
const MiB = 1024 * 1024;
/** A small host: RAM below 640 KiB, the ISA hole, RAM to 512 MiB. */
const HOST: E820Entry[] = [
  { addr: 0, size: 0x9f000, type: 1 },
  { addr: 0x9f000, size: 0x61000, type: 2 },
  { addr: 0x100000, size: 512 * MiB - 0x100000, type: 1 },
];

function fatal(o: AuditOutcome): unknown {
  return { verdict: o.report.verdict, exitCode: o.report.exitCode, fatal: o.report.fatal.map((f) => [f.start, f.end, f.cls]) };
}

describe.each([
  ['linux-4.x', 'domU', 0x4000, 'CLEAN'],
  ['linux-3.8.13-backport', 'dom0', 0x8000, 'FATAL'],
] as const)('round trip: %s %s, nr_pages %i', (profileId, role, nrPages, verdict) => {
  let mem: MemoryImage;
  let file: string;
  let img: XcCoreImage;
  beforeAll(() => {
    mem = emulate({ profile: findProfile(profileId)!, hostE820: HOST, nrPages, maxPages: nrPages, role }).image;
    file = tmpPath(`${profileId}.core`);
    const r = writeXcCore(mem, file);
    // the domain owns nr_pages pages: dump-core's N is tot_pages
    expect(r.pages).toBe(nrPages);
    img = openXcCore(file, { symbols: mem.symbols });
  });
  afterAll(() => img?.close());

  it('every frame the dump holds reads back as the emulator holds it (zeros where it holds none)', () => {
    const zero = Buffer.alloc(PAGE_SIZE);
    const { gmfns } = img.p2mPairs();
    expect(gmfns.length).toBe(img.frameCount());
    let compared = 0;
    for (const g of gmfns) {
      const want = mem.hasFrame(g) ? Buffer.from(mem.readFrame(g)!) : zero;
      expect(img.readFrame(g)!.equals(want), `gmfn ${g.toString(16)}`).toBe(true);
      if (mem.hasFrame(g)) compared++;
    }
    expect(compared).toBeGreaterThan(0);
    expect(img.cr3).toBe(mem.cr3);
    expect(img.sharedInfo!.equals(mem.sharedInfo!)).toBe(true);
  });

  it(`audit of the file (2 workers) equals the in-memory audit: ${verdict}`, async () => {
    const fromFile = await auditImage(img, { jobs: 2 });
    const inMemory = await auditImage(mem, { jobs: 0 });
    expect(fromFile.report.verdict).toBe(verdict);
    expect(fatal(fromFile)).toEqual(fatal(inMemory));
    expect(fromFile.audit.ranges).toEqual(inMemory.audit.ranges);
  });

  it('the toolstack view prints the same text from the dump and from memory', () => {
    const a: string[] = [];
    const b: string[] = [];
    renderMfndump(img, 'toolstack', (l) => a.push(l));
    renderMfndump(mem, 'toolstack', (l) => b.push(l));
    expect(a).toEqual(b);
    expect(a.length).toBeGreaterThan(nrPages / 2);
  });
});
