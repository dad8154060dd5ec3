#!/usr/bin/env node
// `npm run fuzz -- [options]`: the hostile-input mutation harness (docs/fuzz.md). Also the entry of the
// harness's child processes (given CHILD_FLAG, it runs mutants for its parent instead of parsing options).
//
// Exit codes: 0 no failure, 1 failures found (reproducers in --findings), 2 usage or input error.
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { InputError } from '../common/errors.js';
import { DEFAULT_BATCH, DEFAULT_ITERATIONS, runFuzz, type FuzzSummary } from './harness.js';
import { DEFAULT_HANG_MS, DEFAULT_RSS_LIMIT } from './limits.js';
import { CLASS_NAMES } from './mutate.js';
import { describeOutcome, isFailure, signatureOf } from './outcome.js';
import { CHILD_FLAG } from './protocol.js';
import { replayFile } from './reproducer.js';
import { seedFrom } from './rng.js';
import { cliScenarios, runCliScenarios, SCENARIO_CLASSES } from './scenarios.js';
import type { ScenarioClass } from './cli-scenario.js';

const EXIT_CLEAN = 0;
const EXIT_FAILURES = 1;
const EXIT_USAGE = 2;
const MiB = 1024 * 1024;
const MS_PER_S = 1000;

function count(name: string): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

function printSummary(s: FuzzSummary, json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify(s, (_, v: unknown) => (typeof v === 'bigint' ? '0x' + v.toString(16) : v), 2) + '\n');
    return;
  }
  const out: string[] = [];
  out.push(
    `seed ${s.seed}: ${s.mutants} mutants of ${s.corpus.length} corpus file(s) in ${(s.elapsedMs / MS_PER_S).toFixed(1)} s (${s.mutantsPerSecond.toFixed(0)} mutants/s; ${(s.runMs / Math.max(1, s.mutants)).toFixed(1)} ms per run on average)`,
  );
  for (const b of s.baselines) out.push(`  baseline ${b.source}: ${describeOutcome(b.outcome)}`);
  for (const k of s.skipped) out.push(`  skipped ${k.path}: ${k.why}`);
  out.push(`outcomes: ${Object.entries(s.byStatus).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  out.push(`classes: ${Object.entries(s.byClass).sort().map(([k, v]) => `${k} ${v.run}${v.failed ? ` (${v.failed} failed)` : ''}`).join(', ')}`);
  if (s.slowest.length) out.push(`slowest: ${s.slowest.map((x) => `#${x.id} ${x.ms} ms`).join(', ')}`);
  for (const f of s.flaky) out.push(`flaky (not counted): ${f}`);
  if (s.findings.length === 0) {
    out.push('no failures');
  } else {
    out.push(`${s.findings.length} distinct failure(s):`);
    for (const f of s.findings) {
      out.push(`  ${f.count} × ${f.signature}`);
      out.push(`      e.g. ${f.example.source} mutant ${f.example.id}: ${f.example.description}`);
      out.push(`      ${describeOutcome(f.example.outcome)}`);
      for (const r of f.reproducers) out.push(`      reproducer: ${r}`);
    }
  }
  process.stdout.write(out.join('\n') + '\n');
}

/** --cli-scenarios: every scenario of the seed (or of some classes); exit 1 when any promise is broken. */
async function runScenarioCampaign(seed: number, classes: string[] | undefined, jobs: number | undefined, json: boolean, log: (line: string) => void): Promise<number> {
  const bad = (classes ?? []).filter((c) => !SCENARIO_CLASSES.includes(c as ScenarioClass));
  if (bad.length) throw new InputError(`unknown scenario class ${bad.join(', ')} (known: ${SCENARIO_CLASSES.join(', ')})`);
  const list = cliScenarios(seed, { classes: classes as ScenarioClass[] | undefined });
  const s = await runCliScenarios(list, { jobs, onOutcome: (o) => o.broken.length && log(`BROKEN ${o.id} ${o.what}: ${o.broken.join('; ')}`) });
  if (json) process.stdout.write(JSON.stringify(s, null, 2) + '\n');
  else {
    process.stdout.write(`seed ${seed}: ${s.run} CLI scenarios; ${Object.entries(s.byClass).map(([k, v]) => `${k} ${v.run}${v.broken ? ` (${v.broken} broken)` : ''}`).join(', ')}\n`);
    for (const o of s.broken) process.stdout.write(`  ${o.id} ${o.what}: ${o.broken.join('; ')} (exit ${o.exit}; ${o.stderr.split('\n')[0]})\n`);
    if (s.broken.length === 0) process.stdout.write('no promise broken\n');
  }
  return s.broken.length > 0 ? EXIT_FAILURES : EXIT_CLEAN;
}

async function main(argv: string[]): Promise<number> {
  const program = new Command()
    .name('p2m-fuzz')
    .description('Mutate every corpus image and run openImage + auditImage on each mutant in child processes; record failures as reproducers.')
    .option('--corpus <path...>', 'files or directories holding images (.gz are decompressed first)', ['corpora'])
    .option('--seed <seed>', 'seed (a number, or any string)', '1')
    .option('--iterations <n>', `mutants to run (default ${DEFAULT_ITERATIONS}, or unbounded with --time)`, count('--iterations'))
    .option('--time <seconds>', 'keep going this long', count('--time'))
    .option('--start <id>', 'first mutant id', count('--start'), 0)
    .option('--mutant <id...>', 'run only these mutant ids (e.g. to regenerate a finding)')
    .option('--jobs <n>', 'parallel child processes (default: CPU count)', count('--jobs'))
    .option('--batch <k>', 'mutants per child batch', count('--batch'), DEFAULT_BATCH)
    .option('--hang-ms <ms>', 'a run longer than this is a hang', count('--hang-ms'), DEFAULT_HANG_MS)
    .option('--rss-mib <MiB>', 'a child above this RSS is a failure', count('--rss-mib'), DEFAULT_RSS_LIMIT / MiB)
    .option('--class <name...>', `only these mutation classes (${CLASS_NAMES.join(', ')})`)
    .option('--findings <dir>', 'where reproducers are written', 'fuzz-findings')
    .option('--max-repro <n>', 'reproducers per distinct failure', count('--max-repro'), 1)
    .option('--work-dir <dir>', 'parent of the temporary work directory (default /dev/shm or the OS temp dir)')
    .option('--keep-work', 'keep the work directory')
    .option('--no-baseline', 'do not run the unmodified corpus files first')
    .option('--replay <file>', 'run one file (a reproducer) under the same limits and print its outcome')
    .option('--symbols <file>', 'with --replay: kernel symbols to pass to openImage')
    .option('--json', 'print the summary as JSON')
    .option('--quiet', 'no progress lines')
    .option('--cli-scenarios', 'run the hostile CLI scenarios instead of image mutants (FIFOs, devices, \'-\', huge text, outputs onto inputs, a full disk, huge claimed sizes; docs/fuzz.md)')
    .option('--scenario-class <name...>', `with --cli-scenarios: only these classes (${SCENARIO_CLASSES.join(', ')})`)
    .exitOverride();
  try {
    program.parse(argv, { from: 'user' });
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    return code === 0 ? EXIT_CLEAN : EXIT_USAGE;
  }
  const o = program.opts<{
    corpus: string[];
    seed: string;
    iterations?: number;
    time?: number;
    start: number;
    mutant?: string[];
    jobs?: number;
    batch: number;
    hangMs: number;
    rssMib: number;
    class?: string[];
    findings: string;
    maxRepro: number;
    workDir?: string;
    keepWork?: boolean;
    baseline: boolean;
    replay?: string;
    symbols?: string;
    json?: boolean;
    quiet?: boolean;
    cliScenarios?: boolean;
    scenarioClass?: string[];
  }>();
  const log = (line: string): void => {
    if (!o.quiet && !o.json) process.stderr.write(line + '\n');
  };

  if (o.cliScenarios) return runScenarioCampaign(seedFrom(o.seed), o.scenarioClass, o.jobs, Boolean(o.json), log);

  if (o.replay) {
    const outcome = await replayFile(o.replay, { symbolsPath: o.symbols ?? null, hangMs: o.hangMs, rssLimitBytes: o.rssMib * MiB, workDir: o.workDir });
    const lines = [`${o.replay}: ${describeOutcome(outcome)}`];
    if (isFailure(outcome)) lines.push(`signature: ${signatureOf(outcome)}`);
    if (outcome.status === 'error') lines.push(outcome.stack);
    if (outcome.status === 'hang' && outcome.stack) lines.push(outcome.stack);
    if (outcome.status === 'crash') lines.push(outcome.stderr);
    process.stdout.write(lines.join('\n') + '\n');
    return isFailure(outcome) ? EXIT_FAILURES : EXIT_CLEAN;
  }

  const ids = o.mutant?.map((v) => count('--mutant')(v));
  const summary = await runFuzz({
    corpus: o.corpus,
    seed: seedFrom(o.seed),
    iterations: o.iterations,
    timeSeconds: o.time,
    start: o.start,
    ids,
    jobs: o.jobs,
    batch: o.batch,
    hangMs: o.hangMs,
    rssLimitBytes: o.rssMib * MiB,
    findingsDir: path.resolve(o.findings),
    maxReproducersPerSignature: o.maxRepro,
    workDir: o.workDir,
    keepWork: o.keepWork,
    classes: o.class,
    baselines: o.baseline,
    onEvent: log,
    onProgress: (p) => {
      if (o.quiet || o.json || !process.stderr.isTTY) return;
      const of = p.total === null ? '' : `/${p.total}`;
      process.stderr.write(`\r${p.done}${of} mutants, ${p.failures} failures, ${(p.elapsedMs / MS_PER_S).toFixed(0)} s   `);
    },
  });
  if (!o.quiet && !o.json && process.stderr.isTTY) process.stderr.write('\n');
  printSummary(summary, Boolean(o.json));
  return summary.findings.length > 0 ? EXIT_FAILURES : EXIT_CLEAN;
}

if (process.argv.includes(CHILD_FLAG)) {
  const { runChild } = await import('./child.js');
  runChild();
} else {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      if (e instanceof InputError) {
        process.stderr.write(`p2m-fuzz: ${e.message}\n`);
        process.exitCode = EXIT_USAGE;
      } else {
        process.stderr.write(`p2m-fuzz: internal error: ${(e as Error).stack ?? String(e)}\n`);
        process.exitCode = EXIT_USAGE + 2;
      }
    },
  );
}
