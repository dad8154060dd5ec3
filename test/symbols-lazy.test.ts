// The lazy System.map lookup (formats/symbols.ts, formats/system-map-text.ts) against a second code path:
// a plain reference reader written here from the line format alone (split at \n, LINE_RE of
// scripts/mksysmap's "ADDR TYPE NAME" plus kallsyms' "[module]", first global wins, else first seen), on
// the real Debian 6.1.0-56 System.map and kallsyms of corpora/real. Work is bounded by counts (lookup
// passes, whether the whole text was indexed), never by time.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { auditImage } from '../src/audit/audit-image.js';
import { openStream } from '../src/formats/save-stream.js';
import { renderJson } from '../src/report/json.js';
import { AUDIT_SYMBOLS, LazySymbolTable, loadSymbols, type SymbolTable } from '../src/formats/symbols.js';
import { indexSymbolText, lookupSymbolText } from '../src/formats/system-map-text.js';
import { gunzipCached } from './helpers/real-gz.js';

const REPO = path.resolve(__dirname, '..');
const REAL = path.join(REPO, 'corpora', 'real');
const SYSTEM_MAP_GZ = path.join(REAL, 'System.map-6.1.0-56-amd64.gz');
const KALLSYMS_GZ = path.join(REAL, 'kallsyms-domU.txt.gz');
const SAVE_GZ = path.join(REAL, 'pvplain.save.gz');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'symbols-lazy-test-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** The reference reader: name → hex digits, with the file format's rules and nothing shared with src/. */
function reference(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const global = new Set<string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([0-9a-fA-F]{1,16})\s+([A-Za-z?])\s+(\S+)(?:\s+\[([^\]\s]+)\])?\s*$/.exec(line);
    if (!m || m[4] !== undefined) continue;
    const [, digits, type, name] = m as unknown as [string, string, string, string];
    const g = type >= 'A' && type <= 'Z';
    if (global.has(name)) continue;
    if (!out.has(name) || g) out.set(name, digits);
    if (g) global.add(name);
  }
  return out;
}

/** Quoted identifiers in the modules that read kernel symbols: every name they can ask for (and other words). */
function namesInSources(): string[] {
  const files = ['src/views', 'src/audit'].flatMap((d) => fs.readdirSync(path.join(REPO, d)).map((f) => path.join(REPO, d, f)));
  files.push(path.join(REPO, 'src/report/inspect.ts'));
  const names = new Set<string>();
  for (const f of files) for (const m of fs.readFileSync(f, 'utf8').matchAll(/'([A-Za-z_][A-Za-z0-9_]*)'/g)) names.add(m[1]!);
  return [...names].sort();
}

describe.each([
  ['System.map', SYSTEM_MAP_GZ],
  ['kallsyms', KALLSYMS_GZ],
])('real %s (Debian 6.1.0-56-amd64)', (_label, gz) => {
  const text = zlib.gunzipSync(fs.readFileSync(gz)).toString('latin1');
  const want = reference(text);

  it('the whole-text index equals the reference reader, name by name and in order', () => {
    const idx = indexSymbolText(text);
    expect([...idx.index.keys()]).toEqual([...want.keys()]);
    for (const [name, slot] of idx.index) expect(idx.digits[slot], name).toBe(want.get(name));
  });

  it('one lookup pass for every name at once finds what the reference reader finds', () => {
    const found = lookupSymbolText(text, new Set(want.keys()));
    expect(found.size).toBe(want.size);
    for (const [name, digits] of want) expect(found.get(name), name).toBe(digits);
  });

  it('loadSymbols answers AUDIT_SYMBOLS in one pass, and every name the views and the audit can ask for, as the reference does', () => {
    const t = loadSymbols(gz) as LazySymbolTable;
    const check = (name: string): void => {
      const digits = want.get(name);
      expect(t.get(name), name).toBe(digits === undefined ? undefined : BigInt(`0x${digits}`));
      expect(t.has(name), name).toBe(digits !== undefined);
    };
    AUDIT_SYMBOLS.forEach(check);
    expect(t.lookupStats()).toEqual({ passes: 1, indexed: false });
    namesInSources().forEach(check); // other quoted words of those files: passes, then the whole index
  });
});

describe('odd lines: the lookup pass agrees with the whole-text index and the reference', () => {
  // lines of every shape the format allows or refuses (test/symbols.test.ts's table, and more): each word of
  // the text is looked up, and must come out as the index and the reference reader have it
  const lines = [
    'ffffffff81000000 T a',
    '1 t x',
    '  ffffffff81000000 T lead',
    'ffffffff81000000  T two_blanks',
    'ffffffff81000000 T crlf\r',
    'ffffffff81000000 ? odd_type',
    'ffffffff81000000 T name[x]',
    '0ffffffff81000000 T seventeen_digits',
    'ffffffff81000000 T',
    'ffffffff81000000 TT two_letters',
    'ffffffff81000000 T two words',
    'ffffffff81000000 T nb\u00a0sp',
    'ffffffff81000000 T trailing_nbsp\u00a0',
    'ffffffff81000000 T mod [m]',
    'ffffffff81000000 T mod []',
    'ffffffffc0a01000 t mod_fn\t[xen_blkfront]',
    'ffffffff81000100 t dup',
    'ffffffff81000200 T dup',
    'ffffffff81000300 T dup',
    'ffffffff81000400 d only_local',
    'ffffffff81000500 d only_local',
    'ffffffff81000600 T a\u0085b',
    'ffffffff81000700\tD\ttabbed\t',
    'ffffffff81000800 T re.ex$(p)',
    'ffffffff81000900 T re',
    'ffffffff81000a00 T ex',
    'x',
    '',
  ];
  it.each([
    ['\n', lines.join('\n')],
    ['\r\n', lines.join('\r\n')],
    ['\n, no final newline', lines.join('\n') + '\nffffffff81000800 T last'],
  ])('lines joined by %j', (_sep, text) => {
    const words = new Set(text.split(/[\s[\]]+/).filter((w) => w !== ''));
    const found = lookupSymbolText(text, words);
    // the same words among 100 absent names: more than one pattern takes, so the pass goes line by line
    const manyNames = new Set([...words, ...Array.from({ length: 100 }, (_, i) => `absent_${i}`)]);
    const foundByLines = lookupSymbolText(text, manyNames);
    const idx = indexSymbolText(text);
    const want = reference(text);
    for (const w of words) {
      const slot = idx.index.get(w);
      expect(found.get(w), w).toBe(slot === undefined ? undefined : idx.digits[slot]);
      expect(found.get(w), w).toBe(want.get(w));
      expect(foundByLines.get(w), w).toBe(want.get(w));
    }
    expect(foundByLines.size).toBe(found.size);
    expect(found.get('dup')).toBe('ffffffff81000200');
    expect(found.get('mod')).toBeUndefined();
  });
});

describe('loadSymbols: lazy, cached per file', () => {
  it('an audit of the real xl save reads its symbols in one pass, never indexing the whole map, with the report of a full table', async () => {
    const save = await gunzipCached(SAVE_GZ);
    const mapFile = path.join(dir, 'System.map-6.1.0-56-amd64');
    fs.writeFileSync(mapFile, zlib.gunzipSync(fs.readFileSync(SYSTEM_MAP_GZ)));
    const lazy = loadSymbols(mapFile) as LazySymbolTable;
    const full: SymbolTable = new Map([...reference(fs.readFileSync(mapFile, 'latin1'))].map(([n, d]) => [n, BigInt(`0x${d}`)]));
    const reports: string[] = [];
    for (const symbols of [lazy, full]) {
      const img = openStream(save, { symbols });
      try {
        reports.push(renderJson((await auditImage(img, { jobs: 0 })).report));
      } finally {
        img.close();
      }
    }
    expect(lazy.lookupStats()).toEqual({ passes: 1, indexed: false });
    expect(reports[0]).toBe(reports[1]);
  });

  it('the same file loads once per process; a changed file (mtime) is read again; tables do not share changes', () => {
    const f = path.join(dir, 'cache.map');
    fs.writeFileSync(f, 'ffffffff81000000 T _text\nffffffff81000010 D max_pfn\n');
    const a = loadSymbols(f) as LazySymbolTable;
    expect(a.get('max_pfn')).toBe(0xffffffff81000010n);
    const b = loadSymbols(f) as LazySymbolTable;
    expect(b.lookupStats().passes).toBe(1); // a's pass: the text and its answers are shared
    expect(b.get('max_pfn')).toBe(0xffffffff81000010n);
    expect(b.lookupStats().passes).toBe(1);
    a.set('max_pfn', 1n); // a's own copy
    expect(b.get('max_pfn')).toBe(0xffffffff81000010n);
    fs.writeFileSync(f, 'ffffffff81000000 T _text\nffffffff81000020 D max_pfn\n');
    fs.utimesSync(f, new Date(), new Date(Date.parse('2001-01-01T00:00:00Z')));
    const c = loadSymbols(f) as LazySymbolTable;
    expect(c.lookupStats().passes).toBe(0);
    expect(c.get('max_pfn')).toBe(0xffffffff81000020n);
  });

  it.each([
    // names outside AUDIT_SYMBOLS: a pass each, up to MAX_LOOKUP_PASSES, then the whole text is indexed once
    [['_text'], { passes: 1, indexed: false }],
    [['_text', 'a1', 'a2', 'a3'], { passes: 4, indexed: false }],
    [['_text', 'a1', 'a2', 'a3', 'a4', 'a5'], { passes: 4, indexed: true }],
  ] as [string[], { passes: number; indexed: boolean }][])('lookups %j → %j', (names, stats) => {
    const f = path.join(dir, `passes-${names.length}.map`);
    fs.writeFileSync(f, ['ffffffff81000000 T _text', 'ffffffff81000100 t a1', 'ffffffff81000200 T a5'].join('\n'));
    const t = loadSymbols(f) as LazySymbolTable;
    for (const n of names) t.get(n);
    expect(t.lookupStats()).toEqual(stats);
    expect([t.get('a1'), t.get('a2'), t.get('a5')]).toEqual([0xffffffff81000100n, undefined, 0xffffffff81000200n]);
  });
});
