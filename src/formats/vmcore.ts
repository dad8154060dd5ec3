// Xen kdump ELF vmcore reader (a dom0 crash dump): the file the kdump kernel copies out of /proc/vmcore (Linux fs/proc/vmcore.c) after Xen's kexec crash path (xen/common/kexec.c, xen/arch/x86/crash.c), with program headers from kexec-tools (kexec/crashdump-elf.c, kexec/arch/i386/crashdump-x86.c get_crash_memory_ranges_xen). docs/spec-notes/dom0-kdump.md.
//
// What a dump holds (all little-endian): ELF64 header (ET_CORE, EM_X86_64, no sections) → program headers
// (one PT_NOTE, then one PT_LOAD per host RAM range less the crash region) → the notes (per physical CPU
// "CORE" NT_PRSTATUS and "Xen" CRASH_REGS, once "Xen" CRASH_INFO, "VMCOREINFO_XEN") → the memory. PT_LOAD
// p_paddr are machine addresses (Xen's machine memory map), so frames are mfns; p_vaddr means nothing.
// The only p2m root is crash_xen_info_t's last word (dom0's pfn_to_mfn_frame_list_list): there is no
// shared_info, max_pfn or cr3 here (the views find them through the frame list and kernel symbols).
//
// A frame is held when all its 4096 bytes lie in a segment's file image (p_paddr … p_paddr + p_filesz);
// bytes a PT_LOAD has only in p_memsz are not in the file. Memory: one run per PT_LOAD in typed arrays;
// every length is checked against the file (elf.ts) before anything is allocated.
import * as fs from 'node:fs';
import { InputError } from '../common/errors.js';
import { MAX_MFN_ARCH, PAGE_SIZE, hex } from '../xen/abi.js';
import { EI_CLASS, EI_DATA, ELFCLASS64, ELFDATA2LSB, ELFDATA2MSB, EM_386, EM_X86_64, E_PHNUM, E_SHNUM, E_TYPE, ET_CORE, ET_DYN, ET_EXEC, ET_REL, P_FILESZ, P_PADDR, PT_LOAD, PT_NOTE } from '../xen/elf-format.js';
import { ElfFile, readElfHeader, readProgramHeaders, type ElfSegment, type NoteRegion } from './elf.js';
import { openReadOnly } from './file-io.js';
import type { DumpSegment } from './guest-image.js';
import { nativeVmcoreDescription, readKdumpNotes, requireCrashInfo } from './kdump-notes.js';
import { Dom0KdumpImage, type Dom0KdumpFacts } from './dom0-kdump-image.js';
import type { SymbolTable } from './symbols.js';

/** Machine addresses have 52 bits (MAX_MFN_ARCH frames of 4 KiB). */
const MADDR_LIMIT = (MAX_MFN_ARCH + 1) * PAGE_SIZE;
/** What kexec-tools writes for an x86_64 host: a 64-bit little-endian ET_CORE. */
const VMCORE_ELF = {
  type: ET_CORE,
  machine: EM_X86_64,
  refuse: new Map([[EM_386, `a 32-bit host's vmcore; only x86_64 Xen hosts are supported, expected ${EM_X86_64} (EM_X86_64)`]]),
  classWhy: 'kexec-tools writes ELF64 program headers for an x86_64 host',
  dataWhy: 'as an x86_64 host writes it',
};

export interface VmcoreOptions {
  /** dom0's kernel symbols (the dump carries none) */
  symbols?: SymbolTable;
}

/** What an ELF file is, by content: which reader takes it, or why none does. */
export interface ElfKind {
  format: 'xc-core' | 'vmcore' | null;
  description: string;
}

const XC_CORE_KIND: ElfKind = { format: 'xc-core', description: 'ELF core with sections (xl dump-core when it has .note.Xen)' };
const VMCORE_KIND: ElfKind = { format: 'vmcore', description: "Xen kdump vmcore (ELF core with Xen's crash note)" };
const NOT_A_DUMP = new Map([
  [ET_EXEC, 'an ELF executable (ET_EXEC), not a dump'],
  [ET_DYN, 'an ELF shared object or position-independent executable (ET_DYN), not a dump'],
  [ET_REL, 'an ELF relocatable object (ET_REL), not a dump'],
]);

/**
 * What the first 64 bytes of an ELF file say: an executable or object is no dump; an ELF64 little-endian
 * core with program headers and no sections is a kdump vmcore candidate (xl dump-core files always have
 * sections, /proc/vmcore never); everything else goes to the dump-core reader, which words its errors.
 */
export function elfKindOfHead(head: Buffer): ElfKind {
  if (head.length < E_TYPE + 2) return XC_CORE_KIND;
  const type = head[EI_DATA] === ELFDATA2MSB ? head.readUInt16BE(E_TYPE) : head.readUInt16LE(E_TYPE);
  if (type !== ET_CORE) return { format: null, description: NOT_A_DUMP.get(type) ?? `an ELF file of e_type ${type}, not a dump` };
  const lsb64 = head[EI_CLASS] === ELFCLASS64 && head[EI_DATA] === ELFDATA2LSB && head.length >= E_SHNUM + 2;
  if (lsb64 && head.readUInt16LE(E_SHNUM) === 0 && head.readUInt16LE(E_PHNUM) !== 0) return VMCORE_KIND;
  return XC_CORE_KIND;
}

/**
 * elfKindOfHead, then for a vmcore candidate a bounded look at its notes (the program header table, at
 * most 65535 × 56 bytes, and the PT_NOTE segments, at most 16 MiB): Xen's crash note makes it a vmcore;
 * a core without any "Xen" note is a native Linux vmcore, refused with that name. A file the look cannot
 * parse goes to the vmcore reader, which reports the same error with its offset.
 */
export function probeElfFile(path: string, head: Buffer): ElfKind {
  const kind = elfKindOfHead(head);
  if (kind.format !== 'vmcore') return kind;
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch {
    return kind; // the reader reports why it cannot open the file
  }
  try {
    const f = new ElfFile(path, fd, fs.fstatSync(fd).size);
    const k = readKdumpNotes(f, noteRegions(readProgramHeaders(f, readElfHeader(f, VMCORE_ELF))));
    return k.crashInfo || k.xenNotes > 0 ? kind : { format: null, description: nativeVmcoreDescription(k) };
  } catch (e) {
    if (e instanceof InputError) return kind;
    throw e;
  } finally {
    fs.closeSync(fd);
  }
}

/** The PT_NOTE segments as note regions (kdump merges them into one; older files may have several). */
function noteRegions(segments: readonly ElfSegment[]): NoteRegion[] {
  return segments
    .filter((s) => s.type === PT_NOTE)
    .map((s) => ({ offset: s.offset, size: s.filesz, sizeAt: s.headerAt + P_FILESZ, what: `PT_NOTE segment ${s.index}`, kind: 'segment' as const }));
}

// ---- the image --------------------------------------------------------------------------------------

/** Frames held, as runs sorted by frame: [start, start + count) at file offset offset + (f − start)·4096. */
interface FrameRuns {
  start: Float64Array;
  count: Float64Array;
  offset: Float64Array;
}

export class VmcoreImage extends Dom0KdumpImage {
  readonly format = 'vmcore' as const;
  readonly maxFrame: number;
  private readonly total: number;

  constructor(
    path: string,
    fd: number,
    symbols: SymbolTable,
    formatFacts: Dom0KdumpFacts,
    private readonly runs: FrameRuns,
  ) {
    super(path, fd, symbols, formatFacts);
    const n = runs.start.length;
    this.maxFrame = n === 0 ? -1 : runs.start[n - 1]! + runs.count[n - 1]! - 1;
    let total = 0;
    for (let i = 0; i < n; i++) total += runs.count[i]!;
    this.total = total;
  }

  frameOffset(frame: number): number {
    const { start, count, offset } = this.runs;
    let lo = 0;
    let hi = start.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const s = start[mid]!;
      if (frame < s) hi = mid - 1;
      else if (frame >= s + count[mid]!) lo = mid + 1;
      else return offset[mid]! + (frame - s) * PAGE_SIZE;
    }
    return -1;
  }

  readFrame(frame: number): Buffer | null {
    return this.file.readFrame(this.frameOffset(frame), `frame ${hex(frame)}`);
  }

  frameCount(): number {
    return this.total;
  }
}

// ---- parsing ----------------------------------------------------------------------------------------

/** The PT_LOAD segments as machine ranges, checked: below 2^52, disjoint; sorted by machine address. */
function loadSegments(f: ElfFile, segments: readonly ElfSegment[]): (DumpSegment & { index: number; headerAt: number })[] {
  const loads = segments.filter((s) => s.type === PT_LOAD);
  if (loads.length === 0) f.fail(E_PHNUM, `no PT_LOAD segment (${segments.length} program headers): a vmcore holds memory in PT_LOAD segments, expected at least one`);
  const out = loads.map((s) => {
    if (s.paddr >= BigInt(MADDR_LIMIT) || Number(s.paddr) + s.filesz > MADDR_LIMIT) {
      f.fail(s.headerAt + P_PADDR, `segment ${s.index} (PT_LOAD): p_paddr ${hex(s.paddr)} + p_filesz ${hex(s.filesz)} is beyond 52-bit machine addresses, expected machine memory`);
    }
    return { maddr: Number(s.paddr), size: s.filesz, fileOffset: s.offset, index: s.index, headerAt: s.headerAt };
  });
  out.sort((a, b) => a.maddr - b.maddr);
  for (let i = 1; i < out.length; i++) {
    const a = out[i - 1]!;
    const b = out[i]!;
    if (b.maddr < a.maddr + a.size) {
      f.fail(b.headerAt + P_PADDR, `segment ${b.index} (PT_LOAD) holds machine ${hex(b.maddr)}-${hex(b.maddr + b.size - 1)}, which overlaps segment ${a.index} (${hex(a.maddr)}-${hex(a.maddr + a.size - 1)}); expected disjoint machine ranges`);
    }
  }
  return out;
}

/** Whole frames of each segment's file image. */
function frameRuns(segments: readonly DumpSegment[]): FrameRuns {
  const kept = segments
    .map((s) => {
      const first = Math.ceil(s.maddr / PAGE_SIZE);
      const end = Math.floor((s.maddr + s.size) / PAGE_SIZE);
      return { first, count: end - first, offset: s.fileOffset + (first * PAGE_SIZE - s.maddr) };
    })
    .filter((r) => r.count > 0);
  return {
    start: Float64Array.from(kept, (r) => r.first),
    count: Float64Array.from(kept, (r) => r.count),
    offset: Float64Array.from(kept, (r) => r.offset),
  };
}

/**
 * Open and validate a Xen kdump vmcore of an x86_64 host. Throws InputError (one line: file, byte offset,
 * what was expected) on anything it cannot use, and on an ELF core that is not a Xen kdump.
 */
export function openVmcore(path: string, opts: VmcoreOptions = {}): VmcoreImage {
  const fd = openReadOnly(path);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new InputError(`${path}: not a regular file`);
    const f = new ElfFile(path, fd, st.size);
    const eh = readElfHeader(f, VMCORE_ELF);
    const phdrs = readProgramHeaders(f, eh);
    const regions = noteRegions(phdrs);
    const notes = readKdumpNotes(f, regions);
    const crashInfo = requireCrashInfo(path, regions[0]?.offset ?? E_PHNUM, notes);
    const segments = loadSegments(f, phdrs);
    const facts: Dom0KdumpFacts = {
      kind: 'dom0-kdump',
      crashInfo,
      notes: notes.notes,
      segments: segments.map(({ maddr, size, fileOffset }) => ({ maddr, size, fileOffset })),
      vmcoreInfoXen: notes.vmcoreInfoXen,
      compression: null,
    };
    return new VmcoreImage(path, fd, opts.symbols ?? new Map(), facts, frameRuns(segments));
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}
