// Hostile-input mutations for the fuzz harness (docs/fuzz.md): a deterministic PRNG, the "anatomy" of a
// corpus image (where its length fields, shared_info copies, frame lists, page tables and kernel variables
// sit in the file, found by opening the unmodified image with the project's own readers and walks), and the
// mutation classes that turn (anatomy, seed) into a Patch.
//
// A mutant is a pure function of (corpus file, global seed, mutant id): the harness's child processes
// generate it where they run it, and the parent regenerates it byte for byte to write a reproducer.
//
// A Patch is either a list of byte edits plus an optional new length (applied in place to a working copy of
// the base file and undone afterwards, so a 100 MB dump costs a few KiB of I/O per mutant), or a whole new
// file (`replace`) for structure rewrites of small .p2ms snapshots (metadata values, frames dropped/added).
//
// Sources for the structures: xen-toolstack.md §1 (map_p2m_tree / map_p2m_list: FLL → frame-list pages →
// leaves; p2m_cr3 → L4..L1), §2 (arch_shared_info offsets), §3 (stream record framing), §4 (xc_core ELF),
// src/image/p2ms.ts (header layout), Intel SDM vol. 3A §4.5 (PTE P/PS bits, 52-bit physical frames).
import * as fs from 'node:fs';
import { pack, unpack } from 'msgpackr';
import type { GuestView, ToolstackView } from '../audit/leaf-map.js';
import { readGuestView } from '../guest/guest-view.js';
import type { GuestImage, ImageFormat, SymbolTable } from '../image/guest-image.js';
import { openImage } from '../image/open-image.js';
import { P2MS_HEADER_SIZE, P2MS_MAGIC, P2MS_OFF, p2msLayout as fileLayout, writeP2msHead } from '../image/p2ms.js';
import { isWalkFailure, readVirtU64, translate } from '../image/pagewalk.js';
import {
  DHDR_SIZE,
  DHDR_OFF_PAGE_SHIFT,
  IHDR_OFF_VERSION,
  IHDR_SIZE,
  LIBXL_HDR_OFF_OPTIONS,
  LIBXL_HDR_OFF_VERSION,
  LIBXL_HDR_SIZE,
  LIBXL_REC_TYPE_END,
  LIBXL_REC_TYPE_LIBXC_CONTEXT,
  PAGE_DATA_HDR_SIZE,
  PFN_WORD_SIZE,
  REC_ALIGN,
  REC_TYPE_END,
  REC_TYPE_PAGE_DATA,
  RHDR_SIZE,
  XL_HEADER_SIZE,
  XL_OFF_MANDATORY_FLAGS,
  XL_OFF_OPTIONAL_DATA_LEN,
  isLibxcStream,
  isXlSave,
} from '../image/stream-v2.js';
import {
  E_EHSIZE,
  E_PHNUM,
  E_PHOFF,
  E_SHENTSIZE,
  E_SHNUM,
  E_SHOFF,
  E_SHSTRNDX,
  ELF64_EHDR_SIZE,
  ELF64_SHDR_SIZE,
  HEADER_DESC_SIZE,
  NHDR_SIZE,
  NOTE_ALIGN,
  SH_ADDRALIGN,
  SH_ENTSIZE,
  SH_NAME,
  SH_OFFSET,
  SH_SIZE,
  SH_TYPE,
  XCH_NR_PAGES,
  XCH_NR_VCPUS,
  XCH_PAGE_SIZE,
  XEN_DUMPCORE_SEC_NOTE,
  XEN_DUMPCORE_SEC_PAGES,
  isElf,
} from '../image/xc-core.js';
import { mapP2m } from '../toolstack/toolstack-view.js';
import {
  _PAGE_PRESENT,
  _PAGE_PSE,
  ARCH_MAX_PFN_OFFSET,
  ARCH_NMI_REASON_OFFSET,
  ARCH_P2M_CR3_OFFSET,
  ARCH_P2M_GENERATION_OFFSET,
  ARCH_P2M_VADDR_OFFSET,
  ARCH_PFN_TO_MFN_FRAME_LIST_LIST_OFFSET,
  FOREIGN_FRAME_BIT,
  IDENTITY_FRAME_BIT,
  L1_SHIFT,
  L2_SHIFT,
  L3_SHIFT,
  L4_SHIFT,
  MAX_P2M_PFN,
  P2M_ENTRY_SIZE,
  P2M_PER_PAGE,
  P2M_PFNS_PER_TOP,
  PAGE_SHIFT,
  PAGE_SIZE,
  PT_LEVELS_64,
  PTE_SIZE,
  PTRS_PER_TABLE,
  START_INFO_NR_PAGES_OFFSET,
  START_KERNEL_MAP,
  E820_RAM,
  E820_RESERVED,
  GiB,
  XEN_VIRT_HOLE_END,
  XEN_VIRT_HOLE_START,
  hex,
} from '../xen/abi.js';

// ---- numbers -------------------------------------------------------------------------------------------
const U32_LIMIT = 2 ** 32;
const U32_BYTES = 4;
/** Elf64_Nhdr: descsz and type follow namesz (u32 each). */
const NOTE_OFF_DESCSZ = 4;
const NOTE_OFF_TYPE = 8;
/** Stream record header: type u32, then length u32. */
const RHDR_OFF_LENGTH = 4;
/** Leading u32 words of a small record body offered as fields (vcpu ids, counts, pfn bounds). */
const RECORD_WORDS_AS_FIELDS = 4;
const U64_MAX = (1n << 64n) - 1n;
const BITS_PER_BYTE = 8;
const BYTE_VALUES = 256;
/** 2^53: the first integer a JS number cannot hold exactly next to its neighbours. */
const TWO_POW_53 = 1n << 53n;
/** x86-64 physical addresses have 52 bits: the largest frame a PTE can name is 2^40 − 1. */
const PADDR_BITS = 52;
const MAX_PTE_FRAME = (1n << BigInt(PADDR_BITS - PAGE_SHIFT)) - 1n;
/** PTE frame field: bits 12..51. */
const PTE_FRAME_MASK = MAX_PTE_FRAME << BigInt(PAGE_SHIFT);
/** PTE bits that are neither flags nor frame (52..62: ignored/protection keys) and NX (63). */
const PTE_HIGH_BITS = U64_MAX ^ PTE_FRAME_MASK ^ BigInt(PAGE_SIZE - 1);
/** Lowest non-canonical VA (bit 47 set, bits 63..48 clear) and other VA landmarks. */
const VA_NONCANONICAL_LOW = 1n << 47n;
const VA_SIGN_ONLY = 1n << 63n;
/** Entries per page of u64 words. */
const U64_PER_PAGE = PAGE_SIZE / P2M_ENTRY_SIZE;
/** A p2m_top / mid page holds 512 pointers. */
const PTR_SIZE = P2M_ENTRY_SIZE;
/** File chunk used when scanning a base file for a byte pattern. */
const SCAN_CHUNK = 16 * 1024 * 1024;
/** Bytes of a file's head used as a fallback region when its format cannot be laid out. */
const HEAD_REGION = 64 * 1024;
/** Largest record body (or section) kept whole as a region; longer ones contribute their head. */
const REGION_CAP = 64 * 1024;
/** Longest section name read from .shstrtab. */
const MAX_SECTION_NAME = 1024;
/** Share of random offsets drawn inside an interesting region (the rest: anywhere in the file). */
const IN_REGION_SHARE = 0.8;
/** Share of truncations cut at a landmark (region/field boundary) rather than anywhere. */
const LANDMARK_CUT_SHARE = 0.7;
/** Largest random extension. */
const MAX_EXTENSION = 64 * 1024;
/** Share of leaf mutations that overwrite the whole leaf page, and of splices that move whole pages. */
const WHOLE_LEAF_SHARE = 0.3;
/** Share of those that alternate entries instead of filling the page. */
const ALTERNATING_SHARE = 0.5;
const PAGE_SPLICE_SHARE = 0.7;
/** Share of guest-tree mutations aimed at a mid page (the rest: the top page). */
const MID_PAGE_SHARE = 0.5;
/** Frames in a 1 GiB leaf (PS at L3): its frame must be aligned to this. */
const FRAMES_PER_1G = 1n << BigInt(L3_SHIFT - PAGE_SHIFT);
/** Caps keeping an anatomy small enough to ship to every child process. */
const MAX_STRUCTURE_SITES = 256;
const MAX_LEAF_SITES = 16;
const MAX_GENERIC_INTS = 1024;
const MAX_VARS = 48;
const MAX_STREAM_RECORDS = 1 << 20;
/** A value "looks like a length/offset/count" when it is in [1, LENGTH_LIKE_FACTOR × file size]. */
const LENGTH_LIKE_FACTOR = 2;
/** Kernel variables the guest view reads (guest-view.ts) and the p2m code's other globals. */
const KERNEL_VARS = [
  'max_pfn',
  'xen_max_p2m_pfn',
  'xen_p2m_size',
  'xen_p2m_last_pfn',
  'xen_p2m_addr',
  'xen_start_info',
  'page_offset_base',
  'p2m_top',
  'p2m_mid_missing',
  'p2m_missing',
  'p2m_identity',
  'p2m_top_mfn',
  'p2m_top_mfn_p',
];
/** Symbol names containing this are also treated as p2m variables. */
const P2M_NAME_PART = 'p2m';

// ---- deterministic PRNG --------------------------------------------------------------------------------
/** splitmix32: golden-ratio increment and the two multipliers of its 32-bit finaliser (Vigna / Ettinger). */
const SPLITMIX_GAMMA = 0x9e3779b9;
const SPLITMIX_MUL1 = 0x21f0aaad;
const SPLITMIX_MUL2 = 0x735a2d97;
/** Mixes the mutant id into the seed (murmur3's c1 multiplier). */
const STREAM_MUL = 0x85ebca6b;
/** FNV-1a 32-bit offset basis and prime. */
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
/** sfc32 outputs discarded after seeding (its authors' recommendation). */
const SFC32_WARMUP = 12;

/** splitmix32 step, used to seed sfc32. */
function splitmix32(state: number): [number, number] {
  const s = (state + SPLITMIX_GAMMA) >>> 0;
  let z = s;
  z = Math.imul(z ^ (z >>> 16), SPLITMIX_MUL1);
  z = Math.imul(z ^ (z >>> 15), SPLITMIX_MUL2);
  return [s, (z ^ (z >>> 15)) >>> 0];
}

/** Turn a --seed argument (a number or any string) into a u32. FNV-1a for strings. */
export function seedFrom(value: string | number): number {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return value >>> 0;
  const s = String(value);
  if (/^\d+$/.test(s) && Number.isSafeInteger(Number(s))) return Number(s) >>> 0;
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME) >>> 0;
  return h;
}

/** sfc32 (Chris Doty-Humphrey's small fast counting generator), seeded from (seed, stream). */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d = 1;

  constructor(seed: number, stream = 0) {
    let st = (seed ^ Math.imul(stream >>> 0, STREAM_MUL)) >>> 0;
    let v: number;
    [st, v] = splitmix32(st);
    this.a = v;
    [st, v] = splitmix32(st ^ (stream >>> 0));
    this.b = v;
    [st, v] = splitmix32(st + Math.floor(stream / U32_LIMIT));
    this.c = v;
    for (let i = 0; i < SFC32_WARMUP; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** uniform integer in [0, n) for 0 < n ≤ 2^53 */
  below(n: number): number {
    if (n <= 0) return 0;
    if (n <= U32_LIMIT) return Math.floor((this.u32() / U32_LIMIT) * n);
    return Math.floor(((this.u32() * U32_LIMIT + this.u32()) / (U32_LIMIT * U32_LIMIT)) * n);
  }

  /** uniform integer in [lo, hi] */
  range(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.u32() / U32_LIMIT < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.pick: empty list');
    return items[this.below(items.length)]!;
  }

  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & (BYTE_VALUES - 1);
    return b;
  }

  /** pick by weight; items with weight ≤ 0 are never chosen */
  weighted<T>(items: readonly (readonly [T, number])[]): T {
    let total = 0;
    for (const [, w] of items) if (w > 0) total += w;
    let r = (this.u32() / U32_LIMIT) * total;
    for (const [item, w] of items) {
      if (w <= 0) continue;
      if (r < w) return item;
      r -= w;
    }
    return items.find(([, w]) => w > 0)![0];
  }
}

// ---- patches -------------------------------------------------------------------------------------------
export interface Edit {
  offset: number;
  bytes: Buffer;
}

/** How a mutant differs from its base file. */
export interface Patch {
  /** whole new content (structure rewrites of small .p2ms files); null = the base file */
  replace: Buffer | null;
  /** byte edits, in order, applied before the length change; edits past the end are clipped */
  edits: Edit[];
  /** final length (truncation, or extension with `fill`), or null when unchanged */
  length: number | null;
  /** bytes appended when `length` exceeds the content length (exactly length − content length) */
  fill: Buffer | null;
}

export interface Mutant {
  /** mutant id (≥ 0), or a negative id for a baseline run of the unmodified file */
  id: number;
  /** mutation classes applied, in order */
  classes: string[];
  /** what was changed, precisely enough to redo it by hand */
  description: string;
  patch: Patch;
}

/** Apply a patch to the base content in memory (reproducers; small files). */
export function applyPatch(base: Buffer, patch: Patch): Buffer {
  let out = Buffer.from(patch.replace ?? base);
  for (const e of patch.edits) {
    if (e.offset >= out.length) continue;
    e.bytes.copy(out, e.offset, 0, Math.min(e.bytes.length, out.length - e.offset));
  }
  if (patch.length !== null && patch.length !== out.length) {
    if (patch.length < out.length) out = out.subarray(0, patch.length);
    else out = Buffer.concat([out, patch.fill ?? Buffer.alloc(patch.length - out.length)]).subarray(0, patch.length);
  }
  return out;
}

// ---- anatomy -------------------------------------------------------------------------------------------
/** A byte range worth mutating (headers, metadata, structure pages, record bodies). */
export interface Region {
  name: string;
  start: number;
  length: number;
}

/** A format-aware integer field (a length, offset, count or bound the reader trusts). */
export interface IntField {
  name: string;
  offset: number;
  width: 1 | 2 | 4 | 8;
  endian: 'le' | 'be';
}

/** A frame of the image and where its 4096 bytes sit in the file. */
export interface FrameSite {
  role: string;
  frame: number;
  offset: number;
}

/** One table read on a page walk: the entry at `index` of table `table` (level 4..1). */
export interface PtStep {
  walk: string;
  va: bigint;
  level: number;
  table: number;
  tableOffset: number;
  index: number;
  entry: bigint;
}

/** A kernel variable's 8 bytes in the file. */
export interface VarSite {
  name: string;
  va: bigint;
  offset: number;
  value: bigint;
}

export interface FrameListAnatomy {
  fll: FrameSite;
  /** frame-list pages named by the leading non-zero FLL entries */
  fl: FrameSite[];
}

export interface GuestTreeAnatomy {
  topVa: bigint;
  top: FrameSite;
  mids: { va: bigint; site: FrameSite }[];
  midMissingVa: bigint | null;
  missingVa: bigint | null;
  identityVa: bigint | null;
}

export interface P2msLayout {
  metaOffset: number;
  metaLength: number;
  indexOffset: number;
  count: number;
  dataOffset: number;
}

/** Everything the mutation classes need to know about one base file. Plain data (structured-cloneable). */
export interface Anatomy {
  /** the corpus file as found (for messages) */
  source: string;
  /** the file that is mutated: the corpus file, or its decompressed copy for .gz */
  basePath: string;
  /** extension for reproducers (p2ms, core, save, …) */
  ext: string;
  format: ImageFormat;
  size: number;
  symbolsPath: string | null;
  /** the image's maxFrame, null for Infinity */
  maxFrame: number | null;
  /** highest frame number seen in the structures (a stand-in when maxFrame is unknown) */
  highFrame: number;
  regions: Region[];
  fields: IntField[];
  /** aligned integers outside page data whose value looks like a length/offset/count */
  genericInts: IntField[];
  sharedInfoOffsets: number[];
  structure: FrameSite[];
  leaves: FrameSite[];
  frameList: FrameListAnatomy | null;
  ptSteps: PtStep[];
  vars: VarSite[];
  guestTree: GuestTreeAnatomy | null;
  p2ms: P2msLayout | null;
  /** image facts at analysis time */
  arch: { maxPfn: bigint; fll: bigint; p2mCr3: bigint; p2mVaddr: bigint };
  cr3: bigint;
  /** what the analysis could not find (each part is optional) */
  notes: string[];
}

/** Positional reads of the base file. */
export interface BaseReader {
  readonly size: number;
  read(offset: number, length: number): Buffer;
}

export function fileReader(fd: number, size: number): BaseReader {
  return {
    size,
    read(offset: number, length: number): Buffer {
      const n = Math.max(0, Math.min(length, size - offset));
      const buf = Buffer.alloc(n);
      let done = 0;
      while (done < n) {
        const got = fs.readSync(fd, buf, done, n - done, offset + done);
        if (got === 0) break;
        done += got;
      }
      return buf.subarray(0, done);
    },
  };
}

function safeNum(v: bigint): number | null {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : null;
}

// -- format layouts (tolerant: whatever parses is kept) --
interface Layout {
  regions: Region[];
  fields: IntField[];
  /** regions holding guest page data (excluded from the generic integer scan) */
  pageData: Region[];
  p2ms: P2msLayout | null;
}

/** .p2ms header field offsets (src/image/p2ms.ts layout comment). */
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
        const namesz = nh.readUInt32LE(0);
        const descsz = nh.readUInt32LE(NOTE_OFF_DESCSZ);
        const type = nh.readUInt32LE(NOTE_OFF_TYPE);
        fields.push(
          { name: `note @${at} namesz`, offset: at, width: 4, endian: 'le' },
          { name: `note @${at} descsz`, offset: at + NOTE_OFF_DESCSZ, width: 4, endian: 'le' },
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

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
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

function layoutOf(r: BaseReader, format: ImageFormat): Layout {
  const head = r.read(0, XL_HEADER_SIZE);
  if (format === 'p2ms' && head.subarray(0, P2MS_MAGIC.length).equals(P2MS_MAGIC)) return p2msLayout(r);
  if (format === 'xc-core' && isElf(head)) return xcCoreLayout(r);
  if (format === 'xl-save' || format === 'libxc-stream') return streamLayout(r);
  return { regions: [], fields: [], pageData: [], p2ms: null };
}

/** Offsets of every copy of `needle` in the file (chunked scan; bounded memory). */
function findAll(r: BaseReader, needle: Buffer, limit = 8): number[] {
  const out: number[] = [];
  for (let at = 0; at < r.size && out.length < limit; at += SCAN_CHUNK) {
    const chunk = r.read(at, SCAN_CHUNK + needle.length - 1);
    let k = chunk.indexOf(needle);
    while (k >= 0 && out.length < limit) {
      if (k < SCAN_CHUNK) out.push(at + k);
      k = chunk.indexOf(needle, k + 1);
    }
  }
  return [...new Set(out)];
}

function inRegions(offset: number, regions: Region[]): boolean {
  for (const g of regions) if (offset >= g.start && offset < g.start + g.length) return true;
  return false;
}

/** Aligned u32 (LE and BE) and u64 (LE) values in [1, 2·size] inside `regions`, outside page data; sampled evenly. */
function genericInts(r: BaseReader, regions: Region[], pageData: Region[]): IntField[] {
  const found: IntField[] = [];
  const limit = LENGTH_LIKE_FACTOR * r.size;
  for (const g of regions) {
    if (g.name.startsWith('frame ')) continue; // frame contents belong to the structure classes
    const b = r.read(g.start, g.length);
    const first = alignUp(g.start, U32_BYTES) - g.start;
    for (let i = first; i + U32_BYTES <= b.length; i += U32_BYTES) {
      const off = g.start + i;
      if (inRegions(off, pageData)) continue;
      const le = b.readUInt32LE(i);
      const be = b.readUInt32BE(i);
      if (le >= 1 && le <= limit) found.push({ name: `u32le @${off}`, offset: off, width: 4, endian: 'le' });
      else if (be >= 1 && be <= limit) found.push({ name: `u32be @${off}`, offset: off, width: 4, endian: 'be' });
      if (off % P2M_ENTRY_SIZE === 0 && i + P2M_ENTRY_SIZE <= b.length) {
        const q = b.readBigUInt64LE(i);
        if (q >= 1n && q <= BigInt(limit) && q >= BigInt(U32_LIMIT)) found.push({ name: `u64le @${off}`, offset: off, width: 8, endian: 'le' });
      }
    }
  }
  if (found.length <= MAX_GENERIC_INTS) return found;
  const step = found.length / MAX_GENERIC_INTS;
  return Array.from({ length: MAX_GENERIC_INTS }, (_, k) => found[Math.floor(k * step)]!);
}

/** Tables read walking `va` from `cr3Frame` (stops at a non-present entry, a large leaf or an absent table). */
function ptPath(img: GuestImage, walk: string, cr3Frame: number, va: bigint): PtStep[] {
  const steps: PtStep[] = [];
  const shifts = [0, L1_SHIFT, L2_SHIFT, L3_SHIFT, L4_SHIFT];
  let table = cr3Frame;
  for (let level = PT_LEVELS_64; level >= 1; level--) {
    const offset = img.frameOffset(table);
    const page = img.readFrame(table);
    if (offset < 0 || page === null) break;
    const index = Number((va >> BigInt(shifts[level]!)) & BigInt(PTRS_PER_TABLE - 1));
    const entry = page.readBigUInt64LE(index * PTE_SIZE);
    steps.push({ walk, va, level, table, tableOffset: offset, index, entry });
    if ((entry & BigInt(_PAGE_PRESENT)) === 0n) break;
    if (level > 1 && (entry & BigInt(_PAGE_PSE)) !== 0n) break;
    table = Number((entry & PTE_FRAME_MASK) >> BigInt(PAGE_SHIFT));
  }
  return steps;
}

function site(img: GuestImage, role: string, frame: number): FrameSite | null {
  if (!Number.isSafeInteger(frame) || frame < 0) return null;
  const offset = img.frameOffset(frame);
  return offset < 0 ? null : { role, frame, offset };
}

/**
 * Analyse one base file: open it with the project's readers, run both walks, and record where every
 * structure the mutation classes aim at lives in the file. Nothing here throws for a partial result:
 * parts that cannot be found are left empty and listed in `notes`.
 */
export function analyze(source: string, basePath: string, ext: string, format: ImageFormat, symbols: SymbolTable | null, symbolsPath: string | null): Anatomy {
  const fd = fs.openSync(basePath, 'r');
  try {
    const r = fileReader(fd, fs.fstatSync(fd).size);
    const layout = layoutOf(r, format);
    const a: Anatomy = {
      source,
      basePath,
      ext,
      format,
      size: r.size,
      symbolsPath,
      maxFrame: null,
      highFrame: 0,
      regions: [...layout.regions],
      fields: layout.fields,
      genericInts: [],
      sharedInfoOffsets: [],
      structure: [],
      leaves: [],
      frameList: null,
      ptSteps: [],
      vars: [],
      guestTree: null,
      p2ms: layout.p2ms,
      arch: { maxPfn: 0n, fll: 0n, p2mCr3: 0n, p2mVaddr: 0n },
      cr3: 0n,
      notes: [],
    };
    if (a.regions.length === 0) a.regions.push({ name: 'file head', start: 0, length: Math.min(HEAD_REGION, r.size) });
    let img: GuestImage | null = null;
    try {
      img = openImage(basePath, symbols ? { symbols } : {});
    } catch (e) {
      a.notes.push(`the base file does not open (${(e as Error).message}): byte-level classes only`);
    }
    if (img) {
      try {
        analyzeImage(img, a, r);
      } finally {
        img.close();
      }
    }
    a.genericInts = genericInts(r, a.regions, layout.pageData);
    return a;
  } finally {
    fs.closeSync(fd);
  }
}

function analyzeImage(img: GuestImage, a: Anatomy, r: BaseReader): void {
  a.maxFrame = Number.isFinite(img.maxFrame) ? img.maxFrame : null;
  a.arch = { maxPfn: img.arch.maxPfn, fll: img.arch.pfnToMfnFrameListList, p2mCr3: img.arch.p2mCr3, p2mVaddr: img.arch.p2mVaddr };
  a.cr3 = img.cr3;
  const addRegion = (s: FrameSite): void => {
    a.regions.push({ name: `frame ${hex(s.frame)} (${s.role})`, start: s.offset, length: PAGE_SIZE });
    a.highFrame = Math.max(a.highFrame, s.frame);
  };
  if (img.sharedInfo) {
    a.sharedInfoOffsets = findAll(r, img.sharedInfo);
    for (const off of a.sharedInfoOffsets) a.regions.push({ name: 'shared_info copy', start: off, length: PAGE_SIZE });
    if (a.sharedInfoOffsets.length === 0) a.notes.push('shared_info bytes not found in the file');
  } else {
    a.notes.push('no shared_info page');
  }

  let tool: ToolstackView | null = null;
  let guest: GuestView | null = null;
  try {
    tool = mapP2m(img);
  } catch (e) {
    a.notes.push(`toolstack walk threw on the base file: ${(e as Error).message}`);
  }
  try {
    guest = readGuestView(img);
  } catch (e) {
    a.notes.push(`guest view failed on the base file: ${(e as Error).message}`);
  }
  const seen = new Set<number>();
  const addStructure = (role: string, frames: Iterable<number>): void => {
    for (const f of frames) {
      if (a.structure.length >= MAX_STRUCTURE_SITES || seen.has(f)) continue;
      const s = site(img, role, f);
      if (!s) continue;
      seen.add(f);
      a.structure.push(s);
      addRegion(s);
    }
  };
  if (tool) addStructure(`toolstack ${tool.method} structure`, tool.structureFrames);
  if (guest) addStructure(`guest ${guest.layout} structure`, guest.structureFrames);
  const leafSeen = new Set<number>();
  // the shared sentinel leaves first: one page stands for thousands of leaves
  if (guest) {
    for (const [role, f] of [['p2m_missing page (shared)', guest.missingFrame], ['p2m_identity page (shared)', guest.identityFrame]] as const) {
      const s = site(img, role, f);
      if (s && !leafSeen.has(f)) {
        leafSeen.add(f);
        a.leaves.push(s);
      }
    }
  }
  for (const list of [tool?.leafFrames, guest?.leafFrames]) {
    if (!list) continue;
    for (let k = 0; k < list.length && a.leaves.length < MAX_LEAF_SITES; k += Math.max(1, Math.floor(list.length / MAX_LEAF_SITES))) {
      const f = list[k]!;
      if (leafSeen.has(f)) continue;
      const s = site(img, `p2m leaf ${k}`, f);
      if (s) {
        leafSeen.add(f);
        a.leaves.push(s);
      }
    }
  }

  // frame list (tree walk): FLL page and the frame-list pages of its leading non-zero entries
  const fll = img.arch.pfnToMfnFrameListList;
  const fllFrame = safeNum(fll);
  const fllSite = fllFrame === null ? null : site(img, 'frame-list list', fllFrame);
  if (fllSite) {
    const page = img.readFrame(fllSite.frame)!;
    const fl: FrameSite[] = [];
    for (let x = 0; x < U64_PER_PAGE; x++) {
      const v = page.readBigUInt64LE(x * P2M_ENTRY_SIZE);
      if (v === 0n) break;
      const s = safeNum(v) === null ? null : site(img, `frame-list page ${x}`, Number(v));
      if (s && fl.length < MAX_LEAF_SITES) fl.push(s);
    }
    a.frameList = { fll: fllSite, fl };
    addRegion(fllSite);
    fl.forEach(addRegion);
  } else {
    a.notes.push('no frame-list list page in the image');
  }

  // page-table walks: the toolstack's list walk (p2m_cr3 over p2m_vaddr) and the guest's (cr3 over its VAs)
  const cr3Frame = Number(img.cr3 >> BigInt(PAGE_SHIFT));
  const p2mCr3Frame = safeNum(img.arch.p2mCr3 >> BigInt(PAGE_SHIFT));
  if (img.arch.p2mCr3 !== 0n && p2mCr3Frame !== null) {
    const frames = (img.arch.maxPfn + BigInt(P2M_PER_PAGE) - 1n) / BigInt(P2M_PER_PAGE);
    a.ptSteps.push(...ptPath(img, 'p2m list start', p2mCr3Frame, img.arch.p2mVaddr));
    if (frames > 1n) a.ptSteps.push(...ptPath(img, 'p2m list end', p2mCr3Frame, img.arch.p2mVaddr + (frames - 1n) * BigInt(PAGE_SIZE)));
  }
  const symVa = (name: string): bigint | undefined => img.symbols.get(name);
  for (const name of ['xen_p2m_addr', 'p2m_top', 'max_pfn', 'xen_p2m_size']) {
    const va = symVa(name);
    if (va !== undefined) a.ptSteps.push(...ptPath(img, `guest symbol ${name}`, cr3Frame, va));
  }
  const listVa = guest?.vars.p2mAddr;
  if (listVa !== undefined) a.ptSteps.push(...ptPath(img, 'guest linear list', cr3Frame, listVa));
  for (const s of a.ptSteps) {
    if (!seen.has(s.table)) {
      seen.add(s.table);
      addRegion({ role: `L${s.level} table (${s.walk})`, frame: s.table, offset: s.tableOffset });
    }
  }

  // kernel variables reachable through the guest's page tables
  const names = new Set(KERNEL_VARS);
  for (const n of img.symbols.keys()) if (n.includes(P2M_NAME_PART) && names.size < MAX_VARS) names.add(n);
  const varAt = (name: string, va: bigint): void => {
    const t = translate(img, cr3Frame, va);
    if (isWalkFailure(t) || t.offset > PAGE_SIZE - P2M_ENTRY_SIZE) return;
    const off = img.frameOffset(t.frame);
    const page = img.readFrame(t.frame);
    if (off < 0 || page === null) return;
    a.vars.push({ name, va, offset: off + t.offset, value: page.readBigUInt64LE(t.offset) });
  };
  for (const n of names) {
    const va = symVa(n);
    if (va !== undefined) varAt(n, va);
  }
  const si = a.vars.find((v) => v.name === 'xen_start_info');
  if (si && si.value !== 0n) varAt('xen_start_info->nr_pages', si.value + BigInt(START_INFO_NR_PAGES_OFFSET));
  for (const v of a.vars) a.regions.push({ name: `page of ${v.name}`, start: v.offset - (v.offset % PAGE_SIZE), length: PAGE_SIZE });

  // the guest's p2m_top tree (Linux ≤ 3.18)
  const topVar = a.vars.find((v) => v.name === 'p2m_top');
  if (topVar) {
    const t = translate(img, cr3Frame, topVar.value);
    const top = isWalkFailure(t) ? null : site(img, 'p2m_top page', t.frame);
    if (top) {
      const page = img.readFrame(top.frame)!;
      const mids: { va: bigint; site: FrameSite }[] = [];
      for (let i = 0; i < U64_PER_PAGE && mids.length < MAX_LEAF_SITES; i++) {
        const va = page.readBigUInt64LE(i * PTR_SIZE);
        const m = translate(img, cr3Frame, va);
        const s = isWalkFailure(m) ? null : site(img, `p2m mid page (top ${i})`, m.frame);
        if (s && !mids.some((x) => x.site.frame === s.frame)) mids.push({ va, site: s });
      }
      const v = (n: string): bigint | null => {
        const x = symVa(n);
        if (x === undefined) return null;
        const got = readVirtU64(img, cr3Frame, x);
        return typeof got === 'bigint' ? got : null;
      };
      a.guestTree = { topVa: topVar.value, top, mids, midMissingVa: v('p2m_mid_missing'), missingVa: v('p2m_missing'), identityVa: v('p2m_identity') };
      addRegion(top);
      for (const m of mids) addRegion(m.site);
    }
  }
  if (a.maxFrame !== null) a.highFrame = Math.max(a.highFrame, a.maxFrame);
}

// ---- raw .p2ms building (src/image/p2ms.ts layout; accepts metadata writeP2ms would refuse) -------------
/** Build a whole .p2ms file: header, msgpack metadata, frame index, frames (readPage gives each frame's bytes). */
export function buildP2ms(meta: unknown, frames: readonly number[], readPage: (frame: number) => Buffer): Buffer {
  const metaBytes = pack(meta);
  const out = Buffer.alloc(fileLayout(metaBytes.length, frames.length).fileLength);
  const { indexOffset, dataOffset } = writeP2msHead(out, metaBytes, frames.length);
  frames.forEach((f, k) => {
    out.writeUInt32LE(f % U32_LIMIT, indexOffset + k * P2M_ENTRY_SIZE);
    out.writeUInt32LE(Math.floor(f / U32_LIMIT), indexOffset + k * P2M_ENTRY_SIZE + U32_BYTES);
    readPage(f).copy(out, dataOffset + k * PAGE_SIZE, 0, PAGE_SIZE);
  });
  return out;
}

/** The parts of a base .p2ms a rewrite needs: its metadata (decoded fresh per call) and frame list. */
export interface P2msParts {
  metaBlock: Buffer;
  frames: number[];
  pageOf(frame: number): Buffer;
}

export function p2msParts(r: BaseReader, layout: P2msLayout): P2msParts {
  const metaBlock = r.read(layout.metaOffset, layout.metaLength);
  const idx = r.read(layout.indexOffset, layout.count * P2M_ENTRY_SIZE);
  const frames: number[] = [];
  const position = new Map<number, number>();
  for (let k = 0; k * P2M_ENTRY_SIZE < idx.length; k++) {
    const f = Number(idx.readBigUInt64LE(k * P2M_ENTRY_SIZE));
    frames.push(f);
    position.set(f, k);
  }
  // .p2ms corpus files are small (a few MiB): the frames are read once and kept for every rewrite
  const data = r.read(layout.dataOffset, frames.length * PAGE_SIZE);
  const zero = Buffer.alloc(PAGE_SIZE);
  return {
    metaBlock,
    frames,
    pageOf(frame: number): Buffer {
      const k = position.get(frame);
      return k === undefined ? zero : data.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE);
    },
  };
}

// ---- mutation classes ----------------------------------------------------------------------------------
/** What one class produced (null from a class = not applicable to this file). */
interface Change {
  desc: string;
  edits?: Edit[];
  length?: number;
  fill?: Buffer;
  replace?: Buffer;
}

export interface GenContext {
  anatomy: Anatomy;
  base: BaseReader;
  /** lazily computed .p2ms parts (p2ms files only) */
  p2ms(): P2msParts | null;
}

export function genContext(anatomy: Anatomy, base: BaseReader): GenContext {
  let parts: P2msParts | null | undefined;
  return {
    anatomy,
    base,
    p2ms(): P2msParts | null {
      if (parts === undefined) parts = anatomy.p2ms ? p2msParts(base, anatomy.p2ms) : null;
      return parts;
    },
  };
}

type ClassFn = (ctx: GenContext, rng: Rng) => Change | null;

function u64Bytes(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, v));
  return b;
}

function intBytes(v: bigint, width: number, endian: 'le' | 'be'): Buffer {
  const b = Buffer.alloc(width);
  let x = BigInt.asUintN(width * BITS_PER_BYTE, v);
  for (let i = 0; i < width; i++) {
    b[endian === 'le' ? i : width - 1 - i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return b;
}

function readInt(b: Buffer, width: number, endian: 'le' | 'be'): bigint {
  let x = 0n;
  for (let i = 0; i < width; i++) x |= BigInt(b[endian === 'le' ? i : width - 1 - i] ?? 0) << BigInt(i * BITS_PER_BYTE);
  return x;
}

/** A random offset: mostly inside an interesting region, sometimes anywhere in the file. */
function pickOffset(ctx: GenContext, rng: Rng): { offset: number; where: string } {
  const a = ctx.anatomy;
  if (a.regions.length > 0 && rng.chance(IN_REGION_SHARE)) {
    const g = rng.pick(a.regions);
    const len = Math.max(1, Math.min(g.length, a.size - g.start));
    return { offset: Math.min(a.size - 1, g.start + rng.below(len)), where: g.name };
  }
  return { offset: rng.below(a.size), where: 'anywhere' };
}

/** How many bits a bitflip mutant flips (single flips most often). */
const FLIP_COUNTS = [1, 1, 1, 2, 3, 4, 8];

const bitflip: ClassFn = (ctx, rng) => {
  const n = rng.pick(FLIP_COUNTS);
  const edits: Edit[] = [];
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    const { offset, where } = pickOffset(ctx, rng);
    const old = ctx.base.read(offset, 1)[0] ?? 0;
    const bit = rng.below(BITS_PER_BYTE);
    const now = old ^ (1 << bit);
    edits.push({ offset, bytes: Buffer.of(now) });
    parts.push(`@${offset} (${where}) bit ${bit}: ${hex(old)} → ${hex(now)}`);
  }
  return { desc: `bit flip ${parts.join('; ')}`, edits };
};

const byteRun: ClassFn = (ctx, rng) => {
  const { offset, where } = pickOffset(ctx, rng);
  const len = Math.min(ctx.anatomy.size - offset, rng.pick([1, 2, 4, 8, 8, 16, 64, 256, 1024, PAGE_SIZE]));
  const mode = rng.pick(['0x00', '0xff', 'random', '0x80']);
  const bytes = mode === 'random' ? rng.bytes(len) : Buffer.alloc(len, mode === '0x00' ? 0 : mode === '0xff' ? 0xff : 0x80);
  return { desc: `byte run @${offset} (${where}) length ${len} set to ${mode}`, edits: [{ offset, bytes }] };
};

const truncate: ClassFn = (ctx, rng) => {
  const a = ctx.anatomy;
  const bounds: number[] = [0, 1, 7, 8, 63, 64, 65, a.size - 1, a.size - 8, a.size - PAGE_SIZE, a.size - PAGE_SIZE + 1, Math.floor(a.size / 2)];
  for (const g of a.regions) bounds.push(g.start, g.start + 1, g.start + g.length - 1, g.start + g.length);
  for (const f of a.fields) bounds.push(f.offset, f.offset + f.width - 1);
  const choice = rng.chance(LANDMARK_CUT_SHARE) ? rng.pick(bounds) : rng.below(a.size);
  const length = Math.max(0, Math.min(a.size - 1, choice));
  return { desc: `truncate to ${length} of ${a.size} bytes`, length };
};

const extend: ClassFn = (ctx, rng) => {
  const n = rng.pick([1, 7, 8, PAGE_SIZE, rng.range(1, MAX_EXTENSION)]);
  const mode = rng.pick(['zeros', '0xff', 'random', 'copy of the head']);
  const fill =
    mode === 'random' ? rng.bytes(n) : mode === 'zeros' ? Buffer.alloc(n) : mode === '0xff' ? Buffer.alloc(n, 0xff) : Buffer.concat([ctx.base.read(0, n), Buffer.alloc(n)]).subarray(0, n);
  return { desc: `append ${n} bytes of ${mode}`, length: ctx.anatomy.size + n, fill };
};

/** New values for a length/offset/count field of `width` bytes holding `v`. */
function inflatedValue(v: bigint, width: number, rng: Rng): { value: bigint; how: string } {
  const max = (1n << BigInt(width * BITS_PER_BYTE)) - 1n;
  const choices: [string, () => bigint][] = [
    ['0', () => 0n],
    ['1', () => 1n],
    ['−1', () => v - 1n],
    ['+1', () => v + 1n],
    ['+8', () => v + 8n],
    ['×2', () => v * 2n],
    ['×4096', () => v * BigInt(PAGE_SIZE)],
    ['×2^20', () => v << 20n],
    ['all ones', () => max],
    ['top bit', () => 1n << BigInt(width * BITS_PER_BYTE - 1)],
    ['2^31', () => 1n << 31n],
    ['2^32 − 1', () => BigInt(U32_LIMIT - 1)],
    ['2^32', () => BigInt(U32_LIMIT)],
    ['2^40', () => 1n << 40n],
    ['2^53 − 1', () => TWO_POW_53 - 1n],
    ['2^53', () => TWO_POW_53],
    ['2^53 + 1', () => TWO_POW_53 + 1n],
    ['<<32', () => v << 32n],
    ['random', () => rng.u64()],
  ];
  const [how, f] = rng.pick(choices);
  return { value: BigInt.asUintN(width * BITS_PER_BYTE, f()), how };
}

function inflateField(ctx: GenContext, rng: Rng, f: IntField, label: string): Change {
  const old = readInt(ctx.base.read(f.offset, f.width), f.width, f.endian);
  const { value, how } = inflatedValue(old, f.width, rng);
  return {
    desc: `${label} ${f.name} (u${f.width * BITS_PER_BYTE}${f.endian} @${f.offset}) ${hex(old)} → ${hex(value)} (${how})`,
    edits: [{ offset: f.offset, bytes: intBytes(value, f.width, f.endian) }],
  };
}

const fieldInflate: ClassFn = (ctx, rng) => {
  const fields = ctx.anatomy.fields.filter((f) => f.offset + f.width <= ctx.anatomy.size);
  return fields.length === 0 ? null : inflateField(ctx, rng, rng.pick(fields), 'length field');
};

const intInflate: ClassFn = (ctx, rng) => {
  const ints = ctx.anatomy.genericInts;
  return ints.length === 0 ? null : inflateField(ctx, rng, rng.pick(ints), 'length-like integer');
};

/** Frame numbers worth pointing at: absent, huge, the structures themselves. */
function framePool(a: Anatomy): { frame: bigint; why: string }[] {
  const pool: { frame: bigint; why: string }[] = [
    { frame: 0n, why: 'frame 0' },
    { frame: 1n, why: 'frame 1' },
    { frame: BigInt(a.highFrame + 1), why: 'one past the highest frame' },
    { frame: BigInt(a.highFrame), why: 'the highest frame' },
    { frame: MAX_PTE_FRAME, why: '2^40 − 1 (largest PTE frame)' },
    { frame: (1n << 52n) - 1n, why: '2^52 − 1' },
    { frame: TWO_POW_53, why: '2^53' },
    { frame: U64_MAX, why: '~0' },
  ];
  if (a.frameList) pool.push({ frame: BigInt(a.frameList.fll.frame), why: 'the FLL page' });
  for (const s of a.frameList?.fl.slice(0, 2) ?? []) pool.push({ frame: BigInt(s.frame), why: s.role });
  for (const s of a.leaves.slice(0, 2)) pool.push({ frame: BigInt(s.frame), why: s.role });
  const l4 = a.ptSteps.find((s) => s.level === PT_LEVELS_64);
  if (l4) pool.push({ frame: BigInt(l4.table), why: `the L4 table (${l4.walk})` });
  return pool;
}

/** shared_info arch field extremes (xen-toolstack.md §2.1). */
const arch: ClassFn = (ctx, rng) => {
  const a = ctx.anatomy;
  if (a.sharedInfoOffsets.length === 0) return null;
  const frames = framePool(a);
  const field = rng.pick(['max_pfn', 'max_pfn', 'fll', 'fll', 'p2m_cr3', 'p2m_cr3', 'p2m_vaddr', 'p2m_vaddr', 'p2m_generation', 'nmi_reason'] as const);
  let at: number;
  let value: bigint;
  let why: string;
  switch (field) {
    case 'max_pfn': {
      at = ARCH_MAX_PFN_OFFSET;
      const cur = a.arch.maxPfn;
      [value, why] = rng.pick<[bigint, string]>([
        [0n, '0 (max_pfn wraps to ~0)'],
        [1n, '1'],
        [BigInt(MAX_P2M_PFN), 'MAX_P2M_PFN (2^27)'],
        [BigInt(MAX_P2M_PFN) + 1n, 'MAX_P2M_PFN + 1'],
        [BigInt(U32_LIMIT), '2^32'],
        [BigInt(U32_LIMIT) + 1n, '2^32 + 1'],
        [1n << 40n, '2^40'],
        [1n << 52n, '2^52'],
        [TWO_POW_53 + 1n, '2^53 + 1'],
        [VA_SIGN_ONLY, '2^63'],
        [U64_MAX, '~0'],
        [cur * 2n, 'twice the real value'],
        [cur + 1n, 'real + 1'],
        [cur + BigInt(P2M_PFNS_PER_TOP), 'one frame-list page more'],
        [cur > 0n ? cur - 1n : 0n, 'real − 1'],
      ]);
      break;
    }
    case 'fll': {
      at = ARCH_PFN_TO_MFN_FRAME_LIST_LIST_OFFSET;
      const f = rng.pick(frames);
      [value, why] = [f.frame, f.why];
      break;
    }
    case 'p2m_cr3': {
      at = ARCH_P2M_CR3_OFFSET;
      const f = rng.pick(frames);
      [value, why] = rng.pick<[bigint, string]>([
        [0n, '0 (switches the toolstack to the tree walk)'],
        [BigInt.asUintN(64, f.frame << BigInt(PAGE_SHIFT)), `names ${f.why}`],
        [a.arch.p2mCr3 | BigInt(PAGE_SIZE - 1), 'real with the low 12 bits set'],
        [U64_MAX, '~0'],
        [a.cr3, "the guest's own cr3"],
      ]);
      break;
    }
    case 'p2m_vaddr': {
      at = ARCH_P2M_VADDR_OFFSET;
      const cur = a.arch.p2mVaddr;
      [value, why] = rng.pick<[bigint, string]>([
        [0n, '0'],
        [VA_NONCANONICAL_LOW, 'non-canonical 2^47'],
        [VA_SIGN_ONLY, 'non-canonical 2^63'],
        [XEN_VIRT_HOLE_START, "Xen's hole start"],
        [XEN_VIRT_HOLE_END + 1n - BigInt(PAGE_SIZE), "the last page of Xen's hole"],
        [U64_MAX - BigInt(PAGE_SIZE) + 1n, 'the last page of the address space (wraps)'],
        [U64_MAX, '~0'],
        [cur + 8n, 'real + 8 (unaligned)'],
        [cur + 1n, 'real + 1'],
        [VA_NONCANONICAL_LOW - BigInt(PAGE_SIZE), 'the last lower-half page (list runs into the hole)'],
        [BigInt.asUintN(64, cur - (1n << BigInt(L4_SHIFT))), 'real − 512 GiB'],
      ]);
      break;
    }
    case 'p2m_generation':
      at = ARCH_P2M_GENERATION_OFFSET;
      [value, why] = rng.pick<[bigint, string]>([
        [1n, 'odd (update in progress)'],
        [U64_MAX, '~0'],
      ]);
      break;
    case 'nmi_reason':
      at = ARCH_NMI_REASON_OFFSET;
      [value, why] = [U64_MAX, '~0'];
      break;
  }
  value = BigInt.asUintN(64, value);
  return {
    desc: `arch.${field} = ${hex(value)} (${why}) in ${a.sharedInfoOffsets.length} shared_info cop${a.sharedInfoOffsets.length === 1 ? 'y' : 'ies'}`,
    edits: a.sharedInfoOffsets.map((o) => ({ offset: o + at, bytes: u64Bytes(value) })),
  };
};

/** Frame-list cycles and bad entries (map_p2m_tree). */
const flCycle: ClassFn = (ctx, rng) => {
  const fl = ctx.anatomy.frameList;
  if (!fl) return null;
  const frames = framePool(ctx.anatomy);
  const entryAt = (s: FrameSite, slot: number): number => s.offset + slot * P2M_ENTRY_SIZE;
  const used = Math.max(1, fl.fl.length);
  const kind = rng.pick(['fll→fll', 'fll→fl', 'fll→x', 'fl→self', 'fl→fll', 'fl→x', 'fll-run', 'fl-all→fll', 'fll-tail']);
  const flPage = fl.fl.length > 0 ? rng.pick(fl.fl) : null;
  const slot = rng.below(used);
  switch (kind) {
    case 'fll→fll':
      return { desc: `FLL entry ${slot} → the FLL page itself (${hex(fl.fll.frame)}): a frame-list cycle`, edits: [{ offset: entryAt(fl.fll, slot), bytes: u64Bytes(BigInt(fl.fll.frame)) }] };
    case 'fll→fl': {
      if (!flPage) return null;
      return { desc: `FLL entry ${slot} → ${flPage.role} (${hex(flPage.frame)}): two FLL slots share a frame-list page`, edits: [{ offset: entryAt(fl.fll, slot), bytes: u64Bytes(BigInt(flPage.frame)) }] };
    }
    case 'fll→x': {
      const f = rng.pick(frames);
      return { desc: `FLL entry ${slot} → ${hex(f.frame)} (${f.why})`, edits: [{ offset: entryAt(fl.fll, slot), bytes: u64Bytes(f.frame) }] };
    }
    case 'fl→self': {
      if (!flPage) return null;
      const s = rng.below(U64_PER_PAGE);
      return { desc: `${flPage.role} entry ${s} → the frame-list page itself (${hex(flPage.frame)}): a leaf that is the frame list`, edits: [{ offset: entryAt(flPage, s), bytes: u64Bytes(BigInt(flPage.frame)) }] };
    }
    case 'fl→fll': {
      if (!flPage) return null;
      const s = rng.below(U64_PER_PAGE);
      return { desc: `${flPage.role} entry ${s} → the FLL page (${hex(fl.fll.frame)})`, edits: [{ offset: entryAt(flPage, s), bytes: u64Bytes(BigInt(fl.fll.frame)) }] };
    }
    case 'fl→x': {
      if (!flPage) return null;
      const s = rng.below(U64_PER_PAGE);
      const f = rng.pick(frames);
      return { desc: `${flPage.role} entry ${s} → ${hex(f.frame)} (${f.why})`, edits: [{ offset: entryAt(flPage, s), bytes: u64Bytes(f.frame) }] };
    }
    case 'fll-run': {
      const v = BigInt(fl.fl[0]?.frame ?? fl.fll.frame);
      const bytes = Buffer.concat(Array.from({ length: U64_PER_PAGE }, () => u64Bytes(v)));
      return { desc: `every FLL entry → ${hex(v)} (one run of identical entries: trimming to slot 0)`, edits: [{ offset: fl.fll.offset, bytes }] };
    }
    case 'fl-all→fll': {
      if (!flPage) return null;
      const bytes = Buffer.concat(Array.from({ length: U64_PER_PAGE }, () => u64Bytes(BigInt(fl.fll.frame))));
      return { desc: `every entry of ${flPage.role} → the FLL page (${hex(fl.fll.frame)})`, edits: [{ offset: flPage.offset, bytes }] };
    }
    default: {
      const s = rng.range(used, U64_PER_PAGE - 1);
      const f = rng.pick(frames);
      return { desc: `FLL entry ${s} (past the used ones) → ${hex(f.frame)} (${f.why})`, edits: [{ offset: entryAt(fl.fll, s), bytes: u64Bytes(f.frame) }] };
    }
  }
};

/** Page-table cycles and bad entries on the walks the views take (map_p2m_list, the guest's translations). */
const ptCycle: ClassFn = (ctx, rng) => {
  const steps = ctx.anatomy.ptSteps;
  if (steps.length === 0) return null;
  const s = rng.pick(steps);
  const flags = s.entry & BigInt(PAGE_SIZE - 1);
  const withFrame = (frame: bigint, f = flags | BigInt(_PAGE_PRESENT)): bigint => ((frame << BigInt(PAGE_SHIFT)) & PTE_FRAME_MASK) | f | (s.entry & PTE_HIGH_BITS);
  const root = steps.find((x) => x.walk === s.walk && x.level === PT_LEVELS_64) ?? s;
  const parent = steps.find((x) => x.walk === s.walk && x.level === s.level + 1);
  const at = s.tableOffset + s.index * PTE_SIZE;
  const where = `L${s.level} entry ${s.index} of table ${hex(s.table)} (${s.walk}, VA ${hex(s.va)})`;
  const kind = rng.pick(['self', 'self', 'root', 'parent', 'pse', 'not-present', 'frame', 'all-ones', 'high-bits', 'table-self', 'l4-all-self']);
  const one = (value: bigint, why: string): Change => ({ desc: `${where}: ${hex(s.entry)} → ${hex(value)} (${why})`, edits: [{ offset: at, bytes: u64Bytes(value) }] });
  switch (kind) {
    case 'self':
      return one(withFrame(BigInt(s.table)), 'points at its own table');
    case 'root':
      return one(withFrame(BigInt(root.table)), `points at the L4 table ${hex(root.table)}`);
    case 'parent':
      return parent ? one(withFrame(BigInt(parent.table)), `points at its parent L${parent.level} table`) : one(withFrame(BigInt(s.table)), 'points at its own table');
    case 'pse': {
      const frame = rng.pick([MAX_PTE_FRAME & ~(FRAMES_PER_1G - 1n), BigInt(s.table), 0n]);
      return one(withFrame(frame, flags | BigInt(_PAGE_PRESENT | _PAGE_PSE)), s.level === PT_LEVELS_64 ? 'reserved PS bit in an L4 entry' : `large leaf at L${s.level} naming ${hex(frame)}`);
    }
    case 'not-present':
      return one(s.entry & ~BigInt(_PAGE_PRESENT), 'present bit cleared');
    case 'frame': {
      const f = rng.pick(framePool(ctx.anatomy));
      return one(withFrame(f.frame), `names ${f.why}`);
    }
    case 'all-ones':
      return one(U64_MAX, 'every bit set');
    case 'high-bits':
      return one(s.entry | PTE_HIGH_BITS, 'bits 52..63 set (ignored bits and NX)');
    case 'table-self': {
      const v = withFrame(BigInt(s.table), BigInt(_PAGE_PRESENT));
      return { desc: `every entry of L${s.level} table ${hex(s.table)} (${s.walk}) → the table itself`, edits: [{ offset: s.tableOffset, bytes: Buffer.concat(Array.from({ length: PTRS_PER_TABLE }, () => u64Bytes(v))) }] };
    }
    default: {
      const v = ((BigInt(root.table) << BigInt(PAGE_SHIFT)) & PTE_FRAME_MASK) | BigInt(_PAGE_PRESENT);
      return { desc: `every L4 entry of ${hex(root.table)} (${root.walk}) → the L4 itself`, edits: [{ offset: root.tableOffset, bytes: Buffer.concat(Array.from({ length: PTRS_PER_TABLE }, () => u64Bytes(v))) }] };
    }
  }
};

/** Kernel variables read through symbols (guest-view.ts readVars / readLinear / readTree). */
const kvar: ClassFn = (ctx, rng) => {
  const vars = ctx.anatomy.vars;
  if (vars.length === 0) return null;
  const v = rng.pick(vars);
  const [value, why] = rng.pick<[bigint, string]>([
    [0n, '0'],
    [1n, '1'],
    [U64_MAX, '~0'],
    [TWO_POW_53, '2^53'],
    [TWO_POW_53 - 1n, '2^53 − 1'],
    [1n << 40n, '2^40'],
    [BigInt(U32_LIMIT), '2^32'],
    [VA_NONCANONICAL_LOW, 'non-canonical 2^47'],
    [U64_MAX - BigInt(PAGE_SIZE) + 1n, 'the last page of the address space'],
    [v.value + 1n, 'real + 1'],
    [v.value + BigInt(PAGE_SIZE - 3), 'real + 4093 (a u64 straddling two pages)'],
    [v.value << 20n, 'real × 2^20'],
    [v.value ^ VA_SIGN_ONLY, 'real with bit 63 flipped'],
  ]);
  const nv = BigInt.asUintN(64, value);
  return { desc: `kernel variable ${v.name} (VA ${hex(v.va)}, file @${v.offset}) ${hex(v.value)} → ${hex(nv)} (${why})`, edits: [{ offset: v.offset, bytes: u64Bytes(nv) }] };
};

/** p2m_top / mid pointer cycles (guest-view.ts readTree). */
const guestTree: ClassFn = (ctx, rng) => {
  const t = ctx.anatomy.guestTree;
  if (!t) return null;
  const mid = t.mids.length > 0 ? rng.pick(t.mids) : null;
  const targets: [bigint, string][] = [
    [t.topVa, 'the p2m_top page'],
    [0n, '0'],
    [VA_NONCANONICAL_LOW, 'non-canonical 2^47'],
    [U64_MAX, '~0'],
    [t.topVa + 8n, 'p2m_top + 8 (unaligned)'],
  ];
  if (mid) targets.push([mid.va, `mid page ${hex(mid.site.frame)}`]);
  if (t.missingVa !== null) targets.push([t.missingVa, 'p2m_missing']);
  if (t.identityVa !== null) targets.push([t.identityVa, 'p2m_identity']);
  if (t.midMissingVa !== null) targets.push([t.midMissingVa, 'p2m_mid_missing']);
  const [value, why] = rng.pick(targets);
  if (mid && rng.chance(MID_PAGE_SHARE)) {
    const slot = rng.below(U64_PER_PAGE);
    return { desc: `mid page ${hex(mid.site.frame)} entry ${slot} → ${hex(value)} (${why})`, edits: [{ offset: mid.site.offset + slot * PTR_SIZE, bytes: u64Bytes(value) }] };
  }
  const slot = rng.below(U64_PER_PAGE);
  return { desc: `p2m_top page ${hex(t.top.frame)} entry ${slot} → ${hex(value)} (${why})`, edits: [{ offset: t.top.offset + slot * PTR_SIZE, bytes: u64Bytes(value) }] };
};

/** p2m leaf entries (the values the audit compares). */
const p2mEntry: ClassFn = (ctx, rng) => {
  const leaves = ctx.anatomy.leaves;
  if (leaves.length === 0) return null;
  const leaf = rng.pick(leaves);
  const slot = rng.below(P2M_PER_PAGE);
  const [value, why] = rng.pick<[bigint, string]>([
    [U64_MAX, 'INVALID_P2M_ENTRY'],
    [(1n << BigInt(IDENTITY_FRAME_BIT)) | BigInt(slot), 'IDENTITY_FRAME'],
    [(1n << BigInt(FOREIGN_FRAME_BIT)) | 1n, 'FOREIGN_FRAME'],
    [(1n << BigInt(FOREIGN_FRAME_BIT)) | (1n << BigInt(IDENTITY_FRAME_BIT)), 'both marker bits'],
    [(1n << 52n) - 1n, '2^52 − 1'],
    [BigInt(leaf.frame), 'the leaf page itself'],
    [0n, '0'],
  ]);
  if (rng.chance(WHOLE_LEAF_SHARE)) {
    if (rng.chance(ALTERNATING_SHARE)) {
      // every other entry changed: up to 512 class ranges per leaf that uses this page
      const page = Buffer.from(ctx.base.read(leaf.offset, PAGE_SIZE));
      for (let k = 1; k < P2M_PER_PAGE; k += 2) page.writeBigUInt64LE(BigInt.asUintN(64, value), k * P2M_ENTRY_SIZE);
      return { desc: `${leaf.role} page ${hex(leaf.frame)}: every odd entry → ${hex(value)} (${why}), fragmenting the classes`, edits: [{ offset: leaf.offset, bytes: page }] };
    }
    const fillByte = rng.pick([0, 0xff]);
    return { desc: `whole ${leaf.role} page ${hex(leaf.frame)} set to ${hex(fillByte)} bytes`, edits: [{ offset: leaf.offset, bytes: Buffer.alloc(PAGE_SIZE, fillByte) }] };
  }
  return { desc: `${leaf.role} page ${hex(leaf.frame)} entry ${slot} → ${hex(value)} (${why})`, edits: [{ offset: leaf.offset + slot * P2M_ENTRY_SIZE, bytes: u64Bytes(value) }] };
};

/**
 * Range bomb: every entry of a guest-list L2 table → one L1 table, every entry of that L1 → one leaf,
 * and that leaf's entries alternating between their value and INVALID. One 4 KiB leaf then stands for up
 * to 2^18 leaves whose classes change at every pfn: the audit's range list grows with the pfn count.
 */
const rangeBomb: ClassFn = (ctx, rng) => {
  const a = ctx.anatomy;
  const l2 = a.ptSteps.filter((s) => s.level === 2 && s.walk === 'guest linear list');
  const l1 = a.ptSteps.filter((s) => s.level === 1 && s.walk === 'guest linear list');
  const leaves = a.leaves.filter((l) => !l.role.includes('shared'));
  if (l2.length === 0 || l1.length === 0 || leaves.length === 0) return null;
  const t2 = rng.pick(l2);
  const t1 = rng.pick(l1);
  const leaf = rng.pick(leaves);
  const pte = (frame: number): bigint => (BigInt(frame) << BigInt(PAGE_SHIFT)) | BigInt(_PAGE_PRESENT);
  const table = (frame: number): Buffer => Buffer.concat(Array.from({ length: PTRS_PER_TABLE }, () => u64Bytes(pte(frame))));
  const page = Buffer.from(ctx.base.read(leaf.offset, PAGE_SIZE));
  for (let k = 1; k < P2M_PER_PAGE; k += 2) page.writeBigUInt64LE(U64_MAX, k * P2M_ENTRY_SIZE);
  return {
    desc: `range bomb: every entry of L2 table ${hex(t2.table)} → L1 table ${hex(t1.table)}, every entry of it → ${leaf.role} ${hex(leaf.frame)}, whose odd entries → INVALID`,
    edits: [
      { offset: t2.tableOffset, bytes: table(t1.table) },
      { offset: t1.tableOffset, bytes: table(leaf.frame) },
      { offset: leaf.offset, bytes: page },
    ],
  };
};

/** Copy one structure page (or a random chunk) over another. */
const splice: ClassFn = (ctx, rng) => {
  const pages = [...ctx.anatomy.structure, ...ctx.anatomy.leaves, ...(ctx.anatomy.frameList ? [ctx.anatomy.frameList.fll] : [])];
  if (pages.length >= 2 && rng.chance(PAGE_SPLICE_SHARE)) {
    const from = rng.pick(pages);
    const to = rng.pick(pages.filter((p) => p.frame !== from.frame));
    return { desc: `page ${hex(to.frame)} (${to.role}) overwritten with page ${hex(from.frame)} (${from.role})`, edits: [{ offset: to.offset, bytes: ctx.base.read(from.offset, PAGE_SIZE) }] };
  }
  const src = pickOffset(ctx, rng);
  const dst = pickOffset(ctx, rng);
  const len = rng.pick([8, 16, 64, 512]);
  return { desc: `${len} bytes from @${src.offset} (${src.where}) copied to @${dst.offset} (${dst.where})`, edits: [{ offset: dst.offset, bytes: ctx.base.read(src.offset, len) }] };
};

// -- .p2ms metadata rewrites (values the type checks accept, and some they must refuse) --
type Meta = Record<string, unknown>;
type MetaEdit = (m: Meta, rng: Rng, a: Anatomy) => string;

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** Counts large enough to stress loops without the mutant file itself growing past a few MiB. */
const MANY = 50_000;

function bootFacts(m: Meta): Meta | null {
  const bf = m.bootFacts;
  return typeof bf === 'object' && bf !== null && !Array.isArray(bf) ? (bf as Meta) : null;
}

const META_EDITS: [string, MetaEdit][] = [
  ['cr3', (m, rng, a) => {
    const f = rng.pick(framePool(a));
    const v = rng.pick([
      '0x0',
      '0xffffffffffffffff',
      hex(BigInt.asUintN(64, f.frame << BigInt(PAGE_SHIFT))),
      hex(a.cr3 | BigInt(PAGE_SIZE - 1)),
      hex(a.arch.p2mCr3),
    ]);
    m.cr3 = v;
    return `metadata cr3 = ${v}`;
  }],
  ['cr3 type', (m, rng) => {
    const v = rng.pick<unknown>([5, null, '0xZZ', '', '0x' + 'f'.repeat(40), '-0x1']);
    m.cr3 = v;
    return `metadata cr3 = ${JSON.stringify(v)}`;
  }],
  ['maxFrame', (m, rng, a) => {
    const v = rng.pick<unknown>([0, 1, null, MAX_SAFE, -1, 0.5, 'x', Math.max(0, a.highFrame - 1), 2 ** 40]);
    m.maxFrame = v;
    return `metadata maxFrame = ${JSON.stringify(v)}`;
  }],
  ['frameSpace', (m, rng) => {
    const v = rng.pick(['pfn', 'mfn', 'xyz']);
    m.frameSpace = v;
    return `metadata frameSpace = ${v}`;
  }],
  ['guestWidth', (m, rng) => {
    const v = rng.pick([4, 0, 16]);
    m.guestWidth = v;
    return `metadata guestWidth = ${v}`;
  }],
  ['symbol drop', (m, rng) => {
    const syms = Array.isArray(m.symbols) ? (m.symbols as unknown[][]) : [];
    if (syms.length === 0) return 'no symbols to drop';
    const k = rng.below(syms.length);
    const name = String(syms[k]![0]);
    m.symbols = syms.filter((_, i) => i !== k);
    return `symbol ${name} removed`;
  }],
  ['symbol value', (m, rng) => {
    const syms = Array.isArray(m.symbols) ? (m.symbols as unknown[][]) : [];
    if (syms.length === 0) return 'no symbols to change';
    const k = rng.below(syms.length);
    const pair = syms[k]!;
    const cur = typeof pair[1] === 'string' && /^0x[0-9a-f]+$/i.test(pair[1]) ? BigInt(pair[1]) : 0n;
    const other = syms[rng.below(syms.length)]![1];
    const v = rng.pick<unknown>([
      '0x0',
      hex(U64_MAX),
      hex(VA_NONCANONICAL_LOW),
      hex(cur + BigInt(PAGE_SIZE - 3)),
      hex(cur + 1n),
      hex(XEN_VIRT_HOLE_START),
      other,
      12345,
      '0x' + '1'.repeat(17),
    ]);
    syms[k] = [pair[0], v];
    return `symbol ${String(pair[0])} = ${JSON.stringify(v)}`;
  }],
  ['symbols shape', (m, rng) => {
    const v = rng.pick<unknown>([null, 'x', [[]], [['only-a-name']], [['a', '0x1', 'extra']], [[1, '0x1']]]);
    m.symbols = v;
    return `metadata symbols = ${JSON.stringify(v)}`;
  }],
  ['symbols many', (m) => {
    const syms = Array.isArray(m.symbols) ? (m.symbols as unknown[][]) : [];
    const junk = Array.from({ length: MANY }, (_, i) => [`junk_${i}`, hex(START_KERNEL_MAP + BigInt(i * PAGE_SIZE))]);
    m.symbols = [...syms, ...junk];
    return `${MANY} extra symbols`;
  }],
  ['sharedInfo', (m, rng) => {
    const v = rng.pick<unknown>([null, Buffer.alloc(PAGE_SIZE - 1), Buffer.alloc(PAGE_SIZE), 'x', Buffer.alloc(PAGE_SIZE, 0xff)]);
    m.sharedInfo = v;
    return `metadata sharedInfo = ${v === null ? 'null' : Buffer.isBuffer(v) ? `${v.length} bytes of ${hex(v[0] ?? 0)}` : JSON.stringify(v)}`;
  }],
  ['bootFacts null', (m) => {
    m.bootFacts = null;
    return 'metadata bootFacts = null';
  }],
  ['bootFacts count', (m, rng) => {
    const bf = bootFacts(m);
    if (!bf) return 'no bootFacts';
    const key = rng.pick(['nrPages', 'maxPages', 'kernelMaxPfn', 'buildBound', 'released', 'seed']);
    const v = rng.pick<unknown>([0, 1, MAX_SAFE, 2 ** 40, -1, 1.5, NaN, Infinity]);
    bf[key] = v;
    return `bootFacts.${key} = ${String(v)}`;
  }],
  ['bootFacts e820', (m, rng) => {
    const bf = bootFacts(m);
    if (!bf) return 'no bootFacts';
    const key = rng.pick(['hostE820', 'kernelE820']);
    const e820 = Array.isArray(bf[key]) ? [...(bf[key] as unknown[])] : [];
    const mode = rng.pick(['huge entry', 'overflowing entry', 'many entries', 'unsorted', 'zero size', 'empty']);
    if (mode === 'huge entry') e820.push({ addr: 0, size: MAX_SAFE, type: E820_RAM });
    else if (mode === 'overflowing entry') e820.push({ addr: MAX_SAFE - 1, size: MAX_SAFE, type: E820_RAM });
    else if (mode === 'many entries') for (let i = 0; i < MANY; i++) e820.push({ addr: i * PAGE_SIZE * 2, size: PAGE_SIZE, type: i % 2 === 0 ? E820_RAM : E820_RESERVED });
    else if (mode === 'unsorted') e820.reverse().push({ addr: 0, size: GiB, type: E820_RESERVED });
    else if (mode === 'zero size') e820.push({ addr: U32_LIMIT, size: 0, type: E820_RAM });
    else e820.length = 0;
    bf[key] = e820;
    return `bootFacts.${key}: ${mode}`;
  }],
  ['bootFacts ranges', (m, rng) => {
    const bf = bootFacts(m);
    if (!bf) return 'no bootFacts';
    const key = rng.pick(['identity', 'extraRegions']);
    const ranges = Array.isArray(bf[key]) ? [...(bf[key] as unknown[])] : [];
    const r = rng.pick([
      { start: 0, end: MAX_SAFE },
      { start: 10, end: 5 },
      { start: MAX_SAFE - 1, end: MAX_SAFE },
      { start: 0, end: 2 ** 40 },
    ]);
    ranges.push(r);
    bf[key] = ranges;
    return `bootFacts.${key} += ${JSON.stringify(r)}`;
  }],
  ['bootFacts remapped', (m, rng) => {
    const bf = bootFacts(m);
    if (!bf) return 'no bootFacts';
    const rec = rng.pick([
      { from: { start: 0, end: MAX_SAFE }, to: { start: 0, end: MAX_SAFE }, how: 'remap' },
      { from: { start: 100, end: 50 }, to: { start: 0, end: 2 ** 40 }, how: 'populate' },
      { from: { start: 0, end: 1 }, to: { start: MAX_SAFE - 1, end: MAX_SAFE }, how: 'remap' },
    ]);
    bf.remapped = [...(Array.isArray(bf.remapped) ? bf.remapped : []), rec];
    return `bootFacts.remapped += ${JSON.stringify(rec)}`;
  }],
  ['bootFacts history', (m, rng) => {
    const bf = bootFacts(m);
    if (!bf) return 'no bootFacts';
    const v = rng.pick<unknown[]>([[], [{ value: MAX_SAFE, by: 'x' }], Array.from({ length: MANY }, (_, i) => ({ value: i, by: 'step' }))]);
    bf.xenMaxP2mPfnHistory = v;
    return `bootFacts.xenMaxP2mPfnHistory = ${v.length} entries`;
  }],
  ['bootFacts strings', (m, rng) => {
    const bf = bootFacts(m);
    if (!bf) return 'no bootFacts';
    const mode = rng.pick(['profile', 'messages', 'config', 'dom0Mem', 'role']);
    if (mode === 'profile') bf.profile = rng.pick(['', 'no-such-profile', 'x'.repeat(MANY)]);
    else if (mode === 'messages') bf.messages = Array.from({ length: MANY }, (_, i) => `message ${i}`);
    else if (mode === 'config') bf.config = { dom0_mem: '-1', junk: 'x'.repeat(MANY) };
    else if (mode === 'dom0Mem') bf.dom0Mem = rng.pick(['', 'max:0', '-99999999999999g', '1t,max:2t']);
    else bf.role = 'domX';
    return `bootFacts.${mode} changed`;
  }],
  ['createdBy', (m, rng) => {
    const v = rng.pick<unknown>([7, 'x'.repeat(MANY), null]);
    m.createdBy = v;
    return `metadata createdBy = ${typeof v === 'string' ? `${v.length} chars` : JSON.stringify(v)}`;
  }],
  ['unknown keys', (m) => {
    m.__proto__junk = { a: 1 };
    m.extra = Array.from({ length: 16 }, (_, i) => i);
    return 'unknown metadata keys added';
  }],
];

const p2msMeta: ClassFn = (ctx, rng) => {
  const parts = ctx.p2ms();
  if (!parts) return null;
  const meta = unpack(parts.metaBlock) as Meta;
  const [name, edit] = rng.pick(META_EDITS);
  const what = edit(meta, rng, ctx.anatomy);
  return { desc: `p2ms rewrite (${name}): ${what}`, replace: buildP2ms(meta, parts.frames, (f) => parts.pageOf(f)) };
};

const p2msFrames: ClassFn = (ctx, rng) => {
  const parts = ctx.p2ms();
  if (!parts) return null;
  const meta = unpack(parts.metaBlock) as Meta;
  const a = ctx.anatomy;
  const structure = [...a.structure, ...(a.frameList ? [a.frameList.fll, ...a.frameList.fl] : []), ...a.leaves];
  const mode = rng.pick(['drop structure', 'drop structure', 'drop random', 'add huge', 'add copy', 'drop all']);
  let frames = [...parts.frames];
  let what: string;
  const extra = new Map<number, Buffer>();
  if (mode === 'drop structure' && structure.length > 0) {
    const s = rng.pick(structure);
    frames = frames.filter((f) => f !== s.frame);
    what = `frame ${hex(s.frame)} (${s.role}) dropped from the snapshot`;
  } else if (mode === 'drop random' && frames.length > 0) {
    const f = rng.pick(frames);
    frames = frames.filter((x) => x !== f);
    what = `frame ${hex(f)} dropped from the snapshot`;
  } else if (mode === 'add huge' || mode === 'add copy') {
    const f = rng.pick([MAX_SAFE, 2 ** 52 - 1, 2 ** 40, a.highFrame + 1]);
    const src = structure.length > 0 ? rng.pick(structure) : null;
    const page = mode === 'add copy' && src ? Buffer.from(parts.pageOf(src.frame)) : Buffer.alloc(PAGE_SIZE, rng.pick([0, 0xff]));
    if (!frames.includes(f)) frames.push(f);
    frames.sort((x, y) => x - y);
    extra.set(f, page);
    what = `frame ${hex(f)} added (${mode === 'add copy' && src ? `a copy of ${src.role}` : `filled with ${hex(page[0] ?? 0)}`})`;
  } else {
    frames = [];
    what = 'every frame dropped';
  }
  return { desc: `p2ms rewrite (frames): ${what}`, replace: buildP2ms(meta, frames, (f) => extra.get(f) ?? parts.pageOf(f)) };
};

/** Every mutation class with its default weight. */
export const MUTATION_CLASSES: readonly (readonly [string, ClassFn, number])[] = [
  ['bitflip', bitflip, 10],
  ['byte-run', byteRun, 8],
  ['truncate', truncate, 6],
  ['extend', extend, 2],
  ['field-inflate', fieldInflate, 10],
  ['int-inflate', intInflate, 7],
  ['arch', arch, 10],
  ['fl-cycle', flCycle, 8],
  ['pt-cycle', ptCycle, 10],
  ['kvar', kvar, 9],
  ['guest-tree', guestTree, 5],
  ['p2m-entry', p2mEntry, 4],
  ['range-bomb', rangeBomb, 1],
  ['splice', splice, 4],
  ['p2ms-meta', p2msMeta, 10],
  ['p2ms-frames', p2msFrames, 4],
];

export const CLASS_NAMES: readonly string[] = MUTATION_CLASSES.map(([n]) => n);

/** Classes that only produce edits (safe to stack on one mutant). */
const STACKABLE = new Set(['bitflip', 'byte-run', 'field-inflate', 'int-inflate', 'arch', 'fl-cycle', 'pt-cycle', 'kvar', 'guest-tree', 'p2m-entry', 'range-bomb', 'splice']);
/** Chance that a mutant gets a second (and then a third) stacked edit-only class. */
const STACK_CHANCE = 0.2;
const MAX_CLASS_TRIES = 8;

export interface GenerateOptions {
  /** restrict to these classes (names from CLASS_NAMES) */
  classes?: readonly string[];
}

/** The mutant `id` of a base file under `seed`: deterministic, whoever calls it. */
export function generateMutant(ctx: GenContext, seed: number, id: number, opts: GenerateOptions = {}): Mutant {
  const rng = new Rng(seed, id);
  const allowed = opts.classes ? new Set(opts.classes) : null;
  const table = MUTATION_CLASSES.filter(([n]) => !allowed || allowed.has(n)).map(([n, f, w]) => [[n, f], w] as const);
  if (table.length === 0) throw new Error(`no mutation class left (asked for ${[...(allowed ?? [])].join(', ')})`);
  const changes: { cls: string; change: Change }[] = [];
  const draw = (stackOnly: boolean): void => {
    for (let t = 0; t < MAX_CLASS_TRIES; t++) {
      const [name, fn] = rng.weighted(table);
      if (stackOnly && !STACKABLE.has(name)) continue;
      const c = fn(ctx, rng);
      if (c) {
        changes.push({ cls: name, change: c });
        return;
      }
    }
  };
  draw(false);
  if (changes.length === 0) changes.push({ cls: 'bitflip', change: bitflip(ctx, rng)! });
  const first = changes[0]!.change;
  if (first.replace === undefined && first.length === undefined) {
    while (changes.length < 3 && rng.chance(STACK_CHANCE)) draw(true);
  }
  const patch: Patch = { replace: null, edits: [], length: null, fill: null };
  for (const { change } of changes) {
    if (change.replace) patch.replace = change.replace;
    if (change.edits) patch.edits.push(...change.edits);
    if (change.length !== undefined) {
      patch.length = change.length;
      patch.fill = change.fill ?? null;
    }
  }
  return {
    id,
    classes: changes.map((c) => c.cls),
    description: changes.map((c) => `[${c.cls}] ${c.change.desc}`).join(' + '),
    patch,
  };
}

/** The unmodified file as a "mutant" (baseline run). */
export function baselineMutant(id: number): Mutant {
  return { id, classes: ['baseline'], description: 'unmodified corpus file (baseline)', patch: { replace: null, edits: [], length: null, fill: null } };
}
