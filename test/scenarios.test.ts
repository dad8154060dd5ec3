// End-to-end: every corpus scenario through the real CLI (emulate → audit), asserting the verdict, exit
// code, bounds and fatal ranges derived by hand in the scenario file; the committed snapshots too.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { emulateScenario, listScenarios, scenarioHostPath, type Scenario } from '../src/corpora/scenario.js';
import { writeArchSharedInfo } from '../src/xen/shared-info.js';
import { writeEmulatedP2ms } from '../src/emulate/snapshot.js';

const repo = path.resolve(__dirname, '..');
const cli = path.join(repo, 'dist/src/cli.js');
const dir = path.join(repo, 'corpora/scenarios');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-scen-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const scenarios = listScenarios(dir);

function run(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

interface JsonFatal {
  class: string;
  start: string;
  end: string;
  pages: number;
  cause: { breaks: { crashVa: { start: string; end: string }; crashReadablePages: number; crashSource: string } };
}

function checkReport(s: Scenario, code: number, json: string): void {
  const r = JSON.parse(json) as {
    verdict: string;
    exitCode: number;
    toolstack: { archMaxPfn: string; maxPfn: string; trimmedFrom: string | null };
    guest: { limitPfn: string; vars: { maxPfn: string; nrPages: string } };
    boot: { nrPages: string; maxPages: string; kernelMaxPfn: string };
    fatal: JsonFatal[];
    benign: { class: string; start: string; end: string }[];
  };
  const e = s.expect;
  expect(r.verdict).toBe(e.verdict);
  expect(r.exitCode).toBe(e.exitCode);
  expect(code).toBe(e.exitCode);
  expect(r.toolstack.archMaxPfn).toBe(e.archMaxPfn);
  expect(r.guest.vars.maxPfn).toBe(e.kernelMaxPfn);
  expect(r.guest.vars.nrPages).toBe(e.nrPages);
  expect(r.boot.nrPages).toBe(e.nrPages);
  expect(r.boot.maxPages).toBe(e.maxPages);
  expect(r.fatal.map((f) => ({ cls: f.class, start: f.start, end: f.end, pages: f.pages }))).toEqual(e.fatal);
  if (e.crashVa) {
    expect(r.fatal[0]!.cause.breaks.crashVa).toEqual({ start: e.crashVa[0], end: e.crashVa[1] });
  }
  for (const f of r.fatal) {
    // crash reads the frame list without arch.max_pfn: only kernels whose mirror covers the range keep crash working
    expect(f.cause.breaks.crashReadablePages).toBe(e.crashReadable ? f.pages : 0);
  }
  if (e.identity) {
    expect(r.benign.filter((x) => x.class === 'identity').map((x) => [x.start, x.end])).toEqual(e.identity);
  }
  if (e.trimmedFrom) expect(r.toolstack.trimmedFrom).toBe(e.trimmedFrom);
  if (e.toolMaxPfn) expect(r.toolstack.maxPfn).toBe(e.toolMaxPfn);
  if (e.guestLimitPfn) expect(r.guest.limitPfn).toBe(e.guestLimitPfn);
}

describe('corpus scenarios through the CLI', () => {
  it('has the scenarios the core issue asks for', () => {
    const names = scenarios.map((s) => s.name);
    for (const n of ['seed-backport', 'seed-4x', 'seed-backport-nomax', 'multi-hole-backport', 'above-4g-backport', 'small-clean-4x']) {
      expect(names).toContain(n);
    }
  });

  it.each(scenarios.map((s) => [s.name, s] as const))('%s: emulate + audit gives the hand-derived result', (_n, s) => {
    const out = path.join(tmp, `${s.name}.p2ms`);
    const em = run(['emulate', '--profile', s.profile, '--e820', scenarioHostPath(s), '--dom0-mem', s.dom0Mem, '--seed', String(s.seed), '-o', out]);
    expect(em.stderr).toBe('');
    expect(em.code).toBe(0);
    const au = run(['audit', out, '--json', '--jobs', '2']);
    expect(au.stderr).toBe('');
    checkReport(s, au.code, au.stdout);
  });

  it.each(scenarios.map((s) => [s.name, s] as const))('%s: the committed snapshot audits the same', (_n, s) => {
    const au = run(['audit', path.join(dir, `${s.name}.p2ms`), '--json']);
    checkReport(s, au.code, au.stdout);
  });

  it('gives identical output with --jobs 1 and --jobs 4', () => {
    for (const name of ['seed-backport', 'above-4g-backport', 'seed-4x']) {
      const f = path.join(dir, `${name}.p2ms`);
      const a = run(['audit', f, '--jobs', '1', '--json']);
      const b = run(['audit', f, '--jobs', '4', '--json']);
      expect(a.stdout.length).toBeGreaterThan(100);
      expect(b.stdout).toBe(a.stdout);
      expect(run(['audit', f, '--jobs', '4']).stdout).toBe(run(['audit', f, '--jobs', '1']).stdout);
    }
  });

  it('the text report names the bound, the hole and what breaks (seed, backport)', () => {
    const t = run(['audit', path.join(dir, 'seed-backport.p2ms')]);
    expect(t.code).toBe(1);
    expect(t.stdout).toMatch(/^p2m-audit: FATAL/);
    expect(t.stdout).toContain('pfn 0x40000-0x40060 (97 pages');
    expect(t.stdout).toContain('arch.max_pfn 0x40000');
    expect(t.stdout).toContain('0x9f-0xff');
    expect(t.stdout).toContain('0xffff880040000000-0xffff880040060fff');
  });

  it('the text report lists the benign identity ranges (seed, 4.x: the ISA hole and everything past 0x40060)', () => {
    const t = run(['audit', path.join(dir, 'seed-4x.p2ms')]);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/^p2m-audit: CLEAN/);
    expect(t.stdout).toContain('benign identity 0x9f-0xff (97 pages');
    expect(t.stdout).toContain('benign identity 0x40061-0x7ffffff');
  });

  it('scan of the corpus lists every snapshot and skips the rest', () => {
    const r = run(['scan', dir, '--json']);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { file: string; status: string; verdict?: string });
    const audited = lines.filter((l) => l.status === 'audited');
    expect(audited.length).toBe(scenarios.length);
    for (const s of scenarios) {
      expect(audited.find((l) => l.file.endsWith(`${s.name}.p2ms`))?.verdict).toBe(s.expect.verdict);
    }
    expect(lines.filter((l) => l.status === 'skipped').length).toBeGreaterThan(0); // the .json and host files
    expect(r.code).toBe(1); // fatal scenarios are in the corpus
  });
});

describe('bad input', () => {
  const seedHost = path.join(dir, 'hosts/seed-host.txt');
  const badE820 = path.join(tmp, 'bad-e820.txt');
  fs.writeFileSync(badE820, '(XEN)  0000000000000000 - 000000000009fc00 (usable)\n(XEN)  00000000000a0000 - zz (reserved)\n');
  const trunc = path.join(tmp, 'trunc.p2ms');
  const wrong = path.join(tmp, 'wrong.bin');
  fs.writeFileSync(wrong, Buffer.from('this is not a snapshot at all....'));
  fs.writeFileSync(trunc, fs.readFileSync(path.join(dir, 'small-clean-4x.p2ms')).subarray(0, 20000));
  it.each([
    ['missing file', ['audit', path.join(tmp, 'nope.p2ms')], /nope\.p2ms: no such file/],
    ['wrong magic', ['audit', wrong], /wrong\.bin: offset 0: not a supported image/],
    ['truncated snapshot', ['audit', trunc], /trunc\.p2ms/],
    ['unknown profile', ['emulate', '--profile', 'linux-9', '--e820', seedHost, '--dom0-mem', '1g', '-o', path.join(tmp, 'x.p2ms')], /unknown profile/],
    ['malformed e820 line', ['emulate', '--profile', 'linux-4.x', '--e820', badE820, '--dom0-mem', '1g', '-o', path.join(tmp, 'y.p2ms')], /bad-e820\.txt:2/],
    ['unparseable dom0_mem', ['emulate', '--profile', 'linux-4.x', '--e820', seedHost, '--dom0-mem', '1q', '-o', path.join(tmp, 'z.p2ms')], /dom0_mem/],
    ['bad --jobs', ['audit', path.join(dir, 'seed-4x.p2ms'), '--jobs', 'zero'], /jobs/],
    ['a directory instead of an image', ['audit', dir], /scenarios: is a directory, expected an image file/],
    ['dom0_mem larger than the host', ['emulate', '--profile', 'linux-4.x', '--e820', seedHost, '--dom0-mem', '64g', '--audit'], /dom0_mem=64g asks for 0x1000000 pages \(65536 MiB\) but the host map leaves only 0xfd77f pages/],
  ])('%s → one-line error, exit 2', (_n, args, re) => {
    const r = run(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(re);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(r.stdout).toBe('');
  });

  it('a frame list pointing outside the image → one-line error, exit 2', () => {
    const g = emulateScenario(scenarios.find((x) => x.name === 'seed-backport')!);
    const arch = g.image.arch;
    // a frame below max_mfn (so the save side would try to map it) that the image does not hold
    let absent = 0x100;
    while (g.image.hasFrame(absent)) absent++;
    writeArchSharedInfo(g.image.sharedInfo!, { ...arch, pfnToMfnFrameListList: BigInt(absent) });
    const out = path.join(tmp, 'fll-outside.p2ms');
    writeEmulatedP2ms(g.image, out);
    const r = run(['audit', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`p2m-audit: ${out}: the tree walk's frame 0x${absent.toString(16)} (frame-list-list page) is not in the image: the frame list points outside the image\n`);
  });

  it('never writes over the input e820 file', () => {
    const copy = path.join(tmp, 'host-copy.txt');
    fs.copyFileSync(seedHost, copy);
    const r = run(['emulate', '--profile', 'linux-4.x', '--e820', copy, '--dom0-mem', '1g', '-o', copy, '--force']);
    expect(r.code).toBe(2);
    expect(fs.readFileSync(copy, 'utf8')).toBe(fs.readFileSync(seedHost, 'utf8'));
  });

  it('refuses to replace an existing output without --force', () => {
    const out = path.join(tmp, 'exists.p2ms');
    fs.writeFileSync(out, 'keep me');
    const r = run(['emulate', '--profile', 'linux-4.x', '--e820', seedHost, '--dom0-mem', '1g', '-o', out]);
    expect(r.code).toBe(2);
    expect(fs.readFileSync(out, 'utf8')).toBe('keep me');
  });

  it('--help teaches the commands and exit codes', () => {
    const out = execFileSync(process.execPath, [cli, '--help'], { encoding: 'utf8' });
    for (const w of ['emulate', 'audit', 'inspect', 'scan', 'profiles', 'Exit codes']) expect(out).toContain(w);
  });

  it.each([['--version'], ['-V']])('%s prints package.json\'s version and exits 0', (flag) => {
    const { version } = JSON.parse(fs.readFileSync(path.join(__dirname, '../package.json'), 'utf8')) as { version: string };
    expect(run([flag])).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  });
});
