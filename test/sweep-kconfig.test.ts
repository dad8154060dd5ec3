// --kconfig and sweep: config symbols decide P2M_LIMIT (the p2m area size message); the sweep matrix on
// the seed host follows the per-profile derivations (corpora/scenarios/seed-*.json).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseKconfig } from '../src/inputs/kconfig.js';
import { distinctErrors, parseSweepRange, renderSweepText, sizeText } from '../src/sweep/sweep.js';

const repo = path.resolve(__dirname, '..');
const cli = path.join(repo, 'dist/src/cli.js');
const seedHost = path.join(repo, 'corpora/scenarios/hosts/seed-host.txt');
const debian61 = path.join(repo, 'corpora/real/config-6.1.0-56-amd64.gz');
const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 16 << 20 });

describe('kernel .config', () => {
  it('keeps the p2m symbols; "is not set" and absent symbols are n', () => {
    const c = parseKconfig('CONFIG_XEN=y\n# CONFIG_XEN_BALLOON_MEMORY_HOTPLUG is not set\nCONFIG_XEN_512GB=y\n', 'x');
    expect(c).toEqual({
      CONFIG_XEN_BALLOON_MEMORY_HOTPLUG: 'n',
      CONFIG_XEN_BALLOON_MEMORY_HOTPLUG_LIMIT: 'n',
      CONFIG_XEN_MEMORY_HOTPLUG_LIMIT: 'n',
      CONFIG_XEN_512GB: 'y',
      CONFIG_XEN_MAX_DOMAIN_MEMORY: 'n',
    });
  });
  it.each([
    ['not a config', 'hello world\n', /x:1: not a kernel .config line/],
    ['only comments', '# just a comment\n', /no CONFIG_ lines/],
  ])('%s → InputError', (_n, text, re) => {
    expect(() => parseKconfig(text, 'x')).toThrow(re);
  });

  // size = ALIGN(8 · max(xen_max_p2m_pfn = 0x40061, P2M_LIMIT GiB in pages), 2 MiB)
  it.each([
    ['the real Debian 6.1 config (XEN_MEMORY_HOTPLUG_LIMIT=512)', ['--kconfig', debian61], 'size is 40000000'], // 8·0x8000000
    ['no hotplug limit (a 4.19 built without it)', ['--config', 'XEN_BALLOON_MEMORY_HOTPLUG=n'], 'size is 400000'], // ALIGN(8·0x40061, 2M) = 4 MiB
  ])('%s → "%s"', (_n, extra, want) => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kc-')), 'g.p2ms');
    const r = run(['emulate', '--profile', extra[0] === '--kconfig' ? 'linux-6.1' : 'linux-4.x', '--e820', seedHost, '--dom0-mem', '1g,max:1g', '-o', out, ...extra]);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(want);
    expect(r.stdout).toMatch(/config: .*CONFIG_/); // the values used are stated
  });

  it('a file that is not a .config → exit 2', () => {
    const r = run(['emulate', '--profile', 'linux-6.1', '--e820', seedHost, '--dom0-mem', '1g', '--kconfig', seedHost, '--audit']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/seed-host\.txt:1: not a kernel \.config line/);
  });
});

describe('sweep', () => {
  it.each([
    ['512m..4g', ['512m', '1g', '2g', '4g']],
    ['1g..3g:1g', ['1g', '2g', '3g']],
    ['1536m..2g:512m', ['1536m', '2g']],
  ])('range %s', (text, want) => {
    expect(parseSweepRange(text).map(sizeText)).toEqual(want);
  });
  it.each(['1g', '4g..1g', '1g..2g:0', 'x..2g'])('bad range %s → error', (text) => {
    expect(() => parseSweepRange(text)).toThrow(/--dom0-mem/);
  });

  it('seed host: unsafe with max: for the backport and 3.18, never for the fixed backport, 4.x or 6.1', () => {
    const profiles = ['linux-3.8.13-backport', 'linux-3.8.13-backport-fixed', 'linux-3.18', 'linux-4.x', 'linux-6.1'];
    const r = run(['sweep', '--e820', seedHost, '--dom0-mem', '512m..2g', '--profile', profiles.join(','), '--json', '--jobs', '2']);
    expect(r.status).toBe(1);
    const m = JSON.parse(r.stdout) as { rows: string[]; cols: string[]; cells: { verdict: string; uncoveredPages: number }[][] };
    expect(m.rows).toEqual(['512m,max:512m', '1g,max:1g', '2g,max:2g']);
    expect(m.cols).toEqual(profiles);
    // below 2 GiB only hole A (97 pages) lies under nr_pages; at 2g = 0x80000 pages the run
    // B = [0x7ffdf, 0x100000) starts below it too: 0x80000 - 0x7ffdf = 33 more pages -> 130
    const expected = [97, 97, 130];
    m.rows.forEach((_r, i) => {
      expect(m.cells[i]![0]).toMatchObject({ verdict: 'FATAL', uncoveredPages: expected[i] });
      expect(m.cells[i]![1]!.verdict).toBe('CLEAN');
      expect(m.cells[i]![2]).toMatchObject({ verdict: 'FATAL', uncoveredPages: expected[i] });
      expect(m.cells[i]![3]!.verdict).toBe('CLEAN');
      expect(m.cells[i]![4]!.verdict).toBe('CLEAN');
    });
  });

  it('a row larger than the host is clamped to avail as Xen does (dom0_compute_nr_pages), noted once, not an error', () => {
    const r = run(['sweep', '--e820', seedHost, '--dom0-mem', '2g..8g', '--profile', 'linux-4.x', '--json', '--jobs', '1']);
    expect(r.status).toBe(0);
    const m = JSON.parse(r.stdout) as { rows: string[]; cells: { verdict: string; nrPages: string; error?: string }[][]; rowNotes: (string | null)[] };
    expect(m.rows).toEqual(['2g,max:2g', '4g,max:4g', '8g,max:8g']);
    // the seed host leaves dom0 0xfd77f pages (docs/spec-notes/xen-dom0-mem.md worked example): 4g = 0x100000 and
    // 8g = 0x200000 pages are both clamped to it
    expect(m.rowNotes[0]).toBeNull();
    expect(m.rowNotes[1]).toMatch(/^dom0_mem=4g,max:4g asks for 4096\.0 MiB but the host map leaves 4055\.5 MiB .*clamps/);
    expect(m.cells[1]![0]).toMatchObject({ verdict: 'CLEAN', nrPages: '0xfd77f' });
    expect(m.cells[2]![0]).toMatchObject({ verdict: 'CLEAN', nrPages: '0xfd77f' });
    expect(m.cells.flat().filter((c) => c.error)).toEqual([]);
  });

  it("the README's sweep, its 4g row (which made it exit 2): clamped and swept for its three profiles", () => {
    const profiles = ['linux-3.8.13-backport', 'linux-3.8.13-backport-fixed', 'linux-4.x'];
    const r = run(['sweep', '--e820', seedHost, '--dom0-mem', '4g..4g', '--profile', profiles.join(','), '--jobs', '2']);
    // clamped to 0xfd77f pages with d->max_pages 0x100000 > nr_pages: extra memory, so the backport is clean too
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^4g,max:4g \(clamped\)/m);
    expect(r.stdout).toMatch(/^clamped rows:\n {2}dom0_mem=4g,max:4g asks for 4096\.0 MiB/m);
    expect(r.stdout).not.toMatch(/error/);
  });

  it('without max: the backport is clean (extra memory raises xen_max_p2m_pfn)', () => {
    const r = run(['sweep', '--e820', seedHost, '--dom0-mem', '1g..1g', '--profile', 'linux-3.8.13-backport', '--no-max', '--csv', '--jobs', '1']);
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n')[1]).toMatch(/^1g,linux-3\.8\.13-backport,CLEAN,0,0,/);
  });
});

describe('sweep errors are listed once each, with where they came from', () => {
  const cell = (error?: string) => ({ verdict: error ? 'ERROR' : 'CLEAN', exitCode: error ? 2 : 0, fatalPages: 0, fatalMib: 0, uncoveredPages: 0, uncoveredMib: 0, archMaxPfn: '', kernelMaxPfn: '', nrPages: '', ...(error ? { error } : {}) });
  const m = {
    schema: 'p2m-audit/sweep@1' as const,
    rows: ['1g', '2g'],
    cols: ['linux-4.x', 'linux-6.1'],
    cells: [
      [cell('pfn 0x1100 used by the kernel has no machine frame'), cell('pfn 0x1100 used by the kernel has no machine frame')],
      [cell('pfn 0x1100 used by the kernel has no machine frame'), cell()],
    ],
    rowNotes: [null, null],
  };
  it('one message, its rows and profiles', () => {
    expect(distinctErrors(m)).toEqual([{ message: 'pfn 0x1100 used by the kernel has no machine frame', where: ['dom0_mem=1g: every profile', 'dom0_mem=2g: linux-4.x'] }]);
    expect(renderSweepText(m).match(/no machine frame/g)).toHaveLength(1);
  });
});
