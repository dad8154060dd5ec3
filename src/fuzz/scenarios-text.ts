// CLI scenarios (cli-scenario.ts) for text inputs that are too big or too deep: a file one byte over its
// kind's cap (sparse: no disk cost; refused from its size alone), standard input over the cap (refused
// after reading at most the cap), megabytes of junk lines under the cap, one very long line, deeply nested
// xl lists and JSON arrays, mail quoting hundreds of levels deep. Each must end with a one-line error or a
// result, within the RSS limit, never with a stack overflow (exit 4).
import fs from 'node:fs';
import path from 'node:path';
import { TEXT_INPUT_LIMITS, type TextInputKind } from '../inputs/text-input.js';
import type { CliRun, CliScenario } from './cli-scenario.js';
import type { ScenarioCorpus } from './scenarios-paths.js';
import type { Rng } from './rng.js';

const MiB = 1024 * 1024;
const emu = ['--profile', 'linux-4.x', '--dom0-mem', '1g', '-o', 'out.p2ms'];

/** The option (and the rest of a command line) that reads a text input of each kind. */
function argsFor(kind: TextInputKind, c: ScenarioCorpus, x: string): string[] {
  switch (kind) {
    case 'e820':
      return ['emulate', '--e820', x, ...emu];
    case 'boot-log':
      return ['emulate', '--from-log', x, ...emu];
    case 'kconfig':
      return ['emulate', '--e820', c.host, '--kconfig', x, ...emu];
    case 'xl-config':
      return ['emulate', '--role', 'domU', '--xl-config', x, '--profile', 'linux-4.x', '-o', 'out.p2ms'];
    case 'system-map':
      return ['audit', c.snapshot, '--jobs', '1', '--system-map', x];
  }
}

const KINDS = Object.keys(TEXT_INPUT_LIMITS) as TextInputKind[];

/** Printable junk lines (base64 of random bytes), `bytes` in all. */
function junkLines(rng: Rng, bytes: number, width: number): string {
  const lines: string[] = [];
  for (let n = 0; n < bytes; n += width + 1) lines.push(rng.bytes(Math.ceil((width * 3) / 4)).toString('base64').slice(0, width));
  return lines.join('\n') + '\n';
}

export function hugeTextScenarios(c: ScenarioCorpus, rng: Rng): CliScenario[] {
  const out: CliScenario[] = [];
  for (const kind of KINDS) {
    const cap = TEXT_INPUT_LIMITS[kind].maxBytes;
    out.push({
      id: '',
      cls: 'huge-text',
      what: `${kind}: a sparse file of cap + 1 bytes (${cap + 1})`,
      prepare: (dir): CliRun => {
        const p = path.join(dir, `${kind}.txt`);
        fs.closeSync(fs.openSync(p, 'w'));
        fs.truncateSync(p, cap + 1);
        return { args: argsFor(kind, c, p), inputs: [p], exits: [2] };
      },
    });
    const junk = rng.range(1, 4) * MiB;
    out.push({
      id: '',
      cls: 'huge-text',
      what: `${kind}: ${junk / MiB} MiB of junk lines`,
      prepare: (dir): CliRun => {
        const p = path.join(dir, `${kind}.junk`);
        fs.writeFileSync(p, junkLines(rng, Math.min(junk, cap - 1), rng.pick([40, 100, 4000])));
        return { args: argsFor(kind, c, p), inputs: [p], exits: [2] };
      },
    });
  }
  const xlCap = TEXT_INPUT_LIMITS['xl-config'].maxBytes;
  out.push({
    id: '',
    cls: 'huge-text',
    what: `xl-config on standard input: cap + 1 bytes (${xlCap + 1})`,
    prepare: (): CliRun => ({ args: argsFor('xl-config', c, '-'), stdin: Buffer.alloc(xlCap + 1, 0x61), inputs: [], exits: [2] }),
  });
  for (const kind of KINDS) {
    // one line as long as the cap allows (at most 8 MiB), of characters an entry line starts with
    const len = Math.min(8 * MiB, TEXT_INPUT_LIMITS[kind].maxBytes - 64);
    const head = rng.pick(['(XEN)  ', '[    0.000000] Xen: [mem 0x', 'CONFIG_X=', 'ffffffff81000000 T ', '']);
    const fill = rng.pick(['0', 'f', ' ', '[', '-']);
    out.push({
      id: '',
      cls: 'huge-text',
      what: `${kind}: one line of ${len} bytes ("${head}" then "${fill}"…)`,
      prepare: (dir): CliRun => {
        const p = path.join(dir, 'long.txt');
        fs.writeFileSync(p, head + fill.repeat(len));
        return { args: argsFor(kind, c, p), inputs: [p] };
      },
    });
  }
  return out;
}

export function deepNestingScenarios(c: ScenarioCorpus, rng: Rng): CliScenario[] {
  const depth = rng.pick([1000, 100_000, 400_000]);
  const cases: { what: string; kind: TextInputKind; text: () => string }[] = [
    { what: `xl config: a list nested ${depth} deep`, kind: 'xl-config', text: () => `name = "g"\nmemory = 512\nextra = ${'['.repeat(depth)}${']'.repeat(depth)}\n` },
    { what: 'xl config: a 900 KiB string', kind: 'xl-config', text: () => `name = "g"\nmemory = 512\nextra = "${'x'.repeat(900 * 1024)}"\n` },
    { what: 'xl config: an unterminated string to the end of the file', kind: 'xl-config', text: () => `name = "g"\nextra = "${'y'.repeat(512 * 1024)}` },
    // a first line of "[" alone opens the JSON form
    { what: `e820 JSON: arrays nested ${depth} deep`, kind: 'e820', text: () => `[\n${'['.repeat(depth - 1)}${']'.repeat(depth)}` },
    { what: `e820 JSON: ${depth} empty objects`, kind: 'e820', text: () => `[${Array(Math.min(depth, 200_000)).fill('{}').join(',')}]` },
    { what: 'boot log: mail quoting 400 levels deep on every line', kind: 'boot-log', text: () => `${'> '.repeat(400)}(XEN) Xen-e820 RAM map:\n`.repeat(2000) },
  ];
  return cases.map((k) => ({
    id: '',
    cls: 'deep-nesting' as const,
    what: k.what,
    prepare: (dir: string): CliRun => {
      const p = path.join(dir, 'input.txt');
      fs.writeFileSync(p, k.text());
      return { args: argsFor(k.kind, c, p), inputs: [p] };
    },
  }));
}
