// npm run corpora: (re)generate corpora/scenarios/<name>.p2ms from every scenario file.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeEmulatedP2ms } from '../emulate/snapshot.js';
import { emulateScenario, listScenarios } from './scenario.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const dir = path.join(repo, 'corpora', 'scenarios');
for (const s of listScenarios(dir)) {
  const g = emulateScenario(s);
  const out = path.join(dir, `${s.name}.p2ms`);
  const { frames } = writeEmulatedP2ms(g.image, out, { overwrite: true });
  process.stdout.write(`${out}: ${frames} frames\n`);
}
