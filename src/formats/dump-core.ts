// `xl dump-core` (xc_core ELF) reader: xen-project/xen tools/libs/guest/xg_core.{c,h} and docs/misc/dump-core-format.txt (RELEASE-4.17.0; xen-toolstack.md §4).
//
// What a dump holds (all little-endian; see docs/spec-notes/xc-core.md):
//   ELF64 header (ET_CORE, no program headers) → section headers → .note.Xen (4 notes named "Xen") →
//   .xen_prstatus (vcpu_guest_context per dumped vCPU) → .xen_shared_info (optional) → .xen_pages
//   (N raw pages) → .xen_p2m ({pfn, gmfn} per page, same index) → .shstrtab.
// Sections are located by name through .shstrtab, never by position (the ELF header, section table and
// notes are read by elf.ts; the dump-core rules are checked here). The dump does not carry the host's
// max_mfn: maxFrame is the highest gmfn present. It carries no kernel symbols either: they come from
// opts.symbols (System.map / kallsyms, src/formats/symbols.ts).
//
// Memory: the .xen_p2m table is read in chunks and condensed into runs of consecutive (gmfn, page
// index) pairs held in typed arrays, sorted by gmfn with a radix sort; frameOffset is a binary search.
// No per-page object is allocated, and no length field is used to allocate before it has been checked
// against the file size.
import * as fs from 'node:fs';
import { readAt, openReadOnly, FrameFile } from './file-io.js';
import { MAX_MFN_ARCH } from '../xen/abi.js';
import { PAGE_SIZE, SIZEOF_VCPU_GUEST_CONTEXT_64, VCPU_CTRLREG3_OFFSET_64, hex } from '../xen/abi.js';
import type { ArchSharedInfo } from '../xen/shared-info.js';
import type { GuestImage, P2mPairs } from './guest-image.js';
import type { SymbolTable } from './symbols.js';
import { parseVcpuContext64, type VcpuContext } from './vcpu-context.js';
import { archOf } from '../xen/shared-info.js';
import { InputError } from '../common/errors.js';
import { ElfFile, readElfHeader, readSectionHeaders, readNotes, readU64, u64Hex, cString, type ElfSection } from './elf.js';
import { XEN_DUMPCORE_SEC_NOTE, XEN_DUMPCORE_SEC_PRSTATUS, XEN_DUMPCORE_SEC_SHARED_INFO, XEN_DUMPCORE_SEC_P2M, XEN_DUMPCORE_SEC_PAGES, XEN_DUMPCORE_ELFNOTE_NAME, XEN_DUMPCORE_ELFNOTE_NAMESZ, XEN_ELFNOTE_DUMPCORE_NONE, XEN_ELFNOTE_DUMPCORE_HEADER, XEN_ELFNOTE_DUMPCORE_XEN_VERSION, XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION, NONE_DESC_SIZE, HEADER_DESC_SIZE, XEN_VERSION_DESC_SIZE, FORMAT_VERSION_DESC_SIZE, XCH_MAGIC, XCH_NR_VCPUS, XCH_NR_PAGES, XCH_PAGE_SIZE, XC_CORE_MAGIC, XC_CORE_MAGIC_HVM, XEN_DUMPCORE_FORMAT_MAJOR, XEN_DUMPCORE_FORMAT_MINOR, XEN_DUMPCORE_P2M_ENTRY_SIZE, P2M_ENTRY_GMFN, XC_CORE_INVALID_WORD, XV_MAJOR, XV_MINOR, XV_EXTRA, XEN_EXTRAVERSION_LEN } from '../xen/dump-core-format.js';
import { ET_CORE, EM_386, EM_X86_64, SHT_PROGBITS, SHT_NOTE, SH_SIZE, SH_TYPE, NHDR_SIZE, N_DESCSZ } from '../xen/elf-format.js';


/** u32 words, for u64 values read as (low, high). */
const WORD_BYTES = 4;
const U64_BYTES = 8;
/** Guest width of the only guests read (64-bit PV). */
const GUEST_WIDTH_64 = 8;
/** Xen's string table is u16-indexed (xg_core.c xc_core_strtab); a larger .shstrtab is not from dump-core. */
const MAX_SHSTRTAB_BYTES = 0xffff;
/** Upper bound for .note.Xen (1384 bytes in format 0.1; later minor versions may add notes). */
const MAX_NOTE_SECTION_BYTES = 1024 * 1024;
/** .note.Xen of format 0.1: four notes of 16 header bytes each plus their descriptors. */
const DUMPCORE_NOTE_COUNT = 4;
const ELF_NOTE_FORMAT_0_1_BYTES = DUMPCORE_NOTE_COUNT * (NHDR_SIZE + XEN_DUMPCORE_ELFNOTE_NAMESZ) + NONE_DESC_SIZE + HEADER_DESC_SIZE + XEN_VERSION_DESC_SIZE + FORMAT_VERSION_DESC_SIZE;
const WORD_SCALE = 2 ** 32;
/** .xen_p2m entries read per positional read. */
const P2M_CHUNK_ENTRIES = 65536;
/** Radix-sort digit: 16 bits. */
const RADIX_BITS = 16;
const RADIX_BUCKETS = 1 << RADIX_BITS;
const RADIX_MASK = RADIX_BUCKETS - 1;
/** Initial capacity of the run list (it doubles as needed). */
const INITIAL_RUNS = 64;
/** Largest page count a dump can index (page indexes are kept in Uint32Array). */
const MAX_PAGES = 0xffffffff;
/** Sections the reader needs, with the type each must have. */
const REQUIRED_SECTIONS: [string, number][] = [
  [XEN_DUMPCORE_SEC_NOTE, SHT_NOTE],
  [XEN_DUMPCORE_SEC_PRSTATUS, SHT_PROGBITS],
  [XEN_DUMPCORE_SEC_PAGES, SHT_PROGBITS],
  [XEN_DUMPCORE_SEC_P2M, SHT_PROGBITS],
];
/** What dump-core writes: a 64-bit little-endian ET_CORE of an x86_64 guest. */
const DUMP_CORE_ELF = {
  type: ET_CORE,
  machine: EM_X86_64,
  refuse: new Map([[EM_386, `32-bit PV guest dumps are not supported, expected ${EM_X86_64} (EM_X86_64, a 64-bit guest)`]]),
  classWhy: 'xc_core dumps are always 64-bit ELF',
  dataWhy: 'as dump-core writes on x86',
};

export interface XcCoreOptions {
  /** kernel symbols (the dump carries none) */
  symbols?: SymbolTable;
}

/** A section located through .shstrtab. */
export type XcCoreSection = ElfSection;

/** What the four notes say. */
export interface XcCoreNotes {
  nrVcpus: number;
  nrPages: number;
  pageSize: number;
  xenMajor: number;
  xenMinor: number;
  xenExtra: string;
  formatMajor: number;
  formatMinor: number;
}

/** Only an ELF magic is checked here (content detection); openXcCore checks everything else. */
export { isElf } from './elf.js';

// ---- helpers ----------------------------------------------------------------------------------------

/**
 * Sort runs by their start gmfn: an LSD radix sort on the (high, low) u32 words, 16 bits a pass, a
 * pass skipped when every key has the same digit. Returns the permutation (run indexes in order).
 */
function radixOrder(lo: Uint32Array, hi: Uint32Array): Uint32Array {
  const n = lo.length;
  let perm = new Uint32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  let tmp = new Uint32Array(n);
  const count = new Float64Array(RADIX_BUCKETS);
  const digits: [Uint32Array, number][] = [
    [lo, 0],
    [lo, RADIX_BITS],
    [hi, 0],
    [hi, RADIX_BITS],
  ];
  for (const [words, shift] of digits) {
    count.fill(0);
    for (let i = 0; i < n; i++) count[(words[i]! >>> shift) & RADIX_MASK]++;
    if (n === 0 || count[(words[0]! >>> shift) & RADIX_MASK] === n) continue; // one digit value: order unchanged
    let sum = 0;
    for (let b = 0; b < RADIX_BUCKETS; b++) {
      const c = count[b]!;
      count[b] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const r = perm[i]!;
      const d = (words[r]! >>> shift) & RADIX_MASK;
      tmp[count[d]!++] = r;
    }
    const t = perm;
    perm = tmp;
    tmp = t;
  }
  return perm;
}

/** A growable run list: [gmfn, gmfn + len) held at page indexes [index, index + len). */
class RunBuilder {
  lo: Uint32Array = new Uint32Array(INITIAL_RUNS);
  hi: Uint32Array = new Uint32Array(INITIAL_RUNS);
  index: Uint32Array = new Uint32Array(INITIAL_RUNS);
  len: Uint32Array = new Uint32Array(INITIAL_RUNS);
  n = 0;
  private lastGmfn = -2;
  private lastIndex = -2;

  add(gmfn: number, index: number): void {
    if (this.n > 0 && gmfn === this.lastGmfn + 1 && index === this.lastIndex + 1) {
      this.len[this.n - 1]++;
    } else {
      if (this.n === this.lo.length) this.grow();
      this.lo[this.n] = gmfn % WORD_SCALE;
      this.hi[this.n] = Math.floor(gmfn / WORD_SCALE);
      this.index[this.n] = index;
      this.len[this.n] = 1;
      this.n++;
    }
    this.lastGmfn = gmfn;
    this.lastIndex = index;
  }

  private grow(): void {
    const size = this.lo.length * 2;
    const g = (a: Uint32Array): Uint32Array => {
      const b = new Uint32Array(size);
      b.set(a);
      return b;
    };
    this.lo = g(this.lo);
    this.hi = g(this.hi);
    this.index = g(this.index);
    this.len = g(this.len);
  }
}

// ---- the image --------------------------------------------------------------------------------------

/** vCPU contexts kept from .xen_prstatus (each 5168 bytes). */
const MAX_DUMP_VCPUS = 4096;

export class XcCoreImage implements GuestImage {
  readonly format = 'xc-core' as const;
  readonly frameSpace = 'mfn' as const;
  readonly guestWidth = GUEST_WIDTH_64;
  readonly arch: ArchSharedInfo;
  private readonly file: FrameFile;

  constructor(
    readonly path: string,
    fd: number,
    readonly sharedInfo: Buffer | null,
    readonly cr3: bigint,
    readonly symbols: SymbolTable,
    readonly notes: XcCoreNotes,
    readonly sections: XcCoreSection[],
    /** sorted runs: start gmfn, first page index, length */
    private readonly runStart: Float64Array,
    private readonly runIndex: Uint32Array,
    private readonly runLen: Uint32Array,
    private readonly pagesOffset: number,
    private readonly p2mOffset: number,
    /** pages that are real (N minus padding) */
    private readonly present: number,
    readonly maxFrame: number,
    /** the .xen_prstatus contexts */
    readonly vcpus: readonly VcpuContext[] = [],
  ) {
    this.file = new FrameFile(path, fd);
    this.arch = archOf(sharedInfo);
  }

  readonly formatFacts = { kind: 'dump-core' as const, p2mPairs: (): P2mPairs => this.p2mPairs() };

  /** Page index of a gmfn in .xen_pages, or -1. */
  pageIndex(frame: number): number {
    const s = this.runStart;
    let lo = 0;
    let hi = s.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const start = s[mid]!;
      if (frame < start) hi = mid - 1;
      else if (frame >= start + this.runLen[mid]!) lo = mid + 1;
      else return this.runIndex[mid]! + (frame - start);
    }
    return -1;
  }

  fileDescriptor(): number {
    return this.file.descriptor;
  }

  frameOffset(frame: number): number {
    const k = this.pageIndex(frame);
    return k < 0 ? -1 : this.pagesOffset + k * PAGE_SIZE;
  }

  readFrame(frame: number): Buffer | null {
    return this.file.readFrame(this.frameOffset(frame), `page of gmfn ${hex(frame)}`);
  }

  frameCount(): number {
    return this.present;
  }

  /**
   * The .xen_p2m pairs in file order (dump-core writes them pfn-ascending; the format does not promise
   * it), padding entries left out. 16 bytes per page, allocated on each call.
   */
  p2mPairs(): P2mPairs {
    const fd = this.file.descriptor;
    const pfns = new Float64Array(this.present);
    const gmfns = new Float64Array(this.present);
    const chunk = Buffer.alloc(Math.min(this.notes.nrPages, P2M_CHUNK_ENTRIES) * XEN_DUMPCORE_P2M_ENTRY_SIZE);
    let k = 0;
    for (let first = 0; first < this.notes.nrPages; first += P2M_CHUNK_ENTRIES) {
      const n = Math.min(P2M_CHUNK_ENTRIES, this.notes.nrPages - first);
      const at = this.p2mOffset + first * XEN_DUMPCORE_P2M_ENTRY_SIZE;
      if (readAt(fd, chunk, at, n * XEN_DUMPCORE_P2M_ENTRY_SIZE) !== n * XEN_DUMPCORE_P2M_ENTRY_SIZE) {
        throw new InputError(`${this.path}: offset ${at}: .xen_p2m cut short (file changed since it was opened?)`);
      }
      for (let j = 0; j < n; j++) {
        const o = j * XEN_DUMPCORE_P2M_ENTRY_SIZE;
        if (isPadding(chunk, o)) continue;
        const pfn = readU64(chunk, o);
        const gmfn = readU64(chunk, o + P2M_ENTRY_GMFN);
        if (pfn === null || gmfn === null) {
          const field = pfn === null ? 'pfn' : 'gmfn';
          throw new InputError(`${this.path}: offset ${at + o}: .xen_p2m entry ${first + j} has ${field} ${u64Hex(chunk, pfn === null ? o : o + P2M_ENTRY_GMFN)}, expected a frame number below 2^53 (or the all-ones padding pair)`);
        }
        pfns[k] = pfn;
        gmfns[k] = gmfn;
        k++;
      }
    }
    return { pfns, gmfns };
  }

  close(): void {
    this.file.close();
  }
}

function isPadding(buf: Buffer, o: number): boolean {
  return (
    buf.readUInt32LE(o) === XC_CORE_INVALID_WORD &&
    buf.readUInt32LE(o + WORD_BYTES) === XC_CORE_INVALID_WORD &&
    buf.readUInt32LE(o + P2M_ENTRY_GMFN) === XC_CORE_INVALID_WORD &&
    buf.readUInt32LE(o + P2M_ENTRY_GMFN + WORD_BYTES) === XC_CORE_INVALID_WORD
  );
}

// ---- parsing ----------------------------------------------------------------------------------------

/** The file, and the dump-core checks on what elf.ts reads of it. */
class Parser extends ElfFile {
  find(sections: XcCoreSection[], name: string, type: number, shoff: number): XcCoreSection {
    const found = sections.filter((s) => s.name === name);
    if (found.length === 0) {
      const what = name === XEN_DUMPCORE_SEC_NOTE ? 'an ELF core without .note.Xen is not an xl dump-core file' : 'every xc_core dump of a PV guest has it';
      this.fail(shoff, `no ${name} section (sections: ${sections.filter((s) => s.name).map((s) => s.name).join(', ') || 'none'}); ${what}`);
    }
    if (found.length > 1) this.fail(found[1]!.headerAt, `a second ${name} section (headers ${found.map((s) => s.index).join(' and ')}), expected one`);
    const s = found[0]!;
    if (s.type !== type) this.fail(s.headerAt + SH_TYPE, `${name} has sh_type ${s.type}, expected ${type}`);
    return s;
  }

  /** The four notes of .note.Xen, each required once with namesz 4, name "Xen" and its descsz. */
  notes(sec: XcCoreSection): XcCoreNotes {
    const want = new Map<number, [string, number]>([
      [XEN_ELFNOTE_DUMPCORE_NONE, ['XEN_ELFNOTE_DUMPCORE_NONE', NONE_DESC_SIZE]],
      [XEN_ELFNOTE_DUMPCORE_HEADER, ['XEN_ELFNOTE_DUMPCORE_HEADER', HEADER_DESC_SIZE]],
      [XEN_ELFNOTE_DUMPCORE_XEN_VERSION, ['XEN_ELFNOTE_DUMPCORE_XEN_VERSION', XEN_VERSION_DESC_SIZE]],
      [XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION, ['XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION', FORMAT_VERSION_DESC_SIZE]],
    ]);
    const desc = new Map<number, { at: number; d: Buffer }>();
    const region = { offset: sec.offset, size: sec.size, sizeAt: sec.headerAt + SH_SIZE, what: XEN_DUMPCORE_SEC_NOTE };
    const rules = {
      maxBytes: MAX_NOTE_SECTION_BYTES,
      maxWhy: `the ${DUMPCORE_NOTE_COUNT} notes take ${ELF_NOTE_FORMAT_0_1_BYTES} bytes in format 0.1`,
      name: XEN_DUMPCORE_ELFNOTE_NAME,
    };
    for (const note of readNotes(this, region, rules)) {
      const w = want.get(note.type);
      if (!w) continue;
      if (desc.has(note.type)) this.fail(note.at, `.note.Xen: a second ${w[0]} note, expected one`);
      if (note.desc.length !== w[1]) this.fail(note.at + N_DESCSZ, `.note.Xen ${w[0]}: descsz ${note.desc.length}, expected ${w[1]}`);
      desc.set(note.type, { at: note.descAt, d: note.desc });
    }
    for (const [type, [name]] of want) {
      if (!desc.has(type)) this.fail(sec.offset, `.note.Xen has no ${name} note (type ${hex(type)}); all four dump-core notes must be present`);
    }

    const header = desc.get(XEN_ELFNOTE_DUMPCORE_HEADER)!;
    const h = header.d;
    const magicLo = h.readUInt32LE(XCH_MAGIC);
    const magicHi = h.readUInt32LE(XCH_MAGIC + WORD_BYTES);
    if (magicHi === 0 && magicLo === XC_CORE_MAGIC_HVM) {
      this.fail(header.at + XCH_MAGIC, `xch_magic ${hex(XC_CORE_MAGIC_HVM)}: an HVM guest dump (.xen_pfn, no p2m); only PV guest dumps are supported, expected ${hex(XC_CORE_MAGIC)}`);
    }
    if (magicHi !== 0 || magicLo !== XC_CORE_MAGIC) this.fail(header.at + XCH_MAGIC, `xch_magic ${u64Hex(h, XCH_MAGIC)}, expected ${hex(XC_CORE_MAGIC)} (XC_CORE_MAGIC, PV guest)`);
    const nrVcpus = readU64(h, XCH_NR_VCPUS);
    if (nrVcpus === null || nrVcpus === 0) this.fail(header.at + XCH_NR_VCPUS, `xch_nr_vcpus ${u64Hex(h, XCH_NR_VCPUS)}, expected at least 1 (dump-core fails without a vCPU context)`);
    const nrPages = readU64(h, XCH_NR_PAGES);
    if (nrPages === null || nrPages > MAX_PAGES) this.fail(header.at + XCH_NR_PAGES, `xch_nr_pages ${u64Hex(h, XCH_NR_PAGES)} is implausibly large, expected at most ${hex(MAX_PAGES)}`);
    const pageSize = readU64(h, XCH_PAGE_SIZE);
    if (pageSize !== PAGE_SIZE) this.fail(header.at + XCH_PAGE_SIZE, `xch_page_size ${u64Hex(h, XCH_PAGE_SIZE)}, expected ${PAGE_SIZE}`);

    const fv = desc.get(XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION)!;
    const formatMinor = fv.d.readUInt32LE(0);
    const formatMajor = fv.d.readUInt32LE(WORD_BYTES);
    if (formatMajor !== XEN_DUMPCORE_FORMAT_MAJOR || formatMinor < XEN_DUMPCORE_FORMAT_MINOR) {
      this.fail(fv.at, `dump-core format version (${formatMajor}, ${formatMinor}), expected major ${XEN_DUMPCORE_FORMAT_MAJOR} with minor ≥ ${XEN_DUMPCORE_FORMAT_MINOR} (a major change is incompatible)`);
    }

    const xv = desc.get(XEN_ELFNOTE_DUMPCORE_XEN_VERSION)!.d;
    return {
      nrVcpus,
      nrPages,
      pageSize,
      xenMajor: xv.readUInt32LE(XV_MAJOR),
      xenMinor: xv.readUInt32LE(XV_MINOR),
      xenExtra: cString(xv.subarray(XV_EXTRA, XV_EXTRA + XEN_EXTRAVERSION_LEN)),
      formatMajor,
      formatMinor,
    };
  }
}


/**
 * Open and validate an xl dump-core file of a 64-bit PV guest. Throws InputError (one line: file,
 * byte offset, what was expected) on anything it cannot use.
 */
export function openXcCore(path: string, opts: XcCoreOptions = {}): XcCoreImage {
  const fd = openReadOnly(path);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new InputError(`${path}: not a regular file`);
    const p = new Parser(path, fd, st.size);
    const eh = readElfHeader(p, DUMP_CORE_ELF);
    const sections = readSectionHeaders(p, eh, {
      missing: 'expected the xc_core sections (.note.Xen, .xen_pages, ...)',
      maxNames: MAX_SHSTRTAB_BYTES,
      maxNamesWhy: "dump-core's string table is u16-indexed",
    });
    const shoff = eh.shoff!; // readSectionHeaders checked it
    const byName = new Map<string, XcCoreSection>();
    for (const [name, type] of REQUIRED_SECTIONS) byName.set(name, p.find(sections, name, type, shoff));
    const notes = p.notes(byName.get(XEN_DUMPCORE_SEC_NOTE)!);

    // .xen_prstatus: xch_nr_vcpus contexts of 5168 bytes; vCPU 0's ctrlreg[3] is the cr3 the views walk from.
    const pr = byName.get(XEN_DUMPCORE_SEC_PRSTATUS)!;
    if (pr.size / SIZEOF_VCPU_GUEST_CONTEXT_64 !== notes.nrVcpus) {
      p.fail(pr.headerAt + SH_SIZE, `.xen_prstatus is ${pr.size} bytes, expected xch_nr_vcpus ${notes.nrVcpus} × ${SIZEOF_VCPU_GUEST_CONTEXT_64} (vcpu_guest_context, x86_64)`);
    }
    const cr3 = p.bytes(pr.offset + VCPU_CTRLREG3_OFFSET_64, U64_BYTES).readBigUInt64LE(0);
    // every context (xc_domain_dumpcore writes the vCPUs it got a context for, in id order), up to 4096
    const vcpus: VcpuContext[] = [];
    for (let i = 0; i < Math.min(notes.nrVcpus, MAX_DUMP_VCPUS); i++) {
      vcpus.push(parseVcpuContext64(p.bytes(pr.offset + i * SIZEOF_VCPU_GUEST_CONTEXT_64, SIZEOF_VCPU_GUEST_CONTEXT_64), i));
    }

    // .xen_shared_info is optional (dump-core leaves it out when the page cannot be mapped).
    let sharedInfo: Buffer | null = null;
    const si = sections.filter((s) => s.name === XEN_DUMPCORE_SEC_SHARED_INFO);
    if (si.length > 1) p.fail(si[1]!.headerAt, `a second ${XEN_DUMPCORE_SEC_SHARED_INFO} section, expected at most one`);
    if (si.length === 1) {
      if (si[0]!.size !== PAGE_SIZE) p.fail(si[0]!.headerAt + SH_SIZE, `.xen_shared_info is ${si[0]!.size} bytes, expected ${PAGE_SIZE}`);
      sharedInfo = p.bytes(si[0]!.offset, PAGE_SIZE);
    }

    // .xen_pages and .xen_p2m: N pages and N pairs, N = xch_nr_pages.
    const pages = byName.get(XEN_DUMPCORE_SEC_PAGES)!;
    const p2m = byName.get(XEN_DUMPCORE_SEC_P2M)!;
    const pagesHdr = pages.headerAt + SH_SIZE;
    const p2mHdr = p2m.headerAt + SH_SIZE;
    if (pages.size % PAGE_SIZE !== 0) p.fail(pagesHdr, `.xen_pages is ${pages.size} bytes, expected a multiple of ${PAGE_SIZE}`);
    if (p2m.size % XEN_DUMPCORE_P2M_ENTRY_SIZE !== 0) p.fail(p2mHdr, `.xen_p2m is ${p2m.size} bytes, expected a multiple of ${XEN_DUMPCORE_P2M_ENTRY_SIZE} ({pfn, gmfn} pairs)`);
    const nPages = pages.size / PAGE_SIZE;
    const nPairs = p2m.size / XEN_DUMPCORE_P2M_ENTRY_SIZE;
    if (nPairs !== nPages) {
      p.fail(p2mHdr, `.xen_p2m holds ${nPairs} {pfn, gmfn} entries but .xen_pages holds ${nPages} pages, expected the same count (xch_nr_pages ${notes.nrPages})`);
    }
    if (nPages !== notes.nrPages) p.fail(pagesHdr, `.xen_pages holds ${nPages} pages, expected xch_nr_pages ${notes.nrPages} from the header note`);

    const index = readP2m(p, p2m.offset, notes.nrPages);
    return new XcCoreImage(
      path,
      fd,
      sharedInfo,
      cr3,
      opts.symbols ?? new Map(),
      notes,
      sections,
      index.runStart,
      index.runIndex,
      index.runLen,
      pages.offset,
      p2m.offset,
      index.present,
      index.maxFrame,
      vcpus,
    );
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** Read .xen_p2m in chunks into sorted runs; padding entries {~0, ~0} are skipped. */
function readP2m(p: Parser, offset: number, n: number): { runStart: Float64Array; runIndex: Uint32Array; runLen: Uint32Array; present: number; maxFrame: number } {
  const runs = new RunBuilder();
  const chunk = Buffer.alloc(Math.max(1, Math.min(n, P2M_CHUNK_ENTRIES)) * XEN_DUMPCORE_P2M_ENTRY_SIZE);
  let present = 0;
  for (let first = 0; first < n; first += P2M_CHUNK_ENTRIES) {
    const count = Math.min(P2M_CHUNK_ENTRIES, n - first);
    const at = offset + first * XEN_DUMPCORE_P2M_ENTRY_SIZE;
    const got = readAt(p.fd, chunk, at, count * XEN_DUMPCORE_P2M_ENTRY_SIZE);
    if (got !== count * XEN_DUMPCORE_P2M_ENTRY_SIZE) p.fail(at + got, '.xen_p2m cut short (file changed while reading?)');
    for (let j = 0; j < count; j++) {
      const o = j * XEN_DUMPCORE_P2M_ENTRY_SIZE;
      if (isPadding(chunk, o)) continue;
      const entry = first + j;
      const entryAt = at + o;
      const pfn = readU64(chunk, o);
      if (pfn === null) p.fail(entryAt, `.xen_p2m entry ${entry}: pfn ${u64Hex(chunk, o)} is not a pfn (only the padding entry {~0, ~0} may carry ~0), expected below 2^53`);
      const gmfn = readU64(chunk, o + P2M_ENTRY_GMFN);
      if (gmfn === null || gmfn > MAX_MFN_ARCH) {
        p.fail(entryAt + P2M_ENTRY_GMFN, `.xen_p2m entry ${entry} (pfn ${hex(pfn)}): gmfn ${u64Hex(chunk, o + P2M_ENTRY_GMFN)} is not a machine frame, expected at most ${hex(MAX_MFN_ARCH)} (52-bit physical addresses)`);
      }
      runs.add(gmfn, entry);
      present++;
    }
  }
  const order = radixOrder(runs.lo.subarray(0, runs.n), runs.hi.subarray(0, runs.n));
  const runStart = new Float64Array(runs.n);
  const runIndex = new Uint32Array(runs.n);
  const runLen = new Uint32Array(runs.n);
  let maxFrame = -1;
  for (let i = 0; i < runs.n; i++) {
    const r = order[i]!;
    runStart[i] = runs.hi[r]! * WORD_SCALE + runs.lo[r]!;
    runIndex[i] = runs.index[r]!;
    runLen[i] = runs.len[r]!;
    if (i > 0 && runStart[i - 1]! + runLen[i - 1]! > runStart[i]!) {
      const dup = runStart[i]!;
      const a = runIndex[i - 1]! + (dup - runStart[i - 1]!);
      p.fail(offset + runIndex[i]! * XEN_DUMPCORE_P2M_ENTRY_SIZE + P2M_ENTRY_GMFN, `.xen_p2m entries ${Math.min(a, runIndex[i]!)} and ${Math.max(a, runIndex[i]!)} both name gmfn ${hex(dup)}, expected each machine frame once`);
    }
    maxFrame = Math.max(maxFrame, runStart[i]! + runLen[i]! - 1);
  }
  return { runStart, runIndex, runLen, present, maxFrame };
}
