// Text reporter: models the human-readable audit result — a verdict line, the toolstack bound against
// the kernel's own bounds, each fatal range with its cause and what breaks, then warnings, errors and a
// benign summary. Pfns are 0x-prefixed lowercase hex; ranges are printed inclusive (start-end).
import { PFN_CLASS_NAMES } from '../audit/pfn-class.js';
import { hex } from '../xen/abi.js';
import { formatMib, pfnSpan, type AuditReport, type NotedRange, type ReportRange } from '../audit/verdict.js';
import { describeCrashStartup } from '../audit/crash-startup.js';
import { saveLines, streamRecordsLine, streamStopLine } from './save-report.js';

/** At most this many ranges per section are printed (the JSON report lists all of them). */
export const MAX_TEXT_RANGES = 20;

function pages(n: number, mib: number): string {
  return `${n} page${n === 1 ? '' : 's'}, ${formatMib(mib)} MiB`;
}

function rangeHead(r: ReportRange): string {
  return `pfn ${pfnSpan(r.start, r.end)} (${pages(r.pages, r.mib)}) ${r.cls}`;
}

function capped<T>(items: T[], line: (item: T) => string[], what: string): string[] {
  const out: string[] = [];
  for (const item of items.slice(0, MAX_TEXT_RANGES)) out.push(...line(item));
  if (items.length > MAX_TEXT_RANGES) out.push(`  … and ${items.length - MAX_TEXT_RANGES} more ${what} (see --json)`);
  return out;
}

function kernelBounds(report: AuditReport): string {
  const v = report.guest.vars;
  const boot = report.boot;
  const items: string[] = [];
  const nrPages = v.nrPages ?? boot?.nrPages;
  const maxPfn = v.maxPfn ?? boot?.kernelMaxPfn;
  if (nrPages !== undefined) items.push(`nr_pages ${hex(nrPages)}`);
  if (maxPfn !== undefined) items.push(`max_pfn ${hex(maxPfn)}`);
  if (v.xenMaxP2mPfn !== undefined) items.push(`xen_max_p2m_pfn ${hex(v.xenMaxP2mPfn)}`);
  if (v.xenP2mSize !== undefined) items.push(`xen_p2m_size ${hex(v.xenP2mSize)}`);
  if (v.xenP2mLastPfn !== undefined) items.push(`xen_p2m_last_pfn ${hex(v.xenP2mLastPfn)}`);
  return items.length > 0 ? items.join(', ') : 'no kernel variables known';
}

/** A dom0 kdump's toolstack line: the list crash reads, and the arch.max_pfn bound beside it. */
function crashToolstackLine(report: AuditReport): string {
  const t = report.toolstack;
  const c = t.crash!;
  const reach = c.p2mFrames * 512;
  const tail = t.trimmedFrom !== null ? `; past ${hex(t.maxPfn)} every leaf up to ${hex(t.trimmedFrom)} reads ~0` : '';
  const beside = c.maxPfnBound ? `; beside it arch.max_pfn ${hex(c.maxPfnBound.archMaxPfn)} (${c.maxPfnBound.source}) covers pfns ${pfnSpan(0, c.maxPfnBound.boundPfn)}` : "; dom0's shared_info (arch.max_pfn) not found";
  return `toolstack: crash, the crash note's frame list (top page mfn ${hex(c.rootMfn)}, p2m_frames ${c.p2mFrames}: pfns ${pfnSpan(0, reach)}), mapped pfns ${pfnSpan(0, t.boundPfn)}${tail}${beside} vs ${kernelBounds(report)}`;
}

/** The benign identity/missing range that runs from past the last RAM pfn to the end of the audited p2m, if listed. */
export function unusedP2mEnd(report: AuditReport): ReportRange | undefined {
  return report.benign.find((r) => r.end === report.auditedPfns && (r.cls === 'identity' || r.cls === 'missing'));
}

export function renderText(report: AuditReport): string {
  const lines: string[] = [];
  lines.push(`p2m-audit: ${report.verdict} (exit ${report.exitCode}) — ${report.reason}`);
  lines.push(`file: ${report.file || '(in memory)'} (${report.format}), guest ${report.guest.layout} p2m, ${hex(report.auditedPfns)} pfns audited`);
  if (report.stream) lines.push(streamStopLine(report.stream), streamRecordsLine(report.stream));

  const t = report.toolstack;
  if (t.crash && t.failure === null && t.maxPfn >= 0) {
    lines.push(crashToolstackLine(report));
  } else if (t.failure !== null || t.maxPfn < 0) {
    lines.push(`toolstack: ${t.method} walk failed: ${t.failure ?? 'no pfns covered'} (arch.max_pfn ${hex(t.archMaxPfn)}) vs ${kernelBounds(report)}`);
  } else {
    const trimmed = t.trimmedFrom !== null ? `, trimmed from ${hex(t.trimmedFrom)}` : '';
    lines.push(
      `toolstack: ${t.method} walk, arch.max_pfn ${hex(t.archMaxPfn)} (covers pfns ${pfnSpan(0, t.boundPfn)}${trimmed}) vs ${kernelBounds(report)}`,
    );
  }
  if (report.boot) {
    lines.push(`boot: profile ${report.boot.profile}, mfn_list_list built up to ${hex(report.boot.buildBound)}`);
  }
  if (report.guest.root) lines.push(`guest: ${report.guest.root}`);
  if (report.crash) lines.push(...describeCrashStartup(report.crash));

  if (report.fatal.length > 0) {
    lines.push(`fatal (${pages(report.fatalPages, report.fatal.reduce((s, r) => s + r.mib, 0))}):`);
    lines.push(...capped(report.fatal, (r) => [`  ${rangeHead(r)}: ${r.text}`, `    breaks: ${r.breaksText}`], 'fatal ranges'));
  }
  const noted = (title: string, items: NotedRange[]): void => {
    if (items.length === 0) return;
    lines.push(`${title}:`);
    lines.push(...capped(items, (r) => [`  ${rangeHead(r)}: ${r.text}`], `${title}`));
  };
  noted('warnings', report.warnings);
  noted('errors', report.errors);
  if (report.save) lines.push(...saveLines(report.save));

  const benign = PFN_CLASS_NAMES.filter((c) => report.classes[c].pages > 0 && (c === 'identity' || c === 'missing' || c === 'foreign')).map(
    (c) => `${c} ${pages(report.classes[c].pages, report.classes[c].mib)} in ${report.classes[c].ranges} range${report.classes[c].ranges === 1 ? '' : 's'}`,
  );
  lines.push(`ram: ${pages(report.classes.ram.pages, report.classes.ram.mib)}; benign: ${benign.length > 0 ? benign.join('; ') : 'none'}`);
  // the benign ranges themselves (identity holes, missing and foreign pfns), at most MAX_TEXT_RANGES
  lines.push(...capped(report.benign, (r) => [`  benign ${r.cls} ${pfnSpan(r.start, r.end)} (${pages(r.pages, r.mib)})`], 'benign ranges'));
  const tail = unusedP2mEnd(report);
  if (tail) lines.push(`  (${tail.cls} ${pfnSpan(tail.start, tail.end)} is the p2m's unused end: pfns past the guest's last RAM up to the p2m's size, room the kernel keeps for memory added later (balloon, hotplug); not memory, nothing there is lost)`);
  if (report.omittedRanges > 0) {
    lines.push(`(${report.omittedRanges} more ranges are counted in the totals above but not listed: the p2m changes class very often)`);
  }
  return lines.join('\n') + '\n';
}
