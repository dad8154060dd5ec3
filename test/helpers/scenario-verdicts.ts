// The committed scenario snapshots' verdicts, from each scenario's expect block in corpora/scenarios/*.json
// (by hand; test/scan.test.ts checks the table against those files): name → [verdict, fatal pages].
export const SCENARIO_VERDICTS: Record<string, ['CLEAN' | 'FATAL', number]> = {
  'above-4g-4x': ['CLEAN', 0],
  'above-4g-backport': ['FATAL', 262241], // uncovered 0x100000-0x140060
  'multi-hole-backport': ['FATAL', 1633], // uncovered 0x80000-0x80660
  'seed-3.8-unpatched': ['FATAL', 97], // uncovered 0x40000-0x40060
  'seed-4x': ['CLEAN', 0],
  'seed-backport-fixed': ['CLEAN', 0],
  'seed-backport-nomax': ['CLEAN', 0],
  'seed-backport': ['FATAL', 97],
  'small-clean-4x': ['CLEAN', 0],
};
