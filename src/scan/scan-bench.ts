// Scan throughput and memory measurement (docs/scan.md "Measured"): builds a corpus of many small
// images in a temp dir — hard links to the committed scenario snapshots (copies across file systems),
// spread over a few directories; the scan finds them by content — then runs runScan over it and
// reports files/s, per-file CPU cost and peak RSS, against the same images audited one at a time in
// process (auditImage, no pool) and through the CLI (`audit`, a process per file).
//   node dist/src/scan/scan-bench.js [--files 2000] [--jobs <cores>] [--keep]
// Run it from the repository root after `npm run build`. Prints one JSON object.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { auditImage } from '../audit/audit-image.js';
import { openImage } from '../formats/open-image.js';
import { runScan } from './scan.js';
import { BENCH_SCENARIOS as SCENARIOS, linkBenchCorpus } from './bench-corpus.js';

const DEFAULT_FILES = 2000;
/** Warm-up and measured passes of the in-process baseline. */
const BASELINE_WARMUP = 1;
const BASELINE_PASSES = 3;
const KIB = 1024;
const MS_PER_SECOND = 1000;
const US_PER_MS = 1000;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function cpuMs(): number {
  const u = process.resourceUsage();
  return (u.userCPUTime + u.systemCPUTime) / US_PER_MS;
}

const round = (x: number, digits = 1): number => Number(x.toFixed(digits));

async function main(): Promise<void> {
  const files = Number(arg('--files') ?? DEFAULT_FILES);
  const jobs = Number(arg('--jobs') ?? Math.max(1, os.availableParallelism()));
  const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
  const scenarioDir = path.join(repo, 'corpora/scenarios');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-scan-bench-'));
  try {
    const corpus = path.join(tmp, 'corpus');
    const bytes = linkBenchCorpus(scenarioDir, corpus, files);

    // the scan first, so its peak RSS is its own
    let lines = 0;
    const cpu0 = cpuMs();
    const t0 = performance.now();
    const { summary } = await runScan([corpus], { jobs, json: true, write: () => lines++ });
    const wallMs = performance.now() - t0;
    const scanCpuMs = cpuMs() - cpu0;
    const peakRssMiB = process.resourceUsage().maxRSS / KIB;

    // baseline 1: each scenario audited in process, on this thread (no pool, no scheduling). CPU time,
    // like the scan's figure, so a machine shared with other work does not skew the comparison.
    const perScenario: Record<string, number> = {};
    const perScenarioWall: Record<string, number> = {};
    for (let pass = 0; pass < BASELINE_WARMUP + BASELINE_PASSES; pass++) {
      for (const name of SCENARIOS) {
        const c = cpuMs();
        const t = performance.now();
        const img = openImage(path.join(scenarioDir, `${name}.p2ms`));
        try {
          await auditImage(img, { jobs: 0 });
        } finally {
          img.close();
        }
        if (pass >= BASELINE_WARMUP) {
          perScenario[name] = (perScenario[name] ?? 0) + (cpuMs() - c) / BASELINE_PASSES;
          perScenarioWall[name] = (perScenarioWall[name] ?? 0) + (performance.now() - t) / BASELINE_PASSES;
        }
      }
    }
    const mean = (m: Record<string, number>): number => SCENARIOS.reduce((s, n) => s + m[n]!, 0) / SCENARIOS.length;
    const inProcessMs = mean(perScenario);

    // baseline 2: the CLI's `audit`, a process per file (what a shell loop over files costs)
    const cli = path.join(repo, 'dist/src/cli.js');
    let cliMs = 0;
    for (const name of SCENARIOS) {
      const t = performance.now();
      spawnSync(process.execPath, [cli, 'audit', '--jobs', String(jobs), path.join(scenarioDir, `${name}.p2ms`)], { stdio: 'ignore' });
      cliMs += (performance.now() - t) / SCENARIOS.length;
    }

    const cpuPerFileMs = scanCpuMs / files;
    process.stdout.write(
      JSON.stringify(
        {
          files,
          jobs,
          corpusMiB: round(bytes / KIB / KIB),
          audited: summary.audited,
          tasks: summary.tasks,
          resultLines: lines,
          wallSeconds: round(wallMs / MS_PER_SECOND, 2),
          filesPerSecond: round((files * MS_PER_SECOND) / wallMs),
          wallPerFileMs: round(wallMs / files, 2),
          loadAverage: round(os.loadavg()[0]!),
          cpuPerFileMs: round(cpuPerFileMs, 2),
          peakRssMiB: round(peakRssMiB),
          singleAuditInProcessCpuMs: round(inProcessMs, 2),
          singleAuditInProcessWallMs: round(mean(perScenarioWall), 2),
          perFileOverheadMs: round(cpuPerFileMs - inProcessMs, 2),
          singleAuditCliMs: round(cliMs),
          perScenarioInProcessCpuMs: Object.fromEntries(SCENARIOS.map((n) => [n, round(perScenario[n]!)])),
        },
        null,
        2,
      ) + '\n',
    );
  } finally {
    if (!process.argv.includes('--keep')) fs.rmSync(tmp, { recursive: true, force: true });
    else process.stderr.write(`corpus kept in ${tmp}\n`);
  }
}

await main();
