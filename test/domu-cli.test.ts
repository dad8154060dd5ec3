// emulate --role domU: libxl's map for the real pvplain domU (Xen 4.17, Linux 6.1) reproduces the guest's own
// e820 lines and "Remapped 0"; the spec's 384 MiB e820_host=1 domU comes out as "Remapped 32803 page(s)"
// (source [0xffdd, 0x18000) below nr_pages 0x18000, per linux-p2m.md §7).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const repo = path.resolve(__dirname, '..');
const cli = path.join(repo, 'dist/src/cli.js');
const fx = (f: string) => path.join(repo, 'test/fixtures/domu', f);
const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

describe('domU emulation', () => {
  it('pvplain (memory = maxmem = 96, linux-6.1): the kernel e820 lines and counts the real guest printed', () => {
    const r = run(['emulate', '--role', 'domU', '--xl-config', fx('pvplain.cfg'), '--profile', 'linux-6.1', '--audit']);
    expect(r.status).toBe(0);
    const real = fs.readFileSync(fx('domU-e820-lines.txt'), 'utf8');
    const want = [...real.matchAll(/(Xen: \[mem [^\]]+\] \w+)/g)].map((m) => m[1]);
    expect(want).toHaveLength(3);
    for (const line of want) expect(r.stdout).toContain(`| ${line}`);
    expect(r.stdout).toContain('| Released 0 page(s)');
    expect(r.stdout).toContain('| Remapped 0 page(s)');
    expect(r.stdout).toMatch(/size is 40000000/); // real: "p2m virtual area at (____ptrval____), size is 40000000"
    expect(r.stdout).toContain('nr_pages: 0x6000'); // 96 MiB
    expect(r.stdout).toMatch(/^p2m-audit: CLEAN/m);
  });

  it('e820_host=1, memory = 384, host RAM ending at 0xffdd000: Remapped 32803 page(s) to 0x100000', () => {
    const r = run(['emulate', '--role', 'domU', '--xl-config', fx('e820host-384m.cfg'), '--e820', fx('host-lowram-ffdd000.txt'), '--profile', 'linux-4.x', '--json', '-o', path.join(fs.mkdtempSync('/tmp/domu-'), 'g.p2ms')]);
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout) as { messages: string[]; nrPages: number; kernelMaxPfn: number };
    expect(out.nrPages).toBe(0x18000);
    expect(out.messages).toContain('Remapped 32803 page(s)'); // 0x18000 - 0xffdd = 0x8023
    expect(out.kernelMaxPfn).toBe(0x100000 + 0x8023);
  });

  it('e820_host without the host map → one-line error, exit 2', () => {
    const r = run(['emulate', '--role', 'domU', '--xl-config', fx('e820host-384m.cfg'), '--profile', 'linux-4.x', '--audit']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--e820 FILE or --from-log FILE/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
