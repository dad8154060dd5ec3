// Kernel symbols from System.map or /proc/kallsyms text (Linux scripts/mksysmap "ADDR TYPE NAME" lines; kernel/kallsyms.c s_show adds "\t[module]" for module symbols).
//
// Accepted lines: `<hex address> <type letter> <name>` separated by blanks or tabs, optionally followed
// by `[module]` (kallsyms): module symbols are ignored (their addresses move with every load). Lines
// that do not parse are skipped; a file with no symbol at all, or whose every address is zero
// (kallsyms read without privileges: kptr_restrict), is an InputError. Plain text or gzip (magic 1f 8b),
// read whole through inputs/text-input.ts under its 'system-map' size cap; the lines themselves are read
// by formats/system-map-text.ts.
//
// Lazily (docs/bench-notes.md "System.map"): a distribution System.map has ~90 k names, an audit reads
// about thirty. Loading keeps the text and checks that it holds a real address; the first lookup finds
// every name of AUDIT_SYMBOLS (and the one asked for) in one pass that parses only the lines defining
// them; the whole text is indexed only for what needs every name (size, iteration, changes) or after
// MAX_LOOKUP_PASSES lookups of other names. Loaded texts are kept per file (path, inode, size, mtime) for
// the process, so a scan or a fleet worker reads a System.map once however many images use it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../common/errors.js';
import { STDIO_NAME } from '../common/input-file.js';
import { readTextInput, sourceName } from '../inputs/text-input.js';
import { hasNonZeroSymbol, indexSymbolText, lookupSymbolText, type SymbolIndex } from './system-map-text.js';

/** Suffix of the System.map looked for beside an image. */
export const SYMBOLS_BESIDE_SUFFIX = '.map';

/**
 * The kernel symbols src/views, src/audit and the inspect report read (symbols.get/has and SymbolReader
 * calls): the first lookup in a loaded System.map finds all of them in one pass. A name missing here still
 * resolves, at the cost of one more pass over the text.
 */
export const AUDIT_SYMBOLS: readonly string[] = [
  // p2m layout (guest-view.ts, guest-mirror.ts, kernel-root.ts, inspect.ts)
  'xen_p2m_addr', 'xen_p2m_size', 'xen_max_p2m_pfn', 'xen_p2m_last_pfn', 'p2m_top', 'p2m_mid_missing', 'p2m_missing',
  'p2m_identity', 'p2m_top_mfn', 'p2m_top_mfn_p', 'p2m_mid_missing_mfn', 'max_pfn', 'xen_start_info', 'page_offset_base',
  'HYPERVISOR_shared_info', 'init_top_pgt', 'init_level4_pgt', 'swapper_pg_dir', 'linux_banner',
  // crash's start-up reads and the save prediction (crash-startup.ts, save-prediction.ts)
  '__per_cpu_offset', '__per_cpu_load', '__per_cpu_start', '__per_cpu_end', 'nr_cpu_ids', 'current_task', 'cpu_number',
  'pcpu_hot', 'log_buf', 'log_buf_len', 'prb', 'cpu_tss_rw', 'cpu_tss', 'init_tss', 'gdt_page', 'init_task',
];

/** Lookups of names outside AUDIT_SYMBOLS answered by a pass each before the whole text is indexed. */
export const MAX_LOOKUP_PASSES = 4;
/** Loaded System.map texts kept per process (a distribution map is ~4 MB of text). */
const CACHED_TEXTS = 8;

/** One loaded System.map text and what has been looked up in it; shared by every table loaded from the file. */
class SymbolText {
  private readonly values = new Map<string, bigint | null>();
  private full: SymbolIndex | null = null;
  /** lookup passes run (AUDIT_SYMBOLS' pass included) */
  passes = 0;

  constructor(private readonly text: string) {}

  /** Every name, parsed once (see the header). */
  index(): SymbolIndex {
    return (this.full ??= indexSymbolText(this.text));
  }

  get indexed(): boolean {
    return this.full !== null;
  }

  lookup(name: string): bigint | undefined {
    const known = this.values.get(name);
    if (known !== undefined) return known ?? undefined;
    if (this.full === null && this.passes < MAX_LOOKUP_PASSES) {
      const wanted = new Set(this.passes === 0 ? [...AUDIT_SYMBOLS, name] : [name]);
      for (const n of this.values.keys()) wanted.delete(n);
      this.passes++;
      const found = lookupSymbolText(this.text, wanted);
      for (const n of wanted) {
        const digits = found.get(n);
        this.values.set(n, digits === undefined ? null : BigInt('0x' + digits));
      }
    } else {
      const idx = this.index();
      const slot = idx.index.get(name);
      this.values.set(name, slot === undefined ? null : BigInt('0x' + idx.digits[slot]!));
    }
    return this.values.get(name) ?? undefined;
  }
}

/**
 * A symbol table over a loaded System.map text, answering `get`/`has` by lookups (see the header).
 * Everything that walks the table sees every entry, in load order, as a plain Map would (the whole text is
 * indexed then); `set`/`delete`/`clear` work as on a Map, on this table's own copy.
 */
export class LazySymbolTable extends Map<string, bigint> {
  private source: SymbolText | null;

  constructor(source: SymbolText) {
    super();
    this.source = source;
  }

  /** Lookup passes run over this table's text, and whether it was indexed whole (for tests and the bench). */
  lookupStats(): { passes: number; indexed: boolean } {
    return this.source ? { passes: this.source.passes, indexed: this.source.indexed } : { passes: 0, indexed: true };
  }

  /** Whether the table has a symbol (always, while it reads a loaded text: loadSymbols checked it). */
  hasAny(): boolean {
    return this.source !== null || super.size > 0;
  }

  /** Copy every entry into the Map itself (in load order) and drop the text. */
  private materialize(): void {
    const src = this.source;
    if (src === null) return;
    this.source = null;
    for (const name of src.index().index.keys()) super.set(name, src.lookup(name)!);
  }

  override get(name: string): bigint | undefined {
    return this.source ? this.source.lookup(name) : super.get(name);
  }

  override has(name: string): boolean {
    return this.source ? this.source.lookup(name) !== undefined : super.has(name);
  }

  override get size(): number {
    return this.source ? this.source.index().index.size : super.size;
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
    this.source = null;
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

/**
 * Whether a table has any symbol. A loaded System.map always has (loadSymbols refuses one without), so
 * this does not index its whole text as `size` would.
 */
export function hasSymbols(t: SymbolTable): boolean {
  return t instanceof LazySymbolTable ? t.hasAny() : t.size > 0;
}

const textCache = new Map<string, SymbolText>();

/** The cache key of a regular file (path, device:inode, size, mtime), or null (standard input, not a file). */
function cacheKey(file: string): string | null {
  if (file === STDIO_NAME) return null;
  try {
    const st = fs.statSync(file);
    return st.isFile() ? `${path.resolve(file)}\0${st.dev}:${st.ino}\0${st.size}\0${st.mtimeMs}` : null;
  } catch {
    return null; // readTextInput says why
  }
}

/** Why a text without a usable symbol is refused (the whole text is parsed for the message). */
function noSymbolsError(file: string, text: string): InputError {
  const { parsed, modules } = indexSymbolText(text);
  const where = sourceName(file);
  if (parsed === 0) {
    const why = modules > 0 ? `only ${modules} module symbols ([module] lines), which are ignored` : 'no line of the form "ffffffff81000000 T _text"';
    return new InputError(`${where}: no kernel symbols found: ${why}; expected a System.map or /proc/kallsyms file`);
  }
  return new InputError(`${where}: all ${parsed} symbol addresses are 0 (kallsyms read without privileges? see kptr_restrict); expected real addresses`);
}

/**
 * Load kernel symbols (name → VA) from a System.map or /proc/kallsyms file, plain or gzip'ed.
 * Module symbols are ignored. When a name repeats (static symbols of different files), the first global
 * definition wins, else the first one seen.
 */
export function loadSymbols(file: string): SymbolTable {
  const key = cacheKey(file);
  let src = key === null ? undefined : textCache.get(key);
  if (src === undefined) {
    const text = readTextInput(file, 'system-map', 'latin1');
    if (!hasNonZeroSymbol(text)) throw noSymbolsError(file, text);
    src = new SymbolText(text);
    if (key !== null) {
      if (textCache.size >= CACHED_TEXTS) textCache.delete(textCache.keys().next().value!);
      textCache.set(key, src);
    }
  }
  return new LazySymbolTable(src);
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
