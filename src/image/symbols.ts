// Kernel symbols from System.map or /proc/kallsyms text (Linux scripts/mksysmap "ADDR TYPE NAME" lines; kernel/kallsyms.c s_show adds "\t[module]" for module symbols).
//
// Accepted lines: `<hex address> <type letter> <name>` separated by blanks or tabs, optionally followed
// by `[module]` (kallsyms): module symbols are ignored (their addresses move with every load). Lines
// that do not parse are skipped; a file with no symbol at all, or whose every address is zero
// (kallsyms read without privileges: kptr_restrict), is an InputError. Plain text or gzip (magic
// 1f 8b), decompressed with node:zlib under an output bound.
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { InputError, type SymbolTable } from './guest-image.js';

/** gzip member magic (RFC 1952 ID1 ID2). */
const GZIP_MAGIC: readonly number[] = [0x1f, 0x8b];
/** Largest symbol file accepted, compressed or not (a distribution kallsyms is ~15 MB). */
export const MAX_SYMBOL_FILE_BYTES = 512 * 1024 * 1024;
/** Suffix of the System.map looked for beside an image. */
export const SYMBOLS_BESIDE_SUFFIX = '.map';
/** One symbol line; a module symbol ends in `[name]`. */
const LINE_RE = /^\s*([0-9a-fA-F]{1,16})\s+([A-Za-z?])\s+(\S+)(?:\s+\[([^\]\s]+)\])?\s*$/;

function readSymbolFile(path: string): Buffer {
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(`${path}: cannot read the symbol file (${code === 'ENOENT' ? 'no such file' : code ?? String(e)})`);
  }
  if (!st.isFile()) throw new InputError(`${path}: not a regular file, expected a System.map or kallsyms text file`);
  if (st.size > MAX_SYMBOL_FILE_BYTES) throw new InputError(`${path}: ${st.size} bytes, larger than the ${MAX_SYMBOL_FILE_BYTES} bytes a symbol file may have`);
  let raw: Buffer;
  try {
    raw = fs.readFileSync(path);
  } catch (e) {
    throw new InputError(`${path}: cannot read the symbol file (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  if (raw.length >= GZIP_MAGIC.length && raw[0] === GZIP_MAGIC[0] && raw[1] === GZIP_MAGIC[1]) {
    try {
      return zlib.gunzipSync(raw, { maxOutputLength: MAX_SYMBOL_FILE_BYTES });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = code === 'ERR_BUFFER_TOO_LARGE' ? `decompresses to more than ${MAX_SYMBOL_FILE_BYTES} bytes` : `is not valid gzip (${(e as Error).message.split('\n')[0]})`;
      throw new InputError(`${path}: offset 0: gzip magic 1f 8b, but the file ${why}`);
    }
  }
  return raw;
}

/** Is a symbol type letter global (upper case)? Locals may repeat a name; globals win. */
function isGlobal(type: string): boolean {
  return type >= 'A' && type <= 'Z';
}

/**
 * Load kernel symbols (name → VA) from a System.map or /proc/kallsyms file, plain or gzip'ed.
 * Module symbols are ignored. When a name repeats (static symbols of different files), the first global
 * definition wins, else the first one seen.
 */
export function loadSymbols(path: string): SymbolTable {
  const text = readSymbolFile(path).toString('latin1');
  const table: SymbolTable = new Map();
  const global = new Set<string>();
  let parsed = 0;
  let modules = 0;
  let nonZero = false;
  let lineStart = 0;
  while (lineStart < text.length) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd < 0) lineEnd = text.length;
    const m = LINE_RE.exec(text.slice(lineStart, lineEnd));
    lineStart = lineEnd + 1;
    if (!m) continue;
    if (m[4] !== undefined) {
      modules++;
      continue;
    }
    const va = BigInt('0x' + m[1]!);
    const type = m[2]!;
    const name = m[3]!;
    parsed++;
    if (va !== 0n) nonZero = true;
    const g = isGlobal(type);
    if (!table.has(name) || (g && !global.has(name))) {
      table.set(name, va);
      if (g) global.add(name);
    }
  }
  if (parsed === 0) {
    const why = modules > 0 ? `only ${modules} module symbols ([module] lines), which are ignored` : 'no line of the form "ffffffff81000000 T _text"';
    throw new InputError(`${path}: no kernel symbols found: ${why}; expected a System.map or /proc/kallsyms file`);
  }
  if (!nonZero) {
    throw new InputError(`${path}: all ${parsed} symbol addresses are 0 (kallsyms read without privileges? see kptr_restrict); expected real addresses`);
  }
  return table;
}

/** Symbols from `imagePath + '.map'` when that file exists, else null. */
export function symbolsBeside(imagePath: string): SymbolTable | null {
  const mapPath = imagePath + SYMBOLS_BESIDE_SUFFIX;
  if (!fs.existsSync(mapPath)) return null;
  return loadSymbols(mapPath);
}

/** Write a symbol table as System.map text (`ffffffff81000000 D name`, sorted by address). */
export function formatSystemMap(symbols: SymbolTable): string {
  return [...symbols]
    .sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : a[0].localeCompare(b[0])))
    .map(([name, va]) => `${va.toString(16).padStart(16, '0')} D ${name}\n`)
    .join('');
}
