// System.map / /proc/kallsyms text, line by line (Linux scripts/mksysmap "ADDR TYPE NAME" lines; kernel/kallsyms.c
// s_show adds "\t[module]" for module symbols): the exact reading of one line, the whole-text index, and the
// lookup of a few names by one pass that parses only the lines that can define them.
//
// Lines are split at '\n' with one trailing '\r' dropped (as inputs/text-input.ts splits them). A line that
// defines a symbol — the fast path `ADDR T NAME` or LINE_RE without a [module] — ends in its name followed
// only by blanks (LINE_RE's \s), so the name is always the line's last blank-delimited token: a lookup pass
// compares that token with the names wanted and parses only the lines where it matches. Both paths apply
// the same rule to repeats: the first global (upper-case type) definition wins, else the first one seen.

/** One symbol line; a module symbol ends in `[name]`. */
const LINE_RE = /^\s*([0-9a-fA-F]{1,16})\s+([A-Za-z?])\s+(\S+)(?:\s+\[([^\]\s]+)\])?\s*$/;
/** An address of zeros only (kallsyms without privileges prints every address as 0). */
const ALL_ZERO_RE = /^0+$/;

const CH_TAB = 0x09;
const CH_CR = 0x0d;
const CH_SPACE = 0x20;
const CH_QUESTION = 0x3f;
/** DEL: the fast path takes printable ASCII names only (anything else goes to LINE_RE). */
const CH_DEL = 0x7f;
/** NO-BREAK SPACE: latin1 text's one blank above ASCII that LINE_RE's \s also matches. */
const CH_NBSP = 0xa0;
const MAX_ADDRESS_DIGITS = 16;
/** Names longer than this are never looked up by a pass (kallsyms names are at most 512 bytes: KSYM_NAME_LEN). */
const MAX_LOOKUP_NAME = 1024;

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

/** LINE_RE's \s, for the characters of latin1 text (tab, LF, VT, FF, CR, space, NBSP). */
function isBlank(c: number): boolean {
  return c === CH_SPACE || (c >= CH_TAB && c <= CH_CR) || c === CH_NBSP;
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

/** What one line holds: a symbol, a module symbol (ignored), or nothing. */
export type SymbolLine = { kind: 'symbol'; digits: string; type: string; name: string } | { kind: 'module' } | null;

/** Read the line text[start, end) (no '\n'; a trailing '\r' is dropped here). */
export function parseSymbolLine(text: string, start: number, end: number): SymbolLine {
  if (end > start && text.charCodeAt(end - 1) === CH_CR) end--;
  const sp = plainLineSpaces(text, start, end);
  if (sp >= 0) return { kind: 'symbol', digits: text.slice(start, sp), type: text[sp + 1]!, name: text.slice(sp + 3, end) };
  const m = LINE_RE.exec(text.slice(start, end));
  if (!m) return null;
  if (m[4] !== undefined) return { kind: 'module' };
  return { kind: 'symbol', digits: m[1]!, type: m[2]!, name: m[3]! };
}

/** End of the line starting at `start` (the index of its '\n', or the text's length). */
function lineEnd(text: string, start: number): number {
  const nl = text.indexOf('\n', start);
  return nl < 0 ? text.length : nl;
}

/** Every name with its address digits (hex, no 0x), in order of first appearance, and what the text held. */
export interface SymbolIndex {
  /** name → slot in `digits` */
  index: Map<string, number>;
  digits: string[];
  /** symbol lines read (repeats included) */
  parsed: number;
  /** module symbol lines (ignored) */
  modules: number;
  /** some symbol line has an address other than 0 */
  nonZero: boolean;
}

/** Parse the whole text (every line; see the header for repeated names). */
export function indexSymbolText(text: string): SymbolIndex {
  const index = new Map<string, number>();
  const digits: string[] = [];
  const globalAt: boolean[] = [];
  let parsed = 0;
  let modules = 0;
  let nonZero = false;
  for (let start = 0; start <= text.length; ) {
    const end = lineEnd(text, start);
    const s = parseSymbolLine(text, start, end);
    start = end + 1;
    if (s === null) continue;
    if (s.kind === 'module') {
      modules++;
      continue;
    }
    parsed++;
    if (!nonZero && !ALL_ZERO_RE.test(s.digits)) nonZero = true;
    const g = isGlobal(s.type);
    const slot = index.get(s.name);
    if (slot === undefined) {
      index.set(s.name, digits.length);
      digits.push(s.digits);
      globalAt.push(g);
    } else if (g && !globalAt[slot]) {
      digits[slot] = s.digits;
      globalAt[slot] = true;
    }
  }
  return { index, digits, parsed, modules, nonZero };
}

/** Whether some symbol line (read from the top, stopping at the first) has an address other than 0. */
export function hasNonZeroSymbol(text: string): boolean {
  for (let start = 0; start <= text.length; ) {
    const end = lineEnd(text, start);
    const s = parseSymbolLine(text, start, end);
    if (s !== null && s.kind === 'symbol' && !ALL_ZERO_RE.test(s.digits)) return true;
    start = end + 1;
  }
  return false;
}

/**
 * The address digits of each wanted name (absent: not defined), by one pass over the text that parses only
 * the lines whose last blank-delimited token is a wanted name (see the header): the same answer as
 * indexSymbolText for those names.
 */
export function lookupSymbolText(text: string, wanted: ReadonlySet<string>): Map<string, string> {
  return wanted.size <= MAX_PATTERN_NAMES ? lookupByPattern(text, wanted) : lookupByLines(text, wanted);
}

/** Most names looked up by one regular expression; more go line by line. */
const MAX_PATTERN_NAMES = 64;

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

/**
 * lookupByLines' answer, found by V8's compiled regular expression instead of a JavaScript loop over every
 * line (the real 6.1 System.map: ~94 k lines, ~25 ms on a cold start; the pattern ~5 ms). A candidate is a
 * wanted name after a blank and followed only by blanks up to the line's '\n' or the text's end — the last
 * blank-delimited token of its line, as the header's rule has it (a name at the very start of a line defines
 * nothing: a symbol line starts with its address); its line is then read by parseSymbolLine as before.
 */
function lookupByPattern(text: string, wanted: ReadonlySet<string>): Map<string, string> {
  const found = new Map<string, string>();
  const names = [...wanted].filter((n) => n.length > 0 && n.length <= MAX_LOOKUP_NAME);
  if (names.length === 0) return found;
  // [^\S\n]: LINE_RE's blanks but the line break (latin1 text: tab, VT, FF, CR, space, NBSP)
  const re = new RegExp(`[^\\S\\n](${names.map(escapeRegExp).join('|')})[^\\S\\n]*(?=\\n|$)`, 'g');
  const globalFound = new Set<string>();
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const token = m[1]!;
    if (globalFound.has(token)) continue;
    const start = text.lastIndexOf('\n', m.index) + 1;
    const line = parseSymbolLine(text, start, lineEnd(text, m.index));
    if (line !== null && line.kind === 'symbol' && line.name === token) {
      const g = isGlobal(line.type);
      if (!found.has(token) || g) found.set(token, line.digits);
      if (g) globalFound.add(token);
    }
  }
  return found;
}

/** lookupSymbolText for many names: one pass over the lines, parsing those whose last token is wanted. */
function lookupByLines(text: string, wanted: ReadonlySet<string>): Map<string, string> {
  let maxLen = 0;
  for (const n of wanted) maxLen = Math.max(maxLen, n.length);
  maxLen = Math.min(maxLen, MAX_LOOKUP_NAME);
  const lengths = new Uint8Array(maxLen + 1); // lengths[n] = 1 when some wanted name has n characters
  for (const n of wanted) if (n.length <= maxLen) lengths[n.length] = 1;
  const found = new Map<string, string>();
  const globalFound = new Set<string>();
  for (let start = 0; start <= text.length; ) {
    const end = lineEnd(text, start);
    let e = end;
    while (e > start && isBlank(text.charCodeAt(e - 1))) e--;
    let s = e;
    while (s > start && e - s <= maxLen && !isBlank(text.charCodeAt(s - 1))) s--;
    const len = e - s;
    // a token longer than every wanted name stops the backward scan early: its start is not a blank then
    if (len > 0 && len <= maxLen && lengths[len] === 1 && (s === start || isBlank(text.charCodeAt(s - 1)))) {
      const token = text.slice(s, e);
      if (wanted.has(token) && !globalFound.has(token)) {
        const line = parseSymbolLine(text, start, end);
        if (line !== null && line.kind === 'symbol' && line.name === token) {
          const g = isGlobal(line.type);
          if (!found.has(token) || g) found.set(token, line.digits);
          if (g) globalFound.add(token);
        }
      }
    }
    start = end + 1;
  }
  return found;
}
