// Section 1 (p2ms): emulated linux-4.x dom0 guests written as .p2ms snapshots; cat against audit children
// (--jobs 1|2), the engine on warm worker pools in this process, and the one-thread in-process audit.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { auditImage } from '../src/audit/audit-image.js';
import { auditInProcess, createAuditPool } from '../src/audit/run-audit.js';
import { GuestLeaf } from '../src/views/p2m-leaves.js';
import { openImage } from '../src/formats/open-image.js';
import { parseE820 } from '../src/inputs/e820.js';
import { emulate } from '../src/emulate/kernel/boot.js';
import { findProfile } from '../src/emulate/kernel/profiles.js';
import { writeEmulatedP2ms } from '../src/emulate/snapshot.js';
import { PROFILE_ID, GiB, MiB, PAGES_PER_GiB, JOBS, SEED, CLI, log, f2, f1 } from './common.js';
import type { Options } from './options.js';
import { median, Runner, checkAudit, checkCat } from './measure.js';
import { type ProfileRun, profileChild } from './cpu-profile.js';

/** Untimed engine runs per pool before the timed ones: a long-lived caller has audited a few files already. */
const ENGINE_WARMUP_RUNS = 3;
/** Timed engine rounds at least (each with its own cat): a 64 GiB engine run takes ~25 ms, so medians of 3 are noisy. */
const ENGINE_MIN_REPS = 10;

function hex16(n: number): string {
  return n.toString(16).padStart(16, '0');
}

/**
 * A host memory map as Xen prints it: low RAM 0–0x9fc00, reserved up to 1 MiB, RAM 1 MiB–3 GiB, the
 * PCI hole 3–4 GiB reserved, RAM from 4 GiB up to the guest size plus a margin (Xen's own pages and
 * the frames populated for the remapped holes come from there).
 */
export function hostE820Text(guestGiB: number): string {
  const marginGiB = 4 + Math.ceil(guestGiB / 16);
  const top = 4 * GiB + (guestGiB + marginGiB) * GiB;
  const entries: [number, number, string][] = [
    [0, 0x9fc00, 'usable'],
    [0x9fc00, 0x100000, 'reserved'],
    [0x100000, 3 * GiB, 'usable'],
    [3 * GiB, 4 * GiB, 'reserved'],
    [4 * GiB, top, 'usable'],
  ];
  return ['(XEN) Xen-e820 RAM map:', ...entries.map(([s, e, t]) => `(XEN)  ${hex16(s)} - ${hex16(e)} (${t})`)].join('\n') + '\n';
}

export interface SizeResult {
  sizeGiB: number;
  nrPages: number;
  error: string | null;
  emulateS?: number;
  writeS?: number;
  /** this (bench) process's peak RSS right after emulating + writing: the emulator's high-water mark so far */
  benchRssAfterEmulateKiB?: number;
  frames?: number;
  fileBytes?: number;
  verdict?: string;
  auditedLeaves?: number;
  pageLeaves?: number;
  cat?: { samplesS: number[]; medianS: number };
  audit?: Record<string, { samplesS: number[]; medianS: number; rssKiB: (number | null)[]; peakRssKiB: number | null }>;
  /**
   * The audit engine inside a running process with a warm worker pool of N threads (createAuditPool, one
   * untimed run first): openImage + auditImage(img, {jobs: N, pool}) + close — what each file costs a
   * long-lived caller such as `scan`, without node's start-up and the workers' boot.
   */
  engine?: Record<string, { samplesS: number[]; medianS: number }>;
  inProcess?: {
    /** auditImage(img, {jobs: 0}): toolstack walk + guest view + per-leaf loop + report */
    samplesS: number[];
    medianS: number;
    /** auditInProcess alone on the views auditImage returned: the per-leaf loop only */
    loopSamplesS: number[];
    loopMedianS: number;
    leaves: number;
    pageLeaves: number;
    leavesPerS: number;
    pageLeavesPerS: number;
    loopPageLeavesPerS: number;
    sameAsChild: boolean;
  };
}

/** The verdict and per-class page counts of a report: what must not change between ways of running the audit. */
interface ClassCounts {
  verdict: string;
  classes: Record<string, { pages: number }>;
}

function classesOf(report: ClassCounts): string {
  return JSON.stringify([report.verdict, Object.fromEntries(Object.entries(report.classes).map(([k, v]) => [k, v.pages]))]);
}

/**
 * openImage + auditImage(img, {jobs: N, pool}) + close on a pool of N threads started (and warmed by one
 * untimed run) beforehand; max(reps, ENGINE_MIN_REPS) timed runs per N, each after a `cat` (appended to catSamples) so the
 * engine and cat see the same page cache and load. Every run must classify the pages as the child did.
 */
async function benchEngine(
  file: string,
  reps: number,
  childReport: string,
  runner: Runner,
  catSamples: number[],
): Promise<NonNullable<SizeResult['engine']>> {
  const want = classesOf(JSON.parse(childReport) as ClassCounts);
  const out: NonNullable<SizeResult['engine']> = {};
  const pools = new Map(JOBS.map((j) => [j, createAuditPool(j)] as const));
  try {
    const once = async (j: number): Promise<number> => {
      const t0 = performance.now();
      const img = openImage(file);
      try {
        const r = await auditImage(img, { jobs: j, pool: pools.get(j as (typeof JOBS)[number]) });
        const got = classesOf(r.report);
        if (got !== want) throw new Error(`the engine with ${j} thread(s) classified the pages differently from the audit child`);
      } finally {
        img.close();
      }
      return (performance.now() - t0) / 1000;
    };
    for (const j of JOBS) {
      for (let w = 0; w < ENGINE_WARMUP_RUNS; w++) await once(j); // warm-up: JIT, the pool's threads, their readers
      out[`j${j}`] = { samplesS: [], medianS: NaN };
    }
    for (let rep = 0; rep < Math.max(reps, ENGINE_MIN_REPS); rep++) {
      const c = await runner.run('cat', [file], { stdoutFile: '/dev/null', measureRss: false });
      checkCat(c, 'cat');
      catSamples.push(c.wallS);
      for (const j of JOBS) out[`j${j}`]!.samplesS.push(await once(j));
    }
    for (const e of Object.values(out)) e.medianS = median(e.samplesS);
    return out;
  } finally {
    for (const p of pools.values()) await p.destroy();
  }
}

export async function benchSize(sizeGiB: number, opts: Options, runner: Runner, tmp: string): Promise<SizeResult> {
  const nrPages = sizeGiB * PAGES_PER_GiB;
  const res: SizeResult = { sizeGiB, nrPages, error: null };
  const dir = fs.mkdtempSync(path.join(tmp, `g${sizeGiB}-`));
  const file = path.join(dir, `linux-4.x-${sizeGiB}g.p2ms`);
  let stage = 'setup';
  try {
    // 1. emulate + write
    const profile = findProfile(PROFILE_ID);
    if (!profile) throw new Error(`profile ${PROFILE_ID} is missing`);
    const e820Text = hostE820Text(sizeGiB);
    fs.writeFileSync(path.join(dir, 'host-e820.txt'), e820Text);
    const hostE820 = parseE820(e820Text, `host e820 for ${sizeGiB} GiB`);
    stage = 'emulate';
    log(`${sizeGiB} GiB: emulating ${PROFILE_ID} dom0, nr_pages = max_pages = 0x${nrPages.toString(16)}`);
    let t = performance.now();
    let guest: ReturnType<typeof emulate> | null = emulate({ profile, hostE820, nrPages, maxPages: nrPages, seed: SEED });
    res.emulateS = (performance.now() - t) / 1000;
    log(`${sizeGiB} GiB: emulated in ${f2(res.emulateS)} s; writing ${path.basename(file)}`);
    stage = 'writeEmulatedP2ms';
    t = performance.now();
    res.frames = writeEmulatedP2ms(guest.image, file, { overwrite: true }).frames;
    res.writeS = (performance.now() - t) / 1000;
    res.benchRssAfterEmulateKiB = process.resourceUsage().maxRSS;
    guest = null; // let the emulated machine go before the timed runs
    res.fileBytes = fs.statSync(file).size;
    log(`${sizeGiB} GiB: wrote ${res.frames} frames, ${f1(res.fileBytes / MiB)} MiB in ${f2(res.writeS)} s`);

    // 2./3. warm-up, then cat / j1 / j2 interleaved, median of reps
    const auditArgs = (jobs: number): string[] => ['audit', file, '--json', '--jobs', String(jobs)];
    stage = 'audit runs';
    log(`${sizeGiB} GiB: warm-up (cat, audit --jobs 2)`);
    checkCat(await runner.run('cat', [file], { stdoutFile: '/dev/null', measureRss: false }), 'warm-up cat');
    const warm = checkAudit(await runner.cli(auditArgs(2)), 'warm-up audit --jobs 2');
    const reference = JSON.stringify(warm);
    res.verdict = String(warm['verdict']);
    const catS: number[] = [];
    const audit: NonNullable<SizeResult['audit']> = {};
    for (const j of JOBS) audit[`j${j}`] = { samplesS: [], medianS: NaN, rssKiB: [], peakRssKiB: null };
    for (let rep = 0; rep < opts.reps; rep++) {
      log(`${sizeGiB} GiB: repetition ${rep + 1}/${opts.reps}`);
      const c = await runner.run('cat', [file], { stdoutFile: '/dev/null', measureRss: false });
      checkCat(c, 'cat');
      catS.push(c.wallS);
      for (const j of JOBS) {
        const r = await runner.cli(auditArgs(j));
        const parsed = checkAudit(r, `audit --jobs ${j}`);
        if (JSON.stringify(parsed) !== reference) throw new Error(`audit --jobs ${j} printed a different report than the warm-up run (--jobs 2)`);
        const a = audit[`j${j}`]!;
        a.samplesS.push(r.wallS);
        a.rssKiB.push(r.rssKiB);
      }
    }
    res.cat = { samplesS: catS, medianS: median(catS) };
    for (const a of Object.values(audit)) {
      a.medianS = median(a.samplesS);
      const known = a.rssKiB.filter((v): v is number => v !== null);
      a.peakRssKiB = known.length ? Math.max(...known) : null;
    }
    res.audit = audit;

    // 4. the engine in this process, warm pools of 1 and 2 threads, interleaved with cat like the children
    stage = 'engine audit';
    log(`${sizeGiB} GiB: engine (auditImage with a warm pool of 1 and 2 threads)`);
    res.engine = await benchEngine(file, opts.reps, reference, runner, res.cat.samplesS);
    res.cat.medianS = median(res.cat.samplesS); // cat's samples from both rounds

    // 5. in-process classification (auditImage, jobs 0)
    stage = 'in-process audit';
    log(`${sizeGiB} GiB: in-process audit (auditImage, jobs 0)`);
    const inS: number[] = [];
    const loopS: number[] = [];
    let leaves = 0;
    let pageLeaves = 0;
    let same = true;
    const refClasses = classesOf(warm as unknown as ClassCounts);
    for (let rep = -1; rep < opts.reps; rep++) {
      // rep −1 is an untimed warm-up (JIT), so the first size is not penalised
      const img = openImage(file);
      try {
        const t0 = performance.now();
        const out = await auditImage(img, { jobs: 0 });
        const t1 = performance.now();
        auditInProcess(img, out.tool, out.guest);
        const t2 = performance.now();
        if (rep >= 0) {
          inS.push((t1 - t0) / 1000);
          loopS.push((t2 - t1) / 1000);
        }
        leaves = out.audit.leaves;
        pageLeaves = 0;
        for (const k of out.guest.kinds) if (k === GuestLeaf.PAGE) pageLeaves++;
        if (classesOf(out.report) !== refClasses) same = false;
      } finally {
        img.close();
      }
    }
    if (!same) throw new Error('the in-process audit (jobs 0) classified the pages differently from the worker-pool audit');
    const m = median(inS);
    const lm = median(loopS);
    res.auditedLeaves = leaves;
    res.pageLeaves = pageLeaves;
    res.inProcess = {
      samplesS: inS,
      medianS: m,
      loopSamplesS: loopS,
      loopMedianS: lm,
      leaves,
      pageLeaves,
      leavesPerS: leaves / m,
      pageLeavesPerS: pageLeaves / m,
      loopPageLeavesPerS: pageLeaves / lm,
      sameAsChild: same,
    };
  } catch (e) {
    res.error = `${stage}: ${(e as Error).message}`;
    log(`${sizeGiB} GiB: FAILED: ${res.error}`);
  } finally {
    if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
  return res;
}

/** Profile one `audit --jobs 2` child of a .p2ms guest (emulated again: the measured files are gone). */
export async function profileAudit(sizeGiB: number, runner: Runner, tmp: string): Promise<ProfileRun> {
  const dir = fs.mkdtempSync(path.join(tmp, `prof${sizeGiB}-`));
  try {
    const file = path.join(dir, `linux-4.x-${sizeGiB}g.p2ms`);
    const profile = findProfile(PROFILE_ID)!;
    const nrPages = sizeGiB * PAGES_PER_GiB;
    log(`--cpu-prof: emulating ${sizeGiB} GiB again for the profiled run`);
    writeEmulatedP2ms(emulate({ profile, hostE820: parseE820(hostE820Text(sizeGiB), 'host e820'), nrPages, maxPages: nrPages, seed: SEED }).image, file, { overwrite: true });
    return await profileChild(`audit --jobs 2 of the ${sizeGiB} GiB .p2ms`, [CLI, 'audit', file, '--json', '--jobs', '2'], runner, dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
