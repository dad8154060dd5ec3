// Memory maps in a boot log: Xen's "%s RAM map:" (xen/arch/x86/setup.c) with print_e820_memory_map's entries
// (xen/arch/x86/e820.c), Linux's "Xen:" / "BIOS-e820:" lines, all parsed by ./e820.ts; which one is the host map.
import { InputError } from '../common/errors.js';
import { type E820Block, type E820Entry, findE820Blocks } from './e820.js';
import type { MapKind, Sourced } from './boot-log.js';
import { firstLine, type LogLine, stripPrefixes, XEN_MARK } from './boot-log-lines.js';

// e820 maps.
export const RAM_MAP_HEADER_RE = /\bRAM map:\s*$/;
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

/** One complete e820 entry line (any form ./e820.ts accepts). */
export function isE820Entry(text: string): boolean {
  try {
    const blocks = findE820Blocks(text);
    return blocks.length === 1 && blocks[0]!.lines.length === 1;
  } catch (err) {
    if (err instanceof InputError) return false;
    throw err;
  }
}

/** The line as ./e820.ts should see it: Xen's lines keep their "(XEN)" mark, guests' lines are dropped. */
function e820Text(l: LogLine): string {
  if (l.origin === 'xen') return `${XEN_MARK} ${l.body}`;
  return l.origin === 'guest' ? '' : l.body;
}

/** Is compact line k (0-based) next to a map header or entry, i.e. inside a memory map? */
function insideMap(texts: string[], k: number): boolean {
  const before = texts[k - 1] ?? '';
  const after = texts[k + 1] ?? '';
  const beforeBody = stripPrefixes({ text: before, segs: [] }).body;
  return RAM_MAP_HEADER_RE.test(beforeBody) || isE820Entry(before) || isE820Entry(after);
}

/**
 * ./e820.ts's blocks over the logical lines (line numbers are 1-based logical indices). A line that looks
 * like an entry but does not parse is an error inside a map; elsewhere (some other message that happens to
 * start with a long hex number) it is ignored with a note.
 */
export function findBlocks(lines: LogLine[], source: string, notes: string[]): E820Block[] {
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

/** Xen's final RAM map in the log (else a native boot's BIOS-e820 block); null only when `optional` and there is none. */
export function chooseHostMap(blocks: E820Block[], lines: LogLine[], source: string, notes: string[], optional = false): HostMap | null {
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
    if (optional) return null;
    throw noMapError(source, blocks.find((b) => b.kind === 'linux' && whoOf(b, lines) === KERNEL_WHO), lines);
  }
  checkOneMap(candidates, lines, source, notes, 'host map');
  const block = candidates[0]!;
  checkOrdered(block, lines, source);
  kind ??= mapKindOf(block, notes);
  notes.push(formNote(block, lines, kind));
  return { block, kind };
}

export function sourcedMap(block: E820Block, lines: LogLine[]): Sourced<E820Entry[]> {
  const l = blockLine(block, lines);
  return { value: block.entries, line: firstLine(l), text: l.shown };
}

export function kernelMap(blocks: E820Block[], lines: LogLine[], notes: string[]): Sourced<E820Entry[]> | null {
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
