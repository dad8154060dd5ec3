// Fuzz anatomy of dom0 kdumps (tolerant: whatever parses is kept): the Xen kdump ELF vmcore's header, program
// headers and notes (docs/spec-notes/dom0-kdump.md; fs/proc/vmcore.c layout) and makedumpfile's compressed
// dump's disk_dump_header, kdump_sub_header, notes, bitmaps and page_desc table (diskdump_mod.h;
// docs/spec-notes/kdump-compressed.md). Every length, offset and count the readers trust becomes a field.
import { E_EHSIZE, E_PHENTSIZE, E_PHNUM, E_PHOFF, E_SHNUM, E_SHOFF, ELF64_EHDR_SIZE, ELF64_PHDR_SIZE, N_DESCSZ, N_NAMESZ, N_TYPE, NHDR_SIZE, NOTE_ALIGN, P_FILESZ, P_MEMSZ, P_OFFSET, P_PADDR, P_TYPE, PT_LOAD, PT_NOTE } from '../xen/elf-format.js';
import { CI_XEN_PHYS_START_V2, CRASH_INFO_WORD, XEN_CRASH_INFO_V2_SIZE, XEN_ELFNOTE_CRASH_INFO } from '../xen/kdump-format.js';
import { DH_BITMAP_BLOCKS, DH_BLOCK_SIZE, DH_HEADER_VERSION, DH_MAX_MAPNR, DH_NR_CPUS, DH_STATUS, DH_SUB_HDR_SIZE, DISK_DUMP_HEADER_SIZE, DISKDUMP_HEADER_BLOCKS, KDUMP_SUB_HEADER_SIZE, KH_DUMP_LEVEL, KH_END_PFN_64, KH_MAX_MAPNR_64, KH_OFFSET_ERASEINFO, KH_OFFSET_NOTE, KH_OFFSET_VMCOREINFO, KH_SIZE_ERASEINFO, KH_SIZE_NOTE, KH_SIZE_VMCOREINFO, KH_SPLIT, KH_START_PFN_64, PAGE_DESC_SIZE, PD_FLAGS, PD_OFFSET, PD_SIZE } from '../xen/diskdump-format.js';
import { PAGE_SIZE } from '../xen/abi.js';
import type { BaseReader, IntField, Region } from './anatomy.js';
import { alignUp, safeNum } from './numbers.js';

/** What a kdump layout adds to an anatomy (anatomy-layouts.ts Layout without the .p2ms part). */
export interface KdumpAnatomyLayout {
  regions: Region[];
  fields: IntField[];
  /** regions holding machine page data (excluded from the generic integer scan) */
  pageData: Region[];
}

/** Program headers and notes offered as fields at most (a vmcore has one PT_LOAD per host RAM range). */
const MAX_PHDRS = 256;
const MAX_NOTES = 64;
/** Largest note area or table kept whole as a region. */
const REGION_CAP = 64 * 1024;
/** page_desc entries offered as fields: the first, the last and a few between. */
const DESC_PICKS = 4;
/** Bytes of a bitmap read at a time when counting its set bits. */
const BITMAP_CHUNK = 1 << 20;

const le = (name: string, offset: number, width: 2 | 4 | 8): IntField => ({ name, offset, width, endian: 'le' });

/** Fields of the notes in [start, end): namesz and descsz of each, and crash_xen_info_t's xen_phys_start and frame-list root. */
function noteFields(r: BaseReader, start: number, end: number, fields: IntField[]): void {
  let at = start;
  for (let n = 0; n < MAX_NOTES && at + NHDR_SIZE <= end; n++) {
    const nh = r.read(at, NHDR_SIZE);
    if (nh.length < NHDR_SIZE) return;
    const namesz = nh.readUInt32LE(N_NAMESZ);
    const descsz = nh.readUInt32LE(N_DESCSZ);
    if (namesz === 0 && descsz === 0) return; // fs/proc/vmcore.c stops at an empty header
    fields.push(le(`note @${at} namesz`, at + N_NAMESZ, 4), le(`note @${at} descsz`, at + N_DESCSZ, 4));
    const desc = at + NHDR_SIZE + alignUp(namesz, NOTE_ALIGN);
    if (nh.readUInt32LE(N_TYPE) === XEN_ELFNOTE_CRASH_INFO && descsz >= CRASH_INFO_WORD) {
      fields.push(le('crash_xen_info_t dom0_pfn_to_mfn_frame_list_list', desc + descsz - CRASH_INFO_WORD, 8));
      if (descsz === XEN_CRASH_INFO_V2_SIZE) fields.push(le('crash_xen_info_t xen_phys_start', desc + CI_XEN_PHYS_START_V2, 8));
    }
    at = desc + alignUp(descsz, NOTE_ALIGN);
  }
}

/** The ELF vmcore: header, program headers (offsets, sizes, machine addresses), the PT_NOTE's notes, each PT_LOAD's first page. */
export function vmcoreAnatomy(r: BaseReader): KdumpAnatomyLayout {
  const regions: Region[] = [{ name: 'ELF header', start: 0, length: ELF64_EHDR_SIZE }];
  const fields: IntField[] = [le('e_phoff', E_PHOFF, 8), le('e_shoff', E_SHOFF, 8), le('e_ehsize', E_EHSIZE, 2), le('e_phentsize', E_PHENTSIZE, 2), le('e_phnum', E_PHNUM, 2), le('e_shnum', E_SHNUM, 2)];
  const pageData: Region[] = [];
  const eh = r.read(0, ELF64_EHDR_SIZE);
  if (eh.length < ELF64_EHDR_SIZE) return { regions, fields, pageData };
  const phoff = safeNum(eh.readBigUInt64LE(E_PHOFF));
  const phnum = Math.min(eh.readUInt16LE(E_PHNUM), MAX_PHDRS);
  if (phoff === null || phoff >= r.size) return { regions, fields, pageData };
  const table = r.read(phoff, phnum * ELF64_PHDR_SIZE);
  regions.push({ name: 'program headers', start: phoff, length: table.length });
  for (let i = 0; (i + 1) * ELF64_PHDR_SIZE <= table.length; i++) {
    const at = i * ELF64_PHDR_SIZE;
    const base = phoff + at;
    const type = table.readUInt32LE(at + P_TYPE);
    fields.push(le(`segment ${i} p_type`, base + P_TYPE, 4), le(`segment ${i} p_offset`, base + P_OFFSET, 8), le(`segment ${i} p_paddr`, base + P_PADDR, 8), le(`segment ${i} p_filesz`, base + P_FILESZ, 8), le(`segment ${i} p_memsz`, base + P_MEMSZ, 8));
    const offset = safeNum(table.readBigUInt64LE(at + P_OFFSET));
    const filesz = safeNum(table.readBigUInt64LE(at + P_FILESZ));
    if (offset === null || filesz === null || offset >= r.size || filesz === 0) continue;
    const length = Math.min(filesz, r.size - offset);
    if (type === PT_NOTE) {
      regions.push({ name: `segment ${i} notes`, start: offset, length: Math.min(length, REGION_CAP) });
      noteFields(r, offset, offset + length, fields);
    } else if (type === PT_LOAD) {
      regions.push({ name: `segment ${i} (PT_LOAD) first page`, start: offset, length: Math.min(length, PAGE_SIZE) });
      pageData.push({ name: `segment ${i} (PT_LOAD)`, start: offset, length });
    }
  }
  return { regions, fields, pageData };
}

/** makedumpfile's compressed dump: both headers, the notes, the bitmaps' heads, the page_desc table's head and a few entries. */
export function kdumpCompressedAnatomy(r: BaseReader): KdumpAnatomyLayout {
  const regions: Region[] = [{ name: 'disk_dump_header', start: 0, length: DISK_DUMP_HEADER_SIZE }];
  const fields: IntField[] = [
    le('header_version', DH_HEADER_VERSION, 4),
    le('status', DH_STATUS, 4),
    le('block_size', DH_BLOCK_SIZE, 4),
    le('sub_hdr_size', DH_SUB_HDR_SIZE, 4),
    le('bitmap_blocks', DH_BITMAP_BLOCKS, 4),
    le('max_mapnr', DH_MAX_MAPNR, 4),
    le('nr_cpus', DH_NR_CPUS, 4),
  ];
  const pageData: Region[] = [];
  const dh = r.read(0, DISK_DUMP_HEADER_SIZE);
  if (dh.length < DISK_DUMP_HEADER_SIZE) return { regions, fields, pageData };
  const block = dh.readInt32LE(DH_BLOCK_SIZE);
  const subBlocks = dh.readInt32LE(DH_SUB_HDR_SIZE);
  const bitmapBlocks = dh.readUInt32LE(DH_BITMAP_BLOCKS);
  if (block <= 0 || block > 1 << 20 || subBlocks < 0) return { regions, fields, pageData };
  const sub = DISKDUMP_HEADER_BLOCKS * block;
  regions.push({ name: 'kdump_sub_header', start: sub, length: KDUMP_SUB_HEADER_SIZE });
  const subFields: [string, number, 4 | 8][] = [
    ['dump_level', KH_DUMP_LEVEL, 4],
    ['split', KH_SPLIT, 4],
    ['offset_vmcoreinfo', KH_OFFSET_VMCOREINFO, 8],
    ['size_vmcoreinfo', KH_SIZE_VMCOREINFO, 8],
    ['offset_note', KH_OFFSET_NOTE, 8],
    ['size_note', KH_SIZE_NOTE, 8],
    ['offset_eraseinfo', KH_OFFSET_ERASEINFO, 8],
    ['size_eraseinfo', KH_SIZE_ERASEINFO, 8],
    ['start_pfn_64', KH_START_PFN_64, 8],
    ['end_pfn_64', KH_END_PFN_64, 8],
    ['max_mapnr_64', KH_MAX_MAPNR_64, 8],
  ];
  for (const [name, off, width] of subFields) fields.push(le(name, sub + off, width));
  const sh = r.read(sub, KDUMP_SUB_HEADER_SIZE);
  if (sh.length === KDUMP_SUB_HEADER_SIZE) {
    const noteAt = safeNum(sh.readBigUInt64LE(KH_OFFSET_NOTE));
    const noteSize = safeNum(sh.readBigUInt64LE(KH_SIZE_NOTE));
    if (noteAt !== null && noteSize !== null && noteAt < r.size) {
      const end = Math.min(r.size, noteAt + noteSize);
      regions.push({ name: 'notes', start: noteAt, length: Math.min(end - noteAt, REGION_CAP) });
      noteFields(r, noteAt, end, fields);
    }
  }
  const bitmap1 = (DISKDUMP_HEADER_BLOCKS + subBlocks) * block;
  const half = (bitmapBlocks / 2) * block;
  if (bitmap1 >= r.size) return { regions, fields, pageData };
  regions.push({ name: '1st bitmap (head)', start: bitmap1, length: Math.min(half, REGION_CAP) }, { name: '2nd bitmap (head)', start: bitmap1 + half, length: Math.min(half, REGION_CAP) });
  // the page_desc table: one entry per set bit of the 2nd bitmap; counted here from the bitmap itself
  const descAt = bitmap1 + bitmapBlocks * block;
  if (descAt >= r.size) return { regions, fields, pageData };
  const dumped = countBits(r, bitmap1 + half, half);
  const tableEnd = Math.min(r.size, descAt + dumped * PAGE_DESC_SIZE);
  regions.push({ name: 'page_desc table (head)', start: descAt, length: Math.min(tableEnd - descAt, REGION_CAP) });
  const picks = new Set([0, dumped - 1, dumped >> 1, dumped >> 2].slice(0, DESC_PICKS));
  for (const k of picks) {
    const at = descAt + k * PAGE_DESC_SIZE;
    if (k < 0 || at + PAGE_DESC_SIZE > r.size) continue;
    fields.push(le(`page_desc ${k} offset`, at + PD_OFFSET, 8), le(`page_desc ${k} size`, at + PD_SIZE, 4), le(`page_desc ${k} flags`, at + PD_FLAGS, 4));
  }
  pageData.push({ name: 'page data', start: tableEnd, length: r.size - tableEnd });
  return { regions, fields, pageData };
}

/** Set bits in [start, start + length) of the file, read in chunks (bounded memory). */
function countBits(r: BaseReader, start: number, length: number): number {
  let n = 0;
  for (let at = start; at < start + length && at < r.size; at += BITMAP_CHUNK) {
    const b = r.read(at, Math.min(BITMAP_CHUNK, start + length - at));
    if (b.length === 0) break;
    for (const byte of b) {
      let v = byte;
      while (v) {
        v &= v - 1;
        n++;
      }
    }
  }
  return n;
}
