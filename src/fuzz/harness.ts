// The fuzz harness (docs/fuzz.md): runs mutants of every recognised corpus image through openImage +
// auditImage(img, { jobs: 0 }) in child processes, and records every failure as a reproducer.
//
// Failure = an exception other than InputError out of openImage/auditImage/close, a run longer than the
// hang limit (5 s), a child whose RSS passes the limit (512 MiB), a child that dies, or file descriptors
// left open on the mutant file. Outcomes that are fine: a report (any verdict) or an InputError.
//
// Parent: discovers the corpus (decompressing .gz into a work directory), analyses each base file
// (analyze.ts), then hands batches of K mutant ids to `jobs` long-lived child processes. A child
// generates each mutant itself from (anatomy, seed, id), applies it to its private working copy, runs
// it, undoes it and reports. The parent times every mutant from the child's "start" message and polls the
// child's RSS; when a child hangs or dies, the mutant in flight is re-run alone in a fresh child (and, if
// it does not reproduce there, each earlier mutant of that batch too) to find the culprit. A watchdog
// thread in every child pauses a hung main thread through the inspector (connectToMainThread) to report
// the stack it is stuck in.
//
// Determinism: mutant `id` of corpus entry `id mod entries` under `seed` is always the same bytes.
//
// This file: the options, the summary and the run loop (runFuzz). The child: child.ts; the parent's view
// of one child: child-runner.ts; outcomes and signatures: outcome.ts; reproducers and replay: reproducer.ts.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InputError } from '../common/errors.js';
import { fileReader } from './anatomy.js';
import { childScript, ChildRunner, type BatchEnd } from './child-runner.js';
import { defaultWorkParent, prepareCorpus } from './corpus.js';
import { DEFAULT_HANG_MS, DEFAULT_RSS_LIMIT, MS_PER_S } from './limits.js';
import { baselineMutant, CLASS_NAMES, generateMutant } from './mutate.js';
import { genContext, type GenContext } from './mutation-context.js';
import { describeOutcome, isFailure, signatureOf, type FailureKind, type Outcome } from './outcome.js';
import type { Mutant } from './patch.js';
import type { Job, ToChild } from './protocol.js';
import { writeReproducer } from './reproducer.js';

// ---- limits and defaults --------------------------------------------------------------------------------
export const DEFAULT_BATCH = 100;
export const DEFAULT_ITERATIONS = 1_000;
/** A child is replaced after this many mutants (keeps per-child state from piling up). */
const RECYCLE_AFTER = 4_000;

// ---- public types ---------------------------------------------------------------------------------------
export interface FuzzOptions {
  /** files and directories to search for images (recursively) */
  corpus: string[];
  seed: number;
  /** mutants to run (ids start..start+iterations−1); default 1000 unless `timeSeconds` is given */
  iterations?: number;
  /** stop dispatching after this many seconds */
  timeSeconds?: number;
  /** first mutant id (default 0) */
  start?: number;
  /** run only these mutant ids */
  ids?: number[];
  /** parallel child processes (default: CPU count) */
  jobs?: number;
  /** mutants per child batch (default 100) */
  batch?: number;
  hangMs?: number;
  rssLimitBytes?: number;
  /** where reproducers go (created when needed) */
  findingsDir: string;
  /** reproducers written per distinct failure signature (default 1) */
  maxReproducersPerSignature?: number;
  /** parent of the temporary work directory (default /dev/shm when writable, else the OS temp dir) */
  workDir?: string;
  keepWork?: boolean;
  /** restrict mutation classes */
  classes?: string[];
  /**
   * Test hook: an ES module whose default export `(file, symbols?) => unknown | Promise<unknown>` is run in
   * place of openImage + auditImage (returning = ok, throwing InputError = rejected). The harness's own
   * tests use it to prove that hangs, crashes, RSS and leaks are caught; fuzzing never sets it.
   */
  targetModule?: string;
  /** run each corpus file unmodified first (default true) */
  baselines?: boolean;
  onProgress?: (p: FuzzProgress) => void;
  /** a line of news (corpus prepared, finding recorded) */
  onEvent?: (line: string) => void;
}

export interface FuzzProgress {
  done: number;
  total: number | null;
  failures: number;
  elapsedMs: number;
}

export interface CorpusEntry {
  source: string;
  basePath: string;
  format: string;
  size: number;
  symbolsPath: string | null;
  notes: string[];
}

export interface Finding {
  signature: string;
  kind: FailureKind;
  count: number;
  /** the first mutant that hit it */
  example: { id: number; source: string; classes: string[]; description: string; outcome: Outcome };
  reproducers: string[];
}

export interface FuzzSummary {
  seed: number;
  corpus: CorpusEntry[];
  skipped: { path: string; why: string }[];
  baselines: { source: string; outcome: Outcome }[];
  mutants: number;
  byStatus: Record<string, number>;
  byClass: Record<string, { run: number; failed: number }>;
  findings: Finding[];
  /** runs that failed in a batch but not alone (not counted as findings) */
  flaky: string[];
  slowest: { id: number; source: string; ms: number; description: string }[];
  elapsedMs: number;
  mutantsPerSecond: number;
  /** summed wall time of the mutant runs themselves (openImage + auditImage), excluding harness work */
  runMs: number;
}

// ---- the run -------------------------------------------------------------------------------------------------------
/** Run the harness; resolves with the summary (findings included). Throws only for setup problems. */
export async function runFuzz(opts: FuzzOptions): Promise<FuzzSummary> {
  const t0 = performance.now();
  const onEvent = opts.onEvent ?? (() => {});
  const hangMs = opts.hangMs ?? DEFAULT_HANG_MS;
  const rssLimit = opts.rssLimitBytes ?? DEFAULT_RSS_LIMIT;
  const jobsN = Math.max(1, opts.jobs ?? os.availableParallelism());
  const batchK = Math.max(1, opts.batch ?? DEFAULT_BATCH);
  const maxRepro = opts.maxReproducersPerSignature ?? 1;
  if (opts.classes) {
    const bad = opts.classes.filter((c) => !CLASS_NAMES.includes(c));
    if (bad.length) throw new InputError(`unknown mutation class ${bad.join(', ')} (known: ${CLASS_NAMES.join(', ')})`);
  }
  childScript(); // fail early when the child is not built
  const workDir = fs.mkdtempSync(path.join(opts.workDir ?? defaultWorkParent(), 'p2m-fuzz-'));
  const children = new Set<ChildRunner>();
  try {
    const { entries, skipped } = await prepareCorpus(opts.corpus, workDir, onEvent);
    if (entries.length === 0) throw new InputError(`no image found under ${opts.corpus.join(', ')}`);
    const init: Extract<ToChild, { type: 'init' }> = {
      type: 'init',
      entries,
      workDir,
      tag: '',
      seed: opts.seed,
      classes: opts.classes ?? null,
      rssLimit,
      hangMs,
      target: opts.targetModule ?? null,
    };
    let childSeq = 0;
    const spawn = (): ChildRunner => {
      const c = new ChildRunner({ ...init, tag: `c${childSeq++}` }, hangMs, rssLimit);
      children.add(c);
      return c;
    };
    const retire = async (c: ChildRunner): Promise<void> => {
      children.delete(c);
      await c.end();
    };

    // the job stream: baselines, then mutant ids
    const start = opts.start ?? 0;
    const timed = opts.timeSeconds !== undefined;
    const total = opts.ids ? opts.ids.length : (opts.iterations ?? (timed ? Infinity : DEFAULT_ITERATIONS));
    const deadline = timed ? t0 + opts.timeSeconds! * MS_PER_S : Infinity;
    const pending: Job[] = opts.baselines === false ? [] : entries.map((_, k) => ({ id: -1 - k, entry: k, kind: 'baseline' as const }));
    let issued = 0;
    const nextJob = (): Job | null => {
      if (pending.length > 0) return pending.shift()!;
      if (issued >= total || performance.now() >= deadline) return null;
      const id = opts.ids ? opts.ids[issued]! : start + issued;
      issued++;
      return { id, entry: id % entries.length, kind: 'mutant' };
    };
    const nextBatch = (): Job[] => {
      const b: Job[] = [];
      while (b.length < batchK) {
        const j = nextJob();
        if (!j) break;
        b.push(j);
      }
      return b;
    };

    // bookkeeping
    const summary: FuzzSummary = {
      seed: opts.seed,
      corpus: entries.map((a) => ({ source: a.source, basePath: a.basePath, format: a.format, size: a.size, symbolsPath: a.symbolsPath, notes: a.notes })),
      skipped,
      baselines: [],
      mutants: 0,
      byStatus: {},
      byClass: {},
      findings: [],
      flaky: [],
      slowest: [],
      elapsedMs: 0,
      mutantsPerSecond: 0,
      runMs: 0,
    };
    const findings = new Map<string, Finding>();
    const reproTasks: Promise<void>[] = [];
    const parentCtx = new Map<number, { ctx: GenContext; fd: number }>();
    const regenerate = (job: Job): Mutant => {
      if (job.kind === 'baseline') return baselineMutant(job.id);
      let c = parentCtx.get(job.entry);
      if (!c) {
        const a = entries[job.entry]!;
        const fd = fs.openSync(a.basePath, 'r');
        c = { ctx: genContext(a, fileReader(fd, a.size)), fd };
        parentCtx.set(job.entry, c);
      }
      return generateMutant(c.ctx, opts.seed, job.id, opts.classes ? { classes: opts.classes } : {});
    };
    const jobOf = new Map<number, Job>();
    let done = 0;
    let lastProgress = 0;
    const progress = (): void => {
      const now = performance.now();
      if (!opts.onProgress || now - lastProgress < 250) return;
      lastProgress = now;
      opts.onProgress({ done, total: Number.isFinite(total) ? total : null, failures: [...findings.values()].reduce((s, f) => s + f.count, 0), elapsedMs: now - t0 });
    };

    const record = (job: Job, r: { outcome: Outcome; ms: number; classes: string[]; description: string }, counted = true): void => {
      const o = r.outcome;
      const a = entries[job.entry];
      if (job.kind === 'baseline') {
        summary.baselines.push({ source: a!.source, outcome: o });
      } else if (counted) {
        done++;
        summary.mutants++;
        summary.runMs += r.ms;
        summary.byStatus[o.status] = (summary.byStatus[o.status] ?? 0) + 1;
        for (const c of new Set(r.classes)) {
          const b = (summary.byClass[c] ??= { run: 0, failed: 0 });
          b.run++;
          if (isFailure(o)) b.failed++;
        }
        summary.slowest.push({ id: job.id, source: a?.source ?? job.file ?? '?', ms: Math.round(r.ms), description: r.description });
        if (summary.slowest.length > 20) summary.slowest = summary.slowest.sort((x, y) => y.ms - x.ms).slice(0, 10);
      }
      progress();
      if (!isFailure(o)) return;
      const signature = signatureOf(o);
      let f = findings.get(signature);
      if (!f) {
        f = { signature, kind: o.status as FailureKind, count: 0, example: { id: job.id, source: a?.source ?? job.file ?? '?', classes: r.classes, description: r.description, outcome: o }, reproducers: [] };
        findings.set(signature, f);
        onEvent(`FAILURE ${signature}\n  ${a?.source ?? job.file} mutant ${job.id}: ${r.description}\n  ${describeOutcome(o)}`);
      }
      f.count++;
      if (a && f.reproducers.length < maxRepro) {
        const finding = f;
        finding.reproducers.push('(writing)');
        const slot = finding.reproducers.length - 1;
        reproTasks.push(
          (async () => {
            try {
              const file = await writeReproducer(opts.findingsDir, a, regenerate(job), o, signature, opts.seed, opts.classes);
              finding.reproducers[slot] = file;
              onEvent(`  reproducer: ${file}`);
            } catch (e) {
              finding.reproducers[slot] = `(could not write: ${(e as Error).message})`;
            }
          })(),
        );
      }
    };

    // solo re-runs of mutants whose batch child hung or died
    interface SoloItem {
      job: Job;
      cause: Outcome;
      group: { left: number; reproduced: boolean; mates: Job[]; what: string } | null;
      mate: boolean;
    }
    const solo: SoloItem[] = [];
    const runSolo = async (item: SoloItem): Promise<void> => {
      const c = spawn();
      let end: BatchEnd;
      try {
        end = await c.run([item.job], () => {});
      } catch (e) {
        end = { results: [], aborted: { outcome: { status: 'crash', exit: 'start-up failed', stderr: (e as Error).message }, inFlight: item.job.id } };
      }
      await retire(c);
      const res = end.results.find((x) => x.id === item.job.id);
      let outcome: Outcome;
      let meta = { ms: 0, classes: [] as string[], description: '' };
      if (res) {
        outcome = res.outcome;
        meta = { ms: res.ms, classes: res.classes, description: res.description };
      } else {
        outcome = end.aborted?.outcome ?? { status: 'crash', exit: 'no result', stderr: '' };
        const m = item.job.kind === 'file' ? null : regenerate(item.job);
        meta = { ms: outcome.status === 'hang' ? outcome.ms : 0, classes: m?.classes ?? ['replay'], description: m?.description ?? `replay of ${item.job.file}` };
      }
      // a batch-mate was counted when its batch reported it: only a failure alone is recorded again
      if (!item.mate || isFailure(outcome)) record(item.job, { outcome, ...meta }, !item.mate);
      const g = item.group;
      if (!g) return;
      if (isFailure(outcome)) g.reproduced = true;
      g.left--;
      if (g.left === 0 && !g.reproduced) {
        if (!item.mate && g.mates.length > 0) {
          // the mutant in flight passes alone: look for an earlier culprit in the same batch
          g.left = g.mates.length;
          for (const j of g.mates) solo.push({ job: j, cause: item.cause, group: g, mate: true });
        } else {
          summary.flaky.push(`${g.what}: no mutant of the batch reproduces it alone`);
        }
      }
    };

    const handleBatch = (batch: Job[], end: BatchEnd): void => {
      if (!end.aborted) return;
      const finished = new Set(end.results.map((r) => r.id));
      const unstarted = batch.filter((j) => !finished.has(j.id) && j.id !== end.aborted!.inFlight);
      // stop() can end a batch early too: only an abort re-queues
      pending.unshift(...unstarted.filter((j) => performance.now() < deadline || j.kind === 'baseline'));
      const inFlight = end.aborted.inFlight === null ? null : batch.find((j) => j.id === end.aborted!.inFlight) ?? null;
      if (inFlight) {
        const mates = batch.filter((j) => finished.has(j.id) && j.id !== inFlight.id && !isFailure(end.results.find((r) => r.id === j.id)!.outcome));
        const what = `${describeOutcome(end.aborted.outcome)} while running mutant ${inFlight.id}`;
        solo.push({ job: inFlight, cause: end.aborted.outcome, group: { left: 1, reproduced: false, mates, what }, mate: false });
      } else if (end.aborted.retired) {
        // an RSS high-water mark is confirmed alone; an exception that came with it is already recorded
        const last = end.results[end.results.length - 1];
        const j = last && last.outcome.status === 'rss' ? batch.find((x) => x.id === last.id) : undefined;
        if (j) solo.push({ job: j, cause: end.aborted.outcome, group: null, mate: false });
      } else {
        summary.flaky.push(`child failed between mutants: ${describeOutcome(end.aborted.outcome)}`);
      }
    };

    let stopping = false;
    const stopTimer =
      deadline === Infinity
        ? null
        : setTimeout(() => {
            stopping = true;
            for (const c of children) c.requestStop();
          }, Math.max(0, deadline - performance.now()));

    const worker = async (): Promise<void> => {
      let child: ChildRunner | null = null;
      let used = 0;
      for (;;) {
        const item = solo.shift();
        if (item) {
          await runSolo(item);
          continue;
        }
        if (stopping && pending.length === 0) break;
        const batch = nextBatch();
        if (batch.length === 0) break;
        for (const j of batch) jobOf.set(j.id, j);
        child ??= spawn();
        const end = await child.run(batch, (r) => {
          const j = jobOf.get(r.id);
          if (!j) return;
          jobOf.delete(r.id);
          const rssWillRetry = r.outcome.status === 'rss';
          if (!rssWillRetry) record(j, r);
        });
        handleBatch(batch, end);
        used += batch.length;
        if (end.aborted || used >= RECYCLE_AFTER) {
          await retire(child);
          child = null;
          used = 0;
        }
      }
      if (child) await retire(child);
    };
    await Promise.all(Array.from({ length: jobsN }, () => worker()));
    while (solo.length > 0) await Promise.all(solo.splice(0, jobsN).map((s) => runSolo(s)));
    if (stopTimer) clearTimeout(stopTimer);
    await Promise.all(reproTasks);
    for (const c of parentCtx.values()) fs.closeSync(c.fd);

    summary.findings = [...findings.values()].sort((x, y) => y.count - x.count);
    summary.slowest = summary.slowest.sort((x, y) => y.ms - x.ms).slice(0, 5);
    summary.elapsedMs = performance.now() - t0;
    summary.mutantsPerSecond = summary.mutants / (summary.elapsedMs / MS_PER_S);
    return summary;
  } finally {
    await Promise.all([...children].map((c) => c.end()));
    if (!opts.keepWork) fs.rmSync(workDir, { recursive: true, force: true });
  }
}
