// JSON reporter: models the machine-readable audit result, schema "p2m-audit/audit@1", documented
// field by field in docs/json-report.md. Pfns, frame-sized values and addresses are 0x-prefixed
// lowercase hex strings; counts (pages, MiB, ranges, exit code) are numbers; every range is printed with
// an inclusive `end`. Field order and names are stable within a schema version.
import type { PfnRange } from '../common/pfn-range.js';
import { PFN_CLASS_NAMES } from '../audit/pfn-class.js';
import { hex } from '../xen/abi.js';
import type { AuditReport, ClassTotals, FatalRange, NotedRange, ReportRange } from '../audit/verdict.js';
import type { CrashRead, CrashStartup } from '../audit/crash-startup.js';
import type { CrashListFacts } from '../views/p2m-leaves.js';
import { saveJson } from './save-report.js';

export const JSON_SCHEMA = 'p2m-audit/audit@1';

function hexOrNull(v: number | bigint | undefined | null): string | null {
  return v === undefined || v === null ? null : hex(v);
}

/** [start, end) → { start, end } with end inclusive. */
function span(r: PfnRange): { start: string; end: string } {
  return { start: hex(r.start), end: hex(r.end - 1) };
}

function range(r: ReportRange): Record<string, unknown> {
  return { class: r.cls, start: hex(r.start), end: hex(r.end - 1), pages: r.pages, mib: r.mib };
}

function noted(r: NotedRange): Record<string, unknown> {
  return { ...range(r), text: r.text };
}

function fatal(r: FatalRange): Record<string, unknown> {
  const c = r.cause;
  return {
    ...range(r),
    cause: {
      kind: c.kind,
      toolstack: {
        method: c.toolstack.method,
        archMaxPfn: hex(c.toolstack.archMaxPfn),
        boundPfn: hex(c.toolstack.boundPfn),
        failure: c.toolstack.failure,
        trimmedFrom: hexOrNull(c.toolstack.trimmedFrom),
      },
      kernel: c.kernel.map((v) => ({ name: v.name, value: hex(v.value), source: v.source })),
      boot: c.boot
        ? {
            profile: c.boot.profile,
            nrPages: hex(c.boot.nrPages),
            kernelMaxPfn: hex(c.boot.kernelMaxPfn),
            buildBound: hex(c.boot.buildBound),
          }
        : null,
      boundEquals: c.boundEquals,
      reachesRange: c.reachesRange,
      remapped: c.remapped.map((m) => ({
        how: m.how,
        from: span(m.from),
        to: span(m.to),
        overlap: span(m.overlap),
        e820: m.e820.map((p) => ({ start: hex(p.addr), end: hex(p.end - 1), type: p.type })),
      })),
      breaks: {
        effect: c.breaks.effect,
        savePages: c.breaks.savePages,
        saveMib: c.breaks.saveMib,
        crashVa: { start: hex(c.breaks.vaStart), end: hex(c.breaks.vaEnd) },
        crashSource: c.breaks.crashSource,
        crashReadablePages: c.breaks.crashReadablePages,
      },
    },
    text: r.text,
    breaks: r.breaksText,
  };
}

/** The report as a plain JSON-ready object (what renderJson stringifies). */
export function toJsonObject(report: AuditReport): Record<string, unknown> {
  const v = report.guest.vars;
  const classes: Record<string, ClassTotals> = {};
  for (const name of PFN_CLASS_NAMES) {
    const t = report.classes[name];
    classes[name] = { pages: t.pages, mib: t.mib, ranges: t.ranges };
  }
  const b = report.boot;
  return {
    schema: JSON_SCHEMA,
    file: report.file,
    format: report.format,
    verdict: report.verdict,
    exitCode: report.exitCode,
    reason: report.reason,
    auditedPfns: hex(report.auditedPfns),
    toolstack: {
      method: report.toolstack.method,
      archMaxPfn: hex(report.toolstack.archMaxPfn),
      maxPfn: report.toolstack.maxPfn >= 0 ? hex(report.toolstack.maxPfn) : null,
      boundPfn: hex(report.toolstack.boundPfn),
      failure: report.toolstack.failure,
      trimmedFrom: hexOrNull(report.toolstack.trimmedFrom),
      notes: report.toolstack.notes,
      ...(report.toolstack.crash ? { crash: crashList(report.toolstack.crash) } : {}),
    },
    guest: {
      layout: report.guest.layout,
      limitPfn: hex(report.guest.limitPfn),
      beyond: report.guest.beyond,
      pageOffset: hex(report.guest.pageOffset),
      vars: {
        nrPages: hexOrNull(v.nrPages),
        maxPfn: hexOrNull(v.maxPfn),
        xenMaxP2mPfn: hexOrNull(v.xenMaxP2mPfn),
        xenP2mSize: hexOrNull(v.xenP2mSize),
        xenP2mLastPfn: hexOrNull(v.xenP2mLastPfn),
        pageOffset: hexOrNull(v.pageOffset),
        p2mAddr: hexOrNull(v.p2mAddr),
      },
      notes: report.guest.notes,
      ...(report.guest.root ? { root: report.guest.root } : {}),
    },
    boot: b
      ? {
          profile: b.profile,
          role: b.role,
          nrPages: hex(b.nrPages),
          maxPages: hex(b.maxPages),
          kernelMaxPfn: hex(b.kernelMaxPfn),
          buildBound: hex(b.buildBound),
          remapped: b.remapped.map((m) => ({ how: m.how, from: span(m.from), to: span(m.to) })),
        }
      : null,
    classes,
    fatalPages: report.fatalPages,
    fatal: report.fatal.map(fatal),
    benign: report.benign.map(range),
    warnings: report.warnings.map(noted),
    errors: report.errors.map(noted),
    omittedRanges: report.omittedRanges,
    ...(report.crash ? { crash: crashStartup(report.crash) } : {}),
    ...saveJson(report),
  };
}

function crashList(c: CrashListFacts): Record<string, unknown> {
  return {
    rootMfn: hex(c.rootMfn),
    p2mFrames: c.p2mFrames,
    maxPfnBound: c.maxPfnBound ? { archMaxPfn: hex(c.maxPfnBound.archMaxPfn), boundPfn: hex(c.maxPfnBound.boundPfn), source: c.maxPfnBound.source } : null,
    makedumpfileDiffers: c.makedumpfileDiffers,
  };
}

function crashStartup(p: CrashStartup): Record<string, unknown> {
  const read = (x: CrashRead): Record<string, unknown> => ({
    type: x.type,
    va: hex(x.va),
    pfn: x.pfn >= 0 ? hex(x.pfn) : null,
    onError: x.onError,
    outcome: x.outcome,
    crashMfn: x.crashMfn >= 0 ? hex(x.crashMfn) : null,
    guestMfn: x.guestMfn >= 0 ? hex(x.guestMfn) : null,
    line: x.line,
  });
  return {
    starts: p.starts,
    firstFailure: p.firstFailure ? read(p.firstFailure) : null,
    reads: p.reads.map(read),
    lost: p.lost.map((l) => ({ what: l.what, vaStart: hex(l.vaStart), vaEnd: hex(l.vaEnd), pages: l.pages, lostPages: l.lostPages })),
    notes: p.notes,
  };
}

export function renderJson(report: AuditReport): string {
  return JSON.stringify(toJsonObject(report), null, 2) + '\n';
}
