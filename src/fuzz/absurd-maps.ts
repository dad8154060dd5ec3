// Absurd but parseable host maps for the emulator (issue 12.6): usable RAM up to 2^46–2^52, more entries than
// Xen's E820MAX, thousands of 4 KiB holes, piles of overlapping entries. Each must be refused with a one-line
// InputError (src/inputs/e820.ts checkXenHostMap, src/emulate/kernel/boot.ts) or emulated with work bounded by
// the map's size and the guest's — never a hang or a heap blown by the host's size. runAbsurdMap returns the
// work counters the regression tests bound (docs/spec-notes/xen-dom0-map.md "Limits").
import { InputError } from '../common/errors.js';
import { checkXenHostMap, parseE820, XEN_E820MAX } from '../inputs/e820.js';
import { computeDom0Pages, parseDom0Mem } from '../inputs/dom0-mem.js';
import { emulate } from '../emulate/kernel/boot.js';
import { findProfile } from '../emulate/kernel/profiles.js';
import { Rng } from '../emulate/kernel/machine.js';

export const ABSURD_KINDS = ['ram-to-2^52', 'ram-to-2^47', 'ram-to-2^46', 'entries-beyond-e820max', 'many-holes', 'overlapping-pile'] as const;
export type AbsurdKind = (typeof ABSURD_KINDS)[number];

export interface AbsurdMap {
  kind: AbsurdKind;
  /** entries written */
  entries: number;
  text: string;
}

const hex16 = (n: bigint): string => n.toString(16).padStart(16, '0');
const line = (s: bigint, e: bigint, type: string): string => `(XEN)  ${hex16(s)} - ${hex16(e)} (${type})`;
const MiB = 1n << 20n;
const GiB = 1n << 30n;

/** The low 3 GiB every map starts with (RAM, the ISA hole, RAM), so a 1 GiB dom0 fits below the absurd part. */
function lowMap(): string[] {
  return [line(0n, 0x9fc00n, 'usable'), line(0x9fc00n, 0xa0000n, 'reserved'), line(0x100000n, 3n * GiB, 'usable')];
}

/**
 * One absurd map of `kind`; `scale` is the number of repeated units (holes, entries), `seed` varies sizes and
 * types. Deterministic for (kind, scale, seed).
 */
export function absurdMap(kind: AbsurdKind, scale: number, seed = 1): AbsurdMap {
  const rng = new Rng(seed);
  const out = ['(XEN) Xen-e820 RAM map:', ...lowMap()];
  let a = 4n * GiB;
  switch (kind) {
    case 'ram-to-2^52':
      out.push(line(a, 1n << 52n, 'usable'));
      break;
    case 'ram-to-2^47':
      out.push(line(a, (1n << 47n) + 4096n * BigInt(1 + rng.below(16)), 'usable'));
      break;
    case 'ram-to-2^46':
      out.push(line(a, 1n << 46n, 'usable'));
      break;
    case 'entries-beyond-e820max':
    case 'many-holes':
      // RAM of 1–16 MiB, then a 4 KiB reserved hole, `scale` times
      for (let i = 0; i < scale; i++) {
        const ram = MiB * BigInt(1 + rng.below(16));
        out.push(line(a, a + ram, 'usable'), line(a + ram, a + ram + 4096n, 'reserved'));
        a += ram + 4096n;
      }
      break;
    case 'overlapping-pile':
      // `scale` entries over the same 1 GiB, types cycling (the highest wins when sanitised)
      for (let i = 0; i < scale; i++) out.push(line(a, a + GiB - 4096n * BigInt(rng.below(4)), ['usable', 'reserved', 'ACPI data'][i % 3]!));
      break;
  }
  return { kind, entries: out.length - 1, text: out.join('\n') + '\n' };
}

export interface AbsurdOutcome {
  outcome: 'ok' | 'rejected';
  /** the InputError's message when rejected */
  message?: string;
  work?: { machineBlocks: number; findSteps: number; holeProbes: number };
  nrPages?: number;
}

/**
 * Parse, check and emulate one map as `emulate --e820 MAP --dom0-mem DOM0MEM --profile PROFILE` does (without
 * writing the guest). Only InputError counts as a rejection; anything else propagates (a failure).
 */
export function runAbsurdMap(map: AbsurdMap, opts: { dom0Mem?: string; profile?: string } = {}): AbsurdOutcome {
  try {
    const host = parseE820(map.text, `absurd-${map.kind}`);
    checkXenHostMap(host, `absurd-${map.kind}`);
    const pages = computeDom0Pages(opts.dom0Mem ? parseDom0Mem(opts.dom0Mem) : null, host);
    const profile = findProfile(opts.profile ?? 'linux-4.x')!;
    const g = emulate({ profile, hostE820: host, nrPages: pages.nrPages, maxPages: opts.dom0Mem?.includes('max:') ? pages.maxPages : 0xffffffff });
    return { outcome: 'ok', work: g.work, nrPages: pages.nrPages };
  } catch (e) {
    if (e instanceof InputError) return { outcome: 'rejected', message: e.message };
    throw e;
  }
}

/** Entries above which a map is refused before anything is emulated (Xen's E820MAX). */
export const ABSURD_ENTRY_LIMIT = XEN_E820MAX;
