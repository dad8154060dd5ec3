// Round trip (issue 3): every corpus scenario written by the emulator as .p2ms, xl dump-core and xl save
// audits to the same verdict and the same fatal pfn set (a save stream shows pfns the toolstack never saw
// only as absent; they must still come out uncovered).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { auditImage } from '../src/audit/audit-image.js';
import { emulateScenario, listScenarios } from '../src/corpora/scenario.js';
import { openImage } from '../src/formats/open-image.js';
import { writeSaveStream } from '../src/emulate/save-stream-writer.js';
import { writeXcCore } from '../src/emulate/dump-core-writer.js';

const repo = path.resolve(__dirname, '..');
const dir = path.join(repo, 'corpora/scenarios');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-rt-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** verdict + the fatal pfn set as [class, start, end) runs */
async function fingerprint(file: string, symbols?: Map<string, bigint>): Promise<{ verdict: string; fatal: string[] }> {
  const img = openImage(file, symbols ? { symbols } : {});
  try {
    const { report } = await auditImage(img, { jobs: 2 });
    return { verdict: report.verdict, fatal: report.fatal.map((f) => `${f.cls} ${f.start.toString(16)}-${f.end.toString(16)}`) };
  } finally {
    img.close();
  }
}

describe('audit(p2ms) == audit(xc-core) == audit(xl-save) for every scenario', () => {
  it.each(listScenarios(dir).map((s) => [s.name, s] as const))('%s', async (_n, s) => {
    const want = await fingerprint(path.join(dir, `${s.name}.p2ms`));
    expect(want.verdict).toBe(s.expect.verdict);
    const g = emulateScenario(s);
    const core = path.join(tmp, `${s.name}.core`);
    writeXcCore(g.image, core);
    try {
      expect(await fingerprint(core, g.image.symbols)).toEqual(want);
    } finally {
      fs.rmSync(core, { force: true });
    }
    const save = path.join(tmp, `${s.name}.save`);
    writeSaveStream(g.image, save, { wrapper: 'xl' });
    try {
      expect(await fingerprint(save, g.image.symbols)).toEqual(want);
    } finally {
      fs.rmSync(save, { force: true });
    }
  }, 600_000);
});
