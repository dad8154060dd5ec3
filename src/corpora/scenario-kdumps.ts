// The corpus scenarios as dom0 crash dumps (issue 13 item 6): the seed's emulated dom0 written as the Xen kdump
// ELF vmcore (emulate/vmcore-writer.ts) and as makedumpfile's compressed dump (emulate/kdump-compressed-writer.ts),
// each with FILE.map beside, into a cache folder. They are made at run time, never committed: a vmcore is as
// large as the host's RAM (3.7 GiB for the seed host, sparse: 4.4 MiB on disk), git would store it whole, and
// zstd -19 of it (293 KB) would go stale whenever the emulator or a writer changes; writing both takes about
// a second (`npm start`, `npm run corpora`).
import fs from 'node:fs';
import path from 'node:path';
import { writeKdumpCompressed } from '../emulate/kdump-compressed-writer.js';
import { writeVmcore } from '../emulate/vmcore-writer.js';
import { writeOutputText } from '../formats/output-file.js';
import { formatSystemMap, SYMBOLS_BESIDE_SUFFIX } from '../formats/symbols.js';
import { emulateScenario, listScenarios } from './scenario.js';

/** Scenarios the bundled corpus also holds as dom0 kdumps: the seed. */
export const KDUMP_SCENARIOS: readonly string[] = ['seed-backport'];

/** Where `npm start` and `npm run corpora` put them, under the repository. */
export const KDUMP_CACHE = path.join('node_modules', '.cache', 'p2m-audit', 'scenarios');

export interface ScenarioKdump {
  scenario: string;
  vmcore: string;
  compressed: string;
  /** frames written (every frame the emulated machine holds) */
  frames: number;
}

/** Write `<name>.vmcore` and `<name>.kdump` (zlib, makedumpfile -c), with their .map, for the kdump scenarios of `scenarioDir`. */
export async function writeScenarioKdumps(scenarioDir: string, outDir: string, names: readonly string[] = KDUMP_SCENARIOS): Promise<ScenarioKdump[]> {
  fs.mkdirSync(outDir, { recursive: true });
  const out: ScenarioKdump[] = [];
  for (const s of listScenarios(scenarioDir).filter((x) => names.includes(x.name))) {
    const img = emulateScenario(s).image;
    const vmcore = path.join(outDir, `${s.name}.vmcore`);
    const compressed = path.join(outDir, `${s.name}.kdump`);
    const { frames } = writeVmcore(img, vmcore, { overwrite: true });
    await writeKdumpCompressed(img, compressed, { overwrite: true });
    const map = formatSystemMap(img.symbols);
    for (const f of [vmcore, compressed]) writeOutputText(f + SYMBOLS_BESIDE_SUFFIX, map, { force: true });
    out.push({ scenario: s.name, vmcore, compressed, frames });
  }
  return out;
}
