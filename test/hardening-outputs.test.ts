// Issue 12, items 7, 9, 11 and 14 (outputs): `p2m` prints what the image holds, not what a header claims
// (long runs without RAM, absent and repeated leaf pages are one line each; a u64 "P2M size" is printed
// exactly); exit 2 leaves stdout empty and a report with parts it could not read exits 5 (docs/exit-codes.md);
// '--svg -' puts the picture on stdout; a reader that closes stdout does not change the exit code.
// Expected values: xen-mfndump's line format ("  pfn=0x%lx ==> mfn=0x%lx"), BigInt arithmetic on the claimed
// size, the leaf pages read directly from the image, and the verdicts of direct audits (a second code path).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditImage } from '../src/audit/audit-image.js';
import { EXIT_PARTIAL } from '../src/audit/verdict.js';
import { bootFactsOf, type GuestImage } from '../src/formats/guest-image.js';
import { openImage } from '../src/formats/open-image.js';
import { formatSystemMap } from '../src/formats/symbols.js';
import { emulate } from '../src/emulate/kernel/boot.js';
import { findProfile } from '../src/emulate/kernel/profiles.js';
import { writeXcCore } from '../src/emulate/dump-core-writer.js';
import { framesNeeded } from '../src/emulate/snapshot.js';
import { writeP2ms } from '../src/emulate/p2ms-writer.js';
import { FOLD_MIN_PFNS, MfndumpPrinter } from '../src/report/mfndump-printer.js';
import { renderMfndump } from '../src/report/mfndump.js';
import { renderSvg } from '../src/report/svg.js';
import { renderText } from '../src/report/text.js';
import { mapP2m } from '../src/views/toolstack-view.js';
import { E820_RAM, P2M_PER_PAGE, PAGE_SIZE } from '../src/xen/abi.js';

const repo = path.resolve(__dirname, '..');
const cli = path.join(repo, 'dist/src/cli.js');
const scenarios = path.join(repo, 'corpora/scenarios');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-hardening-out-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const at = (name: string) => path.join(tmp, name);

function run(args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000, maxBuffer: 256 << 20 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The same image, claiming another arch.max_pfn (what a damaged shared_info says). */
function claiming(img: GuestImage, maxPfn: bigint): GuestImage {
  const arch = { ...img.arch, maxPfn };
  return new Proxy(img, { get: (t, k) => (k === 'arch' ? arch : Reflect.get(t, k, t)) });
}

function lines(img: GuestImage, view: 'toolstack' | 'guest' | 'dump'): { out: string[]; notHeld: number } {
  const out: string[] = [];
  const r = renderMfndump(img, view, (l) => out.push(l));
  return { out, notHeld: r.notHeldPfns };
}

const ENTRY_RE = /^ {2}pfn=0x([0-9a-f]+) ==> mfn=0x([0-9a-f]+)$/;
const RANGE_RE = /^ {2}pfn=0x([0-9a-f]+)\.\.0x([0-9a-f]+) ==> /;

describe('the printer: runs without RAM, absent and repeated leaves (mfndump-printer.ts)', () => {
  const print = (fn: (p: MfndumpPrinter) => void): { out: string[]; p: MfndumpPrinter } => {
    const out: string[] = [];
    const p = new MfndumpPrinter((l) => out.push(l), undefined);
    fn(p);
    p.flush();
    return { out, p };
  };

  it('a run of INVALID entries one shorter than a leaf is printed pfn by pfn; a whole leaf is one line', () => {
    const short = print((p) => p.noRam('invalid', 0x1000, FOLD_MIN_PFNS - 1)).out;
    expect(short).toHaveLength(FOLD_MIN_PFNS - 1);
    expect(short[0]).toBe('  pfn=0x1000 ==> mfn=0xffffffffffffffff');
    const whole = print((p) => p.noRam('invalid', 0x1000, FOLD_MIN_PFNS)).out;
    expect(whole).toEqual([`  pfn=0x1000..0x11ff ==> mfn=0xffffffffffffffff (512 pfns, INVALID_P2M_ENTRY)`]);
  });

  it('IDENTITY_FRAME(pfn) entries fold the same way, and a RAM entry ends a run', () => {
    const { out } = print((p) => {
      for (let pfn = 0xc0000; pfn < 0xc0000 + 600; pfn++) p.entry(pfn, pfn, 0x40000000); // IDENTITY_FRAME_BIT | pfn
      p.entry(0xc0000 + 600, 0x1234, 0);
    });
    expect(out).toEqual(['  pfn=0xc0000..0xc0257 ==> mfn=IDENTITY_FRAME(pfn) (600 pfns, 0x4000000000000000 | pfn)', '  pfn=0xc0258 ==> mfn=0x1234']);
  });

  it('absent leaf pages are one "not in the image" line per run, counted; a RAM leaf met again is printed once', () => {
    const page = Buffer.alloc(PAGE_SIZE);
    for (let i = 0; i < P2M_PER_PAGE; i++) page.writeBigUInt64LE(BigInt(0x5000 + i), i * 8);
    const read = (f: number) => (f === 7 ? page : null);
    const { out, p } = print((pr) => {
      pr.leafFrame(7, 0, P2M_PER_PAGE, read, 'leaf 0');
      pr.leafFrame(9, 512, P2M_PER_PAGE, read, 'leaf 1');
      pr.leafFrame(9, 1024, P2M_PER_PAGE, read, 'leaf 2');
      pr.leafFrame(7, 1536, P2M_PER_PAGE, read, 'leaf 3');
      pr.leafFrame(7, 2048, P2M_PER_PAGE, read, 'leaf 4');
    });
    expect(out.slice(0, P2M_PER_PAGE).every((l, i) => l === `  pfn=0x${i.toString(16)} ==> mfn=0x${(0x5000 + i).toString(16)}`)).toBe(true);
    expect(out.slice(P2M_PER_PAGE)).toEqual([
      '  pfn=0x200..0x5ff ==> not in the image (1024 pfns: leaf 1 (frame 0x9) is absent)',
      '  pfn=0x600..0x9ff ==> the same leaf page as pfn=0x0..0x1ff (frame 0x7, printed once; 1024 pfns)',
    ]);
    expect(p.notHeld).toBe(1024);
  });
});

describe('p2m output is bounded by what the image holds (item 7)', () => {
  let core: GuestImage;
  beforeAll(() => {
    const host = [
      { addr: 0, size: 0x9f000, type: E820_RAM },
      { addr: 0x100000, size: 0x1ff00000, type: E820_RAM },
    ];
    const g = emulate({ profile: findProfile('linux-4.x')!, hostE820: host, nrPages: 0x4000, maxPages: 0x4000, role: 'domU' });
    writeXcCore(g.image, at('g.core'));
    fs.writeFileSync(at('g.core.map'), formatSystemMap(g.image.symbols));
    core = openImage(at('g.core'));
  });
  afterAll(() => core.close());

  it('dump view, arch.max_pfn 0xb700000000000040: the header prints the u64 exactly, the pfns past the pairs are one line', () => {
    const claim = 0xb700000000000040n;
    const { out } = lines(claiming(core, claim), 'dump');
    if (core.formatFacts.kind !== 'dump-core') throw new Error('not a dump');
    const { pfns } = core.formatFacts.p2mPairs();
    const last = Math.max(...pfns);
    expect(out[1]).toBe(` Guest Width: 8, PT Levels: 4 P2M size: = ${claim.toString()}`);
    expect(out[1]).toContain('13186539708940812352');
    // one line per pair, and a ~0 line per pfn of the short gaps between pairs
    const entries = out.filter((l) => ENTRY_RE.test(l));
    expect(entries.filter((l) => !l.endsWith('mfn=0xffffffffffffffff'))).toHaveLength(pfns.length);
    expect(entries).toHaveLength(last + 1);
    expect(out[out.length - 2]).toBe(`  pfn=0x${(last + 1).toString(16)}..0x${(claim - 1n).toString(16)} ==> mfn=0xffffffffffffffff (${(claim - BigInt(last + 1)).toString()} pfns, INVALID_P2M_ENTRY)`);
    expect(out).toHaveLength(2 + (last + 1) + 1 + 1);
  });

  it.each([2n ** 27n, 2n ** 40n, 2n ** 52n])('toolstack view of a list guest claiming arch.max_pfn %s: each entry as its leaf page holds it, no run of 512 ~0 lines', (claim) => {
    const img = claiming(openImage(path.join(scenarios, 'seed-4x.p2ms')), claim);
    try {
      const tool = mapP2m(img);
      if (tool.failure !== null) {
        expect(() => lines(img, 'toolstack')).toThrow(/cannot be mapped/);
        return;
      }
      const { out } = lines(img, 'toolstack');
      const distinct = new Set(tool.leafFrames).size;
      expect(out.length).toBeLessThanOrEqual(distinct * P2M_PER_PAGE + 2 * tool.leafFrames.length + 3);
      let invalidRun = 0;
      let wrong = 0;
      const pages = new Map<number, Buffer>();
      for (const l of out) {
        const m = ENTRY_RE.exec(l);
        if (!m) {
          if (!RANGE_RE.test(l)) expect(l).toMatch(/^ ---|^ Guest Width/);
          invalidRun = 0;
          continue;
        }
        const pfn = Number.parseInt(m[1]!, 16);
        const k = Math.floor(pfn / P2M_PER_PAGE);
        if (!pages.has(k)) pages.set(k, Buffer.from(img.readFrame(tool.leafFrames[k]!)!));
        if (m[2] !== pages.get(k)!.readBigUInt64LE((pfn % P2M_PER_PAGE) * 8).toString(16)) wrong++;
        invalidRun = m[2] === 'ffffffffffffffff' ? invalidRun + 1 : 0;
        if (invalidRun >= FOLD_MIN_PFNS) wrong++;
      }
      expect(wrong).toBe(0);
    } finally {
      img.close();
    }
  });

  it('an unclaimed view of a real-size guest is unchanged: every pfn up to the last pair, one line each', () => {
    const { out } = lines(core, 'dump');
    if (core.formatFacts.kind !== 'dump-core') throw new Error('not a dump');
    const last = Math.max(...core.formatFacts.p2mPairs().pfns);
    expect(out.filter((l) => ENTRY_RE.test(l))).toHaveLength(last + 1);
    // only the pfns past the last pair up to arch.max_pfn (no RAM there) may be one line
    const ranges = out.filter((l) => RANGE_RE.test(l)).map((l) => Number.parseInt(RANGE_RE.exec(l)![1]!, 16));
    expect(ranges.every((start) => start === last + 1)).toBe(true);
  });
});

describe('exit codes: 2 leaves stdout empty, 5 is a partial report (item 9)', () => {
  const leafless = at('no-leaf.p2ms');
  let missing = -1;
  beforeAll(() => {
    // small-clean-4x without one toolstack leaf page: the audit cannot check its 512 pfns
    const img = openImage(path.join(scenarios, 'small-clean-4x.p2ms'));
    try {
      missing = mapP2m(img).leafFrames[1]!;
      const frames = framesNeeded(img).filter((f) => f !== missing);
      writeP2ms(leafless, { frameSpace: img.frameSpace, guestWidth: img.guestWidth, cr3: img.cr3, maxFrame: img.maxFrame, symbols: img.symbols, sharedInfo: img.sharedInfo, bootFacts: bootFactsOf(img) }, frames, (f) => Buffer.from(img.readFrame(f)!));
    } finally {
      img.close();
    }
  });

  it('audit of an image lacking a leaf page: the report on stdout, verdict ERROR, exit 5 (as the direct audit says)', async () => {
    const img = openImage(leafless);
    const { report } = await auditImage(img, { jobs: 0 }).finally(() => img.close());
    expect([report.verdict, report.exitCode]).toEqual(['ERROR', EXIT_PARTIAL]);
    const r = run(['audit', leafless, '--jobs', '1']);
    expect(r.code).toBe(EXIT_PARTIAL);
    expect(r.stdout).toBe(renderText(report));
  });

  it('p2m of it: every other pfn printed, the 512 it cannot answer for as one line, a note on stderr, exit 5', () => {
    const r = run(['p2m', leafless]);
    expect(r.code).toBe(EXIT_PARTIAL);
    expect(r.stdout).toMatch(new RegExp(`^ {2}pfn=0x200\\.\\.0x3ff ==> not in the image \\(512 pfns: toolstack p2m leaf 1 \\(frame 0x${missing.toString(16)}\\) is absent\\)$`, 'm'));
    expect(r.stderr).toBe(`p2m-audit: ${leafless}: 512 pfns not printed: their p2m leaf pages are not in the image (the "not in the image" lines); the output is partial\n`);
  });

  it('a view that cannot be built prints nothing: exit 2, one line', () => {
    const r = run(['p2m', path.join(scenarios, 'small-clean-4x.p2ms'), '--view', 'dump']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  });

  it("audit --svg -: the picture on stdout, the report on stderr, both as a direct audit renders them", async () => {
    const file = path.join(scenarios, 'seed-backport.p2ms');
    const img = openImage(file);
    const { report } = await auditImage(img, { jobs: 0 }).finally(() => img.close());
    const r = run(['audit', file, '--jobs', '1', '--svg', '-']);
    expect(r.code).toBe(report.exitCode);
    expect(r.stdout).toBe(renderSvg(report));
    expect(r.stderr).toBe(renderText(report));
  });
});

describe('a closed standard output keeps the exit code (item 14)', () => {
  /** Run the CLI and close its stdout after the first chunk, as `| head -c 1` would. */
  function closedAfterFirstChunk(args: string[]): Promise<{ code: number | null; bytes: number }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
      let bytes = 0;
      child.stdout.once('data', (d: Buffer) => {
        bytes += d.length;
        child.stdout.destroy();
      });
      child.on('close', (code) => resolve({ code, bytes }));
    });
  }

  it('scan with a FATAL file, reader gone after the first line: exit 1, the verdict a direct audit gives', async () => {
    const files = ['small-clean-4x.p2ms', 'seed-backport.p2ms'].map((f) => path.join(scenarios, f));
    const codes: number[] = [];
    for (const f of files) {
      const img = openImage(f);
      codes.push((await auditImage(img, { jobs: 0 }).finally(() => img.close())).report.exitCode);
    }
    expect(codes).toEqual([0, 1]);
    const r = await closedAfterFirstChunk(['scan', ...files, '--jobs', '1']);
    expect(r.code).toBe(1);
  });

  it('p2m with its reader gone after the first chunk ends (exit 0) instead of printing on', async () => {
    const r = await closedAfterFirstChunk(['p2m', path.join(scenarios, 'seed-4x.p2ms')]);
    expect(r.code).toBe(0);
    expect(r.bytes).toBeGreaterThan(0);
  });
});
