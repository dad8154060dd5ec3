// Section 2 (stream): emulated `xl save` streams (writeSaveStream) of large guests, the disk they need,
// each measured as a save file and deleted at once; and their report.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { writeSaveStream } from '../src/emulate/save-stream-writer.js';
import { formatSystemMap } from '../src/formats/symbols.js';
import { parseE820 } from '../src/inputs/e820.js';
import { emulate } from '../src/emulate/kernel/boot.js';
import { findProfile } from '../src/emulate/kernel/profiles.js';
import { PROFILE_ID, GiB, MiB, PAGES_PER_GiB, SEED, log, f2, f1, f0, table, mib } from './common.js';
import { DISK_RESERVE_BYTES, type Options } from './options.js';
import { Runner } from './measure.js';
import { GOAL_AUDIT_OVER_CAT, type Goal, rssGoal } from './goals.js';
import type { ProfileRun } from './cpu-profile.js';
import { hostE820Text } from './p2ms.js';
import { type SaveFigures, measureSave, SAVE_HEAD, saveRow, saveLegend } from './save-file.js';

export interface StreamResult {
  /** the size asked for (DEFAULT_STREAM_SIZES or --stream-sizes) */
  requestedGiB: number;
  /** the size measured: requestedGiB, STREAM_FALLBACK_GiB, or null when skipped */
  sizeGiB: number | null;
  error: string | null;
  /** why the requested size was replaced or skipped */
  note: string | null;
  emulateS?: number;
  writeS?: number;
  benchRssAfterWriteKiB?: number;
  save?: { maxPfn: number; pagesWithData: number; xtab: number; pageTables: number; pageDataRecords: number; bytes: number };
  figures?: SaveFigures;
}

export function freeBytes(dir: string): number {
  const st = fs.statfsSync(dir);
  return st.bavail * st.bsize;
}

/** Disk a stream of a sizeGiB guest needs: every RAM page with data, plus pfn arrays and headers (< 1 %). */
export function streamNeedBytes(sizeGiB: number): number {
  return Math.ceil(sizeGiB * GiB * 1.01) + 64 * MiB;
}

export function streamFits(sizeGiB: number, dir: string): boolean {
  return freeBytes(dir) - streamNeedBytes(sizeGiB) >= DISK_RESERVE_BYTES;
}

/** Emulate a linux-4.x dom0 of sizeGiB, write it as an `xl save` file with its System.map beside, measure, delete. */
export async function benchStream(
  requestedGiB: number,
  sizeGiB: number,
  note: string | null,
  opts: Options,
  runner: Runner,
  tmp: string,
  parseScript: string,
  profiles: ProfileRun[],
): Promise<StreamResult> {
  const res: StreamResult = { requestedGiB, sizeGiB, error: null, note };
  const nrPages = sizeGiB * PAGES_PER_GiB;
  const dir = fs.mkdtempSync(path.join(tmp, `s${sizeGiB}-`));
  const file = path.join(dir, `linux-4.x-${sizeGiB}g.save`);
  const mapFile = file + '.map';
  const label = `${sizeGiB} GiB stream`;
  let stage = 'setup';
  try {
    const profile = findProfile(PROFILE_ID);
    if (!profile) throw new Error(`profile ${PROFILE_ID} is missing`);
    stage = 'emulate';
    log(`${label}: emulating ${PROFILE_ID} dom0, nr_pages = max_pages = 0x${nrPages.toString(16)}`);
    let t = performance.now();
    let guest: ReturnType<typeof emulate> | null = emulate({ profile, hostE820: parseE820(hostE820Text(sizeGiB), `host e820 for ${sizeGiB} GiB`), nrPages, maxPages: nrPages, seed: SEED });
    res.emulateS = (performance.now() - t) / 1000;
    stage = 'writeSaveStream';
    log(`${label}: emulated in ${f2(res.emulateS)} s; writing ${path.basename(file)} (~${f1(streamNeedBytes(sizeGiB) / GiB)} GiB; ${f1(freeBytes(dir) / GiB)} GiB free)`);
    t = performance.now();
    const sum = writeSaveStream(guest.image, file, { wrapper: 'xl', overwrite: true });
    res.writeS = (performance.now() - t) / 1000;
    fs.writeFileSync(mapFile, formatSystemMap(guest.image.symbols));
    res.benchRssAfterWriteKiB = process.resourceUsage().maxRSS;
    res.save = { maxPfn: sum.maxPfn, pagesWithData: sum.pagesWithData, xtab: sum.xtab, pageTables: sum.pageTables, pageDataRecords: sum.pageDataRecords, bytes: sum.bytes };
    guest = null; // let the emulated machine go before the timed runs
    log(`${label}: wrote ${f1(sum.bytes / MiB)} MiB in ${f2(res.writeS)} s (${f0(sum.bytes / MiB / res.writeS)} MiB/s)`);
    stage = 'measure';
    const profileDir = opts.cpuProf && !profiles.some((p) => p.label.includes('stream')) ? dir : null;
    const m = await measureSave(label, file, mapFile, opts, runner, parseScript, profileDir);
    res.figures = m.figures;
    if (m.profile) profiles.push(m.profile);
  } catch (e) {
    res.error = `${stage}: ${(e as Error).message}`;
    log(`${label}: FAILED: ${res.error}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true }); // always: a stream is as large as the guest
  }
  return res;
}

export function reportStreams(streams: StreamResult[], reps: number): { text: string; goals: Goal[] } {
  let s = `\n== 2. Emulated xl save streams (${PROFILE_ID} dom0, writeSaveStream wrapper 'xl', System.map beside) ==\n\n`;
  for (const r of streams) if (r.note) s += `note: ${r.note}\n`;
  const run = streams.filter((r) => r.sizeGiB !== null);
  if (run.length) {
    s += (streams.some((r) => r.note) ? '\n' : '') + 'Writing (in process, library; every stream is deleted right after it is measured)\n';
    s += table(
      ['guest GiB', 'emulate s', 'write s', 'write MiB/s', 'PAGE_DATA recs', 'pages w/ data', 'XTAB', 'page tables', 'bench RSS MiB'],
      run.map((r) => [
        String(r.sizeGiB),
        f2(r.emulateS),
        f2(r.writeS),
        r.save && r.writeS ? f0(r.save.bytes / MiB / r.writeS) : '-',
        r.save?.pageDataRecords.toString() ?? '-',
        r.save?.pagesWithData.toString() ?? '-',
        r.save?.xtab.toString() ?? '-',
        r.save?.pageTables.toString() ?? '-',
        mib(r.benchRssAfterWriteKiB),
      ]),
    );
    s += '\nParse, audit, cat, verify: ' + saveLegend(reps);
    s += table(['guest GiB', ...SAVE_HEAD], run.map((r) => saveRow([String(r.sizeGiB)], r.figures, r.error !== null)));
  }
  const goals: Goal[] = [];
  for (const r of streams) {
    if (r.sizeGiB === null) {
      goals.push({ section: 'stream', goal: `stream audit/cat ≤ ${GOAL_AUDIT_OVER_CAT}`, subject: `${r.requestedGiB} GiB`, value: 'skipped (disk)', pass: null });
      continue;
    }
    const f = r.figures;
    if (!f) continue;
    const ratio = f.audit.medianS / f.cat.medianS;
    goals.push({ section: 'stream', goal: `stream audit/cat ≤ ${GOAL_AUDIT_OVER_CAT}`, subject: `${r.sizeGiB} GiB`, value: f2(ratio), pass: ratio <= GOAL_AUDIT_OVER_CAT });
    goals.push(rssGoal('stream', `${r.sizeGiB} GiB`, f.audit.peakRssKiB, 'stream audit peak RSS'));
    goals.push({ section: 'stream', goal: 'stream parse throughput (info)', subject: `${r.sizeGiB} GiB`, value: `${f0(f.parse.mibPerS)} MiB/s`, pass: null });
    if ('medianS' in f.verify) {
      goals.push({ section: 'stream', goal: "audit/Xen's verify-stream-v2 (info)", subject: `${r.sizeGiB} GiB`, value: f2(f.audit.medianS / f.verify.medianS), pass: null });
    }
  }
  return { text: s, goals };
}
