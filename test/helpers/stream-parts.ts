// Save streams built byte by byte from the libxc/libxl stream specs (xen-project/xen
// docs/specs/libxc-migration-stream.pandoc, libxl-migration-stream.pandoc), independently of the emulator's
// writer: a minimal valid v3 PV stream as named parts, so a test can corrupt, cut or pad one part and know
// its offset (test/stream-v2.test.ts, test/stream-incomplete.test.ts).
import { PFINFO_L4TAB, PFINFO_LPINTAB, PFINFO_NOTAB, PFINFO_XTAB } from '../../src/xen/stream-format.js';

export const REC = { END: 0, PAGE_DATA: 1, PV_INFO: 2, P2M_FRAMES: 3, VCPU_BASIC: 4, SHARED_INFO: 7, HVM_CONTEXT: 9, STATIC_DATA_END: 0x10 };

export function record(type: number, body: Buffer, padByte = 0): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32LE(type >>> 0, 0);
  h.writeUInt32LE(body.length, 4);
  return Buffer.concat([h, body, Buffer.alloc((8 - (body.length % 8)) % 8, padByte)]);
}

export function imageHeader(version = 3, options = 0): Buffer {
  const b = Buffer.alloc(24);
  b.fill(0xff, 0, 8);
  b.writeUInt32BE(0x58454e46, 8); // "XENF"
  b.writeUInt32BE(version, 12);
  b.writeUInt16BE(options, 16);
  return b;
}

export function domainHeader(type = 1): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32LE(type, 0);
  b.writeUInt16LE(12, 4);
  b.writeUInt32LE(4, 8);
  b.writeUInt32LE(17, 12);
  return b;
}

export function pvInfo(width = 8, levels = 4): Buffer {
  const b = Buffer.alloc(8);
  b[0] = width;
  b[1] = levels;
  return record(REC.PV_INFO, b);
}

export function p2mFrames(start: number, end: number, leafPfns: number[]): Buffer {
  const b = Buffer.alloc(8 + 8 * leafPfns.length);
  b.writeUInt32LE(start, 0);
  b.writeUInt32LE(end, 4);
  leafPfns.forEach((p, k) => b.writeBigUInt64LE(BigInt(p), 8 + 8 * k));
  return record(REC.P2M_FRAMES, b);
}

/** PAGE_DATA with the given (pfn, type nibble) entries and `pages` pages of data, page j filled with fill(j). */
export function pageData(entries: [pfn: number, type: number][], pages: number, fill = (j: number) => j + 1): Buffer {
  const b = Buffer.alloc(8 + 8 * entries.length + 4096 * pages);
  b.writeUInt32LE(entries.length, 0);
  entries.forEach(([pfn, type], k) => b.writeBigUInt64LE((BigInt(type) << 60n) | BigInt(pfn), 8 + 8 * k));
  for (let j = 0; j < pages; j++) b.fill(fill(j), 8 + 8 * entries.length + 4096 * j, 8 + 8 * entries.length + 4096 * (j + 1));
  return record(REC.PAGE_DATA, b);
}

export function vcpuBasic(cr3Pfn: number): Buffer {
  const b = Buffer.alloc(8 + 5168);
  b.writeBigUInt64LE(BigInt(cr3Pfn) << 12n, 8 + 5008);
  return record(REC.VCPU_BASIC, b);
}

/** A minimal valid v3 PV stream, as named parts so a test can corrupt one and know its offset. */
export function parts(): { name: string; buf: Buffer }[] {
  return [
    { name: 'ihdr', buf: imageHeader() },
    { name: 'dhdr', buf: domainHeader() },
    { name: 'pvinfo', buf: pvInfo() },
    { name: 'sde', buf: record(REC.STATIC_DATA_END, Buffer.alloc(0)) },
    { name: 'p2m', buf: p2mFrames(0, 511, [1]) },
    { name: 'pages', buf: pageData([[0, PFINFO_NOTAB], [1, PFINFO_NOTAB], [2, PFINFO_XTAB], [3, PFINFO_L4TAB | PFINFO_LPINTAB]], 3) },
    { name: 'shinfo', buf: record(REC.SHARED_INFO, Buffer.alloc(4096)) },
    { name: 'vcpu', buf: vcpuBasic(3) },
    { name: 'end', buf: record(REC.END, Buffer.alloc(0)) },
  ];
}

export function offsetOf(ps: { name: string; buf: Buffer }[], name: string): number {
  let off = 0;
  for (const p of ps) {
    if (p.name === name) return off;
    off += p.buf.length;
  }
  throw new Error(`no part ${name}`);
}

/** The xl wrapper around a libxc stream (xl header with 8 bytes of optional data, libxl header, records). */
export function xlWrap(libxc: Buffer, opts: { flags?: number; optLen?: number; ident?: string } = {}): Buffer {
  const h = Buffer.alloc(48);
  h.write('Xen saved domain, xl format\n \0 \r', 0, 'latin1');
  h.writeUInt32LE(0x01020304, 32);
  h.writeUInt32LE(opts.flags ?? 3, 36);
  h.writeUInt32LE(opts.optLen ?? 8, 44);
  const optional = Buffer.alloc(8);
  optional.writeUInt32LE(3, 0);
  optional.write('{}\0', 4, 'latin1');
  const lh = Buffer.alloc(16);
  lh.write(opts.ident ?? 'LibxlFmt', 0, 'latin1');
  lh.writeUInt32BE(2, 8);
  return Buffer.concat([h, optional, lh, record(1, Buffer.alloc(0)), libxc, record(0, Buffer.alloc(0))]);
}
