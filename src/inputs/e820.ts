// Host e820 maps as Xen prints them (xen/arch/x86/e820.c print_e820_memory_map) and Linux prints and sanitises them (arch/x86/kernel/e820.c e820_print_type, sanitize_e820_table).
import { E820_ACPI, E820_NVS, E820_PMEM, E820_PRAM, E820_RAM, E820_RESERVED, E820_UNUSABLE, PAGE_SIZE } from '../xen/abi.js';
import { InputError } from '../common/errors.js';

/** Xen asm/page-bits.h PADDR_BITS: x86-64 physical addresses have at most 52 bits. */
const PADDR_BITS = 52;
const MAX_PADDR = 2n ** BigInt(PADDR_BITS);
/** Linux uapi e820 enum E820_TYPE_SOFT_RESERVED (5.5+), printed as "soft reserved". */
const E820_TYPE_SOFT_RESERVED = 0xefffffff;
/** e820 entry types are u32 in both Xen's and Linux's struct e820entry. */
const E820_TYPE_MAX = 0xffffffff;
/** Types Linux never merges with a neighbour (E820_PRAM; e820_nomerge() in 5.5+ adds soft reserved). */
const E820_NOMERGE_TYPES: ReadonlySet<number> = new Set([E820_PRAM, E820_TYPE_SOFT_RESERVED]);

/** Which printer produced a line: Xen's own console ('xen') or a Linux kernel ('linux'). */
export type E820Kind = 'xen' | 'linux';

/** One recognised entry line. */
export interface E820Line {
  lineNo: number;
  kind: E820Kind;
  entry: E820Entry;
}

/** A run of consecutive entry lines of one kind, with the "... RAM map:" header right above it, if any. */
export interface E820Block {
  kind: E820Kind;
  /** header text (prefixes stripped) on the line just above the block, or null */
  header: string | null;
  headerLine: number | null;
  /** 1-based line numbers of the first and last entry line */
  startLine: number;
  endLine: number;
  lines: E820Line[];
  entries: E820Entry[];
}

const ACCEPTED_FORMS =
  'Xen "(XEN)  A - B (type)" (end exclusive) or "(XEN)  [A, B] (type)" (end inclusive), ' +
  'Linux "BIOS-e820: [mem 0xA-0xB] type" or "Xen: [mem 0xA-0xB] type" (end inclusive), ' +
  'old Linux "BIOS-e820: A - B (type)", or a JSON list [{"addr", "size", "type"}] / [{"start", "end", "type"}]';

// ---- type names ---------------------------------------------------------------------------------

const TYPE_BY_NAME: ReadonlyMap<string, number> = new Map([
  ['usable', E820_RAM],
  ['ram', E820_RAM],
  ['reserved', E820_RESERVED],
  ['acpi data', E820_ACPI],
  ['acpi', E820_ACPI],
  ['acpi nvs', E820_NVS],
  ['nvs', E820_NVS],
  ['unusable', E820_UNUSABLE],
  ['pmem', E820_PMEM],
  ['pram', E820_PRAM],
  ['soft reserved', E820_TYPE_SOFT_RESERVED],
]);

/** Linux's name for an e820 type (e820_print_type). */
export function e820TypeName(type: number): string {
  switch (type) {
    case E820_RAM:
      return 'usable';
    case E820_RESERVED:
      return 'reserved';
    case E820_ACPI:
      return 'ACPI data';
    case E820_NVS:
      return 'ACPI NVS';
    case E820_UNUSABLE:
      return 'unusable';
    case E820_PMEM:
    case E820_PRAM:
      return `persistent (type ${type})`;
    case E820_TYPE_SOFT_RESERVED:
      return 'soft reserved';
    default:
      return `type ${type}`;
  }
}

/** Xen's text for an e820 type (print_e820_memory_map): five names in parentheses, else bare "type N". */
function xenTypeText(type: number): string {
  switch (type) {
    case E820_RAM:
    case E820_RESERVED:
    case E820_ACPI:
    case E820_NVS:
    case E820_UNUSABLE:
      return `(${e820TypeName(type)})`;
    default:
      return `type ${type}`;
  }
}

function validType(n: number): number | null {
  return Number.isInteger(n) && n > 0 && n <= E820_TYPE_MAX ? n : null;
}

/** Type text as Xen or Linux print it ("(usable)", "ACPI NVS", "persistent (type 12)", "type 9"), or a number. */
export function parseE820Type(text: string): number | null {
  let t = text.trim();
  const paren = /^\((.*)\)$/.exec(t);
  if (paren) t = paren[1]!.trim();
  t = t.toLowerCase().replace(/\s+/g, ' ');
  if (/^\d+$/.test(t)) return validType(Number(t));
  const numbered = /^(?:persistent )?\(?type (\d+)\)?$/.exec(t);
  if (numbered) return validType(Number(numbered[1]));
  return TYPE_BY_NAME.get(t) ?? null;
}

// ---- numbers ------------------------------------------------------------------------------------

/** A hex address (optional 0x), exactly, as a bigint. */
function hexValue(digits: string): bigint {
  return BigInt('0x' + digits.replace(/^0x/i, ''));
}

// ---- line recognition ---------------------------------------------------------------------------

/** Linux e820__print_table() "who" prefixes. */
const LINUX_WHO = '(?:BIOS-e820|BIOS-e801|BIOS-88|Xen|modified|extended|user)';
const HEX = '(?:0x)?([0-9a-f]+)';
const XEN_OLD_RE = new RegExp(`^\\s*${HEX}\\s*-\\s*${HEX}\\s+(\\S.*?)\\s*$`, 'i');
const XEN_NEW_RE = new RegExp(`^\\s*\\[\\s*${HEX}\\s*,\\s*${HEX}\\s*\\]\\s+(\\S.*?)\\s*$`, 'i');
const LINUX_OLD_RE = new RegExp(`^\\s*${LINUX_WHO}:\\s*${HEX}\\s*-\\s*${HEX}\\s+(\\S.*?)\\s*$`, 'i');
const LINUX_MEM_RE = new RegExp(`^\\s*${LINUX_WHO}:\\s*\\[mem\\s+${HEX}\\s*-\\s*${HEX}\\]\\s+(\\S.*?)\\s*$`, 'i');
/** Lines that claim to be entries: they must parse, or the input is rejected. */
const XEN_CANDIDATE_RE = /^\s*(?:\[\s*(?:0x)?[0-9a-f]{8,}\s*(?:,|\s(?:0x)?[0-9a-f])|(?:0x)?[0-9a-f]{8,}\s*-)/i;
const LINUX_CANDIDATE_RE = new RegExp(`^\\s*${LINUX_WHO}:\\s*(?:\\[mem\\b|(?:0x)?[0-9a-f]{8,}\\s*-)`, 'i');
/** "Xen-e820 RAM map:", "EFI RAM map:", "BIOS-provided physical RAM map:", ... */
const HEADER_RE = /\bRAM map:\s*$/;
/** dmesg "[    0.000000] " stamps. */
const DMESG_STAMP_RE = /^\s*\[\s*\d+\.\d+\]\s?/;
/** Xen console_timestamps= stamps (drivers/char/console.c): raw "[0000001b4a3297f3]", date(ms), boot. */
const XEN_STAMP_RE = /^\s*\[(?:[0-9a-f]{16}|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?|\s*\d+\.\d+)\]/i;
const XEN_PREFIX = '(XEN)';

/** The text of a line after timestamps and the (XEN) prefix, and whether it came from Xen's console. */
function stripPrefixes(line: string): { body: string; fromXen: boolean } {
  const s = line.replace(DMESG_STAMP_RE, '');
  const at = s.indexOf(XEN_PREFIX);
  if (at < 0) return { body: s, fromXen: false };
  return { body: s.slice(at + XEN_PREFIX.length).replace(XEN_STAMP_RE, ''), fromXen: true };
}

interface RawRange {
  kind: E820Kind;
  start: bigint;
  /** exclusive */
  end: bigint;
  typeText: string;
}

function matchEntry(body: string): RawRange | null {
  let m = XEN_OLD_RE.exec(body);
  if (m) return { kind: 'xen', start: hexValue(m[1]!), end: hexValue(m[2]!), typeText: m[3]! };
  m = XEN_NEW_RE.exec(body);
  if (m) return { kind: 'xen', start: hexValue(m[1]!), end: hexValue(m[2]!) + 1n, typeText: m[3]! };
  m = LINUX_MEM_RE.exec(body);
  if (m) return { kind: 'linux', start: hexValue(m[1]!), end: hexValue(m[2]!) + 1n, typeText: m[3]! };
  m = LINUX_OLD_RE.exec(body);
  if (m) return { kind: 'linux', start: hexValue(m[1]!), end: hexValue(m[2]!), typeText: m[3]! };
  return null;
}

function expectedFor(body: string): string {
  return LINUX_CANDIDATE_RE.test(body) && /\[mem\b/i.test(body)
    ? 'expected "<who>: [mem 0xA-0xB] type"'
    : 'expected "A - B (type)" or "[A, B] (type)"';
}

/** Check a range and build the entry; `where` names the line or JSON element in messages. */
function checkedEntry(start: bigint, end: bigint, type: number, where: string): E820Entry {
  if (end > MAX_PADDR || start > MAX_PADDR) {
    throw new InputError(`${where}: address 0x${(end > MAX_PADDR ? end : start).toString(16)} is beyond 2^${PADDR_BITS}`);
  }
  if (start >= end) {
    throw new InputError(`${where}: start 0x${start.toString(16)} is not below end 0x${end.toString(16)} (end exclusive)`);
  }
  return { addr: Number(start), size: Number(end - start), type };
}

/** Parse one line: an entry, null for noise, or InputError for a line that looks like an entry but is not one. */
function parseLine(line: string, lineNo: number, source: string): { body: string; line: E820Line | null } {
  const { body, fromXen } = stripPrefixes(line);
  const raw = matchEntry(body);
  const where = `${source}:${lineNo}`;
  const candidate = XEN_CANDIDATE_RE.test(body) || LINUX_CANDIDATE_RE.test(body);
  const type = raw ? parseE820Type(raw.typeText) : null;
  if (raw === null || type === null) {
    if (!candidate) return { body, line: null };
    const why = raw ? `unknown type "${raw.typeText}"; ` : '';
    throw new InputError(`${where}: cannot parse e820 line "${line.trim()}": ${why}${expectedFor(body)}`);
  }
  const kind: E820Kind = fromXen ? 'xen' : raw.kind;
  return { body, line: { lineNo, kind, entry: checkedEntry(raw.start, raw.end, type, where) } };
}

/**
 * Lines longer than this are never entries (a Xen or Linux e820 line, prefixes included, is under 120
 * characters); they are skipped unparsed, so a pasted multi-megabyte line costs one length check.
 */
const MAX_ENTRY_LINE_CHARS = 4096;

/**
 * Every run of consecutive entry lines of one kind, in text order, each with the "... RAM map:" header
 * directly above it (if any). Throws InputError for lines that look like entries but do not parse, and (with
 * `maxEntries`) at the first block longer than that, before reading on.
 */
export function findE820Blocks(text: string | Iterable<string>, source = '<input>', maxEntries = Infinity): E820Block[] {
  const blocks: E820Block[] = [];
  let current: E820Block | null = null;
  let header: { text: string; lineNo: number } | null = null;
  // a text is split here; an iterable of lines (inputs/text-input.ts) is parsed as it streams in
  const lines = typeof text === 'string' ? text.split(/\r?\n/) : text;
  let lineNo = 0;
  for (const raw of lines) {
    lineNo++;
    // a line far longer than any entry is noise, and is not given to the regular expressions at all
    const { body, line } = raw.length > MAX_ENTRY_LINE_CHARS ? { body: '', line: null } : parseLine(raw, lineNo, source);
    if (line === null) {
      current = null;
      header = HEADER_RE.test(body) ? { text: body.trim(), lineNo } : null;
      continue;
    }
    if (current === null || current.kind !== line.kind) {
      const h: { text: string; lineNo: number } | null = current === null ? header : null;
      current = {
        kind: line.kind,
        header: h?.text ?? null,
        headerLine: h?.lineNo ?? null,
        startLine: lineNo,
        endLine: lineNo,
        lines: [],
        entries: [],
      };
      blocks.push(current);
    }
    current.lines.push(line);
    current.entries.push(line.entry);
    current.endLine = lineNo;
    header = null;
    if (current.entries.length > maxEntries) {
      throw new InputError(`${source}:${lineNo}: a memory map of more than ${maxEntries} entries, but Xen's e820 holds at most E820MAX = ${XEN_E820MAX} (xen/arch/x86/include/asm/e820.h): no Xen RAM map has more`);
    }
  }
  return blocks;
}

/** Xen's final map header ("Xen-e820 RAM map:", "EFI RAM map:", ...), not the e820_verbose "Initial ..." one. */
function isXenFinalHeader(block: E820Block): boolean {
  return block.kind === 'xen' && block.header !== null && !/^Initial\b/.test(block.header);
}

/** The map to take: the block under Xen's final "... RAM map:" header, else the first block. */
export function chooseE820Block(blocks: E820Block[]): E820Block | null {
  return blocks.find(isXenFinalHeader) ?? blocks[0] ?? null;
}

// ---- JSON ---------------------------------------------------------------------------------------

function jsonNumber(v: unknown, field: string, where: string): bigint {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === 'string' && /^\s*0x[0-9a-f]+\s*$/i.test(v)) return hexValue(v.trim());
  if (typeof v === 'string' && /^\s*\d+\s*$/.test(v)) return BigInt(v.trim());
  throw new InputError(`${where}: "${field}" must be a non-negative integer or a hex string like "0x9fc00", got ${JSON.stringify(v)}`);
}

function jsonType(v: unknown, where: string): number {
  const t = typeof v === 'number' ? validType(v) : typeof v === 'string' ? parseE820Type(v) : null;
  if (t === null) throw new InputError(`${where}: unknown e820 type ${JSON.stringify(v)}`);
  return t;
}

function jsonEntry(item: unknown, index: number, source: string): E820Entry {
  const where = `${source}: JSON entry ${index}`;
  if (typeof item !== 'object' || item === null || Array.isArray(item)) {
    throw new InputError(`${where}: expected an object {"addr", "size", "type"} or {"start", "end", "type"}`);
  }
  const o = item as Record<string, unknown>;
  const type = jsonType(o['type'], where);
  if ('addr' in o && 'size' in o) {
    const start = jsonNumber(o['addr'], 'addr', where);
    return checkedEntry(start, start + jsonNumber(o['size'], 'size', where), type, where);
  }
  if ('start' in o && 'end' in o) {
    return checkedEntry(jsonNumber(o['start'], 'start', where), jsonNumber(o['end'], 'end', where), type, where);
  }
  throw new InputError(`${where}: expected "addr" and "size", or "start" and "end" (end exclusive)`);
}

/** Text that opens like a JSON list of objects ("[{" or "[]"), not like a "[ts]" or "[A, B]" line. */
const JSON_LIST_RE = /^\s*\[\s*(?:\{|\])/;

/** The JSON list form, or null when the text is not one. */
function parseJsonE820(text: string, source: string): E820Entry[] | null {
  if (!JSON_LIST_RE.test(text)) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InputError(`${source}: invalid JSON memory map: ${(err as Error).message}`);
  }
  if (!Array.isArray(value)) return null;
  return value.map((item, i) => jsonEntry(item, i, source));
}

/** A first non-blank line that opens a JSON list ("[", "[{", "[]"): the whole input is then read as JSON. */
const JSON_LIST_LINE_RE = /^\s*\[\s*(?:\{|\]|$)/;

/**
 * Streamed lines: the JSON list form (joined, whole) when the first non-blank line opens one, else the
 * lines themselves, unread past that first line.
 */
function jsonOrLines(lines: Iterable<string>): { json: string | null; lines: Iterable<string> } {
  const it = lines[Symbol.iterator]();
  const head: string[] = [];
  let r = it.next();
  while (!r.done && r.value.trim() === '') {
    head.push(r.value);
    r = it.next();
  }
  if (r.done) return { json: null, lines: head };
  head.push(r.value);
  if (JSON_LIST_LINE_RE.test(r.value)) {
    for (r = it.next(); !r.done; r = it.next()) head.push(r.value);
    return { json: head.join('\n'), lines: head };
  }
  return {
    json: null,
    lines: (function* () {
      yield* head;
      for (let n = it.next(); !n.done; n = it.next()) yield n.value;
    })(),
  };
}

// ---- public parse -------------------------------------------------------------------------------

/**
 * Parse a host memory map from Xen or Linux boot output or a JSON list. Entries are returned as
 * written (not sanitised), bytes, end exclusive.
 */
export function parseE820(text: string | Iterable<string>, source: string): E820Entry[] {
  const input = typeof text === 'string' ? { json: text, lines: text } : jsonOrLines(text);
  const fromJson = input.json === null ? null : parseJsonE820(input.json, source);
  // a host map: a block longer than Xen's E820MAX is refused as soon as it is seen (checkXenHostMap says why)
  const entries = fromJson ?? chooseE820Block(findE820Blocks(input.lines, source, XEN_E820MAX))?.entries ?? [];
  if (entries.length === 0) {
    throw new InputError(`${source}: no memory map found; accepted forms: ${ACCEPTED_FORMS}`);
  }
  return entries;
}

// ---- sanitise -----------------------------------------------------------------------------------

interface ChangePoint {
  addr: number;
  isEnd: boolean;
  index: number;
}

/** Starts and ends of every non-empty entry, by address; at one address starts come before ends. */
function changePoints(entries: E820Entry[]): ChangePoint[] {
  const points: ChangePoint[] = [];
  entries.forEach((e, index) => {
    if (e.size === 0) return;
    points.push({ addr: e.addr, isEnd: false, index }, { addr: e.addr + e.size, isEnd: true, index });
  });
  return points.sort((a, b) => a.addr - b.addr || Number(a.isEnd) - Number(b.isEnd));
}

/**
 * The types of the entries covering the current change point: a count per type and a max-heap of the
 * types (stale tops dropped lazily), so the highest is found in O(log n) however many entries overlap.
 */
class ActiveTypes {
  private readonly counts = new Map<number, number>();
  private readonly heap: number[] = [];

  add(type: number): void {
    const c = this.counts.get(type) ?? 0;
    this.counts.set(type, c + 1);
    if (c === 0) this.push(type);
  }

  remove(type: number): void {
    const c = this.counts.get(type) ?? 0;
    if (c <= 1) this.counts.delete(type);
    else this.counts.set(type, c - 1);
  }

  /** the highest type present, 0 when none */
  highest(): number {
    while (this.heap.length > 0 && !this.counts.has(this.heap[0]!)) this.pop();
    return this.heap[0] ?? 0;
  }

  private push(v: number): void {
    const h = this.heap;
    let i = h.push(v) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]! >= v) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = v;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const c = l + 1 < h.length && h[l + 1]! > h[l]! ? l + 1 : l;
      if (h[c]! <= last) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
  }
}

/**
 * Linux sanitize_e820_table: sorted, no overlaps (the highest type number wins), neighbours of one
 * type merged (except PRAM and soft reserved), empty entries dropped. Unlike Linux, a one-entry map is
 * processed too (Linux returns it untouched, empty or not). O(n log n) in the number of entries, however
 * they overlap.
 */
export function sanitizeE820(entries: E820Entry[]): E820Entry[] {
  const out: E820Entry[] = [];
  const active = new ActiveTypes();
  let lastType = 0;
  let lastAddr = 0;
  for (const p of changePoints(entries)) {
    if (p.isEnd) active.remove(entries[p.index]!.type);
    else active.add(entries[p.index]!.type);
    const type = active.highest();
    if (type === lastType && !E820_NOMERGE_TYPES.has(type)) continue;
    if (lastType !== 0 && p.addr > lastAddr) out.push({ addr: lastAddr, size: p.addr - lastAddr, type: lastType });
    lastAddr = p.addr;
    lastType = type;
  }
  return out;
}

// ---- what a Xen host map can be -------------------------------------------------------------------

/** Xen's E820MAX (xen/arch/x86/include/asm/e820.h, 4.12–4.19): entries of e820_raw and of its final map. */
export const XEN_E820MAX = 1024;
/**
 * Xen's clip_to_limit(mpt_limit) (xen/arch/x86/e820.c machine_specific_memory_setup): RAM above what the
 * M2P table can describe — (RDWR_MPT_VIRT_END - RDWR_MPT_VIRT_START) / sizeof(long) pages = 2^35 pages,
 * 2^47 bytes — is changed to E820_UNUSABLE before Xen prints its map.
 */
export const XEN_MPT_LIMIT = 2 ** 47;

/**
 * Refuse a host map no x86-64 Xen prints (one-line InputError naming `source`): more entries than
 * E820MAX, or usable RAM above the M2P limit. Addresses beyond 2^52 were already refused by the parser.
 */
export function checkXenHostMap(entries: E820Entry[], source: string): void {
  if (entries.length > XEN_E820MAX) {
    throw new InputError(
      `${source}: ${entries.length} memory map entries, but Xen's e820 holds at most E820MAX = ${XEN_E820MAX} (xen/arch/x86/include/asm/e820.h): no Xen RAM map has more`,
    );
  }
  for (const e of entries) {
    if (e.type === E820_RAM && e.addr + e.size > XEN_MPT_LIMIT) {
      throw new InputError(
        `${source}: usable RAM ${fmtRange(e)} reaches beyond 2^47 bytes (128 TiB): Xen's clip_to_limit(mpt_limit) makes RAM above its M2P limit unusable, so Xen's RAM map never shows it`,
      );
    }
  }
}

function fmtRange(e: E820Entry): string {
  return `[0x${e.addr.toString(16)}, 0x${(e.addr + e.size).toString(16)})`;
}

// ---- output and counts --------------------------------------------------------------------------

const ADDR_DIGITS = 16;

function hex16(n: number): string {
  return n.toString(16).padStart(ADDR_DIGITS, '0');
}

/** Xen's old (pre-4.14, end exclusive) console form: "(XEN)  0000000000000000 - 000000000009fc00 (usable)". */
export function formatXenE820(entries: E820Entry[], prefix = '(XEN) '): string[] {
  return entries.map((e) => `${prefix} ${hex16(e.addr)} - ${hex16(e.addr + e.size)} ${xenTypeText(e.type)}`);
}

/** Linux e820__print_table form (end inclusive): "Xen: [mem 0x0000000000000000-0x000000000009fbff] usable". */
export function formatLinuxE820(entries: E820Entry[], prefix = 'Xen'): string[] {
  return entries.map((e) => `${prefix}: [mem 0x${hex16(e.addr)}-0x${hex16(e.addr + e.size - 1)}] ${e820TypeName(e.type)}`);
}

/** Whole pages inside RAM entries below frame `limitPfn` (after sanitising, so overlaps count once and neighbours join). */
export function e820RamPages(entries: E820Entry[], limitPfn = Infinity): number {
  let pages = 0;
  for (const e of sanitizeE820(entries)) {
    if (e.type !== E820_RAM) continue;
    const first = Math.ceil(e.addr / PAGE_SIZE);
    const end = Math.min(Math.floor((e.addr + e.size) / PAGE_SIZE), limitPfn);
    if (end > first) pages += end - first;
  }
  return pages;
}

/** One e820 entry in bytes, end exclusive. `type` is the E820_* number. */
export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}
