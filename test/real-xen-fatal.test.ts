// A real PV guest with the seed's bound (arch.max_pfn lowered to nr_pages), written by real Xen 4.17.7:
// its `xl dump-core` and the stream its failed `xl save` left (../shared/real-xen-fatal/pve820tree; README
// there). Every expected value comes from Xen's own files beside them, parsed here: lost-pfns.txt (the
// ground truth against xen-mfndump, the pfns the save wrote as XTAB), inspect-save.txt (the records and
// where the stream stops), xl-save-vvv.log (what the saver printed when it failed) and xl-restore-vvv.log
// (what restore printed). The stream's own PAGE_DATA types are a second source for the XTAB pages.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditImage, type AuditOutcome } from '../src/audit/audit-image.js';
import { openImage } from '../src/formats/open-image.js';
import { loadSymbols } from '../src/formats/symbols.js';
import type { GuestImage } from '../src/formats/guest-image.js';
import { StreamImage } from '../src/formats/save-stream.js';
import { restoreCheck } from '../src/emulate/restore-check.js';
import { toJsonObject } from '../src/report/json.js';
import { readGuestViewOrMirror } from '../src/views/guest-mirror.js';

const SHARED = path.resolve(__dirname, '../../shared');
const DIR = path.join(SHARED, 'real-xen-fatal', 'pve820tree');
const SYSTEM_MAP = path.join(SHARED, 'real-xen', 'guest-kernel', 'System.map-6.1.0-56-amd64.gz');
const CLI = path.resolve(__dirname, '../dist/src/cli.js');

/** Decompress once per content into the OS temp dir (kept between runs), as real-core.test.ts does. */
async function cached(gz: string): Promise<string> {
  const hash = createHash('sha256').update(fs.readFileSync(gz)).digest('hex').slice(0, 16);
  const dir = path.join(os.tmpdir(), 'p2m-audit-real-cache', hash);
  const file = path.join(dir, path.basename(gz, '.gz'));
  if (fs.existsSync(file)) return file;
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await pipeline(fs.createReadStream(gz), zlib.createGunzip(), fs.createWriteStream(tmp));
  fs.renameSync(tmp, file);
  return file;
}

const text = (name: string): string => fs.readFileSync(path.join(DIR, name), 'utf8');

/** "0x2a10, 0x4403-0x440f (13), …" → inclusive ranges. */
function ranges(list: string): [number, number][] {
  return list.split(', ').map((item) => {
    const m = /^(0x[0-9a-f]+)(?:-(0x[0-9a-f]+))?/.exec(item.trim())!;
    return [Number(m[1]), Number(m[2] ?? m[1])];
  });
}
const pagesIn = (rs: [number, number][]): number => rs.reduce((s, [a, b]) => s + b - a + 1, 0);
const asHalfOpen = (rs: [number, number][]): { start: number; end: number }[] => rs.map(([a, b]) => ({ start: a, end: b + 1 }));

// ---- what Xen's own files say ------------------------------------------------------------------------
const lost = text('lost-pfns.txt');
/** "LOST by the core (populated in full P2M, not in .xen_p2m): 32803: 0x100000-0x108022 (32803)" */
const LOST = ranges(/LOST by the core [^:]*: \d+: (.*)$/m.exec(lost)![1]!);
/** "pfns written as XTAB although populated in the full P2M: 69: 0x2a10, …" */
const XTAB = ranges(/pfns written as XTAB although populated in the full P2M: \d+: (.*)$/m.exec(lost)![1]!);
const save = text('xl-save-vvv.log');
/** "xc: error: Bad mfn for frame 0 of vcpu0's GDT: Internal error", then "mfn 0x159de8, …", "m2p[…] = 0x107e0b, max_pfn 0x17fff" */
const SAVE_ERROR = /xc: error: (Bad mfn for [^:]*): Internal error/.exec(save)![1]!;
const BAD_MFN = Number(/xc: error: mfn (0x[0-9a-f]+), max/.exec(save)![1]);
const [M2P, MAX_PFN] = /m2p\[0x[0-9a-f]+\] = (0x[0-9a-f]+), max_pfn (0x[0-9a-f]+)/.exec(save)!.slice(1).map(Number) as [number, number];
const inspect = text('inspect-save.txt');
/** "TRUNCATED: libxc stream ends at byte 268805529" and "libxc record NAME: N" */
const STOP = Number(/TRUNCATED: libxc stream ends at byte (\d+)/.exec(inspect)![1]);
const RECORDS = new Map([...inspect.matchAll(/libxc record (\S+): (\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
/** domU-p2mpoke.txt: "guest pfn_to_mfn(first remapped pfn 0x100000) = 0x161bdd", and the last one */
const POKE = new Map([...text('domU-p2mpoke.txt').matchAll(/pfn_to_mfn\([a-z ]*pfn (0x[0-9a-f]+)\) = (0x[0-9a-f]+)/g)].map((m) => [Number(m[1]), Number(m[2])]));
const RESTORE_ERROR = /xc: error: (Failed to read Record Header from stream)/.exec(text('xl-restore-vvv.log'))![1]!;

describe('real Xen 4.17 guest with arch.max_pfn = nr_pages: dump-core and the failed save', () => {
  let core: GuestImage;
  let stream: GuestImage;
  let coreAudit: AuditOutcome;
  let saveAudit: AuditOutcome;

  beforeAll(async () => {
    const symbols = loadSymbols(SYSTEM_MAP);
    core = openImage(await cached(path.join(DIR, 'pve820tree.core.gz')), { symbols });
    stream = openImage(await cached(path.join(DIR, 'pve820tree.save.gz')), { symbols });
    coreAudit = await auditImage(core, { jobs: 0 });
    saveAudit = await auditImage(stream, { jobs: 0 });
  }, 240_000);
  afterAll(() => {
    core?.close();
    stream?.close();
  });

  it("Xen's files agree with the README: 32803 pages lost, 69 page tables written as XTAB", () => {
    expect(pagesIn(LOST)).toBe(32803);
    expect(pagesIn(XTAB)).toBe(69);
    expect(MAX_PFN).toBe(0x17fff);
  });

  it.each(['core', 'save'] as const)('the %s audits FATAL with exactly the lost pfns, uncovered', (which) => {
    const r = (which === 'core' ? coreAudit : saveAudit).report;
    expect(r.verdict).toBe('FATAL');
    expect(r.exitCode).toBe(1);
    expect(r.fatal.map((f) => ({ start: f.start, end: f.end, cls: f.cls }))).toEqual(asHalfOpen(LOST).map((x) => ({ ...x, cls: 'uncovered' })));
    expect(r.fatalPages).toBe(pagesIn(LOST));
    expect(r.toolstack.maxPfn).toBe(MAX_PFN);
  });

  it('the stream is marked incomplete where inspect_save.py found it truncated, with its records', () => {
    const s = saveAudit.report.stream!;
    expect(s.offset).toBe(STOP);
    expect(s.afterRecord).toBe('SHARED_INFO');
    expect(s.tornRecord).toBeNull();
    expect(s.vcpuRecords).toEqual([]);
    expect(new Map(s.records.map((r) => [r.name, r.count]))).toEqual(RECORDS);
    const json = toJsonObject(saveAudit.report) as { stream: { incomplete: boolean; stopsAt: number } };
    expect(json.stream).toMatchObject({ incomplete: true, stopsAt: STOP });
    expect(toJsonObject(coreAudit.report).stream).toBeNull();
  });

  it("the core predicts the save's real failure from vCPU 0's context: the GDT frame and its m2p", () => {
    const p = coreAudit.report.save!;
    expect(p.outcome).toBe('fails');
    expect(p.failure).toMatchObject({ vcpu: 0, kind: 'gdt', index: 0, frame: BAD_MFN, pfn: M2P, message: SAVE_ERROR });
    expect(p.text).toContain(`"${SAVE_ERROR}"`);
  });

  it('the failed stream predicts the same failure from the per-cpu gdt_page (no vCPU records)', () => {
    const p = saveAudit.report.save!;
    expect(p.vcpuSource).toBe('per-cpu-symbols');
    expect(p.failure).toMatchObject({ vcpu: 0, kind: 'gdt', index: 0, pfn: M2P, message: SAVE_ERROR });
  });

  it("page tables without data: the core's walk and the stream's XTAB types both give Xen's list", () => {
    const fromCore = coreAudit.report.save!.tables;
    const fromStream = saveAudit.report.save!.tables;
    expect(fromCore.source).toBe('page-table walk');
    expect(fromStream.source).toBe('stream types');
    expect(fromCore.ranges).toEqual(asHalfOpen(XTAB));
    expect(fromStream.ranges).toEqual(asHalfOpen(XTAB));
    // the stream's own types, read directly: every listed pfn is XTAB (0xf) in its PAGE_DATA
    for (const [a, b] of XTAB) for (let p = a; p <= b; p++) expect((stream as StreamImage).pageType(p)).toBe(0xf);
  });

  it("the stream's guest view (through the kernel's frame-list mirror) reads the guest's own pfn_to_mfn", () => {
    expect(POKE.size).toBe(2); // the file holds its lines twice
    const g = readGuestViewOrMirror(stream);
    expect(g.notes[0]).toMatch(/frame-list mirror/);
    for (const [pfn, mfn] of POKE) {
      const page = stream.readFrame(g.leafFrames[Math.floor(pfn / 512)]!)!;
      expect(page.readUInt32LE((pfn % 512) * 8 + 4) * 2 ** 32 + page.readUInt32LE((pfn % 512) * 8)).toBe(mfn);
    }
  });

  it('restore-check: restore fails the way xl restore did, and the stream carries neither range', () => {
    const loss = restoreCheck(stream);
    expect(loss.exitCode).toBe(1);
    expect(loss.restoreFails).toContain(`"${RESTORE_ERROR}"`);
    expect(loss.lost.filter((r) => r.reason === 'xtab').map(({ start, end }) => ({ start, end }))).toEqual(asHalfOpen(XTAB));
    expect(loss.lost.filter((r) => r.reason === 'beyond-max-pfn').map(({ start, end }) => ({ start, end }))).toEqual(asHalfOpen(LOST));
  });

  it('the CLI exits 1 on the failed save and prints the incomplete line and the predicted failure', () => {
    const r = spawnSync(process.execPath, [CLI, 'audit', (stream as StreamImage).path, '--system-map', SYSTEM_MAP], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stdout).toContain(`stream incomplete: stops at offset ${STOP} after SHARED_INFO; no vCPU records, no END: this is what a failed save leaves`);
    expect(r.stdout).toContain(`save/migration fails: vCPU 0's GDT frame 0 is pfn 0x${M2P.toString(16)}`);
  });
});
