// `emulate --compare`: the boot messages the emulated kernel would print, each beside the same message
// found in a real boot log (src/inputs/boot-log.ts), marked equal or different.
import type { BootFacts } from '../inputs/boot-facts.js';
import type { E820Entry } from '../inputs/e820.js';
import type { BootLog, Sourced } from '../inputs/boot-log.js';
import { E820_RAM, hex } from '../xen/abi.js';

export type CompareStatus = 'equal' | 'different' | 'not in log' | 'not predicted';

export interface CompareRow {
  item: string;
  predicted: string | null;
  logged: string | null;
  /** 1-based line of the log where the logged value was found */
  line: number | null;
  status: CompareStatus;
}

export interface BootComparison {
  schema: 'p2m-audit/compare@1';
  rows: CompareRow[];
  equal: number;
  different: number;
}

/** Values the emulator's own message lines carry (their wording is the profile's, see emulate.ts). */
function predicted(facts: BootFacts): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  const last: string[] = [];
  for (const m of facts.messages) {
    let r: RegExpExecArray | null;
    if ((r = /^Released (\d+) page\(s\)$/.exec(m))) out['Released N page(s)'] = r[1];
    else if ((r = /^Released (\d+) pages of unused memory$/.exec(m))) out['Released N pages of unused memory'] = r[1];
    else if ((r = /^Remapped (\d+) page\(s\)/.exec(m))) out['Remapped N page(s)'] = r[1];
    else if ((r = /^Set (\d+) page\(s\) to 1-1 mapping$/.exec(m))) out['Set N page(s) to 1-1 mapping'] = r[1];
    else if ((r = /size is ([0-9a-f]+)$/.exec(m))) out['p2m virtual area size'] = r[1];
    else if ((r = /^last_pfn = (0x[0-9a-f]+)/.exec(m))) last.push(r[1]!);
  }
  last.forEach((v, i) => (out[`last_pfn #${i + 1}`] = v));
  return out;
}

function logged(log: BootLog): Record<string, Sourced<string> | undefined> {
  const m = log.messages;
  const s = (x: Sourced<number> | undefined, f: (n: number) => string): Sourced<string> | undefined =>
    x ? { value: f(x.value), line: x.line, text: x.text } : undefined;
  const dec = (n: number) => String(n);
  const out: Record<string, Sourced<string> | undefined> = {
    'Released N page(s)': s(m.released, dec),
    'Released N pages of unused memory': s(m.releasedPages38, dec),
    'Remapped N page(s)': s(m.remapped, dec),
    'Set N page(s) to 1-1 mapping': s(m.identity, dec),
    'p2m virtual area size': s(m.p2mAreaSize, (n) => n.toString(16)),
  };
  m.lastPfn.forEach((v, i) => (out[`last_pfn #${i + 1}`] = s(v, hex)));
  return out;
}

function usable(map: E820Entry[]): string[] {
  return map.filter((e) => e.type === E820_RAM).map((e) => `${hex(e.addr)}-${hex(e.addr + e.size - 1)}`);
}

/** The usable ranges of the predicted 'Xen: [mem A-B] usable' table (what the kernel printed, before any mem=). */
function predictedXenUsable(messages: string[]): string[] {
  const out: string[] = [];
  for (const m of messages) {
    const r = /^Xen: \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\] usable$/.exec(m);
    if (r) out.push(`${hex(Number.parseInt(r[1]!, 16))}-${hex(Number.parseInt(r[2]!, 16))}`);
  }
  return out;
}

export function compareBoot(facts: BootFacts, log: BootLog): BootComparison {
  const p = predicted(facts);
  const l = logged(log);
  const rows: CompareRow[] = [];
  for (const item of new Set([...Object.keys(p), ...Object.keys(l)])) {
    const pv = p[item] ?? null;
    const lv = l[item] ?? null;
    if (pv === null && lv === undefined) continue;
    if (pv === null && lv === null) continue;
    const status: CompareStatus = pv === null ? 'not predicted' : !lv ? 'not in log' : pv === lv.value ? 'equal' : 'different';
    rows.push({ item, predicted: pv, logged: lv?.value ?? null, line: lv?.line ?? null, status });
  }
  // the kernel's usable ranges ('Xen: [mem A-B] usable')
  const pu = predictedXenUsable(facts.messages);
  const lu = log.kernelE820 ? usable(log.kernelE820.value) : [];
  const startLine = log.kernelE820?.line ?? null;
  for (const r of [...new Set([...pu, ...lu])].sort((a, b) => Number(BigInt(a.split('-')[0]!) - BigInt(b.split('-')[0]!)))) {
    const inP = pu.includes(r);
    const inL = lu.includes(r);
    rows.push({
      item: 'kernel e820 usable',
      predicted: inP ? r : null,
      logged: inL ? r : null,
      line: inL ? startLine : null,
      status: inP && inL ? 'equal' : !log.kernelE820 ? 'not in log' : inP ? 'different' : 'not predicted',
    });
  }
  const equal = rows.filter((r) => r.status === 'equal').length;
  const different = rows.filter((r) => r.status === 'different' || r.status === 'not predicted').length;
  return { schema: 'p2m-audit/compare@1', rows, equal, different };
}

export function renderComparison(c: BootComparison): string {
  const head = ['message', 'predicted', 'log', 'line', 'result'];
  const body = c.rows.map((r) => [r.item, r.predicted ?? '-', r.logged ?? '-', r.line === null ? '-' : String(r.line), r.status]);
  const w = head.map((h, k) => Math.max(h.length, ...body.map((b) => b[k]!.length)));
  const fmt = (cols: string[]) => cols.map((x, k) => x.padEnd(w[k]!)).join('  ').trimEnd();
  return [fmt(head), fmt(w.map((n) => '-'.repeat(n))), ...body.map(fmt), `${c.equal} equal, ${c.different} different`].join('\n') + '\n';
}
