// A real `xl dump-core` of a Linux 6.1 PV domU written by Xen 4.17.7 (corpora/real/pvplain.core.gz, from
// /work/shared/real-xen; README there). Every expectation comes from outside this code base: the
// README's facts, Xen's own xen-mfndump output taken in the same pause (xen-mfndump-p2m.runs.txt,
// expanded here independently of p2m_runs.py), the `xl -vvv save` log lines quoted below, the domU's
// dmesg, and the §4.2 layout computed by hand. The audit pool runs the compiled worker
// (dist/workers/audit-worker.js): `npm test` builds first; by hand, run `npx tsc -p tsconfig.json` first.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditImage } from '../src/audit/audit-image.js';
import { readGuestView } from '../src/views/guest-view.js';
import type { E820Entry } from '../src/inputs/e820.js';
import { detectFormat, openImage, readHead } from '../src/formats/open-image.js';
import { loadSymbols } from '../src/formats/symbols.js';
import { writeXcCore } from '../src/emulate/dump-core-writer.js';
import { openXcCore, type XcCoreImage } from '../src/formats/dump-core.js';
import { emulate } from '../src/emulate/kernel/boot.js';
import { findProfile } from '../src/emulate/kernel/profiles.js';
import { renderMfndump, type MfndumpView } from '../src/report/mfndump.js';
import { mapP2m } from '../src/views/toolstack-view.js';

const REAL = path.join(__dirname, '..', 'corpora', 'real');
const CORE_GZ = path.join(REAL, 'pvplain.core.gz');
const SYSTEM_MAP = path.join(REAL, 'System.map-6.1.0-56-amd64.gz');
const KALLSYMS = path.join(REAL, 'kallsyms-domU.txt.gz');
const RUNS = path.join(REAL, 'xen-mfndump-p2m.runs.txt');
/** README: "`xl dump-core pvplain`: xc_core ELF64 (101,068,872 bytes raw)". */
const CORE_BYTES = 101_068_872;
/** The domain id xen-mfndump was run with (its first line). */
const DOMID = 1;

/** Decompress the dump once per content hash into the OS temp dir (reused across runs). */
async function realCore(): Promise<string> {
  const hash = createHash('sha256').update(fs.readFileSync(CORE_GZ)).digest('hex').slice(0, 16);
  const cacheDir = path.join(os.tmpdir(), 'p2m-audit-real-cache', hash);
  const file = path.join(cacheDir, 'pvplain.core');
  if (fs.existsSync(file) && fs.statSync(file).size === CORE_BYTES) return file;
  fs.mkdirSync(cacheDir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await pipeline(fs.createReadStream(CORE_GZ), zlib.createGunzip(), fs.createWriteStream(tmp));
  fs.renameSync(tmp, file);
  return file;
}

/**
 * xen-mfndump's exact lines, rebuilt from the run-length file: '# ' lines are verbatim, others are
 * "first last count value step rest" meaning pfn first..last → value + step·(pfn − first).
 */
function mfndumpLines(): string[] {
  const out: string[] = [];
  for (const line of fs.readFileSync(RUNS, 'utf8').split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# ')) {
      out.push(line.slice(2));
      continue;
    }
    const m = /^(0x[0-9a-f]+) (0x[0-9a-f]+) (\d+) (0x[0-9a-f]+) ([01])(.*)$/.exec(line);
    if (!m) throw new Error(`unparsable runs line: ${line}`);
    const first = BigInt(m[1]!);
    const last = BigInt(m[2]!);
    expect(last - first + 1n).toBe(BigInt(m[3]!));
    for (let pfn = first; pfn <= last; pfn++) {
      out.push(`  pfn=0x${pfn.toString(16)} ==> mfn=0x${(BigInt(m[4]!) + BigInt(m[5]!) * (pfn - first)).toString(16)}${m[6]}`);
    }
  }
  return out;
}

/** An xc_core dump cannot know page types: compare pfn → mfn only, without xen-mfndump's " (type …)…" suffix. */
const withoutType = (line: string): string => line.replace(/ \(type 0x[0-9a-f]+\).*$/, '');

let corePath = '';
let img: XcCoreImage;
let expected: string[];
beforeAll(async () => {
  corePath = await realCore();
  img = openXcCore(corePath, { symbols: loadSymbols(SYSTEM_MAP) });
  expected = mfndumpLines();
});
afterAll(() => img?.close());

describe('the real pvplain dump (Xen 4.17.7, Linux 6.1.0-56 PV domU, 96 MiB)', () => {
  it('is recognised by content as an xl dump-core file', () => {
    expect(detectFormat(readHead(corePath)).format).toBe('xc-core');
    const viaOpen = openImage(corePath);
    expect(viaOpen.format).toBe('xc-core');
    expect(viaOpen.frameSpace).toBe('mfn');
    viaOpen.close();
  });

  it('notes and layout: one vCPU, 0x6000 pages, Xen 4.17.7, format (0, 1), the §4.2 offsets', () => {
    expect(img.notes).toEqual({ nrVcpus: 1, nrPages: 0x6000, pageSize: 4096, xenMajor: 4, xenMinor: 17, xenExtra: '.7', formatMajor: 0, formatMinor: 1 });
    const at = Object.fromEntries(img.sections.map((s) => [s.name, [s.offset, s.size]]));
    // by hand, n = 1 vCPU, N = 0x6000: 512 / 1896 / 1896 + 5168 = 7064 / pages at 12288 / p2m right after
    expect(at).toEqual({
      '': [0, 0],
      '.shstrtab': [12288 + 0x6000 * 4096 + 0x6000 * 16, 72],
      '.note.Xen': [512, 1384],
      '.xen_prstatus': [1896, 5168],
      '.xen_shared_info': [7064, 4096],
      '.xen_pages': [12288, 0x6000 * 4096],
      '.xen_p2m': [12288 + 0x6000 * 4096, 0x6000 * 16],
    });
    expect(fs.statSync(corePath).size).toBe(CORE_BYTES);
    expect(img.frameCount()).toBe(0x6000);
  });

  it('README facts: P2M of 0x6000 entries; list method via arch.p2m_cr3 (the save log\'s walk)', () => {
    expect(img.arch.maxPfn).toBe(0x6000n);
    // xl -vvv save of the same guest: "p2m list from 0xffffc90000000000 to 0xffffc9000002ffff, root at 0x1aee10"
    // and "max_pfn 0x5fff, p2m_frames 48"
    expect(img.arch.p2mVaddr).toBe(0xffffc90000000000n);
    expect(img.arch.p2mCr3 >> 12n).toBe(0x1aee10n);
    const tool = mapP2m(img);
    expect(tool.method).toBe('list');
    expect(tool.failure).toBeNull();
    expect(tool.maxPfn).toBe(0x5fff);
    expect(tool.leafFrames.length).toBe(48);
    // xen-mfndump: the p2m root is pfn 0x2a10's frame, a pinned L4 (swapper_pg_dir)
    expect(expected).toContain('  pfn=0x2a10 ==> mfn=0x1aee10 (type 0xc) pinned L4');
  });

  it('the frame-list root is NOT ~0 in this dump (README says it is): it is a real guest page, and the tree agrees', () => {
    // The README states Linux "writes an invalid frame-list root" (~0). The shared_info Xen dumped says
    // otherwise: arch.pfn_to_mfn_frame_list_list = 0x12bf05, which xen-mfndump lists as the mfn of
    // pfn 0x5b05, an ordinary (NOTAB) guest page. libxl's PV builder sets dom->flags = 0 after
    // xc_dom_allocate, so SIF_VIRT_P2M_4TOOLS does not reach an xl-built domU and Linux keeps the tree.
    expect(img.arch.pfnToMfnFrameListList).toBe(0x12bf05n);
    expect(expected).toContain('  pfn=0x5b05 ==> mfn=0x12bf05 (type 0x0)');
    const tree = mapP2m(img, { method: 'tree' });
    expect(tree.failure).toBeNull();
    expect([...tree.leafFrames]).toEqual([...mapP2m(img).leafFrames]);
  });

  it('cr3 of vCPU 0 is a pinned L4 of the guest (xen-mfndump)', () => {
    expect(expected).toContain(`  pfn=0x4d7c ==> mfn=0x${(img.cr3 >> 12n).toString(16)} (type 0xc) pinned L4`);
  });

  it.each(['toolstack', 'guest', 'dump'] as MfndumpView[])('p2m printing, %s view: xen-mfndump\'s pfn → mfn for every one of the 0x6000 pfns', (view) => {
    const ours: string[] = [];
    const r = renderMfndump(img, view, (l) => ours.push(l), { domid: DOMID });
    expect(r.p2mSize).toBe(0x6000);
    expect(expected.length).toBe(0x6000 + 3);
    expect(ours).toEqual(expected.map(withoutType));
  });

  it('the guest view reads 6.1\'s variables through the page tables (page_offset_base, xen_p2m_*)', () => {
    const g = readGuestView(img);
    expect(g.layout).toBe('list');
    expect(g.vars.p2mAddr).toBe(0xffffc90000000000n); // = arch.p2m_vaddr (save log)
    // dmesg: "p2m virtual area at …, size is 40000000" → 0x40000000 / 8 entries
    expect(g.vars.xenP2mSize).toBe(0x40000000 / 8);
    // dmesg: "last_pfn = 0x6000"; README: 0x6000 pages, all populated
    expect(g.vars.maxPfn).toBe(0x6000);
    expect(g.vars.nrPages).toBe(0x6000);
    expect(g.vars.xenP2mLastPfn).toBe(0x6000);
    // page_offset_base, read from the dump: __PAGE_OFFSET_BASE_L4 (4-level paging, no KASLR for a PV kernel)
    expect(g.vars.pageOffset).toBe(0xffff888000000000n);
  });

  it('audit (2 workers): CLEAN, exit code 0, with System.map and with kallsyms', async () => {
    const a = await auditImage(img, { jobs: 2 });
    expect(a.report.verdict).toBe('CLEAN');
    expect(a.report.exitCode).toBe(0);
    expect(a.report.fatal).toEqual([]);
    // README: pfns 0–0x5fff all populated RAM (the ISA range 0xa0–0xff included)
    expect(a.audit.ranges[0]).toEqual({ start: 0, end: 0x6000, cls: 'ram' });
    const k = openXcCore(corePath, { symbols: loadSymbols(KALLSYMS) });
    try {
      const b = await auditImage(k, { jobs: 2 });
      expect(b.report.verdict).toBe('CLEAN');
      expect(b.audit.ranges).toEqual(a.audit.ranges);
    } finally {
      k.close();
    }
  });
});

describe('writer parity with the real dump', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'real-core-writer-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('an emulated 0x6000-page PV domU dumps with the real ELF header, section table and .shstrtab, byte for byte', () => {
    const host: E820Entry[] = [
      { addr: 0, size: 0x9f000, type: 1 },
      { addr: 0x9f000, size: 0x61000, type: 2 },
      { addr: 0x100000, size: 0x1ff00000, type: 1 },
    ];
    const guest = emulate({ profile: findProfile('linux-4.x')!, hostE820: host, nrPages: 0x6000, maxPages: 0x6000, role: 'domU' });
    const out = path.join(dir, 'emulated.core');
    const r = writeXcCore(guest.image, out);
    expect(r.pages).toBe(0x6000);
    const real = fs.readFileSync(corePath).subarray(0, 512);
    const ours = fs.readFileSync(out);
    expect(ours.length).toBe(CORE_BYTES);
    // ELF header + 7 section headers: identical when N and the vCPU count are
    expect(ours.subarray(0, 512).equals(real)).toBe(true);
    const tail = (b: Buffer): Buffer => b.subarray(b.length - 72);
    expect(tail(ours).equals(tail(fs.readFileSync(corePath)))).toBe(true);
    // binutils sees the same thing in both
    const readelf = (...args: string[]): string => {
      const p = spawnSync('readelf', args, { encoding: 'utf8' });
      if (p.error) throw new Error(`readelf (GNU binutils) is required by this test and could not be run: ${p.error.message}`);
      return p.stdout + p.stderr;
    };
    expect(readelf('-h', '-S', '-W', out)).toBe(readelf('-h', '-S', '-W', corePath).split(corePath).join(out));
    // readelf -n reads notes of an ET_CORE file from PT_NOTE segments only; dump-core writes none
    expect(readelf('-n', out)).toBe(readelf('-n', corePath));
  });
});
