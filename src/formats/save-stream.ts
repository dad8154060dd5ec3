// Reader of `xl save` files and bare libxc migration streams v2/v3, following xen-project/xen
// docs/specs/libxc-migration-stream.pandoc (rev 3), docs/specs/libxl-migration-stream.pandoc (rev 2),
// tools/libs/guest/xg_sr_stream_format.h, xg_sr_restore.c, xg_sr_restore_x86_pv.c and tools/xl/xl.h
// (RELEASE-4.17.0 … RELEASE-4.22.0; docs/spec-notes/stream-v2.md).
//
// One pass over the record headers with positional reads (a save file can be tens of GiB, it is never
// read whole): PAGE_DATA records contribute their pfn arrays (read in 64 KiB chunks) to an index
// pfn → file offset of the page's 4096 bytes, kept in typed arrays; the few small records the views
// need (X86_PV_INFO, X86_PV_P2M_FRAMES, SHARED_INFO, vCPU 0's X86_PV_VCPU_BASIC) are read; every other
// record is checked and skipped. Every length is validated against REC_LENGTH_MAX and the file size
// before anything it names is allocated. Frames are pfns: page tables are normalised by the saver,
// p2m leaf pages still hold the source host's mfns. Record headers and small records are read through a
// 64 KiB read-ahead window (read-window.ts), so a run of empty records costs no system call each. A stream
// that just ends (no END record: what a failed `xl save` leaves, xg_sr_save.c writes END last) is read up
// to its last whole record and described (StreamStop); it is an input error only when it stops before
// X86_PV_P2M_FRAMES and SHARED_INFO, which is all an audit needs.
import * as fs from 'node:fs';
import { readAt, openReadOnly, ParsedFile } from './file-io.js';
import { StreamImage, type StreamCounts, type StreamFacts, type XlHeaderInfo } from './save-stream-image.js';
import { ReadWindow } from './read-window.js';
import { parseVcpuContext64, type VcpuContext } from './vcpu-context.js';
import { FRAME_ABSENT, codeOfNoDataType, pfnIndexOf, RunLog } from './save-stream-index.js';
import { PAGE_SHIFT, PAGE_SIZE, SIZEOF_VCPU_GUEST_CONTEXT_64, VCPU_CTRLREG3_OFFSET_64, hex } from '../xen/abi.js';
import type { ImageFormat, SavedP2m, StreamStop } from './guest-image.js';
import type { SymbolTable } from './symbols.js';
import { InputError } from '../common/errors.js';
import { XL_MAGIC, XL_HEADER_SIZE, XL_OFF_BYTEORDER, XL_OFF_MANDATORY_FLAGS, XL_OFF_OPTIONAL_FLAGS, XL_OFF_OPTIONAL_DATA_LEN, SAVEFILE_BYTEORDER_VALUE, XL_MANDATORY_FLAG_JSON, XL_MANDATORY_FLAG_STREAMV2, XL_MANDATORY_FLAG_ALL, LIBXL_HDR_IDENT, LIBXL_HDR_SIZE, LIBXL_HDR_VERSION, LIBXL_HDR_OFF_VERSION, LIBXL_HDR_OFF_OPTIONS, LIBXL_HDR_OPT_BIG_ENDIAN, LIBXL_HDR_OPT_RESERVED, LIBXL_REC_TYPE_END, LIBXL_REC_TYPE_LIBXC_CONTEXT, IHDR_SIZE, IHDR_MARKER_BYTES, IHDR_OFF_ID, IHDR_OFF_VERSION, IHDR_OFF_OPTIONS, IHDR_OFF_RES1, IHDR_OFF_RES2, IHDR_ID, IHDR_VERSION_MIN, IHDR_VERSION_MAX, IHDR_VERSION_STATIC_DATA, IHDR_OPT_BIG_ENDIAN, IHDR_OPT_RESERVED, DHDR_SIZE, DHDR_OFF_PAGE_SHIFT, DHDR_OFF_RES1, DHDR_OFF_XEN_MAJOR, DHDR_OFF_XEN_MINOR, DHDR_TYPE_X86_PV, DHDR_TYPE_X86_HVM, RHDR_SIZE, REC_ALIGN, REC_LENGTH_MAX, REC_TYPE_END, REC_TYPE_PAGE_DATA, REC_TYPE_X86_PV_INFO, REC_TYPE_X86_PV_P2M_FRAMES, REC_TYPE_X86_PV_VCPU_BASIC, REC_TYPE_X86_PV_VCPU_EXTENDED, REC_TYPE_X86_PV_VCPU_XSAVE, REC_TYPE_SHARED_INFO, REC_TYPE_X86_TSC_INFO, REC_TYPE_HVM_CONTEXT, REC_TYPE_HVM_PARAMS, REC_TYPE_TOOLSTACK, REC_TYPE_X86_PV_VCPU_MSRS, REC_TYPE_VERIFY, REC_TYPE_CHECKPOINT, REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST, REC_TYPE_STATIC_DATA_END, REC_TYPE_X86_CPUID_POLICY, REC_TYPE_X86_MSR_POLICY, REC_TYPE_OPTIONAL, REC_TYPE_NAMES, recordName, PAGE_DATA_HDR_SIZE, PFN_WORD_SIZE, PFN_WORD_HI_PFN_MASK, PFN_WORD_HI_RESERVED_MASK, PFN_WORD_TYPE_SHIFT, PFINFO_INVALID_FIRST, PFINFO_INVALID_LAST, typeHasData, X86_PV_INFO_SIZE, GUEST_WIDTH_32, GUEST_WIDTH_64, PT_LEVELS_64, P2M_FRAMES_HDR_SIZE, VCPU_HDR_SIZE, VCPU_EXTENDED_MAX, VCPU_XSAVE_MIN, VCPU_MSR_ENTRY_SIZE, VCPU_RDX_OFFSET_64, X86_TSC_INFO_SIZE, X86_TSC_INFO_OFF_RES, CPUID_LEAF_SIZE, MSR_ENTRY_SIZE, LIBXL_REC_NAMES } from '../xen/stream-format.js';

/** frameCode(pfn) values that are not file offsets, and pageType(pfn) of an absent pfn (save-stream-index.ts). */
export { FRAME_ABSENT, FRAME_XTAB, FRAME_BROKEN, FRAME_XALLOC, NO_TYPE } from './save-stream-index.js';
export { StreamImage, type StreamCounts, type StreamFacts, type XlHeaderInfo } from './save-stream-image.js';

// ---- detection -----------------------------------------------------------------------------------------
export function isXlSave(head: Buffer): boolean {
  return head.length >= XL_MAGIC.length && head.subarray(0, XL_MAGIC.length).equals(XL_MAGIC);
}

/** A bare libxc stream: marker ~0 (8 bytes of 0xff) then "XENF". */
export function isLibxcStream(head: Buffer): boolean {
  if (head.length < IHDR_OFF_ID + 4) return false;
  for (let i = 0; i < IHDR_MARKER_BYTES; i++) if (head[i] !== 0xff) return false;
  return head.readUInt32BE(IHDR_OFF_ID) === IHDR_ID;
}

// ---- small helpers -------------------------------------------------------------------------------------
const WORD_SCALE = 2 ** 32;
/** High words above this make a u64 larger than 2^53 (not a safe JS number). */
const SAFE_HI_MAX = Math.floor(Number.MAX_SAFE_INTEGER / WORD_SCALE);
/** pfn words read per positional read of a PAGE_DATA pfn array / P2M_FRAMES list (64 KiB). */
const CHUNK_ENTRIES = 8192;
/** Bytes of a padding run (at most REC_ALIGN − 1). */
const ZERO_PAD = Buffer.alloc(REC_ALIGN);

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** Distinct optional record types listed in StreamFacts.skippedOptional (the rest are only counted). */
const MAX_LISTED_OPTIONAL_TYPES = 64;
/** vCPU contexts kept (one per vcpu_id; Xen's HVM_MAX_VCPUS is 128, a PV guest has far fewer). */
export const MAX_VCPU_CONTEXTS = 4096;

// ---- the parser -----------------------------------------------------------------------------------------
/** X86_PV_P2M_FRAMES as restore assembles it: pfns[k] is the page holding p2m[(startLeaf + k)·fpp …]. */
interface P2mPiece {
  start: number;
  end: number;
  startLeaf: number;
  pfns: Float64Array;
}

class StreamParser extends ParsedFile {
  private readonly win: ReadWindow;
  private readonly chunk = Buffer.alloc(CHUNK_ENTRIES * PFN_WORD_SIZE);
  readonly log = new RunLog();
  records = 0;
  pageDataRecords = 0;
  version = 0;
  xenMajor = 0;
  xenMinor = 0;
  width = 0;
  levels = 0;
  seenPvInfo = false;
  seenStaticDataEnd = false;
  /** restore's max_pfn: grown only by X86_PV_P2M_FRAMES (expand_p2m) */
  restoreMaxPfn = 0;
  p2m: P2mPiece | null = null;
  sharedInfo: Buffer | null = null;
  cr3: bigint | null = null;
  startInfoPfn = -1;
  readonly vcpus = new Set<number>();
  checkpointed = false;
  libxcEnd = -1;
  readonly skippedOptional: number[] = [];
  optionalRecords = 0;
  /** reads outside the window */
  reads = 0;
  readonly contexts = new Map<number, VcpuContext>();
  /** whole libxc records of each known type (optional ones: optionalRecords), types in first-seen order, the last one */
  readonly typeCounts = new Float64Array(REC_TYPE_NAMES.length);
  readonly typesSeen: number[] = [];
  lastType = -1;
  lastAt = -1;
  /** set when the stream stops without END: where, and the record cut off (null: cut between records) */
  stop: { offset: number; torn: string | null } | null = null;

  constructor(path: string, fd: number, size: number) {
    super(path, fd, size);
    this.win = new ReadWindow(fd, size);
  }

  get fileReads(): number {
    return this.win.reads + this.reads;
  }

  /** The record header at `at`: [type, length] (read through the window, no allocation). */
  private readonly rh = [0, 0];
  header(at: number, what: string): number[] {
    const i = this.win.locate(at, RHDR_SIZE);
    const b = i >= 0 ? this.win.bytes : this.read(at, RHDR_SIZE, what);
    const o = i >= 0 ? i : 0;
    this.rh[0] = b.readUInt32LE(o);
    this.rh[1] = b.readUInt32LE(o + 4);
    return this.rh;
  }

  /** `length` bytes at `off` as a transient view (valid until the next peek/read): the read-ahead window. */
  peek(off: number, length: number, what: string): Buffer {
    return this.win.view(off, length) ?? this.read(off, length, what);
  }

  /** Read exactly `length` bytes at `off` into a fresh or given buffer; a short file is an error. */
  read(off: number, length: number, what: string, into?: Buffer): Buffer {
    if (off + length > this.size) {
      this.fail(off, `${what} (${length} bytes) runs past the end of the file (${this.size} bytes); the file is truncated`);
    }
    const buf = into ?? Buffer.alloc(length);
    this.reads++;
    const n = readAt(this.fd, buf, off, length);
    if (n !== length) this.fail(off, `${what}: read ${n} of ${length} bytes`);
    return buf;
  }

  // ---- xl / libxl wrapper ------------------------------------------------------------------
  parseXl(): { libxcOffset: number; end: number; xl: XlHeaderInfo } {
    const h = this.read(0, Math.min(this.size, XL_HEADER_SIZE), 'xl header');
    if (!isXlSave(h)) this.fail(0, `expected the xl save magic "Xen saved domain, xl format\\n \\0 \\r"`);
    if (h.length < XL_HEADER_SIZE) this.fail(0, `xl header needs ${XL_HEADER_SIZE} bytes, the file has ${this.size}`);
    const byteorder = h.readUInt32LE(XL_OFF_BYTEORDER);
    if (byteorder !== SAVEFILE_BYTEORDER_VALUE) {
      const be = h.readUInt32BE(XL_OFF_BYTEORDER) === SAVEFILE_BYTEORDER_VALUE;
      this.fail(XL_OFF_BYTEORDER, `xl byteorder ${hex(byteorder)}, expected ${hex(SAVEFILE_BYTEORDER_VALUE)} written little-endian${be ? ' (this file is big-endian)' : ''}`);
    }
    const mandatory = h.readUInt32LE(XL_OFF_MANDATORY_FLAGS);
    if ((mandatory & ~XL_MANDATORY_FLAG_ALL) !== 0) {
      this.fail(XL_OFF_MANDATORY_FLAGS, `unknown xl mandatory flags ${hex(mandatory & ~XL_MANDATORY_FLAG_ALL)} (known: JSON config ${XL_MANDATORY_FLAG_JSON}, stream v2 ${XL_MANDATORY_FLAG_STREAMV2})`);
    }
    if ((mandatory & XL_MANDATORY_FLAG_STREAMV2) === 0) {
      this.fail(XL_OFF_MANDATORY_FLAGS, 'legacy (pre-v2, Xen ≤ 4.5) save stream: mandatory flag STREAMv2 is not set; convert it with convert-legacy-stream first');
    }
    const optionalFlags = h.readUInt32LE(XL_OFF_OPTIONAL_FLAGS);
    const optLen = h.readUInt32LE(XL_OFF_OPTIONAL_DATA_LEN);
    if (XL_HEADER_SIZE + optLen > this.size) {
      this.fail(XL_OFF_OPTIONAL_DATA_LEN, `optional data length ${optLen} runs past the end of the file (${this.size} bytes)`);
    }
    let off = XL_HEADER_SIZE + optLen;
    const lh = this.read(off, LIBXL_HDR_SIZE, 'libxl stream header');
    if (!lh.subarray(0, LIBXL_HDR_IDENT.length).equals(LIBXL_HDR_IDENT)) {
      this.fail(off, `expected the libxl header ident "LibxlFmt", found 0x${lh.subarray(0, LIBXL_HDR_IDENT.length).toString('hex')}`);
    }
    const lver = lh.readUInt32BE(LIBXL_HDR_OFF_VERSION);
    if (lver !== LIBXL_HDR_VERSION) this.fail(off + LIBXL_HDR_OFF_VERSION, `libxl stream version ${lver}, expected ${LIBXL_HDR_VERSION}`);
    const lopt = lh.readUInt32BE(LIBXL_HDR_OFF_OPTIONS);
    if (lopt & LIBXL_HDR_OPT_BIG_ENDIAN) this.fail(off + LIBXL_HDR_OFF_OPTIONS, 'big-endian libxl stream: no Xen tool writes or restores those');
    if (lopt & LIBXL_HDR_OPT_RESERVED) this.fail(off + LIBXL_HDR_OFF_OPTIONS, `reserved libxl header option bits ${hex(lopt & LIBXL_HDR_OPT_RESERVED)} are set`);
    off += LIBXL_HDR_SIZE;

    let libxcOffset = -1;
    const xl = { mandatoryFlags: mandatory, optionalFlags, optionalDataLength: optLen, libxlOptions: lopt };
    for (;;) {
      const at = off;
      // the libxc stream inside was whole but the file ends before libxl's END: a copy cut short
      if (libxcOffset >= 0 && at + RHDR_SIZE > this.size) {
        this.stopAt(at, at === this.size ? null : 'libxl record header');
        return { libxcOffset, end: at, xl };
      }
      const rh = this.peek(at, RHDR_SIZE, 'libxl record header');
      const type = rh.readUInt32LE(0);
      const length = rh.readUInt32LE(4);
      const name = LIBXL_REC_NAMES[type] ?? `type ${hex(type)}`;
      if (type >= LIBXL_REC_NAMES.length) this.fail(at, `unknown libxl record type ${hex(type)} (known 0–${LIBXL_REC_NAMES.length - 1})`);
      const padded = alignUp(length, REC_ALIGN);
      if (at + RHDR_SIZE + padded > this.size) {
        this.fail(at, `libxl record ${name}: body of ${length} bytes (${padded} padded) runs past the end of the file (${this.size} bytes)`);
      }
      this.checkPadding(at + RHDR_SIZE + length, padded - length, `libxl record ${name}`);
      off = at + RHDR_SIZE + padded;
      if (type === LIBXL_REC_TYPE_END) {
        if (length !== 0) this.fail(at, `libxl END record has length ${length}, expected 0`);
        if (libxcOffset < 0) this.fail(at, 'libxl END before any LIBXC_CONTEXT record: the file holds no domain memory');
        return { libxcOffset, end: off, xl };
      }
      if (type === LIBXL_REC_TYPE_LIBXC_CONTEXT) {
        if (length !== 0) this.fail(at, `libxl LIBXC_CONTEXT record has length ${length}, expected 0 (the libxc stream follows it)`);
        if (libxcOffset >= 0) this.fail(at, 'a second LIBXC_CONTEXT record (checkpointed libxl streams are not supported)');
        libxcOffset = off;
        off = this.parseLibxc(off);
        this.libxcEnd = off;
        if (this.stop) return { libxcOffset, end: off, xl };
        if (this.checkpointed) this.fail(off, 'the libxc stream inside a libxl stream ended with CHECKPOINT (checkpointed streams are not supported here)');
      }
      // EMULATOR_* / CHECKPOINT_* records: checked for framing above, content not needed
    }
  }

  checkPadding(off: number, n: number, what: string): void {
    if (n === 0) return;
    const pad = this.peek(off, n, `${what} padding`);
    if (!pad.equals(ZERO_PAD.subarray(0, n))) this.fail(off, `${what}: padding to ${REC_ALIGN} bytes is not all zero (0x${pad.toString('hex')})`);
  }

  /** The stream ends at `at` without END (torn: the record the file end cuts through, or null). */
  stopAt(at: number, torn: string | null): number {
    this.stop = { offset: at, torn };
    return at;
  }

  countType(type: number): void {
    if (type >= REC_TYPE_NAMES.length) return; // optional (counted apart) or unknown (an error)
    if (this.typeCounts[type]!++ === 0) this.typesSeen.push(type);
  }

  /** What a stream without END holds, for the report. */
  stopFacts(): StreamStop | null {
    if (!this.stop) return null;
    return {
      offset: this.stop.offset,
      afterRecord: this.lastType < 0 ? 'the headers' : recordName(this.lastType),
      afterRecordOffset: this.lastAt,
      tornRecord: this.stop.torn,
      records: [
        ...this.typesSeen.map((type) => ({ name: recordName(type), count: this.typeCounts[type]! })),
        ...(this.optionalRecords > 0 ? [{ name: 'optional (skipped)', count: this.optionalRecords }] : []),
      ],
      vcpuRecords: [...this.vcpus].sort((a, b) => a - b),
    };
  }

  // ---- libxc stream ----------------------------------------------------------------------------
  /** Parse a libxc stream starting at `base`; returns the offset just past its last record. */
  parseLibxc(base: number): number {
    const ih = this.read(base, IHDR_SIZE, 'libxc image header');
    for (let i = 0; i < IHDR_MARKER_BYTES; i++) {
      if (ih[i] !== 0xff) {
        const legacy = ' (a legacy pre-v2 stream has a zero bit here)';
        this.fail(base, `image header marker 0x${ih.subarray(0, IHDR_MARKER_BYTES).toString('hex')}, expected 0xffffffffffffffff${legacy}`);
      }
    }
    const id = ih.readUInt32BE(IHDR_OFF_ID);
    if (id !== IHDR_ID) this.fail(base + IHDR_OFF_ID, `image header id ${hex(id)}, expected ${hex(IHDR_ID)} ("XENF")`);
    const version = ih.readUInt32BE(IHDR_OFF_VERSION);
    if (version < IHDR_VERSION_MIN || version > IHDR_VERSION_MAX) {
      this.fail(base + IHDR_OFF_VERSION, `stream version ${version}, expected ${IHDR_VERSION_MIN}..${IHDR_VERSION_MAX}`);
    }
    const options = ih.readUInt16BE(IHDR_OFF_OPTIONS);
    if (options & IHDR_OPT_BIG_ENDIAN) this.fail(base + IHDR_OFF_OPTIONS, 'big-endian stream (options bit 0): restore refuses those');
    if (options & IHDR_OPT_RESERVED) this.fail(base + IHDR_OFF_OPTIONS, `reserved image header option bits ${hex(options & IHDR_OPT_RESERVED)} are set`);
    if (ih.readUInt16BE(IHDR_OFF_RES1) !== 0 || ih.readUInt32BE(IHDR_OFF_RES2) !== 0) {
      this.fail(base + IHDR_OFF_RES1, 'reserved image header fields are not zero');
    }
    this.version = version;

    const dOff = base + IHDR_SIZE;
    const dh = this.read(dOff, DHDR_SIZE, 'libxc domain header');
    const dtype = dh.readUInt32LE(0);
    if (dtype === DHDR_TYPE_X86_HVM) throw new InputError(`${this.path}: offset ${dOff}: domain type 2 (x86 HVM): HVM guests are not supported (only x86 PV guests have a P2M to audit)`);
    if (dtype !== DHDR_TYPE_X86_PV) this.fail(dOff, `domain type ${dtype}, expected ${DHDR_TYPE_X86_PV} (x86 PV)`);
    const pageShift = dh.readUInt16LE(DHDR_OFF_PAGE_SHIFT);
    if (pageShift !== PAGE_SHIFT) this.fail(dOff + DHDR_OFF_PAGE_SHIFT, `page_shift ${pageShift}, expected ${PAGE_SHIFT}`);
    if (dh.readUInt16LE(DHDR_OFF_RES1) !== 0) this.fail(dOff + DHDR_OFF_RES1, 'reserved domain header field is not zero');
    this.xenMajor = dh.readUInt32LE(DHDR_OFF_XEN_MAJOR);
    this.xenMinor = dh.readUInt32LE(DHDR_OFF_XEN_MINOR);

    let off = dOff + DHDR_SIZE;
    for (;;) {
      if (off === this.size && this.checkpointed) return off; // a checkpointed stream stops after CHECKPOINT
      const at = off;
      if (at + RHDR_SIZE > this.size) return this.stopAt(at, at === this.size ? null : 'record header');
      const rh = this.header(at, 'record header');
      const type = rh[0]!;
      const length = rh[1]!;
      if (length > REC_LENGTH_MAX) this.fail(at, `record ${recordName(type)} length ${length} exceeds REC_LENGTH_MAX (${REC_LENGTH_MAX} = 128 MiB)`);
      const padded = alignUp(length, REC_ALIGN);
      const body = at + RHDR_SIZE;
      if (body + padded > this.size) return this.stopAt(at, recordName(type));
      if (padded !== length) this.checkPadding(body + length, padded - length, `record ${recordName(type)}`);
      this.records++;
      this.countType(type);
      this.lastType = type;
      this.lastAt = at;
      this.checkpointed = false;
      off = body + padded;
      if (this.record(type, length, at, body)) return off;
    }
  }

  /** Handle one record; returns true at the end of the stream. */
  private record(type: number, length: number, at: number, body: number): boolean {
    // this runs once per record: names are built only for errors, no closure per call
    if ((type & REC_TYPE_OPTIONAL) !== 0) return this.optional(type);
    switch (type) {
      case REC_TYPE_END:
        this.empty(type, length, at);
        return true;
      case REC_TYPE_PAGE_DATA:
        this.pageData(length, at, body);
        return false;
      case REC_TYPE_X86_PV_INFO:
        this.pvInfo(length, at, body);
        return false;
      case REC_TYPE_X86_PV_P2M_FRAMES:
        this.p2mFrames(length, at, body);
        return false;
      case REC_TYPE_X86_PV_VCPU_BASIC:
      case REC_TYPE_X86_PV_VCPU_EXTENDED:
      case REC_TYPE_X86_PV_VCPU_XSAVE:
      case REC_TYPE_X86_PV_VCPU_MSRS:
        this.vcpu(type, length, at, body);
        return false;
      case REC_TYPE_SHARED_INFO:
        if (!this.seenPvInfo) this.fail(at, 'SHARED_INFO record before X86_PV_INFO');
        if (length !== PAGE_SIZE) this.fail(at, `SHARED_INFO record has length ${length}, expected ${PAGE_SIZE}`);
        this.sharedInfo = this.read(body, PAGE_SIZE, 'SHARED_INFO page');
        return false;
      case REC_TYPE_X86_TSC_INFO: {
        if (length !== X86_TSC_INFO_SIZE) this.fail(at, `X86_TSC_INFO record has length ${length}, expected ${X86_TSC_INFO_SIZE}`);
        const t = this.peek(body, X86_TSC_INFO_SIZE, 'X86_TSC_INFO');
        if (t.readUInt32LE(X86_TSC_INFO_OFF_RES) !== 0) this.fail(body + X86_TSC_INFO_OFF_RES, 'X86_TSC_INFO reserved field is not zero');
        return false;
      }
      case REC_TYPE_HVM_CONTEXT:
      case REC_TYPE_HVM_PARAMS:
        return this.fail(at, `${recordName(type)} record in an x86 PV stream (restore has no PV handler for it)`);
      case REC_TYPE_TOOLSTACK:
        return this.fail(at, 'TOOLSTACK record: deprecated and not restorable by a v2 restore');
      case REC_TYPE_VERIFY:
        this.empty(type, length, at);
        return false;
      case REC_TYPE_CHECKPOINT:
        this.empty(type, length, at);
        this.checkpointed = true;
        return false;
      case REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST:
        return this.fail(at, 'CHECKPOINT_DIRTY_PFN_LIST record: it only travels on the COLO back channel, never in a saved stream');
      case REC_TYPE_STATIC_DATA_END:
        this.empty(type, length, at);
        this.needV3(type, at);
        if (this.seenStaticDataEnd) this.fail(at, 'a second STATIC_DATA_END record');
        this.seenStaticDataEnd = true;
        return false;
      case REC_TYPE_X86_CPUID_POLICY:
      case REC_TYPE_X86_MSR_POLICY: {
        this.needV3(type, at);
        const unit = type === REC_TYPE_X86_CPUID_POLICY ? CPUID_LEAF_SIZE : MSR_ENTRY_SIZE;
        if (length === 0 || length % unit !== 0) this.fail(at, `${recordName(type)} record has length ${length}, expected a non-zero multiple of ${unit}`);
        return false;
      }
      default:
        return this.fail(at, `unknown mandatory record type ${hex(type >>> 0)} (known 0x0–${hex(REC_TYPE_NAMES.length - 1)}; optional records set bit 31)`);
    }
  }

  private empty(type: number, length: number, at: number): void {
    if (length !== 0) this.fail(at, `${recordName(type)} record has length ${length}, expected 0`);
  }

  private needV3(type: number, at: number): void {
    if (this.version < IHDR_VERSION_STATIC_DATA) this.fail(at, `${recordName(type)} record in a version ${this.version} stream (it exists from version ${IHDR_VERSION_STATIC_DATA})`);
  }

  /** An optional record (REC_TYPE_OPTIONAL set): skipped, counted, its type listed once. */
  private optional(type: number): boolean {
    this.optionalRecords++;
    const t = type >>> 0;
    if (this.skippedOptional.length < MAX_LISTED_OPTIONAL_TYPES && !this.skippedOptional.includes(t)) this.skippedOptional.push(t);
    return false;
  }

  /** v2 streams have no STATIC_DATA_END: restore infers it at the first P2M_FRAMES / PAGE_DATA. */
  private requireStaticDataEnd(at: number, name: string): void {
    if (this.version < IHDR_VERSION_STATIC_DATA) this.seenStaticDataEnd = true;
    if (!this.seenStaticDataEnd) this.fail(at, `${name} record before STATIC_DATA_END`);
  }

  private pvInfo(length: number, at: number, body: number): void {
    if (this.seenPvInfo) this.fail(at, 'a second X86_PV_INFO record');
    if (length !== X86_PV_INFO_SIZE) this.fail(at, `X86_PV_INFO record has length ${length}, expected ${X86_PV_INFO_SIZE}`);
    const b = this.peek(body, X86_PV_INFO_SIZE, 'X86_PV_INFO');
    const width = b[0]!;
    const levels = b[1]!;
    if (width === GUEST_WIDTH_32) throw new InputError(`${this.path}: offset ${body}: 32-bit PV guests are not supported (X86_PV_INFO guest_width 4, pt_levels ${levels})`);
    if (width !== GUEST_WIDTH_64 || levels !== PT_LEVELS_64) {
      this.fail(body, `X86_PV_INFO guest_width ${width}, pt_levels ${levels}; expected width ${GUEST_WIDTH_64} with ${PT_LEVELS_64} levels (or 4 with 3)`);
    }
    for (let i = 2; i < X86_PV_INFO_SIZE; i++) if (b[i] !== 0) this.fail(body + i, 'X86_PV_INFO reserved bytes are not zero');
    this.width = width;
    this.levels = levels;
    this.seenPvInfo = true;
  }

  private p2mFrames(length: number, at: number, body: number): void {
    this.requireStaticDataEnd(at, 'X86_PV_P2M_FRAMES');
    if (!this.seenPvInfo) this.fail(at, 'X86_PV_P2M_FRAMES record before X86_PV_INFO');
    if (length < P2M_FRAMES_HDR_SIZE) this.fail(at, `X86_PV_P2M_FRAMES record has length ${length}, expected at least ${P2M_FRAMES_HDR_SIZE}`);
    const h = this.peek(body, P2M_FRAMES_HDR_SIZE, 'X86_PV_P2M_FRAMES header');
    const start = h.readUInt32LE(0);
    const end = h.readUInt32LE(4);
    if (start > end) this.fail(body, `X86_PV_P2M_FRAMES start pfn ${hex(start)} is above end pfn ${hex(end)}`);
    const fpp = PAGE_SIZE / this.width;
    const startLeaf = Math.floor(start / fpp);
    const n = Math.floor(end / fpp) + 1 - startLeaf;
    const expected = P2M_FRAMES_HDR_SIZE + n * PFN_WORD_SIZE;
    if (length !== expected) {
      this.fail(at, `X86_PV_P2M_FRAMES record has length ${length}, expected ${P2M_FRAMES_HDR_SIZE} + ${n} leaf pfns × ${PFN_WORD_SIZE} = ${expected} for pfns ${hex(start)}-${hex(end)}`);
    }
    const pfns = new Float64Array(n); // n·8 ≤ length ≤ REC_LENGTH_MAX, and the body is inside the file
    for (let k = 0; k < n; k += CHUNK_ENTRIES) {
      const m = Math.min(CHUNK_ENTRIES, n - k);
      const c = this.read(body + P2M_FRAMES_HDR_SIZE + k * PFN_WORD_SIZE, m * PFN_WORD_SIZE, 'X86_PV_P2M_FRAMES pfns', this.chunk);
      for (let j = 0; j < m; j++) {
        const lo = c.readUInt32LE(j * PFN_WORD_SIZE);
        const hi = c.readUInt32LE(j * PFN_WORD_SIZE + 4);
        pfns[k + j] = hi > SAFE_HI_MAX ? FRAME_ABSENT : hi * WORD_SCALE + lo;
      }
    }
    // restore stores them at p2m_pfns[start/fpp .. end/fpp]; a later record overwrites its range
    const prev = this.p2m;
    if (!prev) this.p2m = { start, end, startLeaf, pfns };
    else {
      const s = Math.min(prev.startLeaf, startLeaf);
      const e = Math.max(prev.startLeaf + prev.pfns.length, startLeaf + n);
      const merged = new Float64Array(e - s).fill(FRAME_ABSENT);
      merged.set(prev.pfns, prev.startLeaf - s);
      merged.set(pfns, startLeaf - s);
      this.p2m = { start: Math.min(prev.start, start), end: Math.max(prev.end, end), startLeaf: s, pfns: merged };
    }
    if (end > this.restoreMaxPfn) this.restoreMaxPfn = end; // expand_p2m
  }

  private pageData(length: number, at: number, body: number): void {
    this.requireStaticDataEnd(at, 'PAGE_DATA');
    this.pageDataRecords++;
    if (length < PAGE_DATA_HDR_SIZE) this.fail(at, `PAGE_DATA record has length ${length}, expected at least ${PAGE_DATA_HDR_SIZE}`);
    const h = this.peek(body, PAGE_DATA_HDR_SIZE, 'PAGE_DATA header');
    const count = h.readUInt32LE(0);
    if (count < 1) this.fail(body, 'PAGE_DATA count is 0, expected at least 1 pfn');
    if (h.readUInt32LE(4) !== 0) this.fail(body + 4, 'PAGE_DATA reserved field is not zero');
    const arrayBytes = count * PFN_WORD_SIZE;
    if (PAGE_DATA_HDR_SIZE + arrayBytes > length) {
      this.fail(at, `PAGE_DATA record (length ${length}) is too short for its ${count} pfns (${PAGE_DATA_HDR_SIZE} + ${arrayBytes} bytes)`);
    }
    const arrayOff = body + PAGE_DATA_HDR_SIZE;
    const dataOff = arrayOff + arrayBytes;
    let withData = 0;
    for (let k = 0; k < count; k += CHUNK_ENTRIES) {
      const m = Math.min(CHUNK_ENTRIES, count - k);
      const c = this.read(arrayOff + k * PFN_WORD_SIZE, m * PFN_WORD_SIZE, 'PAGE_DATA pfn array', this.chunk);
      for (let j = 0; j < m; j++) {
        const wordOff = arrayOff + (k + j) * PFN_WORD_SIZE;
        const lo = c.readUInt32LE(j * PFN_WORD_SIZE);
        const hi = c.readUInt32LE(j * PFN_WORD_SIZE + 4);
        if ((hi & PFN_WORD_HI_RESERVED_MASK) !== 0) {
          this.fail(wordOff, `PAGE_DATA pfn[${k + j}] has reserved bits 52–59 set (word 0x${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')})`);
        }
        const nibble = hi >>> PFN_WORD_TYPE_SHIFT;
        if (nibble >= PFINFO_INVALID_FIRST && nibble <= PFINFO_INVALID_LAST) {
          this.fail(wordOff, `PAGE_DATA pfn[${k + j}] has invalid type ${hex(nibble)} (5–8 are not XEN_DOMCTL_PFINFO values)`);
        }
        const pfn = (hi & PFN_WORD_HI_PFN_MASK) * WORD_SCALE + lo;
        if (pfn > this.restoreMaxPfn) {
          this.fail(wordOff, `PAGE_DATA pfn[${k + j}] = ${hex(pfn)} is outside the domain maximum ${hex(this.restoreMaxPfn)} (only X86_PV_P2M_FRAMES raises it)`);
        }
        if (typeHasData(nibble)) {
          this.log.push(pfn, dataOff + withData * PAGE_SIZE, nibble);
          withData++;
        } else this.log.push(pfn, codeOfNoDataType(nibble), nibble);
      }
    }
    const expected = PAGE_DATA_HDR_SIZE + arrayBytes + withData * PAGE_SIZE;
    if (length !== expected) {
      this.fail(at, `PAGE_DATA record has length ${length}, expected ${PAGE_DATA_HDR_SIZE} + 8·${count} + ${PAGE_SIZE}·${withData} pages with data = ${expected}`);
    }
  }

  private vcpu(type: number, length: number, at: number, body: number): void {
    const name = recordName(type);
    if (length < VCPU_HDR_SIZE) this.fail(at, `${name} record has length ${length}, expected at least ${VCPU_HDR_SIZE}`);
    const h = this.peek(body, VCPU_HDR_SIZE, `${name} header`);
    const id = h.readUInt32LE(0);
    if (h.readUInt32LE(4) !== 0) this.fail(body + 4, `${name} reserved field is not zero`);
    const blob = length - VCPU_HDR_SIZE;
    if (blob === 0) return; // restore tolerates empty vcpu records
    const blobOff = body + VCPU_HDR_SIZE;
    switch (type) {
      case REC_TYPE_X86_PV_VCPU_BASIC: {
        if (blob !== SIZEOF_VCPU_GUEST_CONTEXT_64) {
          this.fail(at, `X86_PV_VCPU_BASIC for vcpu ${id} has a ${blob}-byte context, expected ${SIZEOF_VCPU_GUEST_CONTEXT_64} (vcpu_guest_context x86_64)`);
        }
        this.vcpus.add(id);
        const ctx = this.read(blobOff, SIZEOF_VCPU_GUEST_CONTEXT_64, `vcpu ${id} context`);
        if (this.contexts.has(id) || this.contexts.size < MAX_VCPU_CONTEXTS) this.contexts.set(id, parseVcpuContext64(ctx, id));
        if (id === 0) {
          this.cr3 = ctx.readBigUInt64LE(VCPU_CTRLREG3_OFFSET_64);
          const lo = ctx.readUInt32LE(VCPU_RDX_OFFSET_64);
          const hi = ctx.readUInt32LE(VCPU_RDX_OFFSET_64 + 4);
          this.startInfoPfn = hi > SAFE_HI_MAX ? -1 : hi * WORD_SCALE + lo;
        }
        return;
      }
      case REC_TYPE_X86_PV_VCPU_EXTENDED:
        if (blob > VCPU_EXTENDED_MAX) this.fail(at, `X86_PV_VCPU_EXTENDED for vcpu ${id} has ${blob} bytes, at most ${VCPU_EXTENDED_MAX} allowed`);
        return;
      case REC_TYPE_X86_PV_VCPU_XSAVE:
        if (blob < VCPU_XSAVE_MIN) this.fail(at, `X86_PV_VCPU_XSAVE for vcpu ${id} has ${blob} bytes, at least ${VCPU_XSAVE_MIN} needed`);
        return;
      default:
        if (blob % VCPU_MSR_ENTRY_SIZE !== 0) this.fail(at, `X86_PV_VCPU_MSRS for vcpu ${id} has ${blob} bytes, not a multiple of ${VCPU_MSR_ENTRY_SIZE}`);
    }
  }
}

/** Where a stream without END stops, in words: "after SHARED_INFO (inside a torn PAGE_DATA record)". */
export function describeStop(stop: StreamStop): string {
  const torn = stop.tornRecord ? ` (the file ends inside ${stop.tornRecord === 'record header' ? 'the next record header' : `a ${stop.tornRecord} record`})` : '';
  return `after ${stop.afterRecord}${torn}`;
}

/** A stream without END can still be audited when the saver got as far as X86_PV_P2M_FRAMES and SHARED_INFO. */
function requireAuditable(path: string, p: StreamParser, stop: StreamStop): void {
  const missing = [p.p2m ? null : 'X86_PV_P2M_FRAMES', p.sharedInfo ? null : 'SHARED_INFO'].filter((x) => x !== null);
  if (missing.length === 0) return;
  throw new InputError(
    `${path}: offset ${stop.offset}: the stream has no END record and stops ${describeStop(stop)}, before any ${missing.join(' and ')} record: ` +
      'nothing to audit (the file is truncated; a failed save gets past SHARED_INFO before it stops)',
  );
}

export interface OpenStreamOptions {
  /** kernel symbols (a save stream carries none) */
  symbols?: SymbolTable;
}

/**
 * Open an `xl save` file (format 'xl-save') or a bare libxc stream (format 'libxc-stream') as a
 * GuestImage in pfn space. Bad input throws InputError: one line naming the file, the byte offset and
 * what was expected.
 */
export function openStream(path: string, opts: OpenStreamOptions = {}): StreamImage {
  const fd = openReadOnly(path);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new InputError(`${path}: not a regular file`);
    const p = new StreamParser(path, fd, st.size);
    const head = Buffer.alloc(Math.min(st.size, XL_MAGIC.length));
    readAt(fd, head, 0);
    let format: ImageFormat;
    let libxcOffset = 0;
    let end: number;
    let xl: XlHeaderInfo | null = null;
    if (isXlSave(head)) {
      format = 'xl-save';
      const r = p.parseXl();
      libxcOffset = r.libxcOffset;
      end = r.end;
      xl = r.xl;
    } else if (isLibxcStream(head)) {
      format = 'libxc-stream';
      end = p.parseLibxc(0);
      p.libxcEnd = end;
    } else {
      const shown = head.subarray(0, IHDR_MARKER_BYTES).toString('hex');
      throw new InputError(`${path}: offset 0: expected an xl save header ("Xen saved domain, xl format") or a libxc stream marker (ffffffffffffffff "XENF"), found 0x${shown}`);
    }
    if (!p.seenPvInfo) throw new InputError(`${path}: offset ${libxcOffset}: the stream has no X86_PV_INFO record`);
    const incomplete = p.stopFacts();
    if (incomplete) requireAuditable(path, p, incomplete);
    else if (p.cr3 === null) throw new InputError(`${path}: offset ${libxcOffset}: the stream has no X86_PV_VCPU_BASIC record for vcpu 0 (restore needs it: "Sender didn't send vcpu0's basic state")`);
    const index = pfnIndexOf(p.log);
    const counts: StreamCounts = { records: p.records, pageDataRecords: p.pageDataRecords, optionalRecords: p.optionalRecords, fileReads: p.fileReads, ...index.counts };
    const savedP2m: SavedP2m | null = p.p2m
      ? { startPfn: p.p2m.start, endPfn: p.p2m.end, leafPfns: p.p2m.pfns }
      : null;
    const facts: StreamFacts = {
      version: p.version,
      xenMajor: p.xenMajor,
      xenMinor: p.xenMinor,
      ptLevels: p.levels,
      libxcOffset,
      libxcEnd: p.libxcEnd,
      xl,
      vcpus: [...p.vcpus].sort((a, b) => a - b),
      startInfoPfn: p.startInfoPfn,
      checkpointed: p.checkpointed,
      skippedOptional: p.skippedOptional,
      incomplete,
      trailingBytes: st.size - end,
    };
    return new StreamImage(
      path,
      fd,
      format,
      p.width,
      p.sharedInfo,
      p.cr3 ?? 0n, // no vCPU 0 record (a failed save): no cr3 — frame 0 is never a PV guest's L4 (map_p2m_list asserts it)
      opts.symbols ?? new Map(),
      p.log.maxPfn,
      savedP2m,
      index,
      counts,
      facts,
      [...p.contexts.values()].sort((a, b) => a.id - b.id),
    );
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}
