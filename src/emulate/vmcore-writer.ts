// Xen kdump ELF vmcore writer for an emulated dom0: the file a kdump kernel copies out of /proc/vmcore (Linux fs/proc/vmcore.c merge_note_headers_elf64, process_ptload_program_headers_elf64) from the ELF headers kexec-tools built for a Xen host (kexec/crashdump-elf.c crash_create_elf64_headers, kexec/arch/i386/crashdump-x86.c). docs/spec-notes/dom0-kdump.md.
//
// Layout, as /proc/vmcore presents it: ELF64 header and program headers (one PT_NOTE, then one PT_LOAD
// per dumped machine range), padded to a page; the notes (kdump-host.ts kdumpNoteArea), padded to a page;
// then each range's pages, from its first page boundary to its last (p_offset points at p_paddr inside
// the first page). PT_LOAD: p_paddr = machine address, p_vaddr = X86_64_PAGE_OFFSET + p_paddr, flags
// RWX, p_align 0; PT_NOTE: flags 0, addresses 0. Pages the emulator holds no content for stay holes
// (zeros) of a sparse file; memory stays bounded (WRITE_BATCH_PAGES pages per write).
import * as fs from 'node:fs';
import { checkOutput, writeAllAt, writeOutput } from '../formats/output-file.js';
import type { MemoryImage } from '../formats/memory-image.js';
import { bootFactsOf } from '../formats/guest-image.js';
import { PAGE_SIZE } from '../xen/abi.js';
import { EI_CLASS, EI_DATA, EI_VERSION, ELF64_EHDR_SIZE, ELF64_PHDR_SIZE, ELFCLASS64, ELFDATA2LSB, ELFMAG, EM_X86_64, ET_CORE, EV_CURRENT, E_EHSIZE, E_MACHINE, E_PHENTSIZE, E_PHNUM, E_PHOFF, E_TYPE, E_VERSION, PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE, P_FILESZ, P_FLAGS, P_MEMSZ, P_OFFSET, P_PADDR, P_TYPE, P_VADDR } from '../xen/elf-format.js';
import { X86_64_PAGE_OFFSET } from '../xen/kdump-format.js';
import { planDom0Kdump, type Dom0KdumpOptions, type MachineRange } from './kdump-host.js';

/** Pages per positional write (1 MiB). */
const WRITE_BATCH_PAGES = 256;

/** One PT_LOAD as written. */
export interface VmcoreLoad {
  paddr: number;
  vaddr: bigint;
  size: number;
  offset: number;
}

/** Where everything lies in the file. */
export interface VmcoreLayout {
  /** e_phnum: the PT_NOTE and the PT_LOADs */
  phnum: number;
  noteOffset: number;
  noteSize: number;
  loads: VmcoreLoad[];
  fileSize: number;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** fs/proc/vmcore.c's offsets for `ranges` (in PT_LOAD order) and a note area of `noteSize` bytes. */
export function vmcoreLayout(ranges: readonly MachineRange[], noteSize: number): VmcoreLayout {
  const phnum = 1 + ranges.length;
  const noteOffset = roundUp(ELF64_EHDR_SIZE + phnum * ELF64_PHDR_SIZE, PAGE_SIZE);
  let off = noteOffset + roundUp(noteSize, PAGE_SIZE);
  const loads = ranges.map((r) => {
    const first = Math.floor(r.start / PAGE_SIZE) * PAGE_SIZE;
    const end = roundUp(r.start + r.size, PAGE_SIZE);
    const load = { paddr: r.start, vaddr: X86_64_PAGE_OFFSET + BigInt(r.start), size: r.size, offset: off + (r.start - first) };
    off += end - first;
    return load;
  });
  return { phnum, noteOffset, noteSize, loads, fileSize: off };
}

/** ELF header, program headers and notes: the first noteOffset + roundUp(noteSize) bytes of the file. */
export function vmcoreHead(layout: VmcoreLayout, notes: Buffer): Buffer {
  const head = Buffer.alloc(layout.noteOffset + roundUp(notes.length, PAGE_SIZE));
  ELFMAG.copy(head, 0);
  head[EI_CLASS] = ELFCLASS64;
  head[EI_DATA] = ELFDATA2LSB;
  head[EI_VERSION] = EV_CURRENT;
  head.writeUInt16LE(ET_CORE, E_TYPE);
  head.writeUInt16LE(EM_X86_64, E_MACHINE);
  head.writeUInt32LE(EV_CURRENT, E_VERSION);
  head.writeBigUInt64LE(BigInt(ELF64_EHDR_SIZE), E_PHOFF);
  head.writeUInt16LE(ELF64_EHDR_SIZE, E_EHSIZE);
  head.writeUInt16LE(ELF64_PHDR_SIZE, E_PHENTSIZE);
  head.writeUInt16LE(layout.phnum, E_PHNUM);
  const phdr = (i: number, type: number, flags: number, offset: number, vaddr: bigint, paddr: number, size: number): void => {
    const at = ELF64_EHDR_SIZE + i * ELF64_PHDR_SIZE;
    head.writeUInt32LE(type, at + P_TYPE);
    head.writeUInt32LE(flags, at + P_FLAGS);
    head.writeBigUInt64LE(BigInt(offset), at + P_OFFSET);
    head.writeBigUInt64LE(vaddr, at + P_VADDR);
    head.writeBigUInt64LE(BigInt(paddr), at + P_PADDR);
    head.writeBigUInt64LE(BigInt(size), at + P_FILESZ);
    head.writeBigUInt64LE(BigInt(size), at + P_MEMSZ);
  };
  phdr(0, PT_NOTE, 0, layout.noteOffset, 0n, 0, notes.length);
  layout.loads.forEach((l, i) => phdr(i + 1, PT_LOAD, PF_R | PF_W | PF_X, l.offset, l.vaddr, l.paddr, l.size));
  notes.copy(head, layout.noteOffset);
  return head;
}

/** File offset of a frame's page inside a PT_LOAD's page-rounded file image, or −1. */
function pageOffset(loads: readonly VmcoreLoad[], frame: number): number {
  const addr = frame * PAGE_SIZE;
  let lo = 0;
  let hi = loads.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const l = loads[mid]!;
    const first = Math.floor(l.paddr / PAGE_SIZE) * PAGE_SIZE;
    if (addr < first) hi = mid - 1;
    else if (addr >= roundUp(l.paddr + l.size, PAGE_SIZE)) lo = mid + 1;
    else return l.offset - (l.paddr - first) + (addr - first);
  }
  return -1;
}

export interface WriteVmcoreOptions extends Dom0KdumpOptions {
  overwrite?: boolean;
}

export interface WriteVmcoreResult extends VmcoreLayout {
  /** frames written (every frame the emulated machine holds) */
  frames: number;
  crashRegion: MachineRange;
}

/**
 * Write an emulated dom0's crash as a Xen kdump vmcore (kdump-host.ts planDom0Kdump decides the crash
 * region, the dumped ranges and the notes). Written through writeOutput (formats/output-file.ts);
 * refuses to replace an existing file unless opts.overwrite.
 */
export function writeVmcore(img: MemoryImage, path: string, opts: WriteVmcoreOptions = {}): WriteVmcoreResult {
  checkOutput(path, { force: opts.overwrite });
  const plan = planDom0Kdump(img, bootFactsOf(img), opts);
  const layout = vmcoreLayout(plan.ranges, plan.notes.length);
  const head = vmcoreHead(layout, plan.notes);
  writeOutput(path, { force: opts.overwrite }, (fd) => {
    fs.ftruncateSync(fd, layout.fileSize); // pages without content stay holes
    writeAllAt(fd, head, 0);
    const batch = Buffer.alloc(WRITE_BATCH_PAGES * PAGE_SIZE);
    let at = -1; // file offset of the batch
    let n = 0;
    const flush = (): void => {
      if (n > 0) writeAllAt(fd, batch, at, n * PAGE_SIZE);
      n = 0;
    };
    for (const frame of plan.frames) {
      const off = pageOffset(layout.loads, frame); // ≥ 0: planDom0Kdump checked every frame lies in a range
      if (n === WRITE_BATCH_PAGES || (n > 0 && off !== at + n * PAGE_SIZE)) flush();
      if (n === 0) at = off;
      img.readFrame(frame)!.copy(batch, n * PAGE_SIZE);
      n++;
    }
    flush();
  });
  return { ...layout, frames: plan.frames.length, crashRegion: plan.crashRegion };
}
