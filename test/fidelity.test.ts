// Fidelity: emulating the real Latitude E6420 dom0 boot (Xen 4.14, Linux 4.19; a verbatim copy of
// shared/real-logs/latitude-e6420-xen4.14-linux4.19.txt) reproduces what the real kernel printed. The log's
// header says how to reproduce it: nr_pages = max pages = 0x100000 and no memory-hotplug P2M limit.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const repo = path.resolve(__dirname, '..');
const cli = path.join(repo, 'dist/src/cli.js');
const log = path.join(repo, 'test/fixtures/logs/latitude-e6420-xen4.14-linux4.19.txt');

interface Row {
  item: string;
  predicted: string | null;
  logged: string | null;
  line: number | null;
  status: string;
}

describe('the real Latitude E6420 boot (linux-4.x)', () => {
  const r = spawnSync(
    process.execPath,
    [cli, 'emulate', '--from-log', log, '--profile', 'linux-4.x', '--max-pages', '0x100000', '--config', 'XEN_BALLOON_MEMORY_HOTPLUG=n', '--compare', '--json'],
    { encoding: 'utf8' },
  );
  const out = JSON.parse(r.stdout) as { inputs: { what: string; value: string; from: string }[]; comparison: { rows: Row[]; different: number } };
  const rows = out.comparison.rows;
  const row = (item: string) => rows.filter((x) => x.item === item);

  it('exits 0 and every compared line is equal', () => {
    expect(r.status).toBe(0);
    expect(out.comparison.different).toBe(0);
    for (const x of rows) expect(x.status).toBe('equal');
  });

  it.each([
    ['Remapped N page(s)', '219890'],
    ['p2m virtual area size', 'a00000'],
    ['last_pfn #1', '0x135af2'],
    ['last_pfn #2', '0xcac00'],
    ['Released N page(s)', '0'],
  ])('%s = %s, as logged', (item, want) => {
    expect(row(item)).toEqual([expect.objectContaining({ predicted: want, logged: want, status: 'equal' })]);
  });

  it("the kernel's usable ranges, as logged", () => {
    expect(row('kernel e820 usable').map((x) => x.logged)).toEqual([
      '0x0-0x99fff',
      '0x100000-0x1fffffff',
      '0x20200000-0x3fffffff',
      '0x40200000-0xca61efff',
      '0xca663000-0xca9b6fff',
      '0xcabff000-0xcabfffff',
      '0x100000000-0x135af1fff',
    ]);
  });

  it('names where every input came from (nr_pages from the Phys-Mach map line)', () => {
    const nr = out.inputs.find((i) => i.what === 'nr_pages')!;
    expect(nr.value).toBe('0x100000');
    expect(nr.from).toMatch(/latitude-e6420-xen4\.14-linux4\.19\.txt:\d+ \(Phys-Mach map/);
    expect(out.inputs.find((i) => i.what === 'host e820')!.from).toMatch(/\.txt:\d+$/);
  });

  it('a different config is detected as different (the a00000 area needs P2M_LIMIT 0)', () => {
    const d = spawnSync(process.execPath, [cli, 'emulate', '--from-log', log, '--profile', 'linux-4.x', '--max-pages', '0x100000', '--compare', '--json'], { encoding: 'utf8' });
    expect(d.status).toBe(1);
    const c = (JSON.parse(d.stdout) as { comparison: { rows: Row[] } }).comparison.rows.find((x) => x.item === 'p2m virtual area size')!;
    expect(c).toMatchObject({ predicted: '40000000', logged: 'a00000', status: 'different' });
  });

  it('a log without a memory map → one-line error naming what is missing, exit 2', () => {
    const bad = spawnSync(process.execPath, [cli, 'emulate', '--from-log', path.join(repo, 'README.md'), '--profile', 'linux-4.x', '--compare'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/README\.md: no memory map found/);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  });
});
