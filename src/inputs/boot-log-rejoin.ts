// Boot-log lines hard-wrapped by a mail client, rejoined into the messages Xen and Linux printed; the whole
// path from pasted text to a log's logical lines (decode, unquote, strip prefixes, rejoin).
import { isE820Entry, RAM_MAP_HEADER_RE } from './boot-log-e820.js';
import { CMDLINE_START_RE } from './boot-log-cmdline.js';
import { DOM0_ALLOC_RE, INIT_RAMDISK_RE, PHYS_MACH_RE } from './boot-log-xen.js';
import { IDENTITY_RE, LAST_PFN_RE, P2M_AREA_RE, RELEASED_38_RE, RELEASED_RE, REMAPPED_RE } from './boot-log-linux.js';
import {
  decodeQuotedPrintable,
  firstLine,
  type LogLine,
  looksQuotedPrintable,
  physicalLines,
  plainPieces,
  stripPrefixes,
  stripQuoting,
} from './boot-log-lines.js';

/**
 * At most this many physical lines are rejoined into one: Linux's longest command line (x86
 * COMMAND_LINE_SIZE, 2048 bytes) hard-wrapped at 72 columns takes 29; quoted-printable soft breaks add some.
 */
const MAX_JOINED_LINES = 40;

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
export function logicalLines(text: string, notes: string[]): LogLine[] {
  const physical = physicalLines(text);
  const qp = looksQuotedPrintable(text);
  if (qp) notes.push('decoded quoted-printable (mail transfer encoding)');
  let quoted = 0;
  const lines = (qp ? decodeQuotedPrintable(physical) : plainPieces(physical)).map((p) => {
    const q = stripQuoting(p);
    if (q.quoted) quoted++;
    return stripPrefixes(q.piece);
  });
  if (quoted > 0) notes.push(`removed mail quoting ("> ") from ${quoted} line(s)`);
  return rejoinWrapped(lines, notes);
}
