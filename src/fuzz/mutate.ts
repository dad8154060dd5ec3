// Hostile-input mutations for the fuzz harness (docs/fuzz.md): every mutation class with its weight, and the
// generator that turns (anatomy, seed, mutant id) into a Mutant.
//
// A mutant is a pure function of (corpus file, global seed, mutant id): the harness's child processes
// generate it where they run it, and the parent regenerates it byte for byte to write a reproducer.
//
// The machinery: rng.ts (PRNG), anatomy.ts / anatomy-layouts.ts / analyze.ts (where things sit in the file),
// patch.ts (what a mutant changes), p2ms-builder.ts, mutation-context.ts and the mutations-*.ts families.
import { arch, kvar } from './mutations-arch.js';
import { bitflip, byteRun, extend, fieldInflate, intInflate, truncate } from './mutations-bytes.js';
import { flCycle, guestTree, ptCycle } from './mutations-cycles.js';
import { p2msFrames, p2msMeta } from './mutations-p2ms.js';
import { p2mEntry, rangeBomb, splice } from './mutations-pages.js';
import type { Change, ClassFn, GenContext } from './mutation-context.js';
import type { Mutant, Patch } from './patch.js';
import { Rng } from './rng.js';

/** Every mutation class with its default weight. */
export const MUTATION_CLASSES: readonly (readonly [string, ClassFn, number])[] = [
  ['bitflip', bitflip, 10],
  ['byte-run', byteRun, 8],
  ['truncate', truncate, 6],
  ['extend', extend, 2],
  ['field-inflate', fieldInflate, 10],
  ['int-inflate', intInflate, 7],
  ['arch', arch, 10],
  ['fl-cycle', flCycle, 8],
  ['pt-cycle', ptCycle, 10],
  ['kvar', kvar, 9],
  ['guest-tree', guestTree, 5],
  ['p2m-entry', p2mEntry, 4],
  ['range-bomb', rangeBomb, 1],
  ['splice', splice, 4],
  ['p2ms-meta', p2msMeta, 10],
  ['p2ms-frames', p2msFrames, 4],
];

export const CLASS_NAMES: readonly string[] = MUTATION_CLASSES.map(([n]) => n);

/** Classes that only produce edits (safe to stack on one mutant). */
const STACKABLE = new Set(['bitflip', 'byte-run', 'field-inflate', 'int-inflate', 'arch', 'fl-cycle', 'pt-cycle', 'kvar', 'guest-tree', 'p2m-entry', 'range-bomb', 'splice']);
/** Chance that a mutant gets a second (and then a third) stacked edit-only class. */
const STACK_CHANCE = 0.2;
const MAX_CLASS_TRIES = 8;

export interface GenerateOptions {
  /** restrict to these classes (names from CLASS_NAMES) */
  classes?: readonly string[];
}

/** The mutant `id` of a base file under `seed`: deterministic, whoever calls it. */
export function generateMutant(ctx: GenContext, seed: number, id: number, opts: GenerateOptions = {}): Mutant {
  const rng = new Rng(seed, id);
  const allowed = opts.classes ? new Set(opts.classes) : null;
  const table = MUTATION_CLASSES.filter(([n]) => !allowed || allowed.has(n)).map(([n, f, w]) => [[n, f], w] as const);
  if (table.length === 0) throw new Error(`no mutation class left (asked for ${[...(allowed ?? [])].join(', ')})`);
  const changes: { cls: string; change: Change }[] = [];
  const draw = (stackOnly: boolean): void => {
    for (let t = 0; t < MAX_CLASS_TRIES; t++) {
      const [name, fn] = rng.weighted(table);
      if (stackOnly && !STACKABLE.has(name)) continue;
      const c = fn(ctx, rng);
      if (c) {
        changes.push({ cls: name, change: c });
        return;
      }
    }
  };
  draw(false);
  if (changes.length === 0) changes.push({ cls: 'bitflip', change: bitflip(ctx, rng)! });
  const first = changes[0]!.change;
  if (first.replace === undefined && first.length === undefined) {
    while (changes.length < 3 && rng.chance(STACK_CHANCE)) draw(true);
  }
  const patch: Patch = { replace: null, edits: [], length: null, fill: null };
  for (const { change } of changes) {
    if (change.replace) patch.replace = change.replace;
    if (change.edits) patch.edits.push(...change.edits);
    if (change.length !== undefined) {
      patch.length = change.length;
      patch.fill = change.fill ?? null;
    }
  }
  return {
    id,
    classes: changes.map((c) => c.cls),
    description: changes.map((c) => `[${c.cls}] ${c.change.desc}`).join(' + '),
    patch,
  };
}

/** The unmodified file as a "mutant" (baseline run). */
export function baselineMutant(id: number): Mutant {
  return { id, classes: ['baseline'], description: 'unmodified corpus file (baseline)', patch: { replace: null, edits: [], length: null, fill: null } };
}
