// Section 1 (p2ms) report: the emulation, audit, engine, one-thread and scaling tables and their goals.
import { PAGE_SIZE } from '../src/xen/abi.js';
import { PROFILE_ID, MiB, f2, f3, f1, f0, table, mib } from './common.js';
import { GOAL_AUDIT_OVER_CAT, GOAL_SPEEDUP_J2, GOAL_LINEAR_SLACK, GOAL_SCALING_TOLERANCE, type Goal, rssGoal } from './goals.js';
import type { SizeResult } from './p2ms.js';

function fit(points: { x: number; y: number }[]): { fixed: number; perUnit: number } | null {
  if (points.length < 2) return null;
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  if (sxx === 0) return null;
  const perUnit = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0) / sxx;
  return { fixed: my - perUnit * mx, perUnit };
}

interface Scaling {
  from: number;
  to: number;
  guestRatio: number;
  fileRatio: number;
  cat: number;
  auditJ1: number;
  auditJ2: number;
  emulate: number;
  inProcess: number;
  engineJ1: number;
  engineJ2: number;
}

function scalingOf(a: SizeResult, b: SizeResult): Scaling {
  return {
    from: a.sizeGiB,
    to: b.sizeGiB,
    guestRatio: b.sizeGiB / a.sizeGiB,
    fileRatio: b.fileBytes! / a.fileBytes!,
    cat: b.cat!.medianS / a.cat!.medianS,
    auditJ1: b.audit!['j1']!.medianS / a.audit!['j1']!.medianS,
    auditJ2: b.audit!['j2']!.medianS / a.audit!['j2']!.medianS,
    emulate: b.emulateS! / a.emulateS!,
    inProcess: b.inProcess!.medianS / a.inProcess!.medianS,
    engineJ1: b.engine!['j1']!.medianS / a.engine!['j1']!.medianS,
    engineJ2: b.engine!['j2']!.medianS / a.engine!['j2']!.medianS,
  };
}

/** Cells: cat s, j1 s, j2 s, j1/cat, j2/cat (ratios with `ratio`), j2 speed-up; '-' where a figure is missing. */
function againstCat(cat: { medianS: number } | undefined, j1: { medianS: number } | undefined, j2: { medianS: number } | undefined, ratio: (v: number) => string): string[] {
  return [
    f3(cat?.medianS),
    f3(j1?.medianS),
    f3(j2?.medianS),
    cat && j1 ? ratio(j1.medianS / cat.medianS) : '-',
    cat && j2 ? ratio(j2.medianS / cat.medianS) : '-',
    j1 && j2 ? f2(j1.medianS / j2.medianS) : '-',
  ];
}

export function reportP2ms(results: SizeResult[]): { text: string; goals: Goal[]; scaling: Scaling[]; overall: Scaling | null } {
  const ok = results.filter((r) => r.error === null);
  let s = '';
  s += `\n== 1. .p2ms snapshots of emulated ${PROFILE_ID} dom0 guests (nr_pages = max_pages = guest size) ==\n\n`;
  s += 'Emulation (in process, library)\n';
  s += table(
    ['guest GiB', 'emulate s', 'write s', 'frames', 'file MiB', 'bench RSS MiB', 'verdict'],
    results.map((r) => [
      String(r.sizeGiB),
      f2(r.emulateS),
      f2(r.writeS),
      r.frames?.toString() ?? '-',
      f1(r.fileBytes !== undefined ? r.fileBytes / MiB : undefined),
      mib(r.benchRssAfterEmulateKiB),
      r.error ? 'FAILED' : r.verdict ?? '-',
    ]),
  );
  s += '\nAudit (child process: bin/p2m-audit audit FILE --json --jobs N: the package command) vs cat FILE > /dev/null\n';
  s += table(
    ['guest GiB', 'file MiB', 'cat s', 'audit j1 s', 'audit j2 s', 'audit/cat j1', 'audit/cat j2', 'j2 speed-up', 'peak RSS MiB'],
    results.map((r) => {
      const j1 = r.audit?.['j1'];
      const j2 = r.audit?.['j2'];
      const rss = [j1?.peakRssKiB, j2?.peakRssKiB].filter((v): v is number => typeof v === 'number');
      return [String(r.sizeGiB), f1(r.fileBytes !== undefined ? r.fileBytes / MiB : undefined), ...againstCat(r.cat, j1, j2, f1), rss.length ? mib(Math.max(...rss)) : '-'];
    }),
  );
  s += '\nEngine (in this process, warm worker pool of N threads: openImage + auditImage + close; no node start-up, no worker boot)\n';
  s += table(
    ['guest GiB', 'cat s', 'engine j1 s', 'engine j2 s', 'engine/cat j1', 'engine/cat j2', 'j2 speed-up', 'child j2 − engine j2 s'],
    results.map((r) => {
      const j1 = r.engine?.['j1'];
      const j2 = r.engine?.['j2'];
      const child = r.audit?.['j2'];
      return [String(r.sizeGiB), ...againstCat(r.cat, j1, j2, f2), child && j2 ? f3(child.medianS - j2.medianS) : '-'];
    }),
  );
  s += '\nOne thread: auditImage(img, {jobs: 0}) = walks + guest view + the shard reader on the main thread (batched reads, wasm flags) + report;\n';
  s += 'loop = auditInProcess alone on the same views (GuestImage.readFrame, JS scans: the reference path). leaves = audited 512-pfn leaves, page-backed = leaves with a guest leaf page\n';
  s += table(
    ['guest GiB', 'auditImage s', 'leaves', 'leaves/s', 'page-backed', 'page leaves/s', 'loop s', 'loop page leaves/s', 'loop MiB/s'],
    results.map((r) => {
      const p = r.inProcess;
      return [
        String(r.sizeGiB),
        f3(p?.medianS),
        p?.leaves.toString() ?? '-',
        f0(p?.leavesPerS),
        p?.pageLeaves.toString() ?? '-',
        f0(p?.pageLeavesPerS),
        f3(p?.loopMedianS),
        f0(p?.loopPageLeavesPerS),
        p ? f0((p.loopPageLeavesPerS * PAGE_SIZE) / MiB) : '-',
      ];
    }),
  );

  const scaling: Scaling[] = [];
  for (let i = 1; i < ok.length; i++) scaling.push(scalingOf(ok[i - 1]!, ok[i]!));
  const overall = ok.length >= 2 ? scalingOf(ok[0]!, ok[ok.length - 1]!) : null;
  if (scaling.length) {
    const rows = [...scaling];
    if (overall && ok.length > 2) rows.push(overall);
    s += '\nScaling: time(larger)/time(smaller), expected ≈ guest-size ratio for linear cost\n';
    s += table(
      ['sizes GiB', 'guest ratio', 'file ratio', 'audit j1', 'audit j2', 'engine j1', 'engine j2', 'cat', 'in-process', 'emulate'],
      rows.map((x) => [`${x.to}/${x.from}`, f2(x.guestRatio), f2(x.fileRatio), f2(x.auditJ1), f2(x.auditJ2), f2(x.engineJ1), f2(x.engineJ2), f2(x.cat), f2(x.inProcess), f2(x.emulate)]),
    );
    const lines: string[] = [];
    for (const [label, get] of [
      ['audit j1', (r: SizeResult) => r.audit!['j1']!.medianS],
      ['audit j2', (r: SizeResult) => r.audit!['j2']!.medianS],
      ['engine j1', (r: SizeResult) => r.engine!['j1']!.medianS],
      ['engine j2', (r: SizeResult) => r.engine!['j2']!.medianS],
      ['cat', (r: SizeResult) => r.cat!.medianS],
    ] as const) {
      const lf = fit(ok.map((r) => ({ x: r.sizeGiB, y: get(r) })));
      if (lf) lines.push(`  ${label.padEnd(9)} ≈ ${f3(lf.fixed)} s fixed + ${f3(lf.perUnit * 1000)} ms per guest GiB`);
    }
    if (lines.length) s += `Affine fit time = fixed + per-GiB · size (${ok.map((r) => r.sizeGiB).join(', ')} GiB):\n${lines.join('\n')}\n`;
  }

  const goals: Goal[] = [];
  // each goal twice: the CLI child (what one `p2m-audit audit FILE` costs, node start-up included) and
  // the engine (what a file costs inside a running process such as scan)
  const ways = [
    ['child', (r: SizeResult, j: string) => r.audit![j]!.medianS],
    ['engine', (r: SizeResult, j: string) => r.engine![j]!.medianS],
  ] as const;
  for (const [way, t] of ways) {
    for (const r of ok) {
      const ratio = t(r, 'j2') / r.cat!.medianS;
      goals.push({ section: 'p2ms', goal: `audit/cat (j2, ${way}) ≤ ${GOAL_AUDIT_OVER_CAT}`, subject: `${r.sizeGiB} GiB`, value: f2(ratio), pass: ratio <= GOAL_AUDIT_OVER_CAT });
    }
  }
  for (const [way, t] of ways) {
    for (const r of ok) {
      const sp = t(r, 'j1') / t(r, 'j2');
      goals.push({ section: 'p2ms', goal: `2 workers ≥ ${GOAL_SPEEDUP_J2}× one (${way})`, subject: `${r.sizeGiB} GiB`, value: `${f2(sp)}×`, pass: sp >= GOAL_SPEEDUP_J2 });
    }
  }
  for (const r of ok) {
    const rss = [r.audit!['j1']!.peakRssKiB, r.audit!['j2']!.peakRssKiB].filter((v): v is number => v !== null);
    goals.push(rssGoal('p2ms', `${r.sizeGiB} GiB`, rss.length ? Math.max(...rss) : null));
  }
  for (const x of scaling) {
    goals.push({
      section: 'p2ms',
      goal: `cost linear in guest size (j2 ratio ≤ ${GOAL_LINEAR_SLACK} × guest ratio)`,
      subject: `${x.to}/${x.from} GiB`,
      value: `${f2(x.auditJ2)} (guest ${f2(x.guestRatio)}, file ${f2(x.fileRatio)})`,
      pass: x.auditJ2 <= GOAL_LINEAR_SLACK * x.guestRatio,
    });
  }
  if (overall) {
    const lo = overall.guestRatio * (1 - GOAL_SCALING_TOLERANCE);
    const hi = overall.guestRatio * (1 + GOAL_SCALING_TOLERANCE);
    for (const [j, v] of [
      ['j1, child', overall.auditJ1],
      ['j2, child', overall.auditJ2],
      ['j1, engine', overall.engineJ1],
      ['j2, engine', overall.engineJ2],
    ] as const) {
      goals.push({
        section: 'p2ms',
        goal: `time(${overall.to})/time(${overall.from}) (${j}) within ${f0(overall.guestRatio)} ± ${f0(GOAL_SCALING_TOLERANCE * 100)} % (${f1(lo)}–${f1(hi)})`,
        subject: `${overall.to}/${overall.from} GiB`,
        value: f2(v),
        pass: v >= lo && v <= hi,
      });
    }
  }
  return { text: s, goals, scaling, overall };
}
