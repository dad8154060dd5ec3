// The real Xen 4.17 dom0 kdump (corpora/real/dom0-6.1-clean.vmcore.zst; ../shared/real-dom0-kdump/README.md)
// seen from above the reader: dom0's shared_info found through its symbols, the kernel's own page table, the
// frame list crash reads, the audit, crash's start-up. Every expected value comes from outside this code:
// the README's tables, real crash's own session (`help -D` in test/fixtures/dom0-kdump, crash-debug1.txt's
// p2m_frames, crash-minimal.txt's `rd`), the independent walk scripts/walk_frame_list.py wrote
// (frame-list-walk.txt), the System.map, and for the broken variant p2mseed.c's rule applied to a copy by
// test/helpers/seeded-vmcore.ts.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { beforeAll, afterAll, describe, expect, it } from 'vitest';
import { auditImage } from '../src/audit/audit-image.js';
import { openVmcore, type VmcoreImage } from '../src/formats/vmcore.js';
import { loadSymbols } from '../src/formats/symbols.js';
import { searchDom0SharedInfo, withDom0SharedInfo } from '../src/views/dom0-kdump.js';
import { findKernelRoot } from '../src/views/kernel-root.js';
import { readGuestView } from '../src/views/guest-view.js';
import { mapP2m } from '../src/views/toolstack-view.js';
import { readFrameList } from '../src/views/crash-frame-list.js';
import { renderMfndump } from '../src/report/mfndump.js';
import { renderText } from '../src/report/text.js';
import { realVmcorePath } from './helpers/real-vmcore.js';
import { RawDump, SEED, seededVmcore } from './helpers/seeded-vmcore.js';

/**
 * Evidence copied from ../shared/real-dom0-kdump/clean: frame-list-walk.txt as is, and the `xen_kdump_data`
 * block of real crash's `help -D` (crash-session.txt lines 316-330, gzip) with its whole p2m_mfn_frame_list.
 */
const FIXTURES = path.join(__dirname, 'fixtures', 'dom0-kdump');
const SYSTEM_MAP = path.join(__dirname, '..', 'corpora', 'real', 'System.map-6.1.0-56-amd64.gz');
const symbols = loadSymbols(SYSTEM_MAP);

function helpD(): string {
  return zlib.gunzipSync(fs.readFileSync(path.join(FIXTURES, 'crash-help-D-xen_kdump_data.txt.gz'))).toString('utf8');
}

/** crash's `help -D`: the line after "p2m_mfn_frame_list:" lists its whole pfn → leaf-mfn index. */
function crashFrameListFromSession(): number[] {
  const lines = helpD().split('\n');
  const at = lines.findIndex((l) => /^\s*p2m_mfn_frame_list: [0-9a-f]+$/.test(l));
  return lines[at + 1]!.trim().split(/\s+/).map((h) => parseInt(h, 16));
}

/** crash's `help -D` "p2m_frames: N" (crash-debug1.txt prints the same from x86_64_xen_kdump_p2m_create). */
function crashP2mFrames(): number {
  return Number(/^\s*p2m_frames: (\d+)$/m.exec(helpD())![1]);
}

/** frame-list-walk.txt's run-length view: [first, last, kind]. */
function walkRuns(): [number, number, string][] {
  const out: [number, number, string][] = [];
  for (const m of fs.readFileSync(path.join(FIXTURES, 'frame-list-walk.txt'), 'utf8').matchAll(/^ {2}pfn (0x[0-9a-f]+)-(0x[0-9a-f]+) \(\d+\) (.+)$/gm)) {
    out.push([Number(m[1]), Number(m[2]), m[3]!]);
  }
  return out;
}

/** The kind frame-list-walk.txt prints for an entry (a missing-mid pfn reads ~0, as INVALID). */
function kindOf(v: bigint): string {
  if (v === 0xffffffffffffffffn) return 'INVALID (~0)';
  if ((v >> 62n) === 1n) return 'IDENTITY';
  return 'valid mfn';
}

describe('real dom0 kdump, clean (Xen 4.17.7, Linux 6.1 dom0)', () => {
  let img: VmcoreImage;
  let file: string;
  beforeAll(() => {
    file = realVmcorePath();
    img = openVmcore(file, { symbols });
  });
  afterAll(() => img?.close());

  it("dom0's shared_info is found through xen_start_info, at the README's machine address with its arch fields", () => {
    const s = searchDom0SharedInfo(img);
    expect(s.found).not.toBeNull();
    const f = s.found!;
    expect(f.maddr).toBe(0x1ffd6000); // README: start_info.shared_info = machine address 0x1ffd6000
    expect(f.via).toMatch(/xen_start_info/);
    expect(f.arch).toEqual({ maxPfn: 0x120087n, pfnToMfnFrameListList: 0x13513bn, nmiReason: 0n, p2mCr3: 0x152a10000n, p2mVaddr: 0xffffc90000000000n, p2mGeneration: 0n });
    // the wrapper carries them as metadata and reads the same frames
    const w = withDom0SharedInfo(img);
    expect(w.arch.maxPfn).toBe(0x120087n);
    expect(w.sharedInfo!.equals(img.readFrame(0x1ffd6)!)).toBe(true);
    expect(w.readFrame(0x13513b)!.equals(img.readFrame(0x13513b)!)).toBe(true);
  });

  it('the kernel page-table root: arch.p2m_cr3, and init_top_pgt through the crash frame list gives the same table', () => {
    const g = readGuestView(img);
    expect(g.root).toMatchObject({ source: 'p2m_cr3', frame: 0x152a10 }); // README: p2m_cr3 0x152a10000
    // System.map: init_top_pgt = 0xffffffff82a10000 → pfn 0x2a10, whose frame is p2m_cr3's
    const own = findKernelRoot(img, { skipP2mCr3: true });
    expect(own).toMatchObject({ source: 'kernel-table', frame: 0x152a10 });
    expect(own.text).toMatch(/init_top_pgt .*pfn 0x2a10/);
    // README: dom0 saw last_pfn 0x120087; start_info.nr_pages 0x40000
    expect(g.vars).toMatchObject({ maxPfn: 0x120087, nrPages: 0x40000, xenP2mLastPfn: 0x120087 });
  });

  it("crash's frame list: p2m_frames and every leaf mfn equal real crash's help -D p2m_mfn_frame_list", () => {
    const list = readFrameList(img, img.formatFacts.crashInfo.frameListListMfn, 'crash');
    const real = crashFrameListFromSession();
    expect(list.p2mFrames).toBe(crashP2mFrames());
    expect(real.length).toBe(list.p2mFrames);
    expect(Array.from(list.leaves)).toEqual(real);
    // makedumpfile reads the same list (Linux 6.1 fills every slot)
    expect(Array.from(readFrameList(img, 0x13513b, 'makedumpfile').leaves)).toEqual(real);
  });

  it('the toolstack side is the crash walk of the note, with arch.max_pfn 0x120087 beside it', () => {
    const t = mapP2m(img);
    expect(t.method).toBe('crash');
    expect(t.failure).toBeNull();
    expect(t.crash).toMatchObject({ rootMfn: 0x13513b, p2mFrames: 262144, makedumpfileDiffers: null });
    expect(t.crash!.maxPfnBound).toMatchObject({ archMaxPfn: 0x120087n, boundPfn: 0x120087 });
    // README: top[5..511] name the missing mid page, whose slots all name the all-~0 leaf 0x13781e: the
    // compared range ends by 0x140000 and covers everything below arch.max_pfn
    expect(t.maxPfn + 1).toBeGreaterThanOrEqual(0x120087);
    expect(t.maxPfn + 1).toBeLessThanOrEqual(0x140000);
    expect(t.untrimmedMaxPfn).toBe(0x7ffffff);
  });

  it('audits CLEAN: 262144 RAM pages (159 + 130778 + 131207), the remapped 0x100000-0x120086 covered, nothing lost', async () => {
    const a = await auditImage(img, { jobs: 0 });
    expect(a.report.verdict).toBe('CLEAN');
    expect(a.report.exitCode).toBe(0);
    expect(a.report.classes.ram.pages).toBe(159 + 130778 + 131207);
    for (const c of ['uncovered', 'lost', 'mismatch', 'stale', 'unreadable'] as const) expect(a.report.classes[c].pages).toBe(0);
    const ram = a.audit.ranges.filter((r) => r.cls === 'ram');
    expect(ram.some((r) => r.start <= 0x100000 && r.end >= 0x120087)).toBe(true);
    // crash starts; CPU 0's current_task is read at the page crash's `rd ffff88811fe1fb80` read (crash-minimal.txt)
    const c = a.report.crash!;
    expect(c.starts).toBe(true);
    expect(c.firstFailure).toBeNull();
    const cur = c.reads.find((r) => r.type === 'current_task (per_cpu)')!;
    expect(cur).toMatchObject({ va: 0xffff88811fe1fb80n, pfn: 0x11fe1f, outcome: 'reads' });
    expect(img.readFrame(cur.crashMfn)!.readBigUInt64LE(0xb80)).toBe(0xffff8881001fcc80n); // crash: ffff88811fe1fb80:  ffff8881001fcc80
    const text = renderText(a.report);
    expect(text).toMatch(/^guest: arch\.p2m_cr3 0x152a10000 from dom0's shared_info/m);
    expect(text).toMatch(/p2m_frames 262144/);
  });

  it("p2m --view crash prints, up to crash's reach, every entry the independent frame-list walk reads, in its run-length view", () => {
    const raw = new RawDump(fs.openSync(file, 'r'));
    try {
      const top = raw.page(SEED.rootMfn);
      const mids = new Map<number, Buffer>();
      const leaves = new Map<bigint, Buffer>();
      const leafOf = (pfn: number): bigint => {
        const t = Math.floor(pfn / 262144);
        if (!mids.has(t)) mids.set(t, raw.page(Number(top.readBigUInt64LE(t * 8))));
        return mids.get(t)!.readBigUInt64LE((Math.floor(pfn / 512) % 512) * 8);
      };
      const expected = (pfn: number): bigint => {
        const leaf = leafOf(pfn);
        if (!leaves.has(leaf)) leaves.set(leaf, raw.page(Number(leaf)));
        return leaves.get(leaf)!.readBigUInt64LE((pfn % 512) * 8);
      };
      const allInvalidLeaves = new Set<bigint>();
      let size = -1;
      let bad = 0;
      let next = 0;
      const runs: [number, number, string][] = [];
      const add = (first: number, last: number, kind: string): void => {
        const prev = runs[runs.length - 1];
        if (prev && prev[2] === kind && prev[1] === first - 1) prev[1] = last;
        else runs.push([first, last, kind]);
      };
      renderMfndump(img, 'crash', (line) => {
        const head = /P2M size: = (\d+)$/.exec(line);
        if (head) size = Number(head[1]);
        const one = /^ {2}pfn=0x([0-9a-f]+) ==> mfn=0x([0-9a-f]+)$/.exec(line);
        // a folded run of entries without RAM: "pfn=0xA..0xB ==> mfn=0xffff… (N pfns, INVALID_P2M_ENTRY)" or IDENTITY_FRAME(pfn)
        const run = /^ {2}pfn=0x([0-9a-f]+)\.\.0x([0-9a-f]+) ==> mfn=(0xffffffffffffffff|IDENTITY_FRAME\(pfn\)) \(/.exec(line);
        if (one) {
          const pfn = parseInt(one[1]!, 16);
          const v = BigInt(`0x${one[2]}`);
          if (pfn !== next || v !== expected(pfn)) bad++;
          add(pfn, pfn, kindOf(v));
          next = pfn + 1;
        } else if (run) {
          const [a, b] = [parseInt(run[1]!, 16), parseInt(run[2]!, 16)];
          const kind = run[3] === '0xffffffffffffffff' ? 'INVALID (~0)' : 'IDENTITY';
          // the independent walk reads the same for every pfn of the run (a leaf page read all-~0 once stands for all its uses)
          for (let pfn = a; pfn <= b; ) {
            const leaf = leafOf(pfn);
            const end = Math.min(b + 1, pfn - (pfn % 512) + 512);
            if (!(kind === 'INVALID (~0)' && allInvalidLeaves.has(leaf))) {
              for (let q = pfn; q < end; q++) if (kindOf(expected(q)) !== kind) bad++;
              if (kind === 'INVALID (~0)' && pfn % 512 === 0 && end - pfn === 512) allInvalidLeaves.add(leaf);
            }
            pfn = end;
          }
          if (a !== next) bad++;
          add(a, b, kind);
          next = b + 1;
        } else if (!/^ --- |^ Guest Width/.test(line)) bad++;
      });
      expect(next).toBe(size);
      // crash's reach: p2m_frames · 512 (crash-debug1.txt: 262144)
      expect(size).toBe(crashP2mFrames() * 512);
      expect(bad).toBe(0);
      // the walk's runs up to crash's reach, "missing mid" read as the ~0 it leads to, merged
      const want: [number, number, string][] = [];
      for (const [a, b, k] of walkRuns()) {
        if (a >= size) continue;
        const kind = k === 'missing mid' ? 'INVALID (~0)' : k;
        const last = want[want.length - 1];
        if (last && last[2] === kind && last[1] === a - 1) last[1] = Math.min(b, size - 1);
        else want.push([a, Math.min(b, size - 1), kind]);
      }
      expect(runs).toEqual(want);
    } finally {
      fs.closeSync(raw.fd);
    }
  });
});

describe('the same dump with its frame list cut the way p2mseed.c cuts it (test/helpers/seeded-vmcore.ts)', () => {
  let img: VmcoreImage;
  let changes: ReturnType<typeof seededVmcore>['changes'];
  beforeAll(() => {
    const s = seededVmcore(realVmcorePath());
    changes = s.changes;
    img = openVmcore(s.path, { symbols });
  });
  afterAll(() => img?.close());

  it("p2mseed's rule changes top[4] (pfns 0x100000-0x13ffff, above nr_pages 0x40000) and arch.max_pfn only", () => {
    // README: top[4] = mid 0x135139, top[1..3] and top[5..] the missing mid 0x13513d; top[0] ends at nr_pages
    expect(changes.map((c) => [c.what, c.from, c.to])).toEqual([
      ['top[4]', 0x135139n, 0x13513dn],
      ['shared_info.arch.max_pfn', 0x120087n, 0x40000n],
    ]);
  });

  it('audits FATAL: the remapped RAM 0x100000-0x120086 (131207 pages) is what crash cannot read', async () => {
    const a = await auditImage(img, { jobs: 0 });
    const r = a.report;
    expect(r.verdict).toBe('FATAL');
    expect(r.exitCode).toBe(1);
    expect(r.fatal.map((f) => [f.cls, f.start, f.end - 1, f.pages])).toEqual([['uncovered', 0x100000, 0x120086, 131207]]);
    expect(r.classes.ram.pages).toBe(262144 - 131207);
    expect(r.toolstack.crash!.maxPfnBound!.archMaxPfn).toBe(0x40000n);
    expect(r.fatal[0]!.breaksText).toMatch(/^crash: read error: kernel virtual address ffff888100000000-ffff888120086fff/);
    expect(r.fatal[0]!.text).toMatch(/top slot 4 → mid page 0x13513d/);
    // crash: CPU 0's current_task (README: ffff88811fe1fb80, pfn 0x11fe1f) is a read error, then the TSS ist
    // array (per-cpu area ffff88811fe00000 + cpu_tss_rw 0x6000 + OFFSET(tss_struct_ist) 0x24) stops start-up
    const c = r.crash!;
    expect(c.starts).toBe(false);
    expect(c.firstFailure).toMatchObject({ type: 'current_task (per_cpu)', va: 0xffff88811fe1fb80n, pfn: 0x11fe1f, outcome: 'read-error' });
    expect(c.firstFailure!.line).toBe('crash: read error: kernel virtual address: ffff88811fe1fb80  type: "current_task (per_cpu)"');
    const fatalRead = c.reads.find((x) => x.onError === 'fatal' && x.outcome === 'read-error')!;
    expect(fatalRead).toMatchObject({ type: 'tss_struct ist array', va: 0xffff88811fe00000n + 0x6000n + 0x24n });
    expect(c.lost.some((l) => l.what.startsWith("CPU 0's per-cpu area") && l.vaStart === 0xffff88811fe00000n)).toBe(true);
    expect(r.reason).toMatch(/crash stops at start-up on "tss_struct ist array"/);
  });
});
