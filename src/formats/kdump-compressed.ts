// makedumpfile's compressed dump reader ("kdump-compressed", signature "KDUMP   ") of a Xen dom0 crash dump: makedumpfile diskdump_mod.h / makedumpfile.c write_kdump_header, write_kdump_pages_and_bitmap_cyclic, and crash diskdump.c read_dump_header, cache_page, read_diskdump. docs/spec-notes/kdump-compressed.md.
//
// What a file holds (layout in xen/diskdump-format.ts): disk_dump_header, kdump_sub_header and the
// vmcore's ELF notes (the same notes as the ELF vmcore: kdump-notes.ts reads them), the two bitmaps over
// machine frames (makedumpfile converts a Xen vmcore in the frame space of its PT_LOADs: mfns), one
// page_desc per dumped frame, the pages (each compressed with its flag's codec, or stored whole).
//
// Frames: a frame in the 1st bitmap but not the 2nd was left out by the dump level and reads as zeros (crash
// with --zero_excluded; by default crash refuses such a read); a frame outside the 1st is not in the dump
// (null). A stored page (flags 0, size = block_size) is read in place and has a file offset; a compressed
// one is decoded into the one reused page buffer and has none (frameOffset −1), so audits read this format
// through readFrame. Metadata is what the ELF vmcore reader gives (dom0-kdump-image.ts): no shared_info,
// max_pfn or cr3; the crash note's frame-list root stands in arch.pfnToMfnFrameListList.
//
// Checked at open, before anything is allocated from them: the header fields against the file size, the
// bitmaps against max_mapnr, the 2nd bitmap inside the 1st, the descriptor table inside the file. Checked
// when a frame is read: its descriptor (offset, size ≤ block_size, flags) and its decompression. Every
// failure is one InputError line: the file, the offset, what was expected.
import * as fs from 'node:fs';
import { InputError } from '../common/errors.js';
import { MAX_MFN_ARCH, PAGE_SIZE, hex } from '../xen/abi.js';
import { DH_BITMAP_BLOCKS, DH_BLOCK_SIZE, DH_CURRENT_CPU, DH_DEVICE_BLOCKS, DH_HEADER_VERSION, DH_MAX_MAPNR, DH_NR_CPUS, DH_STATUS, DH_SUB_HDR_SIZE, DH_TIMESTAMP, DH_TOTAL_RAM_BLOCKS, DH_UTSNAME, DH_WRITTEN_BLOCKS, DISK_DUMP_HEADER_SIZE, DISK_DUMP_SIGNATURE, DISKDUMP_CACHED_PAGES, DISKDUMP_HEADER_BLOCKS, DUMP_DH_CODECS, DUMP_DH_COMPRESSED_INCOMPLETE, HV_DUMP_LEVEL, HV_ERASEINFO, HV_MAPNR_64, HV_NOTE, HV_SPLIT, HV_VMCOREINFO, KDUMP_SIGNATURE, KDUMP_SUB_HEADER_SIZE, KH_DUMP_LEVEL, KH_END_PFN, KH_END_PFN_64, KH_MAX_MAPNR_64, KH_OFFSET_ERASEINFO, KH_OFFSET_NOTE, KH_OFFSET_VMCOREINFO, KH_PHYS_BASE, KH_SIZE_ERASEINFO, KH_SIZE_NOTE, KH_SIZE_VMCOREINFO, KH_SPLIT, KH_START_PFN, KH_START_PFN_64, MAKEDUMPFILE_SIGNATURE, NEW_UTS_LEN_PLUS_1, PAGE_DESC_SIZE, PD_FLAGS, PD_OFFSET, PD_SIZE, SIG_LEN, UTSNAME_FIELDS } from '../xen/diskdump-format.js';
import { ElfFile, cString, readU64 } from './elf.js';
import { openReadOnly, readAt } from './file-io.js';
import { BitRunCollector, DumpBitmaps, bitmapWords } from './dump-bitmap.js';
import { codecName, decodePage, PageDecodeError } from './page-codecs.js';
import { Dom0KdumpImage, type Dom0KdumpFacts } from './dom0-kdump-image.js';
import { readKdumpNotes, requireCrashInfo } from './kdump-notes.js';
import type { SymbolTable } from './symbols.js';

/** Runs of the 1st bitmap kept as segments (a machine's RAM ranges: a few dozen at most). */
export const MAX_MEMORY_RUNS = 65536;
/** Bytes of the 1st bitmap read at a time while its runs are collected (1 MiB). */
const BITMAP_CHUNK_BYTES = 1 << 20;
/** page_desc entries read and kept at a time (one 3 KiB chunk of the table). */
const DESC_CHUNK = 128;
/** What the flattened format must be turned into first (makedumpfile -R reads it on standard input). */
export const FLATTENED_ADVICE = 'rearrange it into a readable dump first: makedumpfile -R OUT < FILE (or makedumpfile-R.pl OUT < FILE)';

export interface KdumpCompressedOptions {
  /** dom0's kernel symbols (the dump carries none) */
  symbols?: SymbolTable;
}

// ---- probes -----------------------------------------------------------------------------------------

function startsWith(head: Buffer, text: string): boolean {
  return head.length >= text.length && head.subarray(0, text.length).toString('latin1') === text;
}

/** "KDUMP   " at offset 0: makedumpfile's compressed format. */
export function isKdumpCompressed(head: Buffer): boolean {
  return startsWith(head, KDUMP_SIGNATURE);
}

/** "makedumpfile\0" at offset 0: the flattened format (makedumpfile -F), not readable in place. */
export function isFlattenedDump(head: Buffer): boolean {
  return startsWith(head, MAKEDUMPFILE_SIGNATURE + '\0');
}

// ---- headers (pure) ---------------------------------------------------------------------------------

/** struct disk_dump_header as read (x86_64). */
export interface DiskDumpHeader {
  signature: string;
  headerVersion: number;
  utsname: Record<(typeof UTSNAME_FIELDS)[number], string>;
  /** timestamp.tv_sec */
  timestamp: number;
  status: number;
  blockSize: number;
  subHdrSize: number;
  bitmapBlocks: number;
  /** the obsolete 32-bit max_mapnr */
  maxMapnr32: number;
  totalRamBlocks: number;
  deviceBlocks: number;
  writtenBlocks: number;
  currentCpu: number;
  nrCpus: number;
}

/** Parse disk_dump_header from its first DISK_DUMP_HEADER_SIZE bytes. */
export function parseDiskDumpHeader(b: Buffer): DiskDumpHeader {
  const uts = {} as DiskDumpHeader['utsname'];
  UTSNAME_FIELDS.forEach((name, i) => {
    const at = DH_UTSNAME + i * NEW_UTS_LEN_PLUS_1;
    uts[name] = cString(b.subarray(at, at + NEW_UTS_LEN_PLUS_1));
  });
  return {
    signature: b.subarray(0, SIG_LEN).toString('latin1'),
    headerVersion: b.readInt32LE(DH_HEADER_VERSION),
    utsname: uts,
    timestamp: Number(b.readBigInt64LE(DH_TIMESTAMP)),
    status: b.readUInt32LE(DH_STATUS),
    blockSize: b.readInt32LE(DH_BLOCK_SIZE),
    subHdrSize: b.readInt32LE(DH_SUB_HDR_SIZE),
    bitmapBlocks: b.readUInt32LE(DH_BITMAP_BLOCKS),
    maxMapnr32: b.readUInt32LE(DH_MAX_MAPNR),
    totalRamBlocks: b.readUInt32LE(DH_TOTAL_RAM_BLOCKS),
    deviceBlocks: b.readUInt32LE(DH_DEVICE_BLOCKS),
    writtenBlocks: b.readUInt32LE(DH_WRITTEN_BLOCKS),
    currentCpu: b.readUInt32LE(DH_CURRENT_CPU),
    nrCpus: b.readInt32LE(DH_NR_CPUS),
  };
}

/** struct kdump_sub_header as read; fields its header_version does not have are 0. u64 fields beyond 2^53 are null. */
export interface KdumpSubHeader {
  physBase: number | null;
  dumpLevel: number;
  split: number;
  startPfn: number | null;
  endPfn: number | null;
  offsetVmcoreinfo: number | null;
  sizeVmcoreinfo: number | null;
  offsetNote: number | null;
  sizeNote: number | null;
  offsetEraseinfo: number | null;
  sizeEraseinfo: number | null;
  /** start_pfn_64, end_pfn_64, max_mapnr_64 from version 6; before it, the 32-bit values of the headers */
  startPfn64: number | null;
  endPfn64: number | null;
  maxMapnr64: number | null;
}

/** Parse kdump_sub_header (KDUMP_SUB_HEADER_SIZE bytes) as header_version `version` defines it (diskdump_mod.h). */
export function parseKdumpSubHeader(b: Buffer, version: number, maxMapnr32: number): KdumpSubHeader {
  const from = (v: number, at: number): number | null => (version >= v ? readU64(b, at) : 0);
  const v6 = version >= HV_MAPNR_64;
  const startPfn = from(HV_SPLIT, KH_START_PFN);
  const endPfn = from(HV_SPLIT, KH_END_PFN);
  return {
    physBase: readU64(b, KH_PHYS_BASE),
    dumpLevel: version >= HV_DUMP_LEVEL ? b.readInt32LE(KH_DUMP_LEVEL) : 0,
    split: version >= HV_SPLIT ? b.readInt32LE(KH_SPLIT) : 0,
    startPfn,
    endPfn,
    offsetVmcoreinfo: from(HV_VMCOREINFO, KH_OFFSET_VMCOREINFO),
    sizeVmcoreinfo: from(HV_VMCOREINFO, KH_SIZE_VMCOREINFO),
    offsetNote: from(HV_NOTE, KH_OFFSET_NOTE),
    sizeNote: from(HV_NOTE, KH_SIZE_NOTE),
    offsetEraseinfo: from(HV_ERASEINFO, KH_OFFSET_ERASEINFO),
    sizeEraseinfo: from(HV_ERASEINFO, KH_SIZE_ERASEINFO),
    startPfn64: v6 ? readU64(b, KH_START_PFN_64) : startPfn,
    endPfn64: v6 ? readU64(b, KH_END_PFN_64) : endPfn,
    maxMapnr64: v6 ? readU64(b, KH_MAX_MAPNR_64) : maxMapnr32,
  };
}

/** The header's compression: the codec names its status bits carry, joined by '+', or 'none'. */
export function compressionOf(status: number): string {
  const names = DUMP_DH_CODECS.filter(([flag]) => (status & flag) !== 0).map(([, name]) => name);
  return names.length === 0 ? 'none' : names.join('+');
}

// ---- the image --------------------------------------------------------------------------------------

/** The last pages read, by frame, evicted round robin (crash diskdump.c page_cache_hdr, DISKDUMP_CACHED_PAGES). */
class PageCache {
  readonly pages: Buffer[] = [];
  private readonly frames: Float64Array;
  private evict = 0;

  constructor(slots: number, pageSize: number) {
    this.frames = new Float64Array(slots).fill(-1);
    for (let i = 0; i < slots; i++) this.pages.push(Buffer.alloc(pageSize));
  }

  /** The slot holding `frame`, or −1. */
  find(frame: number): number {
    for (let i = 0; i < this.frames.length; i++) if (this.frames[i] === frame) return i;
    return -1;
  }

  /** A slot to read into: empty until fill() (a failed read leaves nothing cached). */
  claim(): number {
    const slot = this.evict;
    this.evict = (slot + 1) % this.frames.length;
    this.frames[slot] = -1;
    return slot;
  }

  fill(slot: number, frame: number): void {
    this.frames[slot] = frame;
  }

  /** A copy of the slot's page in `out` (callers may write into what readFrame returns). */
  copyOut(slot: number, out: Buffer): Buffer {
    this.pages[slot]!.copy(out);
    return out;
  }
}

/** Where the parts of the file are. */
interface Layout {
  blockSize: number;
  /** first descriptor, and the end of the descriptor table (where page data may start) */
  descStart: number;
  descEnd: number;
  fileSize: number;
  incomplete: boolean;
}

export class KdumpCompressedImage extends Dom0KdumpImage {
  readonly format = 'kdump-compressed' as const;
  readonly maxFrame: number;
  private readonly page: Buffer;
  private readonly packed: Buffer;
  /** pages read last (an audit reads a leaf page for both views, and shared pages over and over) */
  private readonly cache: PageCache;
  private readonly descChunk = Buffer.alloc(DESC_CHUNK * PAGE_DESC_SIZE);
  private cachedChunk = -1;
  /** the descriptor last looked up */
  private pdOffset = 0;
  private pdSize = 0;
  private pdFlags = 0;

  constructor(
    path: string,
    fd: number,
    symbols: SymbolTable,
    formatFacts: Dom0KdumpFacts,
    readonly header: DiskDumpHeader,
    readonly subHeader: KdumpSubHeader,
    readonly bitmaps: DumpBitmaps,
    private readonly layout: Layout,
  ) {
    super(path, fd, symbols, formatFacts);
    this.page = Buffer.alloc(layout.blockSize);
    this.packed = Buffer.alloc(layout.blockSize);
    this.cache = new PageCache(DISKDUMP_CACHED_PAGES, layout.blockSize);
    this.maxFrame = bitmaps.highestValid();
  }

  /** Read and check page_desc `k` (of frame `frame`) into pdOffset / pdSize / pdFlags; false for a page never written (incomplete dump). */
  private descriptor(k: number, frame: number): boolean {
    const chunk = Math.floor(k / DESC_CHUNK);
    if (chunk !== this.cachedChunk) {
      const at = this.layout.descStart + chunk * DESC_CHUNK * PAGE_DESC_SIZE;
      const want = Math.min(this.descChunk.length, this.layout.descEnd - at);
      const got = readAt(this.file.descriptor, this.descChunk, at, want);
      if (got !== want) throw new InputError(`${this.path}: offset ${at + got}: the page descriptor table is cut short (file changed since it was opened?)`);
      this.cachedChunk = chunk;
    }
    const o = (k % DESC_CHUNK) * PAGE_DESC_SIZE;
    const offset = readU64(this.descChunk, o + PD_OFFSET);
    const size = this.descChunk.readUInt32LE(o + PD_SIZE);
    const flags = this.descChunk.readUInt32LE(o + PD_FLAGS);
    const bs = this.layout.blockSize;
    if (offset === 0 && this.layout.incomplete) return false;
    const ok = offset !== null && offset >= this.layout.descEnd && offset <= this.layout.fileSize && size <= bs && size <= this.layout.fileSize - offset && (flags === 0 ? size === bs : codecName(flags) !== null);
    if (!ok) this.badDescriptor(k, frame, offset, size, flags);
    this.pdOffset = offset!;
    this.pdSize = size;
    this.pdFlags = flags;
    return true;
  }

  /** The InputError for a descriptor that failed the checks of descriptor(). */
  private badDescriptor(k: number, frame: number, offset: number | null, size: number, flags: number): never {
    const o = (k % DESC_CHUNK) * PAGE_DESC_SIZE;
    const at = this.layout.descStart + k * PAGE_DESC_SIZE;
    const what = `page descriptor ${k} (frame ${hex(frame)})`;
    const bs = this.layout.blockSize;
    if (offset === null || offset < this.layout.descEnd || offset > this.layout.fileSize) {
      const shown = offset ?? `0x${this.descChunk.readBigUInt64LE(o + PD_OFFSET).toString(16)}`;
      throw new InputError(`${this.path}: offset ${at + PD_OFFSET}: ${what}: page offset ${shown}, expected page data between the descriptor table's end (${this.layout.descEnd}) and the end of the file (${this.layout.fileSize})`);
    }
    if (size > bs) throw new InputError(`${this.path}: offset ${at + PD_SIZE}: ${what}: size ${size} exceeds block_size ${bs}, expected a page of at most ${bs} bytes`);
    if (size > this.layout.fileSize - offset) throw new InputError(`${this.path}: offset ${at + PD_SIZE}: ${what}: page data at ${offset} + size ${size} runs past the end of the file (${this.layout.fileSize} bytes)`);
    if (flags === 0 ? size !== bs : codecName(flags) === null) {
      const why = flags === 0 ? `size ${size}, expected ${bs} for a page stored uncompressed (flags 0)` : `flags ${hex(flags)}, expected 0 or one of ${DUMP_DH_CODECS.map(([f, n]) => `${hex(f)} (${n})`).join(', ')}`;
      throw new InputError(`${this.path}: offset ${at + (flags === 0 ? PD_SIZE : PD_FLAGS)}: ${what}: ${why}`);
    }
    throw new Error(`page descriptor ${k}: no check failed`);
  }

  frameOffset(frame: number): number {
    if (!Number.isInteger(frame) || !this.bitmaps.isDumped(frame)) return -1;
    if (!this.descriptor(this.bitmaps.rank(frame), frame)) return -1;
    return this.pdFlags === 0 ? this.pdOffset : -1;
  }

  readFrame(frame: number): Buffer | null {
    if (!Number.isInteger(frame) || !this.bitmaps.isValid(frame)) return null;
    if (!this.bitmaps.isDumped(frame)) return this.page.fill(0); // excluded by the dump level
    const hit = this.cache.find(frame);
    if (hit >= 0) return this.cache.copyOut(hit, this.page);
    const k = this.bitmaps.rank(frame);
    if (!this.descriptor(k, frame)) return null;
    const slot = this.cache.claim();
    const into = this.cache.pages[slot]!;
    const stored = this.pdFlags === 0;
    const src = stored ? into : this.packed.subarray(0, this.pdSize);
    const n = readAt(this.file.descriptor, src, this.pdOffset, this.pdSize);
    if (n !== this.pdSize) throw new InputError(`${this.path}: offset ${this.pdOffset + n}: page of frame ${hex(frame)} is cut short (file changed since it was opened?)`);
    if (!stored) {
      try {
        decodePage(this.pdFlags, src, into);
      } catch (e) {
        if (!(e instanceof PageDecodeError)) throw e;
        throw new InputError(`${this.path}: offset ${this.pdOffset}: page of frame ${hex(frame)} (descriptor ${k}, ${this.pdSize} bytes): ${e.message}; expected a page that decompresses to ${this.layout.blockSize} bytes`);
      }
    }
    this.cache.fill(slot, frame);
    return this.cache.copyOut(slot, this.page);
  }

  frameCount(): number {
    return this.bitmaps.validCount;
  }
}

// ---- parsing ----------------------------------------------------------------------------------------

/** Refuse what is not makedumpfile's compressed format, naming what it is. */
function checkSignature(path: string, head: Buffer): void {
  if (isFlattenedDump(head)) throw new InputError(`${path}: offset 0: makedumpfile's flattened format (signature "${MAKEDUMPFILE_SIGNATURE}", written by makedumpfile -F) cannot be read in place; ${FLATTENED_ADVICE}`);
  if (startsWith(head, DISK_DUMP_SIGNATURE)) throw new InputError(`${path}: offset 0: a dump of the old diskdump facility (signature "${DISK_DUMP_SIGNATURE}"), expected makedumpfile's compressed format (signature "${KDUMP_SIGNATURE}")`);
  if (!isKdumpCompressed(head)) throw new InputError(`${path}: offset 0: signature ${JSON.stringify(head.subarray(0, SIG_LEN).toString('latin1'))}, expected "${KDUMP_SIGNATURE}" (makedumpfile's compressed format)`);
}

/** Where the 1st bitmap's runs are: read it in chunks (never the whole bitmap at once). */
function memoryRuns(f: ElfFile, at: number, maxMapnr: number): DumpBitmaps['valid'] {
  const collector = new BitRunCollector(MAX_MEMORY_RUNS);
  const bytes = Math.ceil(maxMapnr / 8);
  const chunk = Buffer.alloc(Math.min(BITMAP_CHUNK_BYTES, bytes + 3));
  for (let done = 0; done < bytes; done += BITMAP_CHUNK_BYTES) {
    const n = Math.min(BITMAP_CHUNK_BYTES, bytes - done);
    chunk.fill(0);
    if (readAt(f.fd, chunk, at + done, n) !== n) f.fail(at + done, `the 1st bitmap is cut short`);
    if (!collector.add(bitmapWords(chunk.subarray(0, n)), done * 8, maxMapnr)) {
      f.fail(at + done, `the 1st bitmap has more than ${MAX_MEMORY_RUNS} runs of frames in memory, expected the machine's RAM ranges`);
    }
  }
  if (!collector.finish(maxMapnr)) f.fail(at, `the 1st bitmap has more than ${MAX_MEMORY_RUNS} runs of frames in memory, expected the machine's RAM ranges`);
  return collector.runs;
}

/**
 * Open and validate makedumpfile's compressed dump of a Xen dom0 (x86_64, 4 KiB blocks). Throws InputError
 * (one line: file, byte offset, what was expected) on anything it cannot use: the flattened format (with
 * the command that rearranges it), a split dump, a native Linux dump without Xen's crash note.
 */
export function openKdumpCompressed(path: string, opts: KdumpCompressedOptions = {}): KdumpCompressedImage {
  const fd = openReadOnly(path);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new InputError(`${path}: not a regular file`);
    const f: ElfFile = new ElfFile(path, fd, st.size);
    const raw = Buffer.alloc(DISK_DUMP_HEADER_SIZE);
    const got = readAt(fd, raw, 0, DISK_DUMP_HEADER_SIZE);
    checkSignature(path, raw.subarray(0, got));
    if (got < DISK_DUMP_HEADER_SIZE) f.fail(0, `truncated: file is ${st.size} bytes, shorter than the ${DISK_DUMP_HEADER_SIZE}-byte disk_dump_header`);
    const h = parseDiskDumpHeader(raw);
    if (h.blockSize !== PAGE_SIZE) f.fail(DH_BLOCK_SIZE, `block_size ${h.blockSize}, expected ${PAGE_SIZE} (the page size of an x86_64 kernel)`);
    const bs = h.blockSize;
    if (h.headerVersion < HV_NOTE) f.fail(DH_HEADER_VERSION, `header_version ${h.headerVersion} has no ELF notes (offset_note, size_note from version ${HV_NOTE}), expected ${HV_NOTE} or later to find Xen's crash note`);
    const blocks = Math.floor(st.size / bs);
    if (h.subHdrSize < 1 || h.subHdrSize > blocks - DISKDUMP_HEADER_BLOCKS) {
      f.fail(DH_SUB_HDR_SIZE, `sub_hdr_size ${h.subHdrSize} blocks, expected at least 1 and the sub header inside the file (${st.size} bytes = ${blocks} blocks of ${bs})`);
    }
    const bitmapAt = (DISKDUMP_HEADER_BLOCKS + h.subHdrSize) * bs;
    if (h.bitmapBlocks > blocks - DISKDUMP_HEADER_BLOCKS - h.subHdrSize) {
      f.fail(DH_BITMAP_BLOCKS, `bitmap_blocks ${h.bitmapBlocks}: the bitmaps (${h.bitmapBlocks} × ${bs} bytes at offset ${bitmapAt}) run past the end of the file (${st.size} bytes)`);
    }
    const subRaw = f.bytes(bs, KDUMP_SUB_HEADER_SIZE);
    const sh = parseKdumpSubHeader(subRaw, h.headerVersion, h.maxMapnr32);
    if (h.headerVersion >= HV_SPLIT && sh.split !== 0) {
      f.fail(bs + KH_SPLIT, `one part of a split dump (makedumpfile --split, pfns ${sh.startPfn64 ?? '?'}-${sh.endPfn64 ?? '?'}); reassemble the parts first: makedumpfile --reassemble DUMPFILE1 DUMPFILE2 [...] DUMPFILE`);
    }
    // max_mapnr: the frames both bitmaps cover; each half of the bitmap area must hold max_mapnr bits
    const mapnrAt = h.headerVersion >= HV_MAPNR_64 ? bs + KH_MAX_MAPNR_64 : DH_MAX_MAPNR;
    const maxMapnr = sh.maxMapnr64;
    const half = (h.bitmapBlocks * bs) / 2;
    if (maxMapnr === null || maxMapnr < 1 || maxMapnr > MAX_MFN_ARCH + 1) {
      f.fail(mapnrAt, `max_mapnr ${maxMapnr ?? `0x${subRaw.readBigUInt64LE(KH_MAX_MAPNR_64).toString(16)}`}, expected 1 to ${hex(MAX_MFN_ARCH + 1)} frames (52-bit machine addresses)`);
    }
    if (Math.ceil(maxMapnr / 8) > half) {
      f.fail(mapnrAt, `max_mapnr ${hex(maxMapnr)} needs two bitmaps of ${Math.ceil(maxMapnr / 8)} bytes, but bitmap_blocks ${h.bitmapBlocks} holds two of ${half}; expected bitmap_blocks ≥ ${2 * Math.ceil(Math.ceil(maxMapnr / 8) / bs)}`);
    }
    const valid = memoryRuns(f, bitmapAt, maxMapnr);
    // the 2nd bitmap, read straight into its words (max_mapnr / 8 bytes, inside the file: checked above)
    const dumped = new Uint32Array(Math.ceil(maxMapnr / 32));
    const dumpedBytes = Math.ceil(maxMapnr / 8);
    if (readAt(fd, Buffer.from(dumped.buffer, 0, dumpedBytes), bitmapAt + half, dumpedBytes) !== dumpedBytes) f.fail(bitmapAt + half, 'the 2nd bitmap is cut short');
    const bitmaps = new DumpBitmaps(valid, dumped, maxMapnr);
    const stray = bitmaps.firstDumpedNotValid();
    if (stray >= 0) {
      f.fail(bitmapAt + half + Math.floor(stray / 8), `the 2nd bitmap marks frame ${hex(stray)} dumped but the 1st has it outside memory; expected the dumped frames inside the 1st bitmap's`);
    }
    const descStart = (DISKDUMP_HEADER_BLOCKS + h.subHdrSize + h.bitmapBlocks) * bs;
    const descEnd = descStart + bitmaps.dumpedCount * PAGE_DESC_SIZE;
    if (descEnd > st.size) {
      f.fail(descStart, `the 2nd bitmap marks ${bitmaps.dumpedCount} frames dumped; their page descriptors (${bitmaps.dumpedCount} × ${PAGE_DESC_SIZE} bytes from offset ${descStart}) run past the end of the file (${st.size} bytes)`);
    }
    // the vmcore's ELF notes, as the ELF reader reads them
    const noteAt = sh.offsetNote;
    const noteSize = sh.sizeNote;
    if (noteAt === null || noteSize === null || noteAt === 0 || noteSize === 0 || noteAt > st.size || noteSize > st.size - noteAt) {
      f.fail(bs + KH_OFFSET_NOTE, `offset_note ${noteAt ?? '≥ 2^53'} + size_note ${noteSize ?? '≥ 2^53'}: expected the vmcore's ELF notes inside the file (${st.size} bytes)`);
    }
    const notes = readKdumpNotes(f, [{ offset: noteAt, size: noteSize, sizeAt: bs + KH_SIZE_NOTE, what: 'the ELF notes (kdump_sub_header offset_note)', kind: 'segment' }]);
    const crashInfo = requireCrashInfo(path, noteAt, notes);
    const facts: Dom0KdumpFacts = {
      kind: 'dom0-kdump',
      crashInfo,
      notes: notes.notes,
      segments: valid.map((r) => ({ maddr: r.start * PAGE_SIZE, size: (r.end - r.start) * PAGE_SIZE, fileOffset: -1 })),
      vmcoreInfoXen: notes.vmcoreInfoXen,
      compression: compressionOf(h.status),
    };
    const layout: Layout = { blockSize: bs, descStart, descEnd, fileSize: st.size, incomplete: (h.status & DUMP_DH_COMPRESSED_INCOMPLETE) !== 0 };
    return new KdumpCompressedImage(path, fd, opts.symbols ?? new Map(), facts, h, sh, bitmaps, layout);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

