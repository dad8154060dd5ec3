// xl domU configs and the memory map libxl gives a 64-bit PV domU (src/inputs/xl-config.ts,
// src/emulate/kernel/libxl-e820.ts). Every expected value below is derived by hand from Xen RELEASE-4.17.0's
// libxl_x86.c (e820_sanitize, libxl__arch_domain_create), libxl_dom.c (libxl__build_pre,
// libxl__build_dom), xg_dom_core.c (xc_dom_mem_init) and xl_parse.c, or copied from the real domU in
// /work/shared/real-xen/pvplain (pvplain.cfg, domU-e820-lines.txt; Xen 4.17.7, Linux 6.1).
import { describe, expect, it } from 'vitest';
import { InputError } from '../src/common/errors.js';
import { type E820Entry } from '../src/inputs/e820.js';
import { parseE820, sanitizeE820 } from '../src/inputs/e820.js';
import { parseXlConfig, parseXlSettings, type XlConfig } from '../src/inputs/xl-config.js';
import { buildDomUMemoryMap, e820Sanitize, LIBXL_MAXMEM_CONSTANT } from '../src/emulate/kernel/libxl-e820.js';
import { ISA_END_ADDRESS, ISA_START_ADDRESS, nonRamRuns } from '../src/emulate/kernel/memory-setup.js';
import { E820_NVS, E820_RAM, E820_RESERVED, E820_UNUSABLE, PAGE_SIZE } from '../src/xen/abi.js';

const e = (addr: number, size: number, type: number): E820Entry => ({ addr, size, type });
const span = (start: number, end: number, type: number): E820Entry => e(start, end - start, type);
const GiB4 = 2 ** 32;

/** /work/shared/real-xen/pvplain/pvplain.cfg, verbatim. */
const PVPLAIN_CFG = `# Plain small PV domU: no e820_host, memory == maxmem.
name    = "pvplain"
type    = "pv"
kernel  = "/guest/vmlinuz-6.1.0-56-amd64"
ramdisk = "/guest/initrd-domU.cpio.gz"
extra   = "console=hvc0 loglevel=8 log_buf_len=1M init_on_free=1"
memory  = 96
maxmem  = 96
vcpus   = 1
on_crash = "preserve"
`;

/** The e820 lines of /work/shared/real-xen/pvplain/domU-e820-lines.txt (the guest's "BIOS-provided" map). */
const PVPLAIN_GUEST_E820_LINES = `[    0.000000] BIOS-provided physical RAM map:
[    0.000000] Xen: [mem 0x0000000000000000-0x000000000009ffff] usable
[    0.000000] Xen: [mem 0x00000000000a0000-0x00000000000fffff] reserved
[    0.000000] Xen: [mem 0x0000000000100000-0x0000000005ffffff] usable
`;

/**
 * A host map whose low RAM ends at 0xffdd000 (a QEMU-style layout; the real host map of the spec's
 * 384 MiB e820_host domU is not available, only that its first hole started at pfn 0xffdd).
 */
const HOST_FFDD = parseE820(
  [
    '(XEN)  0000000000000000 - 000000000009fc00 (usable)',
    '(XEN)  000000000009fc00 - 00000000000a0000 (reserved)',
    '(XEN)  00000000000f0000 - 0000000000100000 (reserved)',
    '(XEN)  0000000000100000 - 000000000ffdd000 (usable)',
    '(XEN)  000000000ffdd000 - 0000000010000000 (reserved)',
    '(XEN)  00000000feffc000 - 00000000ff000000 (reserved)',
    '(XEN)  00000000fffc0000 - 0000000100000000 (reserved)',
    '(XEN)  0000000100000000 - 0000000130000000 (usable)',
  ].join('\n'),
  'host-ffdd',
);

function cfg(text: string): XlConfig {
  return parseXlConfig(text, 'test.cfg');
}

function inputError(fn: () => unknown): InputError {
  try {
    fn();
  } catch (err) {
    if (err instanceof InputError) return err;
    throw err;
  }
  throw new Error('expected an InputError');
}

/** What the guest kernel does with the map before walking it (sort/merge), then the non-RAM pfn runs. */
function guestHoles(map: E820Entry[]) {
  return nonRamRuns(sanitizeE820(map));
}

// ---- parsing ------------------------------------------------------------------------------------

describe('parseXlConfig: xl syntax and the memory keys', () => {
  type Want = Partial<Pick<XlConfig, 'name' | 'memory' | 'maxmem' | 'e820Host' | 'e820HostSetting' | 'pci'>>;
  it.each<[string, string, Want]>([
    ['the real pvplain.cfg', PVPLAIN_CFG, { name: 'pvplain', memory: 96, maxmem: 96, e820Host: false, e820HostSetting: null, pci: [] }],
    ['maxmem unset → memory (xl_parse.c)', 'name = "a"\nmemory = 384\n', { memory: 384, maxmem: 384 }],
    ['memory unset → maxmem (libxl: target := max)', 'name = "a"\nmaxmem = 512\n', { memory: 512, maxmem: 512 }],
    ['neither → libxl default 32 MiB', 'name = "a"\n', { memory: 32, maxmem: 32 }],
    ['memory < maxmem', 'name = "a"\nmemory = 256\nmaxmem = 1024\n', { memory: 256, maxmem: 1024 }],
    ['hex number (strtol base 0)', 'memory = 0x180', { memory: 384 }],
    ['octal number (strtol base 0)', 'memory = 0600', { memory: 384 }],
    ['quoted number (atoms are strings)', 'memory = "384"', { memory: 384 }],
    ['last assignment wins', 'memory = 128\nmemory = 384\n', { memory: 384 }],
    ['";" separates statements', 'name = "a"; memory = 64; maxmem = 128', { name: 'a', memory: 64, maxmem: 128 }],
    ['"+=" concatenates strings', 'name = "dom"\nname += "U"\n', { name: 'domU' }],
    ["single quotes and \\' escape", "name = 'it\\'s'", { name: "it's" }],
    ['comments, blank lines, CRLF', '# c\r\n\r\nname = "a" # trailing\r\nmemory = 64\r\n', { name: 'a', memory: 64 }],
    ['comment at end of file without newline', 'memory = 64\n# end', { memory: 64 }],
    ['last line without newline', 'memory = 64', { memory: 64 }],
    ['e820_host = 1', 'e820_host = 1', { e820Host: true, e820HostSetting: true }],
    ['e820_host = 0', 'e820_host = 0', { e820Host: false, e820HostSetting: false }],
    ['e820_host = 2 (defbool: non-zero)', 'e820_host = 2', { e820Host: true }],
    ['e820_host = "1" (quoted)', 'e820_host = "1"', { e820Host: true }],
    [
      'pci list over lines, trailing comma → e820_host on',
      "pci = [ '0000:03:00.0',\n        '04:00.1@5,permissive=1', # NIC\n        'bdf=05:00.*', ]\n",
      { pci: ['0000:03:00.0', '04:00.1@5,permissive=1', 'bdf=05:00.*'], e820Host: true, e820HostSetting: null },
    ],
    ['pci forces e820_host even when 0 is written (xl 4.17 order)', "e820_host = 0\npci = ['03:00.0']", { e820Host: true, e820HostSetting: false }],
    ['pci += appends to the list', "pci = ['03:00.0']\npci += ['04:00.0']", { pci: ['03:00.0', '04:00.0'] }],
    ['empty pci list leaves e820_host off', 'pci = [ ]', { pci: [], e820Host: false }],
    [
      'unknown keys and nested lists are ignored',
      "name = 'a'\nvif = [ 'mac=00:16:3e:00:00:01,bridge=xenbr0' ]\ndisk = [ [ 'x' ], 'y' ]\ncpuid = 'host'\nmemory = 64",
      { name: 'a', memory: 64 },
    ],
    ['type = "pv"', 'type = "pv"\nmemory = 64', { memory: 64 }],
    ['type = "p" (xl matches a prefix of "pv")', 'type = "p"\nmemory = 64', { memory: 64 }],
    ['builder = "generic" (deprecated)', 'builder = "generic"\nmemory = 64', { memory: 64 }],
  ])('%s', (_d, text, want) => {
    expect(cfg(text)).toMatchObject(want);
  });

  it('keeps the settings with their lines; "+=" on a list keeps order', () => {
    const s = parseXlSettings("pci = [ 'a',\n 'b' ]\n\nmemory = 96\npci += [ 'c' ]\n", 'x.cfg');
    expect(s.get('memory')).toMatchObject({ line: 4, value: { kind: 'string', text: '96' } });
    const pci = s.get('pci')!;
    expect(pci.op).toBe('+=');
    expect(pci.value.kind === 'list' && pci.value.items.map((v) => (v.kind === 'string' ? v.text : '?'))).toEqual(['a', 'b', 'c']);
  });

  it('notes what xl would default or warn about', () => {
    const c = cfg('memory = 64\nname = [ "x" ]\n');
    expect(c.name).toBeNull();
    expect(c.notes.join('\n')).toMatch(/`name' is a list but should be a single value/);
    expect(c.notes.join('\n')).toMatch(/Domain name must be specified/);
    expect(c.notes.join('\n')).toMatch(/maxmem: not set; xl uses memory \(64 MiB\)/);
    expect(cfg('name="a"\nmemory = 512\nmaxmem = 256').notes.join('\n')).toMatch(/maxmem \(256 MiB\) < memory \(512 MiB\)/);
    expect(cfg("name='a'\ne820_host = 0\npci = ['03:00.0']").notes.join('\n')).toMatch(/e820_host = 0 is overridden/);
  });
});

describe('parseXlConfig: bad input names source:line', () => {
  it.each<[string, string, string, RegExp]>([
    ['unterminated string', 'name = "pv\nmemory = 96\n', 'test.cfg:1:', /unterminated quoted string/],
    ['a unit after the number', 'name = "a"\nmemory = 96 MiB\n', 'test.cfg:2:', /near "MiB": lexical error/],
    ['Python arithmetic', 'name = "a"\n\nmemory = 1024 - 512\n', 'test.cfg:3:', /Python/],
    ['missing "="', 'name "pv"', 'test.cfg:1:', /expected "=" or "\+="/],
    ['bare word as a value', 'name = "a"\ne820_host = true', 'test.cfg:2:', /near "true": syntax error/],
    ['empty list item', "pci = [ '01:00.0', , '02:00.0' ]", 'test.cfg:1:', /near ",": syntax error/],
    ['two values on one line', 'memory = 96 128', 'test.cfg:1:', /expected end of line/],
    ['list never closed', "name = 'a'\npci = [ '01:00.0',\n\n", 'test.cfg:4:', /<end of file>/],
    ['"+=" of a string to a list', 'pci = []\npci += "x"', 'test.cfg:2:', /can't add \[list\] to "string"/],
    ['\\x escape (always refused by xlu__cfgl_dequote)', 'name = "a\\x41"', 'test.cfg:1:', /hex numerical character escape/],
    ['memory not a number', 'name = "a"\nmemory = "lots"', 'test.cfg:2:', /"lots" is not a valid number/],
    ['memory 0', 'memory = 0', 'test.cfg:1:', /from 1 to/],
    ['memory as a list', 'memory = [ 96 ]', 'test.cfg:1:', /is a list/],
    ['memory += 1', 'memory = 96\nmemory += 1', 'test.cfg:2:', /can't use \+= with numbers/],
    ['maxmem 16 TiB', 'maxmem = 16777216', 'test.cfg:1:', /wraps from 16 TiB/],
    ['e820_host "yes"', 'e820_host = "yes"', 'test.cfg:1:', /not a valid number/],
    ['bad PCI_SPEC_STRING', "pci = [ '03:00.0', 'gpu' ]", 'test.cfg:1:', /unable to parse PCI_SPEC_STRING `gpu'/],
    ['PCI function > 7', "pci = [ '03:00.8' ]", 'test.cfg:1:', /PCI_SPEC_STRING/],
    // hostile text: bounded, one line, never a stack overflow (issue 12 item 5)
    ['lists nested 100,000 deep', `name = "a"\npci = ${'['.repeat(100_000)}${']'.repeat(100_000)}`, 'test.cfg:2:', /near "\[": lists nested more than 64 deep$/],
    ['a 10 MB double-quoted string', `name = "${'a'.repeat(10_000_000)}"`, 'test.cfg:1:', /quoted string longer than 1048576 characters$/],
    ["a 10 MB single-quoted string", `\n\nname = '${'b'.repeat(10_000_000)}'`, 'test.cfg:3:', /near "'b{59}": quoted string longer than/],
    ['a 10 MB unterminated string', `name = "${'c'.repeat(10_000_000)}`, 'test.cfg:1:', /quoted string longer than/],
  ])('%s', (_d, text, where, why) => {
    const err = inputError(() => cfg(text));
    expect(err.message.startsWith(where)).toBe(true);
    expect(err.message).toMatch(why);
    expect(err.message.length).toBeLessThan(300); // the input is never echoed whole
  });

  it.each([
    ['exactly 64 deep', 64, true],
    ['65 deep', 65, false],
  ])('list depth: %s', (_d, depth, ok) => {
    const text = `name = "a"\npci = ${'['.repeat(depth)}${']'.repeat(depth)}`;
    if (ok) expect(() => parseXlSettings(text, 'test.cfg')).not.toThrow();
    else expect(() => parseXlSettings(text, 'test.cfg')).toThrow(/lists nested more than 64 deep/);
  });

  it('a quoted string of exactly the cap is read whole, escapes included', () => {
    const body = 'x'.repeat((1 << 20) - 3) + '\\"'; // 2^20 − 1 characters between the quotes
    const v = parseXlSettings(`name = "${body}"`, 'test.cfg').get('name')!.value;
    expect(v).toMatchObject({ kind: 'string' });
    expect((v as { text: string }).text.length).toBe((1 << 20) - 3 + 1);
  });
});

describe('parseXlConfig: only PV guests are emulated', () => {
  it.each<[string, string, string, RegExp]>([
    ['type = "hvm"', 'name = "w"\ntype = "hvm"\nmemory = 2048', 'test.cfg:2:', /makes a HVM guest; only PV guests are emulated/],
    ['type = "pvh"', 'type = "pvh"', 'test.cfg:1:', /makes a PVH guest; only PV/],
    ['builder = "hvm"', 'name = "w"\n\nbuilder = "hvm"', 'test.cfg:3:', /builder = "hvm" makes a HVM guest/],
    ['type = "" (an empty prefix matches "hvm" first)', 'type = ""', 'test.cfg:1:', /HVM guest/],
    ['type and builder contradict', 'type = "pv"\nbuilder = "hvm"', 'test.cfg:2:', /Contradicting "builder" and "type"/],
    ['unknown type', 'type = "xen"', 'test.cfg:1:', /Invalid domain type xen/],
  ])('%s', (_d, text, where, why) => {
    const err = inputError(() => cfg(text));
    expect(err.message.startsWith(where)).toBe(true);
    expect(err.message).toMatch(why);
  });
});

// ---- worked case 1: the real plain PV domU ------------------------------------------------------

describe('buildDomUMemoryMap: plain PV domU (the real pvplain, memory = maxmem = 96)', () => {
  // By hand:
  //   xl_parse.c: target_memkb = 96 * 1024 = 98304; max_memkb = 98304. libxl (PV): slack_memkb = 0.
  //   libxl__arch_domain_create → xc_domain_set_memmap_limit(max_memkb + slack_memkb = 98304 KiB):
  //     one E820_RAM entry [0, 98304 << 10 = 0x6000000).
  //   libxl__build_dom → xc_dom_mem_init(98304 / 1024 = 96): nr_pages = 96 << 8 = 24576 = 0x6000.
  //   libxl__build_pre → xc_domain_setmaxmem(98304 + LIBXL_MAXMEM_CONSTANT 1024 = 99328 KiB):
  //     d->max_pages = 99328 >> 2 = 24832 = 0x6100.
  const built = buildDomUMemoryMap(cfg(PVPLAIN_CFG), null);

  it('gives one RAM entry up to maxmem, nr_pages 0x6000 and max_pages 0x6100', () => {
    expect(built.guestE820).toEqual([e(0, 0x6000000, E820_RAM)]);
    expect(built.nrPages).toBe(0x6000);
    expect(built.maxPages).toBe(0x6100);
    expect(LIBXL_MAXMEM_CONSTANT).toBe(1024);
  });

  it('matches the real guest map once Linux reserves the ISA range itself', () => {
    // Linux xen_memory_setup adds [ISA_START_ADDRESS, ISA_END_ADDRESS) as reserved to its own e820 and
    // sanitises: the three lines the real domU printed.
    const linux = sanitizeE820([...built.guestE820, span(ISA_START_ADDRESS, ISA_END_ADDRESS, E820_RESERVED)]);
    const real = parseE820(PVPLAIN_GUEST_E820_LINES, 'domU-e820-lines.txt');
    expect(real).toEqual([span(0, 0xa0000, E820_RAM), span(0xa0000, 0x100000, E820_RESERVED), span(0x100000, 0x6000000, E820_RAM)]);
    expect(linux).toEqual(real);
    // nothing to release or remap ("Released 0 page(s)", "Remapped 0 page(s)")
    expect(guestHoles(built.guestE820)).toEqual([]);
    // the real xl -vvv save log: "max_pfn 0x5fff" = nr_pages - 1
    expect(built.nrPages - 1).toBe(0x5fff);
  });

  it('ignores a host map and says so', () => {
    const withHost = buildDomUMemoryMap(cfg(PVPLAIN_CFG), HOST_FFDD);
    expect(withHost.guestE820).toEqual(built.guestE820);
    expect(withHost.notes.join('\n')).toMatch(/not used \(e820_host=0\)/);
  });

  it('maxmem > memory: the map covers maxmem, nr_pages follows memory, max_pages memory + 1 MiB', () => {
    // memory 256 → nr_pages 256 << 8 = 0x10000; maxmem 1024 → [0, 1024 MiB) = [0, 0x40000000);
    // max_pages = (262144 + 1024) >> 2 = 65792 = 0x10100.
    const b = buildDomUMemoryMap(cfg('name = "b"\nmemory = 256\nmaxmem = 1024'), null);
    expect(b.guestE820).toEqual([e(0, 0x40000000, E820_RAM)]);
    expect(b.nrPages).toBe(0x10000);
    expect(b.maxPages).toBe(0x10100);
    expect(b.notes.join('\n')).toMatch(/0x30000 more for ballooning/);
  });
});

// ---- worked case 2: e820_host=1, 384 MiB, low host RAM ends at 0xffdd000 --------------------------

describe('buildDomUMemoryMap: e820_host = 1, memory = 384 (maxmem unset)', () => {
  // By hand, e820_sanitize(host, map_limitkb = target_memkb, balloon_kb = max_memkb - target_memkb + slack):
  //   target_memkb = max_memkb = 384 * 1024 = 393216 (xl: maxmem := memory) → balloon_kb = 0.
  //   1. Weed out host entries with addr <= 0x100000: [0,9fc00) RAM, [9fc00,a0000), [f0000,100000),
  //      and [100000,ffdd000) RAM (it starts at exactly 1 MiB) are dropped.
  //   2. start = lowest remaining non-RAM, non-unusable entry = 0xffdd000; start_kb = 0xffdd000 >> 10
  //      = 268292096 / 1024 = 262004. (last = 1: the code stores a comparison.)
  //   3. RAM [0, 393216 KiB); map_limitkb 393216 > start_kb 262004 → delta_kb = 131212;
  //      size = 393216 KiB - 131212 KiB = 262004 KiB = 0xffdd000 → ram_end = 0xffdd000.
  //   4. Host RAM [4 GiB, ...) is at/above 4 GiB: left alone, then not copied (RAM is never copied).
  //   5. start == ram_end: no E820_UNUSABLE filler.
  //   6. Copy the three reserved entries in host order.
  //   7. delta_kb != 0 → RAM at max(4 GiB, last = 1) = 0x100000000, size = 131212 << 10 = 0x8023000.
  //   nr_pages = 384 << 8 = 98304 = 0x18000; d->max_pages = (393216 + 1024) >> 2 = 98560 = 0x18100.
  // Linux (3.18+ remap) then walks the non-RAM run [0xffdd, 0x100000) of this map: below nr_pages it is
  // [0xffdd, 0x18000) = 0x8023 = 32803 pages, remapped to the first RAM at/after nr_pages: pfn 0x100000,
  // whose entry holds exactly 0x8023 pages → 0x100000–0x108022, "Remapped 32803 page(s)".
  // The ISA range 0xa0–0xff is no hole here: e820_sanitize drops every host entry at or below 1 MiB and
  // starts the guest's RAM entry at 0, so [0, 0xffdd000) is one RAM entry. Linux reserves ISA itself
  // (xen_memory_setup: e820__range_add(ISA_START_ADDRESS, ...) into its own e820_table after it has
  // walked Xen's map for release/remap), so those 96 pages are neither released nor remapped.
  const config = cfg('name = "big"\ntype = "pv"\nmemory = 384\ne820_host = 1\n');
  const built = buildDomUMemoryMap(config, HOST_FFDD);

  it('gives the sanitised map, nr_pages 0x18000 and max_pages 0x18100', () => {
    expect(built.guestE820).toEqual([
      span(0, 0xffdd000, E820_RAM),
      span(0xffdd000, 0x10000000, E820_RESERVED),
      span(0xfeffc000, 0xff000000, E820_RESERVED),
      span(0xfffc0000, GiB4, E820_RESERVED),
      span(GiB4, GiB4 + 0x8023000, E820_RAM),
    ]);
    expect(built.nrPages).toBe(0x18000);
    expect(built.maxPages).toBe(0x18100);
    expect(built.notes.join('\n')).toContain('Memory: 393216kB End of RAM: 0xffdd (PFN) Delta: 131212kB, PCI start: 262004kB (0xffdd PFN), Balloon 0kB');
  });

  it('has exactly one non-RAM run below nr_pages: [0xffdd, 0x18000), 32803 pages', () => {
    const holes = guestHoles(built.guestE820);
    const below = holes.filter((r) => r.start < built.nrPages).map((r) => ({ start: r.start, end: Math.min(r.end, built.nrPages) }));
    expect(below).toEqual([{ start: 0xffdd, end: 0x18000 }]);
    expect(below[0]!.end - below[0]!.start).toBe(32803);
    // the remap destination: the RAM entry at pfn 0x100000 holds exactly those 32803 pages
    const dest = built.guestE820.find((x) => x.type === E820_RAM && x.addr / PAGE_SIZE >= built.nrPages)!;
    expect(dest.addr / PAGE_SIZE).toBe(0x100000);
    expect(dest.addr / PAGE_SIZE + dest.size / PAGE_SIZE - 1).toBe(0x108022);
  });

  it('does not make the ISA range a hole', () => {
    const isa = built.guestE820.find((x) => x.addr <= ISA_START_ADDRESS && x.addr + x.size >= ISA_END_ADDRESS)!;
    expect(isa.type).toBe(E820_RAM);
    const isaPfns = { start: ISA_START_ADDRESS / PAGE_SIZE, end: ISA_END_ADDRESS / PAGE_SIZE }; // 0xa0–0xff
    expect(guestHoles(built.guestE820).some((r) => r.start < isaPfns.end && r.end > isaPfns.start)).toBe(false);
  });

  it('refuses e820_host=1 without a host map, pointing at --e820 / --from-log', () => {
    const err = inputError(() => buildDomUMemoryMap(config, null));
    expect(err.message).toMatch(/^test\.cfg: e820_host=1 needs the host's memory map/);
    expect(err.message).toMatch(/--e820 FILE or --from-log FILE/);
    expect(inputError(() => buildDomUMemoryMap(config, [])).message).toMatch(/--e820/);
  });
});

// ---- more of e820_sanitize ----------------------------------------------------------------------

describe('e820Sanitize / buildDomUMemoryMap: the other branches', () => {
  it('memory below the first hole, maxmem above: E820_UNUSABLE filler and balloon RAM at 4 GiB', () => {
    // target 128 MiB = 131072 KiB < start_kb 262004 → delta 0, RAM [0, 0x8000000) = ram_end.
    // start 0xffdd000 > ram_end, no host E820_UNUSABLE at ram_end → add [0x8000000, 0xffdd000) unusable.
    // balloon_kb = 524288 - 131072 = 393216 → RAM [4 GiB, +393216 KiB = +0x18000000).
    // nr_pages = 128 << 8 = 0x8000; max_pages = (131072 + 1024) >> 2 = 0x8100.
    const b = buildDomUMemoryMap(cfg('name = "s"\nmemory = 128\nmaxmem = 512\ne820_host = 1'), HOST_FFDD);
    expect(b.guestE820).toEqual([
      span(0, 0x8000000, E820_RAM),
      span(0x8000000, 0xffdd000, E820_UNUSABLE),
      span(0xffdd000, 0x10000000, E820_RESERVED),
      span(0xfeffc000, 0xff000000, E820_RESERVED),
      span(0xfffc0000, GiB4, E820_RESERVED),
      span(GiB4, GiB4 + 0x18000000, E820_RAM),
    ]);
    expect(b.nrPages).toBe(0x8000);
    expect(b.maxPages).toBe(0x8100);
  });

  it('host RAM below 4 GiB beyond the guest RAM becomes E820_UNUSABLE; host unusable is dropped', () => {
    const host = [
      span(0, 0x9fc00, E820_RAM),
      span(0x100000, 0x8000000, E820_RAM),
      span(0x8000000, 0x8100000, E820_NVS),
      span(0x8100000, 0xc0000000, E820_RAM),
      span(0xc0000000, 0xc0100000, E820_UNUSABLE),
      span(0xc0100000, GiB4, E820_RESERVED),
    ];
    // memory 1024 MiB = 1048576 KiB; start = 0x8000000 (the NVS), start_kb = 131072 → delta 917504 KiB;
    // ram_end = 0x8000000. [0x8100000, 0xc0000000) RAM: above ram_end and below 4 GiB → unusable.
    // The host's unusable entry is dropped. RAM at 4 GiB: 917504 KiB = 0x38000000.
    const { entries } = e820Sanitize(host, 1048576n, 0n);
    expect(entries).toEqual([
      span(0, 0x8000000, E820_RAM),
      span(0x8000000, 0x8100000, E820_NVS),
      span(0x8100000, 0xc0000000, E820_UNUSABLE),
      span(0xc0100000, GiB4, E820_RESERVED),
      span(GiB4, GiB4 + 0x38000000, E820_RAM),
    ]);
  });

  it('puts the moved RAM at 4 GiB even above a reserved range beyond 4 GiB (the `last` quirk)', () => {
    // The code meant to place it after the highest reserved end, but stores a comparison in `last`.
    const hole = span(0xfd00000000, 0x10000000000, E820_RESERVED);
    const { entries } = e820Sanitize([...HOST_FFDD, hole], 393216n, 0n);
    expect(entries.at(-2)).toEqual(hole);
    expect(entries.at(-1)).toEqual(span(GiB4, GiB4 + 0x8023000, E820_RAM));
    const b = buildDomUMemoryMap(cfg('name="q"\nmemory = 384\ne820_host = 1'), [...HOST_FFDD, hole]);
    expect(b.notes.join('\n')).toMatch(/not sorted or overlaps/);
  });

  it('pci implies e820_host: the host map is needed, and the devices are only noted', () => {
    const c = cfg("name = 'p'\nmemory = 384\npci = [ '0000:03:00.0' ]");
    expect(inputError(() => buildDomUMemoryMap(c, null)).message).toMatch(/e820_host \(turned on by pci\) needs the host's memory map/);
    const b = buildDomUMemoryMap(c, HOST_FFDD);
    expect(b.guestE820).toEqual(buildDomUMemoryMap(cfg('name="x"\nmemory = 384\ne820_host = 1'), HOST_FFDD).guestE820);
    expect(b.notes.join('\n')).toMatch(/pci: 0000:03:00\.0: passthrough is not emulated/);
  });

  it('refuses what libxl refuses or what would wrap', () => {
    expect(inputError(() => e820Sanitize(HOST_FFDD, 0n, 0n)).message).toMatch(/ERROR_INVAL/);
    const many = Array.from({ length: 129 }, (_, i) => e(0x200000 + i * 0x2000, 0x1000, E820_RESERVED));
    expect(inputError(() => e820Sanitize(many, 1024n, 0n)).message).toMatch(/E820MAX/);
    // no reserved entry above 1 MiB: start stays ~0ULL and the unusable filler runs to 2^64
    expect(inputError(() => e820Sanitize([span(0, 0x9fc00, E820_RAM), span(0x100000, 0x40000000, E820_RAM)], 65536n, 0n)).message).toMatch(/beyond 2\^52/);
  });
});
