// The live commands (in dom0, as root): `audit --domain X`, `p2m --domain X`, `scan --domains all`. They read
// a running PV domain through the optional xenlive addon (src/live/, src/formats/live-domain.ts); a missing
// addon, no /dev/xen/privcmd, no permission, no such domain, an HVM/PVH guest are one-line errors (exit 2),
// a read that never became consistent exits 3, and a paused guest is always unpaused.
import { performance } from 'node:perf_hooks';
import { InputError } from '../common/errors.js';
import { writeOutputText } from '../formats/output-file.js';
import { domainLabel, type LiveDomainImage } from '../formats/live-domain.js';
import { renderJson } from '../report/json.js';
import type { AuditReport } from '../audit/verdict.js';
import { renderText } from '../report/text.js';
import { DomainSession, skipReason, type DomainTarget, type ReadOptions } from '../live/domain-session.js';
import { InconsistentReadError, checkAttempts } from '../live/consistent-read.js';
import { auditLiveDomain } from '../live/live-audit.js';
import { renderLiveP2m, toolstackPageTypes } from '../live/live-p2m.js';
import type { ScanResult } from '../scan/results.js';
import { checkOutputs, symbolsOpt } from './common.js';

/** "could not get a consistent read" (issue 15: distinct from input errors). */
export const EXIT_INCONSISTENT = 3;

export interface LiveOptions {
  pause?: boolean;
  attempts?: number;
  systemMap?: string;
  systemMapDir?: string;
}

export interface AuditDomainOptions extends LiveOptions {
  json?: boolean;
  method?: 'tree' | 'list';
  svg?: string;
  force?: boolean;
  /** print what the read cost (frames mapped, map calls, attempts, ms) on stderr */
  stats?: boolean;
}

function readOptions(o: LiveOptions): ReadOptions {
  if (o.systemMap && o.systemMapDir) throw new InputError('give --system-map or --system-map-dir, not both');
  return {
    pause: o.pause,
    attempts: o.attempts === undefined ? undefined : checkAttempts(o.attempts),
    symbols: symbolsOpt(o.systemMap).symbols,
    systemMapDir: o.systemMapDir,
  };
}

/** Run `fn` in a session; an inconsistent read prints one line and gives exit 3. */
function inSession(fn: (s: DomainSession) => number): number {
  const s = DomainSession.open();
  try {
    return fn(s);
  } catch (e) {
    if (e instanceof InconsistentReadError) {
      process.stderr.write(`p2m-audit: ${e.message}\n`);
      return EXIT_INCONSISTENT;
    }
    throw e;
  } finally {
    s.close();
  }
}

/** What the read cost, for --stats (the last attempt's frames; performance figures of issue 15). */
function statsLine(img: LiveDomainImage, attempts: number, ms: number, paused: boolean): string {
  return `p2m-audit: ${img.label}: ${img.framesMapped} frames mapped in ${img.mapCalls} calls, ${attempts} attempt(s), ${ms.toFixed(1)} ms${paused ? ' (paused)' : ''}\n`;
}

export async function cmdAuditDomain(target: string, o: AuditDomainOptions): Promise<number> {
  const svgRules = { inputs: [o.systemMap], force: o.force };
  checkOutputs([o.svg], svgRules);
  const ro: ReadOptions = { ...readOptions(o), onPaused: o.stats ? (label) => process.stderr.write(`p2m-audit: ${label}: paused\n`) : undefined };
  let report: AuditReport | undefined;
  const code = inSession((s) => {
    const t = s.resolve(target);
    const t0 = performance.now();
    const { value, attempts, img } = s.read(t, (img) => auditLiveDomain(img, { method: o.method }), ro);
    if (o.stats) process.stderr.write(statsLine(img, attempts, performance.now() - t0, !!o.pause));
    report = value.report;
    return report.exitCode;
  });
  if (!report) return code;
  if (o.svg) {
    const { renderSvg } = await import('../report/svg.js');
    writeOutputText(o.svg, renderSvg(report), svgRules);
  }
  process.stdout.write(o.json ? renderJson(report) : renderText(report));
  return code;
}

/** Lines buffered before a write (one line per pfn). */
const LINES_PER_WRITE = 4096;

/**
 * `p2m --domain`: streamed as it is read, so one attempt only; a p2m that changed meanwhile gives exit 3
 * after the lines (use --pause, or pause the guest, for a dump that must match xen-mfndump's).
 */
export function cmdP2mDomain(target: string, o: LiveOptions & { stats?: boolean }): number {
  const ro = { ...readOptions(o), attempts: 1 };
  return inSession((s) => {
    const t = s.resolve(target);
    const t0 = performance.now();
    let buf: string[] = [];
    const flush = (): void => {
      if (buf.length) process.stdout.write(buf.join('\n') + '\n');
      buf = [];
    };
    const { attempts, img } = s.read(
      t,
      (img) => {
        // the types and the entries in the same read, as xc_map_domain_meminfo takes them
        const types = toolstackPageTypes(img);
        renderLiveP2m(img, types, (line) => {
          buf.push(line);
          if (buf.length >= LINES_PER_WRITE) flush();
        });
        flush();
      },
      ro,
    );
    if (o.stats) process.stderr.write(statsLine(img, attempts, performance.now() - t0, !!o.pause));
    return 0;
  });
}

/** `scan --domains all` (or a comma-separated list of ids/names): one line per domain, PV ones audited. */
export async function cmdScanDomains(which: string, o: LiveOptions & { json?: boolean; write: (line: string) => void }): Promise<number> {
  const ro = readOptions(o);
  // loaded here, not at the top: `audit --domain` should not pay for the scan's modules at startup
  const { SummaryBuilder } = await import('../scan/summary.js');
  const { resultJson, resultText } = await import('../scan/results.js');
  return inSession((s) => {
    const targets: DomainTarget[] = which === 'all' ? s.list() : which.split(',').map((w) => s.resolve(w.trim()));
    const summary = new SummaryBuilder(targets.length);
    for (const t of targets) {
      const r = scanOne(s, t, ro);
      summary.add(r, { resumed: false, bytes: 0 });
      o.write(o.json ? resultJson(r) : resultText(r));
    }
    return summary.finish({ elapsedMs: 0, tasks: 0, interrupted: false }).exitCode;
  });
}

function scanOne(s: DomainSession, t: DomainTarget, ro: ReadOptions): ScanResult {
  const file = domainLabel(t.domid, t.name);
  const base = { file, resolved: file, format: 'xen-live' };
  const skip = skipReason(t);
  if (skip) return { ...base, status: 'skipped', exitCode: 0, reason: skip };
  try {
    const { report } = s.read(t, (img) => auditLiveDomain(img), ro).value;
    return { ...base, status: 'audited', verdict: report.verdict, exitCode: report.exitCode, fatalPages: report.fatalPages, reason: report.reason };
  } catch (e) {
    if (e instanceof InputError || e instanceof InconsistentReadError) return { ...base, status: 'error', exitCode: 2, reason: e.message };
    throw e;
  }
}
