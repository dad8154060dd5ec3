// The scan and fleet benches' corpus (docs/scan.md "Benchmark"): hard links to the committed scenario
// snapshots (corpora/scenarios/<name>.p2ms), spread over directories, so a large corpus costs no disk.
import fs from 'node:fs';
import path from 'node:path';

/** The committed scenario snapshots the corpus is made of. */
export const BENCH_SCENARIOS = [
  'above-4g-4x',
  'above-4g-backport',
  'multi-hole-backport',
  'seed-3.8-unpatched',
  'seed-4x',
  'seed-backport-fixed',
  'seed-backport-nomax',
  'seed-backport',
  'small-clean-4x',
] as const;
/** Directories the corpus is spread over. */
export const BENCH_CORPUS_DIRS = 20;

/**
 * `files` files in `corpus`/d0 … d19 (guest-0, guest-1, …), cycling through the scenarios: hard links, or
 * copies where the file system refuses a link. Returns their total size in bytes.
 */
export function linkBenchCorpus(scenarioDir: string, corpus: string, files: number): number {
  for (let d = 0; d < BENCH_CORPUS_DIRS; d++) fs.mkdirSync(path.join(corpus, `d${d}`), { recursive: true });
  let bytes = 0;
  for (let i = 0; i < files; i++) {
    const src = path.join(scenarioDir, `${BENCH_SCENARIOS[i % BENCH_SCENARIOS.length]}.p2ms`);
    const dst = path.join(corpus, `d${i % BENCH_CORPUS_DIRS}`, `guest-${i}`);
    try {
      fs.linkSync(src, dst);
    } catch {
      fs.copyFileSync(src, dst);
    }
    bytes += fs.statSync(dst).size;
  }
  return bytes;
}
