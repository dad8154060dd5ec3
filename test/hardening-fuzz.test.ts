// Issue 12 fuzz coverage: the CLI scenario runner (src/fuzz/cli-scenario.ts) catches every kind of broken
// promise — proved with stand-in CLIs that break one each — and a sample of every scenario class
// (device/FIFO inputs, outputs onto inputs, a full disk, huge text, deep nesting, huge claimed sizes) runs
// against the built CLI with none broken. Work is bounded by counts: scenarios per class, not time.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runScenario, type CliRun, type CliScenario, type ScenarioLimits } from '../src/fuzz/cli-scenario.js';
import { cliScenarios, runCliScenarios, SCENARIO_CLASSES } from '../src/fuzz/scenarios.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-hardening-fuzz-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
/** Scenarios of each class run by `npm test` (the campaign, npm run fuzz -- --cli-scenarios, runs all). */
const PER_CLASS = 3;
const SEED = 20261203;
const LIMITS: ScenarioLimits = { wallMs: 60_000, rssBytes: 512 * 1024 * 1024 };

/** A stand-in CLI (an ES module run by node) that breaks one promise. */
function standIn(name: string, body: string): string {
  const p = path.join(tmp, `${name}.mjs`);
  fs.writeFileSync(p, body);
  return p;
}

const input = path.join(tmp, 'input.txt');
fs.writeFileSync(input, 'unchanged\n');
/** A scenario around a stand-in; a relative `wholeLines` log is the one the stand-in writes in its directory. */
const scenario = (run: Partial<CliRun>): CliScenario => ({
  id: 'x/0',
  cls: 'device-input',
  what: 'stand-in',
  prepare: (dir) => ({ args: [], inputs: [input], ...run, wholeLines: run.wholeLines && path.join(dir, run.wholeLines) }),
});

describe('the CLI scenario runner catches each broken promise', () => {
  it.each<[string, string, Partial<CliRun>, RegExp]>([
    ['an internal error with a stack trace', "console.error('p2m-audit: internal error: boom\\n    at f (/x/y.js:1:2)'); process.exit(4);", {}, /exit 4, expected .*; a stack trace or an internal error/],
    ['exit 2 with a report on stdout', "console.log('report'); console.error('p2m-audit: bad'); process.exit(2);", {}, /exit 2 with 7 bytes on stdout/],
    ['exit 2 with two lines on stderr', "console.error('p2m-audit: bad\\nmore'); process.exit(2);", {}, /exit 2 with 2 lines on stderr/],
    ['an input changed', `require('node:fs').appendFileSync(${JSON.stringify(input)}, 'x');`, {}, /input input\.txt changed/],
    ['a temporary file left behind', "require('node:fs').writeFileSync('.out.svg.123.1.tmp', 'half');", {}, /temporary files left: \.out\.svg\.123\.1\.tmp/],
    ['stdout past its bound', "process.stdout.write('y'.repeat(5000));", { maxStdout: 4096 }, /5000 bytes on stdout, more than 4096/],
    ['a torn last line in a results log', "require('node:fs').writeFileSync('log.jsonl', '{\"a\":1}\\n{\"b\":');", { wholeLines: 'log.jsonl' }, /ends in a partial line/],
    ['a hang', 'setInterval(() => {}, 1000);', {}, /still running after 1500 ms \(a hang\)/],
    ['an RSS balloon', 'const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1));', {}, /RSS \d+ MiB passed 200 MiB/],
  ])('%s', async (_what, body, run, re) => {
    fs.writeFileSync(input, 'unchanged\n');
    const cli = standIn(_what.replace(/\W+/g, '-'), body.includes('require(') ? `import { createRequire } from 'node:module'; const require = createRequire(import.meta.url); ${body}` : body);
    const o = await runScenario(scenario(run), tmp, { wallMs: 1500, rssBytes: 200 * 1024 * 1024 }, cli);
    expect(o.broken.join('; ')).toMatch(re);
  });

  it('a run that keeps every promise is not broken', async () => {
    const o = await runScenario(scenario({ exits: [0] }), tmp, LIMITS, standIn('fine', "console.log('ok');"));
    expect(o.broken).toEqual([]);
  });
});

describe(`a sample of every scenario class against the built CLI (${PER_CLASS} each, seed ${SEED})`, () => {
  it('no promise broken', async () => {
    const all = cliScenarios(SEED);
    // spread over each class: every k-th scenario, so each class's variety is sampled
    const sample = SCENARIO_CLASSES.flatMap((cls) => {
      const of = all.filter((s) => s.cls === cls);
      const step = Math.max(1, Math.floor(of.length / PER_CLASS));
      return of.filter((_, i) => i % step === 0).slice(0, PER_CLASS);
    });
    expect(new Set(sample.map((s) => s.cls))).toEqual(new Set(SCENARIO_CLASSES));
    const s = await runCliScenarios(sample, { jobs: 2, limits: LIMITS });
    expect(s.run).toBe(sample.length);
    expect(s.broken.map((o) => `${o.id} ${o.what}: ${o.broken.join('; ')} | ${o.stderr.split('\n')[0]}`)).toEqual([]);
  });
});
