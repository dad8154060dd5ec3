// CLI scenarios (cli-scenario.ts) for a full disk: RLIMIT_FSIZE (`ulimit -f`) makes every write past the
// limit fail with EFBIG, as ENOSPC would on a full file system. Each output must then be an output error
// (exit 2, one line naming the path), with nothing partial left: no output file, no temporary file, a scan
// log of whole lines only, and a full standard output reported the same way.
import path from 'node:path';
import type { CliRun, CliScenario } from './cli-scenario.js';
import type { ScenarioCorpus } from './scenarios-paths.js';
import type { Rng } from './rng.js';

const KiB = 1024;
/** Limits tried: a few blocks, one page-table's worth, larger than a small output but smaller than a big one. */
const LIMITS = [1 * KiB, 4 * KiB, 64 * KiB, 1024 * KiB] as const;

export function fullDiskScenarios(c: ScenarioCorpus, rng: Rng): CliScenario[] {
  const cases: { what: string; run: (dir: string, limit: number) => CliRun }[] = [
    {
      what: 'emulate -o (xl-save: the stream and its FILE.map)',
      run: (d, limit) => {
        const out = path.join(d, 'g.save');
        return { args: ['emulate', '--e820', c.host, '--profile', 'linux-4.x', '--dom0-mem', '64m', '--format', 'xl-save', '-o', out], fileSizeLimit: limit, inputs: [c.host], outputAbsentOnError: out };
      },
    },
    {
      what: 'emulate -o (p2ms snapshot)',
      run: (d, limit) => {
        const out = path.join(d, 'g.p2ms');
        return { args: ['emulate', '--e820', c.host, '--profile', 'linux-4.x', '--dom0-mem', '64m', '-o', out], fileSizeLimit: limit, inputs: [c.host], outputAbsentOnError: out };
      },
    },
    {
      what: 'audit --svg',
      run: (d, limit) => {
        const out = path.join(d, 'x.svg');
        return { args: ['audit', c.snapshot, '--jobs', '1', '--svg', out], fileSizeLimit: limit, inputs: [c.snapshot], outputAbsentOnError: out, exits: [0, 1, 2] };
      },
    },
    {
      what: 'scan --out (the results log)',
      run: (d, limit) => {
        const log = path.join(d, 'results.jsonl');
        return { args: ['scan', c.snapshot, c.treeSnapshot, '--jobs', '1', '--out', log], fileSizeLimit: limit, inputs: [c.snapshot, c.treeSnapshot], wholeLines: log, exits: [1, 2] };
      },
    },
    {
      what: 'p2m > a file (standard output fills up)',
      run: (d, limit) => ({ args: ['p2m', c.snapshot], fileSizeLimit: limit, stdoutFile: path.join(d, 'p2m.txt'), inputs: [c.snapshot], exits: [0, 2] }),
    },
  ];
  return cases.map((k) => {
    const limit = rng.pick(LIMITS);
    return { id: '', cls: 'full-disk' as const, what: `${k.what}, RLIMIT_FSIZE ${limit / KiB} KiB`, prepare: (dir: string) => k.run(dir, limit) };
  });
}
