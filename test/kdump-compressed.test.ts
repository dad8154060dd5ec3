// makedumpfile's compressed format ("KDUMP   "): the headers parsed from bytes laid out by hand from diskdump_mod.h's
// x86_64 struct layout, the rank index against a naive bit walk, each page codec against a stream made by another
// implementation (Debian's zstd CLI) or built by hand from its format description (snappy's format_description.txt,
// Linux Documentation/staging/lzo.rst), the writer read back frame by frame and audited as its ELF twin, bad input
// byte by byte, and the real dom0 vmcore converted by Debian's makedumpfile 1.7.2 read against the ELF reader.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditImage, type AuditOutcome } from '../src/audit/audit-image.js';
import { emulate } from '../src/emulate/kernel/boot.js';
import { findProfile } from '../src/emulate/kernel/profiles.js';
import { writeKdumpCompressed, type KdumpWriteCodec, type WriteKdumpCompressedResult } from '../src/emulate/kdump-compressed-writer.js';
import { writeVmcore } from '../src/emulate/vmcore-writer.js';
import { BitRunCollector, DumpBitmaps, bitmapWords, popcount32, type BitRun } from '../src/formats/dump-bitmap.js';
import type { GuestImage } from '../src/formats/guest-image.js';
import { compressionOf, isFlattenedDump, isKdumpCompressed, openKdumpCompressed, parseDiskDumpHeader, parseKdumpSubHeader, type KdumpCompressedImage } from '../src/formats/kdump-compressed.js';
import { lzo1xDecompress, LzoError } from '../src/formats/lzo1x.js';
import type { MemoryImage } from '../src/formats/memory-image.js';
import { detectFormat, openImage, readHead } from '../src/formats/open-image.js';
import { decodePage, PageDecodeError, zstdContentSize } from '../src/formats/page-codecs.js';
import { formatSystemMap, loadSymbols } from '../src/formats/symbols.js';
import { MIN_SHARDED_FILE_BYTES } from '../src/scan/scheduler.js';
import { openVmcore } from '../src/formats/vmcore.js';
import { parseE820 } from '../src/inputs/e820.js';
import { inputErrorAt } from './helpers/input-error.js';
import { realVmcorePath } from './helpers/real-vmcore.js';
import { SEED_HOST_LINES } from './helpers/seed-host.js';

const PAGE = 4096;
const REPO = path.resolve(__dirname, '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kdump-compressed-test-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const tmp = (name: string): string => path.join(dir, `${seq++}-${name}`);

/** mulberry32: a small seeded PRNG, so the random bitmaps are the same on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Debian's zstd CLI at level 1 without a checksum, as makedumpfile's ZSTD_compressCCtx: from a file, so the frame declares its size. */
function zstdCli(data: Buffer): Buffer {
  const file = tmp('zstd-input');
  fs.writeFileSync(file, data);
  return run('zstd', ['-1', '--no-check', '-c', '-q', file]);
}

function run(cmd: string, args: string[], input?: Buffer): Buffer {
  const r = spawnSync(cmd, args, { input, maxBuffer: 1 << 30 });
  if (r.error) throw new Error(`${cmd} is required by this test and could not be run: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr.toString()}`);
  return r.stdout;
}

// ---- headers -----------------------------------------------------------------------------------------

describe('disk_dump_header and kdump_sub_header (diskdump_mod.h on x86_64)', () => {
  // Hand layout: char signature[8] @0, int header_version @8, struct new_utsname (6 × char[65] = 390) @12 → 402,
  // struct timeval (two longs, 8-aligned) @408, then unsigned/int fields of 4 bytes from 424: status, block_size,
  // sub_hdr_size, bitmap_blocks, max_mapnr, total_ram_blocks, device_blocks, written_blocks, current_cpu, nr_cpus.
  // kdump_sub_header: unsigned long phys_base @0, int dump_level @8, int split @12, then 8-byte fields from 16:
  // start_pfn, end_pfn, offset_vmcoreinfo, size_vmcoreinfo, offset_note, size_note, offset_eraseinfo,
  // size_eraseinfo, start_pfn_64, end_pfn_64, max_mapnr_64 (@96).
  const h = Buffer.alloc(464);
  h.write('KDUMP   ', 0, 'latin1');
  h.writeInt32LE(6, 8);
  h.write('Linux', 12, 'latin1');
  h.write('x86_64', 12 + 4 * 65, 'latin1');
  h.writeBigInt64LE(1700000000n, 408);
  h.writeUInt32LE(0x21, 424);
  h.writeInt32LE(4096, 428);
  h.writeInt32LE(2, 432);
  h.writeUInt32LE(88, 436);
  h.writeUInt32LE(0x160000, 440);
  h.writeUInt32LE(7, 456);
  h.writeInt32LE(2, 460);
  const s = Buffer.alloc(104);
  s.writeBigUInt64LE(0x1000000n, 0);
  s.writeInt32LE(31, 8);
  s.writeBigUInt64LE(0x1068n, 48);
  s.writeBigUInt64LE(0x1388n, 56);
  s.writeBigUInt64LE(0x123456789n, 96);

  it('reads every field at its C offset', () => {
    const d = parseDiskDumpHeader(h);
    expect(d).toMatchObject({ signature: 'KDUMP   ', headerVersion: 6, timestamp: 1700000000, status: 0x21, blockSize: 4096, subHdrSize: 2, bitmapBlocks: 88, maxMapnr32: 0x160000, currentCpu: 7, nrCpus: 2 });
    expect(d.utsname).toEqual({ sysname: 'Linux', nodename: '', release: '', version: '', machine: 'x86_64', domainname: '' });
    const k = parseKdumpSubHeader(s, 6, d.maxMapnr32);
    expect(k).toMatchObject({ physBase: 0x1000000, dumpLevel: 31, split: 0, offsetNote: 0x1068, sizeNote: 0x1388, maxMapnr64: 0x123456789 });
  });

  it.each([
    [3, { offsetNote: 0, sizeNote: 0, maxMapnr64: 0x160000 }],
    [5, { offsetNote: 0x1068, sizeNote: 0x1388, maxMapnr64: 0x160000 }],
    [6, { offsetNote: 0x1068, sizeNote: 0x1388, maxMapnr64: 0x123456789 }],
  ])('header_version %i: fields it does not define are 0, max_mapnr_64 only from 6 (else the 32-bit one)', (version, want) => {
    expect(parseKdumpSubHeader(s, version, 0x160000)).toMatchObject(want);
  });

  it.each([
    [0, 'none'],
    [0x1, 'zlib'],
    [0x2, 'lzo'],
    [0x4, 'snappy'],
    [0x20, 'zstd'],
    [0x3, 'zlib+lzo'],
    [0x8 | 0x10 | 0x20, 'zstd'],
  ])('status %i names its page codecs: %s', (status, name) => expect(compressionOf(status)).toBe(name));

  it('probes by content: "KDUMP   " and the flattened "makedumpfile\\0"; detectFormat sends both to this reader', () => {
    expect(isKdumpCompressed(h)).toBe(true);
    const flat = Buffer.alloc(64);
    flat.write('makedumpfile', 0, 'latin1');
    expect(isFlattenedDump(flat)).toBe(true);
    expect(isKdumpCompressed(flat)).toBe(false);
    expect(detectFormat(h.subarray(0, 64)).format).toBe('kdump-compressed');
    expect(detectFormat(flat).format).toBe('kdump-compressed');
  });
});

// ---- the rank index --------------------------------------------------------------------------------

/** Naive walk: runs of set bits of a byte bitmap below n. */
function naiveRuns(bytes: Uint8Array, n: number): BitRun[] {
  const runs: BitRun[] = [];
  let start = -1;
  for (let p = 0; p <= n; p++) {
    const on = p < n && ((bytes[p >> 3]! >> (p & 7)) & 1) === 1;
    if (on && start < 0) start = p;
    if (!on && start >= 0) {
      runs.push({ start, end: p });
      start = -1;
    }
  }
  return runs;
}

describe('the 2nd bitmap rank index (crash pfn_to_pos) against a naive bit walk', () => {
  it.each([
    [1, 0.5, 1],
    [31, 0.5, 2],
    [32, 0.9, 3],
    [33, 0.1, 4],
    [511, 0.5, 5],
    [512, 0.5, 6],
    [513, 0.999, 7],
    [70001, 0.5, 8],
    [100000, 0.01, 9],
    [100000, 1, 10],
  ])('max_mapnr %i, density %f (seed %i)', (n, density, seed) => {
    const r = rng(seed);
    const bytes = Math.ceil(n / 8) + 5; // padded like a block-sized bitmap, with stray bits past max_mapnr
    const valid = new Uint8Array(bytes);
    const dumped = new Uint8Array(bytes);
    for (let p = 0; p < bytes * 8; p++) {
      // runs of memory; inside them, dumped pages at the density
      if (r() < 0.999 ? p > 0 && ((valid[(p - 1) >> 3]! >> ((p - 1) & 7)) & 1) === 1 : r() < 0.5) valid[p >> 3]! |= 1 << (p & 7);
      if (((valid[p >> 3]! >> (p & 7)) & 1) === 1 && r() < density) dumped[p >> 3]! |= 1 << (p & 7);
    }
    valid[0]! |= 1;
    dumped[0]! |= 1;
    const collector = new BitRunCollector(1 << 20);
    const words = bitmapWords(valid);
    // fed in uneven chunks of whole words, as the reader feeds 1 MiB at a time
    for (let w = 0; w < words.length; w += 3) collector.add(words.subarray(w, w + 3), w * 32, n);
    collector.finish(n);
    expect(collector.runs).toEqual(naiveRuns(valid, n));
    const bm = new DumpBitmaps(collector.runs, bitmapWords(dumped), n);
    let rank = 0;
    let validCount = 0;
    for (let p = 0; p < n; p++) {
      const isValid = ((valid[p >> 3]! >> (p & 7)) & 1) === 1;
      const isDumped = ((dumped[p >> 3]! >> (p & 7)) & 1) === 1;
      if (bm.rank(p) !== rank || bm.isDumped(p) !== isDumped || bm.isValid(p) !== isValid) {
        expect({ p, rank: bm.rank(p), dumped: bm.isDumped(p), valid: bm.isValid(p) }).toEqual({ p, rank, dumped: isDumped, valid: isValid });
      }
      if (isDumped) rank++;
      if (isValid) validCount++;
    }
    expect(bm.rank(n)).toBe(rank);
    expect(bm.dumpedCount).toBe(rank);
    expect(bm.validCount).toBe(validCount);
    expect(bm.isDumped(n)).toBe(false); // the stray bits past max_mapnr are ignored
    expect(bm.firstDumpedNotValid()).toBe(-1);
    // a dumped bit outside memory is found, at the lowest such pfn
    const holes = naiveRuns(valid.map((b) => ~b & 0xff), n);
    if (holes.length > 0) {
      const stray = holes[holes.length - 1]!.start;
      const d2 = Uint8Array.from(dumped);
      d2[stray >> 3]! |= 1 << (stray & 7);
      expect(new DumpBitmaps(collector.runs, bitmapWords(d2), n).firstDumpedNotValid()).toBe(stray);
    }
  });

  it('popcount32 counts bits (against a bit loop) and a collector refuses more runs than its cap', () => {
    const r = rng(42);
    for (let i = 0; i < 1000; i++) {
      const x = Math.floor(r() * 2 ** 32);
      let c = 0;
      for (let b = 0; b < 32; b++) c += (x >>> b) & 1;
      expect(popcount32(x)).toBe(c);
    }
    const c = new BitRunCollector(2);
    expect(c.add(Uint32Array.of(0x55), 0, 32)).toBe(false); // bits 0, 2, 4, 6: four runs
  });
});

// ---- page codecs -----------------------------------------------------------------------------------

/** A page that compresses, but not to nothing: counters and a repeating text. */
function samplePage(seed: number): Buffer {
  const p = Buffer.alloc(PAGE);
  for (let i = 0; i < PAGE; i += 8) p.writeUInt32LE(seed * 0x10000 + i / 8, i);
  p.write('the quick brown fox '.repeat(40), 1024, 'latin1');
  return p;
}

/** snappy format_description.txt: varint length, literal (tag 00, len−1 in the upper 6 bits), copies with a 2-byte offset (tag 10). */
function snappyAllA(): Buffer {
  const parts = [0x80, 0x20, 0x00, 0x41]; // varint 4096; literal of one 'A'
  for (let left = PAGE - 1; left > 0; ) {
    const len = Math.min(64, left);
    parts.push(((len - 1) << 2) | 2, 1, 0); // copy len bytes from offset 1
    left -= len;
  }
  return Buffer.from(parts);
}

/** lzo.rst: first byte 17 + 4 = copy 4 literals; 001LLLLL with L = 0: length 2 + 31 + 255·15 + 234 = 4092, LE16 (3 << 2) = distance 4; 0x11 0 0 ends. */
const LZO_ABCD = Buffer.from([21, 0x41, 0x42, 0x43, 0x44, 32, ...new Array<number>(15).fill(0), 234, 0x0c, 0x00, 0x11, 0x00, 0x00]);

describe('page codecs (crash diskdump.c cache_page)', () => {
  const page = samplePage(7);
  const out = Buffer.alloc(PAGE);

  it('zstd frames written by Debian\'s zstd CLI (level 1, no checksum, as ZSTD_compressCCtx) decode; the declared size is read first', () => {
    const z = zstdCli(page);
    expect(zstdContentSize(z)).toBe(PAGE);
    decodePage(0x20, z, out);
    expect(out.equals(page)).toBe(true);
  });

  it('zlib (RFC 1950 stream, as compress2 writes), snappy and LZO1X streams decode', () => {
    decodePage(0x1, zlib.deflateSync(page, { level: 1 }), out);
    expect(out.equals(page)).toBe(true);
    decodePage(0x4, snappyAllA(), out);
    expect(out.equals(Buffer.alloc(PAGE, 0x41))).toBe(true);
    decodePage(0x2, LZO_ABCD, out);
    expect(out.equals(Buffer.alloc(PAGE, 'ABCD'))).toBe(true);
  });

  it.each<[string, number, () => Buffer, RegExp]>([
    ['a zstd frame of 8192 bytes', 0x20, () => zstdCli(Buffer.alloc(2 * PAGE, 1)), /zstd: the frame declares 8192 bytes, expected a frame of 4096/],
    ['a zstd frame without its content size (zstd reading a pipe)', 0x20, () => run('zstd', ['-1', '--no-check', '-c', '-q'], page), /zstd: the frame does not declare its content size/],
    ['a zstd frame cut short', 0x20, () => zstdCli(page).subarray(0, 30), /zstd: /],
    ['not a zstd frame', 0x20, () => Buffer.from('hello world'), /zstd: magic 0x6c6c6568, not a zstd frame/],
    ['zlib garbage', 0x1, () => Buffer.from('not zlib at all'), /zlib: /],
    ['a zlib stream of two pages', 0x1, () => zlib.deflateSync(Buffer.alloc(2 * PAGE)), /zlib: inflates to more than 4096 bytes/],
    ['a zlib stream of half a page', 0x1, () => zlib.deflateSync(Buffer.alloc(PAGE / 2)), /zlib: decompressed to 2048 bytes, expected 4096/],
    ['a snappy stream declaring 8192 bytes', 0x4, () => Buffer.from([0x80, 0x40, 0x00, 0x41]), /snappy: the stream declares a 8192-byte uncompressed length, expected 4096/],
    ['a snappy copy before any output', 0x4, () => Buffer.from([0x80, 0x20, 0xfe, 0x01, 0x00]), /snappy: /],
    ['an LZO stream of one literal', 0x2, () => Buffer.from([18, 0x41, 0x11, 0, 0]), /lzo: decompressed to 1 bytes, expected 4096/],
    ['an LZO stream without its end marker', 0x2, () => LZO_ABCD.subarray(0, LZO_ABCD.length - 3), /lzo: LZO1X stream ends inside an instruction/],
    ['an unknown flag', 0x40, () => Buffer.alloc(10), /unknown compression flag 0x40/],
  ])('%s fails with what went wrong', (_name, flag, make, want) => {
    let err: unknown = null;
    try {
      decodePage(flag, make(), Buffer.alloc(PAGE));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PageDecodeError);
    expect((err as Error).message).toMatch(want);
  });

  it.each<[string, Buffer, number, RegExp]>([
    ['a copy from before the output', Buffer.from([21, 0x41, 0x42, 0x43, 0x44, 32, 0, 250, 0x90, 0x01, 0x11, 0, 0]), PAGE, /copies from 101 bytes back with only 4 written/],
    ['bytes after the end marker', Buffer.concat([LZO_ABCD, Buffer.from([0])]), PAGE, /has 1 bytes after its end marker/],
    ['an output too small', LZO_ABCD, 100, /overruns the 100-byte output with a 4092-byte copy/],
    ['a stream of two bytes', Buffer.from([0x11, 0]), PAGE, /is 2 bytes, shorter than the 3-byte minimum/],
  ])('LZO1X: %s is an LzoError, never a write outside the buffer', (_name, src, size, want) => {
    expect(() => lzo1xDecompress(src, new Uint8Array(size))).toThrow(LzoError);
    expect(() => lzo1xDecompress(src, new Uint8Array(size))).toThrow(want);
  });
});

// ---- writer → reader ---------------------------------------------------------------------------------

const CODECS: KdumpWriteCodec[] = ['zlib', 'zstd', 'snappy', 'none'];

/** Class ranges, verdict and exit code of an audit: what must agree between the formats of one crash. */
function auditSummary(o: AuditOutcome): unknown {
  return { verdict: o.report.verdict, exitCode: o.report.exitCode, ranges: o.audit.ranges, pages: o.audit.stats?.pages };
}

describe('writer → reader: an emulated linux-6.1 dom0 on the seed host, dom0_mem=1g,max:1g', () => {
  let mem: MemoryImage;
  let vmcore: string;
  const files = new Map<KdumpWriteCodec, { file: string; written: WriteKdumpCompressedResult }>();
  beforeAll(async () => {
    mem = emulate({ profile: findProfile('linux-6.1')!, hostE820: parseE820(SEED_HOST_LINES.join('\n'), 'seed-host'), nrPages: 0x40000, maxPages: 0x40000 }).image;
    vmcore = tmp('seed.vmcore');
    writeVmcore(mem, vmcore);
    for (const codec of CODECS) {
      const file = tmp(`seed-${codec}.kdump`);
      files.set(codec, { file, written: await writeKdumpCompressed(mem, file, { compression: codec }) });
    }
  });

  it("lays the file out as write_kdump_header does for this host (RAM ends at 0x180000000; the notes are the vmcore's 0x1388 bytes)", () => {
    const w = files.get('zlib')!.written;
    // max_mapnr = 0x180000000 / 4096; each bitmap ceil(0x180000 / 8 / 4096) = 48 blocks; notes after the 104-byte sub header
    expect(w).toMatchObject({ maxMapnr: 0x180000, bitmapBlocks: 96, subHdrSize: 2, bitmap1At: 3 * PAGE, bitmap2At: 51 * PAGE, descAt: 99 * PAGE });
    const img = openKdumpCompressed(files.get('zlib')!.file);
    try {
      expect(img.header).toMatchObject({ headerVersion: 6, status: 1, blockSize: PAGE, subHdrSize: 2, bitmapBlocks: 96, maxMapnr32: 0x180000, nrCpus: 2 });
      expect(img.subHeader).toMatchObject({ dumpLevel: 31, offsetNote: 0x1068, sizeNote: 0x1388, maxMapnr64: 0x180000 });
    } finally {
      img.close();
    }
  });

  it.each(CODECS)('%s: every frame reads as the machine holds it, the rest of RAM as zeros, the crash region as absent', (codec) => {
    const { file, written } = files.get(codec)!;
    const img = openKdumpCompressed(file, { symbols: mem.symbols });
    const elf = openVmcore(vmcore);
    try {
      let n = 0;
      for (const f of mem.frames()) {
        expect(img.readFrame(f)!.equals(mem.readFrame(f)!)).toBe(true);
        n++;
      }
      expect(n).toBe(written.frames);
      expect(written.compressedPages + written.storedPages + written.zeroPages).toBe(n);
      if (codec !== 'none') expect(written.compressedPages).toBeGreaterThan(n / 2);
      else expect(written.compressedPages).toBe(0);
      const c = written.crashRegion;
      expect(img.readFrame(c.start / PAGE)).toBeNull();
      expect(img.readFrame(0x1000)!.equals(Buffer.alloc(PAGE))).toBe(true); // RAM the emulator holds nothing in
      expect(img.readFrame(0xa0)).toBeNull(); // the e820 hole 0xa0000-0xfffff
      // the ELF twin: the same notes (name, type, size), crash note, and machine ranges (rounded out to pages)
      const k = img.formatFacts;
      const e = elf.formatFacts;
      expect(k.compression).toBe(codec);
      expect(k.crashInfo).toEqual(e.crashInfo);
      expect(k.vmcoreInfoXen).toBe(e.vmcoreInfoXen);
      expect(k.notes.map((x) => [x.name, x.type, x.descSize, x.descOffset - 0x1068])).toEqual(e.notes.map((x) => [x.name, x.type, x.descSize, x.descOffset - 0x1000]));
      const round = (s: { maddr: number; size: number }): number[] => [Math.floor(s.maddr / PAGE) * PAGE, Math.ceil((s.maddr + s.size) / PAGE) * PAGE];
      expect(k.segments.map(round)).toEqual(e.segments.map(round));
      expect(k.segments.every((s) => s.fileOffset === -1)).toBe(true);
      expect(img.arch.pfnToMfnFrameListList).toBe(mem.arch.pfnToMfnFrameListList);
      // frame offsets exist for pages stored whole only
      // stored whole: the pages that did not shrink, and the zero pages sharing one stored zero page
      const stored = [...mem.frames()].filter((f) => img.frameOffset(f) >= 0);
      expect(stored.length).toBe(written.storedPages + written.zeroPages);
      for (const f of stored.slice(0, 50)) {
        const b = Buffer.alloc(PAGE);
        const fd = fs.openSync(file, 'r');
        fs.readSync(fd, b, 0, PAGE, img.frameOffset(f));
        fs.closeSync(fd);
        expect(b.equals(mem.readFrame(f)!)).toBe(true);
      }
    } finally {
      img.close();
      elf.close();
    }
  });

  it('audits as the vmcore of the same crash: verdict, exit code and every class range', async () => {
    const elf = openVmcore(vmcore, { symbols: mem.symbols });
    const want = auditSummary(await auditImage(elf, { jobs: 1 }));
    elf.close();
    for (const codec of CODECS) {
      const img = openImage(files.get(codec)!.file, { symbols: mem.symbols });
      expect(img.format).toBe('kdump-compressed');
      expect(auditSummary(await auditImage(img, { jobs: 1 }))).toEqual(want);
      img.close();
    }
  });

  it("scan audits it as one task even when its size makes it a 'large' file (compressed pages have no offsets for shard workers)", async () => {
    const scanDir = tmp('scan');
    fs.mkdirSync(scanDir);
    const file = path.join(scanDir, 'seed.kdump');
    fs.copyFileSync(files.get('none')!.file, file);
    fs.writeFileSync(file + '.map', formatSystemMap(mem.symbols));
    expect(fs.statSync(file).size).toBeGreaterThanOrEqual(MIN_SHARDED_FILE_BYTES); // the scheduler's large-file path
    const elf = openVmcore(vmcore, { symbols: mem.symbols });
    const want = (await auditImage(elf, { jobs: 1 })).report.verdict;
    elf.close();
    const r = spawnSync(process.execPath, [path.join(REPO, 'dist/src/cli.js'), 'scan', scanDir, '--jobs', '2'], { encoding: 'utf8' });
    const line = r.stdout.split('\n').find((l) => l.includes('[kdump-compressed]'));
    expect(line?.split(/ +/).slice(0, 3)).toEqual([want, file, '[kdump-compressed]']);
  });

  it('emulate --format kdump-compressed --compression zstd writes it with FILE.map beside; audit exits as for the vmcore', () => {
    const cli = path.join(REPO, 'dist/src/cli.js');
    const host = path.join(REPO, 'corpora/scenarios/hosts/seed-host.txt');
    const exits: (number | null)[] = [];
    for (const [format, extra] of [['vmcore', []], ['kdump-compressed', ['--compression', 'zstd']]] as const) {
      const out = tmp(`cli.${format}`);
      const w = spawnSync(process.execPath, [cli, 'emulate', '--profile', 'linux-3.8.13-backport', '--e820', host, '--dom0-mem', '1g,max:1g', '--format', format, ...extra, '-o', out], { encoding: 'utf8' });
      expect(w.stderr).toBe('');
      expect(w.status).toBe(0);
      expect(fs.existsSync(out + '.map')).toBe(true);
      expect(detectFormat(readHead(out), out).format).toBe(format);
      exits.push(spawnSync(process.execPath, [cli, 'audit', out], { encoding: 'utf8' }).status);
    }
    expect(exits[0]).toBe(1); // the seed kernel loses 97 pages
    expect(exits[1]).toBe(exits[0]);
  });
});

// ---- bad input ---------------------------------------------------------------------------------------

describe('bad input: one InputError line naming the file, the offset and what was expected', () => {
  let good: Buffer;
  let w: WriteKdumpCompressedResult;
  /** The first descriptor (frame of rank 0), and the first with zlib's flag. */
  let firstCompressed: number;
  beforeAll(async () => {
    const mem = emulate({ profile: findProfile('linux-6.1')!, hostE820: parseE820(SEED_HOST_LINES.join('\n'), 'seed-host'), nrPages: 0x40000, maxPages: 0x40000 }).image;
    const file = tmp('bad-base.kdump');
    w = await writeKdumpCompressed(mem, file, { compression: 'zlib', dumpLevel: 0 });
    good = fs.readFileSync(file);
    firstCompressed = 0;
    while (good.readUInt32LE(w.descAt + firstCompressed * 24 + 12) !== 1) firstCompressed++;
  });
  const set = (b: Buffer, at: number, v: number | bigint, width: 4 | 8 = 4): Buffer => {
    if (width === 8) b.writeBigUInt64LE(BigInt(v), at);
    else b.writeUInt32LE(Number(v), at);
    return b;
  };
  /** Every note owner `from` in the note area (0x1068, 0x1388 bytes) renamed `to`. */
  const renameNotes = (b: Buffer, from: string, to: string): Buffer => {
    for (let at = b.indexOf(from, 0x1068, 'latin1'); at >= 0 && at < 0x1068 + 0x1388; at = b.indexOf(from, at + 1, 'latin1')) b.write(to, at, 'latin1');
    return b;
  };
  /** The frame whose page descriptor is `k` (for reading it): the k-th set bit of the 2nd bitmap. */
  const frameOfRank = (b: Buffer, k: number): number => {
    for (let p = 0, seen = 0; ; p++) if ((b[w.bitmap2At + (p >> 3)]! >> (p & 7)) & 1 && seen++ === k) return p;
  };

  it.each<[string, (b: Buffer) => Buffer, () => number, RegExp]>([
    ['an unknown signature', (b) => (b.write('NOTADUMP', 0, 'latin1'), b), () => 0, /signature "NOTADUMP", expected "KDUMP   "/],
    ['the flattened format', (b) => Buffer.concat([Buffer.from('makedumpfile\0\0\0\0\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\x01', 'latin1'), Buffer.alloc(4096 - 32), b]), () => 0, /flattened format .*makedumpfile -R OUT < FILE/],
    ['the old diskdump facility', (b) => (b.write('DISKDUMP', 0, 'latin1'), b), () => 0, /old diskdump facility/],
    ['a file shorter than the header', (b) => b.subarray(0, 100), () => 0, /shorter than the 464-byte disk_dump_header/],
    ['block_size 8192', (b) => set(b, 428, 8192), () => 428, /block_size 8192, expected 4096/],
    ['header_version 3 (no notes)', (b) => set(b, 8, 3), () => 8, /header_version 3 has no ELF notes/],
    ['sub_hdr_size past the file', (b) => set(b, 432, 0x7fffffff), () => 432, /sub_hdr_size 2147483647 blocks/],
    ['bitmap_blocks past the file', (b) => set(b, 436, 0xffffffff), () => 436, /bitmap_blocks 4294967295: the bitmaps .* run past the end of the file/],
    ['an absurd max_mapnr (2^50 frames)', (b) => set(b, 4096 + 96, 2n ** 50n, 8), () => 4096 + 96, /max_mapnr 1125899906842624, expected 1 to 0x10000000000 frames/],
    ['a max_mapnr the bitmaps cannot hold', (b) => set(b, 4096 + 96, 0x180001, 8), () => 4096 + 96, /max_mapnr 0x180001 needs two bitmaps of 196609 bytes, but bitmap_blocks 96 holds two of 196608/],
    ['a split dump', (b) => set(b, 4096 + 12, 1), () => 4096 + 12, /split dump .*makedumpfile --reassemble/],
    ['a dumped frame outside memory (pfn 0xa0, the e820 hole)', (b) => ((b[w.bitmap2At + 0xa0 / 8]! |= 1), b), () => w.bitmap2At + 0xa0 / 8, /2nd bitmap marks frame 0xa0 dumped but the 1st has it outside memory/],
    ['descriptors past the end of the file', (b) => b.subarray(0, w.descAt + 100), () => w.descAt, /page descriptors \(\d+ × 24 bytes from offset \d+\) run past the end of the file/],
    ['offset_note past the file', (b) => set(b, 4096 + 48, 2n ** 40n, 8), () => 4096 + 48, /offset_note 1099511627776 \+ size_note 5000: expected the vmcore's ELF notes inside the file/],
    ['Xen notes without XEN_ELFNOTE_CRASH_INFO', (b) => set(b, 0x1068 + 0x194 + 8, 0x1000003), () => 0x1068, /Xen crash notes without XEN_ELFNOTE_CRASH_INFO/],
    ['notes without any "Xen" note (a native Linux dump)', (b) => renameNotes(b, 'Xen\0', 'Lnx\0'), () => 0x1068, /a native Linux vmcore \(no Xen crash note\)/],
  ])('at open: %s', (name, mutate, offset, want) => {
    const file = tmp(`bad-${name.replace(/\W+/g, '-')}.kdump`);
    fs.writeFileSync(file, mutate(Buffer.from(good)));
    const msg = inputErrorAt(file, () => openKdumpCompressed(file));
    expect(msg.startsWith(`${file}: offset ${offset()}:`)).toBe(true);
    expect(msg).toMatch(want);
  });

  it.each<[string, (b: Buffer) => Buffer, () => number, () => number, RegExp]>([
    ['a page size above block_size', (b) => set(b, w.descAt + 8, 5000), () => 0, () => w.descAt + 8, /size 5000 exceeds block_size 4096/],
    ['a page offset past the end of the file', (b) => set(b, w.descAt, 2n ** 40n, 8), () => 0, () => w.descAt, /page offset 1099511627776, expected page data between/],
    ['a page offset inside the headers', (b) => set(b, w.descAt, 4096, 8), () => 0, () => w.descAt, /page offset 4096, expected page data between/],
    ['an unknown page flag', (b) => set(b, w.descAt + 12, 0x40), () => 0, () => w.descAt + 12, /flags 0x40, expected 0 or one of 0x1 \(zlib\)/],
    ['a stored page shorter than a block', (b) => set(set(b, w.descAt + 12, 0), w.descAt + 8, 100), () => 0, () => w.descAt + 8, /size 100, expected 4096 for a page stored uncompressed/],
    ['compressed bytes that do not inflate', (b) => b.fill(0xa5, Number(b.readBigUInt64LE(w.descAt + firstCompressed * 24)), Number(b.readBigUInt64LE(w.descAt + firstCompressed * 24)) + 8), () => firstCompressed, () => Number(good.readBigUInt64LE(w.descAt + firstCompressed * 24)), /zlib: .*; expected a page that decompresses to 4096 bytes/],
  ])('when the frame is read: %s', (name, mutate, rank, offset, want) => {
    const file = tmp(`bad-read-${name.replace(/\W+/g, '-')}.kdump`);
    const b = mutate(Buffer.from(good));
    fs.writeFileSync(file, b);
    const img = openKdumpCompressed(file);
    try {
      const frame = frameOfRank(b, rank());
      const msg = inputErrorAt(file, () => img.readFrame(frame));
      expect(msg.startsWith(`${file}: offset ${offset()}:`)).toBe(true);
      expect(msg).toMatch(want);
    } finally {
      img.close();
    }
  });

  it('an incomplete dump (status DUMP_DH_COMPRESSED_INCOMPLETE) reads a page never written (offset 0) as absent', () => {
    const file = tmp('incomplete.kdump');
    const b = set(set(Buffer.from(good), 424, 1 | 8), w.descAt, 0, 8);
    fs.writeFileSync(file, b);
    const img = openKdumpCompressed(file);
    try {
      expect(img.readFrame(frameOfRank(b, 0))).toBeNull();
      expect(img.readFrame(frameOfRank(b, 1))).not.toBeNull();
    } finally {
      img.close();
    }
  });

  it('the CLI prints the one line and exits 2', () => {
    const file = tmp('cli-bad.kdump');
    fs.writeFileSync(file, set(Buffer.from(good), 4096 + 96, 2n ** 50n, 8));
    const r = spawnSync(process.execPath, [path.join(REPO, 'dist/src/cli.js'), 'audit', file], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`${file}: offset ${4096 + 96}: max_mapnr`);
  });
});

// ---- the real dump, converted by Debian's makedumpfile ---------------------------------------------

/** README "PT_LOAD" table (machine address, size): the 1st bitmap rounds each out to whole pages. */
const REAL_LOADS: [number, number][] = [
  [0x0, 0x9fc00],
  [0x100000, 0xf900000],
  [0x1fa00000, 0x5da000],
  [0x100000000, 0x60000000],
];
/** README: the frame list (top 0x13513b, mids 0x13513a/0x135139, missing mid 0x13513d, missing leaf 0x13781e) and shared_info 0x1ffd6. */
const REAL_KEY_FRAMES = [0x13513b, 0x13513a, 0x135139, 0x13513d, 0x13781e, 0x1ffd6];
const CACHE = path.join(REPO, 'node_modules/.cache/p2m-audit');

/** `makedumpfile ARGS vmcore OUT` into the cache, once (atomic rename); reused while the vmcore is older. */
function converted(name: string, args: string[]): string {
  const vmcore = realVmcorePath();
  const out = path.join(CACHE, `dom0-6.1-clean.${name}.kdump`);
  if (fs.existsSync(out) && fs.statSync(out).mtimeMs >= fs.statSync(vmcore).mtimeMs) return out;
  const part = `${out}.${process.pid}.tmp`;
  fs.rmSync(part, { force: true });
  run('makedumpfile', [...args, vmcore, part]);
  fs.renameSync(part, out);
  return out;
}

describe("the real Xen 4.17 dom0 vmcore converted by Debian's makedumpfile 1.7.2 (-c zlib, -l lzo; no vmlinux needed)", () => {
  const conversions: [string, string[], string, number][] = [
    ['zlib', ['-c', '-d', '1'], 'zlib', 1],
    ['lzo', ['-l', '-d', '0'], 'lzo', 0],
  ];
  const files = new Map<string, string>();
  let elf: GuestImage;
  beforeAll(() => {
    for (const [name, args] of conversions) files.set(name, converted(name, args));
    elf = openVmcore(realVmcorePath());
  });
  afterAll(() => elf?.close());

  it.each(conversions)('%s: the headers say what makedumpfile wrote from the README\'s numbers', (name, _args, compression, dumpLevel) => {
    const img = openImage(files.get(name)!) as KdumpCompressedImage;
    try {
      expect(img.format).toBe('kdump-compressed');
      // max_mapnr = end of the last PT_LOAD 0x160000000 / 4096; two bitmaps of ceil(0x160000 / 8 / 4096) = 44 blocks;
      // the notes: the PT_NOTE's 0x1388 bytes right after the 104-byte sub header; nr_cpus = 2 NT_PRSTATUS notes
      expect(img.header).toMatchObject({ headerVersion: 6, blockSize: PAGE, subHdrSize: 2, bitmapBlocks: 88, maxMapnr32: 0x160000, nrCpus: 2 });
      expect(img.subHeader).toMatchObject({ dumpLevel, split: 0, offsetNote: 0x1068, sizeNote: 0x1388, maxMapnr64: 0x160000 });
      const k = img.formatFacts;
      expect(k.compression).toBe(compression);
      expect(k.crashInfo).toMatchObject({ descSize: 80, xenMajor: 4, xenMinor: 17, xenPhysStart: 0x1f800000, frameListListMfn: 0x13513b });
      expect(k.notes.map((n) => [n.name, n.type, n.descSize, n.descOffset])).toEqual(
        [
          ['CORE', 1, 336, 0x1014],
          ['Xen', 0x1000002, 32, 0x1174],
          ['Xen', 0x1000001, 80, 0x11a4],
          ['CORE', 1, 336, 0x1208],
          ['Xen', 0x1000002, 32, 0x1368],
          ['VMCOREINFO_XEN', 0, 4068, 0x13a4],
        ].map(([n, t, s, at]) => [n, t, s, (at as number) + 0x68]),
      );
      expect(k.segments.map((s) => [s.maddr, s.size])).toEqual(REAL_LOADS.map(([a, s]) => [a, Math.ceil((a + s) / PAGE) * PAGE - a]));
      expect(img.maxFrame).toBe(0x15ffff);
    } finally {
      img.close();
    }
  });

  it.each(conversions)('%s: frames byte-identical to the ELF reader\'s at every 97th frame and the README\'s frame-list pages', (name) => {
    const img = openKdumpCompressed(files.get(name)!);
    try {
      let compared = 0;
      const frames = [...REAL_KEY_FRAMES];
      for (const [a, s] of REAL_LOADS) for (let f = a / PAGE; f < (a + s) / PAGE; f += 97) frames.push(Math.floor(f));
      for (const f of frames) {
        const mine = img.readFrame(f);
        const theirs = elf.readFrame(f);
        expect(mine, `frame ${f.toString(16)}`).not.toBeNull();
        if (theirs === null) continue;
        expect(mine!.equals(theirs), `frame ${f.toString(16)}`).toBe(true);
        compared++;
      }
      expect(compared).toBeGreaterThan(4000);
      // 0x9f: the PT_LOAD ends at 0x9fbff, so the ELF holds no whole page; makedumpfile marks it in memory, not dumped
      expect(elf.readFrame(0x9f)).toBeNull();
      expect(img.bitmaps.isValid(0x9f) && !img.bitmaps.isDumped(0x9f)).toBe(true);
      expect(img.readFrame(0x9f)!.equals(Buffer.alloc(PAGE))).toBe(true);
      expect(img.readFrame(0xfa00)).toBeNull(); // the crash region
    } finally {
      img.close();
    }
  });

  it('audits exactly as the ELF vmcore it came from (verdict, exit code, every class range)', async () => {
    const symbols = loadSymbols(path.join(REPO, '../shared/real-xen/guest-kernel/System.map-6.1.0-56-amd64.gz'));
    const e = openVmcore(realVmcorePath(), { symbols });
    const want = auditSummary(await auditImage(e, { jobs: 1 }));
    e.close();
    for (const file of files.values()) {
      const img = openImage(file, { symbols });
      expect(auditSummary(await auditImage(img, { jobs: 1 }))).toEqual(want);
      img.close();
    }
  });

  it('the flattened form (-F) is refused with the command that rearranges it, and that command gives a readable dump', () => {
    const flat = tmp('real.flat');
    run('sh', ['-c', 'makedumpfile -F -l -d 1 "$1" > "$2"', 'sh', realVmcorePath(), flat]);
    const msg = inputErrorAt(flat, () => openImage(flat));
    expect(msg).toContain('makedumpfile -R OUT < FILE');
    const out = tmp('real.rearranged.kdump');
    run('sh', ['-c', 'makedumpfile -R "$1" < "$2"', 'sh', out, flat]);
    const img = openKdumpCompressed(out);
    try {
      expect(img.readFrame(0x13513b)!.equals(elf.readFrame(0x13513b)!)).toBe(true);
    } finally {
      img.close();
    }
  });
});
