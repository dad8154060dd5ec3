// The CLI scenario campaign (docs/fuzz.md "CLI scenarios"): every generator's scenarios for one seed, run
// `jobs` at a time against the built CLI, with the broken promises grouped by scenario. `npm run fuzz --
// --cli-scenarios` runs it; test/hardening-fuzz.test.ts runs a sample of every class.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_SCENARIO_LIMITS, repoRoot, runScenario, type CliScenario, type ScenarioClass, type ScenarioLimits, type ScenarioOutcome } from './cli-scenario.js';
import { deviceInputScenarios, outputOntoInputScenarios, scenarioCorpus } from './scenarios-paths.js';
import { fullDiskScenarios } from './scenarios-space.js';
import { deepNestingScenarios, hugeTextScenarios } from './scenarios-text.js';
import { hugeClaimScenarios } from './scenarios-claims.js';
import { Rng } from './rng.js';

export const SCENARIO_CLASSES: readonly ScenarioClass[] = ['device-input', 'output-onto-input', 'full-disk', 'huge-text', 'deep-nesting', 'huge-claim'];

/** Every scenario for `seed` (ids "class/n", stable for a seed), optionally only some classes. */
export function cliScenarios(seed: number, opts: { classes?: readonly ScenarioClass[] } = {}): CliScenario[] {
  const c = scenarioCorpus(repoRoot());
  const rng = new Rng(seed, 1);
  const all: CliScenario[] = [
    ...deviceInputScenarios(c, rng),
    ...outputOntoInputScenarios(c),
    ...fullDiskScenarios(c, rng),
    ...hugeTextScenarios(c, rng),
    ...deepNestingScenarios(c, rng),
    ...hugeClaimScenarios(c, rng),
  ];
  const count = new Map<string, number>();
  for (const s of all) {
    const n = count.get(s.cls) ?? 0;
    count.set(s.cls, n + 1);
    s.id = `${s.cls}/${n}`;
  }
  return opts.classes ? all.filter((s) => opts.classes!.includes(s.cls)) : all;
}

export interface ScenarioSummary {
  run: number;
  byClass: Record<string, { run: number; broken: number }>;
  broken: ScenarioOutcome[];
}

/** Run scenarios `jobs` at a time in temporary directories; `onOutcome` sees each as it ends. */
export async function runCliScenarios(list: CliScenario[], opts: { jobs?: number; limits?: ScenarioLimits; onOutcome?: (o: ScenarioOutcome) => void } = {}): Promise<ScenarioSummary> {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-cli-scenarios-'));
  const summary: ScenarioSummary = { run: 0, byClass: {}, broken: [] };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < list.length) {
      const s = list[next++]!;
      const o = await runScenario(s, parent, opts.limits ?? DEFAULT_SCENARIO_LIMITS);
      summary.run++;
      const b = (summary.byClass[s.cls] ??= { run: 0, broken: 0 });
      b.run++;
      if (o.broken.length) {
        b.broken++;
        summary.broken.push(o);
      }
      opts.onOutcome?.(o);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, opts.jobs ?? 1) }, () => worker()));
  } finally {
    fs.rmSync(parent, { recursive: true, force: true });
  }
  return summary;
}
