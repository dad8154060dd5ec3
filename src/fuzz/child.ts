// A fuzz child process (docs/fuzz.md): generates each mutant of its batch from (anatomy, seed, id), applies it
// to its working copy, runs openImage + auditImage, checks descriptors and RSS, undoes it and reports. A
// watchdog thread pauses a hung main thread through the inspector (connectToMainThread) to report its stack.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { auditImage } from '../audit/audit-image.js';
import { InputError } from '../common/errors.js';
import { type GuestImage } from '../formats/guest-image.js';
import { type SymbolTable } from '../formats/symbols.js';
import { openImage } from '../formats/open-image.js';
import { loadSymbols } from '../formats/symbols.js';
import { fileReader } from './anatomy.js';
import { KiB, MS_PER_S, STAT_STIME_FIELD, STAT_UTIME_FIELD, USER_HZ, WALL_BACKSTOP_FACTOR } from './limits.js';
import { baselineMutant, generateMutant } from './mutate.js';
import { genContext, type GenContext } from './mutation-context.js';
import { errorFields, isFailure, type Outcome } from './outcome.js';
import { applyPatch, type Mutant } from './patch.js';
import { STACK_MARKER, type FromChild, type Job, type ToChild } from './protocol.js';
import { WorkFile } from './work-file.js';

/** The watchdog captures a hung child's stack at this fraction of the hang limit. */
const WATCHDOG_FRACTION = 0.8;
/** Watchdog poll period. */
const WATCHDOG_POLL_MS = 50;

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
