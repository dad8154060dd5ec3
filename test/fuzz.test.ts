// The hostile-input fuzz harness (src/fuzz/, docs/fuzz.md):
//  * the mutation machinery: determinism from (seed, id), the raw .p2ms builder reproducing a corpus file
//    byte for byte, patches applied in place and undone exactly, every mutation class reachable;
//  * the harness's detection of each failure kind, proved with a stand-in target module (so a "zero
//    failures" smoke run cannot be vacuous): hang (with the stuck stack), crash, RSS, non-InputError
//    exception, fd leak; and batch bisection (a child dying mid-batch is pinned on the right mutants);
//  * the bounded smoke run over the small corpus snapshots, which must find no failure.
// The children run the compiled harness (dist/src/fuzz/cli.js): `npm test` builds first.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { unpack } from 'msgpackr';
import { afterAll, describe, expect, it } from 'vitest';
import { analyze } from '../src/fuzz/analyze.js';
import { fileReader, type Anatomy } from '../src/fuzz/anatomy.js';
import { runFuzz, type FuzzSummary } from '../src/fuzz/harness.js';
import { CLASS_NAMES, generateMutant } from '../src/fuzz/mutate.js';
import { genContext, type GenContext } from '../src/fuzz/mutation-context.js';
import { buildP2ms, p2msParts } from '../src/fuzz/p2ms-builder.js';
import { applyPatch } from '../src/fuzz/patch.js';
import { replayFile } from '../src/fuzz/reproducer.js';
import { Rng, seedFrom } from '../src/fuzz/rng.js';
import { WorkFile } from '../src/fuzz/work-file.js';

const REPO = path.resolve(__dirname, '..');
const SCENARIOS = path.join(REPO, 'corpora', 'scenarios');
const SMALL = path.join(SCENARIOS, 'small-clean-4x.p2ms');
/** The smoke corpus: the small snapshots (the brief's small-clean-4x and seed-*). */
const SMOKE_CORPUS = [SMALL, ...fs.readdirSync(SCENARIOS).filter((n) => n.startsWith('seed-') && n.endsWith('.p2ms')).map((n) => path.join(SCENARIOS, n))];
const SMOKE_SEED = 20241125;
const SMOKE_MUTANTS = 2000;
const SMOKE_JOBS = 2;
const SMOKE_BATCH = 100;
/** Test-only limits for the stand-in target (fast hangs, a small RSS bound). */
const TEST_HANG_MS = 1000;
const TEST_RSS_LIMIT = 192 * 1024 * 1024;
const TEST_ALLOC_BYTES = 320 * 1024 * 1024;
const SMOKE_TIMEOUT_MS = 170_000;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fuzz-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const anatomyCache = new Map<string, Anatomy>();
function anatomyOf(file: string): Anatomy {
  let a = anatomyCache.get(file);
  if (!a) {
    a = analyze(file, file, 'p2ms', 'p2ms', null, null);
    anatomyCache.set(file, a);
  }
  return a;
}
function ctxOf(file: string): GenContext {
  const a = anatomyOf(file);
  return genContext(a, fileReader(fs.openSync(file, 'r'), a.size));
}

describe('mutation machinery', () => {
  it('Rng: the same (seed, stream) gives the same sequence; another stream differs', () => {
    const a = new Rng(7, 3);
    const b = new Rng(7, 3);
    const c = new Rng(7, 4);
    const sa = Array.from({ length: 16 }, () => a.u32());
    expect(Array.from({ length: 16 }, () => b.u32())).toEqual(sa);
    expect(Array.from({ length: 16 }, () => c.u32())).not.toEqual(sa);
    expect(seedFrom('12')).toBe(12);
    expect(seedFrom('abc')).toBe(seedFrom('abc'));
    expect(seedFrom('abc')).not.toBe(seedFrom('abd'));
  });

  it('a mutant is a pure function of (file, seed, id)', () => {
    const base = fs.readFileSync(SMALL);
    for (let id = 0; id < 40; id++) {
      const m1 = generateMutant(ctxOf(SMALL), 5, id);
      const m2 = generateMutant(ctxOf(SMALL), 5, id);
      expect(m2.description).toBe(m1.description);
      expect(applyPatch(base, m2.patch).equals(applyPatch(base, m1.patch))).toBe(true);
    }
    const other = Array.from({ length: 20 }, (_, id) => generateMutant(ctxOf(SMALL), 6, id).description);
    const mine = Array.from({ length: 20 }, (_, id) => generateMutant(ctxOf(SMALL), 5, id).description);
    expect(other).not.toEqual(mine);
  });

  it('buildP2ms rebuilds every corpus snapshot byte for byte from its own metadata and frames', () => {
    for (const file of SMOKE_CORPUS) {
      const a = anatomyOf(file);
      const fd = fs.openSync(file, 'r');
      try {
        const parts = p2msParts(fileReader(fd, a.size), a.p2ms!);
        const rebuilt = buildP2ms(unpack(parts.metaBlock), parts.frames, (f) => parts.pageOf(f));
        expect(rebuilt.equals(fs.readFileSync(file)), file).toBe(true);
      } finally {
        fs.closeSync(fd);
      }
    }
  });

  it('WorkFile applies edits, truncation and extension in place and undoes them exactly', () => {
    const base = fs.readFileSync(SMALL);
    const work = new WorkFile(SMALL, path.join(tmp, 'work.p2ms'), base.length);
    try {
      const patches = [
        { replace: null, edits: [{ offset: 3, bytes: Buffer.from('xyz') }, { offset: 4, bytes: Buffer.from('Q') }], length: 100, fill: null },
        { replace: null, edits: [{ offset: base.length - 2, bytes: Buffer.from('abcd') }], length: base.length + 5, fill: Buffer.from('12345') },
        { replace: null, edits: [{ offset: 9000, bytes: Buffer.alloc(4096, 0xff) }], length: null, fill: null },
      ];
      for (const p of patches) {
        work.apply(p);
        expect(fs.readFileSync(work.path).equals(applyPatch(base, p))).toBe(true);
        work.restore();
        expect(fs.readFileSync(work.path).equals(base)).toBe(true);
      }
    } finally {
      work.close();
    }
  });

  it('every mutation class produces mutants on the smoke corpus', () => {
    const seen = new Set<string>();
    for (const cls of CLASS_NAMES) {
      for (const file of SMOKE_CORPUS) {
        const m = generateMutant(ctxOf(file), 1, 0, { classes: [cls] });
        if (m.classes[0] === cls) {
          seen.add(cls);
          break;
        }
      }
    }
    expect([...seen].sort()).toEqual([...CLASS_NAMES].sort());
  });

  it('structure-aware classes aim at the real structures (frame list, page tables, arch fields, kernel variables)', () => {
    const a = anatomyOf(SMALL);
    expect(a.frameList).not.toBeNull();
    expect(a.ptSteps.some((s) => s.level === 4)).toBe(true);
    expect(a.sharedInfoOffsets.length).toBeGreaterThan(0);
    expect(a.vars.map((v) => v.name)).toEqual(expect.arrayContaining(['xen_p2m_addr', 'xen_p2m_size', 'max_pfn']));
    const tree = SMOKE_CORPUS.map(anatomyOf).find((x) => x.guestTree !== null);
    expect(tree, 'a p2m_top guest in the smoke corpus').toBeDefined();
  });
});

// ---- the harness's failure detection, through a stand-in target ---------------------------------------
const DIST_INPUT_ERROR = path.join(REPO, 'dist', 'src', 'common', 'errors.js');
const TARGET = path.join(tmp, 'target.mjs');
fs.writeFileSync(
  TARGET,
  `import fs from 'node:fs';
import { InputError } from ${JSON.stringify(DIST_INPUT_ERROR)};
const kept = [];
function spinForever() { for (;;) {} }
export default async function target(file) {
  const tag = fs.readFileSync(file).subarray(0, 8).toString('latin1');
  if (tag === 'HANG....') spinForever();
  if (tag === 'CRASH...') process.kill(process.pid, 'SIGKILL');
  if (tag === 'RSS.....') { for (let n = 0; n < ${TEST_ALLOC_BYTES}; n += 1 << 24) kept.push(Buffer.alloc(1 << 24, 1)); return; }
  if (tag === 'THROW...') throw new TypeError('stand-in bug');
  if (tag === 'REJECT..') throw new InputError('stand-in bad input');
  if (tag === 'LEAK....') { fs.openSync(file, 'r'); return; }
}
`,
);
/** A stand-in that kills its process whenever the file is shorter than the small snapshot (truncations). */
const SHORT_KILLER = path.join(tmp, 'short-killer.mjs');
fs.writeFileSync(
  SHORT_KILLER,
  `import fs from 'node:fs';
export default function target(file) {
  if (fs.statSync(file).size < ${fs.statSync(SMALL).size}) process.kill(process.pid, 'SIGKILL');
}
`,
);

function tagged(tag: string): string {
  const p = path.join(tmp, `${tag.replace(/\./g, '')}.bin`);
  fs.writeFileSync(p, Buffer.concat([Buffer.from(tag, 'latin1'), Buffer.alloc(64)]));
  return p;
}

describe('failure detection (stand-in target)', () => {
  const limits = { hangMs: TEST_HANG_MS, rssLimitBytes: TEST_RSS_LIMIT, targetModule: TARGET };

  it('classifies ok, InputError, exceptions, fd leaks, crashes, RSS and hangs', async () => {
    expect((await replayFile(tagged('OK......'), limits)).status).toBe('ok');
    expect((await replayFile(tagged('REJECT..'), limits)).status).toBe('rejected');
    const thrown = await replayFile(tagged('THROW...'), limits);
    expect(thrown).toMatchObject({ status: 'error', name: 'TypeError', message: 'stand-in bug' });
    expect((await replayFile(tagged('LEAK....'), limits)).status).toBe('fd-leak');
    expect((await replayFile(tagged('CRASH...'), limits)).status).toBe('crash');
    expect((await replayFile(tagged('RSS.....'), limits)).status).toBe('rss');
    const hang = await replayFile(tagged('HANG....'), limits);
    expect(hang.status).toBe('hang');
    expect(hang.status === 'hang' && hang.stack).toContain('spinForever');
  });

  it('a child killed mid-batch: the culprits are re-run alone and every mutant is counted once', async () => {
    const seed = 3;
    const iterations = 24;
    const classes = ['truncate', 'bitflip'];
    const ctx = ctxOf(SMALL);
    const size = fs.statSync(SMALL).size;
    const expected = Array.from({ length: iterations }, (_, id) => generateMutant(ctx, seed, id, { classes })).filter((m) => m.patch.length !== null && m.patch.length < size).length;
    expect(expected).toBeGreaterThan(1);
    const s = await runFuzz({
      corpus: [SMALL],
      seed,
      iterations,
      classes,
      jobs: 2,
      batch: 8,
      hangMs: TEST_HANG_MS,
      findingsDir: path.join(tmp, 'findings'),
      baselines: false,
      targetModule: SHORT_KILLER,
    });
    expect(s.mutants).toBe(iterations);
    expect(s.findings.map((f) => [f.kind, f.count])).toEqual([['crash', expected]]);
    expect(s.byStatus).toEqual({ ok: iterations - expected, crash: expected });
    const repro = s.findings[0]!.reproducers[0]!;
    expect(fs.statSync(repro).size).toBeLessThan(size);
    expect(fs.readFileSync(repro.replace(/\.p2ms$/, '.txt'), 'utf8')).toContain('[truncate]');
  });
});

// ---- the smoke run ---------------------------------------------------------------------------------------
function report(s: FuzzSummary): string[] {
  return s.findings.map((f) => `${f.count} × ${f.signature} — e.g. ${path.basename(f.example.source)} mutant ${f.example.id}: ${f.example.description} → ${f.reproducers.join(', ')}`);
}

describe('smoke run', () => {
  it(
    `${SMOKE_MUTANTS} mutants of the small corpus snapshots: no failure`,
    async () => {
      const s = await runFuzz({
        corpus: SMOKE_CORPUS,
        seed: SMOKE_SEED,
        iterations: SMOKE_MUTANTS,
        jobs: SMOKE_JOBS,
        batch: SMOKE_BATCH,
        findingsDir: path.join(REPO, 'fuzz-findings'),
      });
      expect(s.corpus.length).toBe(SMOKE_CORPUS.length);
      expect(s.baselines.map((b) => b.outcome.status)).toEqual(SMOKE_CORPUS.map(() => 'ok'));
      expect(s.mutants).toBe(SMOKE_MUTANTS);
      for (const cls of CLASS_NAMES) expect(s.byClass[cls]?.run ?? 0, cls).toBeGreaterThan(0);
      expect(report(s)).toEqual([]);
    },
    SMOKE_TIMEOUT_MS,
  );
});
