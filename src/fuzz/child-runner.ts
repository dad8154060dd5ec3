// The fuzz parent's view of one child process (docs/fuzz.md): forks the compiled child, sends it batches,
// times every mutant from the child's "start" message, polls its CPU time and RSS, and maps the watchdog's
// stack of a hung child back through the source maps.
import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { SourceMap } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KiB, MiB, MS_PER_S, STAT_STIME_FIELD, STAT_UTIME_FIELD, USER_HZ, WALL_BACKSTOP_FACTOR } from './limits.js';
import type { Outcome } from './outcome.js';
import { CHILD_FLAG, STACK_MARKER, type FromChild, type Job, type ResultMsg, type ToChild } from './protocol.js';

/** Time a child may spend outside a mutant run (start-up, working copies, undoing a truncation). */
const SETUP_TIMEOUT_MS = 120_000;
/** Parent's RSS and CPU poll period. */
const RSS_POLL_MS = 100;
/** Time left for the watchdog's stack line to arrive after a hang is declared. */
const STACK_GRACE_MS = 1_500;
/** V8 old-space cap for children: above the RSS limit, so the RSS check decides first. */
const CHILD_HEAP_FACTOR = 2;
/** Bytes of a child's stderr kept for crash reports. */
const STDERR_TAIL = 8 * KiB;

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

// ---- the parent's view of one child ---------------------------------------------------------------------------
export interface BatchEnd {
  results: ResultMsg[];
  /** set when the child hung, died or ran out of memory before finishing the batch */
  aborted: { outcome: Outcome; inFlight: number | null; retired?: boolean } | null;
}

export class ChildRunner {
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

