// What one fuzz run did (docs/fuzz.md) and the signature its failure is grouped by. Failure = an exception
// other than InputError, a hang, an RSS over the limit, a dead child, or file descriptors left open.
import { MiB } from './limits.js';

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

export function isFailure(o: Outcome): boolean {
  return o.status !== 'ok' && o.status !== 'rejected';
}

export function errorFields(e: unknown): { name: string; message: string; stack: string } {
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
