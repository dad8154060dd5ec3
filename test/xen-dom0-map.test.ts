// The map dom0 works on (docs/spec-notes/xen-dom0-map.md): Linux ≥ 6.5's iBFT window, mem=, and the rule for the
// second "last_pfn" line, checked on real boot logs — a Xen 4.18 EFI host with Linux 6.8 (xen-devel mail), the
// real Xen 4.17 / Linux 6.1 kdump dom0 and the real pvplain domU of ../shared. Expected values are the ones the
// real kernels printed, or derived by hand from the printed maps (each derivation is written beside it).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { removeRamFrom, setupArchE820 } from '../src/emulate/kernel/setup-arch-e820.js';
import { suggestProfile } from '../src/inputs/boot-log-profile.js';
import { E820_RAM, E820_RESERVED } from '../src/xen/abi.js';

const repo = path.resolve(__dirname, '..');
const cli = path.join(repo, 'dist/src/cli.js');
const logs = path.join(repo, 'test/fixtures/logs');
const efiLog = path.join(logs, 'efi-xen4.18-linux6.8.txt');
const kdumpLog = path.join(logs, 'real-dom0-kdump-xen4.17-linux6.1.txt');
const domuLog = path.join(repo, 'test/fixtures/domu/pvplain-domU-dmesg.txt');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-dom0map-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Row {
  item: string;
  predicted: string | null;
  logged: string | null;
  status: string;
}
interface Out {
  inputs: { what: string; value: string; from: string }[];
  messages: string[];
  notes: string[];
  comparison: { rows: Row[]; equal: number; different: number };
}

function emulate(args: string[]): { status: number | null; out: Out; stderr: string } {
  const r = spawnSync(process.execPath, [cli, 'emulate', ...args, '--json'], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout ? (JSON.parse(r.stdout) as Out) : ({} as Out), stderr: r.stderr };
}
const rowsOf = (o: Out, item: string) => o.comparison.rows.filter((r) => r.item === item);

describe('Xen 4.18 EFI host, Linux 6.8 dom0 (real log): the 0x80000-0xfffff window is Linux 6.5+, not Xen', () => {
  const r = emulate(['--from-log', efiLog, '--compare']);

  it('the log suggests linux-6.5 and every compared message is equal', () => {
    expect(r.status).toBe(0);
    expect(r.out.inputs.find((i) => i.what === 'profile')!.value).toBe('linux-6.5');
    expect(r.out.inputs.find((i) => i.what === 'Xen')!.value).toMatch(/^4\.18\.3, EFI boot/);
    expect(r.out.comparison.different).toBe(0);
    expect(r.out.comparison.equal).toBe(12);
  });

  it.each([
    ['Remapped N page(s)', '440771'],
    ['last_pfn #1', '0xfde300'],
    ['last_pfn #2', '0x9bfff'],
    ['p2m virtual area size', '40000000'],
  ])('%s = %s as logged', (item, want) => {
    expect(rowsOf(r.out, item)).toEqual([expect.objectContaining({ predicted: want, logged: want, status: 'equal' })]);
  });

  it("the kernel's first usable range ends at 0x7ffff and the window is printed reserved, as logged", () => {
    expect(rowsOf(r.out, 'kernel e820 usable')[0]).toMatchObject({ predicted: '0x0-0x7ffff', status: 'equal' });
    expect(r.out.messages).toContain('Xen: [mem 0x0000000000080000-0x00000000000fffff] reserved');
  });

  // without the window (linux-6.1, or CONFIG_ISCSI_IBFT_FIND off) RAM 0x80000-0x9ffff stays RAM:
  // 0xa0000 - 0x80000 = 0x20000 bytes = 32 pages fewer to remap, 440771 - 32 = 440739
  it.each([
    ['--profile linux-6.1', ['--profile', 'linux-6.1']],
    ['linux-6.5 with ISCSI_IBFT_FIND=n', ['--config', 'ISCSI_IBFT_FIND=n']],
  ])('%s: 32 pages fewer remapped, the usable range to 0x9ffff (so the log differs)', (_n, extra) => {
    const d = emulate(['--from-log', efiLog, '--compare', ...extra]);
    expect(d.status).toBe(1);
    expect(rowsOf(d.out, 'Remapped N page(s)')[0]).toMatchObject({ predicted: '440739', logged: '440771', status: 'different' });
    expect(rowsOf(d.out, 'kernel e820 usable')[0]).toMatchObject({ predicted: '0x0-0x9ffff', status: 'different' });
  });

  it.each([
    ['6.4.16', 'linux-6.1'],
    ['6.5.0', 'linux-6.5'],
    ['6.8.0-48-generic', 'linux-6.5'],
    ['6.1.0-56-amd64', 'linux-6.1'],
  ])('Linux %s → %s (9338c2233b97 is in v6.5, not in 6.1.y)', (v, want) => {
    expect(suggestProfile(v).profile).toBe(want);
  });
});

describe('the real Xen 4.17 / Linux 6.1 kdump dom0 (BIOS boot): unchanged, 8 of 8 equal', () => {
  it('Remapped 131207, last_pfn 0x120087 and 0x1ffda, the usable ranges', () => {
    const r = emulate(['--from-log', kdumpLog, '--compare']);
    expect(r.status).toBe(0);
    expect(r.out.comparison.equal).toBe(8);
    expect(r.out.inputs.find((i) => i.what === 'Xen')!.value).toMatch(/^4\.17\.7, BIOS e820 boot/);
    expect(rowsOf(r.out, 'Remapped N page(s)')[0]).toMatchObject({ predicted: '131207', status: 'equal' });
  });
});

describe('last_pfn: printed twice only when max_pfn is above 4 GiB (setup_arch)', () => {
  it('the real 96 MiB domU printed it once; its prediction compares with its own dmesg', () => {
    const r = emulate(['--role', 'domU', '--xl-config', path.join(repo, 'test/fixtures/domu/pvplain.cfg'), '--from-log', domuLog, '--compare']);
    expect(r.status).toBe(0);
    expect(r.out.messages.filter((m) => m.startsWith('last_pfn'))).toEqual(['last_pfn = 0x6000 max_arch_pfn = 0x400000000']);
    expect(r.out.comparison.different).toBe(0);
    expect(rowsOf(r.out, 'last_pfn #1')[0]).toMatchObject({ logged: '0x6000', status: 'equal' });
    expect(r.out.inputs.find((i) => i.what === 'profile')!.from).toMatch(/pvplain-domU-dmesg\.txt:\d+ \(Linux 6\.1\.0-56-amd64\)/);
  });

  it.each([
    // max_pfn 0x100000 exactly (RAM to 4 GiB): not above, one line
    [[{ addr: 0, size: 0x100000000, type: E820_RAM }], ['last_pfn = 0x100000 max_arch_pfn = 0x400000000']],
    // one page more: the low end of RAM below 4 GiB is printed as well
    [
      [
        { addr: 0, size: 0xc0000000, type: E820_RAM },
        { addr: 0x100000000, size: 0x1000, type: E820_RAM },
      ],
      ['last_pfn = 0x100001 max_arch_pfn = 0x400000000', 'last_pfn = 0xc0000 max_arch_pfn = 0x400000000'],
    ],
  ])('map %#', (map, want) => {
    expect(setupArchE820(map, null).messages).toEqual(want);
  });

  it('a domU prediction is not compared with a host log (it would be dom0\'s messages): one-line error, exit 2', () => {
    const r = spawnSync(process.execPath, [cli, 'emulate', '--role', 'domU', '--xl-config', path.join(repo, 'test/fixtures/domu/pvplain.cfg'), '--from-log', kdumpLog, '--compare'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/host boot log .*domU's own dmesg/);
  });

  it('predictions alone need no output: the domU form prints them and exits 0 without -o or --audit', () => {
    const r = spawnSync(process.execPath, [cli, 'emulate', '--role', 'domU', '--xl-config', path.join(repo, 'test/fixtures/domu/pvplain.cfg'), '--profile', 'linux-6.1'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/predicted boot messages:\n {2}\| Released 0 page\(s\)/);
  });
});

describe("the kernel's mem= (parse_memopt → e820__range_remove after xen_memory_setup)", () => {
  // the real kdump log with mem=256M added to the kernel's command line
  const withMem = path.join(tmp, 'kdump-mem256m.txt');
  fs.writeFileSync(withMem, fs.readFileSync(kdumpLog, 'utf8').replace(/(Command line: console=hvc0 earlyprintk=xen loglevel=8 log_buf_len=4M)/, '$1 mem=256M'));
  const r = emulate(['--from-log', withMem]);

  it('caps the map at 0x10000000: RAM 0x10000000-0x1ffd9fff and 0x100000000-0x120086fff removed, max_pfn 0x10000', () => {
    expect(r.status).toBe(0);
    // the Xen: table is what the kernel printed before mem= (unchanged); the user table follows
    expect(r.out.messages).toContain('Xen: [mem 0x0000000100000000-0x0000000120086fff] usable');
    const user = r.out.messages.filter((m) => m.startsWith('user: ') && m.endsWith('usable'));
    expect(user).toEqual(['user: [mem 0x0000000000000000-0x000000000009efff] usable', 'user: [mem 0x0000000000100000-0x000000000fffffff] usable']);
    // 0x10000 pages is below 4 GiB: one last_pfn line
    expect(r.out.messages.filter((m) => m.startsWith('last_pfn'))).toEqual(['last_pfn = 0x10000 max_arch_pfn = 0x400000000']);
    // (0x1ffda - 0x10000) + (0x120087 - 0x100000) = 0xffda + 0x20087 = 196705 pages
    expect(r.out.notes).toEqual([expect.stringMatching(/capped .* at 0x10000000: RAM 0x10000000-0x1ffd9fff, 0x100000000-0x120086fff removed \(196705 pages\); max_pfn 0x120087 -> 0x10000/)]);
    expect(r.out.inputs.find((i) => i.what === 'kernel mem=')!.from).toMatch(/kdump-mem256m\.txt:\d+$/);
  });

  it('the p2m is decided before mem=: still Remapped 131207 page(s)', () => {
    expect(r.out.messages).toContain('Remapped 131207 page(s)');
  });

  it.each([
    ['RAM straddling mem= is cut there, other types stay', 0x150000, [[0, 0x9f000, E820_RAM], [0x9f000, 0x61000, E820_RESERVED], [0x100000, 0x50000, E820_RAM]]],
    ['mem= above all RAM removes nothing', 0x10000000, [[0, 0x9f000, E820_RAM], [0x9f000, 0x61000, E820_RESERVED], [0x100000, 0x100000, E820_RAM]]],
  ])('%s', (_n, mem, want) => {
    const map = [
      { addr: 0, size: 0x9f000, type: E820_RAM },
      { addr: 0x9f000, size: 0x61000, type: E820_RESERVED },
      { addr: 0x100000, size: 0x100000, type: E820_RAM },
    ];
    expect(removeRamFrom(map, mem).e820.map((e) => [e.addr, e.size, e.type])).toEqual(want);
  });
});
