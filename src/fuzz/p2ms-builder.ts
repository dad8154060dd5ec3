// Raw .p2ms building for structure rewrites (src/formats/p2ms.ts layout; accepts metadata writeP2ms would
// refuse), and the parts of a base .p2ms a rewrite needs.
import { pack } from 'msgpackr';
import { p2msLayout as fileLayout } from '../formats/p2ms.js';
import { writeP2msHead } from '../emulate/p2ms-writer.js';
import { P2M_ENTRY_SIZE, PAGE_SIZE } from '../xen/abi.js';
import type { BaseReader, P2msLayout } from './anatomy.js';
import { U32_BYTES, U32_LIMIT } from './numbers.js';

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
