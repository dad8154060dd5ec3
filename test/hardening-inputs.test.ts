// Issue 12, items 4, 10 and 11 (inputs): every text input is read through one helper (src/inputs/text-input.ts)
// under a stated cap, streamed where the format allows; FIFOs, devices and directories are refused without
// blocking (src/common/input-file.ts), images need regular files, and '-' is standard input for text only.
// Expected values come from the files the tests make (their sizes, their lines) and from a second code path
// (the whole-text parsers against the streamed ones, a file against the same bytes on standard input).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/common/errors.js';
import { openRegularInput } from '../src/common/input-file.js';
import { parseE820 } from '../src/inputs/e820.js';
import { parseKconfig } from '../src/inputs/kconfig.js';
import { readTextInput, TEXT_INPUT_LIMITS, textInputLines, type TextInputKind } from '../src/inputs/text-input.js';
import { loadSymbols } from '../src/formats/symbols.js';
import { openImage } from '../src/formats/open-image.js';
import { makeFifo } from '../src/fuzz/cli-scenario.js';
import { SEED_HOST_LINES } from './helpers/seed-host.js';

const repo = path.resolve(__dirname, '..');
const cli = path.join(repo, 'dist/src/cli.js');
const seedHost = path.join(repo, 'corpora/scenarios/hosts/seed-host.txt');
const snapshot = path.join(repo, 'corpora/scenarios/small-clean-4x.p2ms');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-hardening-in-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const at = (name: string) => path.join(tmp, name);
const fifo = at('input.fifo');
makeFifo(fifo);

/** Run the built CLI; a hang would show as status null (the limit is a backstop, nothing is timed). */
function run(args: string[], stdin?: string | Buffer) {
  const r = spawnSync(process.execPath, [cli, ...args], { input: stdin ?? '', encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function inputError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    expect((e as Error).message).not.toContain('\n');
    return (e as Error).message;
  }
  throw new Error('expected an InputError');
}

const KINDS = Object.keys(TEXT_INPUT_LIMITS) as TextInputKind[];
const MiB = 1024 * 1024;

describe('text inputs: one helper, a cap per kind', () => {
  it.each(KINDS)('%s: a file one byte over the cap is refused from its size alone', (kind) => {
    const cap = TEXT_INPUT_LIMITS[kind].maxBytes;
    const p = at(`over-${kind}`);
    fs.closeSync(fs.openSync(p, 'w'));
    fs.truncateSync(p, cap + 1); // sparse: nothing is written, and nothing needs to be read to refuse it
    const msg = inputError(() => readTextInput(p, kind));
    expect(msg).toBe(`${p}: ${cap + 1} bytes, more than the ${cap / MiB} MiB ${TEXT_INPUT_LIMITS[kind].what} may have`);
  });

  it('a gzip input that decompresses past the cap is refused (the bound is on the output, not the 1 KiB input)', () => {
    const cap = TEXT_INPUT_LIMITS.kconfig.maxBytes;
    const p = at('bomb.config.gz');
    fs.writeFileSync(p, zlib.gzipSync(Buffer.alloc(cap + 1, 0x23)));
    expect(fs.statSync(p).size).toBeLessThan(cap);
    expect(inputError(() => [...textInputLines(p, 'kconfig')])).toMatch(/gzip data that decompresses to more than the 4 MiB the kernel config may have$/);
  });

  it.each<[string, () => unknown]>([
    ['a FIFO (no writer: it would block)', () => readTextInput(fifo, 'e820')],
    ['/dev/zero (never ends)', () => readTextInput('/dev/zero', 'boot-log')],
    ['/dev/urandom', () => [...textInputLines('/dev/urandom', 'kconfig')]],
    ['a directory', () => readTextInput(tmp, 'xl-config')],
  ])('%s is refused before a byte is read', (_what, fn) => {
    expect(inputError(fn)).toMatch(/: is (a FIFO|a character device), not a regular file: .* is read from a regular file, or from standard input given as '-'|: is a directory, expected the xl config/);
  });

  it('streamed lines are the lines text.split(/\\r?\\n/) gives, across chunk boundaries and multi-byte characters', () => {
    // 200 000 lines of varying length with CRLF endings and a 3-byte character: many 64 KiB chunk edges
    const lines = Array.from({ length: 200_000 }, (_, i) => `line ${i} ${'€'.repeat(i % 7)}${'x'.repeat(i % 97)}`);
    const text = lines.join('\r\n');
    const p = at('lines.txt');
    fs.writeFileSync(p, text);
    expect([...textInputLines(p, 'e820')]).toEqual(text.split(/\r?\n/));
  });

  it.each<[string, string]>([
    ['Xen lines, LF', SEED_HOST_LINES.join('\n') + '\n'],
    ['Xen lines, CRLF, no final newline', SEED_HOST_LINES.join('\r\n')],
    ['JSON list, one line', JSON.stringify([{ addr: 0, size: 0x9fc00, type: 1 }, { addr: 0x100000, size: 0x7fedf000, type: 1 }])],
    ['JSON list, pretty-printed after blank lines', '\n\n' + JSON.stringify([{ start: '0x0', end: '0x9fc00', type: 'usable' }], null, 2)],
    ['dmesg lines', '[    0.000000] Xen: [mem 0x0000000000000000-0x000000000009ffff] usable\n[    0.000000] Xen: [mem 0x0000000000100000-0x000000003fffffff] usable\n'],
  ])('e820 %s: streamed parse = whole-text parse', (_what, text) => {
    const p = at('map.txt');
    fs.writeFileSync(p, text);
    expect(parseE820(textInputLines(p, 'e820'), p)).toEqual(parseE820(text, p));
  });

  it('kconfig and System.map: streamed (plain) = whole text (gzip, decompressed at once)', () => {
    const config = 'CONFIG_XEN=y\n# CONFIG_XEN_512GB is not set\nCONFIG_XEN_MEMORY_HOTPLUG_LIMIT=512\n';
    fs.writeFileSync(at('c'), config);
    fs.writeFileSync(at('c.gz'), zlib.gzipSync(config));
    expect(parseKconfig(textInputLines(at('c'), 'kconfig'), 'x')).toEqual(parseKconfig(config, 'x'));
    expect(parseKconfig(textInputLines(at('c.gz'), 'kconfig'), 'x')).toEqual(parseKconfig(config, 'x'));
    const map = 'ffffffff81000000 T _text\r\nffffffff82000000 D xen_p2m_addr\nffffffff82000008 d local_one\t[mod]\n';
    fs.writeFileSync(at('m'), map);
    fs.writeFileSync(at('m.gz'), zlib.gzipSync(map));
    expect([...loadSymbols(at('m'))]).toEqual([...loadSymbols(at('m.gz'))]);
    expect([...loadSymbols(at('m'))]).toEqual([
      ['_text', 0xffffffff81000000n],
      ['xen_p2m_addr', 0xffffffff82000000n],
    ]);
  });
});

describe('images need regular files (item 10)', () => {
  it.each<[string, string, RegExp]>([
    ['a FIFO', fifo, /input\.fifo: is a FIFO, not a regular file: images are read at random offsets/],
    ['/dev/zero', '/dev/zero', /\/dev\/zero: is a character device, not a regular file: images are read at random offsets/],
    ["'-'", '-', /^-: standard input cannot be read here: images are read at random offsets/],
  ])('%s: openImage refuses it without blocking', (_what, p, re) => {
    expect(inputError(() => openImage(p))).toMatch(re);
    expect(inputError(() => openRegularInput(p, 'an image file', 'images are read at random offsets'))).toMatch(re);
  });

  it.each([['audit'], ['restore-check'], ['p2m'], ['inspect']])('%s FIFO: exit 2, one line, nothing on stdout', (cmd) => {
    const r = run([cmd, fifo]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`p2m-audit: ${fifo}: is a FIFO, not a regular file: images are read at random offsets, so they must be regular files (copy it to one first)\n`);
  });
});

describe("'-' is standard input for text inputs (item 11)", () => {
  const emulate = (e820: string, stdin?: string) => run(['emulate', '--e820', e820, '--profile', 'linux-4.x', '--dom0-mem', '1g', '--json', '--audit', '--jobs', '1'], stdin);

  it('emulate --e820 - gives the result --e820 FILE gives for the same bytes', () => {
    const fromFile = emulate(seedHost);
    const fromStdin = emulate('-', fs.readFileSync(seedHost, 'utf8'));
    expect(fromFile.code).toBe(0);
    expect(fromStdin.code).toBe(fromFile.code);
    const strip = (s: string) => JSON.parse(s.replace(/"file": "[^"]*"/g, '"file": ""')) as unknown;
    expect(strip(fromStdin.stdout)).toEqual(strip(fromFile.stdout));
  });

  it('standard input past the cap is refused after reading at most the cap (xl config: 1 MiB)', () => {
    const cap = TEXT_INPUT_LIMITS['xl-config'].maxBytes;
    const r = run(['emulate', '--role', 'domU', '--xl-config', '-', '--profile', 'linux-4.x', '-o', at('g.p2ms')], Buffer.alloc(cap + 1, 0x61));
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('p2m-audit: <stdin>: longer than the 1 MiB the xl config may have\n');
  });

  it('two inputs cannot both be standard input', () => {
    const r = run(['emulate', '--e820', '-', '--kconfig', '-', '--profile', 'linux-4.x', '--dom0-mem', '1g', '-o', at('two.p2ms')], fs.readFileSync(seedHost, 'utf8'));
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("p2m-audit: -: standard input is already read for the e820 map; only one input can come from '-'\n");
  });

  it.each<[string, string[]]>([
    ['emulate -o - (a binary image)', ['emulate', '--e820', seedHost, '--profile', 'linux-4.x', '--dom0-mem', '1g', '-o', '-']],
    ['scan --out -', ['scan', snapshot, '--out', '-']],
    ['scan --system-map -', ['scan', snapshot, '--system-map', '-']],
  ])('%s is refused with one line, nothing written', (_what, args) => {
    const r = run(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(fs.existsSync(path.join(process.cwd(), '-'))).toBe(false);
  });
});
