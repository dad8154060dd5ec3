// Bulk scan (src/scan/, docs/scan.md) end to end over a corpus built in a temp dir from the committed
// scenario snapshots (hard links: detection is by content, so names do not matter), plus files that are
// not images. Expected counts come from the table below, derived by hand from corpora/scenarios/*.json
// (expect.verdict, and expect.fatal[].pages summed). Covers: summary counts and the worst-first list,
// the JSON lines schema, skipped and broken files, globs, resume after an interruption (no file
// audited twice, none lost), a worker killed mid-file (retried once on a fresh worker, nothing else lost),
// a real SIGINT (exit 130, every log line whole) and the peak RSS of a 400-file scan.
// The pool runs dist/workers/scan-worker.js: `npm test` builds first; by hand run `npx tsc -p tsconfig.json`.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/common/errors.js';
import { expandGlob, globMatch, hasGlobMagic } from '../src/scan/glob.js';
import { parseResultLine, SCAN_SCHEMA } from '../src/scan/results.js';
import { collectFiles, parseFaultHook, runScan, SUMMARY_SCHEMA, type ScanOptions } from '../src/scan/scan.js';
import { shardThreshold } from '../src/scan/scheduler.js';
import { auditImage } from '../src/audit/audit-image.js';
import { EXIT_PARTIAL } from '../src/audit/verdict.js';
import type { E820Entry } from '../src/inputs/e820.js';
import { openImage } from '../src/formats/open-image.js';
import { writeSaveStream } from '../src/emulate/save-stream-writer.js';
import { formatSystemMap, loadSymbols } from '../src/formats/symbols.js';
import { writeXcCore } from '../src/emulate/dump-core-writer.js';
import { emulate } from '../src/emulate/kernel/boot.js';
import { findProfile } from '../src/emulate/kernel/profiles.js';
import { E820_RAM, PAGE_SIZE } from '../src/xen/abi.js';
import { SCENARIO_VERDICTS } from './helpers/scenario-verdicts.js';

const repo = path.resolve(__dirname, '..');
const scenarioDir = path.join(repo, 'corpora/scenarios');

const SCENARIOS = SCENARIO_VERDICTS;
const NAMES = Object.keys(SCENARIOS);
const WANT_CLEAN = 5;
const WANT_FATAL = 4;
const WANT_FATAL_PAGES = 262241 + 1633 + 97 + 97;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-scan-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function linkOrCopy(src: string, dst: string): void {
  fs.mkdirSync(path.dirname(dst), { recursive: true });
  try {
    fs.linkSync(src, dst);
  } catch {
    fs.copyFileSync(src, dst);
  }
}

/** the corpus: the 9 images under odd names and depths, and 4 files that are not images */
const corpus = path.join(tmp, 'corpus');
const imagePaths = new Map<string, string>(); // scenario name → path in the corpus
const NOT_IMAGES = ['notes.txt', 'empty.bin', 'deep/er/scenario.json', 'deep/random.dat'];

function build(): void {
  NAMES.forEach((name, i) => {
    // every third image deeper, every other one without its extension: content decides
    const rel = i % 3 === 0 ? `deep/er/img-${i}` : i % 2 ? `${name}.p2ms` : `img${i}.snapshot`;
    const dst = path.join(corpus, rel);
    linkOrCopy(path.join(scenarioDir, `${name}.p2ms`), dst);
    imagePaths.set(name, dst);
  });
  fs.writeFileSync(path.join(corpus, 'notes.txt'), 'not an image\n');
  fs.writeFileSync(path.join(corpus, 'empty.bin'), '');
  fs.copyFileSync(path.join(scenarioDir, 'seed-4x.json'), path.join(corpus, 'deep/er/scenario.json'));
  fs.writeFileSync(path.join(corpus, 'deep/random.dat'), Buffer.alloc(8192, 0x5a));
}

interface JsonResult {
  schema: string;
  file: string;
  resolved: string;
  size: number;
  mtimeMs: number;
  status: 'audited' | 'skipped' | 'error';
  format: string | null;
  verdict: string | null;
  exitCode: number;
  fatalPages: number;
  fatalMib: number;
  reason: string | null;
  attempts: number | null;
  ms: number | null;
  at: string | null;
}

async function scan(paths: string[], o: Partial<ScanOptions> = {}) {
  const lines: string[] = [];
  const out = await runScan(paths, { jobs: 2, json: true, fault: null, write: (l) => lines.push(l), ...o });
  const parsed = o.json === false ? [] : lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const results = parsed.filter((j) => j.schema === SCAN_SCHEMA) as unknown as JsonResult[];
  return { ...out, lines, results };
}

function byScenario(results: JsonResult[]): Map<string, JsonResult> {
  const m = new Map<string, JsonResult>();
  for (const [name, p] of imagePaths) {
    const hits = results.filter((r) => r.resolved === p);
    expect(hits.length, `${name}: results`).toBe(1);
    m.set(name, hits[0]!);
  }
  return m;
}

function expectScenarioVerdicts(results: JsonResult[]): void {
  for (const [name, r] of byScenario(results)) {
    expect([r.status, r.verdict, r.fatalPages], name).toEqual(['audited', ...SCENARIOS[name]!]);
  }
}

function logLines(file: string): string[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
}

beforeAll(() => {
  if (!fs.existsSync(path.join(repo, 'dist/workers/scan-worker.js'))) throw new Error('build first: npx tsc -p tsconfig.json');
  build();
});

describe('the hand-derived table', () => {
  it('matches corpora/scenarios/*.json expect blocks', () => {
    for (const name of NAMES) {
      const j = JSON.parse(fs.readFileSync(path.join(scenarioDir, `${name}.json`), 'utf8')) as { expect: { verdict: string; fatal: { pages: number }[] } };
      expect([j.expect.verdict, j.expect.fatal.reduce((s, f) => s + f.pages, 0)], name).toEqual(SCENARIOS[name]);
    }
    expect(NAMES.filter((n) => SCENARIOS[n]![0] === 'CLEAN').length).toBe(WANT_CLEAN);
  });
});

describe('scan: summary, output, skipped and broken files', () => {
  it('text mode: a line per file, then the summary table with counts, fatal MiB and the worst first', async () => {
    const { exitCode, summary, lines } = await scan([corpus], { json: false });
    expect(exitCode).toBe(1); // fatal files, no errors
    expect(summary.files).toBe(NAMES.length + NOT_IMAGES.length);
    expect(summary.audited).toBe(NAMES.length);
    expect(summary.skipped).toBe(NOT_IMAGES.length);
    expect(summary.errors).toBe(0);
    expect(summary.verdicts).toEqual({ CLEAN: WANT_CLEAN, WARN: 0, FATAL: WANT_FATAL, ERROR: 0 });
    expect(summary.fatalPages).toBe(WANT_FATAL_PAGES);
    expect(summary.fatalMib).toBe(WANT_FATAL_PAGES / 256);
    expect(summary.worst.map((w) => w.fatalPages)).toEqual([262241, 1633, 97, 97]);
    expect(summary.worst[0]!.file).toBe(imagePaths.get('above-4g-backport'));
    expect(summary.worst[1]!.file).toBe(imagePaths.get('multi-hole-backport'));
    // one line per file, tagged; then the summary block
    const perFile = lines.filter((l) => /^(CLEAN|WARN|FATAL|ERROR|SKIPPED|FAILED) /.test(l));
    expect(perFile.length).toBe(NAMES.length + NOT_IMAGES.length);
    expect(perFile.filter((l) => l.startsWith('SKIPPED')).length).toBe(NOT_IMAGES.length);
    const text = lines.join('\n');
    expect(text).toMatch(/summary: 13 files: 9 audited, 4 skipped, 0 failed/);
    expect(text).toMatch(/^ {2}CLEAN +5$/m);
    expect(text).toMatch(/^ {2}FATAL +4$/m);
    expect(text).toContain(`fatal: ${WANT_FATAL_PAGES} pages (1031.5 MiB) at risk in all`);
    const worstAt = lines.indexOf('worst files:');
    expect(lines[worstAt + 1]).toMatch(/^ {2}1024\.4 MiB {2}FATAL +\/.*\/above-4g-backport\.p2ms$/);
    expect(lines[worstAt + 2]).toMatch(/^ {5}6\.4 MiB {2}FATAL +\/.*\/img2\.snapshot$/); // multi-hole-backport
  });

  it('large files are split into shards in the shared pool; the verdicts do not change', async () => {
    const total = [...imagePaths.values()].reduce((s, p) => s + fs.statSync(p).size, 0);
    const large = [...imagePaths.values()].filter((p) => fs.statSync(p).size >= shardThreshold(total, 2));
    expect(large.length).toBeGreaterThan(0);
    const two = await scan([corpus], { jobs: 2 });
    expect(two.summary.tasks).toBeGreaterThan(NAMES.length); // more tasks than files: shards
    expectScenarioVerdicts(two.results);
    const one = await scan([corpus], { jobs: 1 });
    expect(one.summary.tasks).toBe(NAMES.length); // one thread: every file whole
    expectScenarioVerdicts(one.results);
  });

  it('JSON lines: every file exactly once with the scan@1 fields, then one summary line', async () => {
    const { lines, results, exitCode } = await scan([corpus, path.join(corpus, 'notes.txt')]); // notes.txt twice: listed once
    expect(exitCode).toBe(1);
    const keys = ['schema', 'file', 'resolved', 'size', 'mtimeMs', 'status', 'format', 'verdict', 'exitCode', 'fatalPages', 'fatalMib', 'reason', 'attempts', 'ms', 'at'];
    for (const r of results) {
      expect(Object.keys(r)).toEqual(keys);
      expect(path.isAbsolute(r.resolved)).toBe(true);
      expect(r.size).toBe(fs.statSync(r.resolved).size);
      expect(r.mtimeMs).toBe(fs.statSync(r.resolved).mtimeMs);
      expect(typeof r.reason).toBe('string');
      expect(r.fatalMib).toBe(r.fatalPages / 256);
      expect(Number.isNaN(Date.parse(r.at!))).toBe(false);
      if (r.status === 'skipped') {
        expect([r.format, r.verdict, r.exitCode, r.attempts]).toEqual([null, null, 0, 0]);
      } else {
        expect(r.status).toBe('audited');
        expect(r.format).toBe('p2ms');
        expect(r.attempts).toBe(1);
      }
    }
    expect(results.length).toBe(NAMES.length + NOT_IMAGES.length);
    expect(new Set(results.map((r) => r.resolved)).size).toBe(results.length);
    expectScenarioVerdicts(results);
    const skipped = results.filter((r) => r.status === 'skipped').map((r) => path.relative(corpus, r.resolved)).sort();
    expect(skipped).toEqual([...NOT_IMAGES].sort());
    expect(results.find((r) => r.resolved.endsWith('empty.bin'))!.reason).toBe('empty file');
    const last = JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
    expect(last.schema).toBe(SUMMARY_SCHEMA);
    expect(last.verdicts).toEqual({ CLEAN: WANT_CLEAN, WARN: 0, FATAL: WANT_FATAL, ERROR: 0 });
    expect(last.exitCode).toBe(1);
  });

  it('a broken image is an error with a one-line reason; the scan goes on and is partial (exit 5)', async () => {
    const dir = path.join(tmp, 'broken');
    fs.mkdirSync(dir, { recursive: true });
    const whole = fs.readFileSync(path.join(scenarioDir, 'seed-4x.p2ms'));
    fs.writeFileSync(path.join(dir, 'cut.p2ms'), whole.subarray(0, 8192)); // right magic, cut short
    linkOrCopy(path.join(scenarioDir, 'small-clean-4x.p2ms'), path.join(dir, 'ok.p2ms'));
    const { exitCode, summary, results } = await scan([dir]);
    expect(exitCode).toBe(EXIT_PARTIAL);
    expect([summary.audited, summary.errors]).toEqual([1, 1]);
    const bad = results.find((r) => r.file.endsWith('cut.p2ms'))!;
    expect([bad.status, bad.exitCode, bad.format]).toEqual(['error', 2, 'p2ms']);
    expect(bad.reason).not.toContain('\n');
    expect(summary.errorList).toEqual([{ file: bad.file, reason: bad.reason }]);
    const clean = results.find((r) => r.file.endsWith('ok.p2ms'))!;
    expect(clean.verdict).toBe('CLEAN');
    const text = await scan([dir], { json: false });
    expect(text.lines.join('\n')).toMatch(/^failed:\n {2}.*cut\.p2ms.*$/m);
  });

  it('all clean → exit 0; bad arguments → InputError', async () => {
    const { exitCode } = await scan([imagePaths.get('seed-4x')!, imagePaths.get('small-clean-4x')!]);
    expect(exitCode).toBe(0);
    await expect(scan([path.join(tmp, 'nope')])).rejects.toThrow(InputError);
    await expect(scan([path.join(tmp, 'nope-*.p2ms')])).rejects.toThrow(/no file matches/);
    await expect(scan([corpus], { jobs: 0 })).rejects.toThrow(InputError);
    await expect(scan([corpus], { resume: true })).rejects.toThrow(/--resume needs --out/);
    expect(() => parseFaultHook('kill')).toThrow(InputError);
    expect(parseFaultHook('exit:a.p2ms')).toEqual({ mode: 'exit', suffix: 'a.p2ms' });
  });
});

describe('globs', () => {
  it('matches *, ? and ** segment-wise, hiding dot names like a shell', () => {
    expect(hasGlobMagic('a/b.p2ms')).toBe(false);
    expect(hasGlobMagic('a/*.p2ms')).toBe(true);
    expect(hasGlobMagic('a/\\*.p2ms')).toBe(false);
    const table: [string, string, boolean][] = [
      ['*.p2ms', 'x.p2ms', true],
      ['*.p2ms', 'd/x.p2ms', false],
      ['*.p2ms', '.x.p2ms', false],
      ['.*.p2ms', '.x.p2ms', true],
      ['img?.snapshot', 'img2.snapshot', true],
      ['img?.snapshot', 'img12.snapshot', false],
      ['**/*.p2ms', 'x.p2ms', true],
      ['**/*.p2ms', 'a/b/c/x.p2ms', true],
      ['**/*.p2ms', 'a/.hidden/x.p2ms', false],
      ['a/**/c', 'a/c', true],
      ['a/**/c', 'a/b/b/c', true],
      ['a/**', 'a/b/c', true],
      ['a\\*b', 'a*b', true],
      ['a\\*b', 'axb', false],
      ['[ab].p2ms', '[ab].p2ms', true],
      ['/abs/*/x', '/abs/d/x', true],
    ];
    for (const [pat, p, want] of table) expect(globMatch(pat, p), `${pat} ~ ${p}`).toBe(want);
  });

  it('expands against the file system and scans what matches', async () => {
    const g = expandGlob(`${corpus}/**/img*`);
    expect(g.matches.map((m) => path.relative(corpus, m))).toEqual(['deep/er/img-0', 'deep/er/img-3', 'deep/er/img-6', 'img2.snapshot', 'img4.snapshot', 'img8.snapshot']);
    expect(collectFiles([`${corpus}/*.p2ms`]).map((f) => path.basename(f))).toEqual(['above-4g-backport.p2ms', 'seed-backport-fixed.p2ms', 'seed-backport.p2ms']);
    const { summary, results } = await scan([`${corpus}/**/img*`, `${corpus}/de?p/er/*.json`]);
    expect([summary.audited, summary.skipped]).toEqual([6, 1]);
    expect(results.every((r) => r.status === 'skipped' || r.verdict !== null)).toBe(true);
    // a glob that matches a directory scans the directory
    const dirs = await scan([`${corpus}/dee?`]);
    expect(dirs.summary.files).toBe(3 + NOT_IMAGES.filter((n) => n.startsWith('deep/')).length);
  });
});

describe('resume and the results log', () => {
  it('interrupted after N results, resumed: every file exactly once, none audited twice', async () => {
    const out = path.join(tmp, 'resume.jsonl');
    const N = 4;
    const ac = new AbortController();
    let seen = 0;
    const first = await scan([corpus], {
      out,
      signal: ac.signal,
      write: (l) => {
        if (JSON.parse(l).schema === SCAN_SCHEMA && ++seen === N) ac.abort(); // the hook: stop after N results
      },
    });
    expect(first.exitCode).toBe(130);
    expect(first.summary.interrupted).toBe(true);
    expect(first.summary.done).toBe(N);
    const before = logLines(out);
    expect(before.length).toBe(N);

    const second = await scan([corpus], { out, resume: true });
    expect(second.summary.resumed).toBe(N);
    expect(second.summary.scannedFiles).toBe(NAMES.length + NOT_IMAGES.length - N);
    expect(second.results.length).toBe(NAMES.length + NOT_IMAGES.length - N); // only the rest printed and audited
    const after = logLines(out);
    expect(after.slice(0, N)).toEqual(before); // resumed lines untouched
    const records = after.map((l) => parseResultLine(l)!);
    expect(records.every((r) => r !== null)).toBe(true);
    expect(records.length).toBe(NAMES.length + NOT_IMAGES.length);
    expect(new Set(records.map((r) => r.resolved)).size).toBe(records.length);
    // the summary covers the whole set, resumed results included
    expect(second.summary.verdicts).toEqual({ CLEAN: WANT_CLEAN, WARN: 0, FATAL: WANT_FATAL, ERROR: 0 });
    expect(second.summary.fatalPages).toBe(WANT_FATAL_PAGES);
    expect(second.exitCode).toBe(1);

    // nothing left: a third resume audits nothing
    const third = await scan([corpus], { out, resume: true });
    expect([third.results.length, third.summary.tasks, third.summary.resumed]).toEqual([0, 0, NAMES.length + NOT_IMAGES.length]);

    // a file that changed (mtime) is scanned again; a partial last line (a killed writer) is cut off
    const touched = imagePaths.get('small-clean-4x')!;
    const t = new Date(fs.statSync(touched).mtimeMs + 60_000); // a minute past its own mtime: no clock read
    fs.utimesSync(touched, t, t);
    fs.appendFileSync(out, '{"schema":"p2m-audit/scan@1","file":"half');
    const fourth = await scan([corpus], { out, resume: true });
    expect(fourth.results.map((r) => r.resolved)).toEqual([touched]);
    const final = logLines(out);
    expect(final.length).toBe(NAMES.length + NOT_IMAGES.length + 1);
    expect(final.every((l) => parseResultLine(l) !== null)).toBe(true);
  });
});

describe('worker failures', () => {
  const total = NAMES.length + NOT_IMAGES.length;
  it.each([
    ['exit', 'seed-4x'], // a small file: one task, the worker thread exits mid-file
    ['exit', 'above-4g-backport'], // a large file: its shards' workers exit
    ['throw', 'multi-hole-backport'],
  ] as const)('worker %s on %s: retried once on a fresh worker, every other result exactly once', async (mode, name) => {
    const victim = imagePaths.get(name)!;
    const out = path.join(tmp, `fault-${mode}-${name}.jsonl`);
    const { results, summary, exitCode } = await scan([corpus], { out, fault: { mode, suffix: path.relative(corpus, victim) } });
    expect(exitCode).toBe(1);
    expect(results.length).toBe(total);
    expect(new Set(results.map((r) => r.resolved)).size).toBe(total);
    expectScenarioVerdicts(results);
    const hit = results.find((r) => r.resolved === victim)!;
    expect(hit.attempts).toBe(2);
    expect(summary.retried).toBeGreaterThanOrEqual(1);
    expect(summary.errors).toBe(0);
    const logged = logLines(out).map((l) => parseResultLine(l)!);
    expect(logged.length).toBe(total);
    expect(new Set(logged.map((r) => r.resolved)).size).toBe(total);
  });

  it('the hook also comes from P2M_AUDIT_SCAN_FAULT', async () => {
    const victim = imagePaths.get('seed-backport')!;
    process.env.P2M_AUDIT_SCAN_FAULT = `exit:${path.basename(victim)}`;
    try {
      const { results } = await scan([corpus], { fault: undefined });
      expect(results.find((r) => r.resolved === victim)!.attempts).toBe(2);
      expectScenarioVerdicts(results);
    } finally {
      delete process.env.P2M_AUDIT_SCAN_FAULT;
    }
  });
});

/** Many names for the 9 images (hard links), as the scale tests use. */
function manyCorpus(dir: string, count: number): void {
  for (let i = 0; i < count; i++) {
    linkOrCopy(path.join(scenarioDir, `${NAMES[i % NAMES.length]}.p2ms`), path.join(dir, `d${i % 7}`, `f${i}`));
  }
}

/** Run runScan in a child process (real signals, real RSS). */
function child(script: string, onLine?: (line: string, kill: () => void) => void): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  const file = path.join(tmp, `child-${Math.random().toString(36).slice(2)}.mjs`);
  fs.writeFileSync(file, script);
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let pending = '';
    p.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      pending += d.toString();
      const parts = pending.split('\n');
      pending = parts.pop()!;
      for (const l of parts) onLine?.(l, () => p.kill('SIGINT'));
    });
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const scanModule = pathToFileURL(path.join(repo, 'dist/src/scan/scan.js')).href;

describe('signals and memory (child processes)', () => {
  it('SIGINT: stops with exit 130, the log holds only whole lines, a resume finishes the rest', async () => {
    const dir = path.join(tmp, 'sigint');
    const count = 200;
    manyCorpus(dir, count);
    const out = path.join(tmp, 'sigint.jsonl');
    const script = `import { runScan } from ${JSON.stringify(scanModule)};
const r = await runScan([${JSON.stringify(dir)}], { jobs: 1, json: true, out: ${JSON.stringify(out)}, write: (l) => process.stdout.write(l + '\\n') });
process.exitCode = r.exitCode;`;
    let lines = 0;
    let sent = false;
    const r = await child(script, (_l, kill) => {
      if (++lines === 5 && !sent) {
        sent = true;
        kill();
      }
    });
    expect(r.stderr).toBe('');
    expect([r.code, r.signal]).toEqual([130, null]);
    const logged = logLines(out);
    expect(fs.readFileSync(out, 'utf8').endsWith('\n')).toBe(true);
    expect(logged.every((l) => parseResultLine(l) !== null)).toBe(true);
    expect(logged.length).toBeGreaterThanOrEqual(5);
    expect(logged.length).toBeLessThan(count);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { interrupted: boolean; done: number };
    expect(summary.interrupted).toBe(true);
    expect(summary.done).toBe(logged.length); // stdout and the log agree: nothing half-written, nothing lost
    const rest = await scan([dir], { out, resume: true });
    expect(rest.summary.resumed).toBe(logged.length);
    expect(rest.results.length).toBe(count - logged.length);
    expect(new Set(logLines(out).map((l) => parseResultLine(l)!.resolved)).size).toBe(count);
  });

  it('peak RSS of a 400-file scan stays under 512 MiB', async () => {
    const dir = path.join(tmp, 'rss');
    manyCorpus(dir, 400);
    const script = `import os from 'node:os';
import { runScan } from ${JSON.stringify(scanModule)};
const r = await runScan([${JSON.stringify(dir)}], { jobs: Math.max(1, os.availableParallelism()), json: true, write: () => {} });
process.stdout.write(JSON.stringify({ maxRssKiB: process.resourceUsage().maxRSS, audited: r.summary.audited, exitCode: r.exitCode }) + '\\n');`;
    const r = await child(script);
    expect(r.stderr).toBe('');
    const m = JSON.parse(r.stdout.trim()) as { maxRssKiB: number; audited: number; exitCode: number };
    expect(m.audited).toBe(400);
    expect(m.exitCode).toBe(1);
    expect(m.maxRssKiB).toBeLessThan(512 * 1024);
  });
});

describe('--system-map for save and dump-core files without FILE.map', () => {
  // A small linux-4.x dom0 (64 MiB) written as an xl save file and an xl dump-core: neither carries symbols,
  // so each needs FILE.map beside it or --system-map. The expected verdict comes from a second code path:
  // `audit` (openImage + auditImage) of the same file with the symbols given directly.
  const MiB = 2 ** 20;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-audit-scan-map-'));
  const dumps = path.join(work, 'dumps');
  const save = path.join(dumps, 'guest.save');
  const core = path.join(dumps, 'guest.core');
  const map = path.join(work, 'System.map');
  let want: { verdict: string; fatalPages: number } = { verdict: '', fatalPages: -1 };
  beforeAll(async () => {
    fs.mkdirSync(dumps);
    const hostE820: E820Entry[] = [
      { addr: 0, size: 0x9fc00, type: E820_RAM },
      { addr: 0x100000, size: 255 * MiB, type: E820_RAM },
    ];
    const nrPages = (64 * MiB) / PAGE_SIZE;
    const g = emulate({ profile: findProfile('linux-4.x')!, hostE820, nrPages, maxPages: nrPages, seed: 1 });
    writeSaveStream(g.image, save, { wrapper: 'xl' });
    writeXcCore(g.image, core);
    fs.writeFileSync(map, formatSystemMap(g.image.symbols));
    const img = openImage(save, { symbols: loadSymbols(map) });
    try {
      const { report } = await auditImage(img, { jobs: 0 });
      want = { verdict: report.verdict, fatalPages: report.fatalPages };
    } finally {
      img.close();
    }
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  const sorted = (r: JsonResult[]) => [...r].sort((a, b) => a.file.localeCompare(b.file)); // completion order varies

  it('without it: one-line errors naming the missing symbols, partial (exit 5)', async () => {
    const r = await scan([dumps]);
    expect(r.exitCode).toBe(EXIT_PARTIAL);
    expect(sorted(r.results).map((x) => [path.basename(x.file), x.status])).toEqual([
      ['guest.core', 'error'],
      ['guest.save', 'error'],
    ]);
    for (const x of r.results) expect(x.reason).toMatch(/no kernel symbols \(give --system-map\)/);
  });

  it('with it: both audited with the verdict of a direct audit; FILE.map beside an image wins', async () => {
    expect(want.verdict).toBe('CLEAN');
    const r = await scan([dumps], { systemMap: map });
    expect(r.exitCode).toBe(0);
    expect(sorted(r.results).map((x) => [path.basename(x.file), x.status, x.verdict, x.fatalPages])).toEqual([
      ['guest.core', 'audited', want.verdict, want.fatalPages],
      ['guest.save', 'audited', want.verdict, want.fatalPages],
    ]);
    // a FILE.map beside the save whose symbols are useless: it is preferred, so that file fails
    const wrong = save + '.map';
    fs.writeFileSync(wrong, 'ffffffff81000000 T _text\n');
    try {
      const r2 = await scan([save], { systemMap: map });
      expect(r2.results[0]!.status).toBe('error');
      expect(r2.results[0]!.reason).toMatch(/no p2m symbols found/);
    } finally {
      fs.rmSync(wrong);
    }
  });

  it('a --system-map that cannot be read is an input error before any file is scanned', async () => {
    await expect(scan([dumps], { systemMap: path.join(work, 'missing.map') })).rejects.toThrow(InputError);
  });
});
