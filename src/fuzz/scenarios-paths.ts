// CLI scenarios (cli-scenario.ts) for the paths a new user tries: every image and text input given as a FIFO
// without a writer, /dev/zero, /dev/urandom, a directory or '-' (empty, junk or valid standard input), and
// every output pointed at an input (the same path, a hard or symbolic link, the FILE.map side file) or at a
// device or FIFO. Inputs must come back unchanged; FIFOs and devices are refused (exit 2) without blocking.
import fs from 'node:fs';
import path from 'node:path';
import { makeFifo, type CliRun, type CliScenario } from './cli-scenario.js';
import type { Rng } from './rng.js';

/** Corpus files the scenarios use (relative to the repository). */
export interface ScenarioCorpus {
  host: string;
  snapshot: string;
  treeSnapshot: string;
  kconfig: string;
}

export function scenarioCorpus(repo: string): ScenarioCorpus {
  const c = (p: string): string => path.join(repo, 'corpora', p);
  return { host: c('scenarios/hosts/seed-host.txt'), snapshot: c('scenarios/seed-4x.p2ms'), treeSnapshot: c('scenarios/seed-backport.p2ms'), kconfig: c('real/config-6.1.0-56-amd64.gz') };
}

type Source = 'fifo' | 'dev-zero' | 'dev-urandom' | 'directory' | 'stdin-empty' | 'stdin-junk';
const SOURCES: readonly Source[] = ['fifo', 'dev-zero', 'dev-urandom', 'directory', 'stdin-empty', 'stdin-junk'];
const JUNK_BYTES = 64 * 1024;

/** Where a hostile input lives, made in `dir`; '-' sources get their bytes on stdin. */
function source(kind: Source, dir: string, rng: Rng): { path: string; stdin?: Buffer } {
  switch (kind) {
    case 'fifo': {
      const p = path.join(dir, 'input.fifo');
      makeFifo(p);
      return { path: p };
    }
    case 'dev-zero':
      return { path: '/dev/zero' };
    case 'dev-urandom':
      return { path: '/dev/urandom' };
    case 'directory':
      return { path: dir };
    case 'stdin-empty':
      return { path: '-', stdin: Buffer.alloc(0) };
    case 'stdin-junk':
      return { path: '-', stdin: rng.bytes(JUNK_BYTES) };
  }
}

/** Commands with one hostile input X: text inputs (`-` allowed) and image inputs (regular files only). */
function inputCommands(c: ScenarioCorpus): { name: string; args: (x: string) => string[]; text: boolean; scan?: boolean }[] {
  const emu = ['--profile', 'linux-4.x', '--dom0-mem', '1g', '-o', 'out.p2ms'];
  return [
    { name: 'emulate --e820', args: (x) => ['emulate', '--e820', x, ...emu], text: true },
    { name: 'emulate --from-log', args: (x) => ['emulate', '--from-log', x, ...emu], text: true },
    { name: 'emulate --kconfig', args: (x) => ['emulate', '--e820', c.host, '--kconfig', x, ...emu], text: true },
    { name: 'emulate --xl-config', args: (x) => ['emulate', '--role', 'domU', '--xl-config', x, '--profile', 'linux-4.x', '-o', 'out.p2ms'], text: true },
    { name: 'sweep --e820', args: (x) => ['sweep', '--e820', x, '--dom0-mem', '1g..1g', '--profile', 'linux-4.x', '--jobs', '1'], text: true },
    { name: 'audit --system-map', args: (x) => ['audit', c.snapshot, '--jobs', '1', '--system-map', x], text: true },
    { name: 'audit', args: (x) => ['audit', x, '--jobs', '1'], text: false },
    { name: 'p2m', args: (x) => ['p2m', x], text: false },
    { name: 'inspect', args: (x) => ['inspect', x], text: false },
    { name: 'restore-check', args: (x) => ['restore-check', x], text: false },
    { name: 'scan', args: (x) => ['scan', x, '--jobs', '1'], text: false, scan: true },
  ];
}

/** device-input: each command × each hostile source. */
export function deviceInputScenarios(c: ScenarioCorpus, rng: Rng): CliScenario[] {
  const out: CliScenario[] = [];
  for (const cmd of inputCommands(c)) {
    for (const kind of SOURCES) {
      // scan lists a named FIFO, device or '-' as skipped and walks a directory (exit 0); every other command refuses
      const exits = cmd.scan ? [0] : [2];
      out.push({
        id: '',
        cls: 'device-input',
        what: `${cmd.name} on ${kind}`,
        prepare: (dir): CliRun => {
          const s = source(kind, dir, rng);
          return { args: cmd.args(s.path), stdin: s.stdin, inputs: [c.host, c.snapshot], exits };
        },
      });
    }
  }
  return out;
}

/** output-onto-input: outputs that resolve to an input, or that are not regular files; all refused with exit 2. */
export function outputOntoInputScenarios(c: ScenarioCorpus): CliScenario[] {
  const copy = (dir: string, from: string, name: string): string => {
    const p = path.join(dir, name);
    fs.copyFileSync(from, p);
    return p;
  };
  const cases: { what: string; run: (dir: string) => Omit<CliRun, 'exits'> }[] = [
    { what: 'emulate -o onto its --e820', run: (d) => { const h = copy(d, c.host, 'host.txt'); return { args: ['emulate', '--e820', h, '--profile', 'linux-4.x', '--dom0-mem', '1g', '-o', h, '--force'], inputs: [h] }; } },
    { what: "emulate's FILE.map side file onto its --e820", run: (d) => { const h = copy(d, c.host, 'g.save.map'); return { args: ['emulate', '--e820', h, '--profile', 'linux-4.x', '--dom0-mem', '64m', '--format', 'xl-save', '-o', path.join(d, 'g.save'), '--force'], inputs: [h] }; } },
    { what: 'audit --svg onto the image', run: (d) => { const s = copy(d, c.snapshot, 's.p2ms'); return { args: ['audit', s, '--jobs', '1', '--svg', s, '--force'], inputs: [s] }; } },
    { what: 'audit --svg onto a hard link of the image', run: (d) => { const s = copy(d, c.snapshot, 's.p2ms'); fs.linkSync(s, path.join(d, 'link.svg')); return { args: ['audit', s, '--jobs', '1', '--svg', path.join(d, 'link.svg'), '--force'], inputs: [s] }; } },
    { what: 'audit --svg onto a symbolic link to the image', run: (d) => { const s = copy(d, c.snapshot, 's.p2ms'); fs.symlinkSync(s, path.join(d, 'sym.svg')); return { args: ['audit', s, '--jobs', '1', '--svg', path.join(d, 'sym.svg'), '--force'], inputs: [s] }; } },
    { what: 'sweep --svg onto its --e820', run: (d) => { const h = copy(d, c.host, 'host.txt'); return { args: ['sweep', '--e820', h, '--dom0-mem', '1g..1g', '--profile', 'linux-4.x', '--jobs', '1', '--svg', h, '--force'], inputs: [h] }; } },
    { what: 'scan --out onto a file of the scanned directory', run: (d) => { const s = copy(d, c.snapshot, 's.p2ms'); return { args: ['scan', d, '--jobs', '1', '--out', s], inputs: [s] }; } },
    { what: 'emulate -o onto a FIFO', run: (d) => { const f = path.join(d, 'out.fifo'); makeFifo(f); return { args: ['emulate', '--e820', c.host, '--profile', 'linux-4.x', '--dom0-mem', '1g', '-o', f, '--force'], inputs: [c.host] }; } },
    { what: 'emulate -o onto /dev/null', run: () => ({ args: ['emulate', '--e820', c.host, '--profile', 'linux-4.x', '--dom0-mem', '1g', '-o', '/dev/null', '--force'], inputs: [c.host] }) },
    { what: "emulate -o - (a binary image on standard output)", run: () => ({ args: ['emulate', '--e820', c.host, '--profile', 'linux-4.x', '--dom0-mem', '1g', '-o', '-'], inputs: [c.host] }) },
    { what: 'scan --out - (the log must be a file)', run: () => ({ args: ['scan', c.snapshot, '--out', '-'], inputs: [c.snapshot] }) },
  ];
  return cases.map((k) => ({ id: '', cls: 'output-onto-input' as const, what: k.what, prepare: (dir: string): CliRun => ({ ...k.run(dir), exits: [2] }) }));
}
