// src/formats/elf.ts: ELF64 header, section headers, program headers and notes. The files are built byte by
// byte here from the System V gABI layout (Elf64_Ehdr 64 bytes, Elf64_Phdr 56, Elf64_Shdr 64, Elf64_Nhdr 12,
// names and descriptors padded to 4), independently of src/xen/elf-format.ts; where binutils' readelf is
// installed it must read the same file the same way.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/common/errors.js';
import { ElfFile, readElfHeader, readNotes, readProgramHeaders, readSectionHeaders, type ElfWant } from '../src/formats/elf.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'elf-test-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let seq = 0;

// ---- the tiny file ------------------------------------------------------------------------------------
//   0   Elf64_Ehdr (64)
//   64  2 × Elf64_Phdr (56): PT_NOTE over the notes, PT_LOAD over the data     → 176
//   176 notes: "Xen\0" (namesz 4) type 0x2000001, descsz 8            12 + 4 + 8  = 24 → 200
//              "VMCOREINFO\0" (namesz 11, padded 12) type 0, descsz 5 12 + 12 + 8 = 32 → 232
//   232 data (24 bytes), loaded at vaddr 0xffffffff81000000 / paddr 0x1000000, memsz 4096 → 256
//   256 .shstrtab "\0.shstrtab\0.note\0.data\0" (23 bytes), padded to 280
//   280 4 × Elf64_Shdr (64): NULL, .shstrtab, .note, .data                      → 536 bytes
const L = { phoff: 64, notes: 176, notesSize: 56, note1: 200, data: 232, dataSize: 24, strtab: 256, strtabSize: 23, shoff: 280, size: 536 };
const PHDR = (i: number): number => L.phoff + 56 * i;
const SHDR = (i: number): number => L.shoff + 64 * i;
const VADDR = 0xffffffff81000000n;
const PADDR = 0x1000000n;
const STRTAB = '\0.shstrtab\0.note\0.data\0';
const NAME = { shstrtab: 1, note: 11, data: 17 };

function tiny(): Buffer {
  const b = Buffer.alloc(L.size);
  // e_ident: magic, ELFCLASS64 (2), ELFDATA2LSB (1), EV_CURRENT (1)
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  b.writeUInt16LE(4, 16); // e_type ET_CORE
  b.writeUInt16LE(62, 18); // e_machine EM_X86_64
  b.writeUInt32LE(1, 20); // e_version
  b.writeBigUInt64LE(BigInt(L.phoff), 32); // e_phoff
  b.writeBigUInt64LE(BigInt(L.shoff), 40); // e_shoff
  b.writeUInt16LE(64, 52); // e_ehsize
  b.writeUInt16LE(56, 54); // e_phentsize
  b.writeUInt16LE(2, 56); // e_phnum
  b.writeUInt16LE(64, 58); // e_shentsize
  b.writeUInt16LE(4, 60); // e_shnum
  b.writeUInt16LE(1, 62); // e_shstrndx
  const phdr = (i: number, type: number, flags: number, offset: number, vaddr: bigint, paddr: bigint, filesz: number, memsz: number, align: number): void => {
    const at = PHDR(i);
    b.writeUInt32LE(type, at);
    b.writeUInt32LE(flags, at + 4);
    b.writeBigUInt64LE(BigInt(offset), at + 8);
    b.writeBigUInt64LE(vaddr, at + 16);
    b.writeBigUInt64LE(paddr, at + 24);
    b.writeBigUInt64LE(BigInt(filesz), at + 32);
    b.writeBigUInt64LE(BigInt(memsz), at + 40);
    b.writeBigUInt64LE(BigInt(align), at + 48);
  };
  phdr(0, 4, 0, L.notes, 0n, 0n, L.notesSize, 0, 0); // PT_NOTE
  phdr(1, 1, 7, L.data, VADDR, PADDR, L.dataSize, 4096, 8); // PT_LOAD, RWX
  const note = (at: number, name: string, type: number, desc: string): void => {
    b.writeUInt32LE(name.length + 1, at);
    b.writeUInt32LE(desc.length, at + 4);
    b.writeUInt32LE(type, at + 8);
    b.write(name, at + 12, 'latin1');
    b.write(desc, at + 12 + Math.ceil((name.length + 1) / 4) * 4, 'latin1');
  };
  note(L.notes, 'Xen', 0x2000001, 'xen-4.17');
  note(L.note1, 'VMCOREINFO', 0, 'OSREL');
  b.write('p2m-audit elf test data', L.data, 'latin1');
  b.write(STRTAB, L.strtab, 'latin1');
  const shdr = (i: number, name: number, type: number, offset: number, size: number): void => {
    const at = SHDR(i);
    b.writeUInt32LE(name, at);
    b.writeUInt32LE(type, at + 4);
    b.writeBigUInt64LE(BigInt(offset), at + 24);
    b.writeBigUInt64LE(BigInt(size), at + 32);
    b.writeBigUInt64LE(1n, at + 48); // sh_addralign
  };
  shdr(1, NAME.shstrtab, 3, L.strtab, L.strtabSize); // SHT_STRTAB
  shdr(2, NAME.note, 7, L.notes, L.notesSize); // SHT_NOTE
  shdr(3, NAME.data, 1, L.data, L.dataSize); // SHT_PROGBITS
  return b;
}

function save(b: Buffer, name = 'tiny'): string {
  const p = path.join(dir, `${seq++}-${name}.elf`);
  fs.writeFileSync(p, b);
  return p;
}

const WANT: ElfWant = { type: 4, machine: 62, refuse: new Map([[3, '32-bit is not read here, expected 62']]) };

/** Everything elf.ts reads of a file: header, sections, segments, the notes of every PT_NOTE segment. */
function readAll(file: string, maxSegments?: number) {
  const fd = fs.openSync(file, 'r');
  try {
    const f = new ElfFile(file, fd, fs.fstatSync(fd).size);
    const eh = readElfHeader(f, WANT);
    const sections = readSectionHeaders(f, eh);
    const segments = readProgramHeaders(f, eh, maxSegments);
    const notes = segments
      .filter((s) => s.type === 4)
      .flatMap((s) => [...readNotes(f, { offset: s.offset, size: s.filesz, sizeAt: s.headerAt + 32, what: `PT_NOTE segment ${s.index}`, kind: 'segment' })]);
    return { eh, sections, segments, notes };
  } finally {
    fs.closeSync(fd);
  }
}

describe('elf.ts reads the hand-built file', () => {
  const file = save(tiny());
  const got = readAll(file);

  it.each([
    ['e_type', got.eh.type, 4],
    ['e_machine', got.eh.machine, 62],
    ['e_version', got.eh.version, 1],
    ['e_phoff', got.eh.phoff, 64],
    ['e_shoff', got.eh.shoff, 280],
    ['e_phnum', got.eh.phnum, 2],
    ['e_shnum', got.eh.shnum, 4],
    ['e_shstrndx', got.eh.shstrndx, 1],
    ['sections', got.sections.map((s) => [s.index, s.name, s.type, s.offset, s.size, s.headerAt]), [
      [0, '', 0, 0, 0, 280],
      [1, '.shstrtab', 3, 256, 23, 344],
      [2, '.note', 7, 176, 56, 408],
      [3, '.data', 1, 232, 24, 472],
    ]],
    ['segments', got.segments.map((s) => [s.index, s.type, s.flags, s.offset, s.vaddr, s.paddr, s.filesz, s.memsz, s.headerAt]), [
      [0, 4, 0, 176, 0n, 0n, 56, 0, 64],
      [1, 1, 7, 232, VADDR, PADDR, 24, 4096, 120],
    ]],
    ['notes', got.notes.map((n) => [n.at, n.name, n.type, n.descAt, n.desc.toString('latin1')]), [
      [176, 'Xen', 0x2000001, 192, 'xen-4.17'],
      [200, 'VMCOREINFO', 0, 224, 'OSREL'],
    ]],
  ])('%s', (_what, value, want) => {
    expect(value).toEqual(want);
  });

  it('a note rule naming the owner accepts "Xen" and refuses "VMCOREINFO" by its namesz', () => {
    const fd = fs.openSync(file, 'r');
    try {
      const f = new ElfFile(file, fd, L.size);
      const one = { offset: L.notes, size: 24, sizeAt: PHDR(0) + 32, what: 'note 0' };
      expect([...readNotes(f, one, { name: 'Xen' })].map((n) => n.name)).toEqual(['Xen']);
      const both = { offset: L.notes, size: L.notesSize, sizeAt: PHDR(0) + 32, what: '.note' };
      expect(() => [...readNotes(f, both, { name: 'Xen' })]).toThrow(`${file}: offset 200: .note note of type 0x0: namesz 11, expected 4 ("Xen\\0")`);
    } finally {
      fs.closeSync(fd);
    }
  });

  // binutils readelf prints what it reads; compared where it is installed
  const readelf = spawnSync('readelf', ['--version'], { encoding: 'utf8' });
  it.skipIf(readelf.error !== undefined)('readelf -h -S -l -n -W reads the same header, sections, segments and notes', () => {
    const r = spawnSync('readelf', ['-h', '-S', '-l', '-n', '-W', file], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/Class:\s+ELF64/);
    expect(out).toMatch(/Data:\s+2's complement, little endian/);
    expect(out).toMatch(/Type:\s+CORE \(Core file\)/);
    expect(out).toMatch(/Machine:\s+Advanced Micro Devices X86-64/);
    expect(out).toMatch(/Start of program headers:\s+64 \(bytes into file\)/);
    expect(out).toMatch(/Start of section headers:\s+280 \(bytes into file\)/);
    expect(out).toMatch(/Number of program headers:\s+2\n/);
    expect(out).toMatch(/Number of section headers:\s+4\n/);
    expect(out).toMatch(/Section header string table index:\s+1\n/);
    // [Nr] Name Type Address Off Size ...
    const sections = [...out.matchAll(/^\s*\[\s*(\d+)\]\s+(\.\S+)?\s*(NULL|STRTAB|NOTE|PROGBITS)\s+[0-9a-f]+\s+([0-9a-f]+)\s+([0-9a-f]+)/gm)].map((m) => [+m[1]!, m[2] ?? '', parseInt(m[4]!, 16), parseInt(m[5]!, 16)]);
    expect(sections).toEqual(got.sections.map((s) => [s.index, s.name, s.offset, s.size]));
    // Type Offset VirtAddr PhysAddr FileSiz MemSiz Flg Align
    const segments = [...out.matchAll(/^\s+(NOTE|LOAD)\s+0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+)/gm)].map((m) => [
      m[1] === 'NOTE' ? 4 : 1,
      parseInt(m[2]!, 16),
      BigInt('0x' + m[3]!),
      BigInt('0x' + m[4]!),
      parseInt(m[5]!, 16),
      parseInt(m[6]!, 16),
    ]);
    expect(segments).toEqual(got.segments.map((s) => [s.type, s.offset, s.vaddr, s.paddr, s.filesz, s.memsz]));
    // Owner Data size Description
    const notes = [...out.matchAll(/^\s+(Xen|VMCOREINFO)\s+0x([0-9a-f]+)\s/gm)].map((m) => [m[1], parseInt(m[2]!, 16)]);
    expect(notes).toEqual(got.notes.map((n) => [n.name, n.desc.length]));
    expect(out).toMatch(new RegExp(`Displaying notes found at file offset 0x0*${L.notes.toString(16)} with length 0x0*${L.notesSize.toString(16)}:`));
  });
});

// ---- bad input: one InputError line naming the file, the byte offset and what was expected -------------
describe('elf.ts refuses', () => {
  const u16 = (at: number, v: number) => (b: Buffer) => (b.writeUInt16LE(v, at), b);
  const u32 = (at: number, v: number) => (b: Buffer) => (b.writeUInt32LE(v, at), b);
  const u64 = (at: number, v: bigint) => (b: Buffer) => (b.writeBigUInt64LE(v, at), b);
  /** e_phnum PN_XNUM (0xffff) with section header 0's sh_info (at +44) holding the real count. */
  const xnum = (count: number) => (b: Buffer) => (b.writeUInt16LE(0xffff, 56), b.writeUInt32LE(count, SHDR(0) + 44), b);
  const cases: [string, (b: Buffer) => Buffer, RegExp, number?][] = [
    ['an empty file', () => Buffer.alloc(0), /: offset 0: expected the ELF magic 7f 45 4c 46, found an empty file$/],
    ['another magic', (b) => (b[3] = 0x47, b), /: offset 0: expected the ELF magic 7f 45 4c 46, found 7f 45 4c 47 02 01 01 00$/],
    ['a truncated header', (b) => b.subarray(0, 63), /: offset 0: truncated: file is 63 bytes, shorter than the 64-byte ELF64 header$/],
    ['ELFCLASS32', (b) => (b[4] = 1, b), /: offset 4: ELF class 1 \(ELFCLASS32\), expected 2 \(ELFCLASS64\)$/],
    ['big-endian data', (b) => (b[5] = 2, b), /: offset 5: ELF data encoding 2, expected 1 \(little-endian\)$/],
    ['EI_VERSION 0', (b) => (b[6] = 0, b), /: offset 6: ELF ident version 0, expected 1$/],
    ['ET_EXEC', u16(16, 2), /: offset 16: e_type 2, expected 4 \(ET_CORE\)$/],
    ['a refused machine', u16(18, 3), /: offset 18: e_machine 3 \(EM_386\): 32-bit is not read here, expected 62$/],
    ['EM_AARCH64', u16(18, 183), /: offset 18: e_machine 183, expected 62 \(EM_X86_64\)$/],
    ['e_shoff beyond 2^53', u64(40, 1n << 60n), /: offset 40: e_shoff 0x1000000000000000 is beyond the file \(536 bytes\)$/],
    ['e_shentsize 40', u16(58, 40), /: offset 58: e_shentsize 40, expected 64$/],
    ['e_shstrndx past the table', u16(62, 4), /: offset 62: e_shstrndx 4, expected an index below e_shnum 4$/],
    ['a section table past the end', u16(60, 200), /: offset 40: section header table \(e_shoff 280 \+ 200 × 64 bytes\) runs past the end of the file \(536 bytes\)$/],
    ['a truncated section table', (b) => b.subarray(0, L.size - 1), /: offset 40: section header table \(e_shoff 280 \+ 4 × 64 bytes\) runs past the end of the file \(535 bytes\)$/],
    ['a section past the end', u64(SHDR(3) + 32, 1000n), /: offset 504: section 3: sh_offset 232 \+ sh_size 1000 runs past the end of the file \(536 bytes\), expected the section inside the file$/],
    ['a section beyond the file', u64(SHDR(3) + 24, 1n << 62n), /: offset 496: section 3: sh_offset 0x4000000000000000 is beyond the end of the file \(536 bytes\), expected the section inside the file$/],
    ['.shstrtab of another type', u32(SHDR(1) + 4, 1), /: offset 348: section 1 \(e_shstrndx\) has type 1, expected 3 \(SHT_STRTAB\)$/],
    ['a name outside .shstrtab', u32(SHDR(3), 23), /: offset 472: section 3: sh_name 23 is outside \.shstrtab \(23 bytes\)$/],
    ['e_phoff beyond 2^53', u64(32, 1n << 63n), /: offset 32: e_phoff 0x8000000000000000 is beyond the file \(536 bytes\)$/],
    ['e_phentsize 32', u16(54, 32), /: offset 54: e_phentsize 32, expected 56$/],
    ['a program header table past the end', u16(56, 1000), /: offset 32: program header table \(e_phoff 64 \+ 1000 × 56 bytes\) runs past the end of the file \(536 bytes\)$/],
    ['more program headers than the cap', (b) => b, /: offset 56: 2 program headers, expected at most 1$/, 1],
    ['PN_XNUM: a count above the cap', xnum(0xffffffff), /: offset 324: 4294967295 program headers, expected at most 1048576$/],
    ['PN_XNUM: a count past the end', xnum(70000), /: offset 32: program header table \(e_phoff 64 \+ 70000 × 56 bytes\) runs past the end of the file \(536 bytes\)$/],
    ['PN_XNUM without a section table', (b) => (b.writeUInt16LE(0xffff, 56), b.writeBigUInt64LE(0n, 40), b.writeUInt16LE(0, 60), b), /: offset 56: e_phnum 0xffff \(PN_XNUM\): the count is in section header 0, expected e_shoff \(0\) to point at one inside the file \(536 bytes\)$/],
    ['a segment past the end', u64(PHDR(1) + 32, 400n), /: offset 152: segment 1: p_offset 232 \+ p_filesz 400 runs past the end of the file \(536 bytes\), expected the segment inside the file$/],
    ['a segment beyond the file', u64(PHDR(1) + 8, 4096n), /: offset 128: segment 1: p_offset 4096 is beyond the end of the file \(536 bytes\), expected the segment inside the file$/],
    ['PT_LOAD p_memsz below p_filesz', u64(PHDR(1) + 40, 8n), /: offset 160: segment 1 \(PT_LOAD\): p_memsz 8 is below p_filesz 24, expected at least p_filesz$/],
    ['a note region cut inside a header', u64(PHDR(0) + 32, 30n), /: offset 200: PT_NOTE segment 0: 6 trailing bytes, too few for a 12-byte note header$/],
    ['a note name past the region', u32(L.note1, 100), /: offset 200: PT_NOTE segment 0 note of type 0x0: namesz 100 runs past the segment end \(56 bytes\)$/],
    ['a note descriptor past the region', u32(L.note1 + 4, 13), /: offset 200: PT_NOTE segment 0 note of type 0x0: descsz 13 runs past the segment end \(56 bytes\)$/],
  ];
  // each pattern runs from ": offset" to the end of the message: anchored after the path, it also rules out a second line
  it.each(cases)('%s', (name, patch, want, max) => {
    const p = save(patch(tiny()), name.replace(/\W+/g, '-'));
    expect(() => readAll(p, max)).toThrow(InputError);
    expect(() => readAll(p, max)).toThrow(new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}${want.source}`));
  });

  it('a note region larger than the caller allows, reported at its size field', () => {
    const file = save(tiny(), 'cap');
    const fd = fs.openSync(file, 'r');
    try {
      const f = new ElfFile(file, fd, L.size);
      const region = { offset: L.notes, size: L.notesSize, sizeAt: PHDR(0) + 32, what: 'PT_NOTE segment 0', kind: 'segment' as const };
      expect(() => [...readNotes(f, region, { maxBytes: 32, maxWhy: 'two notes at most' })]).toThrow(`${file}: offset 96: PT_NOTE segment 0 is 56 bytes, expected at most 32 (two notes at most)`);
    } finally {
      fs.closeSync(fd);
    }
  });
});
