// makedumpfile's compressed dump ("KDUMP   ") of an emulated dom0's crash: what `makedumpfile -c|-z|-p -d 31 /proc/vmcore DUMPFILE` would write from the vmcore of the same crash (makedumpfile.c write_kdump_header, write_kdump_pages_and_bitmap_cyclic, write_kdump_pages_cyclic; diskdump_mod.h). docs/spec-notes/kdump-compressed.md.
//
// The crash is planned as for the ELF vmcore (kdump-host.ts planDom0Kdump: host RAM less the crash region,
// Xen's notes), so both files describe one machine:
//  * header_version 6, block_size 4096, utsname and timestamp zero (makedumpfile finds no Linux vmcoreinfo
//    in a Xen vmcore: the real conversion has them zero too), nr_cpus = physical CPUs, status = the codec.
//  * kdump_sub_header, then the vmcore's note area at block_size + 104 (offset_note, size_note); max_mapnr(_64)
//    = the end of the last dumped range in frames.
//  * 1st bitmap: every frame of a dumped range (a partial page included, as makedumpfile marks it);
//    2nd bitmap: the frames the emulated machine holds. The others were RAM the dump level left out
//    (what -d 31 drops as free, cache and user pages); readers give zeros for them, as the ELF vmcore's
//    holes read.
//  * page_desc per dumped frame, then the pages: a zero page shares one stored zero page (DL_EXCLUDE_ZERO's
//    pd_zero), every other page is compressed and kept compressed only when that makes it smaller than a
//    block, as write_kdump_pages_cyclic decides; otherwise stored whole with flags 0.
// Codecs: zlib (node:zlib deflate at Z_BEST_SPEED, as makedumpfile's compress2 call), zstd (@bokuweb/zstd-wasm,
// level 1 as makedumpfile's ZSTD_compressCCtx), snappy (snappyjs), none. LZO is not offered: no kept
// package compresses LZO1X offline (the reader decodes it: formats/lzo1x.ts).
// Memory: the two bitmaps (max_mapnr / 4 bytes) and fixed write batches; nothing kept per page.
import zlib from 'node:zlib';
import snappy from 'snappyjs';
import { init as zstdInit, compress as zstdCompress } from '@bokuweb/zstd-wasm';
import { InputError } from '../common/errors.js';
import { checkOutput, writeAllAt, writeOutput } from '../formats/output-file.js';
import type { MemoryImage } from '../formats/memory-image.js';
import { bootFactsOf } from '../formats/guest-image.js';
import { PAGE_SIZE } from '../xen/abi.js';
import { DH_BITMAP_BLOCKS, DH_BLOCK_SIZE, DH_HEADER_VERSION, DH_MAX_MAPNR, DH_NR_CPUS, DH_STATUS, DH_SUB_HDR_SIZE, DISKDUMP_HEADER_BLOCKS, DL_EXCLUDE_CACHE, DL_EXCLUDE_CACHE_PRI, DL_EXCLUDE_FREE, DL_EXCLUDE_USER_DATA, DL_EXCLUDE_ZERO, DUMP_DH_COMPRESSED_SNAPPY, DUMP_DH_COMPRESSED_ZLIB, DUMP_DH_COMPRESSED_ZSTD, KDUMP_HEADER_VERSION, KDUMP_SIGNATURE, KDUMP_SUB_HEADER_SIZE, KH_DUMP_LEVEL, KH_MAX_MAPNR_64, KH_OFFSET_NOTE, KH_SIZE_NOTE, PAGE_DESC_SIZE, PD_FLAGS, PD_OFFSET, PD_SIZE } from '../xen/diskdump-format.js';
import { DEFAULT_PCPUS, planDom0Kdump, type Dom0KdumpOptions, type MachineRange } from './kdump-host.js';

/** Page codecs this writer can compress with. */
export const KDUMP_WRITE_CODECS = ['zlib', 'zstd', 'snappy', 'none'] as const;
export type KdumpWriteCodec = (typeof KDUMP_WRITE_CODECS)[number];
/** -d 31: zero, cache, private cache, user and free pages left out (Debian kdump-tools' default MAKEDUMP_ARGS "-c -d 31"). */
export const DEFAULT_DUMP_LEVEL = DL_EXCLUDE_ZERO | DL_EXCLUDE_CACHE | DL_EXCLUDE_CACHE_PRI | DL_EXCLUDE_USER_DATA | DL_EXCLUDE_FREE;
/** makedumpfile's levels: Z_BEST_SPEED for zlib, 1 for ZSTD_compressCCtx. */
const ZLIB_LEVEL = 1;
const ZSTD_LEVEL = 1;
/** page_desc entries and page bytes per positional write. */
const DESC_BATCH = 4096;
const DATA_BATCH_BYTES = 1 << 20;
const UINT_MAX = 0xffffffff;
const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);

/** A codec's page compressor: the compressed bytes, or null when it cannot compress this page. */
type Compressor = (page: Buffer) => Uint8Array | null;

const CODEC_FLAG: Record<KdumpWriteCodec, number> = { zlib: DUMP_DH_COMPRESSED_ZLIB, zstd: DUMP_DH_COMPRESSED_ZSTD, snappy: DUMP_DH_COMPRESSED_SNAPPY, none: 0 };

let zstdReady: Promise<void> | null = null;

/** The compressor of a codec (zstd's wasm module is loaded on first use). */
async function compressorOf(codec: KdumpWriteCodec): Promise<Compressor> {
  switch (codec) {
    case 'zlib':
      return (page) => zlib.deflateSync(page, { level: ZLIB_LEVEL });
    case 'zstd':
      await (zstdReady ??= zstdInit());
      return (page) => zstdCompress(page, ZSTD_LEVEL);
    case 'snappy':
      return (page) => snappy.compress(page);
    case 'none':
      return () => null;
  }
}

/** Where makedumpfile puts each part, for `ranges` dumped and `dumped` page descriptors. */
export interface KdumpLayout {
  maxMapnr: number;
  subHdrSize: number;
  bitmapBlocks: number;
  /** file offsets of the 1st bitmap, the 2nd, the descriptor table and the first page */
  bitmap1At: number;
  bitmap2At: number;
  descAt: number;
  dataAt: number;
}

function divideUp(n: number, by: number): number {
  return Math.ceil(n / by);
}

/** write_kdump_header / prepare_bitmap2_buffer arithmetic (block_size 4096). */
export function kdumpLayout(ranges: readonly MachineRange[], noteSize: number, dumped: number): KdumpLayout {
  const maxMapnr = divideUp(Math.max(...ranges.map((r) => r.start + r.size)), PAGE_SIZE);
  const subHdrSize = divideUp(KDUMP_SUB_HEADER_SIZE + noteSize, PAGE_SIZE);
  const halfBlocks = divideUp(divideUp(maxMapnr, 8), PAGE_SIZE);
  const bitmap1At = (DISKDUMP_HEADER_BLOCKS + subHdrSize) * PAGE_SIZE;
  const descAt = bitmap1At + 2 * halfBlocks * PAGE_SIZE;
  return { maxMapnr, subHdrSize, bitmapBlocks: 2 * halfBlocks, bitmap1At, bitmap2At: bitmap1At + halfBlocks * PAGE_SIZE, descAt, dataAt: descAt + dumped * PAGE_DESC_SIZE };
}

/** Set bit `p` of an LSB-first bitmap (makedumpfile.h set_bitmap: byte p / 8, bit p % 8). */
function setBit(bitmap: Buffer, p: number): void {
  bitmap[Math.floor(p / 8)]! |= 1 << p % 8;
}

/** Set bits [start, end) of an LSB-first bitmap: whole bytes filled, bit by bit only at the two ends. */
function setBits(bitmap: Buffer, start: number, end: number): void {
  const wholeStart = Math.min(end, divideUp(start, 8) * 8);
  const wholeEnd = Math.max(wholeStart, Math.floor(end / 8) * 8);
  for (let p = start; p < wholeStart; p++) setBit(bitmap, p);
  if (wholeEnd > wholeStart) bitmap.fill(0xff, wholeStart / 8, wholeEnd / 8);
  for (let p = wholeEnd; p < end; p++) setBit(bitmap, p);
}

/** disk_dump_header, kdump_sub_header and the notes: the first (1 + sub_hdr_size) blocks. */
function kdumpHead(l: KdumpLayout, notes: Buffer, status: number, nrCpus: number, dumpLevel: number): Buffer {
  const head = Buffer.alloc((DISKDUMP_HEADER_BLOCKS + l.subHdrSize) * PAGE_SIZE);
  head.write(KDUMP_SIGNATURE, 0, 'latin1');
  head.writeInt32LE(KDUMP_HEADER_VERSION, DH_HEADER_VERSION);
  head.writeUInt32LE(status, DH_STATUS);
  head.writeInt32LE(PAGE_SIZE, DH_BLOCK_SIZE);
  head.writeInt32LE(l.subHdrSize, DH_SUB_HDR_SIZE);
  head.writeUInt32LE(l.bitmapBlocks, DH_BITMAP_BLOCKS);
  head.writeUInt32LE(Math.min(l.maxMapnr, UINT_MAX), DH_MAX_MAPNR);
  head.writeInt32LE(nrCpus, DH_NR_CPUS);
  const sub = PAGE_SIZE;
  head.writeInt32LE(dumpLevel, sub + KH_DUMP_LEVEL);
  head.writeBigUInt64LE(BigInt(sub + KDUMP_SUB_HEADER_SIZE), sub + KH_OFFSET_NOTE);
  head.writeBigUInt64LE(BigInt(notes.length), sub + KH_SIZE_NOTE);
  head.writeBigUInt64LE(BigInt(l.maxMapnr), sub + KH_MAX_MAPNR_64);
  notes.copy(head, sub + KDUMP_SUB_HEADER_SIZE);
  return head;
}

export interface WriteKdumpCompressedOptions extends Dom0KdumpOptions {
  overwrite?: boolean;
  /** page codec (default zlib, makedumpfile -c) */
  compression?: KdumpWriteCodec;
  /** kdump_sub_header.dump_level (default 31); bit 0 (DL_EXCLUDE_ZERO) shares one stored zero page */
  dumpLevel?: number;
}

export interface WriteKdumpCompressedResult extends KdumpLayout {
  /** frames dumped (the 2nd bitmap): every frame the emulated machine holds */
  frames: number;
  /** pages stored compressed, stored whole, and sharing the zero page */
  compressedPages: number;
  storedPages: number;
  zeroPages: number;
  fileSize: number;
  crashRegion: MachineRange;
}

/**
 * Write an emulated dom0's crash in makedumpfile's compressed format, through writeOutput
 * (formats/output-file.ts); refuses to replace an existing file unless opts.overwrite.
 */
export async function writeKdumpCompressed(img: MemoryImage, path: string, opts: WriteKdumpCompressedOptions = {}): Promise<WriteKdumpCompressedResult> {
  checkOutput(path, { force: opts.overwrite });
  const codec = opts.compression ?? 'zlib';
  if (!(KDUMP_WRITE_CODECS as readonly string[]).includes(codec)) throw new InputError(`kdump-compressed: compression ${codec}, expected one of ${KDUMP_WRITE_CODECS.join(', ')}`);
  const dumpLevel = opts.dumpLevel ?? DEFAULT_DUMP_LEVEL;
  const compress = await compressorOf(codec);
  const plan = planDom0Kdump(img, bootFactsOf(img), opts);
  const l = kdumpLayout(plan.ranges, plan.notes.length, plan.frames.length);
  const half = l.bitmap2At - l.bitmap1At;
  const bitmaps = Buffer.alloc(2 * half);
  for (const r of plan.ranges) setBits(bitmaps, Math.floor(r.start / PAGE_SIZE), divideUp(r.start + r.size, PAGE_SIZE));
  const dumpedMap = bitmaps.subarray(half);
  for (const f of plan.frames) setBit(dumpedMap, f);
  const head = kdumpHead(l, plan.notes, CODEC_FLAG[codec], opts.pcpus ?? DEFAULT_PCPUS, dumpLevel);
  const counts = { compressedPages: 0, storedPages: 0, zeroPages: 0 };
  const fileSize = writeOutput(path, { force: opts.overwrite }, (fd) => {
    writeAllAt(fd, head, 0);
    writeAllAt(fd, bitmaps, l.bitmap1At);
    const desc = Buffer.alloc(DESC_BATCH * PAGE_DESC_SIZE);
    const data = Buffer.alloc(DATA_BATCH_BYTES);
    let descDone = 0; // descriptors written
    let nDesc = 0;
    let dataAt = l.dataAt; // file offset of data[0]
    let nData = 0;
    const flushData = (): void => {
      writeAllAt(fd, data, dataAt, nData);
      dataAt += nData;
      nData = 0;
    };
    const put = (bytes: Uint8Array): number => {
      if (nData + bytes.length > data.length) flushData();
      data.set(bytes, nData);
      nData += bytes.length;
      return dataAt + nData - bytes.length;
    };
    const describe = (offset: number, size: number, flags: number): void => {
      const at = nDesc * PAGE_DESC_SIZE;
      desc.writeBigInt64LE(BigInt(offset), at + PD_OFFSET);
      desc.writeUInt32LE(size, at + PD_SIZE);
      desc.writeUInt32LE(flags, at + PD_FLAGS);
      if (++nDesc === DESC_BATCH) {
        writeAllAt(fd, desc, l.descAt + descDone * PAGE_DESC_SIZE);
        descDone += nDesc;
        nDesc = 0;
      }
    };
    const zeroAt = dumpLevel & DL_EXCLUDE_ZERO ? put(ZERO_PAGE) : -1;
    for (const frame of plan.frames) {
      const page = img.readFrame(frame)!;
      if (zeroAt >= 0 && page.equals(ZERO_PAGE)) {
        describe(zeroAt, PAGE_SIZE, 0);
        counts.zeroPages++;
        continue;
      }
      const packed = compress(page);
      if (packed !== null && packed.length < PAGE_SIZE) {
        describe(put(packed), packed.length, CODEC_FLAG[codec]);
        counts.compressedPages++;
      } else {
        describe(put(page), PAGE_SIZE, 0);
        counts.storedPages++;
      }
    }
    flushData();
    if (nDesc > 0) writeAllAt(fd, desc, l.descAt + descDone * PAGE_DESC_SIZE, nDesc * PAGE_DESC_SIZE);
    return dataAt;
  });
  return { ...l, frames: plan.frames.length, ...counts, fileSize, crashRegion: plan.crashRegion };
}

