// One save file, emulated stream or real (sections 2 and 3): the stream-parse child, audit against cat,
// Xen's verify-stream-v2 as a reference, page-cache residency, and the table row they print as.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { GiB, MiB, CHILD_TIMEOUT_S, ROOT, CLI, log, f2, f3, f1, f0, mib } from './common.js';
import type { Options } from './options.js';
import { median, type Timed, type TimedChild, timedChild, settle, type ChildResult, Runner, checkAudit, checkCat } from './measure.js';
import { type ProfileRun, profileChild } from './cpu-profile.js';

/** Xen's verifier is run --reps times on streams up to this size, once on larger ones (it reads every byte). */
const VERIFY_ALL_REPS_MAX_BYTES = 4 * 2 ** 30;

const STREAM_MODULE = path.join(ROOT, 'dist', 'src', 'formats', 'save-stream.js');

const VERIFIER_SCRIPT = path.join(ROOT, 'scripts', 'get-xen-verifier.sh');
const VERIFIER_BIN = 'usr/lib/xen-4.17/bin/verify-stream-v2';
const VERIFIER_PYTHONPATH = 'usr/lib/xen-4.17/lib/python';

export interface SaveFigures {
  fileBytes: number;
  /** page-cache residency of the file after the warm-up (fincore), null when not measurable */
  cachedBytes: number | null;
  verdict: string;
  /** cat FILE > /dev/null */
  cat: Timed;
  /** audit FILE --system-map MAP --json --jobs 2 */
  audit: TimedChild;
  /** the parse child: wall time (samplesS) and openStream + close timed inside it (inChild*) */
  parse: TimedChild & {
    inChildSamplesS: number[];
    inChildMedianS: number;
    /** file MiB ÷ inChildMedianS */
    mibPerS: number;
    records: number;
    pageDataRecords: number;
    pfns: number;
    withData: number;
  };
  /** Xen's verify-stream-v2 -f xl -i FILE */
  verify: (Timed & { reps: number }) | { unavailable: string };
}

/** The stream-parse child: openStream + close of argv[2], timed inside the child; one JSON line on stdout. */
export function parseChildSource(): string {
  return `import { openStream } from ${JSON.stringify(pathToFileURL(STREAM_MODULE).href)};
const t0 = performance.now();
const img = openStream(process.argv[2]);
const t1 = performance.now();
img.close();
const t2 = performance.now();
const c = img.counts;
process.stdout.write(JSON.stringify({ openS: (t1 - t0) / 1000, totalS: (t2 - t0) / 1000, records: c.records, pageDataRecords: c.pageDataRecords, pfns: c.pfns, withData: c.withData }) + '\\n');
`;
}

interface ParseOut {
  openS: number;
  totalS: number;
  records: number;
  pageDataRecords: number;
  pfns: number;
  withData: number;
}

function checkParse(r: ChildResult, what: string): ParseOut {
  if (r.signal !== null || r.code !== 0) throw new Error(`${what}: ${r.signal !== null ? `killed by ${r.signal}` : `exit status ${r.code}`}\n${r.stderr.trim()}`);
  try {
    return JSON.parse(r.stdout) as ParseOut;
  } catch (e) {
    throw new Error(`${what}: stdout is not JSON (${(e as Error).message}): ${r.stdout.slice(0, 200)}`);
  }
}

type Verifier = { root: string } | { unavailable: string };
let verifierCache: Verifier | null = null;

/** Xen's verify-stream-v2 from Debian's xen-utils-4.17 (scripts/get-xen-verifier.sh: cached, else apt-get download). */
function getVerifier(): Verifier {
  if (verifierCache) return verifierCache;
  const r = spawnSync('bash', [VERIFIER_SCRIPT], { encoding: 'utf8', timeout: 300_000 });
  const root = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  if (r.status === 0 && root && fs.existsSync(path.join(root, VERIFIER_BIN))) verifierCache = { root };
  else {
    const why = (r.stderr ?? '').trim().split('\n').slice(-2).join(' | ');
    verifierCache = { unavailable: `scripts/get-xen-verifier.sh exit ${r.status ?? r.signal}${r.error ? ` (${r.error.message})` : ''}${why ? `: ${why}` : ''}` };
  }
  return verifierCache;
}

/** Bytes of the file in the page cache (util-linux fincore), null when fincore is missing or fails. */
function cachedBytes(file: string): number | null {
  const r = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const v = Number((r.stdout ?? '').trim());
  return Number.isFinite(v) ? v : null;
}

/**
 * The figures of one save file: warm-up (cat, audit, parse), then --reps interleaved rounds of cat, audit
 * and the parse child, then Xen's verifier (--reps times up to VERIFY_ALL_REPS_MAX_BYTES, else once).
 */
export async function measureSave(
  label: string,
  file: string,
  mapFile: string,
  opts: Options,
  runner: Runner,
  parseScript: string,
  profileDir: string | null,
): Promise<{ figures: SaveFigures; profile: ProfileRun | null }> {
  const fileBytes = fs.statSync(file).size;
  const auditArgs = ['audit', file, '--system-map', mapFile, '--json', '--jobs', '2'];
  // a file larger than RAM cannot be warmed: its cat and audit runs read from disk (the cached % column says how much)
  const warmable = fileBytes < os.totalmem();
  log(`${label}: warm-up (${warmable ? 'cat, ' : ''}audit, parse)`);
  if (warmable) checkCat(await runner.run('cat', [file], { stdoutFile: '/dev/null', measureRss: false }), 'warm-up cat');
  const warm = checkAudit(await runner.cli(auditArgs), 'warm-up audit');
  const reference = JSON.stringify(warm);
  checkParse(await runner.run(process.execPath, [parseScript, file], { measureRss: false }), 'warm-up parse');
  const cached = cachedBytes(file);
  const cat: number[] = [];
  const audit = timedChild();
  const parse = timedChild();
  const inChild: number[] = [];
  let counts: ParseOut | null = null;
  for (let rep = 0; rep < opts.reps; rep++) {
    log(`${label}: repetition ${rep + 1}/${opts.reps}`);
    const c = await runner.run('cat', [file], { stdoutFile: '/dev/null', measureRss: false });
    checkCat(c, 'cat');
    cat.push(c.wallS);
    const a = await runner.cli(auditArgs);
    if (JSON.stringify(checkAudit(a, 'audit')) !== reference) throw new Error('audit printed a different report than the warm-up run');
    audit.samplesS.push(a.wallS);
    audit.rssKiB.push(a.rssKiB);
    const p = await runner.run(process.execPath, [parseScript, file]);
    counts = checkParse(p, 'parse child (openStream + close)');
    parse.samplesS.push(p.wallS);
    parse.rssKiB.push(p.rssKiB);
    inChild.push(counts.totalS);
  }
  settle(audit);
  settle(parse);
  const inChildMedianS = median(inChild);

  let verify: SaveFigures['verify'];
  const v = getVerifier();
  if ('unavailable' in v) {
    log(`${label}: Xen's verify-stream-v2 is not available (${v.unavailable}); its figure is left out`);
    verify = { unavailable: v.unavailable };
  } else {
    const reps = fileBytes <= VERIFY_ALL_REPS_MAX_BYTES ? opts.reps : 1;
    const samples: number[] = [];
    for (let i = 0; i < reps; i++) {
      log(`${label}: Xen's verify-stream-v2 -f xl (${i + 1}/${reps})`);
      const r = await runner.run('python3', [path.join(v.root, VERIFIER_BIN), '-f', 'xl', '-i', file], {
        stdoutFile: '/dev/null',
        measureRss: false,
        timeoutS: CHILD_TIMEOUT_S,
        env: { PYTHONPATH: path.join(v.root, VERIFIER_PYTHONPATH) },
      });
      if (r.timedOut) throw new Error(`verify-stream-v2 was killed after ${CHILD_TIMEOUT_S} s`);
      if (r.code !== 0) throw new Error(`Xen's verify-stream-v2 -f xl rejects the file (exit ${r.code ?? r.signal}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      samples.push(r.wallS);
    }
    verify = { samplesS: samples, medianS: median(samples), reps };
  }
  const profile = profileDir ? await profileChild(`audit --jobs 2 of ${label}`, [CLI, ...auditArgs], runner, profileDir) : null;
  return {
    figures: {
      fileBytes,
      cachedBytes: cached,
      verdict: String(warm['verdict']),
      cat: { samplesS: cat, medianS: median(cat) },
      audit,
      parse: {
        ...parse,
        inChildSamplesS: inChild,
        inChildMedianS,
        mibPerS: fileBytes / MiB / inChildMedianS,
        records: counts!.records,
        pageDataRecords: counts!.pageDataRecords,
        pfns: counts!.pfns,
        withData: counts!.withData,
      },
      verify,
    },
    profile,
  };
}

/** One row of a save-file table. */
export const SAVE_HEAD = ['file MiB', 'cached %', 'parse s', 'parse MiB/s', 'parse child s', 'cat s', 'audit s', 'audit/cat', 'verify s', 'verify/cat', 'audit RSS MiB', 'parse RSS MiB', 'verdict'];

/** One row of a save-file table (SAVE_HEAD after the `first` cells). */
export function saveRow(first: string[], f: SaveFigures | undefined, failed: boolean): string[] {
  if (!f) {
    const cells = Array<string>(SAVE_HEAD.length).fill('-');
    if (failed) cells[cells.length - 1] = 'FAILED';
    return [...first, ...cells];
  }
  const v = 'medianS' in f.verify ? f.verify : null;
  return [
    ...first,
    f1(f.fileBytes / MiB),
    f.cachedBytes === null ? '-' : f0((100 * f.cachedBytes) / f.fileBytes),
    f3(f.parse.inChildMedianS),
    f0(f.parse.mibPerS),
    f3(f.parse.medianS),
    f3(f.cat.medianS),
    f3(f.audit.medianS),
    f2(f.audit.medianS / f.cat.medianS),
    v ? f3(v.medianS) : 'n/a',
    v ? f2(v.medianS / f.cat.medianS) : '-',
    mib(f.audit.peakRssKiB),
    mib(f.parse.peakRssKiB),
    f.verdict,
  ];
}

export function saveLegend(reps: number): string {
  return (
    `children, warm-up run first (no warm-up cat for files larger than RAM), median of ${reps}. parse = openStream + close timed inside a child (MiB/s of file size), parse child = its wall time;\n` +
    `audit = bin/p2m-audit (the package command) audit FILE --system-map MAP --json --jobs 2; cat = cat FILE > /dev/null; verify = Xen 4.17's verify-stream-v2 -f xl -i FILE\n` +
    `(python3, Debian xen-utils-4.17; once on files over ${f0(VERIFY_ALL_REPS_MAX_BYTES / GiB)} GiB); cached % = share of the file in the page cache after the warm-up (fincore)\n`
  );
}
