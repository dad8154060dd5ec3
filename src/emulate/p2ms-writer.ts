// Writes the native snapshot format `.p2ms` (layout and reader: src/formats/p2ms.ts): header, msgpackr
// metadata, frame index and 4 KiB-aligned frames, streamed with bounded memory and renamed into place.
import { pack } from 'msgpackr';
import { writeAllAt as writeAll, writeOutput } from '../formats/output-file.js';
import { GUEST_WIDTH_64, INDEX_CHUNK_ENTRIES, INDEX_ENTRY_SIZE, P2MS_DEFAULT_CREATED_BY, P2MS_HEADER_SIZE, P2MS_MAGIC, P2MS_OFF, P2MS_VERSION, p2msLayout, U64_LIMIT, WORD_BYTES, WORD_SCALE, WRITE_BATCH_FRAMES, type P2msContent, type P2msLayout } from '../formats/p2ms.js';
import { hex, PAGE_SIZE } from '../xen/abi.js';

function writeU64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32LE(value % WORD_SCALE, at);
  buf.writeUInt32LE(Math.floor(value / WORD_SCALE), at + WORD_BYTES);
}

/** Write the header and the metadata block (`meta`, already packed) at the start of `out`; returns the layout. */
export function writeP2msHead(out: Buffer, meta: Buffer, count: number): P2msLayout {
  const l = p2msLayout(meta.length, count);
  P2MS_MAGIC.copy(out, 0);
  out.writeUInt32LE(P2MS_VERSION, P2MS_OFF.version);
  out.writeUInt32LE(P2MS_HEADER_SIZE, P2MS_OFF.headerLen);
  writeU64(out, l.metaOffset, P2MS_OFF.metaOffset);
  writeU64(out, meta.length, P2MS_OFF.metaLength);
  writeU64(out, l.indexOffset, P2MS_OFF.indexOffset);
  writeU64(out, count, P2MS_OFF.count);
  writeU64(out, l.dataOffset, P2MS_OFF.dataOffset);
  writeU64(out, l.fileLength, P2MS_OFF.fileLength);
  meta.copy(out, l.metaOffset);
  return l;
}

function bigToHex(v: bigint): string {
  return '0x' + v.toString(16);
}

function checkContent(content: P2msContent): void {
  if (content.frameSpace !== 'mfn' && content.frameSpace !== 'pfn') throw new Error(`writeP2ms: frameSpace ${String(content.frameSpace)} is not 'mfn' or 'pfn'`);
  if (content.guestWidth !== GUEST_WIDTH_64) throw new Error(`writeP2ms: guest width ${content.guestWidth} is not ${GUEST_WIDTH_64} (only 64-bit guests are stored)`);
  if (content.cr3 < 0n || content.cr3 >= U64_LIMIT) throw new Error(`writeP2ms: cr3 ${hex(content.cr3)} is not a u64`);
  if (content.maxFrame !== Infinity && (!Number.isSafeInteger(content.maxFrame) || content.maxFrame < 0)) {
    throw new Error(`writeP2ms: maxFrame ${content.maxFrame} is not a non-negative integer or Infinity`);
  }
  for (const [name, va] of content.symbols) {
    if (va < 0n || va >= U64_LIMIT) throw new Error(`writeP2ms: symbol ${name} = ${hex(va)} is not a u64`);
  }
  if (content.sharedInfo !== null && content.sharedInfo.length !== PAGE_SIZE) {
    throw new Error(`writeP2ms: sharedInfo is ${content.sharedInfo.length} bytes, expected ${PAGE_SIZE}`);
  }
}

function checkFrames(frames: ArrayLike<number>): void {
  let prev = -1;
  for (let k = 0; k < frames.length; k++) {
    const f = frames[k]!;
    if (!Number.isSafeInteger(f) || f < 0) throw new Error(`writeP2ms: frames[${k}] = ${f} is not a frame number`);
    if (f <= prev) throw new Error(`writeP2ms: frames[${k}] = ${hex(f)} is not above frames[${k - 1}] = ${hex(prev)}; frames must be ascending and unique`);
    prev = f;
  }
}

/**
 * Write a snapshot. `frames` are ascending unique frame numbers; read(frame) returns its 4096 bytes (the
 * buffer may be reused between calls: it is copied at once). Streams to disk with bounded memory
 * (WRITE_BATCH_FRAMES frames per fs.writeSync) through writeOutput (formats/output-file.ts: a temporary
 * file beside it, fsynced and renamed). Refuses (InputError) to replace an existing file unless
 * opts.overwrite, and anything but a regular file always. Invalid content, frames or read results throw
 * Error and leave no file behind.
 */
export function writeP2ms(
  path: string,
  content: P2msContent,
  frames: ArrayLike<number>,
  read: (frame: number) => Buffer,
  opts: { overwrite?: boolean; createdBy?: string } = {},
): void {
  checkContent(content);
  checkFrames(frames);

  let bootFacts: Record<string, unknown> | null = null;
  if (content.bootFacts !== null) {
    // drop undefined optional fields so the block stays plain msgpack
    bootFacts = Object.fromEntries(Object.entries(content.bootFacts).filter(([, v]) => v !== undefined));
  }
  const meta = pack({
    frameSpace: content.frameSpace,
    guestWidth: content.guestWidth,
    cr3: bigToHex(content.cr3),
    maxFrame: content.maxFrame === Infinity ? null : content.maxFrame,
    symbols: [...content.symbols].map(([name, va]) => [name, bigToHex(va)]),
    sharedInfo: content.sharedInfo,
    bootFacts,
    createdBy: opts.createdBy ?? P2MS_DEFAULT_CREATED_BY,
  });

  const count = frames.length;
  const { indexOffset, dataOffset } = p2msLayout(meta.length, count);
  const head = Buffer.alloc(indexOffset);
  writeP2msHead(head, meta, count);

  writeOutput(path, { force: opts.overwrite }, (fd) => {
    writeAll(fd, head, 0);
    // index, in chunks
    const chunk = Buffer.alloc(Math.min(count, INDEX_CHUNK_ENTRIES) * INDEX_ENTRY_SIZE);
    for (let k = 0; k < count; k += INDEX_CHUNK_ENTRIES) {
      const n = Math.min(INDEX_CHUNK_ENTRIES, count - k);
      for (let j = 0; j < n; j++) writeU64(chunk, frames[k + j]!, j * INDEX_ENTRY_SIZE);
      writeAll(fd, chunk.subarray(0, n * INDEX_ENTRY_SIZE), indexOffset + k * INDEX_ENTRY_SIZE);
    }
    const indexEnd = indexOffset + count * INDEX_ENTRY_SIZE;
    if (dataOffset > indexEnd) writeAll(fd, Buffer.alloc(dataOffset - indexEnd), indexEnd);
    // frames, WRITE_BATCH_FRAMES per write
    const batch = Buffer.alloc(Math.min(count, WRITE_BATCH_FRAMES) * PAGE_SIZE);
    for (let k = 0; k < count; k += WRITE_BATCH_FRAMES) {
      const n = Math.min(WRITE_BATCH_FRAMES, count - k);
      for (let j = 0; j < n; j++) {
        const frame = frames[k + j]!;
        const page = read(frame);
        if (!Buffer.isBuffer(page) || page.length !== PAGE_SIZE) {
          throw new Error(`writeP2ms: read(${hex(frame)}) returned ${Buffer.isBuffer(page) ? page.length + ' bytes' : typeof page}, expected ${PAGE_SIZE} bytes`);
        }
        page.copy(batch, j * PAGE_SIZE);
      }
      writeAll(fd, batch.subarray(0, n * PAGE_SIZE), dataOffset + k * PAGE_SIZE);
    }
  });
}
