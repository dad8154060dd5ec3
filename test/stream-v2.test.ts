// Save streams (src/formats/save-stream.ts reader, stream-writer.ts emulated `xl save`, restore-check.ts).
// Round trips: an emulated guest is audited in memory and again after an emulated save; both audits must
// agree, and Xen's own verify-stream-v2 must accept every stream we write. Expected numbers are worked
// out by hand from the host map below and xen-toolstack.md §1/§3 (see the comments at each value); the
// bad-input table builds tiny streams byte by byte here, independently of the writer.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { auditImage, type AuditOutcome } from '../src/audit/audit-image.js';
import { InputError } from '../src/common/errors.js';
import type { MemoryImage } from '../src/formats/memory-image.js';
import { openImage } from '../src/formats/open-image.js';
import { renderRestoreCheck, restoreCheck } from '../src/emulate/restore-check.js';
import { FRAME_ABSENT, FRAME_XTAB, NO_TYPE, openStream, StreamImage } from '../src/formats/save-stream.js';
import { PFINFO_L4TAB, PFINFO_LPINTAB, PFINFO_NOTAB, PFINFO_XTAB } from '../src/xen/stream-format.js';
import { writeSaveStream, type SaveSummary } from '../src/emulate/save-stream-writer.js';
import { parseE820 } from '../src/inputs/e820.js';
import { emulate } from '../src/emulate/kernel/boot.js';
import { findProfile } from '../src/emulate/kernel/profiles.js';
import { mapP2m } from '../src/views/toolstack-view.js';
import { verifyStream } from './helpers/verify-stream.js';
import { REC, domainHeader, imageHeader, offsetOf, p2mFrames, pageData, parts, pvInfo, record, xlWrap } from './helpers/stream-parts.js';

/** A 512 MiB host: the classic low hole 0x9fc00–0xfffff (pfns 0x9f–0xff, 97 pages), RAM to 0x20000000. */
const HOST = `(XEN)  0000000000000000 - 000000000009fc00 (usable)
(XEN)  000000000009fc00 - 00000000000a0000 (reserved)
(XEN)  00000000000f0000 - 0000000000100000 (reserved)
(XEN)  0000000000100000 - 0000000020000000 (usable)`;
/** dom0_mem=128M: nr_pages = max pages = 0x8000. */
const NR_PAGES = 0x8000;
/** The low hole: pfns [0x9f, 0x100). */
const HOLE_START = 0x9f;
const HOLE_PAGES = 0x100 - 0x9f; // 97

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-stream-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function boot(profile: string): MemoryImage {
  return emulate({ profile: findProfile(profile)!, hostE820: parseE820(HOST, 'host'), nrPages: NR_PAGES, maxPages: NR_PAGES }).image;
}

/** pfn → mfn of the in-memory guest, as (lo, hi) words, read from the save side's own leaves (mfn space). */
function p2mOf(img: MemoryImage): { lo: Uint32Array; hi: Uint32Array } {
  const t = mapP2m(img);
  const n = t.leafFrames.length * 512;
  const lo = new Uint32Array(n);
  const hi = new Uint32Array(n);
  t.leafFrames.forEach((f, k) => {
    const page = img.readFrame(f)!;
    for (let i = 0; i < 512; i++) {
      lo[k * 512 + i] = page.readUInt32LE(i * 8);
      hi[k * 512 + i] = page.readUInt32LE(i * 8 + 4);
    }
  });
  return { lo, hi };
}

function fatalSet(o: AuditOutcome): [number, number, string][] {
  return o.report.fatal.map((f) => [f.start, f.end, f.cls]);
}

function classPages(o: AuditOutcome): Record<string, number> {
  return Object.fromEntries(Object.entries(o.report.classes).map(([k, v]) => [k, v.pages]));
}

// ---- linux-4.x: every pfn the guest owns is inside arch.max_pfn ---------------------------------------
describe('linux-4.x dom0 (nr_pages 0x8000): emulated xl save, read back', () => {
  let mem: MemoryImage;
  let xlFile: string;
  let bareFile: string;
  let summary: SaveSummary;
  let img: StreamImage;

  beforeAll(() => {
    mem = boot('linux-4.x');
    xlFile = path.join(tmp, 'linux-4x.save');
    bareFile = path.join(tmp, 'linux-4x.libxc');
    summary = writeSaveStream(mem, xlFile, { wrapper: 'xl' });
    writeSaveStream(mem, bareFile, { wrapper: 'none' });
    img = openStream(xlFile, { symbols: mem.symbols });
  });
  afterAll(() => img.close());

  it("Xen's verify-stream-v2 accepts the xl file and the bare libxc stream", () => {
    const xl = verifyStream(xlFile, 'xl');
    expect(xl.output).toContain('Libxl Record: End');
    expect(xl.ok, xl.output).toBe(true);
    const bare = verifyStream(bareFile, 'libxc');
    expect(bare.ok, bare.output).toBe(true);
    // record order of §3.7, as the verifier saw it
    const order = xl.output.split('\n').filter((l) => /^Libxc Record|^Squashed/.test(l)).map((l) => l.replace(/, length \d+$/, ''));
    expect(order).toEqual([
      'Libxc Record: x86 PV info',
      'Libxc Record: x86 CPUID policy',
      'Libxc Record: x86 MSR policy',
      'Libxc Record: Static data end',
      'Libxc Record: x86 PV P2M frames',
      'Squashed 33 Page Data records together', // ceil(0x8061 / 1024)
      'Libxc Record: TSC info',
      'Libxc Record: Shared info',
      'Libxc Record: x86 PV vcpu basic',
      'Libxc Record: x86 PV vcpu extended',
      'Libxc Record: x86 PV vcpu xsave',
      'Libxc Record: End',
    ]);
  });

  it('openImage recognises both wrappers', () => {
    const a = openImage(xlFile);
    const b = openImage(bareFile);
    try {
      expect(a.format).toBe('xl-save');
      expect(b.format).toBe('libxc-stream');
      expect(a.frameSpace).toBe('pfn');
    } finally {
      a.close();
      b.close();
    }
  });

  it('max_pfn, P2M_FRAMES and XTAB counts match the hand-derived layout', () => {
    // 4.x remaps the 97 hole pages to nr_pages..nr_pages+96, so xen_p2m_last_pfn = 0x8061 and the
    // saver's max_pfn = arch.max_pfn − 1 = 0x8060; 0x8060/512 + 1 = 65 leaf pages.
    expect(img.savedP2m!.startPfn).toBe(0);
    expect(img.savedP2m!.endPfn).toBe(0x8060);
    expect(img.savedP2m!.leafPfns.length).toBe(65);
    expect(img.maxFrame).toBe(0x8060);
    // the hole pfns 0x9f–0xff are identity entries: XTAB, no data; every other pfn carries a page
    expect(img.counts.pfns).toBe(0x8061);
    expect(img.counts.xtab).toBe(HOLE_PAGES);
    expect(img.counts.withData).toBe(0x8061 - HOLE_PAGES);
    expect(img.counts.pageDataRecords).toBe(33);
    for (let pfn = HOLE_START; pfn < HOLE_START + HOLE_PAGES; pfn++) {
      expect(img.frameCode(pfn)).toBe(FRAME_XTAB);
      expect(img.pageType(pfn)).toBe(PFINFO_XTAB);
    }
    expect(img.frameCode(0x8061)).toBe(FRAME_ABSENT);
    expect(img.pageType(0x8061)).toBe(NO_TYPE);
    expect(summary.xtab).toBe(HOLE_PAGES);
  });

  it('leaf pfns, cr3 and start_info are the in-memory mfns seen through the p2m', () => {
    const p2m = p2mOf(mem);
    const tool = mapP2m(mem);
    img.savedP2m!.leafPfns.forEach((pfn, k) => {
      expect(p2m.hi[pfn]).toBe(0);
      expect(p2m.lo[pfn]).toBe(tool.leafFrames[k]);
    });
    const cr3Pfn = Number(img.cr3 >> 12n);
    expect(img.cr3 & 0xfffn).toBe(0n);
    expect(p2m.lo[cr3Pfn]).toBe(Number(mem.cr3 >> 12n));
    expect(img.pageType(cr3Pfn)).toBe(PFINFO_L4TAB | PFINFO_LPINTAB);
    expect(img.pageType(img.facts.startInfoPfn)).toBe(PFINFO_NOTAB);
    // arch fields travel unchanged (SHARED_INFO is the raw page)
    expect(img.arch).toEqual(mem.arch);
  });

  it('every page with data equals guest memory; page tables have pfns in place of mfns', () => {
    const p2m = p2mOf(mem);
    const zero = Buffer.alloc(4096);
    let tables = 0;
    for (let pfn = 0; pfn <= 0x8060; pfn++) {
      const type = img.pageType(pfn);
      if (type === PFINFO_XTAB) continue;
      const got = Buffer.from(img.readFrame(pfn)!);
      const want = mem.readFrame(p2m.lo[pfn]!) ?? zero;
      if (type === PFINFO_NOTAB) {
        expect(got.equals(want), `pfn ${pfn.toString(16)}`).toBe(true);
        continue;
      }
      tables++;
      for (let i = 0; i < 512; i++) {
        const wLo = want.readUInt32LE(i * 8);
        const wHi = want.readUInt32LE(i * 8 + 4);
        const gLo = got.readUInt32LE(i * 8);
        const gHi = got.readUInt32LE(i * 8 + 4);
        if ((type & 7) === PFINFO_L4TAB && i >= 256 && i <= 271) {
          expect([gLo, gHi]).toEqual([0, 0]); // Xen's slots are zeroed
          continue;
        }
        expect(gLo & 0xfff).toBe(wLo & 0xfff); // flags kept
        expect(gHi & 0xfff00000).toBe(wHi & 0xfff00000);
        if ((wLo & 1) === 0) {
          expect([gLo, gHi]).toEqual([wLo, wHi]);
          continue;
        }
        const named = (gHi & 0xfffff) * 2 ** 20 + (gLo >>> 12);
        const mfn = (wHi & 0xfffff) * 2 ** 20 + (wLo >>> 12);
        expect(p2m.lo[named]).toBe(mfn); // the PTE now names the pfn whose p2m entry is that mfn
      }
    }
    expect(tables).toBe(img.counts.pageTables);
    expect(tables).toBe(summary.pageTables);
    expect(tables).toBeGreaterThanOrEqual(4); // at least one table per level
  });

  it('audit of the stream (worker pool) equals the audit of the guest in memory', async () => {
    const inMemory = await auditImage(mem, { jobs: 0 });
    const fromStream = await auditImage(img, { jobs: 2 });
    expect(fromStream.report.verdict).toBe('CLEAN');
    expect(fromStream.report.exitCode).toBe(0);
    expect(fromStream.report.verdict).toBe(inMemory.report.verdict);
    expect(fatalSet(fromStream)).toEqual(fatalSet(inMemory));
    expect(classPages(fromStream)).toEqual(classPages(inMemory));
    expect(fromStream.tool.method).toBe('list');
    expect(fromStream.tool.maxPfn).toBe(0x8060);
  });

  it('restore check: nothing lost', () => {
    const loss = restoreCheck(img);
    expect(loss.lost).toEqual([]);
    expect(loss.lostPages).toBe(0);
    expect(loss.guestRamPages).toBe(NR_PAGES); // 0x8000 − 97 below + 97 remapped above
    expect(loss.exitCode).toBe(0);
    expect(renderRestoreCheck(loss, false)).toMatch(/^OK /);
  });

  it('refuses to overwrite unless asked', () => {
    expect(() => writeSaveStream(mem, xlFile, { wrapper: 'xl' })).toThrow(InputError);
  });
});

// ---- the seed's backport: 97 repopulated pfns lie past arch.max_pfn -------------------------------------
describe('linux-3.8.13-backport dom0: the stream omits exactly the uncovered pfns', () => {
  let mem: MemoryImage;
  let file: string;
  let img: StreamImage;
  /** 97 pages released from the hole and repopulated at nr_pages: pfns 0x8000–0x8060; arch.max_pfn = nr_pages. */
  const UNCOVERED: [number, number] = [NR_PAGES, NR_PAGES + HOLE_PAGES];

  beforeAll(() => {
    mem = boot('linux-3.8.13-backport');
    file = path.join(tmp, 'backport.save');
    writeSaveStream(mem, file, { wrapper: 'xl' });
    img = openStream(file, { symbols: mem.symbols });
  });
  afterAll(() => img.close());

  it('verify-stream-v2 accepts it', () => {
    const v = verifyStream(file, 'xl');
    expect(v.ok, v.output).toBe(true);
  });

  it('the saver stops at max_pfn 0x7fff: the uncovered pfns are not in the stream', () => {
    expect(img.savedP2m!.endPfn).toBe(NR_PAGES - 1);
    expect(img.maxFrame).toBe(NR_PAGES - 1);
    for (let pfn = UNCOVERED[0]; pfn < UNCOVERED[1]; pfn++) expect(img.frameCode(pfn)).toBe(FRAME_ABSENT);
    expect(img.counts.pfns).toBe(NR_PAGES);
  });

  it('audit verdict and fatal pfn set equal the in-memory audit (FATAL, uncovered 0x8000–0x8060)', async () => {
    const inMemory = await auditImage(mem, { jobs: 0 });
    const fromStream = await auditImage(img, { jobs: 0 });
    expect(inMemory.report.verdict).toBe('FATAL');
    expect(fatalSet(inMemory)).toEqual([[...UNCOVERED, 'uncovered']]);
    expect(fromStream.report.verdict).toBe(inMemory.report.verdict);
    expect(fromStream.report.exitCode).toBe(1);
    expect(fatalSet(fromStream)).toEqual(fatalSet(inMemory));
    expect(classPages(fromStream)).toEqual(classPages(inMemory));
    expect(fromStream.tool.method).toBe('tree');
  });

  it('restore check lists exactly those pfns', () => {
    const loss = restoreCheck(img);
    expect(loss.lost).toEqual([{ start: UNCOVERED[0], end: UNCOVERED[1], pages: HOLE_PAGES, mib: HOLE_PAGES / 256, reason: 'beyond-max-pfn' }]);
    expect(loss.lostPages).toBe(HOLE_PAGES);
    expect(loss.exitCode).toBe(1);
    const json = JSON.parse(renderRestoreCheck(loss, true));
    expect(json.lost).toEqual([{ start: '0x8000', end: '0x8060', pages: 97, mib: 0.37890625, reason: 'beyond-max-pfn' }]);
    const text = renderRestoreCheck(loss, false);
    expect(text).toContain('0x8000-0x8060  97 pages');
  });
});

// ---- hand-built streams (test/helpers/stream-parts.ts) -----------------------------------------------------
let fileNo = 0;
function put(buf: Buffer): string {
  const f = path.join(tmp, `hand-${fileNo++}.bin`);
  fs.writeFileSync(f, buf);
  return f;
}

describe('hand-built streams', () => {
  it('a minimal valid stream reads back: data offsets, XTAB, pinned L4, cr3', () => {
    const ps = parts();
    const file = put(Buffer.concat(ps.map((p) => p.buf)));
    const img = openStream(file);
    try {
      expect(img.format).toBe('libxc-stream');
      const pagesAt = offsetOf(ps, 'pages');
      const dataAt = pagesAt + 8 + 8 + 4 * 8; // record header, PAGE_DATA header, 4 pfn words
      expect(img.frameOffset(0)).toBe(dataAt);
      expect(img.frameOffset(1)).toBe(dataAt + 4096);
      expect(img.frameCode(2)).toBe(FRAME_XTAB);
      expect(img.frameOffset(3)).toBe(dataAt + 2 * 4096); // the XTAB entry has no page
      expect(img.readFrame(3)![100]).toBe(3); // third data page, filled with 3
      expect(img.pageType(3)).toBe(PFINFO_L4TAB | PFINFO_LPINTAB);
      expect(img.cr3).toBe(3n << 12n);
      expect(img.maxFrame).toBe(3);
      expect(img.savedP2m).toEqual({ startPfn: 0, endPfn: 511, leafPfns: Float64Array.of(1) });
      expect(img.counts).toMatchObject({ pfns: 4, withData: 3, xtab: 1, pageTables: 1, records: 7 }); // PV_INFO, SDE, P2M_FRAMES, PAGE_DATA, SHARED_INFO, VCPU_BASIC, END
    } finally {
      img.close();
    }
  });

  it('the same stream wrapped as an xl file reads the same', () => {
    const libxc = Buffer.concat(parts().map((p) => p.buf));
    const file = put(xlWrap(libxc));
    const img = openImage(file) as StreamImage;
    try {
      expect(img.format).toBe('xl-save');
      expect(img.facts.libxcOffset).toBe(48 + 8 + 16 + 8);
      expect(img.frameOffset(0)).toBe(48 + 8 + 16 + 8 + offsetOf(parts(), 'pages') + 8 + 8 + 32);
    } finally {
      img.close();
    }
  });

  it('a later PAGE_DATA entry overrides an earlier one; optional unknown records are skipped', () => {
    const ps = parts();
    ps.splice(6, 0, { name: 'again', buf: pageData([[1, PFINFO_XTAB], [2, PFINFO_NOTAB]], 1, () => 0x77) });
    ps.splice(7, 0, { name: 'opt', buf: record(0x80000013, Buffer.alloc(12, 0xab)) });
    const img = openStream(put(Buffer.concat(ps.map((p) => p.buf))));
    try {
      expect(img.frameCode(1)).toBe(FRAME_XTAB);
      expect(img.readFrame(2)![0]).toBe(0x77);
      expect(img.counts.overridden).toBe(2);
      expect(img.facts.skippedOptional).toEqual([0x80000013]);
    } finally {
      img.close();
    }
  });

  it('a v2 stream (no STATIC_DATA_END: restore infers it) and a stream ending in CHECKPOINT are read', () => {
    const v2 = parts().filter((p) => p.name !== 'sde');
    v2[0] = { name: 'ihdr', buf: imageHeader(2) };
    const a = openStream(put(Buffer.concat(v2.map((p) => p.buf))));
    const cp = parts();
    cp[cp.length - 1] = { name: 'end', buf: record(0x0e, Buffer.alloc(0)) };
    const b = openStream(put(Buffer.concat(cp.map((p) => p.buf))));
    try {
      expect(a.facts.version).toBe(2);
      expect(a.counts.withData).toBe(3);
      expect(b.facts.checkpointed).toBe(true);
      expect(b.counts.withData).toBe(3);
    } finally {
      a.close();
      b.close();
    }
  });

  it('sparse pfns use a sorted index (2^25 pfns of P2M_FRAMES, two pages)', () => {
    const end = 2 ** 25 - 1;
    const leaves = Array.from({ length: (end + 1) / 512 }, (_, k) => k);
    const ps = parts();
    ps[4] = { name: 'p2m', buf: p2mFrames(0, end, leaves) };
    ps[5] = { name: 'pages', buf: pageData([[end, PFINFO_NOTAB], [5, PFINFO_NOTAB], [end, PFINFO_NOTAB]], 3) };
    const img = openStream(put(Buffer.concat(ps.map((p) => p.buf))));
    try {
      expect(img.readFrame(end)![0]).toBe(3); // the later entry wins
      expect(img.readFrame(5)![0]).toBe(2);
      expect(img.frameCode(6)).toBe(FRAME_ABSENT);
      expect(img.maxFrame).toBe(end);
      expect(img.counts).toMatchObject({ pfns: 2, overridden: 1 });
    } finally {
      img.close();
    }
  });

  // Each case corrupts the minimal stream; `at` is the byte offset the message must name.
  type Case = { name: string; build: () => Buffer; at: (ps: { name: string; buf: Buffer }[]) => number; match: RegExp };
  const withPart = (name: string, buf: Buffer): Buffer => Buffer.concat(parts().map((p) => (p.name === name ? buf : p.buf)));
  const cases: Case[] = [
    { name: 'wrong magic', build: () => Buffer.from('ELF\x7f but not a stream at all........................', 'latin1'), at: () => 0, match: /expected an xl save header/ },
    { name: 'marker with a zero bit (legacy)', build: () => withPart('ihdr', Buffer.concat([Buffer.from('ffffffffffffff7f', 'hex'), imageHeader().subarray(8)])), at: () => 0, match: /xl save header|marker/ },
    { name: 'bad version 1', build: () => withPart('ihdr', imageHeader(1)), at: () => 12, match: /stream version 1, expected 2\.\.3/ },
    { name: 'bad version 4', build: () => withPart('ihdr', imageHeader(4)), at: () => 12, match: /stream version 4, expected 2\.\.3/ },
    { name: 'big-endian stream', build: () => withPart('ihdr', imageHeader(3, 1)), at: () => 16, match: /big-endian/ },
    { name: 'reserved option bits', build: () => withPart('ihdr', imageHeader(3, 4)), at: () => 16, match: /reserved image header option bits/ },
    { name: 'HVM domain', build: () => withPart('dhdr', domainHeader(2)), at: () => 24, match: /HVM guests are not supported/ },
    { name: '32-bit PV guest', build: () => withPart('pvinfo', pvInfo(4, 3)), at: (ps) => offsetOf(ps, 'pvinfo') + 8, match: /32-bit PV guests are not supported/ },
    {
      name: 'record length > 128 MiB',
      build: () => {
        const b = Buffer.alloc(8);
        b.writeUInt32LE(REC.PAGE_DATA, 0);
        b.writeUInt32LE(128 * 1024 * 1024 + 8, 4);
        return withPart('pages', b);
      },
      at: (ps) => offsetOf(ps, 'pages'),
      match: /length 134217736 exceeds REC_LENGTH_MAX/,
    },
    {
      name: 'truncated record',
      build: () => {
        const ps = parts();
        const cut = offsetOf(ps, 'pages') + 8 + 100;
        return Buffer.concat(ps.map((p) => p.buf)).subarray(0, cut);
      },
      at: (ps) => offsetOf(ps, 'pages'),
      // cut before SHARED_INFO: nothing to audit (a stream that gets past it is described: stream-incomplete.test.ts)
      match: /no END record and stops after X86_PV_P2M_FRAMES \(the file ends inside a PAGE_DATA record\), before any SHARED_INFO record: nothing to audit/,
    },
    { name: 'unknown mandatory record type', build: () => withPart('shinfo', record(0x13, Buffer.alloc(16))), at: (ps) => offsetOf(ps, 'shinfo'), match: /unknown mandatory record type 0x13/ },
    {
      name: 'PAGE_DATA length mismatch (XTAB entry with a page)',
      build: () => withPart('pages', pageData([[0, PFINFO_NOTAB], [1, PFINFO_XTAB]], 2)),
      at: (ps) => offsetOf(ps, 'pages'),
      match: /PAGE_DATA record has length 8216, expected 8 \+ 8·2 \+ 4096·1 pages with data = 4120/,
    },
    { name: 'PAGE_DATA type 5', build: () => withPart('pages', pageData([[0, 5]], 1)), at: (ps) => offsetOf(ps, 'pages') + 16, match: /invalid type 0x5/ },
    { name: 'PAGE_DATA type 8 (pinned NOTAB)', build: () => withPart('pages', pageData([[0, 8]], 1)), at: (ps) => offsetOf(ps, 'pages') + 16, match: /invalid type 0x8/ },
    {
      name: 'PAGE_DATA reserved pfn bits',
      build: () => withPart('pages', pageData([[0, PFINFO_NOTAB], [1 + 2 ** 52, PFINFO_NOTAB]], 2)),
      at: (ps) => offsetOf(ps, 'pages') + 24,
      match: /pfn\[1\] has reserved bits 52–59 set/,
    },
    {
      name: 'PAGE_DATA pfn past the domain maximum',
      build: () => withPart('pages', pageData([[512, PFINFO_NOTAB]], 1)),
      at: (ps) => offsetOf(ps, 'pages') + 16,
      match: /0x200 is outside the domain maximum 0x1ff/,
    },
    { name: 'non-zero padding', build: () => withPart('p2m', record(REC.P2M_FRAMES, Buffer.from('0000000000000000ff', 'hex'), 0xee)), at: (ps) => offsetOf(ps, 'p2m') + 8 + 9, match: /padding to 8 bytes is not all zero/ },
    {
      name: 'P2M_FRAMES end 0xffffffff with an 8-byte body (no 64 MiB allocation)',
      build: () => withPart('p2m', p2mFrames(0, 0xffffffff, [])),
      at: (ps) => offsetOf(ps, 'p2m'),
      match: /X86_PV_P2M_FRAMES record has length 8, expected 8 \+ 8388608 leaf pfns/,
    },
    { name: 'SHARED_INFO of 4095 bytes', build: () => withPart('shinfo', record(REC.SHARED_INFO, Buffer.alloc(4095))), at: (ps) => offsetOf(ps, 'shinfo'), match: /SHARED_INFO record has length 4095, expected 4096/ },
    { name: 'HVM record in a PV stream', build: () => withPart('shinfo', record(REC.HVM_CONTEXT, Buffer.alloc(8))), at: (ps) => offsetOf(ps, 'shinfo'), match: /HVM_CONTEXT record in an x86 PV stream/ },
    { name: 'STATIC_DATA_END in a v2 stream', build: () => withPart('ihdr', imageHeader(2)), at: (ps) => offsetOf(ps, 'sde'), match: /STATIC_DATA_END record in a version 2 stream/ },
    { name: 'VCPU_BASIC of the wrong size', build: () => withPart('vcpu', record(REC.VCPU_BASIC, Buffer.alloc(8 + 2800))), at: (ps) => offsetOf(ps, 'vcpu'), match: /2800-byte context, expected 5168/ },
  ];

  it.each(cases)('$name → one-line InputError naming the offset', (c) => {
    const file = put(c.build());
    const big = vi.spyOn(Buffer, 'alloc');
    const before = process.memoryUsage().arrayBuffers;
    let err: unknown;
    try {
      openStream(file).close();
    } catch (e) {
      err = e;
    }
    const grew = process.memoryUsage().arrayBuffers - before;
    const sizes = big.mock.calls.map((call) => call[0] as number);
    big.mockRestore();
    expect(err).toBeInstanceOf(InputError);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    expect(msg.startsWith(`${file}: offset ${c.at(parts())}: `), msg).toBe(true);
    expect(msg).toMatch(c.match);
    // bounded memory: nothing a length field names was allocated
    expect(Math.max(0, ...sizes)).toBeLessThanOrEqual(64 * 1024);
    expect(grew).toBeLessThan(16 * 1024 * 1024);
  });

  const xlCases: Case[] = [
    { name: 'xl legacy stream (no STREAMv2 flag)', build: () => xlWrap(Buffer.concat(parts().map((p) => p.buf)), { flags: 1 }), at: () => 36, match: /legacy \(pre-v2/ },
    { name: 'xl unknown mandatory flag', build: () => xlWrap(Buffer.concat(parts().map((p) => p.buf)), { flags: 7 }), at: () => 36, match: /unknown xl mandatory flags 0x4/ },
    { name: 'xl optional data past the end', build: () => xlWrap(Buffer.alloc(0), { optLen: 1 << 30 }), at: () => 44, match: /optional data length 1073741824 runs past the end/ },
    { name: 'libxl ident', build: () => xlWrap(Buffer.concat(parts().map((p) => p.buf)), { ident: 'LibxlFmX' }), at: () => 56, match: /libxl header ident "LibxlFmt"/ },
  ];
  it.each(xlCases)('$name → one-line InputError naming the offset', (c) => {
    const file = put(c.build());
    let err: unknown;
    try {
      openStream(file).close();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    const msg = (err as Error).message;
    expect(msg).not.toContain('\n');
    expect(msg.startsWith(`${file}: offset ${c.at(parts())}: `), msg).toBe(true);
    expect(msg).toMatch(c.match);
  });

  it("Xen's verifier agrees with the hand-built valid stream and rejects a bad one", () => {
    const good = put(Buffer.concat(parts().map((p) => p.buf)));
    expect(verifyStream(good, 'libxc').ok).toBe(true);
    const bad = put(withPart('pages', pageData([[0, PFINFO_NOTAB], [1, PFINFO_XTAB]], 2)));
    const v = verifyStream(bad, 'libxc');
    expect(v.ok).toBe(false);
    expect(v.output).toContain('Expected 8 + 16 + 4096, got 8216');
  });
});
