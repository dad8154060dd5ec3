// The goals (report only, PASS/MISS) and the peak-RSS goal row shared by the sections.
import { f0 } from './common.js';
import type { Section } from './options.js';

/** Goals (report only). */
export const GOAL_AUDIT_OVER_CAT = 1.5;
export const GOAL_SPEEDUP_J2 = 1.7;
const GOAL_PEAK_RSS_MIB = 512;
/** "Linear": time ratio between two sizes at most this factor above the guest-size ratio. */
export const GOAL_LINEAR_SLACK = 1.2;
/** time(largest)/time(smallest) within the guest-size ratio ± this fraction (16 ± 20 % for 1024/64). */
export const GOAL_SCALING_TOLERANCE = 0.2;

export interface Goal {
  section: Section;
  goal: string;
  subject: string;
  value: string;
  /** null: informational row (no goal to pass or miss) */
  pass: boolean | null;
}

export function rssGoal(section: Section, subject: string, kib: number | null | undefined, what = 'peak RSS'): Goal {
  if (kib === null || kib === undefined) return { section, goal: `${what} ≤ ${GOAL_PEAK_RSS_MIB} MiB`, subject, value: 'not measured', pass: false };
  const m = kib / 1024;
  return { section, goal: `${what} ≤ ${GOAL_PEAK_RSS_MIB} MiB`, subject, value: `${f0(m)} MiB`, pass: m <= GOAL_PEAK_RSS_MIB };
}
