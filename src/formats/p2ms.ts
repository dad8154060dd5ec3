// The native snapshot format `.p2ms` (ARCHITECTURE.md "image layer": a fixed header, a msgpackr
// metadata block, then 4 KiB-aligned raw frames so a worker reads any frame with one positional read;
// only the frames the audit needs are stored, so a 1 TiB guest stays a few GiB).
// Metadata is MessagePack (msgpack.org spec) as produced by msgpackr's `pack` (plain maps, no records).
//
// Layout (all integers little-endian; every u64 is written as two u32 words, low word first, and must
// be ≤ Number.MAX_SAFE_INTEGER):
//
//   offset  size  field
//   0x00    8     magic "P2MSNAP\0"
//   0x08    4     u32 version (1)
//   0x0c    4     u32 header length (64)
//   0x10    8     u64 metadata offset (64: right after the header)
//   0x18    8     u64 metadata length in bytes
//   0x20    8     u64 frame-index offset (metadata end rounded up to 8)
//   0x28    8     u64 frame count C
//   0x30    8     u64 data offset D (index end rounded up to 4096; a multiple of 4096)
//   0x38    8     u64 file length (must equal D + C·4096 and the file's real size)
//
//   [metadata offset]  msgpack map:
//       frameSpace  'mfn' | 'pfn'
//       guestWidth  8
//       cr3         hex string ("0x…": vCPU 0 ctrlreg[3], raw)
//       maxFrame    number, or null for Infinity (unknown)
//       symbols     [name, hex VA string][]
//       sharedInfo  bin (4096 bytes) or null
//       bootFacts   BootFacts map or null
//       createdBy   string
//     BigInts are stored as 0x-prefixed hex strings; zero padding follows up to the index offset.
//   [index offset]     C × u64 frame numbers, strictly ascending (raw binary, not msgpack: an
//                      audit image can need 500k+ entries); zero padding follows up to D.
//   [D]                C × 4096 bytes: frame k of the index at D + k·4096.
//
// Reading validates the header against the file size before allocating anything a length field names.
import * as fs from 'node:fs';
import { findSorted, readAt, openImageInput, FrameFile } from './file-io.js';
import { LITTLE_ENDIAN_HOST } from '../xen/page-words.js';
import { unpack } from 'msgpackr';
import { PAGE_SIZE, hex } from '../xen/abi.js';
import type { ArchSharedInfo } from '../xen/shared-info.js';
import type { BootFacts } from '../inputs/boot-facts.js';
import type { FormatFacts, FrameSpace, GuestImage, ImageFormat } from './guest-image.js';
import type { SymbolTable } from './symbols.js';
import { archOf } from '../xen/shared-info.js';
import { InputError } from '../common/errors.js';

export const P2MS_MAGIC: Buffer = Buffer.from('P2MSNAP\0', 'latin1');
export const P2MS_VERSION = 1;

/** Header geometry (see the layout above). */
export const P2MS_HEADER_SIZE = 64;
/** Byte offsets of the header fields. */
export const P2MS_OFF = { version: 8, headerLen: 12, metaOffset: 16, metaLength: 24, indexOffset: 32, count: 40, dataOffset: 48, fileLength: 56 } as const;
/** Bytes of one index entry (u64) and of one u32 word. */
export const INDEX_ENTRY_SIZE = 8;
export const WORD_BYTES = 4;
export const WORD_SCALE = 2 ** 32;
/** Largest high word of a u64 that keeps the value a safe JS integer (2^53 − 1 >> 32). */
const SAFE_HI_MAX = Math.floor(Number.MAX_SAFE_INTEGER / WORD_SCALE);
/** Frames per fs.writeSync when writing, and index entries per read/write chunk. */
export const WRITE_BATCH_FRAMES = 256;
export const INDEX_CHUNK_ENTRIES = 65536;
/** Metadata and index are read with one read when they span at most this many bytes (a small image's 6 + 16 KiB). */
const META_AND_INDEX_READ_MAX = 65536;
/**
 * Frame offsets below 2^30 are computed as small integers (V8 Smis on every build: no allocation per call,
 * and a scan calls frameOffset thousands of times per file). Past it (a 1 TiB image's 2 GiB file) they are
 * computed at a site of their own as `k / PER_FRAME_BYTE` (= k · 4096 exactly, 2^−12 being a power of two),
 * whose feedback is a double from its first use: the integer site's never overflows int32, which
 * deoptimised the walks that inline frameOffset ("overflow" in readLevel at index 524,288).
 */
const SMALL_OFFSET_LIMIT = 2 ** 30;
const PER_FRAME_BYTE = 1 / PAGE_SIZE;
/** Guest width the format holds (64-bit guests only). */
export const GUEST_WIDTH_64 = 8;
/** Longest decoder message quoted in an error. */
const MAX_QUOTED = 120;
export const U64_LIMIT = 1n << 64n;

export const P2MS_DEFAULT_CREATED_BY = 'p2m-audit';

export interface P2msContent {
  frameSpace: FrameSpace;
  guestWidth: number;
  cr3: bigint;
  /** highest valid frame number, or Infinity when unknown */
  maxFrame: number;
  symbols: SymbolTable;
  sharedInfo: Buffer | null;
  bootFacts: BootFacts | null;
}

/** Magic check for content detection (needs the first 8 bytes). */
export function isP2ms(head: Buffer): boolean {
  return head.length >= P2MS_MAGIC.length && head.subarray(0, P2MS_MAGIC.length).equals(P2MS_MAGIC);
}

// ---- small helpers ------------------------------------------------------------------------------
export function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}


/** u64 as a JS number, or null when it does not fit a safe integer. */
export function readU64(buf: Buffer, at: number): number | null {
  const hi = buf.readUInt32LE(at + WORD_BYTES);
  if (hi > SAFE_HI_MAX) return null;
  return hi * WORD_SCALE + buf.readUInt32LE(at);
}

/** Where a .p2ms file's parts start, for a metadata block of `metaLength` bytes and `count` frames. */
export interface P2msLayout {
  metaOffset: number;
  indexOffset: number;
  dataOffset: number;
  fileLength: number;
}

export function p2msLayout(metaLength: number, count: number): P2msLayout {
  const metaOffset = P2MS_HEADER_SIZE;
  const indexOffset = alignUp(metaOffset + metaLength, INDEX_ENTRY_SIZE);
  const dataOffset = alignUp(indexOffset + count * INDEX_ENTRY_SIZE, PAGE_SIZE);
  return { metaOffset, indexOffset, dataOffset, fileLength: dataOffset + count * PAGE_SIZE };
}



/** Printable rendering of a few raw bytes ("P2MSNAP\x00"). */
function showBytes(b: Buffer): string {
  let s = '';
  for (const c of b) s += c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c ? String.fromCharCode(c) : '\\x' + c.toString(16).padStart(2, '0');
  return `"${s}"`;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v instanceof Uint8Array) return `${v.length} bytes of binary`;
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'number' || typeof v === 'boolean') return `${typeof v} ${String(v)}`;
  return typeof v;
}

const HEX_RE = /^0x[0-9a-f]+$/i;





// ---- reading ------------------------------------------------------------------------------------
/** A .p2ms file opened for reading (a GuestImage of format 'p2ms'). */
export class P2msImage implements GuestImage {
  readonly format: ImageFormat = 'p2ms';
  readonly arch: ArchSharedInfo;
  readonly formatFacts: FormatFacts;
  private readonly file: FrameFile;

  constructor(
    readonly path: string,
    fd: number,
    readonly frameSpace: FrameSpace,
    readonly guestWidth: number,
    readonly sharedInfo: Buffer | null,
    readonly cr3: bigint,
    readonly symbols: SymbolTable,
    boot: BootFacts | null,
    readonly maxFrame: number,
    readonly createdBy: string,
    /** the stored frame numbers, ascending */
    private readonly index: Float64Array,
    readonly dataOffset: number,
  ) {
    this.file = new FrameFile(path, fd);
    this.smallFrames = Math.max(0, Math.floor((SMALL_OFFSET_LIMIT - dataOffset) / PAGE_SIZE));
    this.arch = archOf(sharedInfo);
    this.formatFacts = { kind: 'snapshot', boot };
  }

  /** Index position of the last frame found: p2m leaves sit in runs of neighbouring frames. */
  private lastFound = 0;
  /** Index positions whose offset lies below SMALL_OFFSET_LIMIT. */
  private readonly smallFrames: number;

  /**
   * Position of a frame in the index, or −1: the one after the last position found (walks read frames in
   * ascending runs), that one again, else a binary search. Each read is bounds-checked: a read past the end
   * (after the last frame) would deoptimise every walk this is inlined into.
   */
  private find(frame: number): number {
    const idx = this.index;
    const at = this.lastFound;
    let k = at + 1;
    if (!(k < idx.length && idx[k] === frame)) {
      k = at;
      if (!(k < idx.length && idx[k] === frame)) k = findSorted(idx, frame);
    }
    if (k >= 0) this.lastFound = k;
    return k;
  }

  fileDescriptor(): number {
    return this.file.descriptor;
  }

  frameOffset(frame: number): number {
    const k = this.find(frame);
    if (k < 0) return -1;
    return k < this.smallFrames ? this.dataOffset + k * PAGE_SIZE : this.dataOffset + k / PER_FRAME_BYTE;
  }

  /** The frame's bytes in a buffer owned by this image (overwritten by the next call), or null. */
  readFrame(frame: number): Buffer | null {
    return this.file.readFrame(this.frameOffset(frame), `frame ${hex(frame)}`);
  }

  frameCount(): number {
    return this.index.length;
  }

  /** The stored frame numbers, ascending (a copy). */
  frames(): Float64Array {
    return this.index.slice();
  }

  close(): void {
    this.file.close();
  }
}

interface Header {
  metaOffset: number;
  metaLength: number;
  indexOffset: number;
  count: number;
  dataOffset: number;
  fileLength: number;
}

/** The header, from `first` (the file's first bytes, as openImage read them to detect the format) when it holds all 64. */
function readHeader(path: string, fd: number, size: number, first?: Buffer): Header {
  let head: Buffer;
  let got: number;
  if (first !== undefined && first.length >= P2MS_HEADER_SIZE) {
    head = first;
    got = P2MS_HEADER_SIZE;
  } else {
    head = Buffer.alloc(P2MS_HEADER_SIZE);
    got = readAt(fd, head, 0, Math.min(size, P2MS_HEADER_SIZE));
  }
  const magic = head.subarray(0, Math.min(got, P2MS_MAGIC.length));
  if (!isP2ms(magic)) {
    throw new InputError(`${path}: offset 0: expected magic ${showBytes(P2MS_MAGIC)}, found ${showBytes(magic)}${got < P2MS_MAGIC.length ? ` (file is ${size} bytes)` : ''}`);
  }
  if (got < P2MS_HEADER_SIZE) throw new InputError(`${path}: file is ${size} bytes, shorter than the ${P2MS_HEADER_SIZE}-byte header`);
  const version = head.readUInt32LE(P2MS_OFF.version);
  if (version !== P2MS_VERSION) throw new InputError(`${path}: offset ${P2MS_OFF.version}: unsupported version ${version}, expected ${P2MS_VERSION}`);
  const headerLen = head.readUInt32LE(P2MS_OFF.headerLen);
  if (headerLen !== P2MS_HEADER_SIZE) throw new InputError(`${path}: offset ${P2MS_OFF.headerLen}: header length ${headerLen}, expected ${P2MS_HEADER_SIZE}`);

  const field = (at: number, name: string): number => {
    const v = readU64(head, at);
    if (v === null) throw new InputError(`${path}: offset ${at}: ${name} 0x${head.readBigUInt64LE(at).toString(16)} is beyond 2^53`);
    return v;
  };
  const h: Header = {
    metaOffset: field(P2MS_OFF.metaOffset, 'metadata offset'),
    metaLength: field(P2MS_OFF.metaLength, 'metadata length'),
    indexOffset: field(P2MS_OFF.indexOffset, 'frame-index offset'),
    count: field(P2MS_OFF.count, 'frame count'),
    dataOffset: field(P2MS_OFF.dataOffset, 'data offset'),
    fileLength: field(P2MS_OFF.fileLength, 'file length'),
  };

  if (h.metaOffset < P2MS_HEADER_SIZE) {
    throw new InputError(`${path}: offset ${P2MS_OFF.metaOffset}: metadata offset ${h.metaOffset} lies inside the ${P2MS_HEADER_SIZE}-byte header`);
  }
  if (h.metaOffset + h.metaLength > h.indexOffset) {
    throw new InputError(`${path}: offset ${P2MS_OFF.indexOffset}: frame-index offset ${h.indexOffset} is before the metadata end (offset ${h.metaOffset} + length ${h.metaLength})`);
  }
  if (h.dataOffset % PAGE_SIZE !== 0) {
    throw new InputError(`${path}: offset ${P2MS_OFF.dataOffset}: data offset ${h.dataOffset} is not a multiple of ${PAGE_SIZE}`);
  }
  if (h.count > (h.dataOffset - h.indexOffset) / INDEX_ENTRY_SIZE) {
    throw new InputError(`${path}: offset ${P2MS_OFF.dataOffset}: data offset ${h.dataOffset} is before the frame-index end (offset ${h.indexOffset} + ${h.count} × ${INDEX_ENTRY_SIZE})`);
  }
  // Every region lies below dataOffset + count·4096; compare without forming a product that could overflow 2^53.
  const expected = h.dataOffset + h.count * PAGE_SIZE;
  if (size < h.dataOffset || (size - h.dataOffset) / PAGE_SIZE < h.count) {
    throw new InputError(`${path}: truncated: file is ${size} bytes, but data offset ${h.dataOffset} + ${h.count} frames × ${PAGE_SIZE} = ${expected} bytes`);
  }
  if (h.fileLength !== expected) {
    throw new InputError(`${path}: offset ${P2MS_OFF.fileLength}: file length field ${h.fileLength}, expected data offset ${h.dataOffset} + ${h.count} × ${PAGE_SIZE} = ${expected}`);
  }
  if (size !== expected) {
    throw new InputError(`${path}: file is ${size} bytes, longer than the ${expected} bytes its header describes (trailing data)`);
  }
  return h;
}

/** The metadata map after type checks. */
interface Meta extends P2msContent {
  createdBy: string;
}

/** Type checks for metadata values: each throws InputError naming the field. */
class MetaChecker {
  constructor(private readonly path: string) {}

  fail(field: string, expected: string, found: unknown): never {
    throw new InputError(`${this.path}: metadata field "${field}": expected ${expected}, found ${describe(found)}`);
  }
  obj(v: unknown, field: string): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) this.fail(field, 'a map', v);
    return v as Record<string, unknown>;
  }
  str(v: unknown, field: string): string {
    if (typeof v !== 'string') this.fail(field, 'a string', v);
    return v;
  }
  num(v: unknown, field: string): number {
    if (typeof v !== 'number' || Number.isNaN(v)) this.fail(field, 'a number', v);
    return v;
  }
  count(v: unknown, field: string): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.fail(field, 'a non-negative integer', v);
    return v;
  }
  u64hex(v: unknown, field: string): bigint {
    if (typeof v !== 'string' || !HEX_RE.test(v)) this.fail(field, 'a hex string ("0x…")', v);
    const b = BigInt(v);
    if (b >= U64_LIMIT) this.fail(field, 'a u64', v);
    return b;
  }
  arr(v: unknown, field: string): unknown[] {
    if (!Array.isArray(v)) this.fail(field, 'an array', v);
    return v;
  }
  range(v: unknown, field: string): { start: number; end: number } {
    const o = this.obj(v, field);
    return { start: this.count(o.start, `${field}.start`), end: this.count(o.end, `${field}.end`) };
  }
  e820(v: unknown, field: string): BootFacts['hostE820'] {
    return this.arr(v, field).map((e, k) => {
      const o = this.obj(e, `${field}[${k}]`);
      return { addr: this.count(o.addr, `${field}[${k}].addr`), size: this.count(o.size, `${field}[${k}].size`), type: this.count(o.type, `${field}[${k}].type`) };
    });
  }

  bootFacts(v: unknown): BootFacts {
    const f = 'bootFacts';
    const o = this.obj(v, f);
    const role = o.role;
    if (role !== 'dom0' && role !== 'domU') this.fail(`${f}.role`, '"dom0" or "domU"', role);
    const config = this.obj(o.config, `${f}.config`);
    for (const [k, val] of Object.entries(config)) this.str(val, `${f}.config.${k}`);
    // Unknown keys (fields added to BootFacts later) are kept as stored; the known ones are checked.
    const bf = {
      ...o,
      profile: this.str(o.profile, `${f}.profile`),
      role,
      hostE820: this.e820(o.hostE820, `${f}.hostE820`),
      kernelE820: this.e820(o.kernelE820, `${f}.kernelE820`),
      nrPages: this.count(o.nrPages, `${f}.nrPages`),
      maxPages: this.count(o.maxPages, `${f}.maxPages`),
      kernelMaxPfn: this.count(o.kernelMaxPfn, `${f}.kernelMaxPfn`),
      buildBound: this.count(o.buildBound, `${f}.buildBound`),
      xenMaxP2mPfnHistory: this.arr(o.xenMaxP2mPfnHistory, `${f}.xenMaxP2mPfnHistory`).map((h, k) => {
        const ho = this.obj(h, `${f}.xenMaxP2mPfnHistory[${k}]`);
        return { value: this.count(ho.value, `${f}.xenMaxP2mPfnHistory[${k}].value`), by: this.str(ho.by, `${f}.xenMaxP2mPfnHistory[${k}].by`) };
      }),
      identity: this.arr(o.identity, `${f}.identity`).map((r, k) => this.range(r, `${f}.identity[${k}]`)),
      remapped: this.arr(o.remapped, `${f}.remapped`).map((r, k) => {
        const ro = this.obj(r, `${f}.remapped[${k}]`);
        const how = ro.how;
        if (how !== 'remap' && how !== 'populate') this.fail(`${f}.remapped[${k}].how`, '"remap" or "populate"', how);
        return { from: this.range(ro.from, `${f}.remapped[${k}].from`), to: this.range(ro.to, `${f}.remapped[${k}].to`), how };
      }),
      released: this.count(o.released, `${f}.released`),
      extraRegions: this.arr(o.extraRegions, `${f}.extraRegions`).map((r, k) => this.range(r, `${f}.extraRegions[${k}]`)),
      config: config as Record<string, string>,
      messages: this.arr(o.messages, `${f}.messages`).map((m, k) => this.str(m, `${f}.messages[${k}]`)),
      seed: this.num(o.seed, `${f}.seed`),
    } as BootFacts;
    if (o.dom0Mem !== undefined) bf.dom0Mem = this.str(o.dom0Mem, `${f}.dom0Mem`);
    return bf;
  }

  meta(v: unknown): Meta {
    const o = this.obj(v, '(root)');
    const frameSpace = o.frameSpace;
    if (frameSpace !== 'mfn' && frameSpace !== 'pfn') this.fail('frameSpace', '"mfn" or "pfn"', frameSpace);
    if (o.guestWidth !== GUEST_WIDTH_64) this.fail('guestWidth', `${GUEST_WIDTH_64} (64-bit guest)`, o.guestWidth);
    let maxFrame = Infinity;
    if (o.maxFrame !== null) maxFrame = this.count(o.maxFrame, 'maxFrame');
    const symbols: SymbolTable = new Map();
    this.arr(o.symbols, 'symbols').forEach((s, k) => {
      const pair = this.arr(s, `symbols[${k}]`);
      if (pair.length !== 2) this.fail(`symbols[${k}]`, 'a [name, hex VA] pair', pair);
      symbols.set(this.str(pair[0], `symbols[${k}][0]`), this.u64hex(pair[1], `symbols[${k}][1]`));
    });
    let sharedInfo: Buffer | null = null;
    if (o.sharedInfo !== null) {
      if (!(o.sharedInfo instanceof Uint8Array) || o.sharedInfo.length !== PAGE_SIZE) this.fail('sharedInfo', `${PAGE_SIZE} bytes of binary or null`, o.sharedInfo);
      sharedInfo = Buffer.from(o.sharedInfo); // a private copy, not a view of the metadata block
    }
    return {
      frameSpace,
      guestWidth: GUEST_WIDTH_64,
      cr3: this.u64hex(o.cr3, 'cr3'),
      maxFrame,
      symbols,
      sharedInfo,
      bootFacts: o.bootFacts === null ? null : this.bootFacts(o.bootFacts),
      createdBy: this.str(o.createdBy, 'createdBy'),
    };
  }
}

/** The metadata block's bytes: `span` when it holds them (span starts at the metadata offset), else one read. */
function readMetaBlock(path: string, fd: number, h: Header, span: Buffer | null): Buffer {
  if (span !== null) return span.subarray(0, h.metaLength);
  const block = Buffer.alloc(h.metaLength); // metaLength ≤ file size: checked by readHeader
  const n = readAt(fd, block, h.metaOffset);
  if (n !== h.metaLength) throw new InputError(`${path}: offset ${h.metaOffset}: metadata block cut short (${n} of ${h.metaLength} bytes)`);
  return block;
}

function decodeMeta(path: string, h: Header, block: Buffer): Meta {
  let decoded: unknown;
  try {
    decoded = unpack(block);
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
    const short = msg.length > MAX_QUOTED ? msg.slice(0, MAX_QUOTED) + '…' : msg;
    throw new InputError(`${path}: offset ${h.metaOffset}: metadata block (${h.metaLength} bytes) is not decodable msgpack: ${short}`);
  }
  return new MetaChecker(path).meta(decoded);
}

/**
 * Check and convert index entries [first, first + n) from `words` (their u64s as u32 pairs, low word
 * first) into `index`; `prev` is the entry before `first` (−1 for none). Returns the last entry.
 */
function decodeIndex(path: string, h: Header, words: Uint32Array, index: Float64Array, first: number, n: number, prev: number): number {
  for (let j = 0; j < n; j++) {
    const hi = words[2 * j + 1]!;
    const f = hi <= SAFE_HI_MAX ? hi * WORD_SCALE + words[2 * j]! : -1;
    if (f > prev) {
      index[first + j] = f;
      prev = f;
      continue;
    }
    const entry = first + j;
    const off = h.indexOffset + entry * INDEX_ENTRY_SIZE;
    if (f < 0) throw new InputError(`${path}: offset ${off}: frame index entry ${entry} is beyond 2^53`);
    throw new InputError(`${path}: offset ${off}: frame index entry ${entry} is frame ${hex(f)}, not above entry ${entry - 1} (frame ${hex(prev)}); the index must be strictly ascending`);
  }
  return prev;
}

/** u32 words of `n` u64s at `at` in `bytes`, in host order (a copy on a big-endian host or an unaligned offset). */
function indexWords(bytes: Buffer, at: number, n: number): Uint32Array {
  const count = (n * INDEX_ENTRY_SIZE) / WORD_BYTES;
  const start = bytes.byteOffset + at;
  if (LITTLE_ENDIAN_HOST && start % WORD_BYTES === 0) return new Uint32Array(bytes.buffer, start, count);
  const words = new Uint32Array(count);
  for (let w = 0; w < count; w++) words[w] = bytes.readUInt32LE(at + w * WORD_BYTES);
  return words;
}

/** The index from `span` (the bytes from the metadata offset on) when it holds it, else read in chunks. */
function readIndex(path: string, fd: number, h: Header, span: Buffer | null): Float64Array {
  const index = new Float64Array(h.count); // count·4096 ≤ file size: checked by readHeader
  if (span !== null) {
    decodeIndex(path, h, indexWords(span, h.indexOffset - h.metaOffset, h.count), index, 0, h.count, -1);
    return index;
  }
  // Buffer.alloc gives the chunk its own ArrayBuffer at offset 0: a Uint32Array can view it in place
  const chunk = Buffer.alloc(Math.min(h.count, INDEX_CHUNK_ENTRIES) * INDEX_ENTRY_SIZE);
  let prev = -1;
  for (let k = 0; k < h.count; k += INDEX_CHUNK_ENTRIES) {
    const n = Math.min(INDEX_CHUNK_ENTRIES, h.count - k);
    const at = h.indexOffset + k * INDEX_ENTRY_SIZE;
    const got = readAt(fd, chunk, at, n * INDEX_ENTRY_SIZE);
    if (got !== n * INDEX_ENTRY_SIZE) throw new InputError(`${path}: offset ${at}: frame index cut short`);
    prev = decodeIndex(path, h, indexWords(chunk, 0, n), index, k, n, prev);
  }
  return index;
}

/**
 * Metadata and index in one read when they lie close together (every image the tools write: the index
 * follows the metadata, 8-byte aligned), or null. The span ends at the index end ≤ data offset ≤ file
 * size (readHeader), so it is bounded by the file.
 */
function readSpan(path: string, fd: number, h: Header): Buffer | null {
  const end = h.indexOffset + h.count * INDEX_ENTRY_SIZE;
  if (end - h.metaOffset > META_AND_INDEX_READ_MAX) return null;
  const span = Buffer.alloc(end - h.metaOffset);
  const n = readAt(fd, span, h.metaOffset);
  if (n < h.metaLength) throw new InputError(`${path}: offset ${h.metaOffset}: metadata block cut short (${n} of ${h.metaLength} bytes)`);
  if (n !== span.length) throw new InputError(`${path}: offset ${h.metaOffset + n}: frame index cut short`);
  return span;
}

/**
 * Open and validate a .p2ms file; returns a GuestImage (format 'p2ms'). readFrame does one positional
 * read into a per-image buffer (valid until the next call); frameOffset(frame) = data offset + index
 * position · 4096 (binary search over the stored frame numbers). arch is parsed from sharedInfo (all
 * zero when null). Bad input throws InputError (one line naming the file, the offset or field, and
 * what was expected).
 */
export function openP2ms(path: string): GuestImage {
  const { fd, size } = openImageInput(path);
  return openP2msFile(path, fd, size);
}

/**
 * openP2ms on a regular file already open as `fd` (of `size` bytes, from fstat), with its first bytes
 * when the caller has read them (`head`: open-image.ts detects the format from the same 64 bytes the
 * header is). The descriptor becomes the image's; on an error it is closed.
 */
export function openP2msFile(path: string, fd: number, size: number, head?: Buffer): GuestImage {
  try {
    const h = readHeader(path, fd, size, head);
    const span = readSpan(path, fd, h);
    const meta = decodeMeta(path, h, readMetaBlock(path, fd, h, span));
    const index = readIndex(path, fd, h, span);
    return new P2msImage(
      path,
      fd,
      meta.frameSpace,
      meta.guestWidth,
      meta.sharedInfo,
      meta.cr3,
      meta.symbols,
      meta.bootFacts,
      meta.maxFrame,
      meta.createdBy,
      index,
      h.dataOffset,
    );
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}
