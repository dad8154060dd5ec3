// CLI scenarios (cli-scenario.ts) for headers that claim more than the file holds: arch.max_pfn (in every
// copy of the shared_info page the file holds) set to 2^27, 2^32, 2^40, 2^52,
// 0xb700000000000040 or ~0 in a list guest, a tree guest and an emulated xl dump-core, then `p2m` (every view),
// `audit` and `inspect`. The output must stay bounded by what the file holds — at most 512 entry lines of
// ~50 bytes per 4 KiB page of the file — however many pfns the header claims.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ARCH_MAX_PFN_OFFSET, E820_RAM } from '../xen/abi.js';
import { openImage } from '../formats/open-image.js';
import { formatSystemMap } from '../formats/symbols.js';
import { emulate } from '../emulate/kernel/boot.js';
import { findProfile } from '../emulate/kernel/profiles.js';
import { writeXcCore } from '../emulate/dump-core-writer.js';
import type { CliRun, CliScenario } from './cli-scenario.js';
import type { ScenarioCorpus } from './scenarios-paths.js';
import type { Rng } from './rng.js';

const CLAIMS: readonly [bigint, string][] = [
  [2n ** 27n, '2^27'],
  [2n ** 32n, '2^32'],
  [2n ** 40n, '2^40'],
  [2n ** 52n, '2^52'],
  [0xb700000000000040n, '0xb700000000000040'],
  [2n ** 64n - 1n, '~0'],
];
/** stdout bound: entry lines of a whole file of leaf pages (≤ 512 × 50 bytes per 4 KiB page), plus headers and range lines. */
const STDOUT_PER_FILE_BYTE = 8;
const STDOUT_SLACK = 64 * 1024;

/** Bytes of a base searched for its shared_info page. */
const SEARCH_BYTES = 1 << 20;

/** Where each base image keeps shared_info (by what it is: the same emulation always lays out alike). */
const offsetsOf = new Map<string, number[]>();

/** Every file offset of the image's shared_info page (a .p2ms keeps one copy, an xl dump-core its section). */
function sharedInfoOffsets(file: string, key: string): number[] {
  let o = offsetsOf.get(key);
  if (!o) {
    const img = openImage(file);
    const page = img.sharedInfo ? Buffer.from(img.sharedInfo) : null;
    img.close();
    if (!page) throw new Error(`${file}: the image has no shared_info page`);
    // the bases keep shared_info ahead of their frames (.p2ms metadata, the ELF sections before .xen_pages):
    // the head is searched, not the (mostly zero) pages, against which a 4 KiB needle is slow
    const head = Buffer.alloc(Math.min(fs.statSync(file).size, SEARCH_BYTES));
    const fd = fs.openSync(file, 'r');
    fs.readSync(fd, head, 0, head.length, 0);
    fs.closeSync(fd);
    o = [];
    for (let at = head.indexOf(page); at >= 0; at = head.indexOf(page, at + 1)) o.push(at);
    if (o.length === 0) throw new Error(`${file}: shared_info not found in its first ${SEARCH_BYTES} bytes`);
    offsetsOf.set(key, o);
  }
  return o;
}

/** Pages of the emulated domU written as an xl dump-core (the dump view needs one). */
const CORE_PAGES = 0x4000;

/** The emulated dump-core, built once per process (emulating takes a while) and copied into each scenario. */
let coreOnce: { dir: string; file: string } | null = null;

/** An emulated linux-4.x domU as `xl dump-core` writes it, with FILE.map beside it, copied into `dir`. */
function emulatedDumpCore(dir: string): string {
  if (!coreOnce) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-claim-core-'));
    process.once('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
    const host = [{ addr: 0, size: 0x9f000, type: E820_RAM }, { addr: 0x100000, size: 0x1ff00000, type: E820_RAM }];
    const g = emulate({ profile: findProfile('linux-4.x')!, hostE820: host, nrPages: CORE_PAGES, maxPages: CORE_PAGES, role: 'domU' });
    const file = path.join(tmp, 'base.core');
    writeXcCore(g.image, file);
    fs.writeFileSync(file + '.map', formatSystemMap(g.image.symbols));
    coreOnce = { dir: tmp, file };
  }
  const p = path.join(dir, 'base.core');
  fs.copyFileSync(coreOnce.file, p);
  fs.copyFileSync(coreOnce.file + '.map', p + '.map');
  return p;
}

/** A copy of `base` in `dir` whose every shared_info copy claims arch.max_pfn = `maxPfn` (FILE.map copied too). */
function claiming(base: string, key: string, dir: string, maxPfn: bigint): string {
  const p = path.join(dir, `claim${path.extname(base)}`);
  fs.copyFileSync(base, p);
  if (fs.existsSync(base + '.map')) fs.copyFileSync(base + '.map', p + '.map');
  const fd = fs.openSync(p, 'r+');
  try {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(maxPfn);
    for (const off of sharedInfoOffsets(base, key)) fs.writeSync(fd, b, 0, b.length, off + ARCH_MAX_PFN_OFFSET);
  } finally {
    fs.closeSync(fd);
  }
  return p;
}

/** Scenarios on a list guest, a tree guest and an emulated xl dump-core. */
export function hugeClaimScenarios(c: ScenarioCorpus, rng: Rng): CliScenario[] {
  const bases: { key: string; views: string[]; file: (dir: string) => string }[] = [
    { key: c.snapshot, views: ['toolstack', 'guest'], file: () => c.snapshot },
    { key: c.treeSnapshot, views: ['toolstack', 'guest'], file: () => c.treeSnapshot },
    { key: 'emulated-dump-core', views: ['toolstack', 'guest', 'dump'], file: emulatedDumpCore },
  ];
  const out: CliScenario[] = [];
  for (const base of bases) {
    const [claim, label] = rng.pick(CLAIMS);
    const commands: string[][] = [...base.views.map((v) => ['p2m', '--view', v]), ['audit', '--jobs', '1'], ['inspect']];
    for (const cmd of commands) {
      out.push({
        id: '',
        cls: 'huge-claim',
        what: `${cmd.join(' ')} on ${path.basename(base.key)} with arch.max_pfn ${label}`,
        prepare: (dir): CliRun => {
          const p = claiming(base.file(dir), base.key, dir, claim);
          return { args: [cmd[0]!, p, ...cmd.slice(1)], inputs: [p], maxStdout: fs.statSync(p).size * STDOUT_PER_FILE_BYTE + STDOUT_SLACK };
        },
      });
    }
  }
  return out;
}
