// The kernel profile a boot log's "Linux version R" suggests: the nearest one by mainline version, with the stable
// backports that blur a cut-off (docs/spec-notes/boot-log.md, linux-p2m.md).
import type { Sourced } from './boot-log.js';

/** Mainline versions where the Xen PV P2M changed (docs/spec-notes/boot-log.md, linux-p2m.md). */
const REMAP_VERSION = [3, 18] as const; // holes remapped instead of released (3.18)
const LINEAR_VERSION = [3, 19] as const; // linear virtually mapped P2M list (054954eb, 3.19)
const MAX_PFN_FIX_VERSION = [5, 15] as const; // 4b511d5bfa74 "xen: fix setting of max_pfn in shared_info"
/** 9338c2233b97 "iscsi_ibft: Fix finding the iBFT under Xen Dom 0", merged for v6.5-rc1 (xen tip for-linus-6.5); not in 6.1.y */
const IBFT_RESERVE_VERSION = [6, 5] as const;
/** Stable series that took 4b511d5bfa74 as a backport (stable queues of 2021-09-20). */
const MAX_PFN_FIX_STABLE_SERIES: readonly string[] = ['4.4', '4.9', '4.14', '4.19', '5.4', '5.10', '5.14'];

function versionBefore(v: readonly [number, number], ref: readonly [number, number]): boolean {
  return v[0] < ref[0] || (v[0] === ref[0] && v[1] < ref[1]);
}

/** The kernel profile closest to a Linux release ("4.19.86", "3.8.13-16.2.1.el6uek.x86_64"), by mainline version. */
export function suggestProfile(release: string): { profile: string | null; notes: string[] } {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return { profile: null, notes: [`kernel release "${release}" has no major.minor version`] };
  const v = [Number(m[1]), Number(m[2])] as const;
  const series = `${v[0]}.${v[1]}`;
  const notes: string[] = [];
  if (v[0] < 3) notes.push(`Linux ${series} predates the 3.x pvops P2M code; the linux-3.8 profile is only the nearest`);
  if (versionBefore(v, REMAP_VERSION)) return { profile: 'linux-3.8', notes };
  if (versionBefore(v, LINEAR_VERSION)) return { profile: 'linux-3.18', notes };
  if (versionBefore(v, MAX_PFN_FIX_VERSION)) {
    if (MAX_PFN_FIX_STABLE_SERIES.includes(series)) {
      notes.push(
        `Linux ${series}.y took the arch.max_pfn fix 4b511d5bfa74 as a stable backport (September 2021): ` +
          `a sublevel released after that behaves like linux-6.1 for ballooned-up P2M growth`,
      );
    }
    return { profile: 'linux-4.x', notes };
  }
  if (versionBefore(v, IBFT_RESERVE_VERSION)) return { profile: 'linux-6.1', notes };
  return { profile: 'linux-6.5', notes };
}

export function profileOf(version: Sourced<string> | null, notes: string[]): string | null {
  if (!version) return null;
  const s = suggestProfile(version.value);
  notes.push(...s.notes);
  return s.profile;
}
