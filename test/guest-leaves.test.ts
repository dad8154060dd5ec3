// The guest view's uniform tail (views/guest-leaves.ts, GuestView.tail): the per-leaf arrays stop at the last
// leaf that differs from the p2m area's last one. Expected values: by hand for the builder, and for real
// snapshots the full per-leaf arrays rebuilt leaf by leaf from the page tables (per-leaf translate of every
// list entry page / every tree slot, with BigInt reads: a second code path), as the view held them before.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { planLeaves } from '../src/audit/run-audit.js';
import { openImage } from '../src/formats/open-image.js';
import type { GuestImage } from '../src/formats/guest-image.js';
import { isWalkFailure, readVirt, readVirtU64, translate, type FrameReader } from '../src/translate/page-walk.js';
import { LeafBuilder } from '../src/views/guest-leaves.js';
import { readGuestView } from '../src/views/guest-view.js';
import { frameAt, GuestLeaf, guestLeafCount, kindAt, type GuestLeafKind, type GuestView } from '../src/views/p2m-leaves.js';
import { mapP2m } from '../src/views/toolstack-view.js';
import { guestView } from './helpers/views.js';

const P = GuestLeaf.PAGE;
const M = GuestLeaf.MISSING;
const I = GuestLeaf.IDENTITY;

type Op = ['leaf', GuestLeafKind, number] | ['run', GuestLeafKind, number, number] | ['copy', number, number];

/** The same appends on plain arrays: every leaf written out. */
function model(ops: Op[]): [number, number][] {
  const out: [number, number][] = [];
  for (const op of ops) {
    if (op[0] === 'leaf') out.push([op[1], op[2]]);
    else if (op[0] === 'run') for (let k = 0; k < op[3]; k++) out.push([op[1], op[2]]);
    else out.push(...out.slice(op[1], op[1] + op[2]));
  }
  return out;
}

describe('LeafBuilder', () => {
  it.each<[string, Op[], number, { kind: number; frame: number } | undefined, number]>([
    // name, appends, arrays' length, tail, pagesEnd — by hand
    ['a list with a p2m_identity tail', [['leaf', P, 10], ['leaf', P, 11], ['run', I, 99, 1000]], 2, { kind: I, frame: 99 }, 2],
    ['a list whose tail is p2m_missing', [['leaf', P, 10], ['run', I, 99, 3], ['run', M, 98, 500]], 4, { kind: M, frame: 98 }, 1],
    ['copies of the pending run only extend it', [['leaf', P, 10], ['run', I, 99, 512], ['copy', 1, 512], ['copy', 300, 512]], 1, { kind: I, frame: 99 }, 1],
    ['a copy of mixed leaves is written out', [['leaf', P, 10], ['leaf', M, 98], ['copy', 0, 2]], 3, { kind: M, frame: 98 }, 3],
    ['a copy of uniform written leaves becomes a run', [['run', I, 99, 2], ['leaf', P, 5], ['run', M, 98, 1], ['copy', 0, 2]], 4, { kind: I, frame: 99 }, 3],
    ['ending on a PAGE leaf: no tail', [['run', I, 99, 3], ['leaf', P, 5]], 4, undefined, 4],
    ['a written copy ending on shared leaves is cut back', [['leaf', P, 1], ['leaf', I, 99], ['leaf', P, 2], ['leaf', I, 99], ['copy', 2, 2]], 5, { kind: I, frame: 99 }, 5],
    ['same kind on another frame is another run', [['leaf', P, 1], ['run', I, 99, 2], ['run', I, 97, 2]], 3, { kind: I, frame: 97 }, 1],
    ["a tree's unreadable mid page, then p2m_mid_missing", [['run', P, -1, 4], ['run', M, 98, 4]], 4, { kind: M, frame: 98 }, 4],
    ['no leaves', [], 0, undefined, 0],
  ])('%s', (_name, ops, wantLength, wantTail, wantPagesEnd) => {
    const all = model(ops);
    const b = new LeafBuilder(all.length);
    for (const op of ops) {
      if (op[0] === 'leaf') b.leaf(op[1], op[2]);
      else if (op[0] === 'run') b.run(op[1], op[2], op[3]);
      else b.copy(op[1], op[2]);
    }
    const built = b.finish();
    expect(built.kinds.length).toBe(wantLength);
    expect(built.leafFrames.length).toBe(wantLength);
    expect(built.tail).toEqual(wantTail);
    expect(built.pagesEnd).toBe(wantPagesEnd);
    // every leaf reads as the plain arrays have it
    const view: GuestView = { ...guestView('list', 'identity', built.kinds, built.leafFrames, 98, 99), limitPfn: all.length * 512 };
    if (built.tail) view.tail = built.tail;
    expect(all.map((_, k) => [kindAt(view, k), frameAt(view, k)])).toEqual(all);
  });

  it('refuses to finish short of its leaves', () => {
    const b = new LeafBuilder(3);
    b.leaf(P, 1);
    expect(() => b.finish()).toThrow(/1 appended, 3 expected/);
  });
});

/** A frame reader keeping a copy of every frame (the second code path's own, so it does not lean on TableCache). */
function copying(img: GuestImage): FrameReader {
  const kept = new Map<number, Buffer | null>();
  return {
    readFrame(f: number): Buffer | null {
      if (!kept.has(f)) {
        const p = img.readFrame(f);
        kept.set(f, p && Buffer.from(new Uint8Array(p)));
      }
      return kept.get(f)!;
    },
  };
}

/** The guest's leaves one by one from its page tables: kinds and frames of every leaf below limitPfn. */
function leafByLeaf(img: GuestImage, view: GuestView): { kinds: Uint8Array; frames: Float64Array } {
  const r = copying(img);
  const cr3 = view.root!.frame;
  const u64 = (va: bigint): bigint => {
    const v = readVirtU64(r, cr3, va);
    if (typeof v !== 'bigint') throw new Error(v.error);
    return v;
  };
  const sym = (name: string): bigint => u64(img.symbols.get(name)!);
  const frameOf = (va: bigint): number => {
    const t = translate(r, cr3, va);
    return isWalkFailure(t) ? -1 : t.frame;
  };
  const n = guestLeafCount(view);
  const kinds = new Uint8Array(n);
  const frames = new Float64Array(n);
  const missingPtr = sym('p2m_missing');
  const identityPtr = sym('p2m_identity');
  const missing = frameOf(missingPtr);
  const identity = frameOf(identityPtr);
  if (view.layout === 'list') {
    const p2m = sym('xen_p2m_addr');
    for (let k = 0; k < n; k++) {
      const f = frameOf(p2m + BigInt(k) * 4096n);
      frames[k] = f;
      kinds[k] = f >= 0 && f === missing ? M : f >= 0 && f === identity ? I : P;
    }
    return { kinds, frames };
  }
  const top = sym('p2m_top');
  const midMissing = sym('p2m_mid_missing');
  let midPtr = 0n;
  for (let k = 0; k < n; k++) {
    if (k % 512 === 0) midPtr = u64(top + BigInt(k >> 9) * 8n);
    const ptr = midPtr === midMissing ? missingPtr : readVirt(r, cr3, midPtr + BigInt(k & 511) * 8n, 8);
    const leafPtr = Buffer.isBuffer(ptr) ? ptr.readBigUInt64LE(0) : typeof ptr === 'bigint' ? ptr : null;
    if (leafPtr === null) [kinds[k], frames[k]] = [P, -1];
    else if (leafPtr === missingPtr) [kinds[k], frames[k]] = [M, missing];
    else if (leafPtr === identityPtr) [kinds[k], frames[k]] = [I, identity];
    else [kinds[k], frames[k]] = [P, frameOf(leafPtr)];
  }
  return { kinds, frames };
}

/** One past the last leaf that differs (kind or frame) from the last leaf, when that one is shared. */
function canonicalCut(kinds: Uint8Array, frames: Float64Array): number {
  const n = kinds.length;
  if (n === 0 || kinds[n - 1] === P) return n;
  let k = n - 1;
  while (k > 0 && kinds[k - 1] === kinds[n - 1] && frames[k - 1] === frames[n - 1]) k--;
  return k;
}

const scenarios = path.resolve(__dirname, '../corpora/scenarios');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'guest-leaves-'));

/** A copy of a snapshot whose p2m_missing and p2m_identity pointers trade places: the view's tail turns p2m_missing. */
function swappedSentinels(scenario: string): string {
  const src = path.join(scenarios, `${scenario}.p2ms`);
  const img = openImage(src);
  const cr3 = readGuestView(img).root!.frame;
  const at = (name: string): { off: number; value: bigint } => {
    const va = img.symbols.get(name)!;
    const t = translate(img, cr3, va);
    if (isWalkFailure(t)) throw new Error(t.error);
    return { off: img.frameOffset(t.frame) + t.offset, value: readVirtU64(img, cr3, va) as bigint };
  };
  const [m, i] = [at('p2m_missing'), at('p2m_identity')];
  img.close();
  const buf = fs.readFileSync(src);
  buf.writeBigUInt64LE(i.value, m.off);
  buf.writeBigUInt64LE(m.value, i.off);
  const out = path.join(tmp, `${scenario}-swapped.p2ms`);
  fs.writeFileSync(out, buf);
  return out;
}

describe('guest views of real snapshots read their tail as the page tables have it', () => {
  it.each<[string, string, 'list' | 'tree', number]>([
    // file, what it shows, layout, the tail's kind
    ['seed-4x', 'a list with a p2m_identity tail (shared PTE page per 2 MiB)', 'list', I],
    ['above-4g-4x', 'a list with RAM above 4 GiB', 'list', I],
    ['small-clean-4x (sentinels swapped)', 'a list whose tail is p2m_missing', 'list', M],
    ['seed-3.18', 'a 512-top tree sharing p2m_mid_identity and p2m_mid_missing', 'tree', I],
    ['above-4g-backport', 'a tree whose tail is p2m_missing', 'tree', M],
  ])('%s: %s', (file, _what, layout, tailKind) => {
    const p = file.endsWith('(sentinels swapped)') ? swappedSentinels(file.split(' ')[0]!) : path.join(scenarios, `${file}.p2ms`);
    const img = openImage(p);
    const view = readGuestView(img);
    const full = leafByLeaf(img, view);
    const tool = mapP2m(img);
    img.close();
    expect(view.layout).toBe(layout);
    expect(view.tail?.kind).toBe(tailKind);
    // every leaf, arrays and tail: the first leaf that reads otherwise (−1: none)
    const n = guestLeafCount(view);
    let firstDiff = -1;
    for (let k = 0; k < n && firstDiff < 0; k++) if (kindAt(view, k) !== full.kinds[k] || frameAt(view, k) !== full.frames[k]) firstDiff = k;
    expect(firstDiff).toBe(-1);
    // the arrays stop where the uniform tail begins, far short of the p2m area
    expect(view.kinds.length).toBe(canonicalCut(full.kinds, full.frames));
    expect(view.kinds.length).toBeLessThan(n);
    // the audit's plan is the one the full arrays give
    const plan = planLeaves(tool, view);
    const fromFull = planLeaves(tool, guestView(view.layout, view.beyond, full.kinds, full.frames, view.missingFrame, view.identityFrame));
    expect(plan).toEqual(fromFull);
  });
});
