// Section kdump: emulated linux-4.x dom0 crashes of --kdump-sizes GiB (default 64, 256) written as a Xen kdump
// ELF vmcore (sparse: only the frames the emulator holds are written) and as makedumpfile's compressed dump
// (zstd, as makedumpfile -z); per file: `cat FILE > /dev/null` against `audit FILE --json --jobs 2` children
// (wall time, peak RSS), and the bytes one audit reads (/proc/self/io rchar around openImage + auditImage in
// this process, warm pool of 2 threads) against what both walks need: the distinct frames of crash's frame
// list (top, mid and leaf pages) and of the guest view (page tables, p2m pages), plus the file's metadata
// (ELF headers and notes; the compressed dump's headers, bitmaps and page_desc table). Issue 13's
// performance goal: the audit reads only those pages, peak RSS ≤ 512 MiB.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { auditImage } from '../src/audit/audit-image.js';
import { createAuditPool } from '../src/audit/run-audit.js';
import { emulate } from '../src/emulate/kernel/boot.js';
import { findProfile } from '../src/emulate/kernel/profiles.js';
import { writeKdumpCompressed } from '../src/emulate/kdump-compressed-writer.js';
import { writeVmcore } from '../src/emulate/vmcore-writer.js';
import { openImage } from '../src/formats/open-image.js';
import { formatSystemMap } from '../src/formats/symbols.js';
import { parseE820 } from '../src/inputs/e820.js';
import { PAGE_SIZE } from '../src/xen/abi.js';
import { CLI, GiB, MiB, PAGES_PER_GiB, PROFILE_ID, SEED, f0, f1, f2, log, mib, table } from './common.js';
import { GOAL_AUDIT_OVER_CAT, rssGoal, type Goal } from './goals.js';
import { checkAudit, checkCat, median, settle, timedChild, type Runner, type TimedChild } from './measure.js';
import type { Options } from './options.js';
import { hostE820Text } from './p2ms.js';
import { freeBytes } from './save-streams.js';

/** The audit may read its needed pages and metadata with this much slack (a page read twice, the symbol file). */
const GOAL_READ_SLACK = 1.1;
/** Disk kept free beside the sparse files (their written frames are ~1/500 of the guest). */
const KDUMP_DISK_RESERVE = 4 * GiB;
/** The codec of the compressed dump (makedumpfile -z). */
const CODEC = 'zstd';

export interface KdumpFileResult {
  kind: 'vmcore' | 'kdump-compressed';
  file: string;
  /** apparent size and the blocks really written */
  fileBytes: number;
  diskBytes: number;
  /** bytes before the first page (ELF headers and notes; compressed headers, bitmaps, page_desc table) */
  metadataBytes: number;
  writeS: number;
  verdict?: string;
  cat?: { samplesS: number[]; medianS: number };
  audit?: TimedChild;
  /** one in-process audit (warm pool of 2): bytes and read calls (/proc/self/io), null without /proc */
  readBytes?: number | null;
  readCalls?: number | null;
  /** distinct frames both walks need (crash's frame list, the guest view), and their bytes */
  neededPages?: number;
  error: string | null;
}

export interface KdumpResult {
  sizeGiB: number;
  nrPages: number;
  error: string | null;
  emulateS?: number;
  frames?: number;
  files: KdumpFileResult[];
}

/** rchar and syscr of this process (every thread), or null where /proc/self/io is missing. */
function ioCounters(): { rchar: number; syscr: number } | null {
  try {
    const t = fs.readFileSync('/proc/self/io', 'utf8');
    const v = (k: string): number => Number(/^(\w+): (\d+)$/m.exec(t.split('\n').find((l) => l.startsWith(k + ':')) ?? '')?.[2] ?? NaN);
    return { rchar: v('rchar'), syscr: v('syscr') };
  } catch {
    return null;
  }
}

/** Bytes read by one audit of `file` in this process (open + audit, after a warm-up run), and the distinct frames its walks need. */
async function readFigures(file: string): Promise<{ readBytes: number | null; readCalls: number | null; neededPages: number; verdict: string }> {
  const pool = createAuditPool(2);
  try {
    let out: { readBytes: number | null; readCalls: number | null; neededPages: number; verdict: string } | null = null;
    for (let run = 0; run < 2; run++) {
      // run 0 warms up: modules, the pool's threads, the page cache
      const before = ioCounters();
      const img = openImage(file);
      try {
        const { report, tool, guest } = await auditImage(img, { jobs: 2, pool });
        const after = ioCounters();
        const need = new Set<number>();
        for (const f of tool.structureFrames) need.add(f);
        for (const f of tool.leafFrames) if (f >= 0) need.add(f);
        for (const f of guest.structureFrames) need.add(f);
        for (const f of guest.leafFrames) if (f >= 0) need.add(f);
        const neededPages = [...need].filter((f) => img.readFrame(f) !== null).length;
        out = { readBytes: before && after ? after.rchar - before.rchar : null, readCalls: before && after ? after.syscr - before.syscr : null, neededPages, verdict: report.verdict };
      } finally {
        img.close();
      }
    }
    return out!;
  } finally {
    await pool.destroy();
  }
}

async function measureFile(r: KdumpFileResult, opts: Options, runner: Runner, label: string): Promise<void> {
  const args = [CLI, 'audit', r.file, '--json', '--jobs', '2'];
  // a sparse vmcore larger than RAM cannot be cached: its warm-up cat would only cost minutes
  const warmCat = r.fileBytes <= os.totalmem() / 2;
  log(`${label}: warm-up (${warmCat ? 'cat, ' : ''}audit --jobs 2)`);
  if (warmCat) checkCat(await runner.run('cat', [r.file], { stdoutFile: '/dev/null', measureRss: false }), 'warm-up cat');
  const reference = JSON.stringify(checkAudit(await runner.run(process.execPath, args), `${label}: warm-up audit`));
  const cat: number[] = [];
  const audit = timedChild();
  for (let rep = 0; rep < opts.reps; rep++) {
    log(`${label}: repetition ${rep + 1}/${opts.reps}`);
    const c = await runner.run('cat', [r.file], { stdoutFile: '/dev/null', measureRss: false });
    checkCat(c, 'cat');
    cat.push(c.wallS);
    const a = await runner.run(process.execPath, args);
    if (JSON.stringify(checkAudit(a, `${label}: audit`)) !== reference) throw new Error(`${label}: audit printed a different report than the warm-up run`);
    audit.samplesS.push(a.wallS);
    audit.rssKiB.push(a.rssKiB);
  }
  settle(audit);
  r.cat = { samplesS: cat, medianS: median(cat) };
  r.audit = audit;
  log(`${label}: bytes read by one audit (in this process, /proc/self/io)`);
  const f = await readFigures(r.file);
  r.readBytes = f.readBytes;
  r.readCalls = f.readCalls;
  r.neededPages = f.neededPages;
  r.verdict = f.verdict;
  if (JSON.parse(reference).verdict !== f.verdict) throw new Error(`${label}: the in-process audit gave ${f.verdict}, the child ${JSON.parse(reference).verdict}`);
}

/** Emulate a linux-4.x dom0 of sizeGiB, write its crash as both dumps (FILE.map beside), measure each, delete them. */
export async function benchKdump(sizeGiB: number, opts: Options, runner: Runner, tmp: string): Promise<KdumpResult> {
  const nrPages = sizeGiB * PAGES_PER_GiB;
  const res: KdumpResult = { sizeGiB, nrPages, error: null, files: [] };
  const dir = fs.mkdtempSync(path.join(tmp, `k${sizeGiB}-`));
  let stage = 'emulate';
  try {
    const profile = findProfile(PROFILE_ID);
    if (!profile) throw new Error(`profile ${PROFILE_ID} is missing`);
    log(`kdump ${sizeGiB} GiB: emulating ${PROFILE_ID} dom0, nr_pages = max_pages = 0x${nrPages.toString(16)}`);
    let t = performance.now();
    let guest: ReturnType<typeof emulate> | null = emulate({ profile, hostE820: parseE820(hostE820Text(sizeGiB), `host e820 for ${sizeGiB} GiB`), nrPages, maxPages: nrPages, seed: SEED });
    res.emulateS = (performance.now() - t) / 1000;
    res.frames = guest.image.frameCount();
    const need = res.frames * PAGE_SIZE * 2 + KDUMP_DISK_RESERVE;
    if (freeBytes(dir) < need) throw new Error(`the two dumps write ~${f1((res.frames * PAGE_SIZE * 2) / GiB)} GiB and ${f0(KDUMP_DISK_RESERVE / GiB)} GiB are kept free, but ${f1(freeBytes(dir) / GiB)} GiB are free in ${dir}`);
    const map = formatSystemMap(guest.image.symbols);
    for (const kind of ['vmcore', 'kdump-compressed'] as const) {
      stage = `write ${kind}`;
      const file = path.join(dir, `${PROFILE_ID}-${sizeGiB}g.${kind === 'vmcore' ? 'vmcore' : 'kdump'}`);
      t = performance.now();
      const metadataBytes = kind === 'vmcore' ? writeVmcore(guest.image, file).loads[0]!.offset : (await writeKdumpCompressed(guest.image, file, { compression: CODEC })).dataAt;
      fs.writeFileSync(file + '.map', map);
      const st = fs.statSync(file);
      res.files.push({ kind, file, fileBytes: st.size, diskBytes: st.blocks * 512, metadataBytes, writeS: (performance.now() - t) / 1000, error: null });
      log(`kdump ${sizeGiB} GiB: ${kind} ${f1(st.size / GiB)} GiB (${f1((st.blocks * 512) / MiB)} MiB on disk) written in ${f2((performance.now() - t) / 1000)} s`);
    }
    guest = null; // let the emulated machine go before the timed runs
    for (const r of res.files) {
      stage = `measure ${r.kind}`;
      try {
        await measureFile(r, opts, runner, `kdump ${sizeGiB} GiB ${r.kind}`);
      } catch (e) {
        r.error = (e as Error).message;
        log(`kdump ${sizeGiB} GiB ${r.kind}: FAILED: ${r.error}`);
      }
    }
  } catch (e) {
    res.error = `${stage}: ${(e as Error).message}`;
    log(`kdump ${sizeGiB} GiB: FAILED: ${res.error}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true }); // apparent sizes of hundreds of GiB: never kept
  }
  return res;
}

export function reportKdump(results: KdumpResult[], reps: number): { text: string; goals: Goal[] } {
  let s = `\n== kdump. Emulated ${PROFILE_ID} dom0 crash dumps: ELF vmcore (sparse) and makedumpfile compressed (${CODEC}) ==\n\n`;
  s += `cat FILE > /dev/null vs audit FILE --json --jobs 2 (children, medians of ${reps}); "read" = /proc/self/io rchar of one\n`;
  s += 'in-process audit (warm pool of 2); "needed" = the distinct frames of crash\'s frame list and the guest view, plus the\n';
  s += "file's metadata (ELF headers and notes; compressed: headers, bitmaps, page_desc table)\n\n";
  const rows: string[][] = [];
  const goals: Goal[] = [];
  for (const r of results) {
    if (r.error && r.files.length === 0) {
      rows.push([`${r.sizeGiB}`, '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', `FAILED: ${r.error}`]);
      continue;
    }
    for (const f of r.files) {
      const needBytes = f.neededPages !== undefined ? f.neededPages * PAGE_SIZE + f.metadataBytes : null;
      const ratio = f.cat && f.audit ? f.audit.medianS / f.cat.medianS : null;
      rows.push([
        `${r.sizeGiB}`,
        f.kind,
        f1(f.fileBytes / GiB),
        f1(f.diskBytes / MiB),
        f2(f.writeS),
        f.cat ? f2(f.cat.medianS) : '-',
        f.audit ? f2(f.audit.medianS) : '-',
        ratio === null ? '-' : f.audit!.medianS < 0.01 * f.cat!.medianS ? ratio.toExponential(1) : f2(ratio),
        mib(f.audit?.peakRssKiB),
        f.readBytes === null || f.readBytes === undefined ? '-' : f1(f.readBytes / MiB),
        needBytes === null ? '-' : f1(needBytes / MiB),
        f.error ? `FAILED: ${f.error}` : f.verdict ?? '-',
      ]);
      const subject = `${r.sizeGiB} GiB ${f.kind}`;
      // cat of a compressed dump reads compressed bytes: the ratio is reported, the goal is the ELF vmcore's
      if (ratio !== null) goals.push({ section: 'kdump', goal: `audit/cat ≤ ${GOAL_AUDIT_OVER_CAT}`, subject, value: f2(ratio), pass: f.kind === 'vmcore' ? ratio <= GOAL_AUDIT_OVER_CAT : null });
      if (f.audit) goals.push(rssGoal('kdump', subject, f.audit.peakRssKiB, 'audit peak RSS'));
      if (needBytes !== null && f.readBytes !== null && f.readBytes !== undefined) {
        goals.push({ section: 'kdump', goal: `bytes read ≤ ${GOAL_READ_SLACK} × needed`, subject, value: `${f1(f.readBytes / MiB)} of ${f1(needBytes / MiB)} MiB`, pass: f.readBytes <= GOAL_READ_SLACK * needBytes });
      }
    }
  }
  s += table(['GiB', 'file', 'size GiB', 'disk MiB', 'write s', 'cat s', 'audit s', 'audit/cat', 'RSS MiB', 'read MiB', 'needed MiB', 'verdict'], rows, 2);
  return { text: s, goals };
}
