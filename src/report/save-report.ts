// The save-side parts of an audit report, for text.ts and json.ts: where a save stream without END stops
// (a failed `xl save` leaves one) and what a real save / migration of the guest does
// (audit/save-prediction.ts). Pfns are 0x-prefixed hex; ranges are printed inclusive.
import type { StreamStop } from '../formats/guest-image.js';
import type { SaveCheck, SavePrediction } from '../audit/save-prediction.js';
import type { AuditReport } from '../audit/verdict.js';
import { hex } from '../xen/abi.js';

/** Ranges of page-table pages listed in text (the JSON lists all). */
const MAX_TEXT_TABLE_RANGES = 20;

function rangeText(r: { start: number; end: number }): string {
  return r.end - r.start === 1 ? hex(r.start) : `${hex(r.start)}-${hex(r.end - 1)}`;
}

/** "stream incomplete: …" — the one line that marks a report of a stream without END. */
export function streamStopLine(s: StreamStop): string {
  const where = s.tornRecord
    ? `after ${s.afterRecord}, inside ${s.tornRecord === 'record header' ? 'the next record header' : `a ${s.tornRecord} record`} the file cuts off`
    : `after ${s.afterRecord}`;
  const vcpus = s.vcpuRecords.length === 0 ? 'no vCPU records' : `vCPU records for vCPU ${s.vcpuRecords.join(', ')}`;
  const why = s.vcpuRecords.length === 0 && !s.tornRecord ? 'this is what a failed save leaves' : 'the file was cut short (a copy or transfer that did not finish)';
  return `stream incomplete: stops at offset ${s.offset} ${where}; ${vcpus}, no END: ${why}`;
}

/** The records a stream without END holds, in first-seen order. */
export function streamRecordsLine(s: StreamStop): string {
  return `stream records: ${s.records.map((r) => `${r.name} ${r.count}`).join(', ')}`;
}

function checkText(c: SaveCheck): string {
  const where = c.pfn !== null ? `pfn ${hex(c.pfn)}` : c.frame >= 0 ? `frame ${hex(c.frame)}, no guest pfn` : 'no frame';
  if (c.kind === 'gdt') return `vCPU ${c.vcpu}'s GDT frame ${c.index} (${where})`;
  if (c.kind === 'cr3') return `vCPU ${c.vcpu}'s cr3 (${where})`;
  if (c.kind === 'cr1') return `vCPU ${c.vcpu}'s ctrlreg[1] (${where})`;
  if (c.kind === 'suspend-record') return `the suspend record (${where})`;
  if (c.kind === 'superpage') return `a superpage in page table ${where}`;
  return `vCPU ${c.vcpu}'s GDT size`;
}

/** Text lines: what a save does, the other frames past the bound, the page tables sent without data. */
export function saveLines(p: SavePrediction): string[] {
  const lines = [`save/migration ${p.text}`];
  const others = p.failing.filter((c) => c !== p.failure);
  if (others.length > 0) lines.push(`  also past the bound (the save stops at the first): ${others.map(checkText).join(', ')}`);
  if (p.tables.pages > 0) {
    const shown = p.tables.ranges.slice(0, MAX_TEXT_TABLE_RANGES).map(rangeText).join(', ');
    const more = p.tables.ranges.length > MAX_TEXT_TABLE_RANGES ? `, … ${p.tables.ranges.length - MAX_TEXT_TABLE_RANGES} more ranges (see --json)` : '';
    const how = p.tables.source === 'stream types' ? 'the stream gives them as XTAB' : 'their entries point past the bound';
    lines.push(`  page tables sent without data (XTAB; normalise_pagetable: ${how}): ${p.tables.pages} page${p.tables.pages === 1 ? '' : 's'}: ${shown}${more}`);
  }
  return lines;
}

function checkJson(c: SaveCheck): Record<string, unknown> {
  return { vcpu: c.vcpu, kind: c.kind, index: c.index, frame: c.frame >= 0 ? hex(c.frame) : null, pfn: c.pfn === null ? null : hex(c.pfn), ok: c.ok, message: c.message, source: c.source };
}

/** The "stream" and "save" members of the JSON report (docs/json-report.md). */
export function saveJson(report: AuditReport): { stream: Record<string, unknown> | null; save: Record<string, unknown> | null } {
  const s = report.stream;
  const p = report.save;
  return {
    stream: s
      ? {
          incomplete: true,
          stopsAt: s.offset,
          afterRecord: s.afterRecord,
          afterRecordOffset: s.afterRecordOffset,
          tornRecord: s.tornRecord,
          records: s.records.map((r) => ({ name: r.name, count: r.count })),
          vcpuRecords: s.vcpuRecords,
          end: false,
          text: streamStopLine(s),
        }
      : null,
    save: p
      ? {
          outcome: p.outcome,
          text: `save/migration ${p.text}`,
          maxPfn: hex(p.maxPfn),
          archMaxPfn: hex(p.archMaxPfn),
          failure: p.failure ? checkJson(p.failure) : null,
          failing: p.failing.map(checkJson),
          checked: p.checked,
          vcpuSource: p.vcpuSource,
          tables: {
            pages: p.tables.pages,
            source: p.tables.source,
            walked: p.tables.walked,
            ranges: p.tables.ranges.map((r) => ({ start: hex(r.start), end: hex(r.end - 1), pages: r.end - r.start })),
          },
          droppedPages: p.droppedPages,
          notes: p.notes,
        }
      : null,
  };
}
