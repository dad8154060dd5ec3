// Boot-log input: what a Xen PV dom0 boot printed, as users paste it (`xl dmesg`, dom0 `dmesg`, a serial
// console with both interleaved, or a mailing-list copy of any of these). The formats followed, all read in
// the sources (docs/spec-notes/boot-log.md has files, tags and commits):
//  - Xen console (xen/drivers/char/console.c): every line starts "(XEN) ", optionally followed by a
//    console_timestamps= stamp "[%016lx] " (raw), "[YYYY-MM-DD HH:MM:SS] " / "[... .mmm] " (date,
//    datems) or "[%5lu.%06lu] " (boot); the banner "Xen version X.Y.Z (user@domain) (compiler) ...".
//  - Xen setup (xen/arch/x86/setup.c): "Command line: %s" (Xen's own options; " -- " dom0 extras cut
//    off before it is printed), "%s RAM map:" with "Xen-e820", "EFI", "Multiboot-e820" or "PVH-e820",
//    and print_e820_memory_map's entries (xen/arch/x86/e820.c) — parsed by ./e820.ts.
//  - dom0_construct_pv (xen/arch/x86/pv/dom0_build.c; xen/arch/x86/domain_build.c before 4.10):
//    " Dom0 kernel: 64-bit, ...", " Dom0 alloc.:   A->B (N pages to be allocated)", the physical
//    " Init. ramdisk: P->Q" right after it, and " Phys-Mach map: V->W" with W - V = nr_pages * 8.
//  - Linux (arch/x86/xen/setup.c, p2m.c, arch/x86/kernel/e820.c, setup.c, init/main.c, init/version.c;
//    v3.8.13 / v3.18 / v4.4 / v4.19 / v6.1): "Linux version R ...", "Command line: ...", "Kernel command
//    line: ...", "Xen: [mem A-B] type", "Released N pages of unused memory" and "Set N page(s) to 1-1
//    mapping" (3.x), "Released N page(s)" / "Remapped N page(s)" (3.18+), "p2m virtual area at P, size is
//    X" (3.19+), "[e820: ]last_pfn = 0xN max_arch_pfn = 0xM", "Xen version: X.Y.Z[ (preserve-AD)]".
// Mail copies: RFC 2045 quoted-printable, "> " quoting at any depth, lines hard-wrapped by the client.
import { PAGE_SIZE } from '../xen/abi.js';
import { type E820Entry, InputError } from '../image/guest-image.js';
import { type E820Block, findE820Blocks } from './e820.js';
import { computeDom0Pages, parseDom0Mem } from './dom0-mem.js';

// ---- public types ---------------------------------------------------------------------------------

/** A value with the (1-based, physical) input line it came from and that line as found (unquoted, decoded, rejoined). */
export interface Sourced<T> {
  value: T;
  line: number;
  text: string;
}

export type MapKind = 'xen-e820' | 'efi' | 'linux-bios';

export interface BootMessages {
  /** 3.18+: "Released N page(s)" */
  released?: Sourced<number>;
  /** 3.18+: "Remapped N page(s)" */
  remapped?: Sourced<number>;
  /** 3.x: "Set N page(s) to 1-1 mapping" */
  identity?: Sourced<number>;
  /** 3.8 and older: "Released N pages of unused memory" */
  releasedPages38?: Sourced<number>;
  /** 3.19+: "p2m virtual area at ..., size is X" (bytes) */
  p2mAreaSize?: Sourced<number>;
  /** every "last_pfn = 0x..." in order */
  lastPfn: Sourced<number>[];
}

/** dom0_construct_pv's "Dom0 alloc.:" line and the physical "Init. ramdisk:" line printed with it. */
export interface Dom0Alloc {
  /** machine addresses of the initial contiguous chunk */
  start: number;
  end: number;
  chunkPages: number;
  /** "(N pages to be allocated)": nr_pages - domain_tot_pages(d); absent when nothing was left to allocate */
  toAllocate: number | null;
  /** PFN_UP(initrd length), from the physical "Init. ramdisk:" line; null when that line is not there */
  initrdPages: number | null;
}

export interface BootLog {
  /** Xen's map: 'Xen-e820 RAM map:' (BIOS) or 'EFI RAM map:' (EFI); else a native boot's BIOS-e820 lines */
  hostE820: Sourced<E820Entry[]> | null;
  mapKind: MapKind | null;
  /** the dom0 kernel's 'Xen: [mem A-B] type' lines (what it printed) */
  kernelE820: Sourced<E820Entry[]> | null;
  /** value of dom0_mem= on Xen's command line (several occurrences joined with ',') */
  dom0Mem: Sourced<string> | null;
  xenCmdline: Sourced<string> | null;
  kernelCmdline: Sourced<string> | null;
  /** mem= on the kernel command line, bytes (the last one, as Linux applies them) */
  kernelMem: Sourced<number> | null;
  /** (B - A) / 8 from 'Phys-Mach map: A->B' (/ 4 for a 32-bit dom0) */
  physMachPages: Sourced<number> | null;
  /** N of 'Dom0 alloc.: A->B (N pages to be allocated)' */
  dom0AllocPages: Sourced<number> | null;
  /** the whole 'Dom0 alloc.' line and its ramdisk line (our addition: dom0PagesFromLog needs it) */
  dom0Alloc: Sourced<Dom0Alloc> | null;
  /** 'Dom0 kernel: 64-bit, ...' (our addition) */
  dom0KernelBits: Sourced<32 | 64> | null;
  /** the release from 'Linux version 4.19.86 ...' ("4.19.86") */
  kernelVersion: Sourced<string> | null;
  suggestedProfile: string | null;
  /** Xen's own banner ("4.17.0"), else what the kernel reported ('Xen version: 4.17.0') */
  xenVersion: Sourced<string> | null;
  messages: BootMessages;
  notes: string[];
}

// ---- constants ------------------------------------------------------------------------------------

const HEX = '(?:0x)?([0-9a-f]+)';
/** Bytes per P2M entry Xen reserves for the initial P->M table: sizeof(unsigned long) / sizeof(unsigned int). */
const P2M_ENTRY_BYTES_64 = 8n;
const P2M_ENTRY_BYTES_32 = 4n;
/** PADDR_BITS: physical addresses (Dom0 alloc., the physical Init. ramdisk) lie below 2^52. */
const MAX_PADDR = 2n ** 52n;
/**
 * At most this many physical lines are rejoined into one: Linux's longest command line (x86
 * COMMAND_LINE_SIZE, 2048 bytes) hard-wrapped at 72 columns takes 29; quoted-printable soft breaks add some.
 */
const MAX_JOINED_LINES = 40;

// Xen's lines (trimmed body). " Dom0 alloc.:   %PRIpaddr->%PRIpaddr[ (%lu pages to be allocated)]"
const DOM0_ALLOC_RE = new RegExp(`^Dom0 alloc\\.:\\s+${HEX}->${HEX}(?:\\s+\\((\\d+) pages to be allocated\\))?$`, 'i');
const INIT_RAMDISK_RE = new RegExp(`^Init\\. ramdisk:\\s+${HEX}->${HEX}$`, 'i');
const PHYS_MACH_RE = new RegExp(`^Phys-Mach map:\\s+${HEX}->${HEX}$`, 'i');
const DOM0_KERNEL_RE = /^Dom0 kernel:\s+(64|32)-bit\b/;
const XEN_BANNER_RE = /^Xen version (\S+) \(/;
const XEN_CRASH_BANNER_RE = /^-+\[ Xen-(\S+)\s/;
// Linux's lines.
const LINUX_XEN_VERSION_RE = /^Xen version: (\S+)/;
const LINUX_VERSION_RE = /^Linux version (\S+)/;
const RELEASED_RE = /^Released (\d+) page\(s\)$/;
const REMAPPED_RE = /^Remapped (\d+) page\(s\)(?:, last_pfn=\d+)?$/;
const IDENTITY_RE = /^Set (\d+) page\(s\) to 1-1 mapping$/;
/** 3.x "Released %lu pages of unused memory"; 2.6.3x printed it in lower case. */
const RELEASED_38_RE = /^released (\d+) pages of unused memory$/i;
const P2M_AREA_RE = /^p2m virtual area at .+, size is ([0-9a-f]+)$/i;
const LAST_PFN_RE = /^(?:e820: )?last_pfn = (0x[0-9a-f]+) max_arch_pfn = 0x[0-9a-f]+$/i;
// Both.
const CMDLINE_RE = /^(\s*Command line:\s?)(.*)$/;
const KERNEL_CMDLINE_RE = /^(\s*Kernel command line:\s?)(.*)$/;
const CMDLINE_START_RE = /^(?:Kernel )?Command line:/;
/** Options only Xen knows (xen-command-line.pandoc): a bare "Command line:" with one of these is Xen's. */
const XEN_ONLY_OPTION_RE =
  /(?:^|\s)(?:dom0_mem|dom0_max_vcpus|dom0_vcpus_pin|dom0|loglvl|guest_loglvl|com[1-4]|conring_size|console_timestamps|sync_console|ucode|smt|sched|cpufreq|no-real-mode|x2apic_phys|spec-ctrl|hap_1gb|altp2m)(?:=|\s|$)/;

/** Every message we parse: a line matching one is complete and never rejoined with the next. */
const MESSAGE_RES: readonly RegExp[] = [
  DOM0_ALLOC_RE,
  INIT_RAMDISK_RE,
  PHYS_MACH_RE,
  RELEASED_RE,
  REMAPPED_RE,
  IDENTITY_RE,
  RELEASED_38_RE,
  P2M_AREA_RE,
  LAST_PFN_RE,
];
/** Lines that start something and so stand alone (never a wrapped continuation). */
const STANDALONE_START_RE = /^(?:(?:Kernel )?Command line:|Linux version |Xen version|\(XEN\)|\(d\d+\))/;

// e820 maps.
const RAM_MAP_HEADER_RE = /\bRAM map:\s*$/;
const INITIAL_HEADER_RE = /^Initial\b/;
const EFI_HEADER_RE = /^EFI RAM map:$/;
/** init_e820's memmap_type for BIOS-style maps: Xen-e820, Multiboot-e820, PVH-e820, old Xen-e801 / Multiboot-e801. */
const XEN_E820_HEADER_RE = /^(?:Xen|Multiboot|PVH)-e8(?:20|01) RAM map:$/;
const LINUX_WHO_RE = /^\s*([A-Za-z0-9-]+):/;
const FIRMWARE_WHO = 'BIOS-e820';
const KERNEL_WHO = 'Xen';
/** The e820 pass runs on our normalised text under this source, so its line numbers can be mapped back. */
const E820_PASS = '\u0001e820-pass';
const E820_ERROR_RE = /^\u0001e820-pass:(\d+): (.*)$/s;

// Prefixes.
const LOGLEVEL_RE = /^<\d>/;
/** syslog / journal: "Jan 18 10:40:41 host kernel: ", ISO "2022-01-18T10:40:41.123456+01:00 host kernel: ". */
const SYSLOG_RE =
  /^(?:[A-Z][a-z]{2}\s+\d{1,2}\s+\d\d:\d\d:\d\d|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)\s+\S+\s+([\w.\-/@]+?)(?:\[\d+\])?:\s?/;
/** dmesg -x "kern  :info  : " */
const DMESG_FACILITY_RE = /^[a-z]+\s*:[a-z]+\s*: /;
/** dmesg "[    0.000000] " and dmesg -T "[Tue Jan 18 10:40:41 2022] " */
const DMESG_STAMP_RE = /^\[(?:\s*\d+\.\d+|[A-Z][a-z]{2} [A-Z][a-z]{2}\s+\d{1,2} \d\d:\d\d:\d\d \d{4})\]\s?/;
/** CONFIG_PRINTK_CALLER "[    T1] " after the stamp */
const PRINTK_CALLER_RE = /^\[\s*[TC]\d+\]\s?/;
/** xenconsoled log timestamps in front of "(XEN)" ("[2022-01-18 10:40:41] (XEN) ...") */
const LEADING_STAMPS_BEFORE_XEN_RE = /^(?:\[[^\]]{1,40}\]\s*)+(?=\(XEN\))/;
const XEN_MARK = '(XEN)';
/** console_timestamps= stamps after "(XEN) ": raw, date, datems, boot (printk_start_of_line) */
const XEN_STAMP_RE = /^\[(?:[0-9a-f]{16}|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{3})?|\s*\d+\.\d{6})\] ?/i;
const GUEST_MARK_RE = /^\(d\d+\)/;
/** mail quoting: ">", "> >", ">>" ... */
const QUOTE_RE = /^(?:[ \t]*>)+[ \t]?/;
const QP_HEADER_RE = /^(?:[ \t]*>)*[ \t]*content-transfer-encoding:\s*quoted-printable\s*$/im;
const QP_MARKER_RE = /=3D/i;
/** In quoted-printable every '=' starts a hex escape or is a soft line break. */
const QP_INVALID_RE = /=(?![0-9A-F]{2}|[ \t]*$)/m;

// ---- lines ----------------------------------------------------------------------------------------

type Origin = 'xen' | 'linux' | 'guest' | 'plain';

/** Where each physical input line begins inside a logical line's text. */
interface Segment {
  at: number;
  line: number;
}

interface Piece {
  text: string;
  segs: Segment[];
}

/** One logical line: decoded, unquoted, rejoined; `body` is `shown` without log prefixes. */
interface LogLine {
  shown: string;
  body: string;
  bodyAt: number;
  origin: Origin;
  segs: Segment[];
}

function firstLine(l: LogLine): number {
  return l.segs[0]!.line;
}

/** The physical line holding offset `at` of `shown`. */
function lineAt(l: LogLine, at: number): number {
  let line = firstLine(l);
  for (const s of l.segs) if (s.at <= at) line = s.line;
  return line;
}

function physicalLines(text: string): string[] {
  return text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
}

function plainPieces(lines: string[]): Piece[] {
  return lines.map((text, i) => ({ text, segs: [{ at: 0, line: i + 1 }] }));
}

// ---- quoted-printable -----------------------------------------------------------------------------

/** A mail body sent as quoted-printable: its header says so, or '=3D' appears and every '=' is an escape. */
export function looksQuotedPrintable(text: string): boolean {
  if (QP_HEADER_RE.test(text)) return true;
  return QP_MARKER_RE.test(text) && !QP_INVALID_RE.test(text);
}

/** A =XX escape, a run of other text, or a lone '='. */
const QP_TOKEN_RE = /=([0-9A-Fa-f]{2})|[^=]+|=/g;

/** Decode =XX escapes (bytes, as UTF-8); invalid escapes are kept as they are (lenient, RFC 2045 6.7). */
function decodeQpEscapes(s: string): string {
  const parts: Buffer[] = [];
  for (const m of s.matchAll(QP_TOKEN_RE)) {
    parts.push(m[1] === undefined ? Buffer.from(m[0], 'utf8') : Buffer.of(parseInt(m[1], 16)));
  }
  return Buffer.concat(parts).toString('utf8');
}

/** Join soft line breaks ('=' at the end of a line) and decode escapes. */
function decodeQuotedPrintable(lines: string[]): Piece[] {
  const out: Piece[] = [];
  let cur: Piece | null = null;
  lines.forEach((raw, i) => {
    let piece = raw.replace(/[ \t]+$/, '');
    const soft = piece.endsWith('=');
    if (soft) piece = piece.slice(0, -1);
    const text = decodeQpEscapes(piece);
    if (cur === null) cur = { text: '', segs: [] };
    cur.segs.push({ at: cur.text.length, line: i + 1 });
    cur.text += text;
    if (!soft) {
      out.push(cur);
      cur = null;
    }
  });
  if (cur !== null) out.push(cur);
  return out;
}

// ---- quoting and prefixes -------------------------------------------------------------------------

function shiftSegs(segs: Segment[], by: number): Segment[] {
  return segs.map((s) => ({ at: Math.max(0, s.at - by), line: s.line }));
}

function stripQuoting(p: Piece): { piece: Piece; quoted: boolean } {
  const m = QUOTE_RE.exec(p.text);
  if (!m) return { piece: p, quoted: false };
  return { piece: { text: p.text.slice(m[0].length), segs: shiftSegs(p.segs, m[0].length) }, quoted: true };
}

/** Length of the match of `re` at the start of `s`, or 0. */
function prefixLength(re: RegExp, s: string): number {
  return re.exec(s)?.[0].length ?? 0;
}

/** Remove syslog, dmesg and Xen console prefixes; say which console the line came from. */
function classify(p: Piece): LogLine {
  const s = p.text;
  let at = prefixLength(LOGLEVEL_RE, s);
  let origin: Origin = 'plain';
  const syslog = SYSLOG_RE.exec(s.slice(at));
  if (syslog) {
    at += syslog[0].length;
    if (syslog[1] === 'kernel') origin = 'linux';
  }
  at += prefixLength(DMESG_FACILITY_RE, s.slice(at));
  const stamp = prefixLength(DMESG_STAMP_RE, s.slice(at));
  if (stamp > 0) {
    at += stamp;
    at += prefixLength(PRINTK_CALLER_RE, s.slice(at));
    origin = 'linux';
  }
  at += prefixLength(LEADING_STAMPS_BEFORE_XEN_RE, s.slice(at));
  if (s.startsWith(XEN_MARK, at)) {
    at += XEN_MARK.length;
    if (s[at] === ' ') at++;
    at += prefixLength(XEN_STAMP_RE, s.slice(at));
    origin = GUEST_MARK_RE.test(s.slice(at)) ? 'guest' : 'xen';
  } else if (GUEST_MARK_RE.test(s.slice(at))) {
    origin = 'guest';
  }
  return { shown: s, body: s.slice(at), bodyAt: at, origin, segs: p.segs };
}

// ---- rejoining hard-wrapped lines -----------------------------------------------------------------

/** One complete e820 entry line (any form ./e820.ts accepts). */
function isE820Entry(text: string): boolean {
  try {
    const blocks = findE820Blocks(text);
    return blocks.length === 1 && blocks[0]!.lines.length === 1;
  } catch (err) {
    if (err instanceof InputError) return false;
    throw err;
  }
}

function isCompleteMessage(body: string): boolean {
  const t = body.trim();
  return MESSAGE_RES.some((re) => re.test(t)) || isE820Entry(t);
}

/** Could this line be a line of its own (so never the wrapped tail of the line before)? */
function canStandAlone(body: string): boolean {
  const t = body.trim();
  return t === '' || isCompleteMessage(t) || RAM_MAP_HEADER_RE.test(t) || STANDALONE_START_RE.test(t);
}

/** Whitespace-separated printable tokens, at least one of them "key=value", none a "Heading:". */
function looksLikeCmdlineTokens(t: string): boolean {
  const tokens = t.split(/\s+/);
  return (
    tokens.every((tok) => /^[\x21-\x7e]+$/.test(tok)) &&
    tokens.some((tok) => /^[A-Za-z0-9_.-]+=/.test(tok)) &&
    !tokens[0]!.endsWith(':')
  );
}

/**
 * The separator that rejoins `b` onto `a`, or null when `b` is not a wrapped continuation of `a`: `b` has
 * no console prefix and cannot stand alone, and either `a` is a command line and `b` more options, or
 * `a` + `b` is one complete message. `a` may be complete already: Linux's "[mem A-B] ACPI NVS" wrapped
 * before "NVS" leaves "[mem A-B] ACPI", a valid line of another type.
 */
function joinSeparator(a: LogLine, b: LogLine): string | null {
  const at = a.body.trim();
  const bt = b.body.trim();
  if (b.origin !== 'plain' || a.origin === 'guest' || at === '' || canStandAlone(bt)) return null;
  if (CMDLINE_START_RE.test(at)) return looksLikeCmdlineTokens(bt) ? ' ' : null;
  for (const sep of [' ', '']) if (isCompleteMessage(a.body.trimEnd() + sep + bt)) return sep;
  return null;
}

function joinLines(a: LogLine, b: LogLine, sep: string): LogLine {
  const head = a.shown.trimEnd();
  const tail = b.shown.trimStart();
  const lead = b.shown.length - tail.length;
  const base = head.length + sep.length;
  return {
    shown: head + sep + tail,
    body: head.slice(a.bodyAt) + sep + tail,
    bodyAt: a.bodyAt,
    origin: a.origin,
    segs: [...a.segs, ...b.segs.map((s) => ({ at: base + Math.max(0, s.at - lead), line: s.line }))],
  };
}

function rejoinWrapped(lines: LogLine[], notes: string[]): LogLine[] {
  const out: LogLine[] = [];
  const joined: string[] = [];
  for (const line of lines) {
    const prev = out[out.length - 1];
    const sep = prev && prev.segs.length < MAX_JOINED_LINES ? joinSeparator(prev, line) : null;
    if (prev && sep !== null) {
      out[out.length - 1] = joinLines(prev, line, sep);
      joined.push(`${firstLine(prev)}+${firstLine(line)}`);
    } else {
      out.push(line);
    }
  }
  if (joined.length > 0) notes.push(`rejoined ${joined.length} hard-wrapped line(s): ${joined.join(', ')}`);
  return out;
}

/** Decode, unquote, strip prefixes and rejoin: the log's logical lines. */
function logicalLines(text: string, notes: string[]): LogLine[] {
  const physical = physicalLines(text);
  const qp = looksQuotedPrintable(text);
  if (qp) notes.push('decoded quoted-printable (mail transfer encoding)');
  let quoted = 0;
  const lines = (qp ? decodeQuotedPrintable(physical) : plainPieces(physical)).map((p) => {
    const q = stripQuoting(p);
    if (q.quoted) quoted++;
    return classify(q.piece);
  });
  if (quoted > 0) notes.push(`removed mail quoting ("> ") from ${quoted} line(s)`);
  return rejoinWrapped(lines, notes);
}

// ---- e820 maps ------------------------------------------------------------------------------------

/** The line as ./e820.ts should see it: Xen's lines keep their "(XEN)" mark, guests' lines are dropped. */
function e820Text(l: LogLine): string {
  if (l.origin === 'xen') return `${XEN_MARK} ${l.body}`;
  return l.origin === 'guest' ? '' : l.body;
}

/** Is compact line k (0-based) next to a map header or entry, i.e. inside a memory map? */
function insideMap(texts: string[], k: number): boolean {
  const before = texts[k - 1] ?? '';
  const after = texts[k + 1] ?? '';
  const beforeBody = classify({ text: before, segs: [] }).body;
  return RAM_MAP_HEADER_RE.test(beforeBody) || isE820Entry(before) || isE820Entry(after);
}

/**
 * ./e820.ts's blocks over the logical lines (line numbers are 1-based logical indices). A line that looks
 * like an entry but does not parse is an error inside a map; elsewhere (some other message that happens to
 * start with a long hex number) it is ignored with a note.
 */
function findBlocks(lines: LogLine[], source: string, notes: string[]): E820Block[] {
  const texts = lines.map(e820Text);
  for (;;) {
    try {
      return findE820Blocks(texts.join('\n'), E820_PASS);
    } catch (err) {
      const m = err instanceof InputError ? E820_ERROR_RE.exec(err.message) : null;
      if (!m) throw err;
      const k = Number(m[1]) - 1;
      if (insideMap(texts, k)) throw new InputError(`${source}:${firstLine(lines[k]!)}: ${m[2]!}`);
      notes.push(`line ${firstLine(lines[k]!)}: looks like an e820 entry but is not part of a memory map; ignored`);
      texts[k] = '';
    }
  }
}

function logAt(lines: LogLine[], logical: number): LogLine {
  return lines[logical - 1]!;
}

/** "Xen", "BIOS-e820", ... for a Linux block. */
function whoOf(block: E820Block, lines: LogLine[]): string | null {
  return LINUX_WHO_RE.exec(logAt(lines, block.startLine).body)?.[1] ?? null;
}

/** The block's own line: its header, else its first entry. */
function blockLine(block: E820Block, lines: LogLine[]): LogLine {
  return logAt(lines, block.headerLine ?? block.startLine);
}

function sameEntries(a: E820Entry[], b: E820Entry[]): boolean {
  return a.length === b.length && a.every((e, i) => e.addr === b[i]!.addr && e.size === b[i]!.size && e.type === b[i]!.type);
}

function hexRange(e: E820Entry): string {
  return `0x${e.addr.toString(16)}-0x${(e.addr + e.size).toString(16)}`;
}

/** Xen's and Linux's printed maps are sanitised: sorted, no overlaps. Anything else is a damaged paste. */
function checkOrdered(block: E820Block, lines: LogLine[], source: string): void {
  for (let i = 1; i < block.entries.length; i++) {
    const prev = block.entries[i - 1]!;
    const cur = block.entries[i]!;
    if (cur.addr >= prev.addr + prev.size) continue;
    const a = firstLine(logAt(lines, block.lines[i - 1]!.lineNo));
    const b = firstLine(logAt(lines, block.lines[i]!.lineNo));
    const what = cur.addr < prev.addr ? 'are out of order' : 'overlap';
    throw new InputError(`${source}: memory map entries at lines ${a} and ${b} ${what} (${hexRange(prev)} and ${hexRange(cur)}, end exclusive)`);
  }
}

function checkOneMap(candidates: E820Block[], lines: LogLine[], source: string, notes: string[], what: string): void {
  const first = candidates[0]!;
  const at = (b: E820Block) => firstLine(blockLine(b, lines));
  for (const other of candidates.slice(1)) {
    if (!sameEntries(first.entries, other.entries)) {
      throw new InputError(`${source}: two conflicting memory maps at lines ${at(first)} and ${at(other)}; give one boot`);
    }
  }
  if (candidates.length > 1) notes.push(`${what} printed ${candidates.length} times (lines ${candidates.map(at).join(', ')}), identical`);
}

function noMapError(source: string, kernelBlock: E820Block | undefined, lines: LogLine[]): InputError {
  const hint = kernelBlock
    ? ` (the kernel's 'Xen: [mem ...]' lines at line ${firstLine(blockLine(kernelBlock, lines))} are dom0's own view, not the host map: add \`xl dmesg\`)`
    : '';
  return new InputError(`${source}: no memory map found: expected 'Xen-e820 RAM map:' or 'EFI RAM map:' followed by entries${hint}`);
}

function mapKindOf(block: E820Block, notes: string[]): MapKind {
  const header = block.header;
  if (header === null) {
    notes.push(`host map at line ${block.startLine} has no "... RAM map:" header; taken as Xen's final map`);
    return 'xen-e820';
  }
  if (EFI_HEADER_RE.test(header)) return 'efi';
  if (!XEN_E820_HEADER_RE.test(header)) notes.push(`host map header "${header}" is not one Xen prints for BIOS or EFI boots; taken as an e820 map`);
  return 'xen-e820';
}

function formNote(block: E820Block, lines: LogLine[], kind: MapKind): string {
  if (kind === 'linux-bios') {
    return "no Xen map in the log: host map taken from the kernel's BIOS-e820 lines (the firmware map of a native boot; Xen's own map may differ where Xen clips or sanitises it)";
  }
  const inclusive = /\[\s*(?:0x)?[0-9a-f]+\s*,/i.test(logAt(lines, block.startLine).body);
  return inclusive
    ? `host map in Xen's "[A, B]" end-inclusive form (Xen 4.14 and later)`
    : `host map in Xen's "A - B" end-exclusive form (Xen 4.13 and older, and 4.14-unstable before commit 1f68bfb381)`;
}

interface HostMap {
  block: E820Block;
  kind: MapKind;
}

function chooseHostMap(blocks: E820Block[], lines: LogLine[], source: string, notes: string[]): HostMap {
  const xen = blocks.filter((b) => b.kind === 'xen' && !(b.header !== null && INITIAL_HEADER_RE.test(b.header)));
  const headed = xen.filter((b) => b.header !== null);
  let candidates = headed.length > 0 ? headed : xen;
  let kind: MapKind | null = null;
  if (headed.length > 0 && headed.length < xen.length) {
    const stray = xen.filter((b) => b.header === null).map((b) => firstLine(logAt(lines, b.startLine)));
    notes.push(`e820-like lines without a "RAM map:" header at line(s) ${stray.join(', ')} ignored`);
  }
  if (candidates.length === 0) {
    candidates = blocks.filter((b) => b.kind === 'linux' && whoOf(b, lines) === FIRMWARE_WHO);
    kind = 'linux-bios';
  }
  if (candidates.length === 0) {
    throw noMapError(source, blocks.find((b) => b.kind === 'linux' && whoOf(b, lines) === KERNEL_WHO), lines);
  }
  checkOneMap(candidates, lines, source, notes, 'host map');
  const block = candidates[0]!;
  checkOrdered(block, lines, source);
  kind ??= mapKindOf(block, notes);
  notes.push(formNote(block, lines, kind));
  return { block, kind };
}

function sourcedMap(block: E820Block, lines: LogLine[]): Sourced<E820Entry[]> {
  const l = blockLine(block, lines);
  return { value: block.entries, line: firstLine(l), text: l.shown };
}

function kernelMap(blocks: E820Block[], lines: LogLine[], notes: string[]): Sourced<E820Entry[]> | null {
  const maps = blocks.filter((b) => b.kind === 'linux' && whoOf(b, lines) === KERNEL_WHO);
  const first = maps[0];
  if (!first) return null;
  const differing = maps.slice(1).filter((b) => !sameEntries(first.entries, b.entries));
  if (differing.length > 0) {
    const at = differing.map((b) => firstLine(blockLine(b, lines)));
    notes.push(`the kernel printed other 'Xen:' maps at line(s) ${at.join(', ')} (another boot?); using line ${firstLine(blockLine(first, lines))}`);
  }
  return sourcedMap(first, lines);
}

// ---- command lines --------------------------------------------------------------------------------

interface Located {
  value: string;
  /** offset of `value` in the log line's `shown` */
  at: number;
  log: LogLine;
}

function sourced<T>(value: T, loc: { at: number; log: LogLine }): Sourced<T> {
  return { value, line: lineAt(loc.log, loc.at), text: loc.log.shown };
}

function located(re: RegExp, l: LogLine): Located | null {
  const m = re.exec(l.body);
  if (!m) return null;
  return { value: m[2]!.trim(), at: l.bodyAt + m[1]!.length, log: l };
}

/** Whose "Command line:" is this? (XEN) lines are Xen's, dmesg/kernel lines Linux's; bare ones by their options. */
function cmdlineOwner(l: LogLine, value: string): 'xen' | 'linux' | null {
  if (l.origin === 'xen') return 'xen';
  if (l.origin === 'linux') return 'linux';
  if (l.origin === 'guest') return null;
  return XEN_ONLY_OPTION_RE.test(value) ? 'xen' : 'linux';
}

interface OptionToken {
  value: string;
  /** offset of the token in the command line */
  at: number;
}

/** Every `key=value` token of a command line (whitespace separated, exact key, as Xen and Linux parse them). */
function optionTokens(cmdline: string, key: string): OptionToken[] {
  const out: OptionToken[] = [];
  const re = /\S+/g;
  for (let m = re.exec(cmdline); m !== null; m = re.exec(cmdline)) {
    if (m[0].startsWith(`${key}=`)) out.push({ value: m[0].slice(key.length + 1), at: m.index });
  }
  return out;
}

function dom0MemOf(xen: Located | null, source: string, notes: string[]): Sourced<string> | null {
  if (!xen) {
    notes.push("Xen's command line is not in the log: dom0_mem unknown (give `xl dmesg` or the serial console)");
    return null;
  }
  const tokens = optionTokens(xen.value, 'dom0_mem');
  if (tokens.length === 0) {
    notes.push(
      "no dom0_mem= on Xen's command line: Xen applies CONFIG_DOM0_MEM if its build set one (Kconfig, 4.12+), " +
        'else dom0 gets avail - min(avail/16, 128 MiB) pages and d->max_pages = UINT_MAX (dom0_compute_nr_pages)',
    );
    return null;
  }
  const value = tokens.map((t) => t.value).join(',');
  const loc = { at: xen.at + tokens[0]!.at, log: xen.log };
  if (tokens.length > 1) notes.push(`dom0_mem= given ${tokens.length} times; Xen parses each in turn, taken as "${value}"`);
  try {
    parseDom0Mem(value);
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    throw new InputError(`${source}:${lineAt(xen.log, loc.at)}: ${err.message}`);
  }
  return sourced(value, loc);
}

/** Linux memparse's size suffixes, each a further shift by 10. */
const MEMPARSE_SUFFIXES = 'kmgtpe';

/** simple_strtoull(s, NULL, 0)'s number forms: 0x hex, 0-prefixed octal, decimal. */
function cNumber(digits: string): bigint {
  if (/^0x/i.test(digits)) return BigInt(digits);
  return digits.length > 1 && digits.startsWith('0') ? BigInt(`0o${digits.slice(1)}`) : BigInt(digits);
}

/** Linux memparse: a number (0x hex, 0 octal, decimal) with an optional K, M, G, T, P or E suffix. */
export function memparse(text: string): bigint | null {
  const m = /^(0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*)([kmgtpe])?$/i.exec(text);
  if (!m) return null;
  const steps = m[2] ? MEMPARSE_SUFFIXES.indexOf(m[2].toLowerCase()) + 1 : 0;
  return cNumber(m[1]!) << (10n * BigInt(steps));
}

function kernelMemOf(kernel: Located | null, notes: string[]): Sourced<number> | null {
  if (!kernel) return null;
  const tokens = optionTokens(kernel.value, 'mem');
  const last = tokens[tokens.length - 1];
  if (!last) return null;
  const loc = { at: kernel.at + last.at, log: kernel.log };
  const bytes = memparse(last.value);
  if (bytes === null || bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    notes.push(`kernel mem=${last.value} (line ${lineAt(kernel.log, loc.at)}) is not a size; ignored`);
    return null;
  }
  return sourced(Number(bytes), loc);
}

// ---- versions and profiles ------------------------------------------------------------------------

/** Mainline versions where the Xen PV P2M changed (docs/spec-notes/boot-log.md, linux-p2m.md). */
const REMAP_VERSION = [3, 18] as const; // holes remapped instead of released (3.18)
const LINEAR_VERSION = [3, 19] as const; // linear virtually mapped P2M list (054954eb, 3.19)
const MAX_PFN_FIX_VERSION = [5, 15] as const; // 4b511d5bfa74 "xen: fix setting of max_pfn in shared_info"
/** Stable series that took 4b511d5bfa74 as a backport (stable queues of 2021-09-20). */
const MAX_PFN_FIX_STABLE_SERIES: readonly string[] = ['4.4', '4.9', '4.14', '4.19', '5.4', '5.10', '5.14'];

function versionBefore(v: readonly [number, number], ref: readonly [number, number]): boolean {
  return v[0] < ref[0] || (v[0] === ref[0] && v[1] < ref[1]);
}

/** The kernel profile closest to a Linux release ("4.19.86", "3.8.13-16.2.1.el6uek.x86_64"), by mainline version. */
export function suggestProfile(release: string): { profile: string | null; notes: string[] } {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return { profile: null, notes: [`kernel release "${release}" has no major.minor version`] };
  const v = [Number(m[1]), Number(m[2])] as const;
  const series = `${v[0]}.${v[1]}`;
  const notes: string[] = [];
  if (v[0] < 3) notes.push(`Linux ${series} predates the 3.x pvops P2M code; the linux-3.8 profile is only the nearest`);
  if (versionBefore(v, REMAP_VERSION)) return { profile: 'linux-3.8', notes };
  if (versionBefore(v, LINEAR_VERSION)) return { profile: 'linux-3.18', notes };
  if (versionBefore(v, MAX_PFN_FIX_VERSION)) {
    if (MAX_PFN_FIX_STABLE_SERIES.includes(series)) {
      notes.push(
        `Linux ${series}.y took the arch.max_pfn fix 4b511d5bfa74 as a stable backport (September 2021): ` +
          `a sublevel released after that behaves like linux-6.1 for ballooned-up P2M growth`,
      );
    }
    return { profile: 'linux-4.x', notes };
  }
  return { profile: 'linux-6.1', notes };
}

// ---- one pass over the lines ----------------------------------------------------------------------

function fromXen(l: LogLine): boolean {
  return l.origin === 'xen' || l.origin === 'plain';
}

function fromLinux(l: LogLine): boolean {
  return l.origin === 'linux' || l.origin === 'plain';
}

function bigHex(digits: string): bigint {
  return BigInt(`0x${digits}`);
}

/** First occurrence wins; a later, different one is noted (two boots pasted?). */
function keepFirst<T>(cur: Sourced<T> | null | undefined, next: Sourced<T>, label: string, notes: string[]): Sourced<T> {
  if (!cur) return next;
  if (JSON.stringify(cur.value) !== JSON.stringify(next.value)) notes.push(`${label} at line ${next.line} differs from line ${cur.line}; using line ${cur.line}`);
  return cur;
}

/** A value taken from a whole log line (its first physical line). */
function onLine<T>(value: T, l: LogLine): Sourced<T> {
  return { value, line: firstLine(l), text: l.shown };
}

interface Scan {
  xenCmd: Located | null;
  kernelCmd: Located | null;
  kernelCmdFallback: Located | null;
  physMach: Sourced<{ start: string; end: string }> | null;
  alloc: Sourced<Dom0Alloc> | null;
  bits: Sourced<32 | 64> | null;
  kernelVersion: Sourced<string> | null;
  xenVersion: Sourced<string> | null;
  xenVersionFromLinux: Sourced<string> | null;
  messages: BootMessages;
}

/** The physical "Init. ramdisk: P->Q" printed right after "Dom0 alloc." (a virtual one lies above 2^52 or is empty). */
function initrdPagesAfter(lines: LogLine[], i: number): number | null {
  const next = lines[i + 1];
  const m = next && fromXen(next) ? INIT_RAMDISK_RE.exec(next.body.trim()) : null;
  if (!m) return null;
  const start = bigHex(m[1]!);
  const end = bigHex(m[2]!);
  if (end <= start || end > MAX_PADDR) return null;
  const pageSize = BigInt(PAGE_SIZE);
  return Number((end - start + pageSize - 1n) / pageSize);
}

function dom0AllocOf(m: RegExpExecArray, lines: LogLine[], i: number): Sourced<Dom0Alloc> {
  const start = Number(bigHex(m[1]!));
  const end = Number(bigHex(m[2]!));
  const value: Dom0Alloc = {
    start,
    end,
    chunkPages: Math.max(0, Math.floor((end - start) / PAGE_SIZE)),
    toAllocate: m[3] === undefined ? null : Number(m[3]),
    initrdPages: initrdPagesAfter(lines, i),
  };
  return onLine(value, lines[i]!);
}

function scanXenLine(scan: Scan, lines: LogLine[], i: number, notes: string[]): void {
  const l = lines[i]!;
  const t = l.body.trim();
  let m: RegExpExecArray | null;
  if ((m = DOM0_ALLOC_RE.exec(t))) {
    scan.alloc = keepFirst(scan.alloc, dom0AllocOf(m, lines, i), 'Dom0 alloc.', notes);
  } else if ((m = PHYS_MACH_RE.exec(t))) {
    scan.physMach = keepFirst(scan.physMach, onLine({ start: m[1]!, end: m[2]! }, l), 'Phys-Mach map', notes);
  } else if ((m = DOM0_KERNEL_RE.exec(t))) {
    scan.bits ??= onLine<32 | 64>(m[1] === '32' ? 32 : 64, l);
  } else if ((m = XEN_BANNER_RE.exec(t) ?? (l.origin === 'xen' ? XEN_CRASH_BANNER_RE.exec(t) : null))) {
    scan.xenVersion = keepFirst(scan.xenVersion, onLine(m[1]!, l), 'Xen version', notes);
  }
}

function keepMessage(msgs: BootMessages, key: Exclude<keyof BootMessages, 'lastPfn'>, v: Sourced<number>, notes: string[]): void {
  msgs[key] = keepFirst(msgs[key], v, `"${v.text.trim()}"`, notes);
}

function scanLinuxLine(scan: Scan, l: LogLine, notes: string[]): void {
  const t = l.body.trim();
  const msgs = scan.messages;
  const num = (m: RegExpExecArray, radix = 10) => onLine(parseInt(m[1]!, radix), l);
  let m: RegExpExecArray | null;
  if ((m = RELEASED_RE.exec(t))) keepMessage(msgs, 'released', num(m), notes);
  else if ((m = REMAPPED_RE.exec(t))) keepMessage(msgs, 'remapped', num(m), notes);
  else if ((m = IDENTITY_RE.exec(t))) keepMessage(msgs, 'identity', num(m), notes);
  else if ((m = RELEASED_38_RE.exec(t))) keepMessage(msgs, 'releasedPages38', num(m), notes);
  else if ((m = P2M_AREA_RE.exec(t))) keepMessage(msgs, 'p2mAreaSize', num(m, 16), notes);
  else if ((m = LAST_PFN_RE.exec(t))) msgs.lastPfn.push(onLine(Number(BigInt(m[1]!)), l));
  else if ((m = LINUX_VERSION_RE.exec(t))) {
    scan.kernelVersion = keepFirst(scan.kernelVersion, onLine(m[1]!, l), 'Linux version', notes);
  } else if ((m = LINUX_XEN_VERSION_RE.exec(t))) {
    scan.xenVersionFromLinux ??= onLine(m[1]!, l);
  } else {
    const k = located(KERNEL_CMDLINE_RE, l);
    if (k) scan.kernelCmdFallback ??= k;
  }
}

function scanCmdline(scan: Scan, l: LogLine, notes: string[]): boolean {
  const c = located(CMDLINE_RE, l);
  if (!c) return false;
  const owner = cmdlineOwner(l, c.value);
  if (owner === null) return true;
  if (l.origin === 'plain') notes.push(`line ${firstLine(l)}: "Command line:" without a console prefix taken as ${owner === 'xen' ? "Xen's" : "the kernel's"}`);
  const slot = owner === 'xen' ? 'xenCmd' : 'kernelCmd';
  const cur = scan[slot];
  if (!cur) scan[slot] = c;
  else if (cur.value !== c.value) notes.push(`${owner === 'xen' ? 'Xen' : 'kernel'} command line at line ${firstLine(l)} differs from line ${firstLine(cur.log)}; using line ${firstLine(cur.log)}`);
  return true;
}

function scanLines(lines: LogLine[], notes: string[]): Scan {
  const scan: Scan = {
    xenCmd: null,
    kernelCmd: null,
    kernelCmdFallback: null,
    physMach: null,
    alloc: null,
    bits: null,
    kernelVersion: null,
    xenVersion: null,
    xenVersionFromLinux: null,
    messages: { lastPfn: [] },
  };
  lines.forEach((l, i) => {
    if (l.origin === 'guest' || scanCmdline(scan, l, notes)) return;
    if (fromXen(l)) scanXenLine(scan, lines, i, notes);
    if (fromLinux(l)) scanLinuxLine(scan, l, notes);
  });
  return scan;
}

// ---- derived values -------------------------------------------------------------------------------

function physMachPagesOf(scan: Scan, source: string, notes: string[]): Sourced<number> | null {
  const pm = scan.physMach;
  if (!pm) return null;
  const bits = scan.bits?.value ?? 64;
  const entry = bits === 32 ? P2M_ENTRY_BYTES_32 : P2M_ENTRY_BYTES_64;
  const bytes = bigHex(pm.value.end) - bigHex(pm.value.start);
  if (bytes <= 0n) throw new InputError(`${source}:${pm.line}: Phys-Mach map ends before it starts`);
  if (bytes % entry !== 0n) {
    throw new InputError(
      `${source}:${pm.line}: Phys-Mach map spans 0x${bytes.toString(16)} bytes, not a multiple of ${entry} (one entry per dom0 page)`,
    );
  }
  if (bits === 32) notes.push('32-bit dom0: Phys-Mach map entries are 4 bytes');
  return { value: Number(bytes / entry), line: pm.line, text: pm.text };
}

function dom0AllocPagesOf(alloc: Sourced<Dom0Alloc> | null): Sourced<number> | null {
  if (!alloc || alloc.value.toAllocate === null) return null;
  return { value: alloc.value.toAllocate, line: alloc.line, text: alloc.text };
}

function profileOf(version: Sourced<string> | null, notes: string[]): string | null {
  if (!version) return null;
  const s = suggestProfile(version.value);
  notes.push(...s.notes);
  return s.profile;
}

// ---- entry points ---------------------------------------------------------------------------------

/**
 * Parse a pasted boot log. Throws InputError (one line, naming the input line) when there is no host map,
 * two different ones, a damaged one, an unparseable dom0_mem= or an impossible Phys-Mach range.
 */
export function parseBootLog(text: string, source: string): BootLog {
  const notes: string[] = [];
  const lines = logicalLines(text, notes);
  const blocks = findBlocks(lines, source, notes);
  const host = chooseHostMap(blocks, lines, source, notes);
  const scan = scanLines(lines, notes);
  const kernelCmd = scan.kernelCmd ?? scan.kernelCmdFallback;
  const kernelVersion = scan.kernelVersion;
  return {
    hostE820: sourcedMap(host.block, lines),
    mapKind: host.kind,
    kernelE820: kernelMap(blocks, lines, notes),
    dom0Mem: dom0MemOf(scan.xenCmd, source, notes),
    xenCmdline: scan.xenCmd && sourced(scan.xenCmd.value, scan.xenCmd),
    kernelCmdline: kernelCmd && sourced(kernelCmd.value, kernelCmd),
    kernelMem: kernelMemOf(kernelCmd, notes),
    physMachPages: physMachPagesOf(scan, source, notes),
    dom0AllocPages: dom0AllocPagesOf(scan.alloc),
    dom0Alloc: scan.alloc,
    dom0KernelBits: scan.bits,
    kernelVersion,
    suggestedProfile: profileOf(kernelVersion, notes),
    xenVersion: scan.xenVersion ?? scan.xenVersionFromLinux,
    messages: scan.messages,
    notes,
  };
}

function fromAlloc(alloc: Sourced<Dom0Alloc>): { nrPages: Sourced<number>; why: string } {
  const a = alloc.value;
  const total = a.toAllocate! + a.chunkPages + (a.initrdPages ?? 0);
  const parts = `${a.toAllocate} to be allocated + ${a.chunkPages} in the initial chunk` + (a.initrdPages === null ? '' : ` + ${a.initrdPages} of the initrd`);
  const bound =
    a.initrdPages === null
      ? '; a lower bound: no physical "Init. ramdisk:" line follows it, and an initrd Xen handed to dom0 would add its pages'
      : '';
  return {
    nrPages: { value: total, line: alloc.line, text: alloc.text },
    why: `Dom0 alloc. (line ${alloc.line}): nr_pages = ${parts} = ${total}${bound}`,
  };
}

function allocCheck(log: BootLog): string {
  const a = log.dom0Alloc?.value;
  if (!a || a.toAllocate === null || !log.physMachPages) return '';
  const rest = log.physMachPages.value - a.toAllocate - a.chunkPages;
  if (rest < 0) return `; Dom0 alloc. at line ${log.dom0Alloc!.line} does not fit it (${a.toAllocate} + ${a.chunkPages} pages already exceed it)`;
  return `; Dom0 alloc. agrees: ${a.toAllocate} to allocate + ${a.chunkPages} in the initial chunk + ${rest} assigned before (the initrd)`;
}

/** dom0's nr_pages: the Phys-Mach map's size beats Dom0 alloc. beats a size computed from dom0_mem and the host map. */
export function dom0PagesFromLog(log: BootLog): { nrPages?: Sourced<number>; why: string } {
  if (log.physMachPages) {
    const p = log.physMachPages;
    return { nrPages: p, why: `Phys-Mach map (line ${p.line}): Xen sizes the initial P->M table at one entry per page, ${p.value} pages${allocCheck(log)}` };
  }
  if (log.dom0Alloc && log.dom0Alloc.value.toAllocate !== null) return fromAlloc(log.dom0Alloc);
  if (!log.hostE820) return { why: 'no Phys-Mach map, Dom0 alloc. line or host map in the log' };
  const spec = log.dom0Mem ? parseDom0Mem(log.dom0Mem.value) : null;
  const r = computeDom0Pages(spec, log.hostE820.value);
  const from = log.dom0Mem ?? log.hostE820;
  const given = log.dom0Mem
    ? `dom0_mem=${log.dom0Mem.value} (line ${log.dom0Mem.line})`
    : "Xen's default (no dom0_mem= in the log; a CONFIG_DOM0_MEM built into Xen would change it)";
  return {
    nrPages: { value: r.nrPages, line: from.line, text: from.text },
    why: `computed: neither Phys-Mach map nor Dom0 alloc. in the log; ${given} on the host map: ${r.notes.join('; ')}`,
  };
}
