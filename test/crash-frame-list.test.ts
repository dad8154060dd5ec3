// How crash and makedumpfile read a frame list, and which p2m crash reads for which image. Expected values
// are derived by hand from the C sources (docs/spec-notes/dom0-kdump-views.md §1, §4): crash-utility
// x86_64.c x86_64_xen_kdump_p2m_create (top page up to its first zero; per mid page the count of non-zero
// slots, of which the first that-many slots are copied to index i·512, every mid page, into a buffer of
// the counts' sum) and xen_dom0.c xen_kdump_p2m (leaf pfn/512 < p2m_frames); makedumpfile arch/x86_64.c
// get_machdep_info_x86_64 (count up to the first zero slot; stop copying after a partial mid page).
import { describe, expect, it } from 'vitest';
import { MemoryImage } from '../src/formats/memory-image.js';
import type { FormatFacts } from '../src/formats/guest-image.js';
import { firstDisagreement, listEntry, NO_LEAF, readFrameList, type FrameListRule } from '../src/views/crash-frame-list.js';
import { crashView } from '../src/views/crash-view.js';
import { mapP2m } from '../src/views/toolstack-view.js';
import { writeArchSharedInfo } from '../src/xen/shared-info.js';
import { GuestLeaf } from '../src/views/p2m-leaves.js';
import { guestView } from './helpers/views.js';

const ROOT = 0x1000;
const M0 = 0x1001;
const M1 = 0x1002;
const MISS_MID = 0x1003;
const MISS_LEAF = 0x1004;
const L0 = 0x2000;
const L1 = 0x2001;

function page(slots: (number | bigint)[]): Buffer {
  const b = Buffer.alloc(4096);
  slots.forEach((v, i) => b.writeBigUInt64LE(BigInt(v), i * 8));
  return b;
}
const fill = (n: number, v: number | bigint): (number | bigint)[] => new Array<number | bigint>(n).fill(v);

function kdumpFacts(root: number): FormatFacts {
  return {
    kind: 'dom0-kdump',
    crashInfo: { descSize: 80, xenMajor: 4, xenMinor: 17, tainted: 0, xenPhysStart: 0x1f800000, frameListListMfn: root, words: [4n, 17n, BigInt(root)] },
    notes: [],
    segments: [],
    vmcoreInfoXen: null,
    compression: null,
  };
}

/** Linux ≥ 3.x: top[0] = M0 (leaves L0, L1, then the missing leaf), every other top slot the missing mid page. */
function linuxList(): MemoryImage {
  const img = new MemoryImage('mfn');
  img.setFrame(ROOT, page([M0, ...fill(511, MISS_MID)]));
  img.setFrame(M0, page([L0, L1, ...fill(510, MISS_LEAF)]));
  img.setFrame(MISS_MID, page(fill(512, MISS_LEAF)));
  img.setFrame(MISS_LEAF, page(fill(512, 0xffffffffffffffffn)));
  img.setFrame(L0, page(Array.from({ length: 512 }, (_, i) => 0x50000 + i)));
  img.setFrame(L1, page(Array.from({ length: 512 }, (_, i) => 0x60000 + i)));
  return img;
}

/** An old-style list: slots left 0. top = [M0, M1, 0, …]; M0 = [L0, 0, L1, 0 …]; M1 = 512 × L1. */
function sparseList(): MemoryImage {
  const img = new MemoryImage('mfn');
  img.setFrame(ROOT, page([M0, M1]));
  img.setFrame(M0, page([L0, 0, L1]));
  img.setFrame(M1, page(fill(512, L1)));
  img.setFrame(L0, page(fill(512, 0x7000)));
  img.setFrame(L1, page(fill(512, 0x7001)));
  return img;
}

describe('reading a frame list: crash and makedumpfile', () => {
  const leaves = (rule: FrameListRule, img: MemoryImage): number[] => Array.from(readFrameList(img, ROOT, rule).leaves);

  it.each(['crash', 'makedumpfile'] as FrameListRule[])('Linux ≥ 3.x (every slot filled), %s: 512 × 512 leaves, the missing mid page followed too', (rule) => {
    const list = readFrameList(linuxList(), ROOT, rule);
    expect(list.failure).toBeNull();
    expect(list.midMfns.length).toBe(512);
    expect(list.counted).toEqual(fill(512, 512));
    expect(list.p2mFrames).toBe(262144);
    expect(list.leaves[0]).toBe(L0);
    expect(list.leaves[1]).toBe(L1);
    expect(list.leaves[2]).toBe(MISS_LEAF);
    expect(list.leaves[262143]).toBe(MISS_LEAF);
    expect(list.overflow).toBe(false);
  });

  it('both rules agree on a filled list', () => {
    const img = linuxList();
    expect(firstDisagreement(readFrameList(img, ROOT, 'crash'), readFrameList(img, ROOT, 'makedumpfile'))).toBeNull();
  });

  it.each([
    // crash: mfns = [2, 512] (M0's non-zero slots, wherever they are); first 2 slots of M0 → [L0, 0]; M1 at 512: slots 512, 513
    // fit in the 514-entry buffer, the rest run past it; slots 2..511 are never written
    ['crash', [2, 512], 514, { 0: L0, 1: 0, 2: NO_LEAF, 511: NO_LEAF, 512: L1, 513: L1 }, true],
    // makedumpfile: mfns = [1 (stops at M0's first zero), 512]; copies M0's first slot, then stops (partial page)
    ['makedumpfile', [1, 512], 513, { 0: L0, 1: NO_LEAF, 512: NO_LEAF }, false],
  ] as const)('slots left 0 inside a mid page, %s: counts %j, p2m_frames %i', (rule, counted, p2mFrames, at, overflow) => {
    const list = readFrameList(sparseList(), ROOT, rule);
    expect(list.counted).toEqual(counted);
    expect(list.p2mFrames).toBe(p2mFrames);
    for (const [k, v] of Object.entries(at)) expect(list.leaves[Number(k)]).toBe(v);
    expect(list.overflow).toBe(overflow);
  });

  it('where they part on that list: leaf 1 (crash copied the zero slot, makedumpfile never wrote it)', () => {
    const img = sparseList();
    expect(firstDisagreement(readFrameList(img, ROOT, 'crash'), readFrameList(img, ROOT, 'makedumpfile'))).toEqual({ leaf: 1, a: 0, b: NO_LEAF });
  });

  it('the top page stops at its first zero entry (M1 after a zero is never read)', () => {
    const img = linuxList();
    img.setFrame(ROOT, page([M0, 0, M1]));
    expect(leaves('crash', img).length).toBe(512);
    expect(readFrameList(img, ROOT).midMfns).toEqual([M0]);
  });

  it.each([
    ['the top page', ROOT, /top page \(mfn 0x1000\) is not in the dump: crash stops \("cannot read xen kdump p2m mfn page"\)/],
    ['a mid page', M0, /mid page 0 \(mfn 0x1001\) is not in the dump: crash stops \("cannot read xen kdump p2m mfn list page"\)/],
  ] as const)('%s missing from the dump: crash gives up', (_what, missing, msg) => {
    const src = linuxList();
    const img = new MemoryImage('mfn');
    for (const f of src.frames()) if (f !== missing) img.setFrame(f, src.readFrame(f)!);
    expect(readFrameList(img, ROOT).failure).toMatch(msg);
  });

  it.each([
    [0x1ff, 'ok', L0, 0x50000 + 0x1ff],
    [0x200, 'ok', L1, 0x60000],
    [0x400, 'ok', MISS_LEAF, 0xffffffff],
    [262144 * 512, 'beyond', -1, null],
  ] as const)('pfn %i through the list: %s', (pfn, want, leaf, lo) => {
    const img = linuxList();
    const out = { lo: 0, hi: 0, leaf: -1 };
    expect(listEntry(img, readFrameList(img, ROOT), pfn, out)).toBe(want);
    expect(out.leaf).toBe(leaf);
    if (lo !== null) expect(out.lo).toBe(lo);
  });
});

describe('point reads of a frame list (leaf, listEntry) without its flat leaves array', () => {
  it.each([
    // the hand-derived leaves of the lists above: Linux ≥ 3.x (512 × 512, through the shared missing mid page),
    // and the sparse list's crash (a copied zero slot, an overflow) and makedumpfile (stops after M0) readings
    ['crash', linuxList, { 0: L0, 1: L1, 2: MISS_LEAF, 511: MISS_LEAF, 512: MISS_LEAF, 262143: MISS_LEAF, 262144: NO_LEAF, [-1]: NO_LEAF }],
    ['makedumpfile', linuxList, { 0: L0, 1: L1, 2: MISS_LEAF, 262143: MISS_LEAF, 262144: NO_LEAF }],
    ['crash', sparseList, { 0: L0, 1: 0, 2: NO_LEAF, 511: NO_LEAF, 512: L1, 513: L1, 514: NO_LEAF }],
    ['makedumpfile', sparseList, { 0: L0, 1: NO_LEAF, 512: NO_LEAF, 513: NO_LEAF }],
  ] as const)('%s on %O: the hand-derived leaves, and every leaf as the flat array has it', (rule, build, at) => {
    const img = build();
    const list = readFrameList(img, ROOT, rule);
    const leafAt = (k: number): number => list.leaf(k);
    for (const [k, v] of Object.entries(at)) expect(leafAt(Number(k))).toBe(v);
    // the flat array (a second code path: the tool's copy done block by block) agrees on every leaf
    const flat = list.leaves;
    let firstDiff = -1;
    for (let k = -1; k <= list.p2mFrames && firstDiff < 0; k++) if (leafAt(k) !== (k >= 0 && k < list.p2mFrames ? flat[k]! : NO_LEAF)) firstDiff = k;
    expect(firstDiff).toBe(-1);
  });

  it('listEntry reads the same entries before and after the flat array is built', () => {
    const img = linuxList();
    const list = readFrameList(img, ROOT);
    const read = (pfn: number): [string, number, number] => {
      const out = { lo: 0, hi: 0, leaf: -1 };
      const r = listEntry(img, list, pfn, out);
      return [r, out.leaf, out.lo];
    };
    const pfns = [0, 0x1ff, 0x200, 0x400, 262143 * 512 + 511, 262144 * 512];
    const before = pfns.map(read);
    expect(before).toEqual([
      ['ok', L0, 0x50000],
      ['ok', L0, 0x50000 + 0x1ff],
      ['ok', L1, 0x60000],
      ['ok', MISS_LEAF, 0xffffffff],
      ['ok', MISS_LEAF, 0xffffffff],
      ['beyond', -1, 0],
    ]);
    expect(list.leaves.length).toBe(262144);
    expect(pfns.map(read)).toEqual(before);
  });
});

describe('which p2m crash reads', () => {
  const shared = (fll: number): Buffer => {
    const b = Buffer.alloc(4096);
    writeArchSharedInfo(b, { maxPfn: 0x200n, pfnToMfnFrameListList: BigInt(fll), nmiReason: 0n, p2mCr3: 0n, p2mVaddr: 0n, p2mGeneration: 0n });
    return b;
  };
  // the guest's own list: leaves 0, 1 private (L0, L1) then identity
  const kinds = Uint8Array.from([GuestLeaf.PAGE, GuestLeaf.PAGE, GuestLeaf.IDENTITY]);
  const frames = Float64Array.from([L0, L1, -1]);

  it.each([
    // a dom0 kdump: the crash note's list, whatever the kernel's layout, past arch.max_pfn too (no bound)
    ['dom0 kdump, linear-list kernel', 'frame-list', 'kdump', 'list', 'crash-note'],
    ['dom0 kdump, p2m_top kernel', 'frame-list', 'kdump', 'tree', 'crash-note'],
    // an emulated dom0 snapshot stands for its kdump: the list Xen would put into the note
    ['emulated dom0 snapshot, linear-list kernel', 'frame-list', 'dom0', 'list', 'shared-info'],
    // a domU (dump-core, save, domU snapshot): the kernel's own linear list when it has one
    ['domU, linear-list kernel', 'linear-list', 'domU', 'list', null],
    ['domU, p2m_top kernel', 'frame-list', 'domU', 'tree', 'shared-info'],
  ] as const)('%s → crash reads the %s', (_name, source, kind, layout, root) => {
    const img = linuxList();
    if (kind === 'kdump') img.formatFacts = kdumpFacts(ROOT);
    else {
      img.sharedInfo = shared(ROOT);
      img.formatFacts = { kind: 'snapshot', boot: kind === 'dom0' ? ({ role: 'dom0' } as never) : ({ role: 'domU' } as never) };
    }
    const cv = crashView(img, guestView(layout, 'identity', kinds, frames, MISS_LEAF, -1));
    expect(cv.source).toBe(source);
    expect(cv.root).toBe(root);
    if (source === 'frame-list') {
      expect(cv.leafFrame(1)).toBe(L1);
      expect(cv.leafFrame(262143)).toBe(MISS_LEAF); // the last of 2^27 pfns: arch.max_pfn 0x200 bounds nothing for crash
    } else expect(cv.leafFrame(1)).toBe(L1);
  });

  it("a dom0 kdump's toolstack side is the crash walk, cut before the trailing all-INVALID leaf", () => {
    const img = linuxList();
    img.formatFacts = kdumpFacts(ROOT);
    const t = mapP2m(img);
    expect(t.method).toBe('crash');
    expect(t.maxPfn).toBe(0x3ff); // leaves L0, L1; leaf 2 on are MISS_LEAF up to 2^27 pfns
    expect(t.untrimmedMaxPfn).toBe(262144 * 512 - 1);
    expect(Array.from(t.leafFrames)).toEqual([L0, L1]);
    expect(t.crash).toMatchObject({ rootMfn: ROOT, p2mFrames: 262144, maxPfnBound: null, makedumpfileDiffers: null });
  });
});
