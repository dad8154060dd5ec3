// Benchmark of the audit pipeline (bench/README.md). Four sections, each in child processes, warm page
// cache where the file fits in RAM, medians of --reps:
//
//  p2ms    emulated linear-profile (linux-4.x) dom0 guests of --sizes GiB (default 64, 256, 1024) written
//          as .p2ms snapshots: `cat FILE > /dev/null` (the baseline) against `p2m-audit audit FILE --json
//          --jobs 1|2` (wall time, peak RSS), the engine (auditImage on a warm pool of 1 and 2 threads in
//          this process), the in-process classifier (auditImage, jobs 0), scaling;
//  stream  emulated `xl save` files (writeSaveStream, wrapper 'xl') of --stream-sizes GiB guests (default
//          16 and 256, 256 replaced by 64 when its stream does not fit on the temp dir's filesystem): the
//          stream parser alone (openStream + close in a child), `audit FILE --system-map FILE.map` against
//          cat, and Xen's own verify-stream-v2 -f xl as a reference; each stream is deleted once measured;
//  real    the real Xen 4.17 `xl save -c` file corpora/real/pvplain.save.gz, decompressed: the same figures;
//  corpus  --corpus N (default 2000) small images (hard links to the committed corpora/scenarios/*.p2ms
//          plus a few emulated 64 MiB–4 GiB guests) scanned by `scan DIR --json --jobs 2`: files/s,
//          per-file overhead over an in-process audit of the same file, peak RSS.
//  fleet   the same number of files through `fleet` (BullMQ on a private redis-server) with 1 and 2 worker
//          processes against scan --jobs 1 and 2: files/s, queue overhead per file, worker peak RSS, Redis
//          commands per file (bench/fleet.ts).
//  cold    node -e 0, --help, --version and the audit command's imports as interleaved children, then the
//          issue-17 table: every row a ratio of figures of this run (bench/cold-start.ts).
//  kdump   emulated dom0 crashes of --kdump-sizes GiB (default 64, 256) as a sparse ELF vmcore and a zstd
//          makedumpfile dump: cat vs audit children, peak RSS, bytes one audit reads vs the pages it needs
//          (bench/dom0-kdump.ts).
// Prints one table per figure and a Goals table (PASS/MISS: report only), writes bench/results.json.
//
// Exit status: 0 when every measurement was taken (whatever the goals say), 1 when something really
// failed (emulation threw, an audit child crashed or exited 2/4, j1 and j2 reports differ, Xen's verifier
// rejected an emulated stream, a scan verdict differs from the file's own audit, ...), 2 for bad options.
// Progress goes to stderr, results to stdout.
//
// This file is the entry: options, the order of the sections, the report, the Goals table and
// bench/results.json. Each section is measured in its own file (bench/README.md lists them).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { PROFILE_ID, GiB, MiB, JOBS, SEED, ROOT, CLI, log, f2, f3, f1, f0, table } from './common.js';
import { DEFAULT_STREAM_SIZES, STREAM_FALLBACK_GiB, DISK_RESERVE_BYTES, SECTIONS, type Section, type Options, UsageError, USAGE, parseArgs } from './options.js';
import { median, Runner, RSS_HOOK, chooseRssMethod } from './measure.js';
import type { Goal } from './goals.js';
import type { ProfileRun } from './cpu-profile.js';
import { type SizeResult, benchSize, profileAudit } from './p2ms.js';
import { reportP2ms } from './p2ms-report.js';
import { parseChildSource } from './save-file.js';
import { type StreamResult, freeBytes, streamNeedBytes, streamFits, benchStream, reportStreams } from './save-streams.js';
import { type RealResult, benchReal, reportReal } from './real-save.js';
import { type CorpusResult, benchCorpus, reportCorpus } from './corpus.js';
import { type FleetResult, benchFleet, reportFleet } from './fleet.js';
import { type ColdResult, benchCold, reportCold } from './cold-start.js';
import { type KdumpResult, benchKdump, reportKdump } from './dom0-kdump.js';

const RESULTS = path.join(ROOT, 'bench', 'results.json');

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`bench: ${e.message}\n${USAGE}\n`);
      return 2;
    }
    throw e;
  }
  if (!fs.existsSync(CLI)) {
    process.stderr.write(`bench: ${CLI} is missing (run npm run build, or npm run bench which builds first)\n`);
    return 1;
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-audit-bench-'));
  const cleanup = (): void => {
    if (!opts.keep) fs.rmSync(tmp, { recursive: true, force: true });
    // streams are as large as their guests: never kept
    else for (const d of fs.readdirSync(tmp).filter((x) => /^s\d+-/.test(x))) fs.rmSync(path.join(tmp, d), { recursive: true, force: true });
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    log(`${sig}: cleaning up ${tmp}`);
    cleanup();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const hookPath = path.join(tmp, 'rss-hook.mjs');
    fs.writeFileSync(hookPath, RSS_HOOK);
    const parseScript = path.join(tmp, 'parse-stream.mjs');
    fs.writeFileSync(parseScript, parseChildSource());
    const rss = chooseRssMethod(opts.rssMethod, tmp, hookPath);
    const runner = new Runner(rss, tmp, pathToFileURL(hookPath).href);
    const on = (x: Section): boolean => opts.sections.has(x);
    const streamWanted = opts.streamSizes === 'auto' ? DEFAULT_STREAM_SIZES : opts.streamSizes;
    log(
      `sections ${[...opts.sections].join(', ')}; .p2ms sizes ${opts.sizes.join(', ')} GiB; stream sizes ${streamWanted.join(', ')} GiB${opts.streamSizes === 'auto' ? ` (${STREAM_FALLBACK_GiB} when short of disk)` : ''}; ` +
        `corpus ${opts.corpusFiles} files; ${opts.reps} repetitions, peak RSS via ${rss}, temp dir ${tmp}${opts.keep ? ' (kept)' : ''}`,
    );

    // the fixed cost of starting the CLI (node + its imports), for reading the audit times
    const floor: number[] = [];
    for (let i = 0; i < opts.reps + 1; i++) {
      const r = await runner.run(process.execPath, [CLI, 'profiles', '--json'], { measureRss: false });
      if (r.code !== 0) throw new Error(`node dist/src/cli.js profiles failed (exit ${r.code}): ${r.stderr.trim()}`);
      if (i > 0) floor.push(r.wallS); // the first run warms the module cache
    }
    const cliFloorS = median(floor);

    const started = performance.now();
    const loadStart = os.loadavg();
    const sectionS: Partial<Record<Section, number>> = {};
    const profiles: ProfileRun[] = [];

    // 1. .p2ms guests
    const results: SizeResult[] = [];
    if (on('p2ms')) {
      const t = performance.now();
      for (const size of opts.sizes) results.push(await benchSize(size, opts, runner, tmp));
      const largestOk = [...results].reverse().find((r) => r.error === null);
      if (opts.cpuProf && largestOk) {
        try {
          profiles.push(await profileAudit(largestOk.sizeGiB, runner, tmp));
        } catch (e) {
          log(`--cpu-prof failed: ${(e as Error).message}`);
        }
      }
      sectionS.p2ms = (performance.now() - t) / 1000;
    }

    // 2. emulated save streams, one at a time (each is deleted before the next is written)
    const streams: StreamResult[] = [];
    if (on('stream')) {
      const t = performance.now();
      for (const req of streamWanted) {
        let size: number | null = req;
        let note: string | null = null;
        if (!streamFits(req, tmp)) {
          const why = `a ${req} GiB guest's stream needs ~${f1(streamNeedBytes(req) / GiB)} GiB of disk and ${f0(DISK_RESERVE_BYTES / GiB)} GiB are kept free, but ${f1(freeBytes(tmp) / GiB)} GiB are free in ${os.tmpdir()}`;
          if (opts.streamSizes === 'auto' && req > STREAM_FALLBACK_GiB && !streamWanted.includes(STREAM_FALLBACK_GiB) && streamFits(STREAM_FALLBACK_GiB, tmp)) {
            size = STREAM_FALLBACK_GiB;
            note = `${why}: measured a ${STREAM_FALLBACK_GiB} GiB guest instead`;
          } else {
            size = null;
            note = `${why}: skipped`;
          }
          log(note);
        }
        if (size === null) streams.push({ requestedGiB: req, sizeGiB: null, error: null, note });
        else streams.push(await benchStream(req, size, note, opts, runner, tmp, parseScript, profiles));
      }
      sectionS.stream = (performance.now() - t) / 1000;
    }

    // 3. the real save file
    let real: RealResult | null = null;
    if (on('real')) {
      const t = performance.now();
      real = await benchReal(opts, runner, tmp, parseScript, profiles);
      sectionS.real = (performance.now() - t) / 1000;
    }

    // 4. scan corpus
    let corpus: CorpusResult | null = null;
    if (on('corpus')) {
      const t = performance.now();
      corpus = await benchCorpus(opts, runner, tmp);
      sectionS.corpus = (performance.now() - t) / 1000;
    }

    // 5. the same corpus size through fleet (BullMQ on a local redis-server) vs scan
    let fleet: FleetResult | null = null;
    if (on('fleet')) {
      const t = performance.now();
      fleet = await benchFleet(opts, tmp);
      sectionS.fleet = (performance.now() - t) / 1000;
    }

    // 6. cold start (node -e 0, --help, --version, the audit command's imports); then the issue-17 table
    let cold: ColdResult | null = null;
    if (on('cold')) {
      const t = performance.now();
      cold = await benchCold(opts, runner, tmp);
      sectionS.cold = (performance.now() - t) / 1000;
    }

    // 7. dom0 crash dumps (ELF vmcore, makedumpfile compressed) of --kdump-sizes GiB (bench/dom0-kdump.ts)
    const kdumps: KdumpResult[] = [];
    if (on('kdump')) {
      const t = performance.now();
      for (const size of opts.kdumpSizes) kdumps.push(await benchKdump(size, opts, runner, tmp));
      sectionS.kdump = (performance.now() - t) / 1000;
    }

    const loadEnd = os.loadavg();
    let text = '';
    text += `\np2m-audit benchmark; ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim() ?? '?'}), ${f0(os.totalmem() / GiB)} GiB RAM, node ${process.version}\n`;
    text += `child timings are wall-clock medians of ${opts.reps}, warm page cache unless a "cached %" column says otherwise; peak RSS via ${rss === 'time' ? '/usr/bin/time -f %M' : rss === 'hook' ? 'process.resourceUsage().maxRSS (--import hook)' : '(not measured)'}\n`;
    text += `CLI start-up floor (node dist/src/cli.js profiles --json): ${f3(cliFloorS)} s; `;
    text += `load average ${loadStart.map(f2).join(' ')} at start, ${loadEnd.map(f2).join(' ')} at end (other processes make the figures noisy)\n`;
    const goals: Goal[] = [];
    let p2msOut: ReturnType<typeof reportP2ms> | null = null;
    if (on('p2ms')) {
      p2msOut = reportP2ms(results);
      text += p2msOut.text;
      goals.push(...p2msOut.goals);
    }
    if (on('stream')) {
      const o = reportStreams(streams, opts.reps);
      text += o.text;
      goals.push(...o.goals);
    }
    if (real) {
      const o = reportReal(real, opts.reps);
      text += o.text;
      goals.push(...o.goals);
    }
    if (corpus) {
      const o = reportCorpus(corpus, opts.reps);
      text += o.text;
      goals.push(...o.goals);
    }
    if (fleet) {
      const o = reportFleet(fleet);
      text += o.text;
      goals.push(...o.goals);
    }
    if (cold || on('cold')) {
      const o = reportCold(cold, results, corpus, real);
      text += o.text;
      goals.push(...o.goals);
    }
    if (on('kdump')) {
      const o = reportKdump(kdumps, opts.reps);
      text += o.text;
      goals.push(...o.goals);
    }
    if (goals.length) {
      text += '\n== Goals (report only: a MISS does not change the exit status; info rows have no goal) ==\n';
      text += table(['section', 'goal', 'for', 'measured', 'result'], goals.map((g) => [g.section, g.goal, g.subject, g.value, g.pass === null ? 'info' : g.pass ? 'PASS' : 'MISS']), 3);
    }
    const failures: string[] = [];
    for (const r of results) if (r.error) failures.push(`.p2ms ${r.sizeGiB} GiB: ${r.error}`);
    for (const r of streams) if (r.error) failures.push(`stream ${r.sizeGiB} GiB: ${r.error}`);
    if (real?.error) failures.push(`real save file: ${real.error}`);
    if (corpus?.error) failures.push(`corpus: ${corpus.error}`);
    if (fleet?.error) failures.push(`fleet: ${fleet.error}`);
    if (cold?.error) failures.push(`cold start: ${cold.error}`);
    for (const k of kdumps) for (const e of [k.error, ...k.files.map((f) => f.error && `${f.kind}: ${f.error}`)]) if (e) failures.push(`kdump ${k.sizeGiB} GiB: ${e}`);
    if (failures.length) text += `\nFailures\n${failures.map((f) => `  ${f.split('\n').join('\n    ')}\n`).join('')}`;
    for (const prof of profiles) {
      text += `\nCPU profile of one ${prof.label} (${f3(prof.wallS)} s wall, profiler on): top self time per thread\n`;
      prof.threads.forEach((t, i) => {
        text += `  thread ${i === 0 ? '0 (main)' : `${i} (worker)`}: ${f1(t.sampledMs)} ms sampled\n`;
        for (const f of t.top) text += `    ${f1(f.selfMs).padStart(7)} ms ${f1(f.pct).padStart(5)}%  ${f.frame}\n`;
      });
    }
    const sectionText = SECTIONS.filter((x) => sectionS[x] !== undefined)
      .map((x) => `${x} ${f0(sectionS[x])} s`)
      .join(', ');
    text += `\ntotal bench time ${f1((performance.now() - started) / 1000)} s (${sectionText}); results in ${path.relative(process.cwd(), RESULTS) || RESULTS}\n`;
    process.stdout.write(text);

    const json = {
      schema: 'p2m-audit/bench@2',
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model.trim() ?? null, totalMemMiB: Math.round(os.totalmem() / MiB), node: process.version, platform: `${os.platform()} ${os.release()}` },
      options: {
        sections: [...opts.sections],
        sizesGiB: opts.sizes,
        streamSizesGiB: streamWanted,
        streamSizesAuto: opts.streamSizes === 'auto',
        kdumpSizesGiB: opts.kdumpSizes,
        corpusFiles: opts.corpusFiles,
        reps: opts.reps,
        profile: PROFILE_ID,
        seed: SEED,
        jobs: JOBS,
      },
      rssMethod: rss,
      cliFloorS,
      loadAverage: { start: loadStart, end: loadEnd },
      sectionSeconds: sectionS,
      results,
      scaling: p2msOut?.scaling ?? [],
      scalingOverall: p2msOut?.overall ?? null,
      streams,
      realSave: real,
      corpus,
      fleet,
      cold,
      kdumps,
      goals,
      cpuProfiles: profiles,
    };
    fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
    fs.writeFileSync(RESULTS, JSON.stringify(json, null, 2) + '\n');
    return failures.length ? 1 : 0;
  } finally {
    cleanup();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`bench: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 1;
  },
);
