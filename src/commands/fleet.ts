// `p2m-audit fleet submit|worker|status|results` (docs/fleet.md): options wired to src/fleet/. Only
// commander is loaded up front; BullMQ, ioredis and the engine load when a fleet command runs.
import os from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { FleetConnection } from '../fleet/connection.js';
import type { ToolstackMethod } from '../views/toolstack-view.js';

interface ConnOpts {
  queue?: string;
  prefix?: string;
}

/** Poll interval of --wait. */
const WAIT_POLL_MS = 1000;

function positiveInt(what: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected ${what} (a whole number ≥ 1)`);
    return n;
  };
}

function positiveNumber(what: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected ${what} (> 0)`);
    return n;
  };
}

function withConnection(c: Command): Command {
  return c
    .option('--queue <url>', 'Redis URL: redis://[user:password@]host[:port][/db] or rediss:// for TLS (default: $P2M_AUDIT_REDIS_URL, then $REDIS_URL)')
    .option('--prefix <prefix>', 'key prefix of this deployment: every key starts with it', 'p2m-audit');
}

const out = (line: string): void => {
  process.stdout.write(line + '\n');
};
const err = (line: string): void => {
  process.stderr.write(`p2m-audit: ${line}\n`);
};

/** Probe the server (one-line exit 2 when it is unreachable or too old), run `body`, map lost connections to exit 2. */
async function withFleet<T>(o: ConnOpts, body: (conn: FleetConnection) => Promise<T>): Promise<T> {
  const { connectFleet, evictionWarning, asConnectionError } = await import('../fleet/connection.js');
  const conn = await connectFleet(o);
  const warning = evictionWarning(conn);
  if (warning) err(warning);
  try {
    return await body(conn);
  } catch (e) {
    throw asConnectionError(e, conn);
  }
}

export function addFleetCommand(program: Command): void {
  const fleet = program
    .command('fleet')
    .description('audit corpora larger than one machine: jobs on a BullMQ queue in Redis, run by workers on any number of hosts (docs/fleet.md)');

  withConnection(fleet.command('submit <paths...>'))
    .description("queue one audit job per image under the paths (walked and detected as scan does), under a parent job for this run of the corpus; unchanged files already audited are not queued again")
    .requiredOption('--name <name>', 'corpus name (status and results are asked for by it)')
    .option('--system-map <file>', 'kernel symbols for save and dump-core files without FILE.map (the same absolute path must exist on every worker host)')
    .addOption(new Option('--method <m>', 'force the toolstack walk').choices(['tree', 'list']))
    .option('--priority <n>', 'BullMQ priority of these jobs (1 runs first)', positiveInt('a priority'))
    .option('--shard-mib <n>', 'split files of this many MiB and more into shard jobs', positiveNumber('a size in MiB'), 64)
    .option('--keep-days <n>', 'days results and records stay in Redis', positiveNumber('a number of days'), 14)
    .option('--json', 'print the run record as JSON')
    .action(async (paths: string[], o: ConnOpts & { name: string; systemMap?: string; method?: ToolstackMethod; priority?: number; shardMib: number; keepDays: number; json?: boolean }) => {
      await withFleet(o, async (conn) => {
        const { runSubmit, submitLine } = await import('../fleet/submit.js');
        const r = await runSubmit(conn, paths, o);
        out(o.json ? JSON.stringify(r.meta) : submitLine(r.meta));
      });
      process.exitCode = 0;
    });

  withConnection(fleet.command('worker'))
    .description('take audit jobs from the queue until SIGTERM (then finish the running ones and exit)')
    .option('--jobs <n>', 'audit threads in this process', positiveInt('a thread count'), Math.max(1, os.availableParallelism()))
    .option('--lock-ms <n>', "job lock (BullMQ lockDuration): a worker that dies loses its jobs to the others after this long", positiveInt('milliseconds'), 30_000)
    .option('--stalled-ms <n>', 'how often this worker looks for stalled jobs (BullMQ stalledInterval)', positiveInt('milliseconds'), 30_000)
    .option('--heap-mib <n>', 'heap limit of an audit thread; a thread past it dies and its job is retried once', positiveInt('MiB'), 1024)
    .action(async (o: ConnOpts & { jobs: number; lockMs: number; stalledMs: number; heapMib: number }) => {
      process.exitCode = await withFleet(o, async (conn) => {
        const { runWorker } = await import('../fleet/worker.js');
        return runWorker(conn, { ...o, write: out, warn: err });
      });
    });

  withConnection(fleet.command('status'))
    .description('progress of the latest run of a corpus: files done, running, waiting, failed, MiB, ETA, verdict counts, the worst files')
    .requiredOption('--name <name>', 'corpus name given to submit')
    .option('--wait', 'poll until no file is running or waiting, then print')
    .option('--json', `one JSON object (schema p2m-audit/fleet-status@1)`)
    .action(async (o: ConnOpts & { name: string; wait?: boolean; json?: boolean }) => {
      await withFleet(o, async (conn) => {
        const { readRun, readRunWhenDone, runStatus, statusLines } = await import('../fleet/fleet-report.js');
        const { renderSummary } = await import('../scan/summary.js');
        const st = runStatus(o.wait ? await readRunWhenDone(conn, o.name, WAIT_POLL_MS) : await readRun(conn, o.name));
        if (o.json) out(JSON.stringify(st));
        else for (const line of [...statusLines(st), ...renderSummary(st.summary).slice(1)]) out(line);
      });
      process.exitCode = 0;
    });

  withConnection(fleet.command('results'))
    .description('the results of the latest run of a corpus, one per file (as scan prints them), then the summary; exit code as scan')
    .requiredOption('--name <name>', 'corpus name given to submit')
    .option('--wait', 'poll until no file is running or waiting, then print')
    .option('--json', 'JSON lines: one per file (schema p2m-audit/scan@1, as scan --json), then a summary line')
    .action(async (o: ConnOpts & { name: string; wait?: boolean; json?: boolean }) => {
      process.exitCode = await withFleet(o, async (conn) => {
        const { readRun, readRunWhenDone, runStatus } = await import('../fleet/fleet-report.js');
        const { resultJson, resultText } = await import('../scan/results.js');
        const { renderSummary } = await import('../scan/summary.js');
        const { SUMMARY_SCHEMA } = await import('../scan/scan.js');
        const run = o.wait ? await readRunWhenDone(conn, o.name, WAIT_POLL_MS) : await readRun(conn, o.name);
        for (const v of run.views) if (v.result) out(o.json ? resultJson(v.result) : resultText(v.result));
        const st = runStatus(run);
        if (o.json) out(JSON.stringify({ schema: SUMMARY_SCHEMA, ...st.summary }));
        else for (const line of renderSummary(st.summary)) out(line);
        const pending = st.running + st.waiting;
        if (pending) err(`${pending} of ${st.files} files have no result yet (fleet results --wait waits for them)`);
        return st.summary.exitCode;
      });
    });
}
