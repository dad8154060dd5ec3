// One cell of a `sweep` (run by the piscina entry src/sweep/sweep-cell.ts): emulate one (dom0_mem, profile)
// combination and audit it on the calling thread.
import { auditInProcess } from '../audit/run-audit.js';
import { readGuestView } from '../views/guest-view.js';
import type { E820Entry } from '../inputs/e820.js';
import { emulate } from '../emulate/kernel/boot.js';
import { findProfile } from '../emulate/kernel/profiles.js';
import { buildReport } from '../audit/verdict.js';
import { mapP2m } from '../views/toolstack-view.js';
import { hex, PAGES_PER_MIB } from '../xen/abi.js';

export interface SweepTask {
  profile: string;
  hostE820: E820Entry[];
  nrPages: number;
  maxPages: number;
  kconfig: Record<string, string> | null;
  config: Record<string, string>;
  seed: number;
  dom0Mem: string;
}

export interface SweepCell {
  verdict: string;
  exitCode: number;
  fatalPages: number;
  fatalMib: number;
  uncoveredPages: number;
  uncoveredMib: number;
  archMaxPfn: string;
  kernelMaxPfn: string;
  nrPages: string;
  error?: string;
}

export default function sweepCell(t: SweepTask): SweepCell {
  try {
    const g = emulate({ profile: findProfile(t.profile)!, hostE820: t.hostE820, nrPages: t.nrPages, maxPages: t.maxPages, kconfig: t.kconfig, config: t.config, seed: t.seed, dom0Mem: t.dom0Mem });
    const tool = mapP2m(g.image);
    const guest = readGuestView(g.image);
    const ranges = auditInProcess(g.image, tool, guest);
    const r = buildReport({ img: g.image, tool, guest, ranges: ranges.ranges });
    return {
      verdict: r.verdict,
      exitCode: r.exitCode,
      fatalPages: r.fatalPages,
      fatalMib: r.fatalPages / PAGES_PER_MIB,
      uncoveredPages: r.classes.uncovered.pages,
      uncoveredMib: r.classes.uncovered.pages / PAGES_PER_MIB,
      archMaxPfn: hex(g.image.arch.maxPfn),
      kernelMaxPfn: hex(g.facts.kernelMaxPfn),
      nrPages: hex(t.nrPages),
    };
  } catch (e) {
    return { verdict: 'ERROR', exitCode: 2, fatalPages: 0, fatalMib: 0, uncoveredPages: 0, uncoveredMib: 0, archMaxPfn: '', kernelMaxPfn: '', nrPages: hex(t.nrPages), error: (e as Error).message };
  }
}
