// dom0_mem= and dom0's page count as Xen computes them: xen/arch/x86/dom0_build.c (parse_dom0_mem, parse_amt, get_memsize, dom0_compute_nr_pages) and parse_size_and_unit, RELEASE-4.14.0/4.17.0.
import { hex, KiB, PAGE_SHIFT, PAGE_SIZE, PAGES_PER_MIB } from '../xen/abi.js';
import { type E820Entry } from './e820.js';
import { InputError } from '../common/errors.js';
import { e820RamPages } from './e820.js';

/**
 * One dom0_mem amount. Xen's struct memsize is { nr_pages, percent, minus }: `<size>`, `<frac>%` or
 * `<size>+<frac>%`, optionally negated as a whole ("subtract from available memory").
 */
export type MemSize =
  | { kind: 'bytes'; bytes: number; negative: boolean }
  | { kind: 'percent'; percent: number; negative: boolean }
  | { kind: 'bytes+percent'; bytes: number; percent: number; negative: boolean };

export interface Dom0MemSpec {
  amount?: MemSize;
  min?: MemSize;
  max?: MemSize;
  /** the value as given, without a leading "dom0_mem=" */
  text: string;
}

export interface Dom0Pages {
  /** what dom0_compute_nr_pages returns: dom0's initial allocation (start_info.nr_pages) */
  nrPages: number;
  /** d->max_pages, what XENMEM_maximum_reservation returns for dom0 */
  maxPages: number;
  /** the avail the computation used */
  availPages: number;
  /** a positive dom0_mem amount asked for more than avail (Xen clamps it; p2m-audit refuses such input) */
  exceedsAvail: boolean;
  /** pages the dom0_mem amount asked for (0 when no amount was given) */
  requestedPages: number;
  notes: string[];
}

// ---- constants (Xen's own names where Xen has one) -----------------------------------------------

/** Xen asm/page-bits.h PADDR_BITS: amounts beyond the physical address space are refused. */
const PADDR_BITS = 52;
const MAX_AMOUNT_BYTES = 2n ** BigInt(PADDR_BITS);
/** C's LONG_MAX / UINT_MAX on x86-64, and unsigned long arithmetic modulo 2^64. */
const LONG_MAX = 2n ** 63n - 1n;
const UINT_MAX = 0xffffffffn;
const ULONG_MODULUS = 2n ** 64n;
/** parse_amt: a <frac>% must be below 100. */
const PERCENT_LIMIT = 100n;
/** parse_size_and_unit: each suffix step (T→G→M→K→bytes) is a shift by 10; no suffix means KiB. */
const UNIT_SHIFT = 10n;
/** default_nr_pages (4.17) / the !nr_pages branch (4.14): reserve min(avail/16, 128 MiB). Literals in Xen. */
const DOM0_RESERVE_DIVISOR = 16n;
const DOM0_RESERVE_MAX_PAGES = BigInt(128 * PAGES_PER_MIB);
/** sizeof(struct page_info) on x86-64 (frame table entry) and BYTES_PER_LONG (one M2P entry). */
const SIZEOF_PAGE_INFO = 32;
const BYTES_PER_LONG = 8;
/**
 * setup_max_pdx (xen/arch/x86/setup.c, 4.12–4.19, no CONFIG_BIGMEM, no pdx compression): max_pdx is capped by
 * FRAMETABLE_NR (128 GiB / 32 = 2^32) and PAGE_LIST_NULL - 1 (a 32-bit __pdx_t: 2^32 - 2), so Xen's heap
 * only holds frames below 0xfffffffe (16 TiB); RAM above it is never free for dom0.
 */
export const XEN_MAX_PAGE = 2 ** 32 - 2;

const SYNTAX =
  'expected [min:|max:][-]<size>, [-]<frac>% or [-]<size>+<frac>% ' +
  '(<size>: a number, 0x-hex or 0-octal, with suffix K, M, G, T or B, no suffix = KiB; <frac>: integer below 100)';

// ---- parsing ------------------------------------------------------------------------------------

class AmountError extends Error {}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

function digitValue(c: string | undefined): number {
  if (c === undefined || !/^[0-9a-f]$/i.test(c)) return Infinity;
  return parseInt(c, 16);
}

/** simple_strtoull(s, &end, 0): decimal, 0x-hex or 0-octal; stops at the first digit outside the base. */
function strtoull(s: string, at: number): { value: bigint; end: number } {
  let i = at;
  let base = 10;
  if (s[i] === '0') {
    base = 8;
    i++;
    if ((s[i] === 'x' || s[i] === 'X') && digitValue(s[i + 1]) < 16) {
      base = 16;
      i++;
    }
  }
  let value = 0n;
  while (digitValue(s[i]) < base) {
    value = value * BigInt(base) + BigInt(digitValue(s[i]));
    i++;
  }
  return { value, end: i };
}

const UNIT_STEPS: Readonly<Record<string, bigint>> = { t: 4n, g: 3n, m: 2n, k: 1n, b: 0n };

/** parse_size_and_unit with a position pointer: suffix T/G/M/K/B consumed; '%' left in place unscaled; else KiB. */
function parseSizeAndUnit(s: string, at: number): { value: bigint; end: number } {
  const { value, end } = strtoull(s, at);
  const c = s[end];
  const steps = c === undefined ? undefined : UNIT_STEPS[c.toLowerCase()];
  if (steps !== undefined) return { value: value << (steps * UNIT_SHIFT), end: end + 1 };
  if (c === '%') return { value, end };
  return { value: value << UNIT_SHIFT, end };
}

/** parse_amt: [-] then <size>, <frac>% or <size>+<frac>%, nothing after. */
function parseAmt(item: string): MemSize {
  const negative = item.startsWith('-');
  let i = negative ? 1 : 0;
  let bytes: bigint | null = null;
  let percent: number | null = null;
  let items = 0;
  for (;;) {
    if (!isDigit(item[i])) throw new AmountError(`expected a digit at "${item.slice(i)}"`);
    const { value, end } = parseSizeAndUnit(item, i);
    i = end;
    if (item[i] === '%') {
      if (value >= PERCENT_LIMIT) throw new AmountError(`percentage ${value} is not below ${PERCENT_LIMIT}`);
      percent = Number(value);
      i++;
      items++;
    } else {
      if (items > 0) throw new AmountError('a <size> must come before the <frac>%');
      bytes = value;
    }
    items++;
    if (item[i] !== '+' || items >= 2) break;
    i++;
  }
  if (i < item.length) throw new AmountError(`unexpected "${item.slice(i)}"`);
  if (bytes !== null && bytes > MAX_AMOUNT_BYTES) throw new AmountError(`${bytes} bytes is beyond 2^${PADDR_BITS}`);
  const b = bytes === null ? 0 : Number(bytes);
  if (Math.floor(b / PAGE_SIZE) === 0 && !percent) {
    throw new AmountError('rounds to 0 pages (Xen would treat the amount as not given)');
  }
  if (bytes === null) return { kind: 'percent', percent: percent!, negative };
  if (percent === null) return { kind: 'bytes', bytes: b, negative };
  return { kind: 'bytes+percent', bytes: b, percent, negative };
}

const DOM0_MEM_PREFIX = 'dom0_mem=';
const MIN_PREFIX = 'min:';
const MAX_PREFIX = 'max:';

/**
 * parse_dom0_mem: comma-separated `<amt>`, `min:<amt>`, `max:<amt>` in any order (a later item of one
 * kind replaces an earlier one), with or without a leading "dom0_mem=". "min:"/"max:" are case-sensitive
 * as in Xen; size suffixes are not.
 */
export function parseDom0Mem(text: string): Dom0MemSpec {
  const trimmed = text.trim();
  const value = trimmed.startsWith(DOM0_MEM_PREFIX) ? trimmed.slice(DOM0_MEM_PREFIX.length) : trimmed;
  if (value === '') throw new InputError(`dom0_mem: empty value; ${SYNTAX}`);
  const spec: Dom0MemSpec = { text: value };
  value.split(',').forEach((item, k) => {
    try {
      if (item.startsWith(MIN_PREFIX)) spec.min = parseAmt(item.slice(MIN_PREFIX.length));
      else if (item.startsWith(MAX_PREFIX)) spec.max = parseAmt(item.slice(MAX_PREFIX.length));
      else spec.amount = parseAmt(item);
    } catch (err) {
      if (!(err instanceof AmountError)) throw err;
      throw new InputError(`dom0_mem: cannot parse item ${k + 1} "${item}" of "${value}": ${err.message}; ${SYNTAX}`);
    }
  });
  return spec;
}

// ---- available memory ---------------------------------------------------------------------------

export interface Dom0AvailEstimate {
  availPages: number;
  ramPages: number;
  frameTablePages: number;
  m2pPages: number;
}

/**
 * Our estimate of Xen's `avail` (free heap pages at dom0 build): the host's RAM pages below XEN_MAX_PAGE minus
 * the frame table (sizeof(struct page_info) per page) and the M2P table (BYTES_PER_LONG per page), both taken over
 * RAM pages. Ignored: Xen's image, xenheap and per-CPU data, compat M2P, 2 MiB rounding, IOMMU tables and
 * the vCPU reservation (docs/spec-notes/xen-dom0-mem.md).
 */
export function estimateDom0Avail(hostE820: E820Entry[]): Dom0AvailEstimate {
  const ramPages = e820RamPages(hostE820, XEN_MAX_PAGE);
  const frameTablePages = Math.ceil((ramPages * SIZEOF_PAGE_INFO) / PAGE_SIZE);
  const m2pPages = Math.ceil((ramPages * BYTES_PER_LONG) / PAGE_SIZE);
  return { availPages: Math.max(0, ramPages - frameTablePages - m2pPages), ramPages, frameTablePages, m2pPages };
}

// ---- dom0_compute_nr_pages ----------------------------------------------------------------------

/** C unsigned long subtraction. */
function ulongSub(a: bigint, b: bigint): bigint {
  return (((a - b) % ULONG_MODULUS) + ULONG_MODULUS) % ULONG_MODULUS;
}

function sizePages(sz: MemSize): bigint {
  return sz.kind === 'percent' ? 0n : BigInt(sz.bytes) >> BigInt(PAGE_SHIFT);
}

function sizePercent(sz: MemSize): bigint {
  return sz.kind === 'bytes' ? 0n : BigInt(sz.percent);
}

/** get_memsize: nr_pages + percent * avail / 100, subtracted from avail when negative (unsigned). */
function getMemsize(sz: MemSize, avail: bigint): bigint {
  const pages = sizePages(sz) + (sizePercent(sz) * avail) / PERCENT_LIMIT;
  return sz.negative ? ulongSub(avail, pages) : pages;
}

/** default_nr_pages: avail minus min(avail / 16, 128 MiB). */
function defaultNrPages(avail: bigint): bigint {
  const reserve = avail / DOM0_RESERVE_DIVISOR;
  return avail - (reserve < DOM0_RESERVE_MAX_PAGES ? reserve : DOM0_RESERVE_MAX_PAGES);
}

function bmin(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

function bmax(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** A page count that may be a wrapped unsigned value. */
function describePages(pages: bigint): string {
  return pages > BigInt(Number.MAX_SAFE_INTEGER) ? `${hex(pages)} pages (an unsigned wrap)` : formatPages(Number(pages));
}

function describeSize(sz: MemSize): string {
  const sign = sz.negative ? '-' : '';
  if (sz.kind === 'percent') return `${sign}${sz.percent}%`;
  const bytes = `${sign}${hex(sz.bytes)} bytes`;
  return sz.kind === 'bytes' ? bytes : `${bytes}+${sz.percent}%`;
}

function availFor(hostE820: E820Entry[], given: number | undefined, notes: string[]): bigint {
  if (given !== undefined) {
    if (!Number.isSafeInteger(given) || given < 0) throw new InputError(`availPages must be a non-negative integer, got ${given}`);
    notes.push(`avail = ${formatPages(given)} (given)`);
    return BigInt(given);
  }
  const est = estimateDom0Avail(hostE820);
  notes.push(
    `avail = ${formatPages(est.availPages)}: host RAM ${hex(est.ramPages)} pages - frame table ${hex(est.frameTablePages)}` +
      ` - M2P ${hex(est.m2pPages)} (estimate of what Xen keeps; pass availPages to override)`,
  );
  return BigInt(est.availPages);
}

/**
 * dom0_compute_nr_pages for a 64-bit PV dom0 without shadow paging: dom0's initial page count and
 * d->max_pages. A null spec means no dom0_mem= (and an empty CONFIG_DOM0_MEM).
 */
export function computeDom0Pages(
  spec: Dom0MemSpec | null,
  hostE820: E820Entry[],
  opts: { availPages?: number } = {},
): Dom0Pages {
  const notes: string[] = [];
  const avail = availFor(hostE820, opts.availPages, notes);
  if (avail === 0n) throw new InputError('no memory available for dom0: the host e820 map has no usable RAM pages left');

  const asked = spec?.amount ? getMemsize(spec.amount, avail) : 0n;
  let nr = asked;
  if (nr === 0n) {
    nr = defaultNrPages(avail);
    notes.push(`no dom0_mem amount: Xen's default avail - min(avail/16, 128 MiB) = ${formatPages(Number(nr))}`);
  } else if (spec?.amount?.negative) {
    notes.push(`dom0_mem amount ${describeSize(spec.amount)} is taken from avail`);
    if (nr > avail) notes.push('the negative amount exceeds avail: Xen\'s unsigned subtraction wraps, so the clamp to avail applies');
  }
  const min = spec?.min ? getMemsize(spec.min, avail) : 0n;
  const max = spec?.max ? getMemsize(spec.max, avail) : LONG_MAX;

  if (min > nr) notes.push(`raised to min: ${describePages(min)}`);
  nr = bmax(nr, min);
  if (max < nr) notes.push(`lowered to max: ${describePages(max)}`);
  nr = bmin(nr, max);
  if (nr > avail) notes.push(`${describePages(nr)} exceeds avail; Xen clamps to ${formatPages(Number(avail))}`);
  nr = bmin(nr, avail);

  const maxPages = bmin(max, UINT_MAX);
  notes.push(
    spec?.max
      ? `d->max_pages = max: ${describeSize(spec.max)} = ${formatPages(Number(maxPages))}`
      : `no max: given: dom0_max_size is LONG_MAX pages, so d->max_pages = UINT_MAX = ${hex(Number(UINT_MAX))}`,
  );
  const exceedsAvail = !!spec?.amount && !spec.amount.negative && asked > avail;
  return { nrPages: Number(nr), maxPages: Number(maxPages), availPages: Number(avail), notes, exceedsAvail, requestedPages: Number(asked) };
}

/** "0x40000 pages (1024 MiB)"; not MiB-aligned counts are given in KiB ("0x9f pages (636 KiB)"). */
export function formatPages(pages: number): string {
  if (pages % PAGES_PER_MIB === 0) return `${hex(pages)} pages (${pages / PAGES_PER_MIB} MiB)`;
  return `${hex(pages)} pages (${(pages * PAGE_SIZE) / KiB} KiB)`;
}


/** The dom0 size, refusing a dom0_mem= amount larger than what the host can give (one-line InputError). */
export function dom0PagesChecked(spec: Dom0MemSpec | null, hostE820: E820Entry[], where: string): Dom0Pages {
  const r = computeDom0Pages(spec, hostE820);
  if (r.exceedsAvail) {
    throw new InputError(
      `${where}: dom0_mem=${spec!.text} asks for ${formatPages(r.requestedPages)} but the host map leaves only ${formatPages(r.availPages)} for dom0 (its RAM less what Xen keeps)`,
    );
  }
  return r;
}
