// Kernel symbols from System.map or /proc/kallsyms text (Linux scripts/mksysmap "ADDR TYPE NAME" lines; kernel/kallsyms.c s_show adds "\t[module]" for module symbols).
//
// Accepted lines: `<hex address> <type letter> <name>` separated by blanks or tabs, optionally followed
// by `[module]` (kallsyms): module symbols are ignored (their addresses move with every load). Lines
// that do not parse are skipped; a file with no symbol at all, or whose every address is zero
// (kallsyms read without privileges: kptr_restrict), is an InputError. Plain text or gzip (magic
// 1f 8b), decompressed with node:zlib under an output bound.
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { InputError } from '../common/errors.js';

/** gzip member magic (RFC 1952 ID1 ID2). */
const GZIP_MAGIC: readonly number[] = [0x1f, 0x8b];
/** Largest symbol file accepted, compressed or not (a distribution kallsyms is ~15 MB). */
export const MAX_SYMBOL_FILE_BYTES = 512 * 1024 * 1024;
/** Suffix of the System.map looked for beside an image. */
export const SYMBOLS_BESIDE_SUFFIX = '.map';
/** One symbol line; a module symbol ends in `[name]`. */
const LINE_RE = /^\s*([0-9a-fA-F]{1,16})\s+([A-Za-z?])\s+(\S+)(?:\s+\[([^\]\s]+)\])?\s*$/;
/** An address of zeros only (kallsyms without privileges prints every address as 0). */
const ALL_ZERO_RE = /^0+$/;

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

/**
 * A symbol table whose addresses become BigInts on first use. A distribution System.map has ~90 k names,
 * an audit reads about ten: loading indexes the names (name → slot) with each address's hex digits, and
 * `get` converts (and keeps) one address at a time. Everything that walks the table sees every entry, in
 * load order, as a plain Map would; `set`/`delete`/`clear` work as on a Map.
 */
export class LazySymbolTable extends Map<string, bigint> {
  private index: Map<string, number> | null;
  private digits: string[];

  /** `index`: name → slot in `digits` (hex digits of the address, no 0x), in load order. */
  constructor(index: Map<string, number>, digits: string[]) {
    super();
    this.index = index;
    this.digits = digits;
  }

  /** Convert every address into the Map itself (in load order) and drop the index. */
  private materialize(): void {
    const index = this.index;
    if (index === null) return;
    const converted = new Map(super.entries());
    super.clear();
    for (const [name, slot] of index) super.set(name, converted.get(name) ?? BigInt('0x' + this.digits[slot]!));
    this.index = null;
    this.digits = [];
  }

  override get(name: string): bigint | undefined {
    const v = super.get(name);
    if (v !== undefined || this.index === null) return v;
    const slot = this.index.get(name);
    if (slot === undefined) return undefined;
    const va = BigInt('0x' + this.digits[slot]!);
    super.set(name, va);
    return va;
  }

  override has(name: string): boolean {
    return this.index !== null ? this.index.has(name) : super.has(name);
  }

  override get size(): number {
    return this.index !== null ? this.index.size : super.size;
  }

  override set(name: string, va: bigint): this {
    this.materialize();
    return super.set(name, va);
  }

  override delete(name: string): boolean {
    this.materialize();
    return super.delete(name);
  }

  override clear(): void {
    this.index = null;
    this.digits = [];
    super.clear();
  }

  override entries(): MapIterator<[string, bigint]> {
    this.materialize();
    return super.entries();
  }

  override keys(): MapIterator<string> {
    this.materialize();
    return super.keys();
  }

  override values(): MapIterator<bigint> {
    this.materialize();
    return super.values();
  }

  override forEach(fn: (value: bigint, key: string, map: Map<string, bigint>) => void, thisArg?: unknown): void {
    this.materialize();
    super.forEach(fn, thisArg);
  }

  override [Symbol.iterator](): MapIterator<[string, bigint]> {
    return this.entries();
  }
}

const CH_SPACE = 0x20;
const CH_QUESTION = 0x3f;
/** DEL: the fast path takes printable ASCII names only (anything else goes to LINE_RE). */
const CH_DEL = 0x7f;
const MAX_ADDRESS_DIGITS = 16;

function isHexDigit(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function isTypeLetter(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === CH_QUESTION;
}

/** A printable ASCII character other than the blank: part of a name for LINE_RE's \S too. */
function isNameChar(c: number): boolean {
  return c > CH_SPACE && c < CH_DEL;
}

/**
 * For the common line `ADDR T NAME` — 1–16 hex digits, one space, a type letter, one space, a name of
 * printable ASCII characters up to the line end — the position of the first space; otherwise −1 and the
 * caller uses LINE_RE. Every line accepted here is one LINE_RE accepts with the same three fields and no
 * module, so the result does not depend on which path read a line.
 */
function plainLineSpaces(text: string, start: number, end: number): number {
  let i = start;
  while (i < end && i - start < MAX_ADDRESS_DIGITS && isHexDigit(text.charCodeAt(i))) i++;
  // at i: a space, the type letter, a space, then at least one name character before the line end
  if (i === start || i + 3 >= end || text.charCodeAt(i) !== CH_SPACE) return -1;
  if (!isTypeLetter(text.charCodeAt(i + 1)) || text.charCodeAt(i + 2) !== CH_SPACE) return -1;
  for (let k = i + 3; k < end; k++) if (!isNameChar(text.charCodeAt(k))) return -1;
  return i;
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
  const index = new Map<string, number>(); // name → slot
  const digitsOf: string[] = [];
  const globalAt: boolean[] = [];
  let parsed = 0;
  let modules = 0;
  let nonZero = false;
  let lineStart = 0;
  while (lineStart < text.length) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd < 0) lineEnd = text.length;
    let digits: string;
    let type: string;
    let name: string;
    const sp = plainLineSpaces(text, lineStart, lineEnd);
    if (sp >= 0) {
      // the common `ADDR T NAME` line, split where plainLineSpaces found its two blanks
      digits = text.slice(lineStart, sp);
      type = text[sp + 1]!;
      name = text.slice(sp + 3, lineEnd);
    } else {
      const m = LINE_RE.exec(text.slice(lineStart, lineEnd));
      if (!m) {
        lineStart = lineEnd + 1;
        continue;
      }
      if (m[4] !== undefined) {
        modules++;
        lineStart = lineEnd + 1;
        continue;
      }
      digits = m[1]!;
      type = m[2]!;
      name = m[3]!;
    }
    lineStart = lineEnd + 1;
    parsed++;
    if (!nonZero && !ALL_ZERO_RE.test(digits)) nonZero = true;
    const g = isGlobal(type);
    const slot = index.get(name);
    if (slot === undefined) {
      index.set(name, digitsOf.length);
      digitsOf.push(digits);
      globalAt.push(g);
    } else if (g && !globalAt[slot]) {
      digitsOf[slot] = digits;
      globalAt[slot] = true;
    }
  }
  if (parsed === 0) {
    const why = modules > 0 ? `only ${modules} module symbols ([module] lines), which are ignored` : 'no line of the form "ffffffff81000000 T _text"';
    throw new InputError(`${path}: no kernel symbols found: ${why}; expected a System.map or /proc/kallsyms file`);
  }
  if (!nonZero) {
    throw new InputError(`${path}: all ${parsed} symbol addresses are 0 (kallsyms read without privileges? see kptr_restrict); expected real addresses`);
  }
  return new LazySymbolTable(index, digitsOf);
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

/** Kernel symbols: name → virtual address. */
export type SymbolTable = Map<string, bigint>;
