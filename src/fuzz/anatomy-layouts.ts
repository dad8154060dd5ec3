// Format layouts for the anatomy (tolerant: whatever parses is kept): the .p2ms header (src/formats/p2ms.ts
// layout), xc_core ELF section headers and notes (xen-toolstack.md §4), stream record framing (§3); dom0
// kdumps (ELF vmcore, makedumpfile's compressed dump) in anatomy-kdump.ts.
import type { ImageFormat } from '../formats/guest-image.js';
import { P2MS_HEADER_SIZE, P2MS_MAGIC, P2MS_OFF } from '../formats/p2ms.js';
import { isLibxcStream, isXlSave } from '../formats/save-stream.js';
import { isElf } from '../formats/dump-core.js';
import { DHDR_SIZE, DHDR_OFF_PAGE_SHIFT, IHDR_OFF_VERSION, IHDR_SIZE, LIBXL_HDR_OFF_OPTIONS, LIBXL_HDR_OFF_VERSION, LIBXL_HDR_SIZE, LIBXL_REC_TYPE_END, LIBXL_REC_TYPE_LIBXC_CONTEXT, PAGE_DATA_HDR_SIZE, PFN_WORD_SIZE, REC_ALIGN, REC_TYPE_END, REC_TYPE_PAGE_DATA, RHDR_SIZE, XL_HEADER_SIZE, XL_OFF_MANDATORY_FLAGS, XL_OFF_OPTIONAL_DATA_LEN } from '../xen/stream-format.js';
import { E_EHSIZE, E_PHNUM, E_PHOFF, E_SHENTSIZE, E_SHNUM, E_SHOFF, E_SHSTRNDX, ELF64_EHDR_SIZE, ELF64_SHDR_SIZE, N_DESCSZ, N_NAMESZ, N_TYPE, NHDR_SIZE, NOTE_ALIGN, SH_ADDRALIGN, SH_ENTSIZE, SH_NAME, SH_OFFSET, SH_SIZE, SH_TYPE } from '../xen/elf-format.js';
import { HEADER_DESC_SIZE, XCH_NR_PAGES, XCH_NR_VCPUS, XCH_PAGE_SIZE, XEN_DUMPCORE_SEC_NOTE, XEN_DUMPCORE_SEC_PAGES } from '../xen/dump-core-format.js';
import { P2M_ENTRY_SIZE, PAGE_SIZE } from '../xen/abi.js';
import type { BaseReader, IntField, P2msLayout, Region } from './anatomy.js';
import { alignUp, safeNum, U32_BYTES } from './numbers.js';
import { kdumpCompressedAnatomy, vmcoreAnatomy } from './anatomy-kdump.js';

/** Stream record header: type u32, then length u32. */
const RHDR_OFF_LENGTH = 4;
/** Leading u32 words of a small record body offered as fields (vcpu ids, counts, pfn bounds). */
const RECORD_WORDS_AS_FIELDS = 4;
/** Largest record body (or section) kept whole as a region; longer ones contribute their head. */
const REGION_CAP = 64 * 1024;
/** Longest section name read from .shstrtab. */
const MAX_SECTION_NAME = 1024;
/** Cap keeping an anatomy small enough to ship to every child process. */
const MAX_STREAM_RECORDS = 1 << 20;

interface Layout {
  regions: Region[];
  fields: IntField[];
  /** regions holding guest page data (excluded from the generic integer scan) */
  pageData: Region[];
  p2ms: P2msLayout | null;
}

/** .p2ms header field offsets (src/formats/p2ms.ts layout comment). */
const P2MS_FIELDS: [string, number, 4 | 8][] = [
  ['p2ms version', P2MS_OFF.version, 4],
  ['p2ms header length', P2MS_OFF.headerLen, 4],
  ['p2ms metadata offset', P2MS_OFF.metaOffset, 8],
  ['p2ms metadata length', P2MS_OFF.metaLength, 8],
  ['p2ms frame-index offset', P2MS_OFF.indexOffset, 8],
  ['p2ms frame count', P2MS_OFF.count, 8],
  ['p2ms data offset', P2MS_OFF.dataOffset, 8],
  ['p2ms file length', P2MS_OFF.fileLength, 8],
];

function p2msLayout(r: BaseReader): Layout {
  const head = r.read(0, P2MS_HEADER_SIZE);
  const fields: IntField[] = P2MS_FIELDS.map(([name, offset, width]) => ({ name, offset, width, endian: 'le' }));
  const num = (at: number): number => Number(head.readBigUInt64LE(at));
  const layout: P2msLayout = {
    metaOffset: num(P2MS_OFF.metaOffset),
    metaLength: num(P2MS_OFF.metaLength),
    indexOffset: num(P2MS_OFF.indexOffset),
    count: num(P2MS_OFF.count),
    dataOffset: num(P2MS_OFF.dataOffset),
  };
  const regions: Region[] = [
    { name: 'p2ms header', start: 0, length: P2MS_HEADER_SIZE },
    { name: 'p2ms metadata', start: layout.metaOffset, length: layout.metaLength },
    { name: 'p2ms frame index', start: layout.indexOffset, length: layout.count * P2M_ENTRY_SIZE },
  ];
  // index entries: first, last and a few between are frame numbers the reader bounds
  const picks = new Set([0, layout.count - 1, layout.count >> 1, layout.count >> 2]);
  for (const k of picks) {
    if (k >= 0 && k < layout.count) fields.push({ name: `p2ms frame-index entry ${k}`, offset: layout.indexOffset + k * P2M_ENTRY_SIZE, width: 8, endian: 'le' });
  }
  return { regions, fields, pageData: [{ name: 'p2ms frames', start: layout.dataOffset, length: r.size - layout.dataOffset }], p2ms: layout };
}

function xcCoreLayout(r: BaseReader): Layout {
  const regions: Region[] = [{ name: 'ELF header', start: 0, length: ELF64_EHDR_SIZE }];
  const fields: IntField[] = [
    { name: 'e_phoff', offset: E_PHOFF, width: 8, endian: 'le' },
    { name: 'e_shoff', offset: E_SHOFF, width: 8, endian: 'le' },
    { name: 'e_ehsize', offset: E_EHSIZE, width: 2, endian: 'le' },
    { name: 'e_phnum', offset: E_PHNUM, width: 2, endian: 'le' },
    { name: 'e_shentsize', offset: E_SHENTSIZE, width: 2, endian: 'le' },
    { name: 'e_shnum', offset: E_SHNUM, width: 2, endian: 'le' },
    { name: 'e_shstrndx', offset: E_SHSTRNDX, width: 2, endian: 'le' },
  ];
  const pageData: Region[] = [];
  const eh = r.read(0, ELF64_EHDR_SIZE);
  if (eh.length < ELF64_EHDR_SIZE) return { regions, fields, pageData, p2ms: null };
  const shoff = safeNum(eh.readBigUInt64LE(E_SHOFF));
  const shnum = eh.readUInt16LE(E_SHNUM);
  const shstrndx = eh.readUInt16LE(E_SHSTRNDX);
  if (shoff === null || shoff >= r.size) return { regions, fields, pageData, p2ms: null };
  const table = r.read(shoff, shnum * ELF64_SHDR_SIZE);
  regions.push({ name: 'section headers', start: shoff, length: table.length });
  const secs: { name: number; type: number; offset: number; size: number }[] = [];
  for (let i = 0; i * ELF64_SHDR_SIZE + ELF64_SHDR_SIZE <= table.length; i++) {
    const at = i * ELF64_SHDR_SIZE;
    const base = shoff + at;
    secs.push({
      name: table.readUInt32LE(at + SH_NAME),
      type: table.readUInt32LE(at + SH_TYPE),
      offset: Number(table.readBigUInt64LE(at + SH_OFFSET)),
      size: Number(table.readBigUInt64LE(at + SH_SIZE)),
    });
    fields.push(
      { name: `section ${i} sh_name`, offset: base + SH_NAME, width: 4, endian: 'le' },
      { name: `section ${i} sh_offset`, offset: base + SH_OFFSET, width: 8, endian: 'le' },
      { name: `section ${i} sh_size`, offset: base + SH_SIZE, width: 8, endian: 'le' },
      { name: `section ${i} sh_entsize`, offset: base + SH_ENTSIZE, width: 8, endian: 'le' },
      { name: `section ${i} sh_addralign`, offset: base + SH_ADDRALIGN, width: 8, endian: 'le' },
    );
  }
  const strtab = secs[shstrndx];
  const nameOf = (s: { name: number }): string => {
    if (!strtab || strtab.offset >= r.size) return '?';
    const b = r.read(strtab.offset + s.name, MAX_SECTION_NAME);
    const nul = b.indexOf(0);
    return b.subarray(0, nul < 0 ? b.length : nul).toString('latin1');
  };
  secs.forEach((s, i) => {
    if (s.offset >= r.size || s.size <= 0) return;
    const name = nameOf(s);
    if (name === XEN_DUMPCORE_SEC_PAGES) {
      pageData.push({ name, start: s.offset, length: Math.min(s.size, r.size - s.offset) });
      regions.push({ name: `${name} (first page)`, start: s.offset, length: Math.min(PAGE_SIZE, s.size) });
      return;
    }
    regions.push({ name: `section ${i} ${name}`, start: s.offset, length: Math.min(s.size, REGION_CAP * 8) });
    if (name === XEN_DUMPCORE_SEC_NOTE) {
      // notes: namesz, descsz, type; name and descriptor padded to NOTE_ALIGN
      let at = s.offset;
      const end = Math.min(s.offset + s.size, r.size);
      while (at + NHDR_SIZE <= end) {
        const nh = r.read(at, NHDR_SIZE);
        const namesz = nh.readUInt32LE(N_NAMESZ);
        const descsz = nh.readUInt32LE(N_DESCSZ);
        const type = nh.readUInt32LE(N_TYPE);
        fields.push(
          { name: `note @${at} namesz`, offset: at + N_NAMESZ, width: 4, endian: 'le' },
          { name: `note @${at} descsz`, offset: at + N_DESCSZ, width: 4, endian: 'le' },
        );
        const desc = at + NHDR_SIZE + alignUp(namesz, NOTE_ALIGN);
        if (descsz === HEADER_DESC_SIZE && type !== 0) {
          fields.push(
            { name: 'xch_nr_vcpus', offset: desc + XCH_NR_VCPUS, width: 8, endian: 'le' },
            { name: 'xch_nr_pages', offset: desc + XCH_NR_PAGES, width: 8, endian: 'le' },
            { name: 'xch_page_size', offset: desc + XCH_PAGE_SIZE, width: 8, endian: 'le' },
          );
        }
        at = desc + alignUp(descsz, NOTE_ALIGN);
      }
    }
  });
  return { regions, fields, pageData, p2ms: null };
}

function streamLayout(r: BaseReader): Layout {
  const regions: Region[] = [];
  const fields: IntField[] = [];
  const pageData: Region[] = [];
  let at = 0;
  const head = r.read(0, XL_HEADER_SIZE);
  let xl = false;
  if (isXlSave(head)) {
    xl = true;
    regions.push({ name: 'xl header', start: 0, length: XL_HEADER_SIZE });
    fields.push(
      { name: 'xl mandatory_flags', offset: XL_OFF_MANDATORY_FLAGS, width: 4, endian: 'le' },
      { name: 'xl optional_data_len', offset: XL_OFF_OPTIONAL_DATA_LEN, width: 4, endian: 'le' },
    );
    const optLen = head.readUInt32LE(XL_OFF_OPTIONAL_DATA_LEN);
    if (optLen >= 4) fields.push({ name: 'xl config length', offset: XL_HEADER_SIZE, width: 4, endian: 'le' });
    regions.push({ name: 'xl optional data', start: XL_HEADER_SIZE, length: Math.min(optLen, REGION_CAP) });
    at = XL_HEADER_SIZE + optLen;
    regions.push({ name: 'libxl header', start: at, length: LIBXL_HDR_SIZE });
    fields.push({ name: 'libxl version', offset: at + LIBXL_HDR_OFF_VERSION, width: 4, endian: 'be' }, { name: 'libxl options', offset: at + LIBXL_HDR_OFF_OPTIONS, width: 4, endian: 'be' });
    at += LIBXL_HDR_SIZE;
  } else if (!isLibxcStream(head)) {
    return { regions, fields, pageData, p2ms: null };
  }
  const record = (prefix: string, pos: number): { type: number; length: number; body: number; next: number } | null => {
    const h = r.read(pos, RHDR_SIZE);
    if (h.length < RHDR_SIZE) return null;
    const type = h.readUInt32LE(0);
    const length = h.readUInt32LE(RHDR_OFF_LENGTH);
    fields.push({ name: `${prefix} record @${pos} type`, offset: pos, width: 4, endian: 'le' }, { name: `${prefix} record @${pos} length`, offset: pos + RHDR_OFF_LENGTH, width: 4, endian: 'le' });
    regions.push({ name: `${prefix} record header @${pos}`, start: pos, length: RHDR_SIZE });
    return { type, length, body: pos + RHDR_SIZE, next: pos + RHDR_SIZE + alignUp(length, REC_ALIGN) };
  };
  const libxc = (start: number): number => {
    regions.push({ name: 'libxc image header', start, length: IHDR_SIZE }, { name: 'libxc domain header', start: start + IHDR_SIZE, length: DHDR_SIZE });
    fields.push({ name: 'libxc version', offset: start + IHDR_OFF_VERSION, width: 4, endian: 'be' }, { name: 'libxc page_shift', offset: start + IHDR_SIZE + DHDR_OFF_PAGE_SHIFT, width: 2, endian: 'le' });
    let pos = start + IHDR_SIZE + DHDR_SIZE;
    for (let n = 0; n < MAX_STREAM_RECORDS && pos < r.size; n++) {
      const rec = record('libxc', pos);
      if (!rec) break;
      if (rec.type === REC_TYPE_PAGE_DATA) {
        const count = r.read(rec.body, U32_BYTES);
        if (count.length === U32_BYTES) {
          const c = count.readUInt32LE(0);
          fields.push({ name: `PAGE_DATA @${pos} count`, offset: rec.body, width: 4, endian: 'le' });
          regions.push({ name: `PAGE_DATA @${pos} pfns`, start: rec.body, length: Math.min(PAGE_DATA_HDR_SIZE + c * PFN_WORD_SIZE, REGION_CAP) });
          const dataStart = rec.body + PAGE_DATA_HDR_SIZE + c * PFN_WORD_SIZE;
          pageData.push({ name: `PAGE_DATA @${pos} pages`, start: dataStart, length: Math.max(0, rec.body + rec.length - dataStart) });
        }
      } else if (rec.length > 0) {
        regions.push({ name: `libxc record type ${rec.type} @${pos} body`, start: rec.body, length: Math.min(rec.length, REGION_CAP) });
        if (rec.length <= REGION_CAP) {
          for (let w = 0; w + U32_BYTES <= Math.min(rec.length, RECORD_WORDS_AS_FIELDS * U32_BYTES); w += U32_BYTES) fields.push({ name: `record type ${rec.type} @${pos} word ${w / U32_BYTES}`, offset: rec.body + w, width: 4, endian: 'le' });
        }
      }
      pos = rec.next;
      if (rec.type === REC_TYPE_END) break;
    }
    return pos;
  };
  if (!xl) {
    libxc(0);
  } else {
    let pos = at;
    for (let n = 0; n < MAX_STREAM_RECORDS && pos < r.size; n++) {
      const rec = record('libxl', pos);
      if (!rec) break;
      if (rec.length > 0) regions.push({ name: `libxl record ${rec.type} body`, start: rec.body, length: Math.min(rec.length, REGION_CAP) });
      pos = rec.next;
      if (rec.type === LIBXL_REC_TYPE_LIBXC_CONTEXT) pos = libxc(pos);
      if (rec.type === LIBXL_REC_TYPE_END) break;
    }
  }
  return { regions, fields, pageData, p2ms: null };
}

export function layoutOf(r: BaseReader, format: ImageFormat): Layout {
  const head = r.read(0, XL_HEADER_SIZE);
  if (format === 'p2ms' && head.subarray(0, P2MS_MAGIC.length).equals(P2MS_MAGIC)) return p2msLayout(r);
  if (format === 'xc-core' && isElf(head)) return xcCoreLayout(r);
  if (format === 'xl-save' || format === 'libxc-stream') return streamLayout(r);
  if (format === 'vmcore' && isElf(head)) return { ...vmcoreAnatomy(r), p2ms: null };
  if (format === 'kdump-compressed') return { ...kdumpCompressedAnatomy(r), p2ms: null };
  return { regions: [], fields: [], pageData: [], p2ms: null };
}
