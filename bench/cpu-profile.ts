// --cpu-prof: one audit child run under node --cpu-prof, and the top self-time frames of each thread's profile.
import fs from 'node:fs';
import path from 'node:path';
import { log } from './common.js';
import { Runner, checkAudit } from './measure.js';

/** Frames shown per thread in a --cpu-prof summary. */
const PROFILE_TOP = 15;

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

interface ProfileSummary {
  file: string;
  sampledMs: number;
  top: { frame: string; selfMs: number; pct: number }[];
}

function shortUrl(url: string): string {
  const m = /\/(dist|node_modules)\/(.*)$/.exec(url);
  return m ? `${m[1]}/${m[2]}` : url;
}

/** Self time per function (name + file:line), highest first. */
function summariseProfile(file: string, top = PROFILE_TOP): ProfileSummary {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const frameOf = new Map<number, string>();
  for (const n of p.nodes) {
    const cf = n.callFrame;
    const where = cf.url ? ` ${shortUrl(cf.url)}:${cf.lineNumber + 1}` : '';
    frameOf.set(n.id, `${cf.functionName || '(anonymous)'}${where}`);
  }
  const self = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    total += dt;
    const k = frameOf.get(p.samples[i]!) ?? '?';
    self.set(k, (self.get(k) ?? 0) + dt);
  }
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, top);
  return {
    file: path.basename(file),
    sampledMs: total / 1000,
    top: rows.map(([frame, us]) => ({ frame, selfMs: us / 1000, pct: total ? (100 * us) / total : 0 })),
  };
}

export interface ProfileRun {
  label: string;
  wallS: number;
  threads: ProfileSummary[];
}

/** One child under node --cpu-prof (after an unprofiled warm-up run); every thread (main + workers) writes a profile. */
export async function profileChild(label: string, args: string[], runner: Runner, dir: string): Promise<ProfileRun> {
  const profDir = fs.mkdtempSync(path.join(dir, 'prof-'));
  try {
    await runner.run(process.execPath, args, { measureRss: false }); // warm cache
    log(`--cpu-prof: profiling ${label}`);
    const r = await runner.run(process.execPath, args, { nodeFlags: ['--cpu-prof', `--cpu-prof-dir=${profDir}`], measureRss: false });
    checkAudit(r, `profiled ${label}`);
    // Node names them CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: thread 0 is the main thread
    const files = fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).sort((a, b) => threadOf(a) - threadOf(b));
    return { label, wallS: r.wallS, threads: files.map((f) => summariseProfile(path.join(profDir, f))) };
  } finally {
    fs.rmSync(profDir, { recursive: true, force: true });
  }
}

function threadOf(name: string): number {
  const parts = name.split('.');
  return Number(parts[parts.length - 3] ?? 0);
}
