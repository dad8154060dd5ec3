// Fleet scanning (src/fleet/, docs/fleet.md) against a real Redis (test/helpers/redis.ts starts Debian's
// redis-server on a free loopback port) and real worker processes (`node dist/src/cli.js fleet worker`).
// Expected values come from a second code path: `scan` (runScan) of the same corpus, and for the fault
// tests the hand-derived scenario table of test/scan.test.ts (corpora/scenarios/*.json expect blocks).
// Waiting is bounded by poll counts, never by a clock. Covers: 52 mixed files through two workers equal
// scan's results, each file once; a worker SIGKILLed mid-job (its job recovered by the other, nothing
// lost or doubled); resubmission (only new and changed files audited); files truncated or removed after
// submission (reported as changed, never audited); a Redis restart mid-run (with the append-only file);
// an unreachable server (exit 2); URL and version parsing.
// The workers run dist/: `npm test` builds first; by hand run `npx tsc -p tsconfig.json`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/common/errors.js';
import { writeSaveStream } from '../src/emulate/save-stream-writer.js';
import { writeXcCore } from '../src/emulate/dump-core-writer.js';
import { emulate } from '../src/emulate/kernel/boot.js';
import { findProfile } from '../src/emulate/kernel/profiles.js';
import { formatSystemMap } from '../src/formats/symbols.js';
import type { E820Entry } from '../src/inputs/e820.js';
import { connectFleet, MIN_REDIS_VERSION, parseQueueUrl, queueUrl, versionAtLeast, type FleetConnection } from '../src/fleet/connection.js';
import { readRun, runStatus, type RunView } from '../src/fleet/fleet-report.js';
import { runSubmit, shardCount, type SubmitOptions } from '../src/fleet/submit.js';
import { SCAN_SCHEMA, type ScanResult } from '../src/scan/results.js';
import { runScan } from '../src/scan/scan.js';
import { E820_RAM, PAGE_SIZE } from '../src/xen/abi.js';
import { freePort, startRedis, type RedisServer } from './helpers/redis.js';
import { SCENARIO_VERDICTS } from './helpers/scenario-verdicts.js';

const repo = path.resolve(__dirname, '..');
const cli = path.join(repo, 'dist/src/cli.js');
const scenarioDir = path.join(repo, 'corpora/scenarios');
const SCENARIOS = SCENARIO_VERDICTS;
const NAMES = Object.keys(SCENARIOS);
/** Poll interval and the most polls a wait may take (a bound by count, not by time). */
const POLL_MS = 200;
const MAX_POLLS = 1500;
/** Short locks for the stalled-job test: a dead worker's job is back in the queue after ~2 s. */
const FAST_LOCKS = ['--lock-ms', '2000', '--stalled-ms', '1000'];
/** Lines a worker prints per finished file job. */
const FILE_LINE = /^(CLEAN|WARN|FATAL|ERROR|FAILED|CHANGED) +\S/;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-fleet-'));
let redis: RedisServer;
const workers: ChildProcess[] = [];

function link(src: string, dst: string): void {
  fs.mkdirSync(path.dirname(dst), { recursive: true });
  try {
    fs.linkSync(src, dst);
  } catch {
    fs.copyFileSync(src, dst);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | null>): Promise<T> {
  for (let i = 0; i < MAX_POLLS; i++) {
    const v = await probe();
    if (v !== null) return v;
    await sleep(POLL_MS);
  }
  throw new Error(`gave up waiting (${MAX_POLLS} polls): ${what}`);
}

/** A fleet connection to the test's server under its own key prefix (each test its own deployment). */
function connect(prefix: string, url = redis.url): Promise<FleetConnection> {
  return connectFleet({ queue: url, prefix });
}

interface WorkerProc {
  proc: ChildProcess;
  lines: string[];
  stderr: string[];
  exited: Promise<{ code: number | null; signal: string | null }>;
}

function startWorker(prefix: string, extra: string[] = [], env: Record<string, string> = {}, url = redis.url): WorkerProc {
  const proc = spawn(process.execPath, [cli, 'fleet', 'worker', '--queue', url, '--prefix', prefix, '--jobs', '1', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  workers.push(proc);
  const w: WorkerProc = { proc, lines: [], stderr: [], exited: new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal }))) };
  const split = (into: string[]) => {
    let pending = '';
    return (d: Buffer): void => {
      pending += d.toString();
      const parts = pending.split('\n');
      pending = parts.pop()!;
      into.push(...parts);
    };
  };
  proc.stdout!.on('data', split(w.lines));
  proc.stderr!.on('data', split(w.stderr));
  return w;
}

const fileLines = (w: WorkerProc): string[] => w.lines.filter((l) => FILE_LINE.test(l));

async function stopWorker(w: WorkerProc): Promise<{ code: number | null; signal: string | null }> {
  w.proc.kill('SIGTERM');
  return w.exited;
}

/** The run once no file is running or waiting. */
async function finished(conn: FleetConnection, name: string): Promise<RunView> {
  return until(`${name} finished`, async () => {
    const r = await readRun(conn, name);
    const st = runStatus(r);
    return st.running + st.waiting === 0 ? r : null;
  });
}

function results(r: RunView): ScanResult[] {
  return r.views.map((v) => v.result!).filter((x) => x);
}

/** The fields fleet and scan must agree on (timing and attempt counts differ by nature). */
function comparable(r: Pick<ScanResult, 'file' | 'resolved' | 'size' | 'mtimeMs' | 'status' | 'format' | 'verdict' | 'exitCode' | 'fatalPages' | 'fatalMib' | 'reason'>) {
  return [r.file, r.resolved, r.size, r.mtimeMs, r.status, r.format, r.verdict, r.exitCode, r.fatalPages, r.fatalMib, r.reason];
}

beforeAll(async () => {
  if (!fs.existsSync(path.join(repo, 'dist/workers/fleet-processor.js'))) throw new Error('build first: npx tsc -p tsconfig.json');
  redis = await startRedis();
});

afterAll(async () => {
  for (const p of workers) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await redis?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('connection', () => {
  it.each([
    ['redis://queue-host:6379', { shown: 'redis://queue-host:6379', host: 'queue-host', port: 6379, db: 0, password: undefined, tls: false }],
    ['redis://:s%40cret@10.0.0.5', { shown: 'redis://10.0.0.5:6379', host: '10.0.0.5', port: 6379, db: 0, password: 's@cret', tls: false }],
    ['rediss://user:pw@q.example:6380/3', { shown: 'rediss://q.example:6380/3', host: 'q.example', port: 6380, db: 3, password: 'pw', tls: true }],
    ['redis://[::1]:7000', { shown: 'redis://[::1]:7000', host: '::1', port: 7000, db: 0, password: undefined, tls: false }],
  ])('parses %s (RFC 3986 authority; no password in what is shown)', (url, want) => {
    const a = parseQueueUrl(url);
    expect({ shown: a.shown, host: a.host, port: a.port, db: a.db, password: a.password, tls: a.tls }).toEqual(want);
  });

  it('rejects other schemes and paths; takes the URL from the option, then P2M_AUDIT_REDIS_URL, then REDIS_URL', () => {
    expect(() => parseQueueUrl('http://x:6379')).toThrow(InputError);
    expect(() => parseQueueUrl('redis://x:6379/queue')).toThrow(/database number/);
    expect(() => parseQueueUrl('redis://:secret@x:zz')).toThrow(/:\*\*\*@/); // the password is never echoed
    expect(queueUrl('redis://a', { REDIS_URL: 'redis://c' })).toBe('redis://a');
    expect(queueUrl(undefined, { P2M_AUDIT_REDIS_URL: 'redis://b', REDIS_URL: 'redis://c' })).toBe('redis://b');
    expect(queueUrl(undefined, { REDIS_URL: 'redis://c' })).toBe('redis://c');
    expect(() => queueUrl(undefined, {})).toThrow(InputError);
  });

  it.each([
    ['7.0.15', true],
    ['6.2.0', true],
    ['6.2', true],
    ['6.0.16', false],
    ['5.0.14', false],
    ['10.0.0', true],
  ])('Redis %s meets BullMQ minimum 6.2.0: %s', (v, ok) => {
    expect(MIN_REDIS_VERSION).toBe('6.2.0');
    expect(versionAtLeast(v, MIN_REDIS_VERSION)).toBe(ok);
  });

  it('an unreachable server is one line on stderr and exit 2 (the probe gives up after its connect timeout)', async () => {
    const closed = await freePort(); // nothing listens there
    const r = spawnSync(process.execPath, [cli, 'fleet', 'status', '--queue', `redis://127.0.0.1:${closed}`, '--name', 'x'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(new RegExp(`redis://127\\.0\\.0\\.1:${closed}: cannot connect to Redis \\(.*ECONNREFUSED`));
    const bad = spawnSync(process.execPath, [cli, 'fleet', 'results', '--queue', 'http://h', '--name', 'x'], { encoding: 'utf8' });
    expect([bad.status, bad.stderr.trim().split('\n').length]).toEqual([2, 1]);
  });

  it('a corpus the queue does not know is an input error', async () => {
    const conn = await connect('unknown');
    await expect(readRun(conn, 'never-submitted')).rejects.toThrow(/no corpus named "never-submitted"/);
  });

  it('splits files from --shard-mib up into a multiple of 4 shard jobs', () => {
    const MiB = 2 ** 20;
    expect([shardCount(4 * MiB - 1, 4), shardCount(4 * MiB, 4), shardCount(9 * MiB, 4), shardCount(4096 * MiB, 4)]).toEqual([0, 4, 4, 64]);
  });
});

describe('a mixed corpus through two workers equals scan', () => {
  // 45 scenario snapshots (9 × 5 hard links), an emulated xl save and xl dump-core (symbols through
  // --system-map), and 5 files that are not images or are broken: 52 files.
  const corpus = path.join(tmp, 'mixed');
  const map = path.join(tmp, 'System.map');
  beforeAll(() => {
    for (let i = 0; i < NAMES.length * 5; i++) link(path.join(scenarioDir, `${NAMES[i % NAMES.length]}.p2ms`), path.join(corpus, `d${i % 4}`, `g${i}`));
    const MiB = 2 ** 20;
    const hostE820: E820Entry[] = [
      { addr: 0, size: 0x9fc00, type: E820_RAM },
      { addr: 0x100000, size: 255 * MiB, type: E820_RAM },
    ];
    const nrPages = (64 * MiB) / PAGE_SIZE;
    const g = emulate({ profile: findProfile('linux-4.x')!, hostE820, nrPages, maxPages: nrPages, seed: 1 });
    fs.mkdirSync(path.join(corpus, 'dumps'));
    writeSaveStream(g.image, path.join(corpus, 'dumps/guest.save'), { wrapper: 'xl' });
    writeXcCore(g.image, path.join(corpus, 'dumps/guest.core'));
    fs.writeFileSync(map, formatSystemMap(g.image.symbols));
    fs.writeFileSync(path.join(corpus, 'notes.txt'), 'not an image\n');
    fs.writeFileSync(path.join(corpus, 'empty.bin'), '');
    fs.writeFileSync(path.join(corpus, 'random.dat'), Buffer.alloc(8192, 0x5a));
    fs.writeFileSync(path.join(corpus, 'packed.gz'), zlib.gzipSync(Buffer.alloc(4096, 1)));
    fs.writeFileSync(path.join(corpus, 'cut.p2ms'), fs.readFileSync(path.join(scenarioDir, 'seed-4x.p2ms')).subarray(0, 8192));
  });

  it('52 files: every result once, equal to scan of the same corpus; no job run twice', async () => {
    const conn = await connect('mixed');
    const opts: SubmitOptions = { name: 'nightly', systemMap: map, shardMib: 4 };
    const sub = await runSubmit(conn, [corpus], opts);
    expect(sub.meta.files).toBe(52);
    expect(sub.meta.shardJobs).toBeGreaterThan(0); // the 8 MiB snapshots are split
    const a = startWorker('mixed');
    const b = startWorker('mixed');
    const run = await finished(conn, 'nightly');
    const got = results(run);
    expect(got).toHaveLength(52);
    expect(new Set(got.map((r) => r.resolved)).size).toBe(52);

    const scanLines: string[] = [];
    const scanned = await runScan([corpus], { jobs: 2, json: true, fault: null, systemMap: map, write: (l) => scanLines.push(l) });
    const want = scanLines.map((l) => JSON.parse(l) as ScanResult & { schema: string }).filter((j) => j.schema === SCAN_SCHEMA);
    const wantBy = new Map(want.map((r) => [r.resolved!, comparable(r)]));
    expect(wantBy.size).toBe(52);
    expect(got.map((r) => comparable(r)).filter((c) => JSON.stringify(c) !== JSON.stringify(wantBy.get(c[1] as string)))).toEqual([]);
    // the shapes of the statuses scan gives: audited, skipped (text, empty, compressed) and one error
    const count = (s: string) => got.filter((r) => r.status === s).length;
    expect([count('audited'), count('skipped'), count('error')]).toEqual([47, 4, 1]);

    // `fleet results --json` prints the same lines as scan --json, then the summary
    const cliOut = spawnSync(process.execPath, [cli, 'fleet', 'results', '--queue', redis.url, '--prefix', 'mixed', '--name', 'nightly', '--json'], { encoding: 'utf8' });
    expect(cliOut.status).toBe(scanned.exitCode); // scan's exit code for the same results (one broken file)
    const lines = cliOut.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const perFile = lines.filter((j) => j.schema === SCAN_SCHEMA);
    expect(perFile).toHaveLength(52);
    expect(Object.keys(perFile[0]!)).toEqual(Object.keys(JSON.parse(scanLines[0]!) as object));
    expect(lines[lines.length - 1]!.schema).toBe('p2m-audit/scan-summary@1');

    // every queued file job finished exactly once, split between the two workers
    const [wa, wb] = [fileLines(a).length, fileLines(b).length];
    expect(wa + wb).toBe(sub.meta.queued);
    expect(Math.min(wa, wb)).toBeGreaterThan(0);
    expect(got.filter((r) => r.status !== 'skipped' && r.attempts !== 0).every((r) => r.attempts === 1)).toBe(true);
    expect(await stopWorker(a)).toEqual({ code: 0, signal: null }); // SIGTERM: graceful
    expect(await stopWorker(b)).toEqual({ code: 0, signal: null });
  });
});

/** A corpus of `n` scenario snapshots; returns name → path. */
function smallCorpus(dir: string, n: number): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < n; i++) {
    const name = NAMES[i % NAMES.length]!;
    const p = path.join(dir, `f${String(i).padStart(2, '0')}-${name}`);
    link(path.join(scenarioDir, `${name}.p2ms`), p);
    m.set(p, name);
  }
  return m;
}

function expectVerdicts(got: ScanResult[], files: Map<string, string>): void {
  for (const [p, name] of files) {
    const hits = got.filter((r) => r.resolved === p);
    expect(hits.length, p).toBe(1);
    expect([hits[0]!.status, hits[0]!.verdict, hits[0]!.fatalPages], p).toEqual(['audited', ...SCENARIOS[name]!]);
  }
}

describe('faults', () => {
  it('a worker SIGKILLed mid-job: the job is recovered by the other worker, nothing lost or doubled', async () => {
    const dir = path.join(tmp, 'kill');
    const files = smallCorpus(dir, 6);
    const victim = [...files.keys()][2]!;
    const conn = await connect('kill');
    await runSubmit(conn, [dir], { name: 'k' });
    // worker A hangs on the victim (test hook: first attempt only), so it is surely mid-job when killed
    const a = startWorker('kill', FAST_LOCKS, { P2M_AUDIT_FLEET_FAULT: `hang:${path.basename(victim)}` });
    // … and A has printed the line of every file it finished before (Redis hands A the victim in the same call
    // that records the previous job done; the 'completed' line follows on A's event loop)
    await until('the victim is running, earlier files printed', async () => {
      const r = await readRun(conn, 'k');
      const running = r.views.find((v) => v.member.resolved === victim)!.state === 'running';
      return running && fileLines(a).length === r.views.filter((v) => v.state === 'done').length ? true : null;
    });
    a.proc.kill('SIGKILL');
    expect((await a.exited).signal).toBe('SIGKILL');
    const b = startWorker('kill', FAST_LOCKS);
    const got = results(await finished(conn, 'k'));
    expect(got).toHaveLength(6);
    expectVerdicts(got, files);
    expect(got.find((r) => r.resolved === victim)!.attempts).toBe(2); // started by A, finished by B
    expect(got.filter((r) => r.resolved !== victim).every((r) => r.attempts === 1)).toBe(true);
    expect(fileLines(a).length + fileLines(b).length).toBe(6); // each file finished once
    expect(b.stderr.join('\n')).toMatch(/stalled/);
    expect((await stopWorker(b)).code).toBe(0);
  });

  it.each([
    ['exit', 'the retry audits it', 2, 'audited'],
    ['crash', 'both attempts die: an error naming the last failure', 2, 'error'],
  ] as const)('an audit thread that dies (%s): %s', async (mode, _what, attempts, status) => {
    const dir = path.join(tmp, `thread-${mode}`);
    const files = smallCorpus(dir, 3);
    const victim = [...files.keys()][1]!;
    const conn = await connect(`thread-${mode}`);
    await runSubmit(conn, [dir], { name: 't' });
    const w = startWorker(`thread-${mode}`, [], { P2M_AUDIT_FLEET_FAULT: `${mode}:${path.basename(victim)}` });
    const got = results(await finished(conn, 't'));
    expect(got).toHaveLength(3);
    const hit = got.find((r) => r.resolved === victim)!;
    expect([hit.status, hit.attempts]).toEqual([status, attempts]);
    if (status === 'audited') expectVerdicts(got, files);
    else expect(hit.reason).toMatch(/^worker failed 2 times \(last: .*exit code.*86/i);
    expect(got.filter((r) => r.resolved !== victim).every((r) => r.status === 'audited' && r.attempts === 1)).toBe(true);
    expect(runStatus(await readRun(conn, 't')).failed).toBe(status === 'error' ? 1 : 0);
    expect((await stopWorker(w)).code).toBe(0);
  });

  it('resubmission audits only new and changed files', async () => {
    const dir = path.join(tmp, 'resubmit');
    const files = smallCorpus(dir, 5);
    const conn = await connect('resubmit');
    const first = await runSubmit(conn, [dir], { name: 'r' });
    expect([first.meta.queued, first.meta.known]).toEqual([5, 0]);
    const w = startWorker('resubmit');
    const before = new Map(results(await finished(conn, 'r')).map((r) => [r.resolved, r.at]));
    const touched = [...files.keys()][1]!;
    const t = new Date(fs.statSync(touched).mtimeMs + 60_000); // a minute past its own mtime: no clock read
    fs.utimesSync(touched, t, t);
    const added = path.join(dir, 'new-seed-4x');
    link(path.join(scenarioDir, 'seed-4x.p2ms'), added);
    files.set(added, 'seed-4x');
    const second = await runSubmit(conn, [dir], { name: 'r' });
    expect([second.meta.run, second.meta.queued, second.meta.known]).toEqual([2, 2, 4]);
    const got = results(await finished(conn, 'r'));
    expect(got).toHaveLength(6);
    expectVerdicts(got, files);
    for (const r of got) {
      if (r.resolved === touched || r.resolved === added) expect(before.get(r.resolved!)).not.toBe(r.at);
      else expect(r.at).toBe(before.get(r.resolved!)); // the first run's result, not audited again
    }
    expect(runStatus(await readRun(conn, 'r')).summary.resumed).toBe(4);
    expect(fileLines(w).length).toBe(7); // 5 + 2 audits in all
    expect((await stopWorker(w)).code).toBe(0);
  });

  it('files truncated or removed after submission are reported as changed, never audited', async () => {
    const dir = path.join(tmp, 'changed');
    const files = smallCorpus(dir, 3);
    const [cut, gone, kept] = [...files.keys()] as [string, string, string];
    const size = fs.statSync(cut).size;
    const conn = await connect('changed');
    await runSubmit(conn, [dir], { name: 'c' });
    fs.unlinkSync(cut); // a hard link: replace it with a shorter copy (same path, other content)
    fs.writeFileSync(cut, fs.readFileSync(path.join(scenarioDir, `${files.get(cut)}.p2ms`)).subarray(0, 4096));
    fs.unlinkSync(gone);
    const w = startWorker('changed');
    const run = await finished(conn, 'c');
    const got = results(run);
    expect(got).toHaveLength(3);
    const of = (p: string) => got.find((r) => r.resolved === p)!;
    expect([of(cut).status, of(cut).verdict, of(cut).reason]).toEqual(['error', null, `changed since submission: size ${size} → 4096 bytes; not audited`]);
    expect([of(gone).status, of(gone).reason]).toEqual(['error', 'vanished since submission; not audited']);
    expect([of(kept).status, of(kept).verdict]).toEqual(['audited', SCENARIOS[files.get(kept)!]![0]]);
    expect(runStatus(run).changed).toBe(2);
    expect(fileLines(w).filter((l) => l.startsWith('CHANGED'))).toHaveLength(2);
    expect((await stopWorker(w)).code).toBe(0);
  });

  it('Redis restarted mid-run (append-only file on): the worker reconnects and the run completes', async () => {
    const server = await startRedis({ persist: true });
    try {
      const dir = path.join(tmp, 'restart');
      const files = smallCorpus(dir, 18);
      const conn = await connect('restart', server.url);
      await runSubmit(conn, [dir], { name: 'x' });
      const w = startWorker('restart', FAST_LOCKS, {}, server.url);
      await until('3 files done', async () => (fileLines(w).length >= 3 ? true : null));
      await server.restart();
      const got = results(await finished(await connect('restart', server.url), 'x'));
      expect(got).toHaveLength(18);
      expectVerdicts(got, files);
      expect((await stopWorker(w)).code).toBe(0);
    } finally {
      await server.stop();
    }
  });
});
