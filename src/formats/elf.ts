// ELF64 little-endian reading for the ELF readers (xl dump-core, Xen kdump vmcores), after the System V gABI "Object Files" chapter (ELF header, sections, program headers, notes) and glibc <elf.h>.
//
// Every table is bounds-checked against the file size (and counts capped) before it is allocated; every
// error is one InputError line: the file, the byte offset, what was found and what was expected. Formats
// choose what they accept (e_type, e_machine, whether a section table must exist) and word the
// format-specific part of a message themselves. Extended numbering is read for e_phnum (PN_XNUM) only:
// e_shnum 0 means no section header table, and .shstrtab must exist when there is one.
import { ParsedFile, readAt } from './file-io.js';
import { hex } from '../xen/abi.js';
import { ELFMAG, EI_ABIVERSION, EI_CLASS, EI_DATA, EI_OSABI, EI_VERSION, ELFCLASS32, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ET_NONE, ET_REL, ET_EXEC, ET_DYN, ET_CORE, EM_386, EM_X86_64, SHT_NULL, SHT_STRTAB, PT_NULL, PT_LOAD, PN_XNUM, ELF64_EHDR_SIZE, ELF64_SHDR_SIZE, ELF64_PHDR_SIZE, E_TYPE, E_MACHINE, E_VERSION, E_PHOFF, E_SHOFF, E_FLAGS, E_PHENTSIZE, E_PHNUM, E_SHENTSIZE, E_SHNUM, E_SHSTRNDX, SH_NAME, SH_TYPE, SH_OFFSET, SH_SIZE, SH_INFO, P_TYPE, P_FLAGS, P_OFFSET, P_VADDR, P_PADDR, P_FILESZ, P_MEMSZ, NHDR_SIZE, N_NAMESZ, N_DESCSZ, N_TYPE, NOTE_ALIGN } from '../xen/elf-format.js';

const WORD_BYTES = 4;
const WORD_SCALE = 2 ** 32;
/** Largest high word that keeps a u64 a safe JS integer. */
const SAFE_HI_MAX = Math.floor(Number.MAX_SAFE_INTEGER / WORD_SCALE);
const HEX_BYTES_SHOWN = 8;
/** Default caps (a caller may lower them): .shstrtab bytes, program headers, bytes of one note region. */
export const DEFAULT_MAX_SHSTRTAB_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_PROGRAM_HEADERS = 1 << 20;
export const DEFAULT_MAX_NOTE_BYTES = 16 * 1024 * 1024;

const TYPE_NAMES = new Map([
  [ET_NONE, 'ET_NONE'],
  [ET_REL, 'ET_REL'],
  [ET_EXEC, 'ET_EXEC'],
  [ET_DYN, 'ET_DYN'],
  [ET_CORE, 'ET_CORE'],
]);
const MACHINE_NAMES = new Map([
  [EM_386, 'EM_386'],
  [EM_X86_64, 'EM_X86_64'],
]);

// ---- helpers ----------------------------------------------------------------------------------------

/** u64 (two little-endian u32 words) as a number, or null beyond 2^53. */
export function readU64(buf: Buffer, at: number): number | null {
  const hi = buf.readUInt32LE(at + WORD_BYTES);
  if (hi > SAFE_HI_MAX) return null;
  return hi * WORD_SCALE + buf.readUInt32LE(at);
}

/** A u64 field in hex, whatever its size (for messages). */
export function u64Hex(buf: Buffer, at: number): string {
  return hex(buf.readBigUInt64LE(at));
}

/** The bytes before the first NUL, as latin1. */
export function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.subarray(0, nul < 0 ? b.length : nul).toString('latin1');
}

function showHex(b: Buffer): string {
  return b.subarray(0, HEX_BYTES_SHOWN).toString('hex').replace(/(..)(?!$)/g, '$1 ');
}

function named(names: Map<number, string>, v: number): string {
  const n = names.get(v);
  return n === undefined ? '' : ` (${n})`;
}

function alignNote(n: number): number {
  return Math.ceil(n / NOTE_ALIGN) * NOTE_ALIGN;
}

/** Only the ELF magic is checked (content detection); readElfHeader checks the rest. */
export function isElf(head: Buffer): boolean {
  return head.length >= ELFMAG.length && head.subarray(0, ELFMAG.length).equals(ELFMAG);
}

/** An ELF file being read: its path (for errors), descriptor and size (from fstat). */
export class ElfFile extends ParsedFile {
  /** Read exactly `length` bytes at `offset` (already checked to lie inside the file). */
  bytes(offset: number, length: number): Buffer {
    const b = Buffer.alloc(length);
    const n = readAt(this.fd, b, offset, length);
    if (n !== length) this.fail(offset, `expected ${length} bytes, the file ends after ${n}`);
    return b;
  }
}

/** Where an entry's bytes are: a section's sh_offset and sh_size, a segment's p_offset and p_filesz. */
interface EntryKind {
  kind: 'section' | 'segment';
  offset: [string, number];
  size: [string, number];
}
const SECTION: EntryKind = { kind: 'section', offset: ['sh_offset', SH_OFFSET], size: ['sh_size', SH_SIZE] };
const SEGMENT: EntryKind = { kind: 'segment', offset: ['p_offset', P_OFFSET], size: ['p_filesz', P_FILESZ] };
/** What an SHT_NULL / PT_NULL entry is given (its fields are not read). */
const NO_BYTES = { offset: 0, size: 0 } as const;

/** A header table: `count` entries at `off` (ELF header field `name`), read once it lies inside the file. */
function readTable(f: ElfFile, what: string, name: string, fieldAt: number, off: number, count: number, entsize: number): Buffer {
  if (off > f.size || (f.size - off) / entsize < count) {
    f.fail(fieldAt, `${what} table (${name} ${off} + ${count} × ${entsize} bytes) runs past the end of the file (${f.size} bytes)`);
  }
  return f.bytes(off, count * entsize);
}

/** Entry i's bytes (its header at `at` in the table, `fileAt` in the file), checked to lie inside the file. */
function fileImage(f: ElfFile, e: EntryKind, i: number, table: Buffer, at: number, fileAt: number): { offset: number; size: number } {
  const [offName, offField] = e.offset;
  const [sizeName, sizeField] = e.size;
  const offset = readU64(table, at + offField);
  const size = readU64(table, at + sizeField);
  if (offset === null || offset > f.size) {
    f.fail(fileAt + offField, `${e.kind} ${i}: ${offName} ${offset ?? u64Hex(table, at + offField)} is beyond the end of the file (${f.size} bytes), expected the ${e.kind} inside the file`);
  }
  if (size === null || size > f.size - offset) {
    f.fail(fileAt + sizeField, `${e.kind} ${i}: ${offName} ${offset} + ${sizeName} ${size ?? u64Hex(table, at + sizeField)} runs past the end of the file (${f.size} bytes), expected the ${e.kind} inside the file`);
  }
  return { offset, size };
}

// ---- the ELF header ---------------------------------------------------------------------------------

/** Elf64_Ehdr of a file that passed readElfHeader. File offsets are numbers, null when beyond 2^53. */
export interface ElfHeader {
  osabi: number;
  abiversion: number;
  type: number;
  machine: number;
  /** e_version (not checked: EI_VERSION is) */
  version: number;
  flags: number;
  phoff: number | null;
  shoff: number | null;
  phentsize: number;
  /** as written: PN_XNUM when the count is in section header 0 (readProgramHeaders resolves it) */
  phnum: number;
  shentsize: number;
  shnum: number;
  shstrndx: number;
  /** the 64 header bytes, for messages about out-of-range u64 fields */
  raw: Buffer;
}

/** What a format accepts of the header; the optional texts word its own part of an error. */
export interface ElfWant {
  /** e_type read (ET_CORE) */
  type: number;
  /** e_machine read (EM_X86_64) */
  machine: number;
  /** e_machine values refused with their own reason: the rest of the line, "why, expected what" */
  refuse?: ReadonlyMap<number, string>;
  /** why ELFCLASS64 / little-endian data is required, added to that error */
  classWhy?: string;
  dataWhy?: string;
}

/**
 * Read and check the ELF header, in this order: magic, length, EI_CLASS (ELFCLASS64), EI_DATA
 * (ELFDATA2LSB), EI_VERSION (EV_CURRENT), e_type, e_machine. The tables it names are checked by
 * readSectionHeaders / readProgramHeaders.
 */
export function readElfHeader(f: ElfFile, want: ElfWant): ElfHeader {
  const got = Math.min(f.size, ELF64_EHDR_SIZE);
  const h = Buffer.alloc(ELF64_EHDR_SIZE);
  readAt(f.fd, h, 0, got);
  if (got < ELFMAG.length || !h.subarray(0, ELFMAG.length).equals(ELFMAG)) {
    f.fail(0, `expected the ELF magic 7f 45 4c 46, found ${got ? showHex(h.subarray(0, got)) : 'an empty file'}`);
  }
  if (got < ELF64_EHDR_SIZE) f.fail(0, `truncated: file is ${f.size} bytes, shorter than the ${ELF64_EHDR_SIZE}-byte ELF64 header`);
  if (h[EI_CLASS] !== ELFCLASS64) {
    f.fail(EI_CLASS, `ELF class ${h[EI_CLASS]}${h[EI_CLASS] === ELFCLASS32 ? ' (ELFCLASS32)' : ''}, expected ${ELFCLASS64} (ELFCLASS64${want.classWhy ? `: ${want.classWhy}` : ''})`);
  }
  if (h[EI_DATA] !== ELFDATA2LSB) f.fail(EI_DATA, `ELF data encoding ${h[EI_DATA]}, expected ${ELFDATA2LSB} (little-endian${want.dataWhy ? `, ${want.dataWhy}` : ''})`);
  if (h[EI_VERSION] !== EV_CURRENT) f.fail(EI_VERSION, `ELF ident version ${h[EI_VERSION]}, expected ${EV_CURRENT}`);
  const type = h.readUInt16LE(E_TYPE);
  if (type !== want.type) f.fail(E_TYPE, `e_type ${type}, expected ${want.type}${named(TYPE_NAMES, want.type)}`);
  const machine = h.readUInt16LE(E_MACHINE);
  const refused = want.refuse?.get(machine);
  if (refused !== undefined) f.fail(E_MACHINE, `e_machine ${machine}${named(MACHINE_NAMES, machine)}: ${refused}`);
  if (machine !== want.machine) f.fail(E_MACHINE, `e_machine ${machine}, expected ${want.machine}${named(MACHINE_NAMES, want.machine)}`);
  return {
    osabi: h[EI_OSABI]!,
    abiversion: h[EI_ABIVERSION]!,
    type,
    machine,
    version: h.readUInt32LE(E_VERSION),
    flags: h.readUInt32LE(E_FLAGS),
    phoff: readU64(h, E_PHOFF),
    shoff: readU64(h, E_SHOFF),
    phentsize: h.readUInt16LE(E_PHENTSIZE),
    phnum: h.readUInt16LE(E_PHNUM),
    shentsize: h.readUInt16LE(E_SHENTSIZE),
    shnum: h.readUInt16LE(E_SHNUM),
    shstrndx: h.readUInt16LE(E_SHSTRNDX),
    raw: h,
  };
}

// ---- section headers --------------------------------------------------------------------------------

/** A section header with its name from .shstrtab (SHT_NULL: name '', offset and size 0). */
export interface ElfSection {
  name: string;
  index: number;
  type: number;
  offset: number;
  size: number;
  /** file offset of its Elf64_Shdr (errors about a field point at headerAt + SH_*) */
  headerAt: number;
}

export interface SectionRules {
  /** the end of the error when e_shnum is 0 ("expected the … sections"); without it, no table gives [] */
  missing?: string;
  /** largest .shstrtab accepted (default DEFAULT_MAX_SHSTRTAB_BYTES), and why, for the error */
  maxNames?: number;
  maxNamesWhy?: string;
}

/**
 * Every section header, each section checked to lie inside the file (SHT_NULL excepted), names resolved
 * through .shstrtab (section e_shstrndx, SHT_STRTAB).
 */
export function readSectionHeaders(f: ElfFile, eh: ElfHeader, rules: SectionRules = {}): ElfSection[] {
  if (eh.shnum === 0 && rules.missing === undefined) return [];
  const shoff = eh.shoff;
  if (shoff === null) return f.fail(E_SHOFF, `e_shoff ${u64Hex(eh.raw, E_SHOFF)} is beyond the file (${f.size} bytes)`);
  if (eh.shentsize !== ELF64_SHDR_SIZE) f.fail(E_SHENTSIZE, `e_shentsize ${eh.shentsize}, expected ${ELF64_SHDR_SIZE}`);
  const shnum = eh.shnum;
  if (shnum === 0) f.fail(E_SHNUM, `e_shnum 0: no section headers, ${rules.missing}`);
  const shstrndx = eh.shstrndx;
  if (shstrndx >= shnum) f.fail(E_SHSTRNDX, `e_shstrndx ${shstrndx}, expected an index below e_shnum ${shnum}`);
  const table = readTable(f, 'section header', 'e_shoff', E_SHOFF, shoff, shnum, ELF64_SHDR_SIZE);
  const raw: { type: number; offset: number; size: number; name: number; at: number }[] = [];
  for (let i = 0; i < shnum; i++) {
    const at = i * ELF64_SHDR_SIZE;
    const fileAt = shoff + at;
    const type = table.readUInt32LE(at + SH_TYPE);
    const { offset, size } = type === SHT_NULL ? NO_BYTES : fileImage(f, SECTION, i, table, at, fileAt);
    raw.push({ type, offset, size, name: table.readUInt32LE(at + SH_NAME), at: fileAt });
  }
  const strtab = raw[shstrndx]!;
  if (strtab.type !== SHT_STRTAB) f.fail(strtab.at + SH_TYPE, `section ${shstrndx} (e_shstrndx) has type ${strtab.type}, expected ${SHT_STRTAB} (SHT_STRTAB)`);
  const maxNames = rules.maxNames ?? DEFAULT_MAX_SHSTRTAB_BYTES;
  if (strtab.size > maxNames) f.fail(strtab.at + SH_SIZE, `.shstrtab is ${strtab.size} bytes, expected at most ${maxNames}${rules.maxNamesWhy ? ` (${rules.maxNamesWhy})` : ''}`);
  const names = f.bytes(strtab.offset, strtab.size);
  return raw.map((r, index) => {
    if (r.type === SHT_NULL) return { name: '', index, type: r.type, offset: 0, size: 0, headerAt: r.at };
    if (r.name >= names.length) f.fail(r.at + SH_NAME, `section ${index}: sh_name ${r.name} is outside .shstrtab (${names.length} bytes)`);
    const end = names.indexOf(0, r.name);
    if (end < 0) f.fail(r.at + SH_NAME, `section ${index}: name at .shstrtab offset ${r.name} is not NUL-terminated`);
    return { name: names.subarray(r.name, end).toString('latin1'), index, type: r.type, offset: r.offset, size: r.size, headerAt: r.at };
  });
}

// ---- program headers --------------------------------------------------------------------------------

/** A program header. Addresses stay u64 (bigint); offset and sizes are numbers (PT_NULL: 0). */
export interface ElfSegment {
  index: number;
  type: number;
  flags: number;
  offset: number;
  vaddr: bigint;
  paddr: bigint;
  filesz: number;
  memsz: number;
  /** file offset of its Elf64_Phdr */
  headerAt: number;
}

/**
 * Every program header (none when e_phnum is 0). The count (e_phnum, or section header 0's sh_info under
 * PN_XNUM) is capped at `max` and the table checked to lie inside the file before it is read; each
 * segment's file image (p_offset, p_filesz) must lie inside the file, and a PT_LOAD's p_memsz must cover
 * its p_filesz.
 */
export function readProgramHeaders(f: ElfFile, eh: ElfHeader, max = DEFAULT_MAX_PROGRAM_HEADERS): ElfSegment[] {
  if (eh.phnum === 0) return [];
  const phoff = eh.phoff;
  if (phoff === null) return f.fail(E_PHOFF, `e_phoff ${u64Hex(eh.raw, E_PHOFF)} is beyond the file (${f.size} bytes)`);
  if (eh.phentsize !== ELF64_PHDR_SIZE) f.fail(E_PHENTSIZE, `e_phentsize ${eh.phentsize}, expected ${ELF64_PHDR_SIZE}`);
  let count = eh.phnum;
  let countAt = E_PHNUM;
  if (count === PN_XNUM) {
    const shoff = eh.shoff;
    if (shoff === null || shoff === 0 || shoff > f.size - ELF64_SHDR_SIZE) {
      f.fail(E_PHNUM, `e_phnum ${hex(PN_XNUM)} (PN_XNUM): the count is in section header 0, expected e_shoff (${shoff ?? u64Hex(eh.raw, E_SHOFF)}) to point at one inside the file (${f.size} bytes)`);
    }
    countAt = shoff + SH_INFO;
    count = f.bytes(countAt, WORD_BYTES).readUInt32LE(0);
  }
  if (count > max) f.fail(countAt, `${count} program headers, expected at most ${max}`);
  const table = readTable(f, 'program header', 'e_phoff', E_PHOFF, phoff, count, ELF64_PHDR_SIZE);
  const out: ElfSegment[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * ELF64_PHDR_SIZE;
    const fileAt = phoff + at;
    const type = table.readUInt32LE(at + P_TYPE);
    const { offset, size: filesz } = type === PT_NULL ? NO_BYTES : fileImage(f, SEGMENT, i, table, at, fileAt);
    let memsz = 0;
    if (type !== PT_NULL) {
      const m = readU64(table, at + P_MEMSZ);
      if (m === null) return f.fail(fileAt + P_MEMSZ, `segment ${i}: p_memsz ${u64Hex(table, at + P_MEMSZ)}, expected below 2^53`);
      if (type === PT_LOAD && m < filesz) f.fail(fileAt + P_MEMSZ, `segment ${i} (PT_LOAD): p_memsz ${m} is below p_filesz ${filesz}, expected at least p_filesz`);
      memsz = m;
    }
    out.push({
      index: i,
      type,
      flags: table.readUInt32LE(at + P_FLAGS),
      offset,
      vaddr: table.readBigUInt64LE(at + P_VADDR),
      paddr: table.readBigUInt64LE(at + P_PADDR),
      filesz,
      memsz,
      headerAt: fileAt,
    });
  }
  return out;
}

// ---- notes ------------------------------------------------------------------------------------------

/** Where notes are: a section (SHT_NOTE) or segment (PT_NOTE) already checked to lie inside the file. */
export interface NoteRegion {
  offset: number;
  size: number;
  /** file offset of its size field (sh_size / p_filesz), where an oversized region is reported */
  sizeAt: number;
  /** its name in errors (".note.Xen", "PT_NOTE segment 0") */
  what: string;
  kind?: 'section' | 'segment';
}

export interface NoteRules {
  /** largest region read (default DEFAULT_MAX_NOTE_BYTES), and why, for the error */
  maxBytes?: number;
  maxWhy?: string;
  /** every note must carry this owner name ("Xen"): namesz is checked before anything else */
  name?: string;
}

/** One note: Elf64_Nhdr (namesz, descsz, type), the name and the descriptor, each padded to 4 bytes. */
export interface ElfNote {
  /** file offset of its header */
  at: number;
  type: number;
  /** owner name up to its NUL */
  name: string;
  /** file offset of the descriptor, and its bytes (a view of the region read) */
  descAt: number;
  desc: Buffer;
}

/**
 * The notes of a region in order, each checked when it is reached: a whole 12-byte header, name and
 * descriptor inside the region. Padding after the last descriptor may lie beyond the region's end.
 */
export function* readNotes(f: ElfFile, region: NoteRegion, rules: NoteRules = {}): Generator<ElfNote, void, undefined> {
  const { what } = region;
  const maxBytes = rules.maxBytes ?? DEFAULT_MAX_NOTE_BYTES;
  if (region.size > maxBytes) f.fail(region.sizeAt, `${what} is ${region.size} bytes, expected at most ${maxBytes}${rules.maxWhy ? ` (${rules.maxWhy})` : ''}`);
  const buf = f.bytes(region.offset, region.size);
  const wantName = rules.name === undefined ? null : Buffer.from(rules.name + '\0', 'latin1');
  let o = 0;
  while (o < buf.length) {
    const at = region.offset + o;
    if (buf.length - o < NHDR_SIZE) f.fail(at, `${what}: ${buf.length - o} trailing bytes, too few for a ${NHDR_SIZE}-byte note header`);
    const namesz = buf.readUInt32LE(o + N_NAMESZ);
    const descsz = buf.readUInt32LE(o + N_DESCSZ);
    const type = buf.readUInt32LE(o + N_TYPE);
    if (wantName && namesz !== wantName.length) f.fail(at, `${what} note of type ${hex(type)}: namesz ${namesz}, expected ${wantName.length} ("${rules.name}\\0")`);
    const nameAt = o + NHDR_SIZE;
    if (alignNote(namesz) > buf.length - nameAt) f.fail(at, `${what} note of type ${hex(type)}: namesz ${namesz} runs past the ${region.kind ?? 'section'} end (${region.size} bytes)`);
    const descAt = nameAt + alignNote(namesz);
    if (descsz > buf.length - descAt) f.fail(at, `${what} note of type ${hex(type)}: descsz ${descsz} runs past the ${region.kind ?? 'section'} end (${region.size} bytes)`);
    const name = buf.subarray(nameAt, nameAt + namesz);
    if (wantName && !name.equals(wantName)) {
      f.fail(region.offset + nameAt, `${what} note of type ${hex(type)}: name ${JSON.stringify(name.toString('latin1'))}, expected "${rules.name}\\0"`);
    }
    yield { at, type, name: cString(name), descAt: region.offset + descAt, desc: buf.subarray(descAt, descAt + descsz) };
    o = descAt + alignNote(descsz);
  }
}
