// The classifier (ARCHITECTURE.md "Classification" and exit codes): models the audit's verdict. From
// the merged per-pfn class ranges and both views it computes per-class totals, the verdict and exit
// code, and for every fatal range a cause — the toolstack bound (arch.max_pfn) and the kernel
// variables that explain it, whether the range is RAM remapped/repopulated out of an e820 hole, and
// what breaks (pages save/migration drops, kernel virtual addresses crash cannot read). Renderers
// (text.ts, json.ts) only format this object.
import type { BootFacts } from '../inputs/boot-facts.js';
import type { E820Entry } from '../inputs/e820.js';
import type { GuestImage, StreamStop } from '../formats/guest-image.js';
import type { PfnRange } from '../common/pfn-range.js';
import { crashReadablePages, crashView, type CrashView } from '../views/crash-view.js';
import { applyCrashTerms } from './crash-terms.js';
import type { CrashStartup } from './crash-startup.js';
import { CLASS_SEVERITY, PFN_CLASS_NAMES, type ClassRange, type PfnClassName } from './pfn-class.js';
import { type CrashListFacts, type GuestView, type KernelVars, type ToolstackView } from '../views/p2m-leaves.js';
import { E820_ACPI, E820_NVS, E820_PMEM, E820_PRAM, E820_RAM, E820_RESERVED, E820_UNUSABLE, PAGE_OFFSET_LEGACY, PAGE_SIZE, PAGES_PER_MIB, hex } from '../xen/abi.js';
import { bootFactsOf, streamStopOf } from '../formats/guest-image.js';
import type { SavePrediction } from './save-prediction.js';

export type Verdict = 'CLEAN' | 'WARN' | 'ERROR' | 'FATAL';

/**
 * Exit codes (ARCHITECTURE.md, docs/exit-codes.md): 0 clean/benign only, 1 fatal, 2 usage, input or output
 * error (nothing on stdout), 3 warnings only, 5 partial: a report was produced, but part of the input could
 * not be read or checked (pages absent from the image, sweep cells or scanned files that failed).
 */
export const EXIT_CLEAN = 0;
export const EXIT_FATAL = 1;
export const EXIT_INPUT_ERROR = 2;
export const EXIT_WARNINGS = 3;
export const EXIT_PARTIAL = 5;

export interface ClassTotals {
  pages: number;
  mib: number;
  ranges: number;
}

/** A range of one class; `end` is exclusive here (renderers print it inclusive). */
export interface ReportRange {
  cls: PfnClassName;
  start: number;
  end: number;
  pages: number;
  mib: number;
}

/** A range with a sentence (warnings: stale; errors: unreadable). */
export interface NotedRange extends ReportRange {
  text: string;
}

/** One piece of the e820 map inside a hole, in bytes [addr, end); type 'gap' where no entry covers it. */
export interface E820Piece {
  addr: number;
  end: number;
  type: string;
}

export interface RemapOverlap {
  how: 'remap' | 'populate';
  /** the e820 hole the RAM came out of, and where boot put it (pfns) */
  from: PfnRange;
  to: PfnRange;
  /** the part of the fatal range inside `to` */
  overlap: PfnRange;
  /** the host e820 entries (and gaps) the source hole lies in */
  e820: E820Piece[];
}

export type CauseKind = 'walk-failed' | 'beyond-bound' | 'shared-missing' | 'invalid-entry' | 'wrong-mfn';

export interface KernelVarValue {
  /** the kernel's name: nr_pages, max_pfn, xen_max_p2m_pfn, xen_p2m_size, xen_p2m_last_pfn */
  name: string;
  value: number;
  /** read through kernel symbols, or known from the boot facts */
  source: 'symbol' | 'boot';
}

export interface FatalCause {
  kind: CauseKind;
  toolstack: {
    method: ToolstackView['method'];
    archMaxPfn: bigint;
    /** pfns < boundPfn are covered by the walk (max_pfn + 1 after trimming; 0 when the walk failed) */
    boundPfn: number;
    failure: string | null;
    trimmedFrom: number | bigint | null;
  };
  /** the kernel variables known (symbols first, boot facts for the rest) */
  kernel: KernelVarValue[];
  boot: { profile: string; nrPages: number; kernelMaxPfn: number; buildBound: number } | null;
  /** names (from `kernel`, plus 'build_bound') whose value equals the toolstack bound */
  boundEquals: string[];
  /** names whose value lies past the range start: the kernel counts these pfns as its own */
  reachesRange: string[];
  remapped: RemapOverlap[];
  breaks: {
    effect: 'dropped' | 'wrong-data';
    savePages: number;
    saveMib: number;
    /** direct-map VAs of the range (pageOffset + pfn · 4096), end inclusive */
    vaStart: bigint;
    vaEnd: bigint;
    /** how crash finds the p2m, and how many pages of the range it still reads correctly */
    crashSource: CrashView['source'];
    crashReadablePages: number;
  };
}

export interface FatalRange extends ReportRange {
  cause: FatalCause;
  /** the cause in words */
  text: string;
  /** what breaks, in words */
  breaksText: string;
}

export interface AuditReport {
  file: string;
  format: string;
  verdict: Verdict;
  exitCode: number;
  /** one line: why this verdict */
  reason: string;
  toolstack: {
    method: ToolstackView['method'];
    archMaxPfn: bigint;
    /** highest pfn saved (inclusive), −1 when the walk failed */
    maxPfn: number;
    boundPfn: number;
    failure: string | null;
    trimmedFrom: number | bigint | null;
    notes: string[];
    /** method 'crash' (a dom0 kdump): the list crash reads and the arch.max_pfn bound beside it */
    crash?: CrashListFacts;
  };
  guest: {
    layout: 'tree' | 'list';
    limitPfn: number;
    beyond: 'identity' | 'missing';
    vars: KernelVars;
    pageOffset: bigint;
    notes: string[];
    /** the top-level page table the guest view walked from, in words (views/kernel-root.ts) */
    root?: string;
  };
  /** a dom0 kdump: crash's start-up predicted (audit/crash-startup.ts) */
  crash?: CrashStartup;
  boot: BootFacts | null;
  /** pfns [0, auditedPfns) were classified */
  auditedPfns: number;
  classes: Record<PfnClassName, ClassTotals>;
  fatalPages: number;
  fatal: FatalRange[];
  benign: ReportRange[];
  warnings: NotedRange[];
  errors: NotedRange[];
  /** ranges counted in the totals but not listed (past MAX_EXPLAINED_RANGES per list, or not kept by the audit) */
  omittedRanges: number;
  /** a save stream without END (a failed save, a cut copy): where it stops and what it holds */
  stream?: StreamStop;
  /** what a real save / migration of this guest does (audit/save-prediction.ts; set by auditImage) */
  save?: SavePrediction;
}

export interface ReportInput {
  img: GuestImage;
  tool: ToolstackView;
  guest: GuestView;
  ranges: ClassRange[];
  /** exact per-class totals when the audit kept only part of its ranges (run-audit's RangeStats) */
  stats?: { pages: number[]; ranges: number[]; dropped: number };
  /** pfns audited ([0, endPfn)); by default the end of the last range */
  endPfn?: number;
}

/** Ranges each list of the report explains (fatal, benign, warnings, errors); the rest are counted. */
export const MAX_EXPLAINED_RANGES = 1024;

const E820_TYPE_NAMES: Record<number, string> = {
  [E820_RAM]: 'RAM',
  [E820_RESERVED]: 'reserved',
  [E820_ACPI]: 'ACPI',
  [E820_NVS]: 'NVS',
  [E820_UNUSABLE]: 'unusable',
  [E820_PMEM]: 'PMEM',
  [E820_PRAM]: 'PRAM',
};

export function e820TypeName(type: number): string {
  return E820_TYPE_NAMES[type] ?? `type ${type}`;
}

export function pagesToMib(pages: number): number {
  return pages / PAGES_PER_MIB;
}

/** MiB for text: one decimal, two significant digits below 0.1 MiB. */
export function formatMib(mib: number): string {
  if (mib === 0) return '0';
  if (mib < 0.1) return mib.toPrecision(2);
  return mib.toFixed(1);
}

/** An inclusive hex pfn range "0xa-0xb" from a half-open [start, end). */
export function pfnSpan(start: number, end: number): string {
  return `${hex(start)}-${hex(end - 1)}`;
}

function rangeOf(r: ClassRange): ReportRange {
  const pages = r.end - r.start;
  return { cls: r.cls, start: r.start, end: r.end, pages, mib: pagesToMib(pages) };
}

/** The kernel variables that bear on the bound: symbols first, boot facts for what symbols lack. */
function kernelValues(vars: KernelVars, boot: BootFacts | null): KernelVarValue[] {
  const out: KernelVarValue[] = [];
  const add = (name: string, sym: number | undefined, fromBoot: number | undefined): void => {
    if (sym !== undefined) out.push({ name, value: sym, source: 'symbol' });
    else if (fromBoot !== undefined) out.push({ name, value: fromBoot, source: 'boot' });
  };
  add('nr_pages', vars.nrPages, boot?.nrPages);
  add('max_pfn', vars.maxPfn, boot?.kernelMaxPfn);
  add('xen_max_p2m_pfn', vars.xenMaxP2mPfn, undefined);
  add('xen_p2m_size', vars.xenP2mSize, undefined);
  add('xen_p2m_last_pfn', vars.xenP2mLastPfn, undefined);
  return out;
}

/** Host e820 entries and gaps inside the byte range [addr, end). */
function e820Pieces(map: E820Entry[], addr: number, end: number): E820Piece[] {
  const sorted = [...map].sort((a, b) => a.addr - b.addr);
  const pieces: E820Piece[] = [];
  let at = addr;
  for (const e of sorted) {
    const eEnd = e.addr + e.size;
    if (eEnd <= addr || e.addr >= end) continue;
    if (e.addr > at) pieces.push({ addr: at, end: e.addr, type: 'gap' });
    pieces.push({ addr: e.addr, end: eEnd, type: e820TypeName(e.type) });
    at = Math.max(at, eEnd);
  }
  if (at < end) pieces.push({ addr: at, end, type: 'gap' });
  return pieces;
}

function remapOverlaps(boot: BootFacts | null, start: number, end: number): RemapOverlap[] {
  if (!boot) return [];
  const map = boot.hostE820.length > 0 ? boot.hostE820 : boot.kernelE820;
  const out: RemapOverlap[] = [];
  for (const r of boot.remapped) {
    const s = Math.max(start, r.to.start);
    const e = Math.min(end, r.to.end);
    if (s >= e) continue;
    out.push({
      how: r.how,
      from: { ...r.from },
      to: { ...r.to },
      overlap: { start: s, end: e },
      e820: e820Pieces(map, r.from.start * PAGE_SIZE, r.from.end * PAGE_SIZE),
    });
  }
  return out;
}

function describePieces(pieces: E820Piece[]): string {
  return pieces.map((p) => `${p.type} ${hex(p.addr)}-${hex(p.end - 1)}`).join(', ');
}

function varList(vals: KernelVarValue[]): string {
  return vals.map((v) => `${v.name} ${hex(v.value)}`).join(', ');
}

function joinAnd(items: string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

interface Context {
  tool: ToolstackView;
  boundPfn: number;
  walkFailed: boolean;
  kernel: KernelVarValue[];
  boot: BootFacts | null;
  pageOffset: bigint;
  crash: CrashView;
  guest: GuestView;
}

function buildCause(ctx: Context, r: ReportRange): { cause: FatalCause; text: string; breaksText: string } {
  const { tool, boundPfn, boot } = ctx;
  let kind: CauseKind;
  if (r.cls === 'uncovered') kind = ctx.walkFailed ? 'walk-failed' : r.start >= boundPfn ? 'beyond-bound' : 'shared-missing';
  else if (r.cls === 'lost') kind = 'invalid-entry';
  else kind = 'wrong-mfn';

  const bootSummary = boot
    ? { profile: boot.profile, nrPages: boot.nrPages, kernelMaxPfn: boot.kernelMaxPfn, buildBound: boot.buildBound }
    : null;
  const named: { name: string; value: number }[] = ctx.kernel.map((v) => ({ name: v.name, value: v.value }));
  if (boot) named.push({ name: 'build_bound', value: boot.buildBound });
  const boundEquals = ctx.walkFailed ? [] : named.filter((v) => v.value === boundPfn).map((v) => v.name);
  const reachesRange = named.filter((v) => v.value > r.start && v.name !== 'build_bound').map((v) => v.name);
  const remapped = remapOverlaps(boot, r.start, r.end);
  const effect = kind === 'wrong-mfn' ? 'wrong-data' : 'dropped';
  const vaStart = ctx.pageOffset + BigInt(r.start) * BigInt(PAGE_SIZE);
  const vaEnd = ctx.pageOffset + BigInt(r.end) * BigInt(PAGE_SIZE) - 1n;
  const cause: FatalCause = {
    kind,
    toolstack: {
      method: tool.method,
      archMaxPfn: tool.archMaxPfn,
      boundPfn,
      failure: tool.failure,
      trimmedFrom: tool.untrimmedMaxPfn,
    },
    kernel: ctx.kernel,
    boot: bootSummary,
    boundEquals,
    reachesRange,
    remapped,
    breaks: {
      effect,
      savePages: r.pages,
      saveMib: r.mib,
      vaStart,
      vaEnd,
      crashSource: ctx.crash.source,
      crashReadablePages: effect === 'dropped' ? crashReadablePages(ctx.crash, ctx.guest, r.start, r.end) : 0,
    },
  };

  const parts: string[] = [];
  const walk = `${tool.method} walk`;
  const covers = boundPfn > 0 ? `covers pfns ${pfnSpan(0, boundPfn)}` : 'covers nothing';
  const trimmed = tool.untrimmedMaxPfn !== null ? `, trimmed from max_pfn ${hex(tool.untrimmedMaxPfn)}` : '';
  const boundDesc = `arch.max_pfn ${hex(tool.archMaxPfn)} (${walk} ${covers}${trimmed})`;
  switch (kind) {
    case 'walk-failed':
      parts.push(`the toolstack's ${walk} failed: ${tool.failure ?? 'no pfns covered'}; save aborts, so none of the guest's RAM is saved`);
      break;
    case 'beyond-bound':
      parts.push(`these pfns lie past the toolstack bound ${boundDesc}`);
      break;
    case 'shared-missing':
      parts.push(
        `the toolstack's ${walk} reaches these leaves through a top/mid entry that leads to the guest's shared p2m_missing page ` +
          `(the frame-list mirror was never written for them), so it reads INVALID inside its bound ${boundDesc}`,
      );
      break;
    case 'invalid-entry':
      parts.push(`covered by the toolstack (${boundDesc}), but the leaf it reads holds INVALID or marked entries where the guest maps RAM`);
      break;
    case 'wrong-mfn':
      parts.push(`covered by the toolstack (${boundDesc}), but its leaf holds different mfns than the guest's own p2m`);
      break;
  }
  if (kind === 'beyond-bound' || kind === 'shared-missing') {
    const eq = ctx.kernel.filter((v) => boundEquals.includes(v.name));
    if (eq.length > 0) parts.push(`arch.max_pfn equals ${joinAnd(eq.map((v) => `${v.name} ${hex(v.value)}`))}`);
    if (boot) parts.push(`xen_build_mfn_list_list ran with bound ${hex(boot.buildBound)} (profile ${boot.profile})`);
    const reach = ctx.kernel.filter((v) => reachesRange.includes(v.name) && !boundEquals.includes(v.name));
    if (reach.length > 0) parts.push(`but the kernel's ${joinAnd(reach.map((v) => `${v.name} ${hex(v.value)}`))} count${reach.length === 1 ? 's' : ''} these pfns as its own`);
  } else if (kind !== 'walk-failed' && ctx.kernel.length > 0) {
    parts.push(`kernel: ${varList(ctx.kernel)}`);
  }
  for (const m of remapped) {
    const verb = m.how === 'remap' ? 'remapped' : 'released and repopulated';
    const where = m.e820.length > 0 ? ` (${describePieces(m.e820)})` : '';
    parts.push(
      `pfns ${pfnSpan(m.overlap.start, m.overlap.end)} are RAM ${verb} at boot out of the e820 hole ` +
        `${pfnSpan(m.from.start, m.from.end)}${where} to ${pfnSpan(m.to.start, m.to.end)}`,
    );
  }
  const size = `${r.pages} page${r.pages === 1 ? '' : 's'} (${formatMib(r.mib)} MiB)`;
  const vas = `${hex(vaStart)}-${hex(vaEnd)}`;
  const readable = cause.breaks.crashReadablePages;
  let crashText: string;
  if (effect === 'wrong-data') crashText = `crash reads wrong memory for kernel virtual addresses ${vas}`;
  else if (readable === r.pages)
    crashText = `crash still reads them (it follows the ${ctx.crash.source === 'linear-list' ? "kernel's linear p2m list" : 'frame list without the arch.max_pfn bound'})`;
  else if (readable > 0)
    crashText = `crash reads ${readable} of them through the ${ctx.crash.source}, and reports 'read error: kernel virtual address' for the rest of ${vas}`;
  else crashText = `crash reports 'read error: kernel virtual address' for ${vas}`;
  const breaksText =
    effect === 'dropped' ? `save/migration drops ${size}; ${crashText}` : `save/migration copies the wrong machine frames for ${size}; ${crashText}`;
  return { cause, text: parts.join('; '), breaksText };
}

export function buildReport(input: ReportInput): AuditReport {
  const { img, tool, guest, ranges } = input;
  const boot = bootFactsOf(img);
  const walkFailed = tool.failure !== null || tool.maxPfn < 0;
  const boundPfn = walkFailed ? 0 : tool.maxPfn + 1;
  const pageOffset = guest.vars.pageOffset ?? PAGE_OFFSET_LEGACY;
  const ctx: Context = { tool, boundPfn, walkFailed, kernel: kernelValues(guest.vars, boot), boot, pageOffset, crash: crashView(img, guest), guest };

  const classes = {} as Record<PfnClassName, ClassTotals>;
  for (const name of PFN_CLASS_NAMES) classes[name] = { pages: 0, mib: 0, ranges: 0 };
  const fatal: FatalRange[] = [];
  const benign: ReportRange[] = [];
  const warnings: NotedRange[] = [];
  const errors: NotedRange[] = [];
  let auditedPfns = 0;

  let omitted = input.stats?.dropped ?? 0;
  const addFatal = (start: number, end: number, cls: PfnClassName): void => {
    if (fatal.length >= MAX_EXPLAINED_RANGES) {
      omitted++;
      return;
    }
    const rr = rangeOf({ start, end, cls });
    fatal.push({ ...rr, ...buildCause(ctx, rr) });
  };
  const listed = <T>(list: T[], item: () => T): void => {
    if (list.length >= MAX_EXPLAINED_RANGES) omitted++;
    else list.push(item());
  };

  for (const r of ranges) {
    if (r.end <= r.start) continue;
    auditedPfns = Math.max(auditedPfns, r.end);
    const t = classes[r.cls];
    t.pages += r.end - r.start;
    t.ranges += 1;
    switch (CLASS_SEVERITY[r.cls]) {
      case 'ok':
        break;
      case 'benign':
        listed(benign, () => rangeOf(r));
        break;
      case 'fatal':
        // one cause per range: an uncovered range straddling the bound is split there
        if (r.cls === 'uncovered' && !walkFailed && r.start < boundPfn && r.end > boundPfn) {
          addFatal(r.start, boundPfn, r.cls);
          addFatal(boundPfn, r.end, r.cls);
        } else addFatal(r.start, r.end, r.cls);
        break;
      case 'warning':
        listed(warnings, () => ({
          ...rangeOf(r),
          text:
            'the guest has no RAM here (missing or identity) but the toolstack reads mfns: ' +
            'save sends machine frames the guest does not use',
        }));
        break;
      case 'error':
        listed(errors, () => ({
          ...rangeOf(r),
          text: 'a leaf page needed by the guest or toolstack walk is absent from the image: these pfns were not checked',
        }));
        break;
    }
  }
  if (input.stats) {
    // exact totals, including ranges the audit counted but did not keep
    PFN_CLASS_NAMES.forEach((name, code) => {
      classes[name].pages = input.stats!.pages[code] ?? 0;
      classes[name].ranges = input.stats!.ranges[code] ?? 0;
    });
  }
  if (input.endPfn !== undefined) auditedPfns = Math.max(auditedPfns, input.endPfn);
  for (const name of PFN_CLASS_NAMES) classes[name].mib = pagesToMib(classes[name].pages);

  const fatalPages = classes.uncovered.pages + classes.lost.pages + classes.mismatch.pages;
  const pagesText = (n: number): string => `${n} page${n === 1 ? '' : 's'} (${formatMib(pagesToMib(n))} MiB)`;
  let verdict: Verdict;
  let exitCode: number;
  let reason: string;
  if (walkFailed) {
    verdict = 'ERROR';
    exitCode = EXIT_FATAL;
    reason = `the toolstack's ${tool.method} walk failed (${tool.failure ?? 'no pfns covered'}): save aborts; ${pagesText(fatalPages)} of guest RAM are uncovered`;
  } else if (fatalPages > 0) {
    verdict = 'FATAL';
    exitCode = EXIT_FATAL;
    const by = (['uncovered', 'lost', 'mismatch'] as const)
      .filter((c) => classes[c].pages > 0)
      .map((c) => `${c} ${classes[c].pages}`)
      .join(', ');
    reason = `${pagesText(fatalPages)} of guest RAM are not saved correctly (${by})`;
  } else if (classes.unreadable.pages > 0) {
    verdict = 'ERROR';
    exitCode = EXIT_PARTIAL;
    reason = `${pagesText(classes.unreadable.pages)} could not be checked: leaf pages are absent from the image`;
  } else if (classes.stale.pages > 0) {
    verdict = 'WARN';
    exitCode = EXIT_WARNINGS;
    reason = `${pagesText(classes.stale.pages)} are stale: the toolstack reads mfns where the guest has no RAM`;
  } else {
    verdict = 'CLEAN';
    exitCode = EXIT_CLEAN;
    reason = `every guest RAM page (${classes.ram.pages}) is covered by the toolstack with the same mfn`;
  }
  const crashTerms = tool.method === 'crash' ? applyCrashTerms({ img, tool, guest, crash: ctx.crash, fatal }) : null;
  if (crashTerms && verdict === 'FATAL') reason = crashTerms.reason(fatalPages);
  if (verdict !== 'ERROR' && classes.unreadable.pages > 0) {
    reason += `; ${pagesText(classes.unreadable.pages)} could not be checked`;
  }

  return {
    file: img.path,
    format: img.format,
    verdict,
    exitCode,
    reason,
    toolstack: {
      method: tool.method,
      archMaxPfn: tool.archMaxPfn,
      maxPfn: walkFailed ? -1 : tool.maxPfn,
      boundPfn,
      failure: tool.failure,
      trimmedFrom: tool.untrimmedMaxPfn,
      notes: [...tool.notes],
      ...(tool.crash ? { crash: tool.crash } : {}),
    },
    guest: {
      layout: guest.layout,
      limitPfn: guest.limitPfn,
      beyond: guest.beyond,
      vars: { ...guest.vars },
      pageOffset,
      notes: [...guest.notes],
      ...(guest.root ? { root: guest.root.text } : {}),
    },
    ...(crashTerms ? { crash: crashTerms.startup } : {}),
    boot,
    auditedPfns,
    classes,
    fatalPages,
    fatal,
    benign,
    warnings,
    errors,
    omittedRanges: omitted,
    ...(streamStopOf(img) ? { stream: streamStopOf(img)! } : {}),
  };
}
