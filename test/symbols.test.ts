// Kernel symbol loading (System.map / kallsyms, plain or gzip). Expected values come from the real
// Debian 6.1.0-56 files in corpora/real, read by hand with `zcat … | awk '$3 == NAME'` and
// `awk '{print $3}' | sort -u | wc -l`, and from hand-written inputs.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/common/errors.js';
import { loadSymbols, symbolsBeside } from '../src/formats/symbols.js';

const REAL = path.join(__dirname, '..', 'corpora', 'real');
const SYSTEM_MAP = path.join(REAL, 'System.map-6.1.0-56-amd64.gz');
const KALLSYMS = path.join(REAL, 'kallsyms-domU.txt.gz');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'symbols-test-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let seq = 0;
function file(text: string | Buffer, name = 'syms'): string {
  const p = path.join(dir, `${seq++}-${name}`);
  fs.writeFileSync(p, text);
  return p;
}

function inputError(fn: () => unknown): InputError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    expect((e as Error).message).not.toContain('\n');
    return e as InputError;
  }
  throw new Error('expected an InputError');
}

// awk '$3 == NAME' on System.map-6.1.0-56-amd64 (and the same lines in the domU's /proc/kallsyms)
const P2M_SYMBOLS: [string, bigint][] = [
  ['_text', 0xffffffff81000000n],
  ['xen_p2m_addr', 0xffffffff82c38d70n],
  ['xen_p2m_size', 0xffffffff82c38d68n],
  ['xen_max_p2m_pfn', 0xffffffff82c38d60n],
  ['p2m_missing', 0xffffffff833191e0n],
  ['p2m_identity', 0xffffffff833191d8n],
  ['page_offset_base', 0xffffffff82415740n],
  ['max_pfn', 0xffffffff83fe2f38n],
  ['xen_start_info', 0xffffffff833190c0n],
];

describe('real System.map and kallsyms (Debian 6.1.0-56-amd64)', () => {
  it('System.map.gz: every distinct name, the p2m symbols at their addresses', () => {
    const t = loadSymbols(SYSTEM_MAP);
    expect(t.size).toBe(88596); // awk '{print $3}' | sort -u | wc -l
    for (const [name, va] of P2M_SYMBOLS) expect(t.get(name), name).toBe(va);
    // per-cpu symbols sit at small offsets, 0 included: kept
    expect(t.get('fixed_percpu_data')).toBe(0n);
  });

  it('kallsyms.gz agrees with System.map on every p2m symbol (a PV kernel has no KASLR slide)', () => {
    const k = loadSymbols(KALLSYMS);
    expect(k.size).toBe(88582); // awk 'NF==3 {print $3}' | sort -u | wc -l
    for (const [name, va] of P2M_SYMBOLS) expect(k.get(name), name).toBe(va);
  });
});

describe('parsing', () => {
  it('plain text, tabs or blanks, upper or lower case hex, module symbols ignored, junk lines skipped', () => {
    const p = file(
      [
        'ffffffff81000000 T _text',
        'FFFFFFFF81000010\tt\tlocal_fn',
        'not a symbol line',
        '',
        'ffffffffc0a01000 t mod_fn\t[xen_blkfront]',
        'ffffffffc0a02000 d mod_var [xen_blkfront]',
        'ffffffff82000000 D  spaced_var  ',
        'ffffffff8200000g D bad_hex',
      ].join('\n'),
    );
    const t = loadSymbols(p);
    expect([...t]).toEqual([
      ['_text', 0xffffffff81000000n],
      ['local_fn', 0xffffffff81000010n],
      ['spaced_var', 0xffffffff82000000n],
    ]);
  });

  // Each line as LINE_RE (the kernel's "ADDR TYPE NAME[ [module]]") reads it, worked out by hand; the
  // plain `ADDR T NAME` lines take a fast path, the others the regex: both must agree with this table.
  it.each([
    ['ffffffff81000000 T a', ['a', 0xffffffff81000000n]],
    ['1 t x', ['x', 1n]],
    ['  ffffffff81000000 T lead', ['lead', 0xffffffff81000000n]],
    ['ffffffff81000000  T two_blanks', ['two_blanks', 0xffffffff81000000n]],
    ['ffffffff81000000 T crlf\r', ['crlf', 0xffffffff81000000n]],
    ['ffffffff81000000 ? odd_type', ['odd_type', 0xffffffff81000000n]],
    ['ffffffff81000000 T name[x]', ['name[x]', 0xffffffff81000000n]],
    ['0ffffffff81000000 T seventeen_digits', null],
    ['ffffffff81000000 T', null],
    ['ffffffff81000000 TT two_letters', null],
    ['ffffffff81000000 T two words', null],
    ['ffffffff81000000 T nb\u00a0sp', null],
    ['ffffffff81000000 T mod [m]', 'module'],
    ['ffffffff81000000 T mod []', null],
  ] as [string, [string, bigint] | null | 'module'][])('%j', (line, want) => {
    // a second, plain symbol so that files whose line is skipped still load
    const t = loadSymbols(file(Buffer.from(`ffffffff81234000 T anchor\n${line}\n`, 'latin1')));
    const entries = [...t].filter(([n]) => n !== 'anchor');
    expect(entries).toEqual(want === null || want === 'module' ? [] : [want]);
  });

  it('the table converts addresses lazily but behaves as a Map', () => {
    const t = loadSymbols(file(['ffffffff81000000 T a', 'ffffffff81000010 t b', 'ffffffff81000020 D c', 'ffffffff81000030 t b', 'ffffffff81000040 T b'].join('\n')));
    const want = new Map([
      ['a', 0xffffffff81000000n],
      ['b', 0xffffffff81000040n], // the global definition wins over the earlier locals
      ['c', 0xffffffff81000020n],
    ]);
    expect(t.size).toBe(3);
    expect(t.has('b')).toBe(true);
    expect(t.has('z')).toBe(false);
    expect(t.get('z')).toBeUndefined();
    expect(t.get('c')).toBe(0xffffffff81000020n); // converted first: iteration order is still load order
    expect([...t]).toEqual([...want]);
    expect([...t.keys()]).toEqual(['a', 'b', 'c']);
    expect([...t.values()]).toEqual([...want.values()]);
    const seen: string[] = [];
    t.forEach((v, k) => seen.push(`${k}=${v.toString(16)}`));
    expect(seen).toEqual(['a=ffffffff81000000', 'b=ffffffff81000040', 'c=ffffffff81000020']);
    t.set('d', 5n);
    expect(t.delete('a')).toBe(true);
    expect([...t]).toEqual([['b', 0xffffffff81000040n], ['c', 0xffffffff81000020n], ['d', 5n]]);
    expect(t.size).toBe(3);
    t.clear();
    expect(t.size).toBe(0);
    expect(t.get('b')).toBeUndefined();
  });

  it('a repeated name: the first global wins over locals, else the first seen', () => {
    const t = loadSymbols(
      file(
        [
          'ffffffff81000100 t dup',
          'ffffffff81000200 T dup',
          'ffffffff81000300 T dup',
          'ffffffff81000400 d only_local',
          'ffffffff81000500 d only_local',
        ].join('\n'),
      ),
    );
    expect(t.get('dup')).toBe(0xffffffff81000200n);
    expect(t.get('only_local')).toBe(0xffffffff81000400n);
  });

  it('gzip is detected by its magic, not by the name', () => {
    const p = file(zlib.gzipSync(Buffer.from('ffffffff81000000 T _text\n')), 'no-gz-suffix.txt');
    expect(loadSymbols(p).get('_text')).toBe(0xffffffff81000000n);
  });
});

describe('bad symbol files: one-line InputError', () => {
  it('no symbol at all', () => {
    const p = file('hello\nworld\n');
    expect(inputError(() => loadSymbols(p)).message).toMatch(new RegExp(`^${p}: no kernel symbols found: .*expected a System\\.map or /proc/kallsyms file$`));
  });

  it('only module symbols', () => {
    const p = file('ffffffffc0a01000 t mod_fn [xen_blkfront]\n');
    expect(inputError(() => loadSymbols(p)).message).toContain('only 1 module symbols');
  });

  it('kallsyms read without privileges (every address 0)', () => {
    const p = file('0000000000000000 T _text\n0000000000000000 D xen_p2m_addr\n');
    expect(inputError(() => loadSymbols(p)).message).toContain('all 2 symbol addresses are 0');
  });

  it('gzip magic but a corrupt stream', () => {
    const gz = zlib.gzipSync(Buffer.from('ffffffff81000000 T _text\n'.repeat(100)));
    const p = file(gz.subarray(0, gz.length - 20));
    expect(inputError(() => loadSymbols(p)).message).toMatch(new RegExp(`^${p}: offset 0: gzip magic 1f 8b, but the file is not valid gzip`));
  });

  it('missing file, directory', () => {
    expect(inputError(() => loadSymbols(path.join(dir, 'nope'))).message).toContain('no such file');
    expect(inputError(() => loadSymbols(dir)).message).toContain('not a regular file');
  });
});

describe('symbolsBeside', () => {
  it('loads IMAGE.map when it exists, else null', () => {
    const img = path.join(dir, 'guest.core');
    expect(symbolsBeside(img)).toBeNull();
    fs.writeFileSync(img + '.map', 'ffffffff81000000 T _text\n');
    expect(symbolsBeside(img)?.get('_text')).toBe(0xffffffff81000000n);
  });
});
