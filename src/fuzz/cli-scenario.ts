// Hostile CLI scenarios (docs/fuzz.md "CLI scenarios"): where the mutation harness (harness.ts) feeds damaged
// images to openImage + auditImage, a scenario runs the built CLI (dist/src/cli.js) as a user would — on FIFOs,
// devices, '-', huge text inputs, outputs that are inputs, a full disk (RLIMIT_FSIZE through `ulimit -f`),
// images that claim 2^52 pfns — and checks the promises every command makes (README "Exit codes"):
//  - it ends (no hang), under the RSS limit, with 0, 1, 2, 3 or 5: never 4 (internal error) nor a signal;
//  - no stack trace on stderr; exit 2 means one line on stderr and nothing on stdout;
//  - every input is unchanged, and no temporary file (".NAME.PID.N.tmp") is left behind;
//  - what the scenario itself expects (an exit code, a bound on stdout, an output that is whole or absent).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MiB, MS_PER_S } from './limits.js';

/** The classes of docs/fuzz.md "CLI scenarios". */
export type ScenarioClass = 'device-input' | 'output-onto-input' | 'full-disk' | 'huge-text' | 'deep-nesting' | 'huge-claim';

export interface CliRun {
  args: string[];
  /** bytes on standard input (otherwise it is empty: /dev/null) */
  stdin?: Buffer;
  /** RLIMIT_FSIZE for the run, bytes (`ulimit -f`): writes past it fail with EFBIG */
  fileSizeLimit?: number;
  /** standard output redirected to this file (otherwise a pipe) */
  stdoutFile?: string;
  /** files that must be byte-for-byte the same after the run */
  inputs: string[];
  /** exit codes this scenario accepts (default: any of 0, 1, 2, 3, 5) */
  exits?: readonly number[];
  /** most stdout bytes allowed */
  maxStdout?: number;
  /** an output that must be absent after an exit 2 (nothing partial) */
  outputAbsentOnError?: string;
  /** a JSON-lines log that may only hold whole lines (each one parses) */
  wholeLines?: string;
}

export interface CliScenario {
  id: string;
  cls: ScenarioClass;
  /** what it does, in words (also the failure's signature) */
  what: string;
  /** builds its files in `dir` (a fresh directory) and says how to run */
  prepare(dir: string): CliRun;
}

export interface ScenarioOutcome {
  id: string;
  cls: ScenarioClass;
  what: string;
  exit: number | null;
  signal: string | null;
  stdoutBytes: number;
  stderr: string;
  peakRssBytes: number;
  /** every promise broken, in words; empty when the run is fine */
  broken: string[];
}

export interface ScenarioLimits {
  /** the run is killed past this (a hang) */
  wallMs: number;
  rssBytes: number;
}

export const DEFAULT_SCENARIO_LIMITS: ScenarioLimits = { wallMs: 60 * MS_PER_S, rssBytes: 512 * MiB };
const ALLOWED_EXITS: readonly number[] = [0, 1, 2, 3, 5];
const EXIT_INPUT_ERROR = 2;
const RSS_POLL_MS = 50;
const STACK_LINE_RE = /^\s+at .+\(.*:\d+:\d+\)$|^\s+at .+:\d+:\d+$/m;
const TEMP_FILE_RE = /^\..+\.\d+\.\d+\.tmp$/;
const KIB = 1024;

/** The repository root, from this module in src/fuzz (tests) or dist/src/fuzz. */
export function repoRoot(): string {
  const here = fileURLToPath(import.meta.url);
  return path.resolve(path.dirname(here), here.endsWith('.ts') ? '../..' : '../../..');
}

/** dist/src/cli.js (the scenarios run the CLI as it is shipped). */
export function builtCli(): string {
  const js = path.join(repoRoot(), 'dist/src/cli.js');
  if (!fs.existsSync(js)) throw new Error(`the CLI is not built: ${js} is missing (run npm run build)`);
  return js;
}

/** A FIFO at `p` (mkfifo(1): Node has no mkfifo). */
export function makeFifo(p: string): void {
  const r = spawnSync('mkfifo', [p]);
  if (r.status !== 0) throw new Error(`mkfifo ${p} failed: ${r.stderr?.toString() ?? r.error?.message}`);
}

function digest(p: string): string {
  try {
    const st = fs.statSync(p);
    return st.isFile() ? createHash('sha1').update(fs.readFileSync(p)).digest('hex') : `${st.mode}`;
  } catch {
    return 'absent';
  }
}

/** The process is gone or a zombie waiting to be reaped (/proc/PID/stat state Z). */
function exited(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

function vmRss(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * KIB : 0;
  } catch {
    return 0;
  }
}

/** Run one scenario in a fresh directory under `parent` and judge it. */
export async function runScenario(s: CliScenario, parent: string, limits: ScenarioLimits = DEFAULT_SCENARIO_LIMITS, cli = builtCli()): Promise<ScenarioOutcome> {
  const dir = fs.mkdtempSync(path.join(parent, `${s.cls}-`));
  try {
    const run = s.prepare(dir);
    const before = run.inputs.map(digest);
    const limit = run.fileSizeLimit === undefined ? '' : `ulimit -f ${Math.max(1, Math.floor(run.fileSizeLimit / KIB))}; `;
    const redirect = run.stdoutFile ? ' > "$OUT"' : '';
    const child = spawn('bash', ['-c', `${limit}exec "$0" "$@"${redirect}`, process.execPath, cli, ...run.args], {
      cwd: dir,
      env: { ...process.env, OUT: run.stdoutFile ?? '' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdoutBytes = 0;
    let stderr = '';
    let peak = 0;
    child.stdout.on('data', (d: Buffer) => (stdoutBytes += d.length));
    child.stderr.on('data', (d: Buffer) => (stderr.length < 64 * KIB ? (stderr += d.toString('utf8')) : undefined));
    child.stdin.on('error', () => {}); // a command that never reads its input closes the pipe
    child.stdin.end(run.stdin ?? Buffer.alloc(0));
    const killed = { why: '' };
    const poll = setInterval(() => {
      peak = Math.max(peak, vmRss(child.pid!));
      if (peak > limits.rssBytes && !killed.why) {
        killed.why = `RSS ${Math.round(peak / MiB)} MiB passed ${limits.rssBytes / MiB} MiB`;
        child.kill('SIGKILL');
      }
    }, RSS_POLL_MS);
    const timer = setTimeout(() => {
      // the parent's own work (a scenario's prepare) can delay this: a child that already exited is no hang
      if (exited(child.pid!)) return;
      killed.why ||= `still running after ${limits.wallMs} ms (a hang)`;
      child.kill('SIGKILL');
    }, limits.wallMs);
    const [exit, signal] = await new Promise<[number | null, string | null]>((resolve) => child.on('close', (c, sig) => resolve([c, sig])));
    clearInterval(poll);
    clearTimeout(timer);
    if (run.stdoutFile) stdoutBytes = fs.existsSync(run.stdoutFile) ? fs.statSync(run.stdoutFile).size : 0;
    const broken = judge(run, { exit, signal, stdoutBytes, stderr, killed: killed.why }, before, dir);
    return { id: s.id, cls: s.cls, what: s.what, exit, signal, stdoutBytes, stderr, peakRssBytes: peak, broken };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function judge(run: CliRun, r: { exit: number | null; signal: string | null; stdoutBytes: number; stderr: string; killed: string }, before: string[], dir: string): string[] {
  const broken: string[] = [];
  if (r.killed) broken.push(r.killed);
  else if (r.exit === null) broken.push(`died of ${r.signal}`);
  else if (!(run.exits ?? ALLOWED_EXITS).includes(r.exit)) broken.push(`exit ${r.exit}, expected ${(run.exits ?? ALLOWED_EXITS).join(' or ')}`);
  if (STACK_LINE_RE.test(r.stderr) || /internal error/.test(r.stderr)) broken.push('a stack trace or an internal error on stderr');
  if (r.exit === EXIT_INPUT_ERROR) {
    if (r.stdoutBytes > 0 && !run.stdoutFile) broken.push(`exit 2 with ${r.stdoutBytes} bytes on stdout`);
    if (r.stderr.trimEnd().split('\n').length !== 1) broken.push(`exit 2 with ${r.stderr.trimEnd().split('\n').length} lines on stderr, expected one`);
    if (run.outputAbsentOnError && fs.existsSync(run.outputAbsentOnError)) broken.push(`exit 2 left ${path.basename(run.outputAbsentOnError)} behind`);
  }
  if (run.maxStdout !== undefined && r.stdoutBytes > run.maxStdout) broken.push(`${r.stdoutBytes} bytes on stdout, more than ${run.maxStdout}`);
  if (run.wholeLines && fs.existsSync(run.wholeLines)) {
    const text = fs.readFileSync(run.wholeLines, 'utf8');
    if (text.length > 0 && !text.endsWith('\n')) broken.push(`${path.basename(run.wholeLines)} ends in a partial line`);
    for (const l of text.split('\n').filter(Boolean)) {
      try {
        JSON.parse(l);
      } catch {
        broken.push(`${path.basename(run.wholeLines)} holds a torn line`);
        break;
      }
    }
  }
  run.inputs.forEach((p, i) => {
    if (digest(p) !== before[i]) broken.push(`input ${path.basename(p)} changed`);
  });
  const temps = fs.readdirSync(dir).filter((n) => TEMP_FILE_RE.test(n));
  if (temps.length) broken.push(`temporary files left: ${temps.join(', ')}`);
  return broken;
}
