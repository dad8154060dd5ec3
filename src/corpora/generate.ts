// npm run corpora: (re)generate corpora/scenarios/<name>.p2ms from every scenario file, and the seed's dom0
// kdumps (ELF vmcore and makedumpfile's compressed form) into node_modules/.cache/p2m-audit/scenarios/
// (scenario-kdumps.ts: made at run time, never committed).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeEmulatedP2ms } from '../emulate/snapshot.js';
import { emulateScenario, listScenarios } from './scenario.js';
import { KDUMP_CACHE, writeScenarioKdumps } from './scenario-kdumps.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const dir = path.join(repo, 'corpora', 'scenarios');
for (const s of listScenarios(dir)) {
  const g = emulateScenario(s);
  const out = path.join(dir, `${s.name}.p2ms`);
  const { frames } = writeEmulatedP2ms(g.image, out, { overwrite: true });
  process.stdout.write(`${out}: ${frames} frames\n`);
}
for (const k of await writeScenarioKdumps(dir, path.join(repo, KDUMP_CACHE))) {
  process.stdout.write(`${k.vmcore}, ${k.compressed}: ${k.frames} frames (dom0 kdumps of ${k.scenario})\n`);
}
