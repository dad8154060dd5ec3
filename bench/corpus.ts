// Section 4 (corpus): a scan corpus of small images (committed scenarios plus emulated guests): one timed
// `scan DIR --json --jobs 2` child against in-process and child audits of each source; and its report.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { auditImage } from '../src/audit/audit-image.js';
import { openImage } from '../src/formats/open-image.js';
import { computeDom0Pages, parseDom0Mem } from '../src/inputs/dom0-mem.js';
import { parseE820 } from '../src/inputs/e820.js';
import { emulate } from '../src/emulate/kernel/boot.js';
import { findProfile } from '../src/emulate/kernel/profiles.js';
import { writeEmulatedP2ms } from '../src/emulate/snapshot.js';
import { PAGE_SIZE } from '../src/xen/abi.js';
import { bootFactsOf } from '../src/formats/guest-image.js';
import type { AuditOutcome } from '../src/audit/audit-image.js';
import { MiB, CHILD_TIMEOUT_S, SEED, ROOT, CLI, log, f2, f3, f1, f0, table, mib } from './common.js';
import type { Options } from './options.js';
import { median, Runner, checkAudit } from './measure.js';
import { type Goal, rssGoal } from './goals.js';

const CORPUS_JOBS = 2;

const SCENARIO_DIR = path.join(ROOT, 'corpora', 'scenarios');
const CORPUS_HOST = path.join(SCENARIO_DIR, 'hosts', 'pci-hole-8g-host.txt');

/**
 * Small guests emulated for the scan corpus, beside the committed scenarios (on CORPUS_HOST: RAM to 3 GiB,
 * PCI hole 3–4 GiB, RAM 4–9 GiB): varied sizes and profiles, CLEAN and FATAL.
 */
const CORPUS_EMULATED: readonly { profile: string; dom0Mem: string }[] = [
  { profile: 'linux-4.x', dom0Mem: '64m,max:64m' },
  { profile: 'linux-6.1', dom0Mem: '128m,max:128m' },
  { profile: 'linux-3.18', dom0Mem: '512m,max:512m' },
  { profile: 'linux-3.8.13-backport', dom0Mem: '2g,max:2g' },
  { profile: 'linux-4.x', dom0Mem: '3g,max:3g' },
  { profile: 'linux-3.8.13-backport', dom0Mem: '3584m,max:3584m' },
  { profile: 'linux-3.8', dom0Mem: '4g,max:4g' },
];

interface CorpusSource {
  name: string;
  origin: 'committed' | 'emulated';
  profile: string | null;
  dom0Mem: string | null;
  guestMiB: number | null;
  fileBytes: number;
  verdict: string;
  /** auditImage(openImage(file), {jobs: 0}): warm-up, then --reps */
  inProcessSamplesS: number[];
  inProcessMedianS: number;
  /** leaf and structure pages of its audit × 4 KiB (neededBytes) */
  neededBytes: number;
  /** one `audit FILE --json --jobs 2` child */
  cliS: number;
  copies: number;
}

export interface CorpusResult {
  error: string | null;
  files: number;
  jobs: number;
  sources: CorpusSource[];
  totalBytes?: number;
  buildS?: number;
  scan?: {
    wallS: number;
    rssKiB: number | null;
    exitCode: number | null;
    /** JSON lines with a status (one per file) */
    resultLines: number;
    audited: number;
    verdicts: Record<string, number>;
    /** files whose scan result differs from their source's own audit (first 10) */
    mismatches: string[];
    mismatchCount: number;
    /** the scan's summary line (schema p2m-audit/scan-summary@1), when it prints one */
    summary: unknown;
  };
  filesPerS?: number;
  mibPerS?: number;
  /** mean over the N files of their source's in-process audit time */
  meanInProcessS?: number;
  /** scan wall / N − meanInProcessS */
  perFileOverheadS?: number;
  /** scan wall / N − meanInProcessS / jobs: against a perfect split of the in-process work over the scan's workers */
  perFileOverheadParallelS?: number;
  /** mean over the N files of their source's `audit` child time */
  meanCliS?: number;
  /** `cat` of the N corpus files, once before and once after the scan: their mean (issue 17's baseline) */
  catS?: number;
  /** bytes the scan child read (its /proc/self/io rchar at exit: every read(), page-cache hits, modules) */
  bytesRead?: number;
  /** Σ over the N files of their source's leaf and structure pages × 4 KiB: what an audit must read */
  leafBytes?: number;
}

/** `node --import` hook of the scan child: its /proc/self/io (all threads) at exit, into BENCH_IO_FILE. */
const IO_HOOK = `import fs from 'node:fs';
process.on('exit', () => { try { fs.writeFileSync(process.env.BENCH_IO_FILE, fs.readFileSync('/proc/self/io')); } catch {} });
`;

/** Leaf pages either view reads plus the page-table and frame-list pages both walks read, in bytes. */
function neededBytes(out: AuditOutcome): number {
  const frames = new Set<number>([...out.guest.structureFrames, ...out.tool.structureFrames]);
  for (let k = 0; k < out.guest.leafFrames.length; k++) if (out.guest.leafFrames[k]! >= 0) frames.add(out.guest.leafFrames[k]!);
  for (let k = 0; k < out.tool.leafFrames.length; k++) if (out.tool.leafFrames[k]! >= 0) frames.add(out.tool.leafFrames[k]!);
  return frames.size * PAGE_SIZE;
}

export async function benchCorpus(opts: Options, runner: Runner, tmp: string): Promise<CorpusResult> {
  const n = opts.corpusFiles;
  const res: CorpusResult = { error: null, files: n, jobs: CORPUS_JOBS, sources: [] };
  const dir = fs.mkdtempSync(path.join(tmp, 'corpus-'));
  const srcDir = path.join(dir, 'sources');
  const scanDir = path.join(dir, 'scan');
  fs.mkdirSync(srcDir);
  fs.mkdirSync(scanDir);
  let stage = 'sources';
  try {
    const t0 = performance.now();
    const srcs: { file: string; name: string; origin: CorpusSource['origin']; profile: string | null; dom0Mem: string | null }[] = [];
    for (const f of fs.readdirSync(SCENARIO_DIR).filter((x) => x.endsWith('.p2ms')).sort()) {
      let profile: string | null = null;
      let dom0Mem: string | null = null;
      try {
        const j = JSON.parse(fs.readFileSync(path.join(SCENARIO_DIR, f.replace(/\.p2ms$/, '.json')), 'utf8')) as { profile?: string; dom0Mem?: string };
        profile = j.profile ?? null;
        dom0Mem = j.dom0Mem ?? null;
      } catch {
        // no scenario description beside it: fine, the file is detected by content
      }
      srcs.push({ file: path.join(SCENARIO_DIR, f), name: f, origin: 'committed', profile, dom0Mem });
    }
    stage = 'emulate';
    const hostE820 = parseE820(fs.readFileSync(CORPUS_HOST, 'utf8'), CORPUS_HOST);
    for (const e of CORPUS_EMULATED) {
      const profile = findProfile(e.profile);
      if (!profile) throw new Error(`profile ${e.profile} is missing`);
      const pages = computeDom0Pages(parseDom0Mem(e.dom0Mem), hostE820);
      const name = `${e.profile}-${e.dom0Mem.split(',')[0]}.p2ms`;
      const file = path.join(srcDir, name);
      log(`corpus: emulating ${e.profile} dom0_mem=${e.dom0Mem}`);
      writeEmulatedP2ms(emulate({ profile, hostE820, nrPages: pages.nrPages, maxPages: pages.maxPages, seed: SEED, dom0Mem: e.dom0Mem }).image, file, { overwrite: true });
      srcs.push({ file, name, origin: 'emulated', profile: e.profile, dom0Mem: e.dom0Mem });
    }

    // each source audited on its own: in process (the classifier without start-up) and as a CLI child
    stage = 'single audits';
    for (const s of srcs) {
      const samples: number[] = [];
      let verdict = '';
      let guestMiB: number | null = null;
      let needed = 0;
      for (let rep = -1; rep < opts.reps; rep++) {
        const img = openImage(s.file);
        try {
          const t = performance.now();
          const out = await auditImage(img, { jobs: 0 });
          if (rep >= 0) samples.push((performance.now() - t) / 1000);
          verdict = out.report.verdict;
          needed = neededBytes(out);
          guestMiB = bootFactsOf(img) ? (bootFactsOf(img)!.nrPages * PAGE_SIZE) / MiB : null;
        } finally {
          img.close();
        }
      }
      const c = checkAudit(await runner.run(process.execPath, [CLI, 'audit', s.file, '--json', '--jobs', String(CORPUS_JOBS)], { measureRss: false }), `audit ${s.name}`);
      if (String(c['verdict']) !== verdict) throw new Error(`${s.name}: the audit child says ${String(c['verdict'])}, the in-process audit ${verdict}`);
      const cli = await runner.run(process.execPath, [CLI, 'audit', s.file, '--json', '--jobs', String(CORPUS_JOBS)], { measureRss: false });
      checkAudit(cli, `audit ${s.name}`);
      res.sources.push({
        name: s.name,
        origin: s.origin,
        profile: s.profile,
        dom0Mem: s.dom0Mem,
        guestMiB,
        fileBytes: fs.statSync(s.file).size,
        verdict,
        inProcessSamplesS: samples,
        inProcessMedianS: median(samples),
        neededBytes: needed,
        cliS: cli.wallS,
        copies: 0,
      });
    }

    // the corpus: N names round-robin over the sources (hard links where the filesystem allows)
    stage = 'build corpus';
    log(`corpus: ${n} files from ${srcs.length} sources in ${scanDir}`);
    const sourceOf = new Map<string, number>();
    let totalBytes = 0;
    for (let i = 0; i < n; i++) {
      const k = i % srcs.length;
      const name = `img-${String(i).padStart(6, '0')}`;
      const dst = path.join(scanDir, name);
      try {
        fs.linkSync(srcs[k]!.file, dst);
      } catch {
        fs.copyFileSync(srcs[k]!.file, dst);
      }
      sourceOf.set(name, k);
      res.sources[k]!.copies++;
      totalBytes += res.sources[k]!.fileBytes;
    }
    res.totalBytes = totalBytes;
    res.buildS = (performance.now() - t0) / 1000;

    stage = 'scan';
    const corpusFiles = [...sourceOf.keys()].map((f) => path.join(scanDir, f));
    const catCorpus = async (): Promise<number> => {
      const c = await runner.run('cat', corpusFiles, { stdoutFile: '/dev/null', measureRss: false });
      if (c.code !== 0) throw new Error(`cat of the corpus: exit ${c.code}`);
      return c.wallS;
    };
    const catBefore = await catCorpus();
    log(`corpus: scan ${n} files --json --jobs ${CORPUS_JOBS}`);
    const ioHook = path.join(dir, 'io-hook.mjs');
    const ioFile = path.join(dir, 'scan-io.txt');
    fs.writeFileSync(ioHook, IO_HOOK);
    const r = await runner.run(process.execPath, [CLI, 'scan', scanDir, '--json', '--jobs', String(CORPUS_JOBS)], {
      timeoutS: CHILD_TIMEOUT_S,
      nodeFlags: ['--import', pathToFileURL(ioHook).href],
      env: { BENCH_IO_FILE: ioFile },
    });
    res.catS = (catBefore + (await catCorpus())) / 2;
    const rchar = fs.existsSync(ioFile) ? /^rchar: (\d+)$/m.exec(fs.readFileSync(ioFile, 'utf8')) : null;
    if (rchar) res.bytesRead = Number(rchar[1]);
    res.leafBytes = res.sources.reduce((sum, x) => sum + x.copies * x.neededBytes, 0);
    if (r.timedOut) throw new Error(`scan was killed after ${CHILD_TIMEOUT_S} s`);
    if (r.signal !== null) throw new Error(`scan killed by ${r.signal}\n${r.stderr.trim()}`);
    const verdicts: Record<string, number> = {};
    const mismatches: string[] = [];
    let mismatchCount = 0;
    let resultLines = 0;
    let audited = 0;
    let summary: unknown = null;
    const seen = new Set<string>();
    for (const line of r.stdout.split('\n')) {
      if (line.trim() === '') continue;
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw new Error(`scan printed a line that is not JSON: ${line.slice(0, 200)}`);
      }
      if (typeof o['schema'] === 'string' && String(o['schema']).includes('summary')) {
        summary = o;
        continue;
      }
      if (typeof o['status'] !== 'string') continue;
      resultLines++;
      const base = path.basename(String(o['file']));
      const k = sourceOf.get(base);
      if (o['status'] === 'audited') {
        audited++;
        const v = String(o['verdict']);
        verdicts[v] = (verdicts[v] ?? 0) + 1;
      }
      if (k === undefined) continue;
      seen.add(base);
      const want = res.sources[k]!.verdict;
      if (o['status'] !== 'audited' || o['verdict'] !== want) {
        mismatchCount++;
        if (mismatches.length < 10) mismatches.push(`${base} (${res.sources[k]!.name}): scan ${String(o['status'])} ${String(o['verdict'] ?? o['reason'] ?? '')}, own audit ${want}`);
      }
    }
    const missing = n - seen.size;
    if (missing > 0) {
      mismatchCount += missing;
      mismatches.push(`${missing} of the ${n} files have no result line`);
    }
    res.scan = { wallS: r.wallS, rssKiB: r.rssKiB, exitCode: r.code, resultLines, audited, verdicts, mismatches, mismatchCount, summary };
    res.filesPerS = n / r.wallS;
    res.mibPerS = totalBytes / MiB / r.wallS;
    res.meanInProcessS = res.sources.reduce((s, x) => s + x.copies * x.inProcessMedianS, 0) / n;
    res.meanCliS = res.sources.reduce((s, x) => s + x.copies * x.cliS, 0) / n;
    res.perFileOverheadS = r.wallS / n - res.meanInProcessS;
    res.perFileOverheadParallelS = r.wallS / n - res.meanInProcessS / CORPUS_JOBS;
    if (r.code !== 0 && r.code !== 1 && r.code !== 3) throw new Error(`scan: exit status ${r.code}\n${r.stderr.trim().split('\n').slice(-5).join('\n')}`);
    if (mismatchCount > 0) throw new Error(`scan: ${mismatchCount} of ${n} files without the verdict of their own audit: ${mismatches.join('; ')}`);
  } catch (e) {
    res.error = `${stage}: ${(e as Error).message}`;
    log(`corpus: FAILED: ${res.error}`);
  } finally {
    if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
  return res;
}

export function reportCorpus(c: CorpusResult, reps: number): { text: string; goals: Goal[] } {
  let s = `\n== 4. Scan corpus: ${c.files} small images (hard links to ${c.sources.length} sources), scan DIR --json --jobs ${c.jobs} ==\n\n`;
  s += `Sources (in-process = auditImage(openImage(f), {jobs: 0}), median of ${reps}; audit child = one audit FILE --json --jobs ${c.jobs})\n`;
  s += table(
    ['source', 'origin', 'profile', 'guest MiB', 'file MiB', 'verdict', 'in-process ms', 'audit child s', 'copies'],
    c.sources.map((x) => [x.name, x.origin, x.profile ?? '-', f0(x.guestMiB), f1(x.fileBytes / MiB), x.verdict, f1(x.inProcessMedianS * 1000), f3(x.cliS), String(x.copies)]),
    3,
  );
  const sc = c.scan;
  if (sc) {
    const verdicts = Object.entries(sc.verdicts)
      .sort()
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    s += `\nScan (one timed run, child process; files in the page cache): ${sc.resultLines} result lines, ${sc.audited} audited (${verdicts}), exit ${sc.exitCode}`;
    s += sc.mismatchCount ? `, ${sc.mismatchCount} differ from their own audit\n` : ', every verdict equal to the file\'s own audit\n';
    s += table(
      ['files', 'corpus MiB', 'scan s', 'files/s', 'MiB/s', 'scan ms/file', 'in-process ms/file', 'overhead ms/file', `overhead vs in-process/${c.jobs}`, 'audit child ms/file', 'scan vs child/file', 'peak RSS MiB'],
      [
        [
          String(c.files),
          f0(c.totalBytes !== undefined ? c.totalBytes / MiB : undefined),
          f2(sc.wallS),
          f1(c.filesPerS),
          f0(c.mibPerS),
          f1((sc.wallS / c.files) * 1000),
          f1(c.meanInProcessS !== undefined ? c.meanInProcessS * 1000 : undefined),
          f1(c.perFileOverheadS !== undefined ? c.perFileOverheadS * 1000 : undefined),
          f1(c.perFileOverheadParallelS !== undefined ? c.perFileOverheadParallelS * 1000 : undefined),
          f1(c.meanCliS !== undefined ? c.meanCliS * 1000 : undefined),
          c.meanCliS !== undefined ? `${f1(c.meanCliS / (sc.wallS / c.files))}×` : '-',
          mib(sc.rssKiB),
        ],
      ],
    );
    s += 'in-process / audit child ms/file: the mean over the corpus of each file\'s source figure (one thread); overhead = scan ms/file − in-process ms/file\n';
    s += `(negative when the scan's ${c.jobs} workers beat one thread); overhead vs in-process/${c.jobs} = scan ms/file − in-process ms/file ÷ ${c.jobs} (a perfect split over the workers)\n`;
  }
  const goals: Goal[] = [];
  if (sc) {
    goals.push({ section: 'corpus', goal: 'scan: every file gets the verdict of its own audit', subject: `${c.files} files`, value: sc.mismatchCount ? `${sc.mismatchCount} differ` : `${sc.audited} audited`, pass: sc.mismatchCount === 0 });
    goals.push(rssGoal('corpus', `${c.files} files`, sc.rssKiB, 'scan peak RSS'));
    goals.push({ section: 'corpus', goal: 'scan throughput (info)', subject: `${c.files} files`, value: `${f1(c.filesPerS)} files/s`, pass: null });
    goals.push({ section: 'corpus', goal: 'per-file overhead over an in-process audit (info)', subject: `${c.files} files`, value: `${f1((c.perFileOverheadS ?? NaN) * 1000)} ms`, pass: null });
    goals.push({ section: 'corpus', goal: `per-file overhead over in-process ÷ ${c.jobs} workers (info)`, subject: `${c.files} files`, value: `${f1((c.perFileOverheadParallelS ?? NaN) * 1000)} ms`, pass: null });
  }
  return { text: s, goals };
}
