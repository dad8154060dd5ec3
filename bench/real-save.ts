// Section 3 (real): the real Xen 4.17 `xl save -c` file in corpora/real, decompressed and measured as a save file.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { PAGE_SIZE } from '../src/xen/abi.js';
import { MiB, ROOT, log, f2, f1, table } from './common.js';
import type { Options } from './options.js';
import { Runner } from './measure.js';
import { GOAL_AUDIT_OVER_CAT, type Goal, rssGoal } from './goals.js';
import type { ProfileRun } from './cpu-profile.js';
import { type SaveFigures, measureSave, SAVE_HEAD, saveRow, saveLegend } from './save-file.js';

const REAL_SAVE_GZ = path.join(ROOT, 'corpora', 'real', 'pvplain.save.gz');
const REAL_MAP_GZ = path.join(ROOT, 'corpora', 'real', 'System.map-6.1.0-56-amd64.gz');

export interface RealResult {
  error: string | null;
  source: string;
  systemMap: string;
  decompressS?: number;
  figures?: SaveFigures;
}

/** The real `xl save -c` file (Xen 4.17, Linux 6.1 domU), decompressed into the temp dir with its System.map. */
export async function benchReal(opts: Options, runner: Runner, tmp: string, parseScript: string, profiles: ProfileRun[]): Promise<RealResult> {
  const res: RealResult = { error: null, source: path.relative(ROOT, REAL_SAVE_GZ), systemMap: path.relative(ROOT, REAL_MAP_GZ) };
  const dir = fs.mkdtempSync(path.join(tmp, 'real-'));
  const file = path.join(dir, 'pvplain.save');
  const mapFile = path.join(dir, 'System.map-6.1.0-56-amd64');
  let stage = 'decompress';
  try {
    log(`real save file: decompressing ${res.source} and ${res.systemMap}`);
    const t = performance.now();
    await pipeline(fs.createReadStream(REAL_SAVE_GZ), zlib.createGunzip(), fs.createWriteStream(file));
    fs.writeFileSync(mapFile, zlib.gunzipSync(fs.readFileSync(REAL_MAP_GZ)));
    res.decompressS = (performance.now() - t) / 1000;
    stage = 'measure';
    const m = await measureSave('real save file', file, mapFile, opts, runner, parseScript, opts.cpuProf ? dir : null);
    res.figures = m.figures;
    if (m.profile) profiles.push(m.profile);
  } catch (e) {
    res.error = `${stage}: ${(e as Error).message}`;
    log(`real save file: FAILED: ${res.error}`);
  } finally {
    if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true });
  }
  return res;
}

export function reportReal(real: RealResult, reps: number): { text: string; goals: Goal[] } {
  let s = `\n== 3. The real save file: ${real.source} (xl save -c, Xen 4.17, Linux 6.1 domU), System.map ${real.systemMap} ==\n\n`;
  s += 'decompressed into the temp dir' + (real.decompressS !== undefined ? ` (${f2(real.decompressS)} s)` : '') + '; ' + saveLegend(reps);
  const f = real.figures;
  s += table(['guest MiB', ...SAVE_HEAD], [saveRow([f ? f1((f.parse.withData * PAGE_SIZE) / MiB) : '-'], f, real.error !== null)]);
  const goals: Goal[] = [];
  if (f) {
    const ratio = f.audit.medianS / f.cat.medianS;
    goals.push({ section: 'real', goal: `audit/cat ≤ ${GOAL_AUDIT_OVER_CAT} (the stream goal)`, subject: 'pvplain.save', value: f2(ratio), pass: ratio <= GOAL_AUDIT_OVER_CAT });
    goals.push(rssGoal('real', 'pvplain.save', f.audit.peakRssKiB, 'audit peak RSS'));
  }
  return { text: s, goals };
}
