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
// Prints one table per figure and a Goals table (PASS/MISS: report only), writes bench/results.json.
//
// Exit status: 0 when every measurement was taken (whatever the goals say), 1 when something really
// failed (emulation threw, an audit child crashed or exited 2/4, j1 and j2 reports differ, Xen's verifier
// rejected an emulated stream, a scan verdict differs from the file's own audit, ...), 2 for bad options.
// Progress goes to stderr, results to stdout.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import zlib from 'node:zlib';
import { auditImage } from '../src/audit/audit-image.js';
import { auditInProcess, createAuditPool } from '../src/audit/run-audit.js';
import { GuestLeaf } from '../src/audit/leaf-map.js';
import { openImage } from '../src/image/open-image.js';
import { writeSaveStream } from '../src/image/stream-writer.js';
import { formatSystemMap } from '../src/image/symbols.js';
import { computeDom0Pages, parseDom0Mem } from '../src/input/dom0-mem.js';
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
const DEFAULT_SIZES = [64, 256, 1024];
const QUICK_SIZES = [4, 16];
/** Save-stream guest sizes wanted by default; a size whose stream does not fit on the temp dir's filesystem is replaced by STREAM_FALLBACK_GiB. */
const DEFAULT_STREAM_SIZES = [16, 256];
const STREAM_FALLBACK_GiB = 64;
const QUICK_STREAM_SIZES = [1, 4];
/** Space left free on the temp dir's filesystem for everybody else while a stream exists. */
const DISK_RESERVE_BYTES = 6 * 2 ** 30;
/** Files in the scan corpus. */
const DEFAULT_CORPUS_FILES = 2000;
const QUICK_CORPUS_FILES = 200;
const CORPUS_JOBS = 2;
/** Xen's verifier is run --reps times on streams up to this size, once on larger ones (it reads every byte). */
const VERIFY_ALL_REPS_MAX_BYTES = 4 * 2 ** 30;
/** Children that may hang (the scan, Xen's verifier) are killed after this long. */
const CHILD_TIMEOUT_S = 1800;
const DEFAULT_REPS = 3;
const SECTIONS = ['p2ms', 'stream', 'real', 'corpus'] as const;
type Section = (typeof SECTIONS)[number];
const JOBS = [1, 2] as const;
/** Untimed engine runs per pool before the timed ones: a long-lived caller has audited a few files already. */
const ENGINE_WARMUP_RUNS = 3;
/** Timed engine rounds at least (each with its own cat): a 64 GiB engine run takes ~25 ms, so medians of 3 are noisy. */
const ENGINE_MIN_REPS = 10;
/** Emulation seed (machine-frame shuffle); fixed so runs are comparable. */
const SEED = 1;

/** Goals (report only). */
const GOAL_AUDIT_OVER_CAT = 1.5;
const GOAL_SPEEDUP_J2 = 1.7;
const GOAL_PEAK_RSS_MIB = 512;
/** "Linear": time ratio between two sizes at most this factor above the guest-size ratio. */
const GOAL_LINEAR_SLACK = 1.2;
/** time(largest)/time(smallest) within the guest-size ratio ± this fraction (16 ± 20 % for 1024/64). */
const GOAL_SCALING_TOLERANCE = 0.2;

/** Frames shown per thread in a --cpu-prof summary. */
const PROFILE_TOP = 15;

const ROOT = fileURLToPath(new URL('../..', import.meta.url)); // dist/bench/bench.js → repo root
const CLI = path.join(ROOT, 'dist', 'src', 'cli.js');
const RESULTS = path.join(ROOT, 'bench', 'results.json');
const STREAM_MODULE = path.join(ROOT, 'dist', 'src', 'image', 'stream-v2.js');
const REAL_SAVE_GZ = path.join(ROOT, 'corpora', 'real', 'pvplain.save.gz');
const REAL_MAP_GZ = path.join(ROOT, 'corpora', 'real', 'System.map-6.1.0-56-amd64.gz');
const SCENARIO_DIR = path.join(ROOT, 'corpora', 'scenarios');
const CORPUS_HOST = path.join(SCENARIO_DIR, 'hosts', 'pci-hole-8g-host.txt');
const VERIFIER_SCRIPT = path.join(ROOT, 'scripts', 'get-xen-verifier.sh');
const VERIFIER_BIN = 'usr/lib/xen-4.17/bin/verify-stream-v2';
const VERIFIER_PYTHONPATH = 'usr/lib/xen-4.17/lib/python';

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

// ---- options ------------------------------------------------------------------------------------

interface Options {
  sizes: number[];
  /** 'auto': DEFAULT_STREAM_SIZES with the fallback; a list: exactly these (a size that does not fit is skipped) */
  streamSizes: number[] | 'auto';
  corpusFiles: number;
  sections: Set<Section>;
  reps: number;
  cpuProf: boolean;
  rssMethod: 'auto' | 'time' | 'hook';
  keep: boolean;
}

class UsageError extends Error {}

const USAGE = `usage: npm run bench -- [--sizes LIST] [--stream-sizes LIST] [--corpus N] [--only LIST] [--quick] [--reps N] [--cpu-prof] [--rss auto|time|hook] [--keep]
  --sizes LIST         .p2ms guest sizes in GiB (default ${DEFAULT_SIZES.join(',')})
  --stream-sizes LIST  save-stream guest sizes in GiB (default ${DEFAULT_STREAM_SIZES.join(',')}; a default size whose stream
                       does not fit on the temp dir's filesystem, keeping ${DISK_RESERVE_BYTES / GiB} GiB free, is replaced by ${STREAM_FALLBACK_GiB};
                       a size given here that does not fit is skipped)
  --corpus N           files in the scan corpus (default ${DEFAULT_CORPUS_FILES})
  --only LIST          sections to run, of ${SECTIONS.join(',')} (default all)
  --quick              smoke run: --sizes ${QUICK_SIZES.join(',')} --stream-sizes ${QUICK_STREAM_SIZES.join(',')} --corpus ${QUICK_CORPUS_FILES}
  --reps N             timed repetitions per figure, median reported (default ${DEFAULT_REPS})
  --cpu-prof           also run one audit child (--jobs 2) of the largest .p2ms size, the first stream and the real
                       save file under node --cpu-prof and summarise the top frames per thread
  --rss M              peak-RSS method: time = /usr/bin/time -f %M, hook = process.resourceUsage().maxRSS
                       reported by an --import hook in the child, auto = time when it works (default)
  --keep               keep the temp dir (its path is printed; streams are deleted anyway)`;

function parseGiBList(name: string, text: string): number[] {
  const list = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const sizes = list.map(Number);
  if (sizes.length === 0 || sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 65536)) {
    throw new UsageError(`${name}: expected a comma-separated list of whole GiB from 1 to 65536, got "${list.join(',')}"`);
  }
  return [...new Set(sizes)].sort((x, y) => x - y);
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    sizes: DEFAULT_SIZES,
    streamSizes: 'auto',
    corpusFiles: DEFAULT_CORPUS_FILES,
    sections: new Set(SECTIONS),
    reps: DEFAULT_REPS,
    cpuProf: false,
    rssMethod: 'auto',
    keep: false,
  };
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
      case '--sizes':
        o.sizes = parseGiBList(name, value());
        break;
      case '--stream-sizes':
        o.streamSizes = parseGiBList(name, value());
        break;
      case '--corpus': {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 1 || n > 1_000_000) throw new UsageError('--corpus: expected a whole number of files from 1 to 1000000');
        o.corpusFiles = n;
        break;
      }
      case '--only': {
        const list = value().split(',').map((s) => s.trim()).filter((s) => s !== '');
        const bad = list.filter((x) => !(SECTIONS as readonly string[]).includes(x));
        if (list.length === 0 || bad.length) throw new UsageError(`--only: expected sections from ${SECTIONS.join(',')}, got "${list.join(',')}"`);
        o.sections = new Set(list as Section[]);
        break;
      }
      case '--quick':
        o.sizes = QUICK_SIZES;
        o.streamSizes = QUICK_STREAM_SIZES;
        o.corpusFiles = QUICK_CORPUS_FILES;
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

/** A text table; the first `left` columns are left-aligned, the others right-aligned. */
function table(head: string[], rows: string[][], left = 1): string {
  const w = head.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]): string => cells.map((s, c) => (c < left ? s.padEnd(w[c]!) : s.padStart(w[c]!))).join('  ');
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
  /** killed after opts.timeoutS */
  timedOut: boolean;
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
  run(
    cmd: string,
    args: string[],
    opts: { stdoutFile?: string; nodeFlags?: string[]; measureRss?: boolean; timeoutS?: number; env?: Record<string, string> } = {},
  ): Promise<ChildResult> {
    const measure = opts.measureRss !== false && this.rss !== 'none';
    const isNode = cmd === process.execPath;
    let argv = [...args];
    let exe = cmd;
    const env = { ...process.env, ...(opts.env ?? {}) };
    const rssFile = path.join(this.tmp, `rss-${process.pid}-${this.seq++}.txt`);
    if (isNode) argv = [...(opts.nodeFlags ?? []), ...argv];
    if (measure && this.rss === 'hook') {
      if (!isNode) throw new Error('internal: the RSS hook works for node children only');
      argv = ['--import', this.hookUrl, ...argv];
      env['BENCH_RSS_FILE'] = rssFile;
    }
    if (opts.timeoutS !== undefined) {
      // coreutils timeout inside /usr/bin/time: SIGKILL reaches the real child, and time still reports its RSS
      argv = ['-s', 'KILL', String(opts.timeoutS), exe, ...argv];
      exe = 'timeout';
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
        // timeout -s KILL exits 128 + 9 when it killed the child
        const timedOut = opts.timeoutS !== undefined && code === 137 && wallS >= opts.timeoutS * 0.99;
        resolve({ wallS, rssKiB, code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), timedOut });
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

interface ProfileRun {
  label: string;
  wallS: number;
  threads: ProfileSummary[];
}

/** One child under node --cpu-prof (after an unprofiled warm-up run); every thread (main + workers) writes a profile. */
async function profileChild(label: string, args: string[], runner: Runner, dir: string): Promise<ProfileRun> {
  const profDir = fs.mkdtempSync(path.join(dir, 'prof-'));
  try {
    await runner.run(process.execPath, args, { measureRss: false }); // warm cache
    log(`--cpu-prof: profiling ${label}`);
    const r = await runner.run(process.execPath, args, { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${profDir}`], measureRss: false });
    checkAudit(r, `profiled ${label}`);
    // Node names them CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: thread 0 is the main thread
    const files = fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).sort((a, b) => threadOf(a) - threadOf(b));
    return { label, wallS: r.wallS, threads: files.map((f) => summariseProfile(path.join(profDir, f))) };
  } finally {
    fs.rmSync(profDir, { recursive: true, force: true });
  }
}

/** Profile one `audit --jobs 2` child of a .p2ms guest (emulated again: the measured files are gone). */
async function profileAudit(sizeGiB: number, runner: Runner, tmp: string): Promise<ProfileRun> {
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

function threadOf(name: string): number {
  const parts = name.split('.');
  return Number(parts[parts.length - 3] ?? 0);
}

// ---- save streams: emulated (writeSaveStream) and the real file ----------------------------------------

interface Timed {
  samplesS: number[];
  medianS: number;
}

interface TimedChild extends Timed {
  rssKiB: (number | null)[];
  peakRssKiB: number | null;
}

interface SaveFigures {
  fileBytes: number;
  /** page-cache residency of the file after the warm-up (fincore), null when not measurable */
  cachedBytes: number | null;
  verdict: string;
  /** cat FILE > /dev/null */
  cat: Timed;
  /** audit FILE --system-map MAP --json --jobs 2 */
  audit: TimedChild;
  /** the parse child: wall time (samplesS) and openStream + close timed inside it (inChild*) */
  parse: TimedChild & {
    inChildSamplesS: number[];
    inChildMedianS: number;
    /** file MiB ÷ inChildMedianS */
    mibPerS: number;
    records: number;
    pageDataRecords: number;
    pfns: number;
    withData: number;
  };
  /** Xen's verify-stream-v2 -f xl -i FILE */
  verify: (Timed & { reps: number }) | { unavailable: string };
}

interface StreamResult {
  /** the size asked for (DEFAULT_STREAM_SIZES or --stream-sizes) */
  requestedGiB: number;
  /** the size measured: requestedGiB, STREAM_FALLBACK_GiB, or null when skipped */
  sizeGiB: number | null;
  error: string | null;
  /** why the requested size was replaced or skipped */
  note: string | null;
  emulateS?: number;
  writeS?: number;
  benchRssAfterWriteKiB?: number;
  save?: { maxPfn: number; pagesWithData: number; xtab: number; pageTables: number; pageDataRecords: number; bytes: number };
  figures?: SaveFigures;
}

interface RealResult {
  error: string | null;
  source: string;
  systemMap: string;
  decompressS?: number;
  figures?: SaveFigures;
}

/** The stream-parse child: openStream + close of argv[2], timed inside the child; one JSON line on stdout. */
function parseChildSource(): string {
  return `import { openStream } from ${JSON.stringify(pathToFileURL(STREAM_MODULE).href)};
const t0 = performance.now();
const img = openStream(process.argv[2]);
const t1 = performance.now();
img.close();
const t2 = performance.now();
const c = img.counts;
process.stdout.write(JSON.stringify({ openS: (t1 - t0) / 1000, totalS: (t2 - t0) / 1000, records: c.records, pageDataRecords: c.pageDataRecords, pfns: c.pfns, withData: c.withData }) + '\\n');
`;
}

interface ParseOut {
  openS: number;
  totalS: number;
  records: number;
  pageDataRecords: number;
  pfns: number;
  withData: number;
}

function checkParse(r: ChildResult, what: string): ParseOut {
  if (r.signal !== null || r.code !== 0) throw new Error(`${what}: ${r.signal !== null ? `killed by ${r.signal}` : `exit status ${r.code}`}\n${r.stderr.trim()}`);
  try {
    return JSON.parse(r.stdout) as ParseOut;
  } catch (e) {
    throw new Error(`${what}: stdout is not JSON (${(e as Error).message}): ${r.stdout.slice(0, 200)}`);
  }
}

type Verifier = { root: string } | { unavailable: string };
let verifierCache: Verifier | null = null;

/** Xen's verify-stream-v2 from Debian's xen-utils-4.17 (scripts/get-xen-verifier.sh: cached, else apt-get download). */
function getVerifier(): Verifier {
  if (verifierCache) return verifierCache;
  const r = spawnSync('bash', [VERIFIER_SCRIPT], { encoding: 'utf8', timeout: 300_000 });
  const root = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  if (r.status === 0 && root && fs.existsSync(path.join(root, VERIFIER_BIN))) verifierCache = { root };
  else {
    const why = (r.stderr ?? '').trim().split('\n').slice(-2).join(' | ');
    verifierCache = { unavailable: `scripts/get-xen-verifier.sh exit ${r.status ?? r.signal}${r.error ? ` (${r.error.message})` : ''}${why ? `: ${why}` : ''}` };
  }
  return verifierCache;
}

/** Bytes of the file in the page cache (util-linux fincore), null when fincore is missing or fails. */
function cachedBytes(file: string): number | null {
  const r = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const v = Number((r.stdout ?? '').trim());
  return Number.isFinite(v) ? v : null;
}

function freeBytes(dir: string): number {
  const st = fs.statfsSync(dir);
  return st.bavail * st.bsize;
}

/** Disk a stream of a sizeGiB guest needs: every RAM page with data, plus pfn arrays and headers (< 1 %). */
function streamNeedBytes(sizeGiB: number): number {
  return Math.ceil(sizeGiB * GiB * 1.01) + 64 * MiB;
}

function streamFits(sizeGiB: number, dir: string): boolean {
  return freeBytes(dir) - streamNeedBytes(sizeGiB) >= DISK_RESERVE_BYTES;
}

function timedChild(): TimedChild {
  return { samplesS: [], medianS: NaN, rssKiB: [], peakRssKiB: null };
}

function settle(t: TimedChild): void {
  t.medianS = median(t.samplesS);
  const known = t.rssKiB.filter((v): v is number => v !== null);
  t.peakRssKiB = known.length ? Math.max(...known) : null;
}

/**
 * The figures of one save file: warm-up (cat, audit, parse), then --reps interleaved rounds of cat, audit
 * and the parse child, then Xen's verifier (--reps times up to VERIFY_ALL_REPS_MAX_BYTES, else once).
 */
async function measureSave(
  label: string,
  file: string,
  mapFile: string,
  opts: Options,
  runner: Runner,
  parseScript: string,
  profileDir: string | null,
): Promise<{ figures: SaveFigures; profile: ProfileRun | null }> {
  const fileBytes = fs.statSync(file).size;
  const auditArgs = [CLI, 'audit', file, '--system-map', mapFile, '--json', '--jobs', '2'];
  // a file larger than RAM cannot be warmed: its cat and audit runs read from disk (the cached % column says how much)
  const warmable = fileBytes < os.totalmem();
  log(`${label}: warm-up (${warmable ? 'cat, ' : ''}audit, parse)`);
  if (warmable) checkCat(await runner.run('cat', [file], { stdoutFile: '/dev/null', measureRss: false }), 'warm-up cat');
  const warm = checkAudit(await runner.run(process.execPath, auditArgs), 'warm-up audit');
  const reference = JSON.stringify(warm);
  checkParse(await runner.run(process.execPath, [parseScript, file], { measureRss: false }), 'warm-up parse');
  const cached = cachedBytes(file);
  const cat: number[] = [];
  const audit = timedChild();
  const parse = timedChild();
  const inChild: number[] = [];
  let counts: ParseOut | null = null;
  for (let rep = 0; rep < opts.reps; rep++) {
    log(`${label}: repetition ${rep + 1}/${opts.reps}`);
    const c = await runner.run('cat', [file], { stdoutFile: '/dev/null', measureRss: false });
    checkCat(c, 'cat');
    cat.push(c.wallS);
    const a = await runner.run(process.execPath, auditArgs);
    if (JSON.stringify(checkAudit(a, 'audit')) !== reference) throw new Error('audit printed a different report than the warm-up run');
    audit.samplesS.push(a.wallS);
    audit.rssKiB.push(a.rssKiB);
    const p = await runner.run(process.execPath, [parseScript, file]);
    counts = checkParse(p, 'parse child (openStream + close)');
    parse.samplesS.push(p.wallS);
    parse.rssKiB.push(p.rssKiB);
    inChild.push(counts.totalS);
  }
  settle(audit);
  settle(parse);
  const inChildMedianS = median(inChild);

  let verify: SaveFigures['verify'];
  const v = getVerifier();
  if ('unavailable' in v) {
    log(`${label}: Xen's verify-stream-v2 is not available (${v.unavailable}); its figure is left out`);
    verify = { unavailable: v.unavailable };
  } else {
    const reps = fileBytes <= VERIFY_ALL_REPS_MAX_BYTES ? opts.reps : 1;
    const samples: number[] = [];
    for (let i = 0; i < reps; i++) {
      log(`${label}: Xen's verify-stream-v2 -f xl (${i + 1}/${reps})`);
      const r = await runner.run('python3', [path.join(v.root, VERIFIER_BIN), '-f', 'xl', '-i', file], {
        stdoutFile: '/dev/null',
        measureRss: false,
        timeoutS: CHILD_TIMEOUT_S,
        env: { PYTHONPATH: path.join(v.root, VERIFIER_PYTHONPATH) },
      });
      if (r.timedOut) throw new Error(`verify-stream-v2 was killed after ${CHILD_TIMEOUT_S} s`);
      if (r.code !== 0) throw new Error(`Xen's verify-stream-v2 -f xl rejects the file (exit ${r.code ?? r.signal}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      samples.push(r.wallS);
    }
    verify = { samplesS: samples, medianS: median(samples), reps };
  }
  const profile = profileDir ? await profileChild(`audit --jobs 2 of ${label}`, auditArgs, runner, profileDir) : null;
  return {
    figures: {
      fileBytes,
      cachedBytes: cached,
      verdict: String(warm['verdict']),
      cat: { samplesS: cat, medianS: median(cat) },
      audit,
      parse: {
        ...parse,
        inChildSamplesS: inChild,
        inChildMedianS,
        mibPerS: fileBytes / MiB / inChildMedianS,
        records: counts!.records,
        pageDataRecords: counts!.pageDataRecords,
        pfns: counts!.pfns,
        withData: counts!.withData,
      },
      verify,
    },
    profile,
  };
}

/** Emulate a linux-4.x dom0 of sizeGiB, write it as an `xl save` file with its System.map beside, measure, delete. */
async function benchStream(
  requestedGiB: number,
  sizeGiB: number,
  note: string | null,
  opts: Options,
  runner: Runner,
  tmp: string,
  parseScript: string,
  profiles: ProfileRun[],
): Promise<StreamResult> {
  const res: StreamResult = { requestedGiB, sizeGiB, error: null, note };
  const nrPages = sizeGiB * PAGES_PER_GiB;
  const dir = fs.mkdtempSync(path.join(tmp, `s${sizeGiB}-`));
  const file = path.join(dir, `linux-4.x-${sizeGiB}g.save`);
  const mapFile = file + '.map';
  const label = `${sizeGiB} GiB stream`;
  let stage = 'setup';
  try {
    const profile = findProfile(PROFILE_ID);
    if (!profile) throw new Error(`profile ${PROFILE_ID} is missing`);
    stage = 'emulate';
    log(`${label}: emulating ${PROFILE_ID} dom0, nr_pages = max_pages = 0x${nrPages.toString(16)}`);
    let t = performance.now();
    let guest: ReturnType<typeof emulate> | null = emulate({ profile, hostE820: parseE820(hostE820Text(sizeGiB), `host e820 for ${sizeGiB} GiB`), nrPages, maxPages: nrPages, seed: SEED });
    res.emulateS = (performance.now() - t) / 1000;
    stage = 'writeSaveStream';
    log(`${label}: emulated in ${f2(res.emulateS)} s; writing ${path.basename(file)} (~${f1(streamNeedBytes(sizeGiB) / GiB)} GiB; ${f1(freeBytes(dir) / GiB)} GiB free)`);
    t = performance.now();
    const sum = writeSaveStream(guest.image, file, { wrapper: 'xl', overwrite: true });
    res.writeS = (performance.now() - t) / 1000;
    fs.writeFileSync(mapFile, formatSystemMap(guest.image.symbols));
    res.benchRssAfterWriteKiB = process.resourceUsage().maxRSS;
    res.save = { maxPfn: sum.maxPfn, pagesWithData: sum.pagesWithData, xtab: sum.xtab, pageTables: sum.pageTables, pageDataRecords: sum.pageDataRecords, bytes: sum.bytes };
    guest = null; // let the emulated machine go before the timed runs
    log(`${label}: wrote ${f1(sum.bytes / MiB)} MiB in ${f2(res.writeS)} s (${f0(sum.bytes / MiB / res.writeS)} MiB/s)`);
    stage = 'measure';
    const profileDir = opts.cpuProf && !profiles.some((p) => p.label.includes('stream')) ? dir : null;
    const m = await measureSave(label, file, mapFile, opts, runner, parseScript, profileDir);
    res.figures = m.figures;
    if (m.profile) profiles.push(m.profile);
  } catch (e) {
    res.error = `${stage}: ${(e as Error).message}`;
    log(`${label}: FAILED: ${res.error}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true }); // always: a stream is as large as the guest
  }
  return res;
}

/** The real `xl save -c` file (Xen 4.17, Linux 6.1 domU), decompressed into the temp dir with its System.map. */
async function benchReal(opts: Options, runner: Runner, tmp: string, parseScript: string, profiles: ProfileRun[]): Promise<RealResult> {
  const res: RealResult = { error: null, source: path.relative(ROOT, REAL_SAVE_GZ), systemMap: path.relative(ROOT, REAL_MAP_GZ) };
  const dir = fs.mkdtempSync(path.join(tmp, 'real-'));
  const file = path.join(dir, 'pvplain.save');
  const mapFile = path.join(dir, 'System.map-6.1.0-56-amd64');
  let stage = 'decompress';
  try {
    log(`real save file: decompressing ${res.source} and ${res.systemMap}`);
    const t = performance.now();
    await pipeline(fs.createReadStream(REAL_SAVE_GZ), zlib.createGunzip(), fs.createWriteStream(file));
    fs.writeFileSync(mapFile, zlib.gunzipSync(fs.readFileSync(REAL_MAP_GZ)));
    res.decompressS = (performance.now() - t) / 1000;
    stage = 'measure';
    const m = await measureSave('real save file', file, mapFile, opts, runner, parseScript, opts.cpuProf ? dir : null);
    res.figures = m.figures;
    if (m.profile) profiles.push(m.profile);
  } catch (e) {
    res.error = `${stage}: ${(e as Error).message}`;
    log(`real save file: FAILED: ${res.error}`);
  } finally {
    if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
  return res;
}

// ---- scan corpus ----------------------------------------------------------------------------------

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
  /** one `audit FILE --json --jobs 2` child */
  cliS: number;
  copies: number;
}

interface CorpusResult {
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
}

async function benchCorpus(opts: Options, runner: Runner, tmp: string): Promise<CorpusResult> {
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
      for (let rep = -1; rep < opts.reps; rep++) {
        const img = openImage(s.file);
        try {
          const t = performance.now();
          const out = await auditImage(img, { jobs: 0 });
          if (rep >= 0) samples.push((performance.now() - t) / 1000);
          verdict = out.report.verdict;
          guestMiB = img.bootFacts ? (img.bootFacts.nrPages * PAGE_SIZE) / MiB : null;
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
    log(`corpus: scan ${n} files --json --jobs ${CORPUS_JOBS}`);
    const r = await runner.run(process.execPath, [CLI, 'scan', scanDir, '--json', '--jobs', String(CORPUS_JOBS)], { timeoutS: CHILD_TIMEOUT_S });
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

// ---- report -------------------------------------------------------------------------------------

interface Goal {
  section: Section;
  goal: string;
  subject: string;
  value: string;
  /** null: informational row (no goal to pass or miss) */
  pass: boolean | null;
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

const mib = (kib: number | null | undefined): string => (kib === null || kib === undefined ? '-' : f0(kib / 1024));

function rssGoal(section: Section, subject: string, kib: number | null | undefined, what = 'peak RSS'): Goal {
  if (kib === null || kib === undefined) return { section, goal: `${what} ≤ ${GOAL_PEAK_RSS_MIB} MiB`, subject, value: 'not measured', pass: false };
  const m = kib / 1024;
  return { section, goal: `${what} ≤ ${GOAL_PEAK_RSS_MIB} MiB`, subject, value: `${f0(m)} MiB`, pass: m <= GOAL_PEAK_RSS_MIB };
}

interface Scaling {
  from: number;
  to: number;
  guestRatio: number;
  fileRatio: number;
  cat: number;
  auditJ1: number;
  auditJ2: number;
  emulate: number;
  inProcess: number;
  engineJ1: number;
  engineJ2: number;
}

function scalingOf(a: SizeResult, b: SizeResult): Scaling {
  return {
    from: a.sizeGiB,
    to: b.sizeGiB,
    guestRatio: b.sizeGiB / a.sizeGiB,
    fileRatio: b.fileBytes! / a.fileBytes!,
    cat: b.cat!.medianS / a.cat!.medianS,
    auditJ1: b.audit!['j1']!.medianS / a.audit!['j1']!.medianS,
    auditJ2: b.audit!['j2']!.medianS / a.audit!['j2']!.medianS,
    emulate: b.emulateS! / a.emulateS!,
    inProcess: b.inProcess!.medianS / a.inProcess!.medianS,
    engineJ1: b.engine!['j1']!.medianS / a.engine!['j1']!.medianS,
    engineJ2: b.engine!['j2']!.medianS / a.engine!['j2']!.medianS,
  };
}

/** Cells: cat s, j1 s, j2 s, j1/cat, j2/cat (ratios with `ratio`), j2 speed-up; '-' where a figure is missing. */
function againstCat(cat: { medianS: number } | undefined, j1: { medianS: number } | undefined, j2: { medianS: number } | undefined, ratio: (v: number) => string): string[] {
  return [
    f3(cat?.medianS),
    f3(j1?.medianS),
    f3(j2?.medianS),
    cat && j1 ? ratio(j1.medianS / cat.medianS) : '-',
    cat && j2 ? ratio(j2.medianS / cat.medianS) : '-',
    j1 && j2 ? f2(j1.medianS / j2.medianS) : '-',
  ];
}

function reportP2ms(results: SizeResult[]): { text: string; goals: Goal[]; scaling: Scaling[]; overall: Scaling | null } {
  const ok = results.filter((r) => r.error === null);
  let s = '';
  s += `\n== 1. .p2ms snapshots of emulated ${PROFILE_ID} dom0 guests (nr_pages = max_pages = guest size) ==\n\n`;
  s += 'Emulation (in process, library)\n';
  s += table(
    ['guest GiB', 'emulate s', 'write s', 'frames', 'file MiB', 'bench RSS MiB', 'verdict'],
    results.map((r) => [
      String(r.sizeGiB),
      f2(r.emulateS),
      f2(r.writeS),
      r.frames?.toString() ?? '-',
      f1(r.fileBytes !== undefined ? r.fileBytes / MiB : undefined),
      mib(r.benchRssAfterEmulateKiB),
      r.error ? 'FAILED' : r.verdict ?? '-',
    ]),
  );
  s += '\nAudit (child process: node dist/src/cli.js audit FILE --json --jobs N) vs cat FILE > /dev/null\n';
  s += table(
    ['guest GiB', 'file MiB', 'cat s', 'audit j1 s', 'audit j2 s', 'audit/cat j1', 'audit/cat j2', 'j2 speed-up', 'peak RSS MiB'],
    results.map((r) => {
      const j1 = r.audit?.['j1'];
      const j2 = r.audit?.['j2'];
      const rss = [j1?.peakRssKiB, j2?.peakRssKiB].filter((v): v is number => typeof v === 'number');
      return [String(r.sizeGiB), f1(r.fileBytes !== undefined ? r.fileBytes / MiB : undefined), ...againstCat(r.cat, j1, j2, f1), rss.length ? mib(Math.max(...rss)) : '-'];
    }),
  );
  s += '\nEngine (in this process, warm worker pool of N threads: openImage + auditImage + close; no node start-up, no worker boot)\n';
  s += table(
    ['guest GiB', 'cat s', 'engine j1 s', 'engine j2 s', 'engine/cat j1', 'engine/cat j2', 'j2 speed-up', 'child j2 − engine j2 s'],
    results.map((r) => {
      const j1 = r.engine?.['j1'];
      const j2 = r.engine?.['j2'];
      const child = r.audit?.['j2'];
      return [String(r.sizeGiB), ...againstCat(r.cat, j1, j2, f2), child && j2 ? f3(child.medianS - j2.medianS) : '-'];
    }),
  );
  s += '\nOne thread: auditImage(img, {jobs: 0}) = walks + guest view + the shard reader on the main thread (batched reads, wasm flags) + report;\n';
  s += 'loop = auditInProcess alone on the same views (GuestImage.readFrame, JS scans: the reference path). leaves = audited 512-pfn leaves, page-backed = leaves with a guest leaf page\n';
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

  const scaling: Scaling[] = [];
  for (let i = 1; i < ok.length; i++) scaling.push(scalingOf(ok[i - 1]!, ok[i]!));
  const overall = ok.length >= 2 ? scalingOf(ok[0]!, ok[ok.length - 1]!) : null;
  if (scaling.length) {
    const rows = [...scaling];
    if (overall && ok.length > 2) rows.push(overall);
    s += '\nScaling: time(larger)/time(smaller), expected ≈ guest-size ratio for linear cost\n';
    s += table(
      ['sizes GiB', 'guest ratio', 'file ratio', 'audit j1', 'audit j2', 'engine j1', 'engine j2', 'cat', 'in-process', 'emulate'],
      rows.map((x) => [`${x.to}/${x.from}`, f2(x.guestRatio), f2(x.fileRatio), f2(x.auditJ1), f2(x.auditJ2), f2(x.engineJ1), f2(x.engineJ2), f2(x.cat), f2(x.inProcess), f2(x.emulate)]),
    );
    const lines: string[] = [];
    for (const [label, get] of [
      ['audit j1', (r: SizeResult) => r.audit!['j1']!.medianS],
      ['audit j2', (r: SizeResult) => r.audit!['j2']!.medianS],
      ['engine j1', (r: SizeResult) => r.engine!['j1']!.medianS],
      ['engine j2', (r: SizeResult) => r.engine!['j2']!.medianS],
      ['cat', (r: SizeResult) => r.cat!.medianS],
    ] as const) {
      const lf = fit(ok.map((r) => ({ x: r.sizeGiB, y: get(r) })));
      if (lf) lines.push(`  ${label.padEnd(9)} ≈ ${f3(lf.fixed)} s fixed + ${f3(lf.perUnit * 1000)} ms per guest GiB`);
    }
    if (lines.length) s += `Affine fit time = fixed + per-GiB · size (${ok.map((r) => r.sizeGiB).join(', ')} GiB):\n${lines.join('\n')}\n`;
  }

  const goals: Goal[] = [];
  // each goal twice: the CLI child (what one `p2m-audit audit FILE` costs, node start-up included) and
  // the engine (what a file costs inside a running process such as scan)
  const ways = [
    ['child', (r: SizeResult, j: string) => r.audit![j]!.medianS],
    ['engine', (r: SizeResult, j: string) => r.engine![j]!.medianS],
  ] as const;
  for (const [way, t] of ways) {
    for (const r of ok) {
      const ratio = t(r, 'j2') / r.cat!.medianS;
      goals.push({ section: 'p2ms', goal: `audit/cat (j2, ${way}) ≤ ${GOAL_AUDIT_OVER_CAT}`, subject: `${r.sizeGiB} GiB`, value: f2(ratio), pass: ratio <= GOAL_AUDIT_OVER_CAT });
    }
  }
  for (const [way, t] of ways) {
    for (const r of ok) {
      const sp = t(r, 'j1') / t(r, 'j2');
      goals.push({ section: 'p2ms', goal: `2 workers ≥ ${GOAL_SPEEDUP_J2}× one (${way})`, subject: `${r.sizeGiB} GiB`, value: `${f2(sp)}×`, pass: sp >= GOAL_SPEEDUP_J2 });
    }
  }
  for (const r of ok) {
    const rss = [r.audit!['j1']!.peakRssKiB, r.audit!['j2']!.peakRssKiB].filter((v): v is number => v !== null);
    goals.push(rssGoal('p2ms', `${r.sizeGiB} GiB`, rss.length ? Math.max(...rss) : null));
  }
  for (const x of scaling) {
    goals.push({
      section: 'p2ms',
      goal: `cost linear in guest size (j2 ratio ≤ ${GOAL_LINEAR_SLACK} × guest ratio)`,
      subject: `${x.to}/${x.from} GiB`,
      value: `${f2(x.auditJ2)} (guest ${f2(x.guestRatio)}, file ${f2(x.fileRatio)})`,
      pass: x.auditJ2 <= GOAL_LINEAR_SLACK * x.guestRatio,
    });
  }
  if (overall) {
    const lo = overall.guestRatio * (1 - GOAL_SCALING_TOLERANCE);
    const hi = overall.guestRatio * (1 + GOAL_SCALING_TOLERANCE);
    for (const [j, v] of [
      ['j1, child', overall.auditJ1],
      ['j2, child', overall.auditJ2],
      ['j1, engine', overall.engineJ1],
      ['j2, engine', overall.engineJ2],
    ] as const) {
      goals.push({
        section: 'p2ms',
        goal: `time(${overall.to})/time(${overall.from}) (${j}) within ${f0(overall.guestRatio)} ± ${f0(GOAL_SCALING_TOLERANCE * 100)} % (${f1(lo)}–${f1(hi)})`,
        subject: `${overall.to}/${overall.from} GiB`,
        value: f2(v),
        pass: v >= lo && v <= hi,
      });
    }
  }
  return { text: s, goals, scaling, overall };
}

/** One row of a save-file table. */
const SAVE_HEAD = ['file MiB', 'cached %', 'parse s', 'parse MiB/s', 'parse child s', 'cat s', 'audit s', 'audit/cat', 'verify s', 'verify/cat', 'audit RSS MiB', 'parse RSS MiB', 'verdict'];

/** One row of a save-file table (SAVE_HEAD after the `first` cells). */
function saveRow(first: string[], f: SaveFigures | undefined, failed: boolean): string[] {
  if (!f) {
    const cells = Array<string>(SAVE_HEAD.length).fill('-');
    if (failed) cells[cells.length - 1] = 'FAILED';
    return [...first, ...cells];
  }
  const v = 'medianS' in f.verify ? f.verify : null;
  return [
    ...first,
    f1(f.fileBytes / MiB),
    f.cachedBytes === null ? '-' : f0((100 * f.cachedBytes) / f.fileBytes),
    f3(f.parse.inChildMedianS),
    f0(f.parse.mibPerS),
    f3(f.parse.medianS),
    f3(f.cat.medianS),
    f3(f.audit.medianS),
    f2(f.audit.medianS / f.cat.medianS),
    v ? f3(v.medianS) : 'n/a',
    v ? f2(v.medianS / f.cat.medianS) : '-',
    mib(f.audit.peakRssKiB),
    mib(f.parse.peakRssKiB),
    f.verdict,
  ];
}

function saveLegend(reps: number): string {
  return (
    `children, warm-up run first (no warm-up cat for files larger than RAM), median of ${reps}. parse = openStream + close timed inside a child (MiB/s of file size), parse child = its wall time;\n` +
    `audit = node dist/src/cli.js audit FILE --system-map MAP --json --jobs 2; cat = cat FILE > /dev/null; verify = Xen 4.17's verify-stream-v2 -f xl -i FILE\n` +
    `(python3, Debian xen-utils-4.17; once on files over ${f0(VERIFY_ALL_REPS_MAX_BYTES / GiB)} GiB); cached % = share of the file in the page cache after the warm-up (fincore)\n`
  );
}

function reportStreams(streams: StreamResult[], reps: number): { text: string; goals: Goal[] } {
  let s = `\n== 2. Emulated xl save streams (${PROFILE_ID} dom0, writeSaveStream wrapper 'xl', System.map beside) ==\n\n`;
  for (const r of streams) if (r.note) s += `note: ${r.note}\n`;
  const run = streams.filter((r) => r.sizeGiB !== null);
  if (run.length) {
    s += (streams.some((r) => r.note) ? '\n' : '') + 'Writing (in process, library; every stream is deleted right after it is measured)\n';
    s += table(
      ['guest GiB', 'emulate s', 'write s', 'write MiB/s', 'PAGE_DATA recs', 'pages w/ data', 'XTAB', 'page tables', 'bench RSS MiB'],
      run.map((r) => [
        String(r.sizeGiB),
        f2(r.emulateS),
        f2(r.writeS),
        r.save && r.writeS ? f0(r.save.bytes / MiB / r.writeS) : '-',
        r.save?.pageDataRecords.toString() ?? '-',
        r.save?.pagesWithData.toString() ?? '-',
        r.save?.xtab.toString() ?? '-',
        r.save?.pageTables.toString() ?? '-',
        mib(r.benchRssAfterWriteKiB),
      ]),
    );
    s += '\nParse, audit, cat, verify: ' + saveLegend(reps);
    s += table(['guest GiB', ...SAVE_HEAD], run.map((r) => saveRow([String(r.sizeGiB)], r.figures, r.error !== null)));
  }
  const goals: Goal[] = [];
  for (const r of streams) {
    if (r.sizeGiB === null) {
      goals.push({ section: 'stream', goal: `stream audit/cat ≤ ${GOAL_AUDIT_OVER_CAT}`, subject: `${r.requestedGiB} GiB`, value: 'skipped (disk)', pass: null });
      continue;
    }
    const f = r.figures;
    if (!f) continue;
    const ratio = f.audit.medianS / f.cat.medianS;
    goals.push({ section: 'stream', goal: `stream audit/cat ≤ ${GOAL_AUDIT_OVER_CAT}`, subject: `${r.sizeGiB} GiB`, value: f2(ratio), pass: ratio <= GOAL_AUDIT_OVER_CAT });
    goals.push(rssGoal('stream', `${r.sizeGiB} GiB`, f.audit.peakRssKiB, 'stream audit peak RSS'));
    goals.push({ section: 'stream', goal: 'stream parse throughput (info)', subject: `${r.sizeGiB} GiB`, value: `${f0(f.parse.mibPerS)} MiB/s`, pass: null });
    if ('medianS' in f.verify) {
      goals.push({ section: 'stream', goal: "audit/Xen's verify-stream-v2 (info)", subject: `${r.sizeGiB} GiB`, value: f2(f.audit.medianS / f.verify.medianS), pass: null });
    }
  }
  return { text: s, goals };
}

function reportReal(real: RealResult, reps: number): { text: string; goals: Goal[] } {
  let s = `\n== 3. The real save file: ${real.source} (xl save -c, Xen 4.17, Linux 6.1 domU), System.map ${real.systemMap} ==\n\n`;
  s += 'decompressed into the temp dir' + (real.decompressS !== undefined ? ` (${f2(real.decompressS)} s)` : '') + '; ' + saveLegend(reps);
  const f = real.figures;
  s += table(['guest MiB', ...SAVE_HEAD], [saveRow([f ? f1((f.parse.withData * PAGE_SIZE) / MiB) : '-'], f, real.error !== null)]);
  const goals: Goal[] = [];
  if (f) {
    const ratio = f.audit.medianS / f.cat.medianS;
    goals.push({ section: 'real', goal: `audit/cat ≤ ${GOAL_AUDIT_OVER_CAT} (the stream goal)`, subject: 'pvplain.save', value: f2(ratio), pass: ratio <= GOAL_AUDIT_OVER_CAT });
    goals.push(rssGoal('real', 'pvplain.save', f.audit.peakRssKiB, 'audit peak RSS'));
  }
  return { text: s, goals };
}

function reportCorpus(c: CorpusResult, reps: number): { text: string; goals: Goal[] } {
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
    if (goals.length) {
      text += '\n== Goals (report only: a MISS does not change the exit status; info rows have no goal) ==\n';
      text += table(['section', 'goal', 'for', 'measured', 'result'], goals.map((g) => [g.section, g.goal, g.subject, g.value, g.pass === null ? 'info' : g.pass ? 'PASS' : 'MISS']), 3);
    }
    const failures: string[] = [];
    for (const r of results) if (r.error) failures.push(`.p2ms ${r.sizeGiB} GiB: ${r.error}`);
    for (const r of streams) if (r.error) failures.push(`stream ${r.sizeGiB} GiB: ${r.error}`);
    if (real?.error) failures.push(`real save file: ${real.error}`);
    if (corpus?.error) failures.push(`corpus: ${corpus.error}`);
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
