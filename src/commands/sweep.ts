// `p2m-audit sweep`: emulate and audit every dom0_mem value × profile on one host map (src/sweep/sweep.ts)
// and print the matrix as text, CSV or JSON, optionally drawn as SVG.
import { InputError } from '../common/errors.js';
import { loadKconfig } from '../inputs/kconfig.js';
import { checkXenHostMap } from '../inputs/e820.js';
import { EXIT_CLEAN, EXIT_FATAL, EXIT_PARTIAL, EXIT_WARNINGS } from '../audit/verdict.js';
import { renderSweepSvg } from '../report/svg.js';
import { renderSweepCsv, renderSweepText, runSweep } from '../sweep/sweep.js';
import { checkOutputs, loadE820, progress, reportStream, writeTextOutput } from './common.js';

export interface SweepOpts {
  e820: string;
  dom0Mem: string;
  profile: string;
  max: boolean;
  kconfig?: string;
  config: Record<string, string>;
  seed: number;
  jobs: number;
  json?: boolean;
  csv?: boolean;
  svg?: string;
  /** replace an existing --svg file */
  force?: boolean;
}

export async function cmdSweep(o: SweepOpts): Promise<number> {
  const svgRules = { inputs: [o.e820, o.kconfig], force: o.force, stdout: 'text' as const };
  checkOutputs([o.svg], svgRules);
  const hostE820 = loadE820(o.e820);
  checkXenHostMap(hostE820, o.e820);
  const m = await runSweep({
    hostE820,
    range: o.dom0Mem,
    profiles: o.profile.split(',').map((p) => p.trim()).filter(Boolean),
    withMax: o.max,
    jobs: o.jobs,
    kconfig: o.kconfig ? loadKconfig(o.kconfig) : null,
    config: o.config,
    seed: o.seed,
    onProgress: progress('sweep'),
  });
  const cells = m.cells.flat();
  // nothing to show when every combination failed: an input error, stdout left empty (docs/exit-codes.md)
  if (cells.length > 0 && cells.every((c) => c.error)) {
    throw new InputError(`sweep: every combination failed: ${[...new Set(cells.map((c) => c.error))].join('; ')}`);
  }
  // the picture first: a write error then leaves stdout empty; with --svg - it has stdout, the matrix goes to stderr
  if (o.svg) writeTextOutput(o.svg, renderSweepSvg({ rows: m.rows, cols: m.cols, cells: m.cells.map((r) => r.map((c) => ({ verdict: c.verdict, uncoveredMib: c.uncoveredMib }))) }), svgRules);
  reportStream(o.svg).write(o.json ? JSON.stringify(m, null, 2) + '\n' : o.csv ? renderSweepCsv(m) : renderSweepText(m));
  return cells.some((c) => c.error) ? EXIT_PARTIAL : cells.some((c) => c.verdict === 'FATAL') ? EXIT_FATAL : cells.some((c) => c.verdict === 'WARN') ? EXIT_WARNINGS : EXIT_CLEAN;
}
