// Boot-log lines as users paste them: mail copies decoded (RFC 2045 quoted-printable, "> " quoting at any depth),
// syslog, dmesg and Xen console prefixes (xen/drivers/char/console.c: "(XEN) ", console_timestamps=) told apart.
import type { Sourced } from './boot-log.js';

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
export const XEN_MARK = '(XEN)';
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

export type Origin = 'xen' | 'linux' | 'guest' | 'plain';

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
export interface LogLine {
  shown: string;
  body: string;
  bodyAt: number;
  origin: Origin;
  segs: Segment[];
}

export function firstLine(l: LogLine): number {
  return l.segs[0]!.line;
}

/** The physical line holding offset `at` of `shown`. */
export function lineAt(l: LogLine, at: number): number {
  let line = firstLine(l);
  for (const s of l.segs) if (s.at <= at) line = s.line;
  return line;
}

export function physicalLines(text: string): string[] {
  return text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
}

export function plainPieces(lines: string[]): Piece[] {
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
export function decodeQuotedPrintable(lines: string[]): Piece[] {
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

export function stripQuoting(p: Piece): { piece: Piece; quoted: boolean } {
  const m = QUOTE_RE.exec(p.text);
  if (!m) return { piece: p, quoted: false };
  return { piece: { text: p.text.slice(m[0].length), segs: shiftSegs(p.segs, m[0].length) }, quoted: true };
}

/** Length of the match of `re` at the start of `s`, or 0. */
function prefixLength(re: RegExp, s: string): number {
  return re.exec(s)?.[0].length ?? 0;
}

/** Remove syslog, dmesg and Xen console prefixes; say which console the line came from. */
export function stripPrefixes(p: Piece): LogLine {
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

// ---- which console a line came from; values found on it -------------------------------------------

export function fromXen(l: LogLine): boolean {
  return l.origin === 'xen' || l.origin === 'plain';
}

export function fromLinux(l: LogLine): boolean {
  return l.origin === 'linux' || l.origin === 'plain';
}

/** First occurrence wins; a later, different one is noted (two boots pasted?). */
export function keepFirst<T>(cur: Sourced<T> | null | undefined, next: Sourced<T>, label: string, notes: string[]): Sourced<T> {
  if (!cur) return next;
  if (JSON.stringify(cur.value) !== JSON.stringify(next.value)) notes.push(`${label} at line ${next.line} differs from line ${cur.line}; using line ${cur.line}`);
  return cur;
}

/** A value taken from a whole log line (its first physical line). */
export function onLine<T>(value: T, l: LogLine): Sourced<T> {
  return { value, line: firstLine(l), text: l.shown };
}

/** A value found at offset `at` of a log line's `shown` (its physical line). */
export function sourced<T>(value: T, loc: { at: number; log: LogLine }): Sourced<T> {
  return { value, line: lineAt(loc.log, loc.at), text: loc.log.shown };
}
