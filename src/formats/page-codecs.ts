// One page of a makedumpfile compressed dump decoded by its page_desc flag, as crash diskdump.c cache_page does (zlib uncompress, lzo1x_decompress_safe, snappy_uncompress, ZSTD_decompressDCtx): into the caller's reused page buffer, which must come out exactly block_size bytes long.
//
// Codecs: zlib through node:zlib (inflateSync with maxOutputLength = the page: a longer stream fails, a
// shorter one is caught by the length check); LZO1X through lzo1x.ts; snappy through snappyjs (pure JS;
// its declared length is checked here first, since it allocates that much); zstd through fzstd (pure JS,
// synchronous). fzstd neither checks that a frame's declared content size fits the buffer it is given nor
// always fails on a corrupt frame, so the zstd frame header is read here first (RFC 8878 §3.1.1: magic,
// Frame_Header_Descriptor, Frame_Content_Size) and a frame that does not declare exactly one page is
// refused before any decoding (makedumpfile's ZSTD_compressCCtx always writes the content size).
import zlib from 'node:zlib';
import { decompress as zstdDecompress } from 'fzstd';
import snappy from 'snappyjs';
import { lzo1xDecompress, LzoError } from './lzo1x.js';
import { DUMP_DH_COMPRESSED_LZO, DUMP_DH_COMPRESSED_SNAPPY, DUMP_DH_COMPRESSED_ZLIB, DUMP_DH_COMPRESSED_ZSTD } from '../xen/diskdump-format.js';

/** Zstandard frame magic 0xFD2FB528, little-endian (RFC 8878 §3.1.1). */
const ZSTD_MAGIC = 0xfd2fb528;
const ZSTD_MAGIC_BYTES = 4;
/** Frame_Header_Descriptor bits: Frame_Content_Size_flag (7-6), Single_Segment_flag (5), Dictionary_ID_flag (1-0). */
const FCS_FLAG_SHIFT = 6;
const SINGLE_SEGMENT = 0x20;
const DICT_ID_FLAG_MASK = 3;
/** Field sizes by flag value: Dictionary_ID 0/1/2/4 bytes; Frame_Content_Size 0 (1 when single-segment)/2/4/8. */
const DICT_ID_BYTES = [0, 1, 2, 4];
const FCS_BYTES = [0, 2, 4, 8];
/** A 2-byte Frame_Content_Size is stored minus 256. */
const FCS_2_BYTE_BIAS = 256;
/** Snappy's preamble: the uncompressed length as a little-endian base-128 varint (at most 5 bytes for 32 bits). */
const VARINT_MAX_BYTES = 5;

/** Why a page could not be decoded (the reader turns it into an InputError naming the file and offset). */
export class PageDecodeError extends Error {}

/** The page compression a page_desc flag names, or null for a flag this reader does not know. */
export function codecName(flag: number): string | null {
  switch (flag) {
    case DUMP_DH_COMPRESSED_ZLIB:
      return 'zlib';
    case DUMP_DH_COMPRESSED_LZO:
      return 'lzo';
    case DUMP_DH_COMPRESSED_SNAPPY:
      return 'snappy';
    case DUMP_DH_COMPRESSED_ZSTD:
      return 'zstd';
    default:
      return null;
  }
}

/** Frame_Content_Size of a zstd frame, or why it has none this reader accepts. */
export function zstdContentSize(src: Uint8Array): number | string {
  if (src.length < ZSTD_MAGIC_BYTES + 1) return `${src.length} bytes, too short for a zstd frame header`;
  const magic = (src[0]! | (src[1]! << 8) | (src[2]! << 16) | (src[3]! << 24)) >>> 0;
  if (magic !== ZSTD_MAGIC) return `magic 0x${magic.toString(16)}, not a zstd frame (0x${ZSTD_MAGIC.toString(16)})`;
  const fhd = src[ZSTD_MAGIC_BYTES]!;
  const single = (fhd & SINGLE_SEGMENT) !== 0;
  const fcsFlag = fhd >> FCS_FLAG_SHIFT;
  const fcsBytes = fcsFlag === 0 ? (single ? 1 : 0) : FCS_BYTES[fcsFlag]!;
  if (fcsBytes === 0) return 'the frame does not declare its content size';
  // Window_Descriptor (absent for single-segment frames), then Dictionary_ID
  const at = ZSTD_MAGIC_BYTES + 1 + (single ? 0 : 1) + DICT_ID_BYTES[fhd & DICT_ID_FLAG_MASK]!;
  if (src.length < at + fcsBytes) return `${src.length} bytes, too short for its frame header`;
  let size = 0;
  for (let i = fcsBytes - 1; i >= 0; i--) size = size * 256 + src[at + i]!;
  return fcsBytes === 2 ? size + FCS_2_BYTE_BIAS : size;
}

/** The snappy preamble's uncompressed length, or null when it is not a valid varint. */
function snappyLength(src: Uint8Array): number | null {
  let value = 0;
  for (let i = 0; i < Math.min(src.length, VARINT_MAX_BYTES); i++) {
    value += (src[i]! & 0x7f) * 2 ** (7 * i);
    if (src[i]! < 0x80) return value;
  }
  return null;
}

function inflatePage(src: Uint8Array, out: Buffer): number {
  let r: Buffer;
  try {
    r = zlib.inflateSync(src, { maxOutputLength: out.length });
  } catch (e) {
    const tooLarge = (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
    throw new PageDecodeError(`zlib: ${tooLarge ? `inflates to more than ${out.length} bytes` : (e as Error).message}`);
  }
  r.copy(out);
  return r.length;
}

function lzoPage(src: Uint8Array, out: Buffer): number {
  try {
    return lzo1xDecompress(src, out);
  } catch (e) {
    if (e instanceof LzoError) throw new PageDecodeError(`lzo: ${e.message}`);
    throw e;
  }
}

function snappyPage(src: Uint8Array, out: Buffer): number {
  const declared = snappyLength(src);
  if (declared !== out.length) throw new PageDecodeError(`snappy: the stream declares ${declared === null ? 'no valid' : `a ${declared}-byte`} uncompressed length, expected ${out.length}`);
  let r: Uint8Array;
  try {
    r = snappy.uncompress(src, out.length);
  } catch (e) {
    throw new PageDecodeError(`snappy: ${(e as Error).message}`);
  }
  out.set(r.subarray(0, out.length));
  return r.length;
}

/**
 * fzstd tests its output argument with `w == 1`, which turns a Buffer into a 4 KiB string on every call (a
 * tenth of an audit's time): it is given a view of the same bytes whose valueOf is a number. One per buffer.
 */
const zstdViews = new WeakMap<Buffer, Uint8Array>();
function zstdView(out: Buffer): Uint8Array {
  let v = zstdViews.get(out);
  if (v === undefined) {
    v = new Uint8Array(out.buffer, out.byteOffset, out.length);
    Object.defineProperty(v, 'valueOf', { value: () => 0 });
    zstdViews.set(out, v);
  }
  return v;
}

function zstdPage(src: Uint8Array, out: Buffer): number {
  const size = zstdContentSize(src);
  if (size !== out.length) throw new PageDecodeError(`zstd: ${typeof size === 'string' ? size : `the frame declares ${size} bytes`}, expected a frame of ${out.length} bytes`);
  let r: Uint8Array;
  try {
    r = zstdDecompress(src, zstdView(out));
  } catch (e) {
    throw new PageDecodeError(`zstd: ${(e as Error).message}`);
  }
  if (r.buffer !== out.buffer || r.byteOffset !== out.byteOffset) out.set(r.subarray(0, out.length));
  return r.length;
}

/**
 * Decode `src` (one page_desc's bytes) compressed with `flag` into `out` (block_size bytes). Throws a
 * PageDecodeError saying what failed when the codec fails or the result is not exactly out.length bytes.
 */
export function decodePage(flag: number, src: Uint8Array, out: Buffer): void {
  let got: number;
  switch (flag) {
    case DUMP_DH_COMPRESSED_ZLIB:
      got = inflatePage(src, out);
      break;
    case DUMP_DH_COMPRESSED_LZO:
      got = lzoPage(src, out);
      break;
    case DUMP_DH_COMPRESSED_SNAPPY:
      got = snappyPage(src, out);
      break;
    case DUMP_DH_COMPRESSED_ZSTD:
      got = zstdPage(src, out);
      break;
    default:
      throw new PageDecodeError(`unknown compression flag 0x${flag.toString(16)}`);
  }
  if (got !== out.length) throw new PageDecodeError(`${codecName(flag)}: decompressed to ${got} bytes, expected ${out.length}`);
}
