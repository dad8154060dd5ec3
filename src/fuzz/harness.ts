// The fuzz harness (docs/fuzz.md): runs mutants of every recognised corpus image through openImage +
// auditImage(img, { jobs: 0 }) in child processes, and records every failure as a reproducer.
//
// Failure = an exception other than InputError out of openImage/auditImage/close, a run longer than the
// hang limit (5 s), a child whose RSS passes the limit (512 MiB), a child that dies, or file descriptors
// left open on the mutant file. Outcomes that are fine: a report (any verdict) or an InputError.
//
// Parent: discovers the corpus (decompressing .gz into a work directory), analyses each base file
// (mutate.ts analyze), then hands batches of K mutant ids to `jobs` long-lived child processes. A child
// generates each mutant itself from (anatomy, seed, id), applies it to its private working copy, runs
// it, undoes it and reports. The parent times every mutant from the child's "start" message and polls the
// child's RSS; when a child hangs or dies, the mutant in flight is re-run alone in a fresh child (and, if
// it does not reproduce there, each earlier mutant of that batch too) to find the culprit. A watchdog
// thread in every child pauses a hung main thread through the inspector (connectToMainThread) to report
// the stack it is stuck in.
//
// Determinism: mutant `id` of corpus entry `id mod entries` under `seed` is always the same bytes.
import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { SourceMap } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as zlib from 'node:zlib';
import { auditImage } from '../audit/audit-image.js';
import { InputError, type GuestImage, type SymbolTable } from '../image/guest-image.js';
import { detectFormat, openImage, readHead } from '../image/open-image.js';
import { loadSymbols } from '../image/symbols.js';
import {
  analyze,
  applyPatch,
  baselineMutant,
  CLASS_NAMES,
  fileReader,
  generateMutant,
  genContext,
  type Anatomy,
  type GenContext,
  type Mutant,
  type Patch,
} from './mutate.js';

// ---- limits and defaults --------------------------------------------------------------------------------
const MiB = 1024 * 1024;
const KiB = 1024;
const MS_PER_S = 1000;
export const DEFAULT_HANG_MS = 5_000;
export const DEFAULT_RSS_LIMIT = 512 * MiB;
export const DEFAULT_BATCH = 100;
export const DEFAULT_ITERATIONS = 1_000;
/** A child is replaced after this many mutants (keeps per-child state from piling up). */
const RECYCLE_AFTER = 4_000;
/** Time a child may spend outside a mutant run (start-up, working copies, undoing a truncation). */
const SETUP_TIMEOUT_MS = 120_000;
/** Parent's RSS and CPU poll period. */
const RSS_POLL_MS = 100;
/**
 * A run is a hang when the child's main thread has spent hangMs of CPU time on it (contention-free:
 * other processes on the machine do not make a run look longer), or when it has been going for this many
 * times hangMs of wall time (a child blocked without using CPU). Without /proc, wall time alone decides.
 */
const WALL_BACKSTOP_FACTOR = 6;
/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, fixed at 100 by the Linux ABI). */
const USER_HZ = 100;
/** Fields of /proc/<pid>/task/<tid>/stat after the ")" that ends comm: utime and stime (fields 14, 15). */
const STAT_UTIME_FIELD = 11;
const STAT_STIME_FIELD = 12;
/** The watchdog captures a hung child's stack at this fraction of the hang limit. */
const WATCHDOG_FRACTION = 0.8;
/** Watchdog poll period. */
const WATCHDOG_POLL_MS = 50;
/** Time left for the watchdog's stack line to arrive after a hang is declared. */
const STACK_GRACE_MS = 1_500;
/** V8 old-space cap for children: above the RSS limit, so the RSS check decides first. */
const CHILD_HEAP_FACTOR = 2;
/** Bytes of a child's stderr kept for crash reports. */
const STDERR_TAIL = 8 * KiB;
/** Reproducers above this size are written gzip-compressed (<hash>.<ext>.gz). */
const GZIP_REPRO_ABOVE = 16 * MiB;
/** Hex digits of the sha256 that name a reproducer. */
const HASH_DIGITS = 16;
/** Copy chunk when undoing a truncation of a working copy. */
const COPY_CHUNK = 4 * MiB;
/** Flag that makes cli.ts run as a fuzz child. */
export const CHILD_FLAG = '--fuzz-child';
/** Marker of the watchdog's stack line on a child's stderr. */
const STACK_MARKER = '@@p2m-fuzz-stack ';
/** Names that identify a symbol file next to an image. */
const SYMBOL_FILE_RE = /^(System\.map|kallsyms)/i;
/** Suffix openImage looks for next to an image (symbols.ts symbolsBeside). */
const BESIDE_SUFFIX = '.map';
const GZ = '.gz';

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

/** What one mutant did. */
export type Outcome =
  | { status: 'ok'; verdict: string }
  | { status: 'rejected'; message: string }
  | { status: 'error'; name: string; message: string; stack: string }
  | { status: 'fd-leak'; leaked: string[] }
  | { status: 'hang'; ms: number; cpuMs: number | null; stack: string | null }
  | { status: 'crash'; exit: string; stderr: string }
  | { status: 'rss'; rssBytes: number }
  | { status: 'harness-error'; message: string; stack: string };

export type FailureKind = 'error' | 'fd-leak' | 'hang' | 'crash' | 'rss' | 'harness-error';

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

// ---- messages between parent and child ---------------------------------------------------------------
interface Job {
  id: number;
  /** corpus entry index, or −1 for a file replay */
  entry: number;
  kind: 'mutant' | 'baseline' | 'file';
  /** replay: the file to run and its symbols */
  file?: string;
  symbolsPath?: string | null;
}

type ToChild =
  | { type: 'init'; entries: Anatomy[]; workDir: string; tag: string; seed: number; classes: string[] | null; rssLimit: number; hangMs: number; target: string | null }
  | { type: 'batch'; jobs: Job[] }
  | { type: 'stop' };

interface ResultMsg {
  type: 'result';
  id: number;
  outcome: Outcome;
  ms: number;
  classes: string[];
  description: string;
  /** the child exits after this result (its RSS high-water mark passed the limit) */
  retiring?: boolean;
}

type FromChild =
  | { type: 'ready' }
  | { type: 'start'; id: number }
  | ResultMsg
  | { type: 'batch-done' }
  | { type: 'fatal'; id: number | null; name: string; message: string; stack: string };

// ---- shared helpers ---------------------------------------------------------------------------------------
export function isFailure(o: Outcome): boolean {
  return o.status !== 'ok' && o.status !== 'rejected';
}

function errorFields(e: unknown): { name: string; message: string; stack: string } {
  if (e instanceof Error) return { name: e.name || e.constructor.name, message: e.message, stack: e.stack ?? `${e.name}: ${e.message}` };
  return { name: typeof e, message: String(e), stack: `(thrown ${typeof e}: ${String(e)})` };
}

/** Where a failure happened: the first stack frame in project code outside the harness. */
function topFrame(stack: string): string {
  for (const line of stack.split('\n').slice(1)) {
    const m = /at (?:(.+?) \()?(.*?):(\d+):\d+\)?$/.exec(line.trim());
    if (!m) continue;
    const file = m[2]!;
    if (!/\/src\/|\/workers\//.test(file) || /\/src\/fuzz\/|node_modules/.test(file)) continue;
    const rel = file.replace(/^file:\/\//, '').replace(/^.*?\/((?:dist\/)?(?:src|workers)\/)/, '$1');
    return `${m[1] ?? '<anonymous>'} (${rel})`;
  }
  return '(no project frame)';
}

export function signatureOf(o: Outcome): string {
  switch (o.status) {
    case 'error':
      return `error ${o.name} at ${topFrame(o.stack)}`;
    case 'hang':
      return `hang at ${o.stack ? topFrame('x\n' + o.stack) : '(no stack)'}`;
    case 'crash':
      return `crash ${o.exit}: ${(o.stderr.split('\n').find((l) => /Error|error:|FATAL|Abort/.test(l)) ?? '').trim().slice(0, 120)}`;
    case 'rss':
      return 'rss over the limit';
    case 'fd-leak':
      return 'fd-leak';
    case 'harness-error':
      return `harness-error ${o.message.slice(0, 80)}`;
    default:
      return o.status;
  }
}

export function describeOutcome(o: Outcome): string {
  switch (o.status) {
    case 'ok':
      return `report, verdict ${o.verdict}`;
    case 'rejected':
      return `InputError: ${o.message}`;
    case 'error':
      return `${o.name}: ${o.message}`;
    case 'fd-leak':
      return `file descriptors left open: ${o.leaked.join(', ')}`;
    case 'hang':
      return `no result after ${o.cpuMs === null ? '' : `${o.cpuMs} ms of CPU, `}${o.ms} ms of wall time${o.stack ? '' : ' (no stack captured)'}`;
    case 'crash':
      return `child died (${o.exit})`;
    case 'rss':
      return `RSS reached ${(o.rssBytes / MiB).toFixed(0)} MiB`;
    case 'harness-error':
      return `harness error: ${o.message}`;
  }
}

/** Map a compiled location (file URL or path, 1-based line/column) back through its .js.map. */
const sourceMaps = new Map<string, SourceMap | null>();
function mapLocation(url: string, line: number, column: number): string {
  const file = url.startsWith('file:') ? fileURLToPath(url) : url;
  let sm = sourceMaps.get(file);
  if (sm === undefined) {
    try {
      sm = new SourceMap(JSON.parse(fs.readFileSync(file + '.map', 'utf8')));
    } catch {
      sm = null;
    }
    sourceMaps.set(file, sm);
  }
  if (sm) {
    const e = sm.findEntry(line - 1, column - 1) as { originalSource?: string; originalLine?: number; originalColumn?: number };
    if (e.originalSource) {
      const src = e.originalSource.startsWith('file:') ? fileURLToPath(e.originalSource) : path.resolve(path.dirname(file), e.originalSource);
      return `${src}:${(e.originalLine ?? 0) + 1}:${(e.originalColumn ?? 0) + 1}`;
    }
  }
  return `${file}:${line}:${column}`;
}

/** The compiled child entry (dist/src/fuzz/cli.js), from the TS sources or from dist. */
export function childScript(): string {
  const here = fileURLToPath(import.meta.url);
  const js = here.endsWith('.ts') ? path.resolve(path.dirname(here), '../../dist/src/fuzz/cli.js') : path.join(path.dirname(here), 'cli.js');
  if (!fs.existsSync(js)) throw new Error(`fuzz child not built: ${js} is missing (run npm run build)`);
  return js;
}

function defaultWorkParent(): string {
  const shm = '/dev/shm';
  try {
    fs.accessSync(shm, fs.constants.W_OK);
    return shm;
  } catch {
    return os.tmpdir();
  }
}

// ---- working copies (child side) --------------------------------------------------------------------------
/** A private copy of a base file that patches are applied to in place and undone after each run. */
export class WorkFile {
  private readonly fd: number;
  private readonly baseFd: number;
  private undo: { offset: number; old: Buffer }[] = [];
  private changedLength: number | null = null;

  constructor(
    basePath: string,
    readonly path: string,
    private readonly size: number,
  ) {
    fs.copyFileSync(basePath, path);
    this.fd = fs.openSync(path, 'r+');
    this.baseFd = fs.openSync(basePath, 'r');
  }

  /** Apply the edits and length of a patch (not `replace`). */
  apply(patch: Patch): void {
    for (const e of patch.edits) {
      if (e.offset >= this.size) continue;
      const n = Math.min(e.bytes.length, this.size - e.offset);
      const old = Buffer.alloc(n);
      fs.readSync(this.fd, old, 0, n, e.offset);
      this.undo.push({ offset: e.offset, old });
      fs.writeSync(this.fd, e.bytes, 0, n, e.offset);
    }
    if (patch.length !== null && patch.length !== this.size) {
      this.changedLength = patch.length;
      fs.ftruncateSync(this.fd, patch.length);
      if (patch.length > this.size && patch.fill) fs.writeSync(this.fd, patch.fill, 0, patch.length - this.size, this.size);
    }
  }

  restore(): void {
    if (this.changedLength !== null) {
      fs.ftruncateSync(this.fd, this.size);
      if (this.changedLength < this.size) {
        const buf = Buffer.alloc(Math.min(COPY_CHUNK, this.size - this.changedLength));
        for (let at = this.changedLength; at < this.size; ) {
          const n = fs.readSync(this.baseFd, buf, 0, Math.min(buf.length, this.size - at), at);
          if (n <= 0) break;
          fs.writeSync(this.fd, buf, 0, n, at);
          at += n;
        }
      }
      this.changedLength = null;
    }
    for (let i = this.undo.length - 1; i >= 0; i--) {
      const u = this.undo[i]!;
      fs.writeSync(this.fd, u.old, 0, u.old.length, u.offset);
    }
    this.undo = [];
  }

  close(): void {
    fs.closeSync(this.fd);
    fs.closeSync(this.baseFd);
  }
}

/** Descriptors of this process that point at `file` (Linux /proc; empty elsewhere). */
function fdsOn(file: string): Set<number> {
  const out = new Set<number>();
  let names: string[];
  try {
    names = fs.readdirSync('/proc/self/fd');
  } catch {
    return out;
  }
  for (const n of names) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${n}`) === file) out.add(Number(n));
    } catch {
      // closed while listing
    }
  }
  return out;
}

// ---- the child -------------------------------------------------------------------------------------------
/** Watchdog thread: when a run outlives its deadline, pause the main thread and print its stack. */
const WATCHDOG_SOURCE = `
const { Session } = require('node:inspector');
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const statPath = '/proc/' + process.pid + '/task/' + process.pid + '/stat';
function cpuMs() {
  try {
    const st = fs.readFileSync(statPath, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[workerData.utime]) + Number(f[workerData.stime])) * workerData.msPerS) / workerData.hz;
  } catch (e) { return null; }
}
let poll = null;
function capture(id) {
  const s = new Session();
  try { s.connectToMainThread(); } catch (e) { return; }
  const urls = new Map();
  s.on('Debugger.scriptParsed', (ev) => urls.set(ev.params.scriptId, ev.params.url));
  s.on('Debugger.paused', (ev) => {
    const frames = ev.params.callFrames.map((f) => ({ fn: f.functionName, url: f.url || urls.get(f.location.scriptId) || '', line: f.location.lineNumber + 1, column: f.location.columnNumber + 1 }));
    fs.writeSync(2, workerData.marker + JSON.stringify({ id, frames }) + '\\n');
    s.post('Debugger.resume', () => s.disconnect());
  });
  s.post('Debugger.enable', () => s.post('Debugger.pause'));
}
parentPort.on('message', (m) => {
  if (poll) clearInterval(poll);
  poll = null;
  if (m.type !== 'start') return;
  const cpu0 = cpuMs();
  const wall0 = Date.now();
  poll = setInterval(() => {
    const cpu = cpuMs();
    const wall = Date.now() - wall0;
    const late = cpu === null || cpu0 === null ? wall >= workerData.afterMs : cpu - cpu0 >= workerData.afterMs || wall >= workerData.afterMs * workerData.wallFactor;
    if (!late) return;
    clearInterval(poll);
    poll = null;
    capture(m.id);
  }, workerData.pollMs);
});
`;

interface ChildEntry {
  ctx: GenContext;
  work: WorkFile;
  symbols: SymbolTable | undefined;
}

/** Main of a fuzz child process (cli.ts runs it when given CHILD_FLAG). */
export function runChild(): void {
  if (!process.send) throw new Error('the fuzz child must be started by the harness (no IPC channel)');
  const send = (m: FromChild): void => {
    process.send!(m);
  };
  let init: Extract<ToChild, { type: 'init' }> | null = null;
  const entries = new Map<number, ChildEntry>();
  const symbolCache = new Map<string, SymbolTable>();
  let stopRequested = false;
  let current: number | null = null;
  let watchdog: Worker | null = null;
  let target: ((file: string, symbols?: SymbolTable) => unknown) | null = null;

  const fatal = (e: unknown): void => {
    send({ type: 'fatal', id: current, ...errorFields(e) });
    process.exit(1);
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);

  const symbolsFor = (p: string | null | undefined): SymbolTable | undefined => {
    if (!p) return undefined;
    let t = symbolCache.get(p);
    if (!t) {
      t = loadSymbols(p);
      symbolCache.set(p, t);
    }
    return t;
  };

  const entryOf = (k: number): ChildEntry => {
    let e = entries.get(k);
    if (!e) {
      const a = init!.entries[k]!;
      const fd = fs.openSync(a.basePath, 'r');
      const ctx = genContext(a, fileReader(fd, a.size));
      const work = new WorkFile(a.basePath, path.join(init!.workDir, `${init!.tag}-e${k}.${a.ext}`), a.size);
      e = { ctx, work, symbols: symbolsFor(a.symbolsPath) };
      entries.set(k, e);
    }
    return e;
  };

  const runOne = async (file: string, symbols: SymbolTable | undefined): Promise<Outcome> => {
    let img: GuestImage | null = null;
    let outcome: Outcome;
    try {
      if (target) {
        await target(file, symbols);
        outcome = { status: 'ok', verdict: 'target returned' };
      } else {
        img = openImage(file, symbols ? { symbols } : {});
        const out = await auditImage(img, { jobs: 0 });
        outcome = { status: 'ok', verdict: out.report.verdict };
      }
    } catch (e) {
      outcome = e instanceof InputError ? { status: 'rejected', message: e.message } : { status: 'error', ...errorFields(e) };
    }
    try {
      img?.close();
    } catch (e) {
      if (outcome.status === 'ok' || outcome.status === 'rejected') outcome = { status: 'error', ...errorFields(e) };
    }
    return outcome;
  };

  const runJob = async (job: Job): Promise<void> => {
    const cfg = init!;
    let mutant: Mutant;
    let file: string;
    let work: WorkFile | null = null;
    let symbols: SymbolTable | undefined;
    try {
      if (job.kind === 'file') {
        mutant = { id: job.id, classes: ['replay'], description: `replay of ${job.file}`, patch: { replace: null, edits: [], length: null, fill: null } };
        file = job.file!;
        symbols = symbolsFor(job.symbolsPath);
      } else {
        const e = entryOf(job.entry);
        symbols = e.symbols;
        mutant = job.kind === 'baseline' ? baselineMutant(job.id) : generateMutant(e.ctx, cfg.seed, job.id, cfg.classes ? { classes: cfg.classes } : {});
        if (mutant.patch.replace) {
          file = path.join(cfg.workDir, `${cfg.tag}-replace.${e.ctx.anatomy.ext}`);
          fs.writeFileSync(file, applyPatch(Buffer.alloc(0), mutant.patch));
        } else {
          work = e.work;
          work.apply(mutant.patch);
          file = work.path;
        }
      }
    } catch (e) {
      send({ type: 'result', id: job.id, outcome: { status: 'harness-error', ...errorFields(e) }, ms: 0, classes: [], description: 'mutant generation failed' });
      return;
    }
    const before = fdsOn(file);
    current = job.id;
    send({ type: 'start', id: job.id });
    watchdog?.postMessage({ type: 'start', id: job.id });
    const t0 = performance.now();
    let outcome = await runOne(file, symbols);
    const ms = performance.now() - t0;
    watchdog?.postMessage({ type: 'end' });
    current = null;
    const leaked = [...fdsOn(file)].filter((fd) => !before.has(fd));
    for (const fd of leaked) fs.closeSync(fd);
    if (leaked.length > 0 && !isFailure(outcome)) outcome = { status: 'fd-leak', leaked: leaked.map((fd) => `fd ${fd} → ${file}`) };
    const rss = process.resourceUsage().maxRSS * KiB;
    const overRss = rss > cfg.rssLimit;
    // an exception says more than the memory it took: keep it, but leave the child either way
    if (overRss && !isFailure(outcome)) outcome = { status: 'rss', rssBytes: rss };
    work?.restore();
    send({ type: 'result', id: job.id, outcome, ms, classes: mutant.classes, description: mutant.description, retiring: overRss });
    if (overRss) process.exit(0); // the high-water mark stays up: later measurements would be meaningless
  };

  let chain: Promise<void> = Promise.resolve();
  process.on('message', (raw) => {
    const m = raw as ToChild;
    if (m.type === 'init') {
      init = m;
      watchdog = new Worker(WATCHDOG_SOURCE, {
        eval: true,
        workerData: {
          marker: STACK_MARKER,
          afterMs: Math.floor(m.hangMs * WATCHDOG_FRACTION),
          wallFactor: WALL_BACKSTOP_FACTOR,
          pollMs: WATCHDOG_POLL_MS,
          hz: USER_HZ,
          msPerS: MS_PER_S,
          utime: STAT_UTIME_FIELD,
          stime: STAT_STIME_FIELD,
        },
      });
      watchdog.unref();
      if (m.target) {
        chain = chain.then(async () => {
          const mod = (await import(pathToFileURL(m.target!).href)) as { default: (file: string, symbols?: SymbolTable) => unknown };
          target = mod.default;
          send({ type: 'ready' });
        });
      } else {
        send({ type: 'ready' });
      }
    } else if (m.type === 'stop') {
      stopRequested = true;
    } else if (m.type === 'batch') {
      stopRequested = false;
      chain = chain.then(async () => {
        for (const job of m.jobs) {
          if (stopRequested) break;
          await runJob(job);
        }
        send({ type: 'batch-done' });
      });
    }
  });
  process.on('disconnect', () => {
    for (const e of entries.values()) e.work.close();
    process.exit(0);
  });
}

// ---- the parent's view of one child ---------------------------------------------------------------------------
interface BatchEnd {
  results: ResultMsg[];
  /** set when the child hung, died or ran out of memory before finishing the batch */
  aborted: { outcome: Outcome; inFlight: number | null; retired?: boolean } | null;
}

class ChildRunner {
  private readonly proc: ChildProcess;
  private stderrTail = '';
  private readonly stacks = new Map<number, string>();
  private onMessage: ((m: FromChild) => void) | null = null;
  private onExit: ((code: number | null, signal: NodeJS.Signals | null) => void) | null = null;
  private exited = false;
  private readonly ready: Promise<void>;

  constructor(
    init: Extract<ToChild, { type: 'init' }>,
    private readonly hangMs: number,
    private readonly rssLimit: number,
  ) {
    const heapMiB = Math.ceil((rssLimit * CHILD_HEAP_FACTOR) / MiB);
    this.proc = fork(childScript(), [CHILD_FLAG], {
      execArgv: ['--enable-source-maps', `--max-old-space-size=${heapMiB}`],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    this.proc.stderr!.setEncoding('utf8');
    let partial = '';
    this.proc.stderr!.on('data', (d: string) => {
      this.stderrTail = (this.stderrTail + d).slice(-STDERR_TAIL);
      const lines = (partial + d).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith(STACK_MARKER)) continue;
        try {
          const s = JSON.parse(line.slice(STACK_MARKER.length)) as { id: number; frames: { fn: string; url: string; line: number; column: number }[] };
          if (!this.stacks.has(s.id)) {
            this.stacks.set(s.id, s.frames.map((f) => `    at ${f.fn || '<anonymous>'} (${f.url ? mapLocation(f.url, f.line, f.column) : '<native>'})`).join('\n'));
          }
        } catch {
          // not a complete capture: the stack stays unknown
        }
      }
    });
    this.proc.on('message', (m) => this.onMessage?.(m as FromChild));
    this.proc.on('exit', (code, signal) => {
      this.exited = true;
      this.onExit?.(code, signal);
    });
    this.ready = new Promise((resolve, reject) => {
      this.onMessage = (m) => {
        if (m.type === 'ready') resolve();
      };
      this.onExit = (code, signal) => reject(new Error(`fuzz child exited during start-up (${signal ?? code}): ${this.stderrTail.trim().slice(-500)}`));
    });
    this.ready.catch(() => {}); // awaited (and rethrown) by run()
    this.proc.send(init);
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Run a batch; resolves with every result and, if the child failed, why. */
  async run(jobs: Job[], onResult: (r: ResultMsg) => void): Promise<BatchEnd> {
    await this.ready;
    return new Promise<BatchEnd>((resolve) => {
      const results: ResultMsg[] = [];
      let inFlight: number | null = null;
      let timer: NodeJS.Timeout | null = null;
      let done = false;
      const finish = (aborted: BatchEnd['aborted']): void => {
        if (done) return;
        done = true;
        if (timer) clearTimeout(timer);
        clearInterval(poll);
        this.onMessage = null;
        this.onExit = null;
        resolve({ results, aborted });
      };
      const kill = (outcome: Outcome): void => {
        const id = inFlight;
        this.proc.kill('SIGKILL');
        finish({ outcome, inFlight: id });
      };
      let cpuAtStart: number | null = null;
      let wallAtStart = 0;
      let hangDeclared = false;
      /** outside a run: a generous timer for start-up and working-copy work */
      const arm = (): void => {
        if (timer) clearTimeout(timer);
        timer = null;
        if (inFlight !== null) return;
        timer = setTimeout(() => kill({ status: 'harness-error', message: `child silent for ${SETUP_TIMEOUT_MS} ms between mutants`, stack: '' }), SETUP_TIMEOUT_MS);
      };
      const declareHang = (id: number, wallMs: number, cpuMs: number | null): void => {
        hangDeclared = true;
        // give the watchdog's stack line a moment to arrive, then kill
        const waitStack = (left: number): void => {
          if (done) return;
          if (this.stacks.has(id) || left <= 0) {
            kill({ status: 'hang', ms: Math.round(wallMs), cpuMs: cpuMs === null ? null : Math.round(cpuMs), stack: this.stacks.get(id) ?? null });
            return;
          }
          setTimeout(() => waitStack(left - RSS_POLL_MS), RSS_POLL_MS);
        };
        waitStack(STACK_GRACE_MS);
      };
      const poll = setInterval(() => {
        const rss = childRss(this.proc.pid);
        if (rss !== null && rss > this.rssLimit) {
          kill({ status: 'rss', rssBytes: rss });
          return;
        }
        if (inFlight === null || hangDeclared) return;
        const wall = performance.now() - wallAtStart;
        const cpuNow = childCpuMs(this.proc.pid);
        const cpu = cpuNow === null || cpuAtStart === null ? null : cpuNow - cpuAtStart;
        if (cpu === null ? wall >= this.hangMs : cpu >= this.hangMs || wall >= this.hangMs * WALL_BACKSTOP_FACTOR) declareHang(inFlight, wall, cpu);
      }, RSS_POLL_MS);
      this.onMessage = (m) => {
        if (m.type === 'start') {
          inFlight = m.id;
          cpuAtStart = childCpuMs(this.proc.pid);
          wallAtStart = performance.now();
          arm();
        } else if (m.type === 'result') {
          inFlight = null;
          results.push(m);
          onResult(m);
          if (m.retiring) {
            finish({ outcome: m.outcome, inFlight: null, retired: true }); // the child exits by itself
            return;
          }
          arm();
        } else if (m.type === 'batch-done') {
          finish(null);
        } else if (m.type === 'fatal') {
          finish({ outcome: { status: 'crash', exit: `uncaught ${m.name} outside the awaited run`, stderr: m.stack }, inFlight: m.id });
        }
      };
      this.onExit = (code, signal) => {
        finish({ outcome: { status: 'crash', exit: signal ? `signal ${signal}` : `exit code ${code}`, stderr: this.stderrTail }, inFlight });
      };
      if (this.exited) {
        finish({ outcome: { status: 'crash', exit: 'child already gone', stderr: this.stderrTail }, inFlight: null });
        return;
      }
      arm();
      this.proc.send({ type: 'batch', jobs } satisfies ToChild);
    });
  }

  requestStop(): void {
    if (!this.exited && this.proc.connected) this.proc.send({ type: 'stop' } satisfies ToChild);
  }

  /** End the child (politely when it is idle, SIGKILL otherwise). */
  end(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => {
      this.proc.once('exit', () => resolve());
      if (this.proc.connected) this.proc.disconnect();
      setTimeout(() => {
        if (!this.exited) this.proc.kill('SIGKILL');
      }, RSS_POLL_MS * 10).unref();
    });
  }
}

/** CPU time (user + system, ms) of a child's main thread, from /proc/<pid>/task/<pid>/stat; null without /proc. */
function childCpuMs(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const st = fs.readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[STAT_UTIME_FIELD]) + Number(f[STAT_STIME_FIELD])) * MS_PER_S) / USER_HZ;
  } catch {
    return null;
  }
}

function childRss(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * KiB : null;
  } catch {
    return null;
  }
}

// ---- corpus ---------------------------------------------------------------------------------------------------
function listFiles(p: string, out: string[]): void {
  const st = fs.statSync(p);
  if (st.isDirectory()) {
    for (const name of fs.readdirSync(p).sort()) listFiles(path.join(p, name), out);
  } else if (st.isFile()) {
    out.push(p);
  }
}

async function gunzipTo(src: string, dst: string): Promise<void> {
  await pipeline(fs.createReadStream(src), zlib.createGunzip(), fs.createWriteStream(dst));
}

/** Symbols for an image: `<file>.map` as openImage would find it, else a System.map/kallsyms file beside it. */
function symbolsPathFor(source: string, format: string): string | null {
  const plain = source.endsWith(GZ) ? source.slice(0, -GZ.length) : source;
  for (const p of [source + BESIDE_SUFFIX, plain + BESIDE_SUFFIX]) if (fs.existsSync(p)) return p;
  if (format === 'p2ms') return null; // snapshots carry their own symbols
  const dir = path.dirname(source);
  for (const name of fs.readdirSync(dir).sort()) {
    if (!SYMBOL_FILE_RE.test(name)) continue;
    const p = path.join(dir, name);
    try {
      loadSymbols(p);
      return p;
    } catch {
      // not a symbol file after all
    }
  }
  return null;
}

async function prepareCorpus(
  inputs: string[],
  workDir: string,
  onEvent: (line: string) => void,
): Promise<{ entries: Anatomy[]; skipped: { path: string; why: string }[] }> {
  const files: string[] = [];
  for (const p of inputs) {
    if (!fs.existsSync(p)) throw new InputError(`${p}: no such file or directory`);
    listFiles(p, files);
  }
  const entries: Anatomy[] = [];
  const skipped: { path: string; why: string }[] = [];
  const unpacked = path.join(workDir, 'corpus');
  fs.mkdirSync(unpacked, { recursive: true });
  for (const source of files) {
    let basePath = source;
    if (source.endsWith(GZ)) {
      basePath = path.join(unpacked, `${entries.length + skipped.length}-${path.basename(source, GZ)}`);
      try {
        await gunzipTo(source, basePath);
      } catch (e) {
        skipped.push({ path: source, why: `not a readable gzip file (${(e as Error).message})` });
        continue;
      }
    }
    const d = detectFormat(readHead(basePath));
    if (d.format === null) {
      skipped.push({ path: source, why: d.description });
      if (basePath !== source) fs.rmSync(basePath, { force: true });
      continue;
    }
    const symbolsPath = symbolsPathFor(source, d.format);
    const symbols = symbolsPath ? loadSymbols(symbolsPath) : null;
    const ext = path.extname(path.basename(source, GZ)).slice(1) || d.format;
    const a = analyze(source, basePath, ext, d.format, symbols, symbolsPath);
    entries.push(a);
    onEvent(
      `corpus: ${source} (${d.format}, ${a.size} bytes${symbolsPath ? `, symbols ${path.basename(symbolsPath)}` : ''}): ${a.structure.length} structure pages, ${a.ptSteps.length} page-table steps, ${a.vars.length} kernel variables, ${a.fields.length} length fields${a.notes.length ? `; ${a.notes.join('; ')}` : ''}`,
    );
  }
  return { entries, skipped };
}

// ---- findings ---------------------------------------------------------------------------------------------------
async function writeReproducer(
  dir: string,
  a: Anatomy,
  mutant: Mutant,
  outcome: Outcome,
  signature: string,
  seed: number,
  classes: string[] | undefined,
): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  const base = mutant.patch.replace ? Buffer.alloc(0) : fs.readFileSync(a.basePath);
  const content = applyPatch(base, mutant.patch);
  const hash = createHash('sha256').update(content).digest('hex').slice(0, HASH_DIGITS);
  let file = path.join(dir, `${hash}.${a.ext}`);
  if (content.length > GZIP_REPRO_ABOVE) {
    file += GZ;
    fs.writeFileSync(file, zlib.gzipSync(content));
  } else {
    fs.writeFileSync(file, content);
  }
  const rel = (p: string): string => {
    const r = path.relative(process.cwd(), p);
    return r && !r.startsWith('..') ? r : p;
  };
  const detail =
    outcome.status === 'error'
      ? outcome.stack
      : outcome.status === 'hang'
        ? outcome.stack ?? '(no stack captured)'
        : outcome.status === 'crash'
          ? outcome.stderr
          : describeOutcome(outcome);
  const lines = [
    'p2m-audit fuzz finding',
    `signature: ${signature}`,
    `kind: ${outcome.status}`,
    `corpus file: ${a.source} (format ${a.format}, ${a.size} bytes)`,
    `symbols: ${a.symbolsPath ?? '(none passed; the image carries its own or none)'}`,
    `seed: ${seed}  mutant id: ${mutant.id}  classes: ${mutant.classes.join(', ')}`,
    `mutation: ${mutant.description}`,
    `outcome: ${describeOutcome(outcome)}`,
    '',
    detail,
    '',
    `replay: node --enable-source-maps dist/src/fuzz/cli.js --replay ${rel(file)}${a.symbolsPath ? ` --symbols ${rel(a.symbolsPath)}` : ''}`,
    mutant.id < 0
      ? `regenerate: none needed (the unmodified corpus file ${rel(a.source)})`
      : `regenerate: node dist/src/fuzz/cli.js --corpus ${rel(a.source)} --seed ${seed}${classes ? ` --class ${classes.join(' ')}` : ''} --mutant ${mutant.id}`,
    '',
  ];
  fs.writeFileSync(path.join(dir, `${hash}.txt`), lines.join('\n'));
  return file;
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

/** Replay one file (a reproducer) in a child under the same limits; .gz files are decompressed first. */
export async function replayFile(
  file: string,
  opts: { symbolsPath?: string | null; hangMs?: number; rssLimitBytes?: number; workDir?: string; targetModule?: string } = {},
): Promise<Outcome> {
  const hangMs = opts.hangMs ?? DEFAULT_HANG_MS;
  const rssLimit = opts.rssLimitBytes ?? DEFAULT_RSS_LIMIT;
  const workDir = fs.mkdtempSync(path.join(opts.workDir ?? defaultWorkParent(), 'p2m-fuzz-replay-'));
  let c: ChildRunner | null = null;
  try {
    let target = path.resolve(file);
    if (file.endsWith(GZ)) {
      target = path.join(workDir, path.basename(file, GZ));
      await gunzipTo(file, target);
    }
    c = new ChildRunner({ type: 'init', entries: [], workDir, tag: 'replay', seed: 0, classes: null, rssLimit, hangMs, target: opts.targetModule ?? null }, hangMs, rssLimit);
    const end = await c.run([{ id: 0, entry: -1, kind: 'file', file: target, symbolsPath: opts.symbolsPath ?? null }], () => {});
    return end.results[0]?.outcome ?? end.aborted?.outcome ?? { status: 'crash', exit: 'no result', stderr: '' };
  } finally {
    await c?.end();
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

