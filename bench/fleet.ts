// Section 5 (fleet): the scan corpus's size (--corpus N, default 2000 files: hard links to the committed
// corpora/scenarios/*.p2ms, spread over 20 directories) through `fleet` on a private redis-server (free
// loopback port, no persistence), with 1 and 2 worker processes of one audit thread each, against `scan`
// of the same corpus with --jobs 1 and 2 (the same threads doing the same audits). Per run: files/s, the
// queue's overhead per file (fleet s/file − scan s/file at the same thread count), the worker processes'
// peak RSS (VmHWM from /proc before they are stopped), and Redis's own count of commands per file
// (INFO commandstats after CONFIG RESETSTAT) — the figure docs/fleet.md's capacity estimate is built on.
// On a shared 2-core machine wall time follows the load; CPU time is the steady figure, so the overhead
// is also given in CPU: (workers' CPU + redis-server's CPU) / file − scan's CPU / file (scan's from
// /usr/bin/time, the workers' from /proc/PID/stat, Redis's from INFO cpu).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { linkBenchCorpus } from '../src/scan/bench-corpus.js';
import { CLI, MiB, ROOT, f0, f1, f2, log, table } from './common.js';
import type { Goal } from './goals.js';
import type { Options } from './options.js';

const WORKER_COUNTS = [1, 2] as const;
const POLL_MS = 100;
/** A run that has not finished after this many polls is reported as failed (bounded, never a hang). */
const MAX_POLLS = 36_000;
/** The goals: queue overhead per file and a worker's peak RSS. */
const GOAL_OVERHEAD_MS = 2;
const GOAL_WORKER_RSS_MIB = 512;
const KIB = 1024;
/** /proc/PID/stat counts CPU in clock ticks (sysconf(_SC_CLK_TCK), 100 on Linux). */
const CLOCK_TICKS = 100;
const TIME_BIN = '/usr/bin/time';

export interface FleetRun {
  workers: number;
  submitS: number;
  /** first job started → last job finished (job timestamps) */
  processS: number;
  /** workers started → every file done, as seen by polling */
  wallS: number;
  filesPerS: number;
  overheadMsPerFile: number | null;
  peakWorkerRssKiB: number | null;
  /** CPU ms per file: all worker processes, and redis-server */
  workerCpuMsPerFile: number | null;
  redisCpuMsPerFile: number;
  /** (worker + redis CPU) / file − scan CPU / file at the same thread count */
  cpuOverheadMsPerFile: number | null;
  redisCallsPerFile: number;
  redisScriptCallsPerFile: number;
  audited: number;
}

export interface FleetResult {
  files: number;
  corpusMiB: number;
  scan: { jobs: number; wallS: number; cpuMsPerFile: number | null }[];
  runs: FleetRun[];
  error: string | null;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function startRedis(port: number, dir: string): Promise<ChildProcess> {
  const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--logfile', '', '--maxmemory-policy', 'noeviction'], { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    p.once('error', reject);
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) resolve(p);
    });
    p.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out.slice(-300)}`)));
  });
}

/** Peak RSS (VmHWM) of a live process, KiB; null where /proc has none. */
function peakRssKiB(pid: number | undefined): number | null {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

interface StatusJson {
  running: number;
  waiting: number;
  summary: { audited: number };
}

function status(url: string, prefix: string): StatusJson {
  const r = spawnSync(process.execPath, [CLI, 'fleet', 'status', '--queue', url, '--prefix', prefix, '--name', 'bench', '--json'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`fleet status: exit ${r.status}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as StatusJson;
}

/** CPU seconds (user + system, every thread) of a live process; null where /proc has none. */
function cpuSeconds(pid: number | undefined): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 (state) on
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS; // utime, stime (fields 14, 15)
  } catch {
    return null;
  }
}

async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (k: string): number => Number(new RegExp(`^${k}:([0-9.]+)`, 'm').exec(info)?.[1] ?? 0);
  return field('used_cpu_user') + field('used_cpu_sys');
}

/** Run a child under /usr/bin/time; its user + system CPU seconds (null without /usr/bin/time) and exit status. */
function timedChild(args: string[]): { cpuS: number | null; status: number | null } {
  if (!fs.existsSync(TIME_BIN)) return { cpuS: null, status: spawnSync(process.execPath, args, { stdio: 'ignore' }).status };
  const r = spawnSync(TIME_BIN, ['-f', 'cpu %U %S', process.execPath, ...args], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const m = /cpu ([0-9.]+) ([0-9.]+)\s*$/.exec(r.stderr);
  return { cpuS: m ? Number(m[1]) + Number(m[2]) : null, status: r.status };
}

async function commandCalls(redis: Redis): Promise<{ all: number; scripts: number }> {
  const info = await redis.info('commandstats');
  let all = 0;
  let scripts = 0;
  for (const m of info.matchAll(/^cmdstat_([a-z|_-]+):calls=(\d+)/gm)) {
    const n = Number(m[2]);
    if (m[1] === 'info' || m[1] === 'config|resetstat') continue; // the bench's own
    all += n;
    if (m[1] === 'evalsha' || m[1] === 'eval') scripts += n;
  }
  return { all, scripts };
}

async function fleetRun(url: string, redis: Redis, corpus: string, files: number, workers: number): Promise<Omit<FleetRun, 'overheadMsPerFile' | 'cpuOverheadMsPerFile'>> {
  const prefix = `bench-w${workers}`;
  await redis.config('RESETSTAT');
  const redisCpu0 = await redisCpuSeconds(redis);
  let t = performance.now();
  const sub = spawnSync(process.execPath, [CLI, 'fleet', 'submit', corpus, '--queue', url, '--prefix', prefix, '--name', 'bench'], { encoding: 'utf8' });
  if (sub.status !== 0) throw new Error(`fleet submit: exit ${sub.status}: ${sub.stderr.trim()}`);
  const submitS = (performance.now() - t) / 1000;
  t = performance.now();
  const procs = Array.from({ length: workers }, () => spawn(process.execPath, [CLI, 'fleet', 'worker', '--queue', url, '--prefix', prefix, '--jobs', '1'], { stdio: ['ignore', 'ignore', 'pipe'] }));
  try {
    // poll Redis's own counters (2 commands a poll, subtracted below), not `fleet status`, which reads every job
    const done = `${prefix}:audit:completed`;
    const failed = `${prefix}:audit:failed`;
    let polls = 0;
    for (;;) {
      polls++;
      const [c, f] = await Promise.all([redis.zcard(done), redis.zcard(failed)]);
      if (c + f >= files + 1) break; // every file job and the corpus's parent job
      if (polls >= MAX_POLLS) throw new Error(`fleet with ${workers} workers did not finish in ${MAX_POLLS} polls`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    const wallS = (performance.now() - t) / 1000;
    const rss = procs.map((p) => peakRssKiB(p.pid)).filter((x): x is number => x !== null);
    const cpus = procs.map((p) => cpuSeconds(p.pid));
    const workerCpuS = cpus.every((x) => x !== null) ? cpus.reduce((a, b) => a! + b!, 0)! : null;
    const redisCpuS = (await redisCpuSeconds(redis)) - redisCpu0;
    const calls = await commandCalls(redis);
    calls.all -= 2 * polls;
    const st = status(url, prefix);
    // the processing window from the jobs' own timestamps (the polling's granularity and worker start-up excluded)
    const keys = await redis.keys(`${prefix}:audit:f-*`);
    let first = Infinity;
    let last = 0;
    for (let i = 0; i < keys.length; i += 500) {
      const p = redis.pipeline();
      for (const k of keys.slice(i, i + 500)) p.hmget(k, 'processedOn', 'finishedOn');
      for (const [, v] of (await p.exec()) ?? []) {
        const [a, b] = (v as (string | null)[]).map(Number);
        if (a) first = Math.min(first, a);
        if (b) last = Math.max(last, b);
      }
    }
    const processS = (last - first) / 1000;
    return {
      workers,
      submitS,
      processS,
      wallS,
      filesPerS: files / processS,
      peakWorkerRssKiB: rss.length ? Math.max(...rss) : null,
      workerCpuMsPerFile: workerCpuS === null ? null : (workerCpuS * 1000) / files,
      redisCpuMsPerFile: (redisCpuS * 1000) / files,
      redisCallsPerFile: calls.all / files,
      redisScriptCallsPerFile: calls.scripts / files,
      audited: st.summary.audited,
    };
  } finally {
    await Promise.all(procs.map((p) => new Promise<void>((r) => (p.exitCode !== null ? r() : (p.once('exit', () => r()), p.kill('SIGTERM'))))));
  }
}

export async function benchFleet(opts: Options, tmp: string): Promise<FleetResult> {
  const files = opts.corpusFiles;
  const res: FleetResult = { files, corpusMiB: 0, scan: [], runs: [], error: null };
  const dir = path.join(tmp, 'fleet');
  const corpus = path.join(dir, 'corpus');
  let server: ChildProcess | null = null;
  let redis: Redis | null = null;
  try {
    const bytes = linkBenchCorpus(path.join(ROOT, 'corpora/scenarios'), corpus, files);
    res.corpusMiB = bytes / MiB;
    for (const jobs of WORKER_COUNTS) {
      log(`fleet: scan ${files} files --jobs ${jobs} (baseline)`);
      const t = performance.now();
      const r = timedChild([CLI, 'scan', corpus, '--json', '--jobs', String(jobs)]);
      if (r.status !== 0 && r.status !== 1) throw new Error(`scan --jobs ${jobs}: exit ${r.status}`);
      res.scan.push({ jobs, wallS: (performance.now() - t) / 1000, cpuMsPerFile: r.cpuS === null ? null : (r.cpuS * 1000) / files });
    }
    const port = await freePort();
    fs.mkdirSync(path.join(dir, 'redis'));
    server = await startRedis(port, path.join(dir, 'redis'));
    const url = `redis://127.0.0.1:${port}`;
    redis = new Redis(url);
    for (const workers of WORKER_COUNTS) {
      log(`fleet: ${files} files through ${workers} worker process(es) of 1 thread`);
      const run = await fleetRun(url, redis, corpus, files, workers);
      const scan = res.scan.find((s) => s.jobs === workers)!;
      const cpuOverheadMsPerFile = run.workerCpuMsPerFile === null || scan.cpuMsPerFile === null ? null : run.workerCpuMsPerFile + run.redisCpuMsPerFile - scan.cpuMsPerFile;
      res.runs.push({ ...run, overheadMsPerFile: ((run.processS - scan.wallS) * 1000) / files, cpuOverheadMsPerFile });
    }
  } catch (e) {
    res.error = (e as Error).message;
    log(`fleet: ${res.error}`);
  } finally {
    redis?.disconnect();
    if (server && server.exitCode === null) {
      const s = server;
      await new Promise<void>((r) => {
        s.once('exit', () => r());
        s.kill('SIGTERM');
      });
    }
  }
  return res;
}

export function reportFleet(r: FleetResult): { text: string; goals: Goal[] } {
  let s = `\n== 5. Fleet: ${r.files} files (${f0(r.corpusMiB)} MiB) through BullMQ on a local redis-server vs scan of the same corpus ==\n\n`;
  s += table(
    ['workers × threads', 'scan s (same threads)', 'submit s', 'fleet s (jobs window)', 'fleet wall s', 'files/s', 'overhead ms/file', 'scan CPU ms/file', 'worker CPU ms/file', 'redis CPU ms/file', 'CPU overhead ms/file', 'worker peak RSS MiB', 'Redis cmds/file', 'scripts/file'],
    r.runs.map((x) => [
      `${x.workers} × 1`,
      f2(r.scan.find((y) => y.jobs === x.workers)?.wallS),
      f2(x.submitS),
      f2(x.processS),
      f2(x.wallS),
      f1(x.filesPerS),
      f2(x.overheadMsPerFile),
      f2(r.scan.find((y) => y.jobs === x.workers)?.cpuMsPerFile),
      f2(x.workerCpuMsPerFile),
      f2(x.redisCpuMsPerFile),
      f2(x.cpuOverheadMsPerFile),
      f0(x.peakWorkerRssKiB !== null ? x.peakWorkerRssKiB / KIB : null),
      f1(x.redisCallsPerFile),
      f1(x.redisScriptCallsPerFile),
    ]),
    1,
  );
  s += 'fleet s: first job started → last job finished (job timestamps); wall adds worker start-up and polling; overhead = (fleet s − scan s) / files;\n';
  s += 'CPU overhead = worker CPU + redis CPU − scan CPU, per file (the steady figure when the machine is shared; submit is not included)\n';
  s += 'Redis cmds/file: INFO commandstats calls over submit + processing (commands run inside Lua scripts included; the bench\'s own polling excluded) ÷ files\n';
  const goals: Goal[] = [];
  for (const x of r.runs) {
    goals.push({ section: 'fleet', goal: `queue overhead ≤ ${GOAL_OVERHEAD_MS} ms/file (wall)`, subject: `${x.workers} worker(s)`, value: `${f2(x.overheadMsPerFile)} ms`, pass: x.overheadMsPerFile !== null && x.overheadMsPerFile <= GOAL_OVERHEAD_MS });
    goals.push({ section: 'fleet', goal: `queue overhead ≤ ${GOAL_OVERHEAD_MS} ms/file (CPU)`, subject: `${x.workers} worker(s)`, value: `${f2(x.cpuOverheadMsPerFile)} ms`, pass: x.cpuOverheadMsPerFile !== null && x.cpuOverheadMsPerFile <= GOAL_OVERHEAD_MS });
    const rssMiB = x.peakWorkerRssKiB === null ? null : x.peakWorkerRssKiB / KIB;
    goals.push({ section: 'fleet', goal: `worker peak RSS ≤ ${GOAL_WORKER_RSS_MIB} MiB`, subject: `${x.workers} worker(s)`, value: rssMiB === null ? 'not measured' : `${f0(rssMiB)} MiB`, pass: rssMiB !== null && rssMiB <= GOAL_WORKER_RSS_MIB });
    goals.push({ section: 'fleet', goal: 'every file audited (info)', subject: `${x.workers} worker(s)`, value: `${x.audited} of ${r.files}`, pass: x.audited === r.files });
  }
  return { text: s, goals };
}
