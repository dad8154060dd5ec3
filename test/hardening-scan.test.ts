// Issue 12, items 10 and 14 (scan): a named FIFO, device or '-' is listed as skipped with its reason (never
// opened: it would block or never end); --resume counts the log lines it ignores on stderr; the summary
// says "file"/"files", keeps failed files apart from the ERROR verdict, and counts the bytes of audited
// files only. Expected values come from what the tests put in the directory and the log, and from stat().
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT_PARTIAL } from '../src/audit/verdict.js';
import { makeFifo } from '../src/fuzz/cli-scenario.js';
import { resultJson } from '../src/scan/results.js';
import { runScan, type ScanOptions } from '../src/scan/scan.js';
import { renderSummary } from '../src/scan/summary.js';

const repo = path.resolve(__dirname, '..');
const good = path.join(repo, 'corpora/scenarios/small-clean-4x.p2ms');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-hardening-scan-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const at = (name: string) => path.join(tmp, name);

async function scan(paths: string[], opts: Partial<ScanOptions> = {}) {
  const out: string[] = [];
  const warnings: string[] = [];
  const r = await runScan(paths, { jobs: 1, json: false, progress: false, write: (l) => out.push(l), warn: (l) => warnings.push(l), ...opts });
  return { ...r, out, warnings };
}

describe('scan: named paths that are not regular files (item 10)', () => {
  it("a FIFO, /dev/zero and '-' are skipped with the reason, none opened; the summary counts 3 files", async () => {
    const fifo = at('named.fifo');
    makeFifo(fifo);
    const r = await scan([fifo, '/dev/zero', '-']);
    expect(r.exitCode).toBe(0);
    expect(r.out.slice(0, 3)).toEqual([
      `SKIPPED  ${fifo}  (a FIFO: only regular files are scanned: images are read at random offsets)`,
      'SKIPPED  /dev/zero  (a character device: only regular files are scanned: images are read at random offsets)',
      'SKIPPED  -  (standard input: only regular files are scanned: images are read at random offsets)',
    ]);
    expect([r.summary.files, r.summary.skipped, r.summary.audited, r.summary.errors]).toEqual([3, 3, 0, 0]);
  });
});

describe('scan --resume: lines of the log that are not results are counted (item 14)', () => {
  it('garbage, another schema, an over-long line are counted on stderr; the keyless records a scan writes are not', async () => {
    const dir = at('resume');
    fs.mkdirSync(dir);
    fs.copyFileSync(good, path.join(dir, 'a.p2ms'));
    const log = at('results.jsonl');
    const garbage = ['not json at all', '{"schema":"something-else@1","file":"x"}', '{"schema":"p2m-audit/scan@1"', 'x'.repeat(100_000)];
    // a keyless record, as scan writes for a path it could not list (size and mtime null)
    const keyless = resultJson({ file: '/nowhere', status: 'error', reason: 'cannot stat (EACCES)', attempts: 0 });
    fs.writeFileSync(log, [...garbage, keyless].join('\n') + '\n');
    const r = await scan([dir], { out: log, resume: true });
    expect(r.warnings).toEqual([`--resume: ${garbage.length} lines of ${log} are not p2m-audit/scan@1 results and were ignored`]);
    expect(r.summary.audited).toBe(1);
    // the second resume finds the first one's line and audits nothing; the same garbage is counted again
    const again = await scan([dir], { out: log, resume: true });
    expect([again.summary.resumed, again.summary.scannedFiles]).toEqual([1, 0]);
    expect(again.warnings).toHaveLength(1);
  });
});

describe('scan summary wording and counts (item 14)', () => {
  it('"1 file", failed kept apart from the ERROR verdict, bytes of audited files only', async () => {
    const dir = at('mixed');
    fs.mkdirSync(dir);
    fs.copyFileSync(good, path.join(dir, 'ok.p2ms'));
    // right magic, cut short: a failed file whose bytes were never read through
    fs.writeFileSync(path.join(dir, 'cut.p2ms'), fs.readFileSync(good).subarray(0, 8192));
    const r = await scan([dir]);
    expect(r.exitCode).toBe(EXIT_PARTIAL);
    expect(r.summary.scannedBytes).toBe(fs.statSync(good).size);
    expect([r.summary.audited, r.summary.errors, r.summary.verdicts.ERROR]).toEqual([1, 1, 0]);
    const text = r.out.join('\n');
    expect(text).toMatch(/^summary: 2 files: 1 audited, 0 skipped, 1 failed$/m);
    expect(text).toMatch(/^ {2}\(not audited: 1 failed, 0 skipped\)$/m);
    expect(text).toMatch(/^failed:$/m);
    const one = renderSummary({ ...r.summary, files: 1, scannedFiles: 1, tasks: 1 });
    expect(one[1]).toBe('summary: 1 file: 1 audited, 0 skipped, 1 failed');
    expect(one[2]).toMatch(/^ {2}scanned 1 file in [\d.]+ s \([\d.]+ MiB audited\): [\d.]+ files\/s, 1 worker task$/);
  });
});
