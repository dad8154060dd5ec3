// parseBootLog against the real Latitude E6420 log (xen-devel attachment, Xen 4.14-unstable + Linux 4.19)
// and synthetic fixtures imitating formats read in Xen's and Linux's printk calls (test/fixtures/logs/*,
// each says what it imitates; docs/spec-notes/boot-log.md). Expected values are worked out by hand from the
// log text, never from the parser.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { dom0PagesFromLog, parseBootLog, type BootLog } from '../src/inputs/boot-log.js';
import { looksQuotedPrintable } from '../src/inputs/boot-log-lines.js';
import { memparse } from '../src/inputs/boot-log-cmdline.js';
import { suggestProfile } from '../src/inputs/boot-log-profile.js';
import { InputError } from '../src/common/errors.js';
import { type E820Entry } from '../src/inputs/e820.js';
import { E820_ACPI, E820_NVS, E820_RAM, E820_RESERVED, E820_UNUSABLE } from '../src/xen/abi.js';

const FIXTURES = path.join(__dirname, 'fixtures', 'logs');
const read = (name: string): string => fs.readFileSync(path.join(FIXTURES, name), 'utf8');
const parse = (name: string): BootLog => parseBootLog(read(name), name);
const e = (addr: number, size: number, type: number): E820Entry => ({ addr, size, type });
/** An entry from an inclusive [start, last] range, as Xen 4.14+ and Linux print them. */
const incl = (start: number, last: number, type: number): E820Entry => e(start, last - start + 1, type);

const LATITUDE = 'latitude-e6420-xen4.14-linux4.19.txt';
const EFI = 'efi-xen4.16-datems.txt';
const MAIL = 'mail-archive-qp.txt';
const SERIAL = 'serial-xen4.17-linux6.1.txt';
const DOM0_38 = 'dom0-linux3.8-xen4.2.txt';

/** The spec's worked-example host (xen-dom0-mem.md), old Xen form, for small inline logs. */
import { SEED_HOST_LINES } from './helpers/seed-host.js';

const WORKED_MAP = ['(XEN) Xen-e820 RAM map:', ...SEED_HOST_LINES];
/** The same map in Xen 4.14+'s inclusive form. */
const WORKED_MAP_NEW = [
  '(XEN) Xen-e820 RAM map:',
  '(XEN)  [0000000000000000, 000000000009fbff] (usable)',
  '(XEN)  [000000000009fc00, 000000000009ffff] (reserved)',
  '(XEN)  [00000000000f0000, 00000000000fffff] (reserved)',
  '(XEN)  [0000000000100000, 000000007ffdefff] (usable)',
  '(XEN)  [000000007ffdf000, 000000007fffffff] (reserved)',
  '(XEN)  [00000000b0000000, 00000000bfffffff] (reserved)',
  '(XEN)  [00000000feffc000, 00000000feffffff] (reserved)',
  '(XEN)  [00000000fffc0000, 00000000ffffffff] (reserved)',
  '(XEN)  [0000000100000000, 000000017fffffff] (usable)',
];
const log = (...lines: string[]): string => lines.join('\n');
const parseText = (text: string): BootLog => parseBootLog(text, 'pasted.txt');

/** The InputError message `fn` throws (fails the test if it does not throw one). */
function inputError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return (err as Error).message;
  }
  throw new Error('expected an InputError');
}

describe('the real Latitude E6420 log (Xen 4.14-unstable, Linux 4.19)', () => {
  const b = parse(LATITUDE);

  it('takes the 18 Xen-e820 entries (old end-exclusive form) as the host map', () => {
    expect(b.mapKind).toBe('xen-e820');
    expect(b.hostE820!.line).toBe(10);
    expect(b.hostE820!.text).toBe('(XEN) Xen-e820 RAM map:');
    expect(b.hostE820!.value).toHaveLength(18);
  });

  it.each([
    ['first', 0, e(0x0, 0x9a800, E820_RAM)],
    ['second', 1, e(0x9a800, 0xa0000 - 0x9a800, E820_RESERVED)],
    ['ACPI NVS', 11, e(0xca9e7000, 0xcabe7000 - 0xca9e7000, E820_NVS)],
    ['ACPI data', 12, e(0xcabe7000, 0xcabff000 - 0xcabe7000, E820_ACPI)],
    ['last', 17, e(0x100000000, 0x42e000000 - 0x100000000, E820_RAM)],
  ])('host entry %s (index %i)', (_what, index, entry) => {
    expect(b.hostE820!.value[index]).toEqual(entry);
  });

  it("parses the kernel's 20 'Xen:' lines (inclusive ends)", () => {
    expect(b.kernelE820!.line).toBe(33);
    expect(b.kernelE820!.value).toHaveLength(20);
    expect(b.kernelE820!.value[0]).toEqual(incl(0x0, 0x99fff, E820_RAM));
    expect(b.kernelE820!.value[1]).toEqual(incl(0x9a800, 0xfffff, E820_RESERVED));
    expect(b.kernelE820!.value[19]).toEqual(incl(0x100000000, 0x135af1fff, E820_RAM));
  });

  it.each([
    ['physMachPages (0x800000 bytes / 8)', () => b.physMachPages, 0x100000, 31],
    ['dom0AllocPages', () => b.dom0AllocPages, 1014568, 30],
    ['released', () => b.messages.released, 0, 32],
    ['remapped', () => b.messages.remapped, 219890, 58],
    ['p2mAreaSize', () => b.messages.p2mAreaSize, 0xa00000, 57],
  ])('%s', (_what, get, value, line) => {
    expect(get()).toMatchObject({ value, line });
  });

  it('reads both last_pfn lines in order', () => {
    expect(b.messages.lastPfn.map((s) => [s.value, s.line])).toEqual([
      [0x135af2, 54],
      [0xcac00, 55],
    ]);
  });

  it('has no dom0_mem, no command lines, no versions; no 3.x-only messages', () => {
    expect(b.dom0Mem).toBeNull();
    expect(b.xenCmdline).toBeNull();
    expect(b.kernelCmdline).toBeNull();
    expect(b.kernelVersion).toBeNull();
    expect(b.suggestedProfile).toBeNull();
    expect(b.xenVersion).toBeNull();
    expect(b.messages.identity).toBeUndefined();
    expect(b.messages.releasedPages38).toBeUndefined();
  });

  it('the Dom0 alloc. chunk is 0x414000000-0x418000000, 16384 pages; no ramdisk line kept', () => {
    expect(b.dom0Alloc!.value).toEqual({
      start: 0x414000000,
      end: 0x418000000,
      chunkPages: 16384,
      toAllocate: 1014568,
      initrdPages: null,
    });
  });

  it('dom0PagesFromLog uses the Phys-Mach map and finds Dom0 alloc. consistent with it', () => {
    const r = dom0PagesFromLog(b);
    expect(r.nrPages).toMatchObject({ value: 0x100000, line: 31 });
    expect(r.why).toMatch(/^Phys-Mach map \(line 31\)/);
    // 0x100000 - 1014568 - 16384 = 17624 pages assigned before the count (the initrd)
    expect(r.why).toContain('+ 17624 assigned before');
  });

  it('without the Phys-Mach line, Dom0 alloc. gives a lower bound: 1014568 + 16384', () => {
    const text = read(LATITUDE).replace(/^\(XEN\)\s+Phys-Mach map:.*$/m, '');
    const r = dom0PagesFromLog(parseText(text));
    expect(r.nrPages).toMatchObject({ value: 1014568 + 16384, line: 30 });
    expect(r.why).toContain('lower bound');
  });
});

describe('EFI boot, Xen 4.16, console_timestamps=datems (synthetic)', () => {
  const b = parse(EFI);

  it('takes the EFI RAM map, end-inclusive entries under raw TSC stamps', () => {
    expect(b.mapKind).toBe('efi');
    expect(b.hostE820!.line).toBe(15);
    expect(b.hostE820!.value).toHaveLength(13);
    expect(b.hostE820!.value[0]).toEqual(e(0, 0xa0000, E820_RAM));
    expect(b.hostE820!.value[5]).toEqual(e(0x76f90000, 0x771a0000 - 0x76f90000, E820_NVS));
    expect(b.hostE820!.value[11]).toEqual(e(0x100000000, 0x87f380000 - 0x100000000, E820_RAM));
    expect(b.hostE820!.value[12]).toEqual(e(0x87f380000, 0x880000000 - 0x87f380000, E820_RESERVED));
  });

  it('reads dom0_mem, the banner and the dated Dom0 lines', () => {
    expect(b.dom0Mem).toMatchObject({ value: '4096M,max:4096M', line: 13 });
    expect(b.xenCmdline!.value).toMatch(/^placeholder dom0_mem=4096M,max:4096M dom0_max_vcpus=4 /);
    expect(b.xenVersion).toMatchObject({ value: '4.16.0', line: 10 });
    expect(b.dom0KernelBits).toMatchObject({ value: 64, line: 33 });
    expect(b.physMachPages).toMatchObject({ value: 0x100000, line: 39 });
    expect(b.dom0AllocPages).toMatchObject({ value: 1025442, line: 35 });
    // 0x86fffed25 - 0x86e5a1000 = 0x1a5dd25 bytes -> 6750 pages
    expect(b.dom0Alloc!.value.initrdPages).toBe(6750);
    expect(b.kernelE820).toBeNull();
    expect(b.kernelVersion).toBeNull();
  });

  it('without the Phys-Mach line, Dom0 alloc. + chunk + initrd gives nr_pages exactly', () => {
    const text = read(EFI).replace(/^\(XEN\) \[[^\]]+\]\s+Phys-Mach map:.*$/m, '');
    const r = dom0PagesFromLog(parseText(text));
    expect(r.nrPages).toMatchObject({ value: 1025442 + 16384 + 6750, line: 35 });
    expect(r.nrPages!.value).toBe(0x100000);
    expect(r.why).not.toContain('lower bound');
  });
});

describe('mail archive copy: quoted-printable, "> > >" quoting, hard-wrapped at 72 (synthetic)', () => {
  const b = parse(MAIL);

  it('decodes, unquotes and rejoins the host map (wrapped "(reserved)" and "(ACPI NVS)" entries)', () => {
    expect(b.mapKind).toBe('xen-e820');
    expect(b.hostE820!.line).toBe(34);
    expect(b.hostE820!.value).toHaveLength(12);
    expect(b.hostE820!.value[1]).toEqual(incl(0x9d800, 0x9ffff, E820_RESERVED));
    expect(b.hostE820!.value[7]).toEqual(incl(0x9bfef000, 0x9bffefff, E820_ACPI));
    expect(b.hostE820!.value[8]).toEqual(incl(0x9bfff000, 0x9bffffff, E820_NVS));
    expect(b.hostE820!.value[11]).toEqual(incl(0x100000000, 0x25fffffff, E820_RAM));
  });

  it('finds dom0_mem on the continuation line of the wrapped Xen command line', () => {
    expect(b.xenCmdline!.line).toBe(30);
    expect(b.xenCmdline!.value).toBe(
      'placeholder no-real-mode edd=off console=com1 com1=115200,8n1 console_timestamps=raw dom0_mem=1536M,max:1536M dom0_max_vcpus=2 loglvl=all',
    );
    expect(b.dom0Mem).toMatchObject({ value: '1536M,max:1536M', line: 33 });
  });

  it('rejoins Linux\'s "ACPI" / "data" split and the wrapped Dom0 alloc. and Phys-Mach lines', () => {
    expect(b.kernelE820!.value).toHaveLength(12);
    expect(b.kernelE820!.value[7]).toEqual(incl(0x9bfef000, 0x9bffefff, E820_ACPI));
    expect(b.kernelE820!.value[8]).toEqual(incl(0x9bfff000, 0x9bffffff, E820_NVS));
    expect(b.kernelE820!.value[5]).toEqual(incl(0x60100000, 0x9b6fefff, E820_UNUSABLE));
    expect(b.dom0AllocPages).toMatchObject({ value: 366454, line: 59 });
    expect(b.physMachPages).toMatchObject({ value: 0x300000 / 8, line: 61 });
  });

  it('reads the kernel side', () => {
    expect(b.kernelVersion).toMatchObject({ value: '5.10.0-10-amd64', line: 63 });
    expect(b.suggestedProfile).toBe('linux-4.x');
    expect(b.kernelCmdline!.value).toBe(
      'BOOT_IMAGE=/boot/vmlinuz-5.10.0-10-amd64 placeholder root=UUID=0b7e4d55-4c7e-4f0f-9a1b-5f3e6c2d1a90 ro console=hvc0 earlyprintk=xen',
    );
    expect(b.messages.released).toMatchObject({ value: 0, line: 71 });
    expect(b.messages.remapped).toMatchObject({ value: 611, line: 96 });
    expect(b.messages.p2mAreaSize!.value).toBe(0x40000000);
    expect(b.messages.lastPfn.map((s) => s.value)).toEqual([0x60100]);
    expect(b.xenVersion!.value).toBe('4.15.1');
  });

  it('says what it did', () => {
    expect(b.notes).toContain('decoded quoted-printable (mail transfer encoding)');
    expect(b.notes.some((n) => /^removed mail quoting/.test(n))).toBe(true);
    expect(b.notes.some((n) => /^rejoined \d+ hard-wrapped line\(s\): 30\+32, 30\+33, /.test(n))).toBe(true);
  });
});

describe('serial console: GRUB, Xen 4.17 and Linux 6.1 interleaved (synthetic)', () => {
  const b = parse(SERIAL);

  it('separates Xen\'s and the kernel\'s "Command line:"', () => {
    expect(b.xenCmdline!.line).toBe(19);
    expect(b.dom0Mem).toMatchObject({ value: '2048M,max:2048M', line: 19 });
    expect(b.kernelCmdline).toMatchObject({ value: 'placeholder root=/dev/mapper/vg-root ro console=hvc0 mem=2G', line: 61 });
    expect(b.kernelMem).toMatchObject({ value: 2 * 2 ** 30, line: 61 });
  });

  it('reads both sides', () => {
    expect(b.hostE820!.value).toHaveLength(8);
    expect(b.hostE820!.value[3]).toEqual(incl(0x100000, 0xbffdafff, E820_RAM));
    expect(b.kernelE820!.value).toHaveLength(8);
    expect(b.kernelE820!.value[2]).toEqual(incl(0x100000, 0x80060fff, E820_RAM));
    expect(b.physMachPages).toMatchObject({ value: 0x80000, line: 47 });
    expect(b.dom0Alloc!.value).toMatchObject({ toAllocate: 497395, chunkPages: 16384, initrdPages: 10509 });
    expect(b.messages.remapped!.value).toBe(97);
    expect(b.messages.released!.value).toBe(0);
    expect(b.messages.p2mAreaSize!.value).toBe(0x40000000);
    expect(b.messages.lastPfn.map((s) => s.value)).toEqual([0x80061]);
    expect(b.kernelVersion!.value).toBe('6.1.0-18-amd64');
    expect(b.suggestedProfile).toBe('linux-6.1');
    expect(b.xenVersion).toMatchObject({ value: '4.17.3-pre', line: 16 });
  });
});

describe('3.8-era dom0: `xl dmesg` (Xen 4.2) then `dmesg` (Linux 3.8.13) (synthetic)', () => {
  const b = parse(DOM0_38);

  it('reads the 3.8 release and identity messages', () => {
    expect(b.messages.releasedPages38).toMatchObject({ value: 97, line: 68 });
    expect(b.messages.identity).toMatchObject({ value: 524418, line: 69 });
    expect(b.messages.released).toBeUndefined();
    expect(b.messages.remapped).toBeUndefined();
    expect(b.messages.p2mAreaSize).toBeUndefined();
    expect(b.messages.lastPfn.map((s) => s.value)).toEqual([0x40061]);
  });

  it("sizes dom0 from a Phys-Mach map in the kernel's own address space", () => {
    // ffffffff84b3b000 - ffffffff8493b000 = 0x200000 bytes = 0x40000 entries
    expect(b.physMachPages).toMatchObject({ value: 0x40000, line: 49 });
    // 234995 + 16384 + PFN_UP(0x17ffff600 - 0x17d5f3000 = 0x2a0c600) = 234995 + 16384 + 10765 = 0x40000
    expect(b.dom0Alloc!.value).toMatchObject({ toAllocate: 234995, chunkPages: 16384, initrdPages: 10765 });
    expect(dom0PagesFromLog(b).nrPages!.value).toBe(0x40000);
  });

  it('reads the rest', () => {
    expect(b.hostE820!.value).toHaveLength(9);
    expect(b.hostE820!.value[3]).toEqual(e(0x100000, 0x7ffdf000 - 0x100000, E820_RAM));
    expect(b.kernelE820!.value).toHaveLength(9);
    expect(b.kernelE820!.value[3]).toEqual(incl(0x40061000, 0x7ffdefff, E820_UNUSABLE));
    expect(b.dom0Mem).toMatchObject({ value: '1024M,max:1024M', line: 23 });
    expect(b.kernelVersion!.value).toBe('3.8.13-16.2.1.el6uek.x86_64');
    expect(b.suggestedProfile).toBe('linux-3.8');
    expect(b.xenVersion).toMatchObject({ value: '4.2.2-23.el6', line: 20 });
    expect(b.kernelCmdline!.line).toBe(64);
  });
});

describe('prefixes', () => {
  it.each([
    ['raw TSC stamp', '(XEN) [0000001b4a3297f3] '],
    ['date stamp', '(XEN) [2022-01-18 10:40:41] '],
    ['datems stamp', '(XEN) [2022-01-18 10:40:41.297] '],
    ['boot stamp', '(XEN) [   12.345678] '],
    ['xenconsoled stamp before (XEN)', '[2022-01-18 10:40:41] (XEN) '],
    ['no stamp', '(XEN) '],
  ])("Xen line with %s", (_what, prefix) => {
    const b = parseText(
      log(
        `${prefix}Command line: dom0_mem=1G,max:1G`,
        `${prefix}Xen-e820 RAM map:`,
        `${prefix} [0000000000000000, 000000000009fbff] (usable)`,
        `${prefix} [0000000000100000, 000000003fffffff] (usable)`,
        `${prefix} Phys-Mach map: 0000008000000000->0000008000200000`,
      ),
    );
    expect(b.hostE820!.value).toEqual([incl(0, 0x9fbff, E820_RAM), incl(0x100000, 0x3fffffff, E820_RAM)]);
    expect(b.dom0Mem!.value).toBe('1G,max:1G');
    expect(b.physMachPages!.value).toBe(0x40000);
  });

  it.each([
    ['dmesg', '[    2.093956] '],
    ['dmesg -T', '[Tue Jan 18 10:40:41 2022] '],
    ['dmesg -x', 'kern  :info  : [    2.093956] '],
    ['printk caller id', '[    2.093956] [    T1] '],
    ['console loglevel', '<6>[    2.093956] '],
    ['syslog', 'Jan 18 10:40:41 xenhost kernel: [    2.093956] '],
    ['syslog without dmesg stamp', 'Jan  8 10:40:41 xenhost kernel: '],
    ['ISO syslog', '2022-01-18T10:40:41.123456+01:00 xenhost kernel: '],
    ['none', ''],
  ])('Linux line with %s prefix', (_what, prefix) => {
    const b = parseText(log(...WORKED_MAP, `${prefix}Remapped 219890 page(s)`, `${prefix}Linux version 4.19.86 (user@host) #1 SMP`));
    expect(b.messages.remapped!.value).toBe(219890);
    expect(b.kernelVersion!.value).toBe('4.19.86');
  });

  it('ignores guest console lines "(d1) ..."', () => {
    const b = parseText(log(...WORKED_MAP, '(d1) Linux version 6.1.0 (x) #1', '(d1) Remapped 5 page(s)'));
    expect(b.kernelVersion).toBeNull();
    expect(b.messages.remapped).toBeUndefined();
  });

  it.each([
    ['with a Xen-only option: Xen\'s', 'Command line: dom0_mem=2G loglvl=all', 'xen'],
    ['without one: the kernel\'s', 'Command line: root=/dev/sda1 ro mem=4G', 'linux'],
  ])('a bare "Command line:" %s', (_what, line, owner) => {
    const b = parseText(log(...WORKED_MAP, line));
    expect(owner === 'xen' ? b.xenCmdline?.line : b.kernelCmdline?.line).toBe(11);
    expect(owner === 'xen' ? b.kernelCmdline : b.xenCmdline).toBeNull();
  });
});

describe('mail copies', () => {
  it.each([
    ['"> "', '> '],
    ['">> "', '>> '],
    ['"> > > "', '> > > '],
    ['" > " (indented)', ' > '],
  ])('removes %s quoting', (_what, q) => {
    const b = parseText(WORKED_MAP.map((l) => q + l).join('\n'));
    expect(b.hostE820!.value).toHaveLength(9);
  });

  it.each([
    ['a Content-Transfer-Encoding header', 'Content-Transfer-Encoding: quoted-printable\n\nloglvl=all', true],
    ['=3D with only valid escapes and soft breaks', '(XEN) Command line: dom0_mem=3D1G=\n loglvl=3Dall', true],
    ['a plain command line (com1=115200 has "=11")', '(XEN) Command line: com1=115200,8n1 dom0_mem=1G', false],
    ['=3D next to a bare "="', 'a=3D b=c', false],
    ['no =3D at all', 'Released 0 page(s)', false],
  ])('looksQuotedPrintable: %s', (_what, text, qp) => {
    expect(looksQuotedPrintable(text)).toBe(qp);
  });

  it('decodes =3D, =20 and soft breaks, and joins an e820 line cut by a soft break', () => {
    const text = log(
      '(XEN) Command line: no-real-mode dom0_mem=3D512M,max:512M loglvl=3Dall=20',
      '(XEN) Xen-e820 RAM map:',
      '(XEN)  [0000000000000000, 000000000009fbff] (us=',
      'able)',
      '(XEN)  [0000000000100000, 000000001fffffff] (usable)',
    );
    const b = parseText(text);
    expect(b.xenCmdline!.value).toBe('no-real-mode dom0_mem=512M,max:512M loglvl=all');
    expect(b.dom0Mem!.value).toBe('512M,max:512M');
    expect(b.hostE820!.value).toEqual([incl(0, 0x9fbff, E820_RAM), incl(0x100000, 0x1fffffff, E820_RAM)]);
  });

  it('decodes =XX escapes as UTF-8 bytes', () => {
    const b = parseText(log(...WORKED_MAP, '[    0.000000] Command line: root=3D/dev/sda1 label=3D=C3=A4=E2=82=AC'));
    expect(b.kernelCmdline!.value).toBe('root=/dev/sda1 label=\u00e4\u20ac');
  });

  it.each([
    ['an entry wrapped before its type', ['(XEN)  0000000000100000 - 0000000020000000', '(usable)']],
    ['an entry wrapped inside the range', ['(XEN)  [0000000000100000,', '000000001fffffff] (usable)']],
    ['a Linux entry wrapped inside "ACPI NVS"', ['[    0.000000] Xen: [mem 0x0000000000100000-0x000000001fffffff] ACPI', 'NVS']],
  ])('rejoins %s', (_what, [a, b]) => {
    const parsed = parseText(log('(XEN) Xen-e820 RAM map:', '(XEN)  0000000000000000 - 000000000009fc00 (usable)', a!, b!));
    const want = /NVS/.test(b!) ? E820_NVS : E820_RAM;
    const map = /Xen:/.test(a!) ? parsed.kernelE820!.value : parsed.hostE820!.value;
    expect(map[map.length - 1]).toEqual(e(0x100000, 0x1ff00000, want));
  });

  it('does not join a line that can stand alone, nor a prose line onto a command line', () => {
    const b = parseText(
      log(...WORKED_MAP, '(XEN) Command line: dom0_mem=1G', 'see the attached config', 'Released 3 page(s)'),
    );
    expect(b.xenCmdline!.value).toBe('dom0_mem=1G');
    expect(b.messages.released!.value).toBe(3);
    expect(b.notes.some((n) => n.startsWith('rejoined'))).toBe(false);
  });
});

describe('host map choice', () => {
  it('the same map printed twice (old and new form) is one map', () => {
    const b = parseText(log(...WORKED_MAP, 'second paste:', ...WORKED_MAP_NEW));
    expect(b.hostE820!.line).toBe(1);
    expect(b.hostE820!.value).toHaveLength(9);
    expect(b.notes).toContain('host map printed 2 times (lines 1, 12), identical');
  });

  it("skips e820-verbose's \"Initial\" map", () => {
    const b = parseText(log('(XEN) Initial Xen-e820 RAM map:', '(XEN)  0000000000000000 - 00000000000a0000 (usable)', ...WORKED_MAP));
    expect(b.hostE820!.line).toBe(3);
    expect(b.hostE820!.value[0]).toEqual(e(0, 0x9fc00, E820_RAM));
  });

  it("falls back to a native boot's BIOS-e820 lines, with a note", () => {
    const b = parseText(
      log(
        '[    0.000000] BIOS-provided physical RAM map:',
        '[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable',
        '[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x000000007ffdefff] usable',
      ),
    );
    expect(b.mapKind).toBe('linux-bios');
    expect(b.hostE820!.value).toEqual([incl(0, 0x9fbff, E820_RAM), incl(0x100000, 0x7ffdefff, E820_RAM)]);
    expect(b.notes.some((n) => n.includes("kernel's BIOS-e820 lines"))).toBe(true);
  });

  it('ignores an entry-like line far from any map, with a note', () => {
    const b = parseText(log(...WORKED_MAP, '(XEN) boot', '(XEN)  00000000deadbeef - garbage here', '(XEN) more'));
    expect(b.hostE820!.value).toHaveLength(9);
    expect(b.notes).toContain('line 12: looks like an e820 entry but is not part of a memory map; ignored');
  });

  it('keeps the first of two different command lines and notes the second', () => {
    const b = parseText(log(...WORKED_MAP, '(XEN) Command line: dom0_mem=1G', '(XEN) Command line: dom0_mem=2G'));
    expect(b.dom0Mem!.value).toBe('1G');
    expect(b.notes).toContain('Xen command line at line 12 differs from line 11; using line 11');
  });

  it('joins repeated dom0_mem= options in order, as Xen parses each', () => {
    const b = parseText(log(...WORKED_MAP, '(XEN) Command line: dom0_mem=1G loglvl=all dom0_mem=max:2G'));
    expect(b.dom0Mem!.value).toBe('1G,max:2G');
  });

  it('32-bit dom0: Phys-Mach entries are 4 bytes', () => {
    const b = parseText(
      log(
        ...WORKED_MAP,
        '(XEN)  Dom0 kernel: 32-bit, PAE, lsb, paddr 0x100000 -> 0xb2c000',
        '(XEN)  Phys-Mach map: 00000000c1a2b000->00000000c1b2b000',
      ),
    );
    expect(b.physMachPages!.value).toBe(0x100000 / 4);
  });
});

describe('errors: one line naming the input line', () => {
  it.each([
    ['no map at all', log('(XEN) Command line: dom0_mem=1G', 'Released 0 page(s)'), /^pasted\.txt: no memory map found: expected 'Xen-e820 RAM map:' or 'EFI RAM map:' followed by entries$/],
    [
      "only the kernel's map",
      log('[    0.000000] BIOS-provided physical RAM map:', '[    0.000000] Xen: [mem 0x0000000000000000-0x000000000009ffff] usable'),
      /^pasted\.txt: no memory map found: .*\(the kernel's 'Xen: \[mem \.\.\.\]' lines at line 1 are dom0's own view/,
    ],
    [
      'two conflicting maps (two boots)',
      log(...WORKED_MAP, '(XEN) Xen version 4.17.0 (x@y) (gcc) debug=n', '(XEN) Xen-e820 RAM map:', '(XEN)  [0000000000000000, 000000000009fbff] (usable)'),
      /^pasted\.txt: two conflicting memory maps at lines 1 and 12; give one boot$/,
    ],
    [
      'overlapping ranges',
      log('(XEN) Xen-e820 RAM map:', '(XEN)  0000000000000000 - 00000000000a0000 (usable)', '(XEN)  0000000000090000 - 0000000000100000 (reserved)'),
      /^pasted\.txt: memory map entries at lines 2 and 3 overlap \(0x0-0xa0000 and 0x90000-0x100000, end exclusive\)$/,
    ],
    [
      'unsorted ranges',
      log('(XEN) Xen-e820 RAM map:', '(XEN)  0000000000100000 - 0000000000200000 (usable)', '(XEN)  0000000000000000 - 00000000000a0000 (usable)'),
      /^pasted\.txt: memory map entries at lines 2 and 3 are out of order/,
    ],
    [
      'an unparseable dom0_mem',
      log(...WORKED_MAP, '(XEN) Command line: loglvl=all dom0_mem=1024Q'),
      /^pasted\.txt:11: dom0_mem: cannot parse item 1 "1024Q"/,
    ],
    [
      'an unparseable dom0_mem on a wrapped continuation line',
      log(...WORKED_MAP, '> (XEN) Command line: placeholder loglvl=all', '> dom0_mem=max:-'),
      /^pasted\.txt:12: dom0_mem: /,
    ],
    [
      'a damaged entry inside the map',
      log('(XEN) Xen-e820 RAM map:', '(XEN)  0000000000000000 - 000000000009fc00 (usable)', '(XEN)  000000000009fc00 - 00000000000a0000 (bogus)'),
      /^pasted\.txt:3: cannot parse e820 line .*unknown type "\(bogus\)"/,
    ],
    [
      'a Phys-Mach range that is not whole entries',
      log(...WORKED_MAP, '(XEN)  Phys-Mach map: 0000008000000000->0000008000000004'),
      /^pasted\.txt:11: Phys-Mach map spans 0x4 bytes, not a multiple of 8 \(one entry per dom0 page\)$/,
    ],
    [
      'a reversed Phys-Mach range',
      log(...WORKED_MAP, '(XEN)  Phys-Mach map: 0000008000800000->0000008000000000'),
      /^pasted\.txt:11: Phys-Mach map ends before it starts$/,
    ],
  ])('%s', (_what, text, message) => {
    const msg = inputError(() => parseText(text));
    expect(msg).toMatch(message);
    expect(msg).not.toContain('\n');
  });
});

describe('dom0PagesFromLog: computed when the log has neither Phys-Mach nor Dom0 alloc.', () => {
  // xen-dom0-mem.md worked example: avail = 0xfd77f on this host.
  it.each([
    ['dom0_mem=1g,max:1g', '(XEN) Command line: dom0_mem=1g,max:1g', 0x40000, 11],
    ["no dom0_mem: Xen's default avail - min(avail/16, 128 MiB)", '(XEN) Command line: loglvl=all', 0xfd77f - 0x8000, 1],
  ])('%s', (_what, cmdline, pages, line) => {
    const r = dom0PagesFromLog(parseText(log(...WORKED_MAP, cmdline)));
    expect(r.nrPages).toMatchObject({ value: pages, line });
    expect(r.why).toMatch(/^computed: /);
  });
});

describe('suggestProfile (mainline cut-offs: remap 3.18, linear list 3.19, max_pfn fix 4b511d5bfa74 in 5.15)', () => {
  it.each([
    ['2.6.32-5-xen-amd64', 'linux-3.8'],
    ['3.8.13-16.2.1.el6uek.x86_64', 'linux-3.8'],
    ['3.17.8', 'linux-3.8'],
    ['3.18.30', 'linux-3.18'],
    ['3.19.8', 'linux-4.x'],
    ['4.4.155', 'linux-4.x'],
    ['4.19.86', 'linux-4.x'],
    ['5.13.19', 'linux-4.x'],
    ['5.14.21', 'linux-4.x'],
    ['5.15.0', 'linux-6.1'],
    ['6.1.0-18-amd64', 'linux-6.1'],
    ['6.4.16', 'linux-6.1'],
    ['6.5.0', 'linux-6.5'], // 9338c2233b97, the dom0 iBFT window (docs/spec-notes/xen-dom0-map.md)
    ['6.12.9', 'linux-6.5'],
  ])('%s -> %s', (release, profile) => {
    expect(suggestProfile(release).profile).toBe(profile);
  });

  it.each([
    ['5.10.84', true],
    ['4.19.86', true],
    ['5.13.19', false],
    ['3.19.8', false],
  ])('%s: stable backport note %s', (release, noted) => {
    expect(suggestProfile(release).notes.some((n) => n.includes('4b511d5bfa74'))).toBe(noted);
  });
});

describe('memparse (kernel mem=)', () => {
  it.each([
    ['4G', 4n * 2n ** 30n],
    ['512M', 512n * 2n ** 20n],
    ['2048m', 2048n * 2n ** 20n],
    ['0x10000000', 0x10000000n],
    ['1T', 2n ** 40n],
    ['64k', 65536n],
    ['0', 0n],
    ['010M', 8n * 2n ** 20n],
    ['nopentium', null],
    ['4GB', null],
  ])('%s', (text, bytes) => {
    expect(memparse(text)).toBe(bytes);
  });
});
