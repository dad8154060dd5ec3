import { describe, it, expect } from 'vitest';
import { e820RamPages, e820TypeName, findE820Blocks, formatLinuxE820, formatXenE820, parseE820, parseE820Type, sanitizeE820 } from '../src/inputs/e820.js';
import { InputError } from '../src/common/errors.js';
import { type E820Entry } from '../src/inputs/e820.js';
import { E820_ACPI, E820_NVS, E820_PMEM, E820_PRAM, E820_RAM, E820_RESERVED, E820_UNUSABLE } from '../src/xen/abi.js';

import { SEED_HOST_LINES } from './helpers/seed-host.js';

const e = (addr: number, size: number, type: number): E820Entry => ({ addr, size, type });

/** The host map of the spec's worked example (Xen old form, end exclusive). */
const WORKED_EXAMPLE = SEED_HOST_LINES.join('\n');

describe('parseE820: one line of every accepted form', () => {
  it.each([
    ['Xen old form (end exclusive)', '(XEN)  0000000000000000 - 000000000009fc00 (usable)', e(0, 0x9fc00, E820_RAM)],
    ['Xen new form (end inclusive)', '(XEN)  [0000000000000000, 000000000009fbff] (usable)', e(0, 0x9fc00, E820_RAM)],
    ['old form without (XEN)', '0000000000100000 - 000000007ffdf000 (usable)', e(0x100000, 0x7fedf000, E820_RAM)],
    ['new form without (XEN)', '[00000000000f0000, 00000000000fffff] (reserved)', e(0xf0000, 0x10000, E820_RESERVED)],
    ['Xen raw TSC timestamp', '(XEN) [0000001b4a3297f3]  000000007ffdf000 - 0000000080000000 (reserved)', e(0x7ffdf000, 0x21000, E820_RESERVED)],
    ['Xen date timestamp', '(XEN) [2022-01-18 10:40:41.297]  [00000000fed1c000, 00000000fed1ffff] (ACPI NVS)', e(0xfed1c000, 0x4000, E820_NVS)],
    ['Xen boot-time timestamp', '(XEN) [   12.345678]  0000000000000000 - 0000000000001000 (reserved)', e(0, 0x1000, E820_RESERVED)],
    ['dmesg timestamp before (XEN)', '[    3.141592] (XEN)  [00000000bfee0000, 00000000bfefefff] (ACPI data)', e(0xbfee0000, 0x1f000, E820_ACPI)],
    ['Linux BIOS-e820 [mem] with dmesg stamp', '[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable', e(0, 0x9fc00, E820_RAM)],
    ['Linux Xen: [mem]', 'Xen: [mem 0x00000000000a0000-0x00000000000fffff] reserved', e(0xa0000, 0x60000, E820_RESERVED)],
    ['Linux Xen: [mem] above 4 GiB', '[    0.000000] Xen: [mem 0x0000000100000000-0x000000017fffffff] usable', e(0x100000000, 0x80000000, E820_RAM)],
    ['old Linux BIOS-e820 A - B', 'BIOS-e820: 00000000bfee0000 - 00000000bfeff000 (ACPI data)', e(0xbfee0000, 0x1f000, E820_ACPI)],
    ['Xen unusable', '(XEN)  00000000c0000000 - 00000000c0001000 (unusable)', e(0xc0000000, 0x1000, E820_UNUSABLE)],
    ['Xen bare "type 7"', '(XEN)  0000000180000000 - 0000000280000000 type 7', e(0x180000000, 0x100000000, E820_PMEM)],
    ['Linux persistent (type 7)', 'BIOS-e820: [mem 0x0000000180000000-0x000000027fffffff] persistent (type 7)', e(0x180000000, 0x100000000, E820_PMEM)],
    ['Linux persistent (type 12)', 'BIOS-e820: [mem 0x0000000280000000-0x00000002bfffffff] persistent (type 12)', e(0x280000000, 0x40000000, E820_PRAM)],
    ['Linux unknown "type 20"', 'BIOS-e820: [mem 0x00000000fee00000-0x00000000fee00fff] type 20', e(0xfee00000, 0x1000, 20)],
    ['end exactly 2^52 (exclusive)', '(XEN)  0000000000000000 - 0010000000000000 (usable)', e(0, 2 ** 52, E820_RAM)],
  ])('%s', (_name, line, expected) => {
    expect(parseE820(line, 't.txt')).toEqual([expected]);
  });
});

describe('parseE820Type', () => {
  it.each([
    ['usable', E820_RAM],
    ['RAM', E820_RAM],
    ['(reserved)', E820_RESERVED],
    ['ACPI data', E820_ACPI],
    ['acpi', E820_ACPI],
    ['(ACPI NVS)', E820_NVS],
    ['NVS', E820_NVS],
    ['unusable', E820_UNUSABLE],
    ['persistent (type 7)', E820_PMEM],
    ['PMEM', E820_PMEM],
    ['persistent (type 12)', E820_PRAM],
    ['pram', E820_PRAM],
    ['type 9', 9],
    ['9', 9],
    ['soft reserved', 0xefffffff],
    ['bogus', null],
    ['type 0', null],
  ])('%s → %s', (text, expected) => {
    expect(parseE820Type(text)).toBe(expected);
  });
});

describe('parseE820: whole texts', () => {
  it('reads the worked example host map', () => {
    expect(parseE820(WORKED_EXAMPLE, 'host.txt')).toEqual([
      e(0, 0x9fc00, E820_RAM),
      e(0x9fc00, 0x400, E820_RESERVED),
      e(0xf0000, 0x10000, E820_RESERVED),
      e(0x100000, 0x7fedf000, E820_RAM),
      e(0x7ffdf000, 0x21000, E820_RESERVED),
      e(0xb0000000, 0x10000000, E820_RESERVED),
      e(0xfeffc000, 0x4000, E820_RESERVED),
      e(0xfffc0000, 0x40000, E820_RESERVED),
      e(0x100000000, 0x80000000, E820_RAM),
    ]);
  });

  const bootLog = [
    '(XEN) Xen version 4.17.0 (built)',
    '(XEN) Initial Xen-e820 RAM map:',
    '(XEN)  [0000000000000000, 000000000009ffff] (usable)',
    '(XEN)  [0000000000100000, 00000000bfffffff] (usable)',
    '(XEN) Xen-e820 RAM map:',
    '(XEN)  [0000000000000000, 000000000009fbff] (usable)',
    '(XEN)  [000000000009fc00, 000000000009ffff] (reserved)',
    '(XEN)  [0000000000100000, 00000000bfffffff] (usable)',
    '(XEN) System RAM: 3071MB (3145340kB)',
  ].join('\n');

  it('findE820Blocks lists both maps with headers and line numbers', () => {
    const blocks = findE820Blocks(bootLog, 'boot.log');
    expect(blocks.map((b) => [b.kind, b.header, b.headerLine, b.startLine, b.endLine, b.entries.length])).toEqual([
      ['xen', 'Initial Xen-e820 RAM map:', 2, 3, 4, 2],
      ['xen', 'Xen-e820 RAM map:', 5, 6, 8, 3],
    ]);
    expect(blocks[1]!.lines.map((l) => l.lineNo)).toEqual([6, 7, 8]);
  });

  it('takes the map under "Xen-e820 RAM map:", not the Initial one', () => {
    expect(parseE820(bootLog, 'boot.log')).toEqual([
      e(0, 0x9fc00, E820_RAM),
      e(0x9fc00, 0x400, E820_RESERVED),
      e(0x100000, 0xbff00000, E820_RAM),
    ]);
  });

  it('takes the map under "EFI RAM map:" even when another block comes first', () => {
    const text = [
      '(XEN)  0000000000000000 - 0000000000001000 (reserved)',
      '(XEN) EFI RAM map:',
      '(XEN)  [0000000000000000, 000000000009ffff] (usable)',
    ].join('\n');
    expect(parseE820(text, 'efi.log')).toEqual([e(0, 0xa0000, E820_RAM)]);
  });

  it('without a header takes the first block of one kind', () => {
    const text = [
      'Linux version 6.1.0',
      '[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable',
      '[    0.000000] BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] reserved',
      '(XEN)  0000000000000000 - 000000000009fc00 (usable)',
    ].join('\n');
    const blocks = findE820Blocks(text, 'mixed.log');
    expect(blocks.map((b) => [b.kind, b.header, b.startLine, b.endLine])).toEqual([
      ['linux', null, 2, 3],
      ['xen', null, 4, 4],
    ]);
    expect(parseE820(text, 'mixed.log')).toEqual([e(0, 0x9fc00, E820_RAM), e(0x9fc00, 0x400, E820_RESERVED)]);
  });

  it('records the Linux "BIOS-provided physical RAM map:" header', () => {
    const text = [
      '[    0.000000] BIOS-provided physical RAM map:',
      '[    0.000000] Xen: [mem 0x0000000000000000-0x000000000009ffff] usable',
    ].join('\n');
    const [block] = findE820Blocks(text, 'dmesg');
    expect([block!.kind, block!.header, block!.headerLine, block!.startLine]).toEqual([
      'linux',
      'BIOS-provided physical RAM map:',
      1,
      2,
    ]);
  });
});

describe('parseE820: JSON lists', () => {
  it.each([
    ['hex strings addr/size', '[{"addr": "0x0", "size": "0x9fc00", "type": "usable"}]', [e(0, 0x9fc00, E820_RAM)]],
    ['numbers addr/size, numeric type', '[{"addr": 1048576, "size": 2146299904, "type": 1}]', [e(0x100000, 0x7fedf000, E820_RAM)]],
    ['start/end (end exclusive)', '[{"start": "0x100000", "end": "0x200000", "type": "reserved"}]', [e(0x100000, 0x100000, E820_RESERVED)]],
    ['type names', '[{"addr": "0xfed1c000", "size": "0x4000", "type": "ACPI NVS"}, {"addr": 0, "size": 4096, "type": 12}]', [
      e(0xfed1c000, 0x4000, E820_NVS),
      e(0, 0x1000, E820_PRAM),
    ]],
  ])('%s', (_name, text, expected) => {
    expect(parseE820(text, 'map.json')).toEqual(expected);
  });
});

describe('parseE820: errors', () => {
  it.each([
    ['unknown type name', 'noise\n(XEN)  0000000000000000 - 000000000009fc00 (usabel)', 't.txt:2: cannot parse e820 line', 'unknown type "(usabel)"'],
    ['missing type', '(XEN)  0000000000000000 - 000000000009fc00', 't.txt:1: cannot parse e820 line', 'expected "A - B (type)" or "[A, B] (type)"'],
    ['new form without comma', 'x\ny\n(XEN)  [0000000000000000 000000000009fbff] (usable)', 't.txt:3: cannot parse e820 line', '"[A, B] (type)"'],
    ['bad hex in old form', '(XEN)  0000000000000000 - 00000000000zzzzz (usable)', 't.txt:1: cannot parse e820 line', 'expected'],
    ['Linux [mem] without type', 'BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff]', 't.txt:1: cannot parse e820 line', '[mem 0xA-0xB]'],
    ['start = end', '(XEN)  0000000000100000 - 0000000000100000 (usable)', 't.txt:1: start 0x100000 is not below end 0x100000', ''],
    ['inclusive end below start', '\n(XEN)  [0000000000002000, 0000000000000fff] (reserved)', 't.txt:2: start 0x2000 is not below end 0x1000', ''],
    ['end beyond 2^52', '(XEN)  0000000000000000 - 0020000000000000 (usable)', 't.txt:1: address 0x20000000000000 is beyond 2^52', ''],
    ['19 hex digits', '(XEN)  0000000000000000 - 1000000000000000000 (usable)', 't.txt:1:', 'beyond 2^52'],
    ['no map at all', 'hello\nworld', 't.txt: no memory map found', '(XEN)  A - B (type)'],
    ['empty JSON list', '[]', 't.txt: no memory map found', 'JSON'],
    ['bad JSON number', '[{"addr": "zz", "size": 1, "type": 1}]', 't.txt: JSON entry 0: "addr"', ''],
    ['bad JSON type', '[{"addr": 0, "size": 4096, "type": 1}, {"addr": 0, "size": 4096, "type": "weird"}]', 't.txt: JSON entry 1: unknown e820 type', ''],
    ['JSON zero size', '[{"addr": 4096, "size": 0, "type": 1}]', 't.txt: JSON entry 0: start 0x1000 is not below end', ''],
    ['invalid JSON', '[{"addr": 0,}]', 't.txt: invalid JSON memory map', ''],
  ])('%s', (_name, text, prefix, detail) => {
    let err: unknown;
    try {
      parseE820(text, 't.txt');
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message.startsWith(prefix)).toBe(true);
    expect((err as Error).message).toContain(detail);
  });
});

describe('sanitizeE820', () => {
  it.each([
    ['reserved inside RAM wins', [e(0, 0x100000, E820_RAM), e(0x80000, 0x20000, E820_RESERVED)], [
      e(0, 0x80000, E820_RAM),
      e(0x80000, 0x20000, E820_RESERVED),
      e(0xa0000, 0x60000, E820_RAM),
    ]],
    ['RAM inside reserved is swallowed', [e(0, 0x10000, E820_RESERVED), e(0x4000, 0x4000, E820_RAM)], [e(0, 0x10000, E820_RESERVED)]],
    ['ACPI (3) loses the overlap to NVS (4)', [e(0, 0x3000, E820_ACPI), e(0x2000, 0x2000, E820_NVS)], [
      e(0, 0x2000, E820_ACPI),
      e(0x2000, 0x2000, E820_NVS),
    ]],
    ['adjacent RAM merged', [e(0, 0x1000, E820_RAM), e(0x1000, 0x2000, E820_RAM)], [e(0, 0x3000, E820_RAM)]],
    ['overlapping RAM merged', [e(0, 0x2000, E820_RAM), e(0x1000, 0x2000, E820_RAM)], [e(0, 0x3000, E820_RAM)]],
    ['adjacent different types kept', [e(0, 0x1000, E820_RAM), e(0x1000, 0x1000, E820_RESERVED)], [
      e(0, 0x1000, E820_RAM),
      e(0x1000, 0x1000, E820_RESERVED),
    ]],
    ['unsorted input sorted', [e(0x100000, 0x100000, E820_RESERVED), e(0, 0x9f000, E820_RAM)], [
      e(0, 0x9f000, E820_RAM),
      e(0x100000, 0x100000, E820_RESERVED),
    ]],
    ['zero-size entry removed', [e(0x5000, 0, E820_RESERVED), e(0, 0x1000, E820_RAM)], [e(0, 0x1000, E820_RAM)]],
    ['adjacent PRAM not merged', [e(0, 0x1000, E820_PRAM), e(0x1000, 0x1000, E820_PRAM)], [
      e(0, 0x1000, E820_PRAM),
      e(0x1000, 0x1000, E820_PRAM),
    ]],
    ['a hole between entries stays a hole', [e(0, 0x1000, E820_RAM), e(0x3000, 0x1000, E820_RAM)], [
      e(0, 0x1000, E820_RAM),
      e(0x3000, 0x1000, E820_RAM),
    ]],
  ])('%s', (_name, input, expected) => {
    const copy = input.map((x) => ({ ...x }));
    expect(sanitizeE820(input)).toEqual(expected);
    expect(input).toEqual(copy);
  });
});

describe('names, formatting and counts', () => {
  it.each([
    [E820_RAM, 'usable'],
    [E820_RESERVED, 'reserved'],
    [E820_ACPI, 'ACPI data'],
    [E820_NVS, 'ACPI NVS'],
    [E820_UNUSABLE, 'unusable'],
    [E820_PMEM, 'persistent (type 7)'],
    [E820_PRAM, 'persistent (type 12)'],
    [6, 'type 6'],
    [20, 'type 20'],
  ])('e820TypeName(%d) = %s', (type, name) => {
    expect(e820TypeName(type)).toBe(name);
  });

  const map = [e(0, 0x9fc00, E820_RAM), e(0x9fc00, 0x400, E820_RESERVED), e(0x100000000, 0x100000000, E820_PMEM)];

  it('formatXenE820 writes the old (end exclusive) form, bare "type N" for others', () => {
    expect(formatXenE820(map)).toEqual([
      '(XEN)  0000000000000000 - 000000000009fc00 (usable)',
      '(XEN)  000000000009fc00 - 00000000000a0000 (reserved)',
      '(XEN)  0000000100000000 - 0000000200000000 type 7',
    ]);
  });

  it('formatLinuxE820 writes the [mem] (end inclusive) form', () => {
    expect(formatLinuxE820(map)).toEqual([
      'Xen: [mem 0x0000000000000000-0x000000000009fbff] usable',
      'Xen: [mem 0x000000000009fc00-0x000000000009ffff] reserved',
      'Xen: [mem 0x0000000100000000-0x00000001ffffffff] persistent (type 7)',
    ]);
    expect(formatLinuxE820([map[0]!], 'BIOS-e820')).toEqual(['BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable']);
  });

  it.each([
    ['Xen', formatXenE820],
    ['Linux', formatLinuxE820],
  ])('%s output parses back to the same entries', (_name, format) => {
    expect(parseE820(format(map).join('\n'), 'round-trip')).toEqual(map);
  });

  it.each([
    ['worked example: 0x9f + 0x7fedf + 0x80000', parseE820(WORKED_EXAMPLE, 'host'), 0xfff7e],
    ['partial pages at both ends', [e(0x800, 0x2000, E820_RAM)], 1],
    ['overlapping RAM counted once', [e(0, 0x2000, E820_RAM), e(0x1000, 0x2000, E820_RAM)], 3],
    ['adjacent sub-page RAM pieces make a page', [e(0, 0x800, E820_RAM), e(0x800, 0x800, E820_RAM)], 1],
    ['reserved does not count', [e(0, 0x10000, E820_RESERVED)], 0],
  ])('e820RamPages: %s', (_name, entries, pages) => {
    expect(e820RamPages(entries)).toBe(pages);
  });
});
