// .p2ms snapshot format: round trips, the documented byte layout (re-derived here independently of the
// writer), and one test per kind of bad input.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pack, unpack } from 'msgpackr';
import { afterAll, describe, expect, it } from 'vitest';
import type { BootFacts } from '../src/inputs/boot-facts.js';
import { bootFactsOf, type GuestImage } from '../src/formats/guest-image.js';
import { InputError } from '../src/common/errors.js';
import { writeArchSharedInfo } from '../src/xen/shared-info.js';
import { P2MS_MAGIC, P2MS_VERSION, isP2ms, openP2ms, type P2msContent } from '../src/formats/p2ms.js';
import { writeP2ms } from '../src/emulate/p2ms-writer.js';
import { PAGE_SIZE } from '../src/xen/abi.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2ms-test-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const tmpPath = (name: string): string => path.join(dir, `${seq++}-${name}.p2ms`);

/** Page contents derived from the frame number: frame as u64 at 0 and 4088, bytes (frame*7+i) & 0xff between. */
function pageOf(frame: number, out = Buffer.alloc(PAGE_SIZE)): Buffer {
  for (let i = 8; i < PAGE_SIZE - 8; i++) out[i] = (frame * 7 + i) & 0xff;
  out.writeBigUInt64LE(BigInt(frame), 0);
  out.writeBigUInt64LE(BigInt(frame), PAGE_SIZE - 8);
  return out;
}

const bootFacts: BootFacts = {
  profile: 'linux-4.19-dom0',
  role: 'dom0',
  hostE820: [
    { addr: 0, size: 0x9f000, type: 1 },
    { addr: 0x100000, size: 0x1_0000_0000, type: 1 },
  ],
  kernelE820: [{ addr: 0, size: 0x9f000, type: 1 }],
  dom0Mem: '4096M',
  nrPages: 0x100000,
  maxPages: 0x100000,
  kernelMaxPfn: 0x140000,
  buildBound: 0x140000,
  xenMaxP2mPfnHistory: [
    { value: 0x100000, by: 'xen_pagetable_init' },
    { value: 0x140000, by: 'xen_memory_setup' },
  ],
  identity: [{ start: 0x9f, end: 0x100 }],
  remapped: [{ from: { start: 0xc0000, end: 0x100000 }, to: { start: 0x100000, end: 0x140000 }, how: 'remap' }],
  released: 0x40000,
  extraRegions: [{ start: 0x100000, end: 0x140000 }],
  config: { CONFIG_XEN_DOM0: 'y' },
  messages: ['Released 0 page(s)'],
  seed: 42,
};

function content(over: Partial<P2msContent> = {}): P2msContent {
  const sharedInfo = Buffer.alloc(PAGE_SIZE);
  writeArchSharedInfo(sharedInfo, {
    maxPfn: 0x140000n,
    pfnToMfnFrameListList: 0x1234n,
    nmiReason: 0n,
    p2mCr3: 0xabc000n,
    p2mVaddr: 0xffffc90000000000n,
    p2mGeneration: 7n,
  });
  return {
    frameSpace: 'mfn',
    guestWidth: 8,
    cr3: 0x1234000n,
    maxFrame: 0x2000000,
    symbols: new Map([
      ['xen_p2m_addr', 0xffffffff82a3c0f0n],
      ['max_pfn', 0xffffffff82e1a8c8n],
    ]),
    sharedInfo,
    bootFacts,
    ...over,
  };
}

const FRAMES = [0, 0x100, 0x101, 0x2000, 0xffffffff, 0x100000000, 0x123456789a];

function writeSample(over: Partial<P2msContent> = {}, frames: number[] = FRAMES): string {
  const p = tmpPath('sample');
  writeP2ms(p, content(over), frames, (f) => pageOf(f));
  return p;
}

/** The header fields at the documented offsets. */
function header(buf: Buffer) {
  const u64 = (at: number) => buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * 2 ** 32;
  return {
    version: buf.readUInt32LE(8),
    headerLength: buf.readUInt32LE(12),
    metaOffset: u64(16),
    metaLength: u64(24),
    indexOffset: u64(32),
    count: u64(40),
    dataOffset: u64(48),
    fileLength: u64(56),
  };
}

function withImage<T>(p: string, f: (img: GuestImage) => T): T {
  const img = openP2ms(p);
  try {
    return f(img);
  } finally {
    img.close();
  }
}

describe('round trip', () => {
  it('keeps frames, metadata, symbols and arch', () => {
    const p = writeSample();
    withImage(p, (img) => {
      expect(img.format).toBe('p2ms');
      expect(img.path).toBe(p);
      expect(img.frameSpace).toBe('mfn');
      expect(img.guestWidth).toBe(8);
      expect(img.cr3).toBe(0x1234000n);
      expect(img.maxFrame).toBe(0x2000000);
      expect(img.symbols).toEqual(content().symbols);
      expect([...img.symbols.keys()]).toEqual(['xen_p2m_addr', 'max_pfn']);
      expect(img.sharedInfo).toEqual(content().sharedInfo);
      expect(img.arch).toEqual({
        maxPfn: 0x140000n,
        pfnToMfnFrameListList: 0x1234n,
        nmiReason: 0n,
        p2mCr3: 0xabc000n,
        p2mVaddr: 0xffffc90000000000n,
        p2mGeneration: 7n,
      });
      expect(bootFactsOf(img)).toEqual(bootFacts);
      expect(img.frameCount()).toBe(FRAMES.length);
      for (const f of FRAMES) expect(img.readFrame(f)).toEqual(pageOf(f));
      expect(img.readFrame(0x102)).toBeNull();
      expect(img.frameOffset(0x102)).toBe(-1);
    });
  });

  it('frameOffset points at the frame bytes (read back with fs.readSync)', () => {
    const p = writeSample();
    const fd = fs.openSync(p, 'r');
    try {
      withImage(p, (img) => {
        FRAMES.forEach((f, k) => {
          const off = img.frameOffset(f);
          expect(off % PAGE_SIZE).toBe(0);
          expect(off).toBe(header(fs.readFileSync(p)).dataOffset + k * PAGE_SIZE);
          const b = Buffer.alloc(PAGE_SIZE);
          expect(fs.readSync(fd, b, 0, PAGE_SIZE, off)).toBe(PAGE_SIZE);
          expect(b).toEqual(pageOf(f));
        });
      });
    } finally {
      fs.closeSync(fd);
    }
  });

  it('follows the documented byte layout', () => {
    const p = writeSample();
    const buf = fs.readFileSync(p);
    expect(buf.subarray(0, 8).toString('latin1')).toBe('P2MSNAP\0');
    expect(isP2ms(buf)).toBe(true);
    const h = header(buf);
    expect(h).toMatchObject({ version: 1, headerLength: 64, metaOffset: 64, count: FRAMES.length, fileLength: buf.length });
    expect(h.indexOffset).toBe(Math.ceil((64 + h.metaLength) / 8) * 8);
    expect(h.dataOffset).toBe(Math.ceil((h.indexOffset + 8 * FRAMES.length) / 4096) * 4096);
    expect(h.fileLength).toBe(h.dataOffset + FRAMES.length * 4096);
    const index = FRAMES.map((_, k) => buf.readUInt32LE(h.indexOffset + 8 * k) + buf.readUInt32LE(h.indexOffset + 8 * k + 4) * 2 ** 32);
    expect(index).toEqual(FRAMES);
    const meta = unpack(buf.subarray(h.metaOffset, h.metaOffset + h.metaLength));
    expect(meta).toMatchObject({
      frameSpace: 'mfn',
      guestWidth: 8,
      cr3: '0x1234000',
      maxFrame: 0x2000000,
      symbols: [
        ['xen_p2m_addr', '0xffffffff82a3c0f0'],
        ['max_pfn', '0xffffffff82e1a8c8'],
      ],
      createdBy: 'p2m-audit',
    });
    expect(meta.sharedInfo).toHaveLength(PAGE_SIZE);
  });

  it('stores null sharedInfo/bootFacts, Infinity maxFrame, pfn space and zero frames', () => {
    const p = writeSample({ sharedInfo: null, bootFacts: null, maxFrame: Infinity, frameSpace: 'pfn', symbols: new Map() }, []);
    const buf = fs.readFileSync(p);
    expect(header(buf)).toMatchObject({ count: 0, dataOffset: 4096, fileLength: 4096 });
    expect(unpack(buf.subarray(64, 64 + header(buf).metaLength))).toMatchObject({ maxFrame: null, sharedInfo: null, bootFacts: null });
    withImage(p, (img) => {
      expect(img.sharedInfo).toBeNull();
      expect(img.arch).toEqual({ maxPfn: 0n, pfnToMfnFrameListList: 0n, nmiReason: 0n, p2mCr3: 0n, p2mVaddr: 0n, p2mGeneration: 0n });
      expect(img.maxFrame).toBe(Infinity);
      expect(img.frameSpace).toBe('pfn');
      expect(bootFactsOf(img)).toBeNull();
      expect(img.symbols.size).toBe(0);
      expect(img.frameCount()).toBe(0);
      expect(img.readFrame(0)).toBeNull();
    });
  });

  it('round-trips a few thousand frames written through a reused read buffer', () => {
    // 3000 frames: every third frame below 4500, then every third from 2^33 (batches of 256 cross often)
    const frames = Array.from({ length: 3000 }, (_, k) => (k < 1500 ? 3 * k : 2 ** 33 + 3 * k));
    const scratch = Buffer.alloc(PAGE_SIZE);
    const p = tmpPath('big');
    writeP2ms(p, content(), Float64Array.from(frames), (f) => pageOf(f, scratch));
    expect(fs.statSync(p).size).toBe(header(fs.readFileSync(p)).dataOffset + 3000 * PAGE_SIZE);
    withImage(p, (img) => {
      expect(img.frameCount()).toBe(3000);
      for (const f of frames) {
        const b = img.readFrame(f)!;
        expect(b.readBigUInt64LE(0)).toBe(BigInt(f));
        expect(b.readBigUInt64LE(PAGE_SIZE - 8)).toBe(BigInt(f));
      }
      for (const k of [0, 255, 256, 1499, 1500, 2999]) expect(img.readFrame(frames[k]!)).toEqual(pageOf(frames[k]!));
      expect(img.readFrame(1)).toBeNull();
      expect(img.readFrame(2 ** 33 + 3 * 1500 + 1)).toBeNull();
    });
  });
});

describe('writeP2ms', () => {
  it('refuses to overwrite an existing file unless told to', () => {
    const p = writeSample();
    expect(() => writeP2ms(p, content(), [5], (f) => pageOf(f))).toThrow(InputError);
    expect(() => writeP2ms(p, content(), [5], (f) => pageOf(f))).toThrow(/already exists/);
    withImage(p, (img) => expect(img.frameCount()).toBe(FRAMES.length));
    writeP2ms(p, content(), [5], (f) => pageOf(f), { overwrite: true });
    withImage(p, (img) => expect(img.frameCount()).toBe(1));
    expect(fs.existsSync(p + '.tmp')).toBe(false);
  });

  it.each([
    ['frames not ascending', [2, 1], (f: number) => pageOf(f)],
    ['duplicate frames', [2, 2], (f: number) => pageOf(f)],
    ['a negative frame', [-1], (f: number) => pageOf(f)],
    ['a short page from read', [1, 2], (f: number) => (f === 2 ? Buffer.alloc(100) : pageOf(f))],
  ])('rejects %s and leaves no file behind', (_what, frames, read) => {
    const p = tmpPath('reject');
    expect(() => writeP2ms(p, content(), frames, read)).toThrow(Error);
    expect(fs.existsSync(p)).toBe(false);
    expect(fs.existsSync(p + '.tmp')).toBe(false);
  });

  it.each<[string, Partial<P2msContent>]>([
    ['a 32-bit guest', { guestWidth: 4 }],
    ['a short sharedInfo', { sharedInfo: Buffer.alloc(16) }],
    ['a negative maxFrame', { maxFrame: -1 }],
    ['a cr3 beyond 64 bits', { cr3: 1n << 64n }],
  ])('rejects content with %s', (_what, over) => {
    const p = tmpPath('reject');
    expect(() => writeP2ms(p, content(over), [1], (f) => pageOf(f))).toThrow(Error);
    expect(fs.existsSync(p)).toBe(false);
  });
});

// ---- bad input -----------------------------------------------------------------------------------
/** Expect openP2ms to throw a one-line InputError naming the file and matching every pattern. */
function expectInputError(p: string, ...patterns: (string | RegExp)[]): void {
  let err: unknown;
  try {
    openP2ms(p).close();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(InputError);
  const msg = (err as Error).message;
  expect(msg.startsWith(`${p}: `)).toBe(true);
  expect(msg).not.toContain('\n');
  for (const pat of patterns) {
    if (typeof pat === 'string') expect(msg).toContain(pat);
    else expect(msg).toMatch(pat);
  }
}

/** Write a good sample, let `edit` change its bytes, and save the result. */
function corrupt(edit: (buf: Buffer) => Buffer | void): string {
  const p = writeSample();
  const buf = fs.readFileSync(p);
  const out = edit(buf) ?? buf;
  fs.writeFileSync(p, out);
  return p;
}

/**
 * Assemble a file by hand from a metadata value (a second implementation of the documented layout),
 * for metadata the writer would never produce.
 */
function assemble(meta: unknown, frames: number[] = [1, 2]): string {
  const m = pack(meta);
  const indexOffset = Math.ceil((64 + m.length) / 8) * 8;
  const dataOffset = Math.ceil((indexOffset + 8 * frames.length) / 4096) * 4096;
  const buf = Buffer.alloc(dataOffset + frames.length * 4096);
  P2MS_MAGIC.copy(buf, 0);
  buf.writeUInt32LE(P2MS_VERSION, 8);
  buf.writeUInt32LE(64, 12);
  const u64 = (v: number, at: number) => (buf.writeUInt32LE(v % 2 ** 32, at), buf.writeUInt32LE(Math.floor(v / 2 ** 32), at + 4));
  u64(64, 16);
  u64(m.length, 24);
  u64(indexOffset, 32);
  u64(frames.length, 40);
  u64(dataOffset, 48);
  u64(buf.length, 56);
  m.copy(buf, 64);
  frames.forEach((f, k) => {
    u64(f, indexOffset + 8 * k);
    pageOf(f).copy(buf, dataOffset + 4096 * k);
  });
  const p = tmpPath('assembled');
  fs.writeFileSync(p, buf);
  return p;
}

/** The metadata a good sample holds, as a plain value to edit. */
function goodMeta(): Record<string, unknown> {
  const buf = fs.readFileSync(writeSample());
  return unpack(buf.subarray(64, 64 + header(buf).metaLength)) as Record<string, unknown>;
}

describe('bad input', () => {
  it('the hand assembler itself produces a valid file', () => {
    withImage(assemble(goodMeta()), (img) => {
      expect(img.frameCount()).toBe(2);
      expect(img.readFrame(2)).toEqual(pageOf(2));
      expect(bootFactsOf(img)).toEqual(bootFacts);
    });
  });

  it('missing file', () => {
    expectInputError(path.join(dir, 'nope.p2ms'), /: no such file$/);
  });

  it('a directory', () => {
    expectInputError(dir, 'not a regular file');
  });

  it.each<[string, (b: Buffer) => Buffer | void, (string | RegExp)[]]>([
    ['wrong magic', (b) => void b.write('ELF!', 0, 'latin1'), ['offset 0: expected magic "P2MSNAP\\x00", found "ELF!NAP\\x00"']],
    ['empty file', (b) => b.subarray(0, 0), ['offset 0: expected magic', 'found ""', 'file is 0 bytes']],
    ['file shorter than the magic', (b) => b.subarray(0, 3), ['found "P2M"', 'file is 3 bytes']],
    ['file shorter than the header', (b) => b.subarray(0, 40), ['file is 40 bytes, shorter than the 64-byte header']],
    ['unsupported version', (b) => void b.writeUInt32LE(2, 8), ['offset 8: unsupported version 2, expected 1']],
    ['wrong header length', (b) => void b.writeUInt32LE(72, 12), ['offset 12: header length 72, expected 64']],
    ['metadata offset inside the header', (b) => void b.writeUInt32LE(32, 16), ['offset 16: metadata offset 32']],
    ['metadata length past the file', (b) => void (b.writeUInt32LE(0, 24), b.writeUInt32LE(0x100, 28)), ['offset 32', 'before the metadata end', 'length 1099511627776']],
    ['u64 field beyond 2^53', (b) => void b.writeUInt32LE(0xffffffff, 44), ['offset 40: frame count 0xffffffff', 'beyond 2^53']],
    ['data offset not a multiple of 4096', (b) => void b.writeUInt32LE(4096 + 8, 48), ['offset 48: data offset 4104 is not a multiple of 4096']],
    ['frame count larger than the index room', (b) => void b.writeUInt32LE(600, 40), ['offset 48', 'before the frame-index end', '600 × 8']],
  ])('%s', (_what, edit, patterns) => {
    expectInputError(corrupt(edit), ...patterns);
  });

  it('truncated: names the file size and data offset + count·4096', () => {
    let dataOffset = 0;
    let full = 0;
    const p = corrupt((b) => {
      dataOffset = header(b).dataOffset;
      full = b.length;
      return b.subarray(0, b.length - 4096);
    });
    expect(full).toBe(dataOffset + FRAMES.length * 4096);
    expectInputError(p, `truncated: file is ${full - 4096} bytes`, `data offset ${dataOffset} + ${FRAMES.length} frames × 4096 = ${full} bytes`);
  });

  it('a huge frame count is refused as truncation before anything is allocated', () => {
    // count 2^40 with data offset 2^44 (room for its index): the file is far shorter than 2^44 + 2^40·4096
    let size = 0;
    const p = corrupt((b) => {
      size = b.length;
      b.writeUInt32LE(0, 40);
      b.writeUInt32LE(0x100, 44);
      b.writeUInt32LE(0, 48);
      b.writeUInt32LE(0x1000, 52);
    });
    expectInputError(p, `truncated: file is ${size} bytes, but data offset ${2 ** 44} + ${2 ** 40} frames × 4096 = ${2 ** 44 + 2 ** 52} bytes`);
  });

  it('header file length disagrees with the layout', () => {
    const p = corrupt((b) => void b.writeUInt32LE(b.readUInt32LE(56) + 4096, 56));
    expectInputError(p, 'offset 56: file length field', 'expected data offset');
  });

  it('trailing bytes after the last frame', () => {
    const p = corrupt((b) => Buffer.concat([b, Buffer.alloc(10)]));
    expectInputError(p, 'longer than the', 'trailing data');
  });

  it('metadata not decodable', () => {
    const p = corrupt((b) => void (b[64] = 0xc1)); // 0xc1: the one byte msgpack never uses
    expectInputError(p, 'offset 64: metadata block', 'is not decodable msgpack');
  });

  it('metadata with trailing garbage inside its length', () => {
    const p = corrupt((b) => {
      const h = header(b);
      // claim one byte more than the msgpack value (the padding before the index is zero)
      if (h.metaOffset + h.metaLength + 1 > h.indexOffset) b.writeUInt32LE(h.indexOffset + 8, 32);
      b.writeUInt32LE(h.metaLength + 1, 24);
    });
    expectInputError(p, 'is not decodable msgpack');
  });

  it('index not ascending names the entry', () => {
    const p = corrupt((b) => {
      const h = header(b);
      // entry 3 (0x2000) := entry 2's value 0x101
      b.writeUInt32LE(0x101, h.indexOffset + 3 * 8);
    });
    expectInputError(p, 'frame index entry 3 is frame 0x101, not above entry 2 (frame 0x101)', 'strictly ascending');
  });

  it('index entry beyond 2^53', () => {
    const p = corrupt((b) => void b.writeUInt32LE(0xffffffff, header(b).indexOffset + 6 * 8 + 4));
    expectInputError(p, 'frame index entry 6 is beyond 2^53');
  });

  it.each<[string, (m: Record<string, unknown>) => unknown, string]>([
    ['metadata not a map', () => [1, 2], 'metadata field "(root)": expected a map, found an array of 2'],
    ['frameSpace', (m) => ({ ...m, frameSpace: 'gfn' }), 'metadata field "frameSpace": expected "mfn" or "pfn", found string "gfn"'],
    ['guestWidth', (m) => ({ ...m, guestWidth: 4 }), 'metadata field "guestWidth": expected 8 (64-bit guest), found number 4'],
    ['cr3 as a number', (m) => ({ ...m, cr3: 0x1234000 }), 'metadata field "cr3": expected a hex string ("0x…"), found number 19087360'],
    ['cr3 not hex', (m) => ({ ...m, cr3: '0xzz' }), 'metadata field "cr3": expected a hex string'],
    ['cr3 beyond 64 bits', (m) => ({ ...m, cr3: '0x10000000000000000' }), 'metadata field "cr3": expected a u64'],
    ['maxFrame', (m) => ({ ...m, maxFrame: '12' }), 'metadata field "maxFrame": expected a non-negative integer, found string "12"'],
    ['symbols not an array', (m) => ({ ...m, symbols: 'x' }), 'metadata field "symbols": expected an array'],
    ['a symbol not a pair', (m) => ({ ...m, symbols: [['a', '0x1', 'b']] }), 'metadata field "symbols[0]": expected a [name, hex VA] pair'],
    ['a symbol VA as a number', (m) => ({ ...m, symbols: [['a', '0x1'], ['b', 5]] }), 'metadata field "symbols[1][1]": expected a hex string'],
    ['sharedInfo length', (m) => ({ ...m, sharedInfo: Buffer.alloc(100) }), 'metadata field "sharedInfo": expected 4096 bytes of binary or null, found 100 bytes of binary'],
    ['bootFacts not a map', (m) => ({ ...m, bootFacts: 3 }), 'metadata field "bootFacts": expected a map, found number 3'],
    ['bootFacts.role', (m) => ({ ...m, bootFacts: { ...bootFacts, role: 'hvm' } }), 'metadata field "bootFacts.role": expected "dom0" or "domU"'],
    ['bootFacts.hostE820[1].size', (m) => ({ ...m, bootFacts: { ...bootFacts, hostE820: [bootFacts.hostE820[0], { addr: 0, size: 'x', type: 1 }] } }), 'metadata field "bootFacts.hostE820[1].size"'],
    ['bootFacts.remapped[0].how', (m) => ({ ...m, bootFacts: { ...bootFacts, remapped: [{ ...bootFacts.remapped[0], how: 'move' }] } }), 'metadata field "bootFacts.remapped[0].how"'],
    ['bootFacts.config value', (m) => ({ ...m, bootFacts: { ...bootFacts, config: { A: 1 } } }), 'metadata field "bootFacts.config.A": expected a string'],
    ['createdBy', (m) => ({ ...m, createdBy: undefined }), 'metadata field "createdBy": expected a string, found undefined'],
  ])('metadata field of the wrong type: %s', (_what, edit, message) => {
    expectInputError(assemble(edit(goodMeta())), message);
  });
});

describe('isP2ms', () => {
  it.each<[string, Buffer, boolean]>([
    ['the magic', Buffer.from('P2MSNAP\0rest', 'latin1'), true],
    ['a different magic', Buffer.from('XenSaved', 'latin1'), false],
    ['too short', Buffer.from('P2MS', 'latin1'), false],
  ])('%s → %s', (_what, head, want) => {
    expect(isP2ms(head)).toBe(want);
  });
});
