// Corpus scenarios (corpora/scenarios/*.json): a host e820, dom0_mem and a kernel profile, with the
// expected verdict and fatal ranges derived by hand in the file itself.
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../common/errors.js';
import { computeDom0Pages, parseDom0Mem } from '../inputs/dom0-mem.js';
import { parseE820 } from '../inputs/e820.js';
import { emulate, type EmulatedGuest } from '../emulate/kernel/boot.js';
import { findProfile } from '../emulate/kernel/profiles.js';

export interface ScenarioExpect {
  verdict: string;
  exitCode: number;
  nrPages: string;
  maxPages: string;
  kernelMaxPfn: string;
  archMaxPfn: string;
  fatal: { cls: string; start: string; end: string; pages: number }[];
  identity?: [string, string][];
  crashVa?: [string, string];
  crashReadable?: boolean;
  trimmedFrom?: string;
  toolMaxPfn?: string;
  guestLimitPfn?: string;
}

export interface Scenario {
  name: string;
  summary: string;
  profile: string;
  hostE820: string;
  dom0Mem: string;
  seed: number;
  expect: ScenarioExpect;
  derivation: string[];
  /** absolute path of the scenario file */
  file: string;
}

export function loadScenario(file: string): Scenario {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new InputError(`${file}: not a readable scenario JSON (${(e as Error).message})`);
  }
  const s = raw as Scenario;
  for (const k of ['name', 'profile', 'hostE820', 'dom0Mem'] as const) {
    if (typeof s[k] !== 'string') throw new InputError(`${file}: field ${k} must be a string`);
  }
  return { ...s, file: path.resolve(file) };
}

export function scenarioHostPath(s: Scenario): string {
  return path.resolve(path.dirname(s.file), s.hostE820);
}

export function listScenarios(dir: string): Scenario[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => loadScenario(path.join(dir, f)));
}

export function emulateScenario(s: Scenario): EmulatedGuest {
  const profile = findProfile(s.profile);
  if (!profile) throw new InputError(`${s.file}: unknown profile ${s.profile}`);
  const hostE820 = parseE820(fs.readFileSync(scenarioHostPath(s), 'utf8'), scenarioHostPath(s));
  const pages = computeDom0Pages(parseDom0Mem(s.dom0Mem), hostE820);
  return emulate({ profile, hostE820, nrPages: pages.nrPages, maxPages: pages.maxPages, seed: s.seed, dom0Mem: s.dom0Mem });
}
