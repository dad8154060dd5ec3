// Section "cold" (issue 17): what a user waits for before any audit work, and the issue's table of ratios.
//
// Cold start: `node -e 0` (node's own floor), `p2m-audit --help`, `--version`, and `audit` of an empty file
// (every module the audit command loads, then an input error: the import floor of an audit), the last also
// through bin/p2m-audit (the package's command: node started from the startup snapshot, docs/bench-notes.md
// "Session 6"; it falls back to dist/src/cli.js when node would refuse the blob, e.g. with NODE_OPTIONS set), as child
// processes in interleaved rounds (the order rotates each round, so drifting load hits all of them alike);
// wall-time medians, compared only with each other.
//
// The issue-17 table: every row a ratio of two figures measured in this run — the audit child of the
// 1 TiB and 64 GiB .p2ms against `cat` (section p2ms), --help against `node -e 0` (here), the corpus scan
// against `cat` of the same files (section corpus), the real save's audit against `cat` (section real).
import fs from 'node:fs';
import path from 'node:path';
import { CLI, ROOT, log, f2, f3, table } from './common.js';
import type { Options } from './options.js';
import { median, type Runner } from './measure.js';
import type { Goal } from './goals.js';
import type { SizeResult } from './p2ms.js';
import type { CorpusResult } from './corpus.js';
import type { RealResult } from './real-save.js';

/** Rounds of the cold-start children (at least; --reps when larger). */
const MIN_ROUNDS = 15;

/** Issue 17's goals (report only). */
export const COLD_GOALS = {
  audit1T: 1.5,
  audit64G: 5,
  help: 1.15,
  scan: 1.5,
  real: 3,
} as const;

interface ColdChild {
  name: string;
  /** the program run: node unless given */
  cmd?: string;
  args: string[];
  /** exit status that counts as success */
  code: number;
  samplesS: number[];
  medianS: number;
}

export interface ColdResult {
  error: string | null;
  rounds: number;
  children: ColdChild[];
}

export async function benchCold(opts: Options, runner: Runner, tmp: string): Promise<ColdResult> {
  const empty = path.join(tmp, 'cold-empty-file');
  fs.writeFileSync(empty, '');
  const children: ColdChild[] = [
    { name: 'node -e 0', args: ['-e', '0'], code: 0, samplesS: [], medianS: NaN },
    { name: 'p2m-audit --help', args: [CLI, '--help'], code: 0, samplesS: [], medianS: NaN },
    { name: 'p2m-audit --version', args: [CLI, '--version'], code: 0, samplesS: [], medianS: NaN },
    { name: 'p2m-audit audit EMPTY (imports, exit 2)', args: [CLI, 'audit', empty], code: 2, samplesS: [], medianS: NaN },
    { name: 'bin/p2m-audit audit EMPTY (snapshot, exit 2)', cmd: path.join(ROOT, 'bin/p2m-audit'), args: ['audit', empty], code: 2, samplesS: [], medianS: NaN },
  ];
  const rounds = Math.max(MIN_ROUNDS, opts.reps);
  const res: ColdResult = { error: null, rounds, children };
  try {
    log(`cold start: ${rounds} interleaved rounds of ${children.map((c) => c.name).join(', ')}`);
    for (let r = -1; r < rounds; r++) {
      for (let j = 0; j < children.length; j++) {
        const c = children[(j + r + children.length) % children.length]!;
        const out = await runner.run(c.cmd ?? process.execPath, c.args, { measureRss: false });
        if (out.code !== c.code) throw new Error(`${c.name}: exit ${out.code} (expected ${c.code}): ${out.stderr.trim().split('\n')[0]}`);
        if (r >= 0) c.samplesS.push(out.wallS); // round -1 warms the page cache
      }
    }
    for (const c of children) c.medianS = median(c.samplesS);
  } catch (e) {
    res.error = (e as Error).message;
    log(`cold start: FAILED: ${res.error}`);
  } finally {
    fs.rmSync(empty, { force: true });
  }
  return res;
}

interface IssueRow {
  row: string;
  num: number | undefined;
  den: number | undefined;
  goal: number;
}

function ratio(r: IssueRow): number | undefined {
  return r.num !== undefined && r.den !== undefined && r.den > 0 ? r.num / r.den : undefined;
}

/** The cold-start table and the issue-17 table (ratios of this run's figures), with their goals. */
export function reportCold(c: ColdResult | null, p2ms: SizeResult[], corpus: CorpusResult | null, real: RealResult | null): { text: string; goals: Goal[] } {
  let s = '';
  const goals: Goal[] = [];
  const node0 = c?.children[0]?.medianS;
  if (c && !c.error) {
    s += `\n== Cold start: ${c.rounds} interleaved rounds, child processes, medians (wall) ==\n\n`;
    s += table(
      ['command', 'median s', '÷ node -e 0'],
      c.children.map((x) => [x.name, f3(x.medianS), node0 ? `${f2(x.medianS / node0)}×` : '-']),
      1,
    );
  }
  const size = (g: number): SizeResult | undefined => p2ms.find((r) => r.sizeGiB === g && r.error === null);
  const s1T = size(1024);
  const s64 = size(64);
  const rows: IssueRow[] = [
    { row: '`audit` child, 1 TiB .p2ms / cat', num: s1T?.audit?.['j2']?.medianS, den: s1T?.cat?.medianS, goal: COLD_GOALS.audit1T },
    { row: '`audit` child, 64 GiB .p2ms / cat', num: s64?.audit?.['j2']?.medianS, den: s64?.cat?.medianS, goal: COLD_GOALS.audit64G },
    { row: '`--help` / node -e 0', num: c?.children[1]?.medianS, den: node0, goal: COLD_GOALS.help },
    { row: `scan of the ${corpus ? `${corpus.files}-file ` : ''}corpus / cat of the same files`, num: corpus?.scan?.wallS, den: corpus?.catS, goal: COLD_GOALS.scan },
    { row: 'real 96 MB xl save audit / cat', num: real?.figures?.audit.medianS, den: real?.figures?.cat.medianS, goal: COLD_GOALS.real },
  ];
  s += '\n== Issue 17: cold start and per-file cost, each row a ratio of two figures of this run (goal: at most) ==\n\n';
  s += table(
    ['row', 'measured s', 'baseline s', 'ratio', 'goal'],
    rows.map((r) => [r.row, f3(r.num), f3(r.den), ratio(r) === undefined ? 'not measured' : `${f2(ratio(r))}×`, `≤ ${r.goal}×`]),
    1,
  );
  if (corpus?.bytesRead !== undefined && corpus.leafBytes !== undefined) {
    s += `scan bytes read (the child's /proc/self/io rchar: every read(), page-cache hits included) ${corpus.bytesRead} = ${f2(corpus.bytesRead / corpus.leafBytes)}× the corpus's leaf and structure bytes (${corpus.leafBytes})\n`;
  }
  for (const r of rows) {
    const v = ratio(r);
    if (v !== undefined) goals.push({ section: 'cold', goal: `${r.row} ≤ ${r.goal}×`, subject: 'issue 17', value: `${f2(v)}×`, pass: v <= r.goal });
  }
  return { text: s, goals };
}
