// The kernel page-table root the guest view walks from, for every format (issue 14 item 4; views/kernel-root.ts):
// arch.p2m_cr3 when published (machine-frame images), else init_top_pgt / init_level4_pgt through the
// kernel-image mapping and the image's own pfn → frame map, else a vCPU's cr3. Expected frames come from
// outside the code under test: xen-mfndump's real output (pfn 0x2a10, the pinned L4), the README tables,
// the System.map (init_top_pgt = 0xffffffff82a10000 → pfn 0x2a10), and for emulated images the vCPU 0 cr3
// the emulator loads (its L4 is swapper_pg_dir) and writes into each file.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditImage } from '../src/audit/audit-image.js';
import { emulateScenario, loadScenario } from '../src/corpora/scenario.js';
import { writeXcCore } from '../src/emulate/dump-core-writer.js';
import { writeSaveStream } from '../src/emulate/save-stream-writer.js';
import { writeVmcore } from '../src/emulate/vmcore-writer.js';
import { InputError } from '../src/common/errors.js';
import type { GuestImage } from '../src/formats/guest-image.js';
import { openImage } from '../src/formats/open-image.js';
import { openXcCore } from '../src/formats/dump-core.js';
import { loadSymbols } from '../src/formats/symbols.js';
import { findKernelRoot } from '../src/views/kernel-root.js';
import { readGuestView } from '../src/views/guest-view.js';
import { START_INFO_SHARED_INFO_OFFSET, VCPU_CTRLREG3_OFFSET_64 } from '../src/xen/abi.js';
import { readVirtU64 } from '../src/translate/page-walk.js';
import { gunzipCached } from './helpers/real-gz.js';
import { realVmcorePath } from './helpers/real-vmcore.js';

const REPO = path.join(__dirname, '..');
const REAL = path.join(REPO, 'corpora', 'real');
const FATAL_DIR = path.join(REPO, '..', 'shared', 'real-xen-fatal', 'pve820tree');
const SYSTEM_MAP = path.join(REAL, 'System.map-6.1.0-56-amd64.gz');
const symbols = loadSymbols(SYSTEM_MAP);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kernel-root-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const scenario = (name: string) => emulateScenario(loadScenario(path.join(REPO, 'corpora', 'scenarios', `${name}.json`)));
const cr3Frame = (img: GuestImage): number => Number(img.cr3 >> 12n);

describe('the kernel page-table root, per format', () => {
  const files: Record<string, string> = {};
  let dom0Cr3 = -1;
  beforeAll(async () => {
    const g61 = scenario('seed-6.1').image;
    const gBack = scenario('seed-backport').image;
    files.vmcore61 = path.join(dir, 'seed-6.1.vmcore');
    // dom0's shared_info is Xen's page in host RAM: put it at the machine address start_info.shared_info names
    const startInfo = readVirtU64(g61, cr3Frame(g61), g61.symbols.get('xen_start_info')!) as bigint;
    const siMaddr = readVirtU64(g61, cr3Frame(g61), startInfo + BigInt(START_INFO_SHARED_INFO_OFFSET)) as bigint;
    if (!g61.hasFrame(Number(siMaddr >> 12n))) g61.setFrame(Number(siMaddr >> 12n), Buffer.from(g61.sharedInfo!));
    writeVmcore(g61, files.vmcore61);
    dom0Cr3 = cr3Frame(g61); // a vmcore has no vCPU context: the emulated dom0's own cr3
    fs.writeFileSync(`${files.vmcore61}.map`, [...g61.symbols].map(([n, v]) => `${v.toString(16)} D ${n}`).join('\n'));
    files.coreBack = path.join(dir, 'seed-backport.core');
    writeXcCore(gBack, files.coreBack);
    fs.writeFileSync(`${files.coreBack}.map`, [...gBack.symbols].map(([n, v]) => `${v.toString(16)} D ${n}`).join('\n'));
    files.save61 = path.join(dir, 'seed-6.1.save');
    writeSaveStream(g61, files.save61, { wrapper: 'xl' });
    fs.writeFileSync(`${files.save61}.map`, [...g61.symbols].map(([n, v]) => `${v.toString(16)} D ${n}`).join('\n'));
  });

  it.each([
    // emulated, in memory: linux-6.1 publishes p2m_cr3 (= its L4, the cr3 it runs on)
    ['emulated linux-6.1 dom0 snapshot', () => scenario('seed-6.1').image, 'p2m_cr3', cr3Frame, /^arch\.p2m_cr3 .* from the image's shared_info/],
    // linux-3.8.13-backport (a p2m_top kernel) publishes none: init_level4_pgt through the frame list
    ['emulated 3.8.13-backport dom0 snapshot', () => scenario('seed-backport').image, 'kernel-table', cr3Frame, /through the frame list at arch\.pfn_to_mfn_frame_list_list/],
    ['emulated 3.8.13-backport xl dump-core', () => openImage(files.coreBack!), 'kernel-table', cr3Frame, /through the dump's \.xen_p2m table/],
    // a vmcore has no shared_info of its own: dom0's is found through xen_start_info
    ['emulated linux-6.1 dom0 vmcore', () => openImage(files.vmcore61!), 'p2m_cr3', () => dom0Cr3, /from dom0's shared_info \(machine 0x[0-9a-f]+, through xen_start_info/],
    // a save stream is in pfn space: p2m_cr3 is the sender's machine address; the stream's cr3 is the L4's pfn
    ['emulated linux-6.1 xl save', () => openImage(files.save61!), 'kernel-table', cr3Frame, /^init_level4_pgt at 0xffffffff8[0-9a-f]+ \(pfn 0x[0-9a-f]+\)$/],
  ] as const)('%s', (_name, open, source, frame, text) => {
    const img = open();
    try {
      const g = readGuestView(img);
      expect(g.root!.source).toBe(source);
      expect(g.root!.frame).toBe(frame(img));
      expect(g.root!.text).toMatch(text);
    } finally {
      img.close();
    }
  });

  it.each([
    // xen-mfndump (corpora/real/xen-mfndump-p2m.runs.txt): pfn 0x2a10 → mfn 0x1aee10, a pinned L4 = arch.p2m_cr3
    ['real pvplain xl dump-core', () => gunzipCached(path.join(REAL, 'pvplain.core.gz')), 'p2m_cr3', 0x1aee10],
    // System.map: init_top_pgt 0xffffffff82a10000 → pfn 0x2a10
    ['real pvplain xl save', () => gunzipCached(path.join(REAL, 'pvplain.save.gz')), 'kernel-table', 0x2a10],
    // p2mpoke zeroed arch.p2m_cr3; pve820tree/xen-mfndump-p2m.runs.txt: pfn 0x2a10 → mfn 0x1aee10 (type 0xc) pinned L4
    ['real pve820tree xl dump-core', () => gunzipCached(path.join(FATAL_DIR, 'pve820tree.core.gz')), 'kernel-table', 0x1aee10],
    // README: arch.p2m_cr3 0x152a10000 in dom0's shared_info
    ['real dom0 vmcore', async () => realVmcorePath(), 'p2m_cr3', 0x152a10],
  ] as const)('%s', async (_name, file, source, frame) => {
    const img = openImage(await file(), { symbols });
    try {
      expect(readGuestView(img).root).toMatchObject({ source, frame });
    } finally {
      img.close();
    }
  });
});

describe('real broken domU files keep the READMEs\' verdicts', () => {
  it.each([
    ['pvplain.core', () => gunzipCached(path.join(REAL, 'pvplain.core.gz')), 'CLEAN', []],
    ['pvplain.save', () => gunzipCached(path.join(REAL, 'pvplain.save.gz')), 'CLEAN', []],
    // real-xen-fatal README: FATAL, pfn 0x100000-0x108022 (32803 pages) uncovered, on the core and on the failed save
    ['pve820tree.core', () => gunzipCached(path.join(FATAL_DIR, 'pve820tree.core.gz')), 'FATAL', [['uncovered', 0x100000, 0x108022, 32803]]],
    ['pve820tree.save', () => gunzipCached(path.join(FATAL_DIR, 'pve820tree.save.gz')), 'FATAL', [['uncovered', 0x100000, 0x108022, 32803]]],
  ] as const)('%s', async (_name, file, verdict, fatal) => {
    const img = openImage(await file(), { symbols });
    try {
      const a = await auditImage(img, { jobs: 0 });
      expect(a.report.verdict).toBe(verdict);
      expect(a.report.fatal.map((f) => [f.cls, f.start, f.end - 1, f.pages])).toEqual(fatal);
    } finally {
      img.close();
    }
  });

  it("the failed save holds no kernel table to walk from: init_top_pgt's pfn was sent without data, and no vCPU record", async () => {
    const img = openImage(await gunzipCached(path.join(FATAL_DIR, 'pve820tree.save.gz')), { symbols });
    try {
      // README: 0x2a10 (the kernel's top-level table) went as XTAB without data; the stream stops before any vCPU record
      expect(() => findKernelRoot(img)).toThrow(/init_top_pgt at 0xffffffff82a10000 \(pfn 0x2a10\): its frame 0x2a10 is not in the image.*vCPU cr3: the image holds no vCPU context/);
    } finally {
      img.close();
    }
  });
});

describe("a dump whose vCPU 0 cr3 lies in the RAM the toolstack cannot see", () => {
  let file = '';
  let lostMfn = -1;
  beforeAll(() => {
    // the seed scenario: pfns 0x40000-0x40060 uncovered (its JSON); xl dump-core holds pfns < arch.max_pfn 0x40000 only
    const g = scenario('seed-backport').image;
    const view = readGuestView(g);
    const leaf = g.readFrame(view.leafFrames[0x40000 / 512]!)!;
    lostMfn = Number(leaf.readBigUInt64LE(0));
    file = path.join(dir, 'cr3-lost.core');
    writeXcCore(g, file);
    fs.writeFileSync(`${file}.map`, [...g.symbols].map(([n, v]) => `${v.toString(16)} D ${n}`).join('\n'));
    // point vCPU 0's ctrlreg[3] at that frame, as a process whose table lives there would
    const core = openXcCore(file);
    const pr = core.sections.find((s) => s.name === '.xen_prstatus')!;
    core.close();
    const fd = fs.openSync(file, 'r+');
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(lostMfn) << 12n);
    fs.writeSync(fd, b, 0, 8, pr.offset + VCPU_CTRLREG3_OFFSET_64);
    fs.closeSync(fd);
  });

  it('the frame is absent from the dump, and vCPU 0 names it', () => {
    const img = openImage(file);
    try {
      expect(img.readFrame(lostMfn)).toBeNull();
      expect(cr3Frame(img)).toBe(lostMfn);
    } finally {
      img.close();
    }
  });

  it('still audits FATAL with the seed range (97 pages at 0x40000-0x40060), walking init_level4_pgt', async () => {
    const img = openImage(file);
    try {
      const a = await auditImage(img, { jobs: 0 });
      expect(a.report.verdict).toBe('FATAL');
      expect(a.report.exitCode).toBe(1);
      expect(a.report.fatal.map((f) => [f.cls, f.start, f.end - 1, f.pages])).toEqual([['uncovered', 0x40000, 0x40060, 97]]);
      expect(a.guest.root!.source).toBe('kernel-table');
    } finally {
      img.close();
    }
  });

  it('with only the vCPU to go by (no kernel table symbol) it is an input error that names every candidate', () => {
    const img = openImage(file);
    try {
      for (const n of ['init_top_pgt', 'init_level4_pgt', 'swapper_pg_dir']) img.symbols.delete(n);
      let err: unknown;
      try {
        readGuestView(img);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(InputError);
      expect((err as Error).message).toMatch(/arch\.p2m_cr3: 0 in the image's shared_info \(not published\); kernel table: none of .*; vCPU 0's cr3 \(frame 0x[0-9a-f]+\): its frame 0x[0-9a-f]+ is not in the image/);
    } finally {
      img.close();
    }
  });
});
