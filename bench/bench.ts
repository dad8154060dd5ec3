// Benchmark of the audit pipeline on emulated linear-profile (linux-4.x) dom0 guests (bench/README.md).
//
// Per guest size: emulate the guest through the library on a synthetic host e820 map, write it as a
// .p2ms snapshot into a temp dir, then time — in child processes, warm page cache, median of --reps —
// `cat FILE > /dev/null` (the baseline) and `p2m-audit audit FILE --json --jobs 1|2` (wall time and peak
// RSS), plus the in-process classifier (auditImage with jobs 0) as a second code path. Prints tables,
// scaling ratios and the goals (PASS/MISS: report only), and writes bench/results.json.
//
// Exit status: 0 when every measurement was taken (whatever the goals say), 1 when something really
// failed (emulation threw, an audit child crashed or exited 2/4, j1 and j2 reports differ, ...), 2 for
// bad options. Progress goes to stderr, results to stdout.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { auditImage } from '../src/audit/audit-image.js';
import { auditInProcess } from '../src/audit/run-audit.js';
import { GuestLeaf } from '../src/audit/leaf-map.js';
import { openImage } from '../src/image/open-image.js';
import { parseE820 } from '../src/input/e820.js';
import { emulate } from '../src/kernel/emulate.js';
import { findProfile } from '../src/kernel/profiles.js';
import { writeEmulatedP2ms } from '../src/kernel/snapshot.js';
import { PAGE_SIZE } from '../src/xen/abi.js';

// ---- constants ----------------------------------------------------------------------------------

const PROFILE_ID = 'linux-4.x';
const GiB = 2 ** 30;
const MiB = 2 ** 20;
const PAGES_PER_GiB = GiB / PAGE_SIZE;
const DEFAULT_SIZES = [64, 256];
const QUICK_SIZES = [4, 16];
const DEFAULT_REPS = 3;
const JOBS = [1, 2] as const;
/** Emulation seed (machine-frame shuffle); fixed so runs are comparable. */
const SEED = 1;

/** Goals (report only). */
const GOAL_AUDIT_OVER_CAT = 1.5;
const GOAL_SPEEDUP_J2 = 1.7;
const GOAL_PEAK_RSS_MIB = 512;
/** "Linear": time ratio between two sizes at most this factor above the guest-size ratio. */
const GOAL_LINEAR_SLACK = 1.2;

/** Frames shown per thread in a --cpu-prof summary. */
const PROFILE_TOP = 15;

const ROOT = fileURLToPath(new URL('../..', import.meta.url)); // dist/bench/bench.js → repo root
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const RESULTS = path.join(ROOT, 'bench', 'results.json');

// ---- options ------------------------------------------------------------------------------------

interface Options {
  sizes: number[];
  reps: number;
  cpuProf: boolean;
  rssMethod: 'auto' | 'time' | 'hook';
  keep: boolean;
}

class UsageError extends Error {}

const USAGE = `usage: npm run bench -- [--sizes 64,256[,1024]] [--quick] [--reps N] [--cpu-prof] [--rss auto|time|hook] [--keep]
  --sizes LIST  guest sizes in GiB (default ${DEFAULT_SIZES.join(',')})
  --quick       smoke run: --sizes ${QUICK_SIZES.join(',')}
  --reps N      timed repetitions per figure, median reported (default ${DEFAULT_REPS})
  --cpu-prof    also run one audit child (--jobs 2, largest size) under node --cpu-prof and summarise the top frames
  --rss M       peak-RSS method: time = /usr/bin/time -f %M, hook = process.resourceUsage().maxRSS
                reported by an --import hook in the child, auto = time when it works (default)
  --keep        keep the temp dir (its path is printed)`;

function parseArgs(argv: string[]): Options {
  const o: Options = { sizes: DEFAULT_SIZES, reps: DEFAULT_REPS, cpuProf: false, rssMethod: 'auto', keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const inline = a.startsWith('--') && eq > 0 ? a.slice(eq + 1) : undefined;
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`${name} needs a value`);
      return v;
    };
    switch (name) {
      case '--sizes': {
        const list = value().split(',').map((s) => s.trim()).filter((s) => s !== '');
        const sizes = list.map(Number);
        if (sizes.length === 0 || sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 65536)) {
          throw new UsageError(`--sizes: expected a comma-separated list of whole GiB from 1 to 65536, got "${list.join(',')}"`);
        }
        o.sizes = [...new Set(sizes)].sort((x, y) => x - y);
        break;
      }
      case '--quick':
        o.sizes = QUICK_SIZES;
        break;
      case '--reps': {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 1 || n > 50) throw new UsageError('--reps: expected a whole number from 1 to 50');
        o.reps = n;
        break;
      }
      case '--cpu-prof':
        o.cpuProf = true;
        break;
      case '--rss': {
        const m = value();
        if (m !== 'auto' && m !== 'time' && m !== 'hook') throw new UsageError('--rss: expected auto, time or hook');
        o.rssMethod = m;
        break;
      }
      case '--keep':
        o.keep = true;
        break;
      case '-h':
      case '--help':
        process.stdout.write(USAGE + '\n');
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown option ${a}`);
    }
  }
  return o;
}

// ---- small helpers ------------------------------------------------------------------------------

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function hex16(n: number): string {
  return n.toString(16).padStart(16, '0');
}

const f2 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(2));
const f3 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(3));
const f1 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(1));
const f0 = (x: number | null | undefined): string => (x === null || x === undefined || !Number.isFinite(x) ? '-' : Math.round(x).toString());

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]): string => cells.map((s, c) => (c === 0 ? s.padEnd(w[c]!) : s.padStart(w[c]!))).join('  ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n') + '\n';
}

/**
 * A host memory map as Xen prints it: low RAM 0–0x9fc00, reserved up to 1 MiB, RAM 1 MiB–3 GiB, the
 * PCI hole 3–4 GiB reserved, RAM from 4 GiB up to the guest size plus a margin (Xen's own pages and
 * the frames populated for the remapped holes come from there).
 */
function hostE820Text(guestGiB: number): string {
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

// ---- child processes ----------------------------------------------------------------------------

interface ChildResult {
  wallS: number;
  /** peak RSS of the child in KiB, null when not measurable */
  rssKiB: number | null;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

type RssMethod = 'time' | 'hook' | 'none';

class Runner {
  private seq = 0;
  constructor(
    readonly rss: RssMethod,
    private readonly tmp: string,
    private readonly hookUrl: string,
  ) {}

  /**
   * Run cmd args; stdout is captured unless `stdoutFile` is given (a path opened for writing, e.g.
   * /dev/null). `node` children may get extra node flags and the RSS hook.
   */
  run(cmd: string, args: string[], opts: { stdoutFile?: string; nodeFlags?: string[]; measureRss?: boolean } = {}): Promise<ChildResult> {
    const measure = opts.measureRss !== false && this.rss !== 'none';
    const isNode = cmd === process.execPath;
    let argv = [...args];
    let exe = cmd;
    const env = { ...process.env };
    const rssFile = path.join(this.tmp, `rss-${process.pid}-${this.seq++}.txt`);
    if (isNode) argv = [...(opts.nodeFlags ?? []), ...argv];
    if (measure && this.rss === 'hook') {
      if (!isNode) throw new Error('internal: the RSS hook works for node children only');
      argv = ['--import', this.hookUrl, ...argv];
      env['BENCH_RSS_FILE'] = rssFile;
    }
    if (measure && this.rss === 'time') {
      argv = ['-f', '%M', '-o', rssFile, exe, ...argv];
      exe = '/usr/bin/time';
    }
    const outFd = opts.stdoutFile ? fs.openSync(opts.stdoutFile, 'w') : null;
    return new Promise<ChildResult>((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      const t0 = performance.now();
      const child = spawn(exe, argv, { stdio: ['ignore', outFd ?? 'pipe', 'pipe'], env });
      child.stdout?.on('data', (b: Buffer) => out.push(b));
      child.stderr!.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e) => {
        if (outFd !== null) fs.closeSync(outFd);
        reject(new Error(`cannot run ${exe}: ${e.message}`));
      });
      child.on('close', (code, signal) => {
        const wallS = (performance.now() - t0) / 1000;
        if (outFd !== null) fs.closeSync(outFd);
        let rssKiB: number | null = null;
        if (measure) {
          try {
            // GNU time may print "Command exited with non-zero status N" before the number: take the last line
            const lines = fs.readFileSync(rssFile, 'utf8').trim().split('\n');
            const v = Number(lines[lines.length - 1]!.trim());
            if (Number.isFinite(v) && v > 0) rssKiB = v;
          } catch {
            // no file: the child died before reporting
          }
          fs.rmSync(rssFile, { force: true });
        }
        resolve({ wallS, rssKiB, code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
      });
    });
  }
}

/** The RSS hook module for `node --import`: writes the process's peak RSS (KiB) at exit. */
const RSS_HOOK = `import fs from 'node:fs';
process.on('exit', () => {
  const f = process.env.BENCH_RSS_FILE;
  if (f) try { fs.writeFileSync(f, String(process.resourceUsage().maxRSS) + '\\n'); } catch {}
});
`;

/** Pick the RSS method: /usr/bin/time -f %M when it works here, else the hook (checked too). */
function chooseRssMethod(wanted: Options['rssMethod'], tmp: string, hookPath: string): RssMethod {
  const probeFile = path.join(tmp, 'rss-probe.txt');
  const timeWorks = (): boolean => {
    if (!fs.existsSync('/usr/bin/time')) return false;
    const r = spawnSync('/usr/bin/time', ['-f', '%M', '-o', probeFile, process.execPath, '-e', '0'], { stdio: 'ignore' });
    const ok = r.status === 0 && fs.existsSync(probeFile) && Number(fs.readFileSync(probeFile, 'utf8').trim().split('\n').pop()) > 0;
    fs.rmSync(probeFile, { force: true });
    return ok;
  };
  const hookWorks = (): boolean => {
    const r = spawnSync(process.execPath, ['--import', pathToFileURL(hookPath).href, '-e', '0'], { stdio: 'ignore', env: { ...process.env, BENCH_RSS_FILE: probeFile } });
    const ok = r.status === 0 && fs.existsSync(probeFile) && Number(fs.readFileSync(probeFile, 'utf8').trim()) > 0;
    fs.rmSync(probeFile, { force: true });
    return ok;
  };
  if (wanted === 'time') {
    if (timeWorks()) return 'time';
    log('--rss time: /usr/bin/time -f %M does not work here; peak RSS will not be measured');
    return 'none';
  }
  if (wanted === 'hook') {
    if (hookWorks()) return 'hook';
    log('--rss hook: the --import hook does not work here; peak RSS will not be measured');
    return 'none';
  }
  if (timeWorks()) return 'time';
  if (hookWorks()) return 'hook';
  log('neither /usr/bin/time -f %M nor the --import hook works here; peak RSS will not be measured');
  return 'none';
}

// ---- CPU profile summary ------------------------------------------------------------------------

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

interface ProfileSummary {
  file: string;
  sampledMs: number;
  top: { frame: string; selfMs: number; pct: number }[];
}

function shortUrl(url: string): string {
  const m = /\/(dist|node_modules)\/(.*)$/.exec(url);
  return m ? `${m[1]}/${m[2]}` : url;
}

/** Self time per function (name + file:line), highest first. */
function summariseProfile(file: string, top = PROFILE_TOP): ProfileSummary {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const frameOf = new Map<number, string>();
  for (const n of p.nodes) {
    const cf = n.callFrame;
    const where = cf.url ? ` ${shortUrl(cf.url)}:${cf.lineNumber + 1}` : '';
    frameOf.set(n.id, `${cf.functionName || '(anonymous)'}${where}`);
  }
  const self = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    total += dt;
    const k = frameOf.get(p.samples[i]!) ?? '?';
    self.set(k, (self.get(k) ?? 0) + dt);
  }
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, top);
  return {
    file: path.basename(file),
    sampledMs: total / 1000,
    top: rows.map(([frame, us]) => ({ frame, selfMs: us / 1000, pct: total ? (100 * us) / total : 0 })),
  };
}

// ---- one guest size -----------------------------------------------------------------------------

interface SizeResult {
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

function checkAudit(r: ChildResult, what: string): Record<string, unknown> {
  if (r.signal !== null) throw new Error(`${what}: killed by ${r.signal}\n${r.stderr.trim()}`);
  // 0 clean, 1 fatal, 3 warnings are verdicts; 2 (input error) and 4 (internal error) are failures
  if (r.code !== 0 && r.code !== 1 && r.code !== 3) throw new Error(`${what}: exit status ${r.code}\n${r.stderr.trim()}`);
  try {
    return JSON.parse(r.stdout) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${what}: stdout is not JSON (${(e as Error).message}): ${r.stdout.slice(0, 200)}`);
  }
}

function checkCat(r: ChildResult, what: string): void {
  if (r.code !== 0) throw new Error(`${what}: exit status ${r.code ?? r.signal}\n${r.stderr.trim()}`);
}

async function benchSize(sizeGiB: number, opts: Options, runner: Runner, tmp: string): Promise<SizeResult> {
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
    const auditArgs = (jobs: number): string[] => [CLI, 'audit', file, '--json', '--jobs', String(jobs)];
    stage = 'audit runs';
    log(`${sizeGiB} GiB: warm-up (cat, audit --jobs 2)`);
    checkCat(await runner.run('cat', [file], { stdoutFile: '/dev/null', measureRss: false }), 'warm-up cat');
    const warm = checkAudit(await runner.run(process.execPath, auditArgs(2)), 'warm-up audit --jobs 2');
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
        const r = await runner.run(process.execPath, auditArgs(j));
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

    // 5. in-process classification (auditImage, jobs 0)
    stage = 'in-process audit';
    log(`${sizeGiB} GiB: in-process audit (auditImage, jobs 0)`);
    const inS: number[] = [];
    const loopS: number[] = [];
    let leaves = 0;
    let pageLeaves = 0;
    let same = true;
    const refClasses = JSON.stringify(Object.fromEntries(Object.entries(warm['classes'] as Record<string, { pages: number }>).map(([k, v]) => [k, v.pages])));
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
        const classes = JSON.stringify(Object.fromEntries(Object.entries(out.report.classes).map(([k, v]) => [k, v.pages])));
        if (out.report.verdict !== res.verdict || classes !== refClasses) same = false;
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

/** One audit child under node --cpu-prof; every thread (main + workers) writes a profile. */
async function profileAudit(sizeGiB: number, runner: Runner, tmp: string): Promise<{ sizeGiB: number; wallS: number; threads: ProfileSummary[] }> {
  const dir = fs.mkdtempSync(path.join(tmp, `prof${sizeGiB}-`));
  try {
    const file = path.join(dir, `linux-4.x-${sizeGiB}g.p2ms`);
    const profile = findProfile(PROFILE_ID)!;
    const nrPages = sizeGiB * PAGES_PER_GiB;
    log(`--cpu-prof: emulating ${sizeGiB} GiB again for the profiled run`);
    writeEmulatedP2ms(emulate({ profile, hostE820: parseE820(hostE820Text(sizeGiB), 'host e820'), nrPages, maxPages: nrPages, seed: SEED }).image, file, { overwrite: true });
    const profDir = path.join(dir, 'prof');
    fs.mkdirSync(profDir);
    await runner.run(process.execPath, [CLI, 'audit', file, '--json', '--jobs', '2'], { measureRss: false }); // warm cache
    log(`--cpu-prof: profiling audit --jobs 2 of ${sizeGiB} GiB`);
    const r = await runner.run(process.execPath, [CLI, 'audit', file, '--json', '--jobs', '2'], { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${profDir}`], measureRss: false });
    checkAudit(r, 'profiled audit');
    // Node names them CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: thread 0 is the main thread
    const files = fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).sort((a, b) => threadOf(a) - threadOf(b));
    return { sizeGiB, wallS: r.wallS, threads: files.map((f) => summariseProfile(path.join(profDir, f))) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function threadOf(name: string): number {
  const parts = name.split('.');
  return Number(parts[parts.length - 3] ?? 0);
}

// ---- report -------------------------------------------------------------------------------------

interface Goal {
  goal: string;
  subject: string;
  value: string;
  pass: boolean;
}

function fit(points: { x: number; y: number }[]): { fixed: number; perUnit: number } | null {
  if (points.length < 2) return null;
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  if (sxx === 0) return null;
  const perUnit = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0) / sxx;
  return { fixed: my - perUnit * mx, perUnit };
}

function report(results: SizeResult[], extra: { cliFloorS: number | null; rss: RssMethod; loadStart: number[]; loadEnd: number[] }): { text: string; goals: Goal[]; scaling: unknown[] } {
  const ok = results.filter((r) => r.error === null);
  let s = '';
  s += `\np2m-audit benchmark: ${PROFILE_ID} dom0, nr_pages = max_pages = guest size; ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim() ?? '?'}), node ${process.version}\n`;
  s += `child timings are wall-clock medians, warm page cache; peak RSS via ${extra.rss === 'time' ? '/usr/bin/time -f %M' : extra.rss === 'hook' ? 'process.resourceUsage().maxRSS (--import hook)' : '(not measured)'}\n`;
  s += `CLI start-up floor (node dist/src/cli.js profiles --json): ${f3(extra.cliFloorS)} s; `;
  s += `load average ${extra.loadStart.map(f2).join(' ')} at start, ${extra.loadEnd.map(f2).join(' ')} at end (other processes make the figures noisy)\n\n`;

  s += 'Emulation (in process, library)\n';
  s += table(
    ['guest GiB', 'emulate s', 'write s', 'frames', 'file MiB', 'bench RSS MiB', 'verdict'],
    results.map((r) => [
      String(r.sizeGiB),
      f2(r.emulateS),
      f2(r.writeS),
      r.frames?.toString() ?? '-',
      f1(r.fileBytes !== undefined ? r.fileBytes / MiB : undefined),
      f0(r.benchRssAfterEmulateKiB !== undefined ? r.benchRssAfterEmulateKiB / 1024 : undefined),
      r.error ? 'FAILED' : r.verdict ?? '-',
    ]),
  );
  s += '\nAudit (child process: node dist/src/cli.js audit FILE --json --jobs N) vs cat FILE > /dev/null\n';
  s += table(
    ['guest GiB', 'file MiB', 'cat s', 'audit j1 s', 'audit j2 s', 'audit/cat j2', 'j2 speed-up', 'peak RSS MiB'],
    results.map((r) => {
      const j1 = r.audit?.['j1'];
      const j2 = r.audit?.['j2'];
      const rss = [j1?.peakRssKiB, j2?.peakRssKiB].filter((v): v is number => typeof v === 'number');
      return [
        String(r.sizeGiB),
        f1(r.fileBytes !== undefined ? r.fileBytes / MiB : undefined),
        f3(r.cat?.medianS),
        f3(j1?.medianS),
        f3(j2?.medianS),
        r.cat && j2 ? f1(j2.medianS / r.cat.medianS) : '-',
        j1 && j2 ? f2(j1.medianS / j2.medianS) : '-',
        rss.length ? f0(Math.max(...rss) / 1024) : '-',
      ];
    }),
  );
  s += '\nIn-process path (main thread, GuestImage.readFrame): auditImage(img, {jobs: 0}) = walks + guest view + per-leaf loop + report;\n';
  s += 'loop = auditInProcess alone on the same views. leaves = audited 512-pfn leaves, page-backed = leaves with a guest leaf page\n';
  s += table(
    ['guest GiB', 'auditImage s', 'leaves', 'leaves/s', 'page-backed', 'page leaves/s', 'loop s', 'loop page leaves/s', 'loop MiB/s'],
    results.map((r) => {
      const p = r.inProcess;
      return [
        String(r.sizeGiB),
        f3(p?.medianS),
        p?.leaves.toString() ?? '-',
        f0(p?.leavesPerS),
        p?.pageLeaves.toString() ?? '-',
        f0(p?.pageLeavesPerS),
        f3(p?.loopMedianS),
        f0(p?.loopPageLeavesPerS),
        p ? f0((p.loopPageLeavesPerS * PAGE_SIZE) / MiB) : '-',
      ];
    }),
  );

  // scaling
  const scaling: { from: number; to: number; guestRatio: number; fileRatio: number; cat: number; auditJ1: number; auditJ2: number; emulate: number; inProcess: number }[] = [];
  for (let i = 1; i < ok.length; i++) {
    const a = ok[i - 1]!;
    const b = ok[i]!;
    scaling.push({
      from: a.sizeGiB,
      to: b.sizeGiB,
      guestRatio: b.sizeGiB / a.sizeGiB,
      fileRatio: b.fileBytes! / a.fileBytes!,
      cat: b.cat!.medianS / a.cat!.medianS,
      auditJ1: b.audit!['j1']!.medianS / a.audit!['j1']!.medianS,
      auditJ2: b.audit!['j2']!.medianS / a.audit!['j2']!.medianS,
      emulate: b.emulateS! / a.emulateS!,
      inProcess: b.inProcess!.medianS / a.inProcess!.medianS,
    });
  }
  if (scaling.length) {
    s += '\nScaling: time(larger)/time(smaller), expected ≈ guest-size ratio for linear cost\n';
    s += table(
      ['sizes GiB', 'guest ratio', 'file ratio', 'audit j1', 'audit j2', 'cat', 'in-process', 'emulate'],
      scaling.map((x) => [`${x.to}/${x.from}`, f2(x.guestRatio), f2(x.fileRatio), f2(x.auditJ1), f2(x.auditJ2), f2(x.cat), f2(x.inProcess), f2(x.emulate)]),
    );
    const lines: string[] = [];
    for (const [label, get] of [
      ['audit j1', (r: SizeResult) => r.audit!['j1']!.medianS],
      ['audit j2', (r: SizeResult) => r.audit!['j2']!.medianS],
      ['cat', (r: SizeResult) => r.cat!.medianS],
    ] as const) {
      const lf = fit(ok.map((r) => ({ x: r.sizeGiB, y: get(r) })));
      if (lf) lines.push(`  ${label.padEnd(8)} ≈ ${f3(lf.fixed)} s fixed + ${f3(lf.perUnit * 1000)} ms per guest GiB`);
    }
    if (lines.length) s += `Affine fit time = fixed + per-GiB · size (${ok.map((r) => r.sizeGiB).join(', ')} GiB):\n${lines.join('\n')}\n`;
  }

  // goals
  const goals: Goal[] = [];
  for (const r of ok) {
    const ratio = r.audit!['j2']!.medianS / r.cat!.medianS;
    goals.push({ goal: `audit/cat (j2) ≤ ${GOAL_AUDIT_OVER_CAT}`, subject: `${r.sizeGiB} GiB`, value: f2(ratio), pass: ratio <= GOAL_AUDIT_OVER_CAT });
  }
  for (const r of ok) {
    const sp = r.audit!['j1']!.medianS / r.audit!['j2']!.medianS;
    goals.push({ goal: `2 workers ≥ ${GOAL_SPEEDUP_J2}× one`, subject: `${r.sizeGiB} GiB`, value: `${f2(sp)}×`, pass: sp >= GOAL_SPEEDUP_J2 });
  }
  for (const r of ok) {
    const rss = [r.audit!['j1']!.peakRssKiB, r.audit!['j2']!.peakRssKiB].filter((v): v is number => v !== null);
    if (!rss.length) {
      goals.push({ goal: `peak RSS ≤ ${GOAL_PEAK_RSS_MIB} MiB`, subject: `${r.sizeGiB} GiB`, value: 'not measured', pass: false });
      continue;
    }
    const mib = Math.max(...rss) / 1024;
    goals.push({ goal: `peak RSS ≤ ${GOAL_PEAK_RSS_MIB} MiB`, subject: `${r.sizeGiB} GiB`, value: `${f0(mib)} MiB`, pass: mib <= GOAL_PEAK_RSS_MIB });
  }
  for (const x of scaling) {
    goals.push({
      goal: `cost linear in guest size (j2 ratio ≤ ${GOAL_LINEAR_SLACK} × guest ratio)`,
      subject: `${x.to}/${x.from} GiB`,
      value: `${f2(x.auditJ2)} (guest ${f2(x.guestRatio)}, file ${f2(x.fileRatio)})`,
      pass: x.auditJ2 <= GOAL_LINEAR_SLACK * x.guestRatio,
    });
  }
  if (goals.length) {
    s += '\nGoals (report only)\n';
    s += table(['goal', 'for', 'measured', 'result'], goals.map((g) => [g.goal, g.subject, g.value, g.pass ? 'PASS' : 'MISS']));
  }
  const failed = results.filter((r) => r.error !== null);
  if (failed.length) {
    s += '\nFailures\n';
    for (const r of failed) s += `  ${r.sizeGiB} GiB: ${r.error!.split('\n').join('\n    ')}\n`;
  }
  return { text: s, goals, scaling };
}

// ---- main ---------------------------------------------------------------------------------------

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
    const rss = chooseRssMethod(opts.rssMethod, tmp, hookPath);
    const runner = new Runner(rss, tmp, pathToFileURL(hookPath).href);
    log(`sizes ${opts.sizes.join(', ')} GiB, ${opts.reps} repetitions, peak RSS via ${rss}, temp dir ${tmp}${opts.keep ? ' (kept)' : ''}`);

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
    const results: SizeResult[] = [];
    for (const size of opts.sizes) results.push(await benchSize(size, opts, runner, tmp));

    let prof: Awaited<ReturnType<typeof profileAudit>> | null = null;
    const largestOk = [...results].reverse().find((r) => r.error === null);
    if (opts.cpuProf && largestOk) {
      try {
        prof = await profileAudit(largestOk.sizeGiB, runner, tmp);
      } catch (e) {
        log(`--cpu-prof failed: ${(e as Error).message}`);
      }
    }

    const loadEnd = os.loadavg();
    const out = report(results, { cliFloorS, rss, loadStart, loadEnd });
    let text = out.text;
    if (prof) {
      text += `\nCPU profile of one audit --jobs 2 child, ${prof.sizeGiB} GiB (${f3(prof.wallS)} s wall, profiler on): top self time per thread\n`;
      prof.threads.forEach((t, i) => {
        text += `  thread ${i === 0 ? '0 (main)' : `${i} (worker)`}: ${f1(t.sampledMs)} ms sampled\n`;
        for (const f of t.top) text += `    ${f1(f.selfMs).padStart(7)} ms ${f1(f.pct).padStart(5)}%  ${f.frame}\n`;
      });
    }
    text += `\ntotal bench time ${f1((performance.now() - started) / 1000)} s; results in ${path.relative(process.cwd(), RESULTS) || RESULTS}\n`;
    process.stdout.write(text);

    const json = {
      schema: 'p2m-audit/bench@1',
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model.trim() ?? null, totalMemMiB: Math.round(os.totalmem() / MiB), node: process.version, platform: `${os.platform()} ${os.release()}` },
      options: { sizesGiB: opts.sizes, reps: opts.reps, profile: PROFILE_ID, seed: SEED, jobs: JOBS },
      rssMethod: rss,
      cliFloorS,
      loadAverage: { start: loadStart, end: loadEnd },
      results,
      scaling: out.scaling,
      goals: out.goals,
      cpuProfile: prof,
    };
    fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
    fs.writeFileSync(RESULTS, JSON.stringify(json, null, 2) + '\n');
    return results.some((r) => r.error !== null) ? 1 : 0;
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
