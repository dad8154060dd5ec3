// Measuring child processes: wall time from spawn to exit, peak RSS (GNU time or an --import hook),
// medians of repetitions, and the checks of `cat FILE > /dev/null` baselines and `audit --json` children.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { BIN, CLI, log } from './common.js';
import type { Options } from './options.js';

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Timed {
  samplesS: number[];
  medianS: number;
}

export interface TimedChild extends Timed {
  rssKiB: (number | null)[];
  peakRssKiB: number | null;
}

export function timedChild(): TimedChild {
  return { samplesS: [], medianS: NaN, rssKiB: [], peakRssKiB: null };
}

export function settle(t: TimedChild): void {
  t.medianS = median(t.samplesS);
  const known = t.rssKiB.filter((v): v is number => v !== null);
  t.peakRssKiB = known.length ? Math.max(...known) : null;
}

export interface ChildResult {
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

export class Runner {
  private seq = 0;
  constructor(
    readonly rss: RssMethod,
    private readonly tmp: string,
    private readonly hookUrl: string,
  ) {}

  /**
   * Run p2m-audit as a user does: the package's command (bin/p2m-audit: node from the startup snapshot,
   * docs/bench-notes.md "Session 6"), or `node dist/src/cli.js` when the RSS hook needs a node child.
   */
  cli(args: string[], opts: { stdoutFile?: string; measureRss?: boolean; timeoutS?: number; env?: Record<string, string> } = {}): Promise<ChildResult> {
    const hook = opts.measureRss !== false && this.rss === 'hook';
    return hook ? this.run(process.execPath, [CLI, ...args], opts) : this.run(BIN, args, opts);
  }

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
export const RSS_HOOK = `import fs from 'node:fs';
process.on('exit', () => {
  const f = process.env.BENCH_RSS_FILE;
  if (f) try { fs.writeFileSync(f, String(process.resourceUsage().maxRSS) + '\\n'); } catch {}
});
`;

/** Pick the RSS method: /usr/bin/time -f %M when it works here, else the hook (checked too). */
export function chooseRssMethod(wanted: Options['rssMethod'], tmp: string, hookPath: string): RssMethod {
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

export function checkAudit(r: ChildResult, what: string): Record<string, unknown> {
  if (r.signal !== null) throw new Error(`${what}: killed by ${r.signal}\n${r.stderr.trim()}`);
  // 0 clean, 1 fatal, 3 warnings are verdicts; 2 (input error) and 4 (internal error) are failures
  if (r.code !== 0 && r.code !== 1 && r.code !== 3) throw new Error(`${what}: exit status ${r.code}\n${r.stderr.trim()}`);
  try {
    return JSON.parse(r.stdout) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${what}: stdout is not JSON (${(e as Error).message}): ${r.stdout.slice(0, 200)}`);
  }
}

export function checkCat(r: ChildResult, what: string): void {
  if (r.code !== 0) throw new Error(`${what}: exit status ${r.code ?? r.signal}\n${r.stderr.trim()}`);
}
