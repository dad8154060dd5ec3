// Toolstack view (map_p2m / map_p2m_tree / map_p2m_list of xg_sr_save_x86_pv.c) on hand-built images.
// Every expected value below was worked out by hand from the arithmetic in docs/spec-notes/toolstack-walks.md.
import { describe, expect, it } from 'vitest';
import type { ToolstackView } from '../src/views/p2m-leaves.js';
import { type ArchSharedInfo, writeArchSharedInfo } from '../src/xen/shared-info.js';
import { MemoryImage } from '../src/formats/memory-image.js';
import { mapP2mTree } from '../src/views/map-p2m-tree.js';
import { mapP2mList } from '../src/views/map-p2m-list.js';
import { mapP2m } from '../src/views/toolstack-view.js';
import { _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_RW } from '../src/xen/abi.js';

const MAX_FRAME = 0xfffff;
const NX = 1n << 63n;
const KERNEL_TABLE = BigInt(_PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY);

function guest(arch: Partial<ArchSharedInfo>, maxFrame: number = MAX_FRAME): MemoryImage {
  const img = new MemoryImage('mfn');
  img.sharedInfo = Buffer.alloc(4096);
  writeArchSharedInfo(img.sharedInfo, {
    maxPfn: 0n,
    pfnToMfnFrameListList: 0n,
    nmiReason: 0n,
    p2mCr3: 0n,
    p2mVaddr: 0n,
    p2mGeneration: 0n,
    ...arch,
  });
  img.maxFrame = maxFrame;
  return img;
}

function setArch(img: MemoryImage, arch: Partial<ArchSharedInfo>): void {
  writeArchSharedInfo(img.sharedInfo!, { ...img.arch, ...arch });
}

function pageOf(img: MemoryImage, frame: number): Buffer {
  return img.hasFrame(frame) ? img.writableFrame(frame) : img.newFrame(frame);
}

function putU64(img: MemoryImage, frame: number, slot: number, value: bigint | number): void {
  pageOf(img, frame).writeBigUInt64LE(BigInt(value), slot * 8);
}

/** Slots first..last of `frame` hold value(slot). */
function fill(img: MemoryImage, frame: number, first: number, last: number, value: (slot: number) => bigint | number): void {
  for (let s = first; s <= last; s++) putU64(img, frame, s, value(s));
}

/** A page-table entry naming `frame`, with the flags a kernel table entry has (and NX when asked). */
function pte(frame: number, nx = false): bigint {
  return (BigInt(frame) << 12n) | KERNEL_TABLE | (nx ? NX : 0n);
}

function expectFailure(v: ToolstackView, pattern: RegExp | string): void {
  expect(v.failure).not.toBeNull();
  if (typeof pattern === 'string') expect(v.failure).toContain(pattern);
  else expect(v.failure).toMatch(pattern);
  expect(v.maxPfn).toBe(-1);
  expect(v.leafFrames.length).toBe(0);
}

// ---- tree ---------------------------------------------------------------------------------------
// FLL at 0x1000. Frame-list pages: A = 0x1001 (slot s → leaf 0x20000 + s, slot 7 hand-picked 0x5a5a5),
// B = 0x1002 (slot s → 0x30000 + 2s, slot 511 hand-picked 0xabcde), M = 0x1003 ("mid missing": every
// slot → the shared missing leaf 0x9999).
const FLL = 0x1000;
const FL_A = 0x1001;
const FL_B = 0x1002;
const FL_M = 0x1003;
const MISSING_LEAF = 0x9999;

function treeGuest(archMaxPfn: bigint, fll: number[], maxFrame = MAX_FRAME): MemoryImage {
  const img = guest({ maxPfn: archMaxPfn, pfnToMfnFrameListList: BigInt(FLL) }, maxFrame);
  img.newFrame(FLL);
  fll.forEach((mfn, i) => putU64(img, FLL, i, mfn));
  fill(img, FL_A, 0, 511, (s) => 0x20000 + s);
  putU64(img, FL_A, 7, 0x5a5a5);
  fill(img, FL_B, 0, 511, (s) => 0x30000 + 2 * s);
  putU64(img, FL_B, 511, 0xabcde);
  fill(img, FL_M, 0, 511, () => MISSING_LEAF);
  return img;
}

describe('map_p2m_tree', () => {
  // arch.max_pfn 0x80000 (2 GiB of pfns): max_pfn 0x7ffff, fll_entries 0x7ffff / 0x40000 + 1 = 2,
  // fl_entries 0x7ffff / 512 + 1 = 1024.
  const twoGiB = mapP2mTree(treeGuest(0x80000n, [FL_A, FL_B]), 0x7ffff);

  it('walks a 2-GiB-of-pfns tree: bound, leaf count, frames read', () => {
    expect(twoGiB.failure).toBeNull();
    expect(twoGiB.method).toBe('tree');
    expect(twoGiB.archMaxPfn).toBe(0x80000n);
    expect(twoGiB.maxPfn).toBe(0x7ffff);
    expect(twoGiB.untrimmedMaxPfn).toBeNull();
    expect(twoGiB.leafFrames.length).toBe(1024);
    expect([...twoGiB.structureFrames].sort((a, b) => a - b)).toEqual([FLL, FL_A, FL_B]);
  });

  it.each([
    [0, 0x20000],
    [6, 0x20006],
    [7, 0x5a5a5],
    [511, 0x201ff],
    [512, 0x30000],
    [513, 0x30002],
    [1022, 0x303fc],
    [1023, 0xabcde],
  ])('2 GiB tree: leaf %i is frame %i', (k, frame) => {
    expect(twoGiB.leafFrames[k]).toBe(frame);
  });

  // FLL slot 1 = B for all rows; fll_entries decides whether it is read at all.
  it.each([
    // arch.max_pfn 1000: max_pfn 999, fll_entries 1, leaves 999/512+1 = 2 (the second one partial)
    { arch: 1000n, maxPfn: 999, leaves: 2, last: 0x20001, frames: [FLL, FL_A] },
    // arch.max_pfn 0x40000: max_pfn 0x3ffff, one full FL page, 512 leaves
    { arch: 0x40000n, maxPfn: 0x3ffff, leaves: 512, last: 0x201ff, frames: [FLL, FL_A] },
    // arch.max_pfn 0x40201: max_pfn 0x40200, fll_entries 2, leaves 0x201 + 1 = 514: B slots 0 and 1
    { arch: 0x40201n, maxPfn: 0x40200, leaves: 514, last: 0x30002, frames: [FLL, FL_A, FL_B] },
  ])('max_pfn not a multiple of the tree: arch.max_pfn $arch → $leaves leaves', ({ arch, maxPfn, leaves, last, frames }) => {
    const img = treeGuest(arch, [FL_A, FL_B]);
    // B slot 2 onwards is beyond fl_entries in every row: poison it to show it is never read.
    fill(img, FL_B, 2, 511, () => 0);
    const v = mapP2mTree(img, Number(arch) - 1);
    expect(v.failure).toBeNull();
    expect(v.maxPfn).toBe(maxPfn);
    expect(v.leafFrames.length).toBe(leaves);
    expect(v.leafFrames[leaves - 1]).toBe(last);
    expect([...v.structureFrames].sort((a, b) => a - b)).toEqual(frames);
  });

  it.each([
    // [A,B,M,M], max_pfn 0xfffff: last run starts at saved_x 2 → (2+1)·0x40000 − 1 = 0xbffff, 0x600 leaves
    { fll: [FL_A, FL_B, FL_M, FL_M], arch: 0x100000n, maxPfn: 0xbffff, untrimmed: 0xfffff, leaves: 1536 },
    // [A,M,M,M]: saved_x 1 → 2·0x40000 − 1 = 0x7ffff
    { fll: [FL_A, FL_M, FL_M, FL_M], arch: 0x100000n, maxPfn: 0x7ffff, untrimmed: 0xfffff, leaves: 1024 },
    // [A,A]: saved_x 0 → 0x3ffff
    { fll: [FL_A, FL_A], arch: 0x80000n, maxPfn: 0x3ffff, untrimmed: 0x7ffff, leaves: 512 },
    // [A,B,M,M] with max_pfn 0xc0000 (only pfn 0xc0000 under the 4th slot): still 0xbffff
    { fll: [FL_A, FL_B, FL_M, FL_M], arch: 0xc0001n, maxPfn: 0xbffff, untrimmed: 0xc0000, leaves: 1536 },
    // [A,B,M]: saved_x 2 → 0xbffff = max_pfn already: no trimming
    { fll: [FL_A, FL_B, FL_M], arch: 0xc0000n, maxPfn: 0xbffff, untrimmed: null, leaves: 1536 },
  ])('trims trailing identical FLL entries: $fll.length slots, arch.max_pfn $arch → max_pfn $maxPfn', ({ fll, arch, maxPfn, untrimmed, leaves }) => {
    const v = mapP2mTree(treeGuest(arch, fll), Number(arch) - 1);
    expect(v.failure).toBeNull();
    expect(v.maxPfn).toBe(maxPfn);
    expect(v.untrimmedMaxPfn).toBe(untrimmed);
    expect(v.leafFrames.length).toBe(leaves);
    if (untrimmed !== null) expect(v.notes.join('\n')).toMatch(/trimmed/);
  });

  it('after trimming [A,B,M,M] the kept M slot maps the missing leaf and its FL page is read', () => {
    const v = mapP2mTree(treeGuest(0x100000n, [FL_A, FL_B, FL_M, FL_M]), 0xfffff);
    expect(v.leafFrames[1023]).toBe(0xabcde);
    expect(v.leafFrames[1024]).toBe(MISSING_LEAF);
    expect(v.leafFrames[1535]).toBe(MISSING_LEAF);
    expect([...v.structureFrames].sort((a, b) => a - b)).toEqual([FLL, FL_A, FL_B, FL_M]);
  });

  it('emulates the unsigned int fll_entries: arch.max_pfn 2^50 + 1 wraps to 1 entry and is trimmed to 0x3ffff', () => {
    // max_pfn 2^50: 2^50 / 2^18 + 1 = 2^32 + 1 → (unsigned int) 1; saved_x 0 → 0x3ffff < 2^50.
    const v = mapP2mTree(treeGuest(2n ** 50n + 1n, [FL_A]), 2n ** 50n);
    expect(v.failure).toBeNull();
    expect(v.maxPfn).toBe(0x3ffff);
    expect(v.untrimmedMaxPfn).toBe(2 ** 50);
    expect(v.leafFrames.length).toBe(512);
    expect(v.notes.join('\n')).toMatch(/truncated to the unsigned int 0x1/);
  });

  it.each([
    {
      name: 'FLL mfn 0',
      arch: 0x80000n,
      edit: (img: MemoryImage) => setArch(img, { pfnToMfnFrameListList: 0n }),
      error: 'arch.pfn_to_mfn_frame_list_list is 0',
    },
    {
      name: 'FLL mfn ~0',
      arch: 0x80000n,
      edit: (img: MemoryImage) => setArch(img, { pfnToMfnFrameListList: 2n ** 64n - 1n }),
      error: 'arch.pfn_to_mfn_frame_list_list 0xffffffffffffffff (~0: the guest publishes only the linear list) is above max_mfn 0xfffff',
    },
    {
      name: 'FLL mfn above max_mfn',
      arch: 0x80000n,
      edit: (img: MemoryImage) => setArch(img, { pfnToMfnFrameListList: 0x100000n }),
      error: 'arch.pfn_to_mfn_frame_list_list 0x100000 is above max_mfn 0xfffff',
    },
    {
      name: 'FLL entry 0',
      arch: 0x80000n,
      edit: (img: MemoryImage) => putU64(img, FLL, 1, 0),
      error: 'frame-list-list entry 1 (of 2) in frame 0x1000 is 0',
    },
    {
      name: 'FLL entry above max_mfn',
      arch: 0x80000n,
      edit: (img: MemoryImage) => putU64(img, FLL, 0, 0x100000),
      error: 'frame-list-list entry 0 (of 2) in frame 0x1000 is 0x100000, above max_mfn 0xfffff',
    },
    {
      name: 'FL entry 0',
      arch: 0x80000n,
      edit: (img: MemoryImage) => putU64(img, FL_B, 5, 0),
      error: 'frame-list entry 517 (FLL slot 1, FL slot 5; of 1024) is 0',
    },
    {
      name: 'FL entry above max_mfn',
      arch: 0x80000n,
      edit: (img: MemoryImage) => putU64(img, FL_A, 3, 0x100000),
      error: 'frame-list entry 3 (FLL slot 0, FL slot 3; of 1024) is 0x100000, above max_mfn 0xfffff',
    },
    {
      // max_pfn 2^40 − 1: (2^40 − 1) / 2^18 + 1 = 2^22 = 4194304 entries
      name: 'fll_entries > 512 (arch.max_pfn 2^40)',
      arch: 2n ** 40n,
      edit: () => {},
      error: 'max_pfn 0xffffffffff is too large for the p2m tree: it needs 4194304 frame-list-list entries',
    },
    {
      // max_pfn ~0: ~0 / 2^18 + 1 = 2^46 → (unsigned int) 0
      name: 'arch.max_pfn 0',
      arch: 0n,
      edit: () => {},
      error: 'max_pfn 0xffffffffffffffff makes fll_entries wrap to 0',
    },
    {
      name: 'absent frame-list page',
      arch: 0x80000n,
      edit: (img: MemoryImage) => putU64(img, FLL, 1, 0x1004),
      error: 'frame 0x1004 (frame-list page for FLL slot 1) is not in the image',
    },
    {
      name: 'absent frame-list-list page',
      arch: 0x80000n,
      edit: (img: MemoryImage) => setArch(img, { pfnToMfnFrameListList: 0x2000n }),
      error: 'frame 0x2000 (frame-list-list page) is not in the image',
    },
  ])('fails: $name', ({ arch, edit, error }) => {
    const img = treeGuest(arch, [FL_A, FL_B]);
    edit(img);
    const v = mapP2mTree(img, BigInt.asUintN(64, arch - 1n));
    expectFailure(v, error);
    expect(v.method).toBe('tree');
    expect(v.archMaxPfn).toBe(arch);
  });

  it.each([
    { name: 'FLL ~0', fllMfn: 2n ** 64n - 1n, fl0: 0x20000, error: 'above max_mfn 0xffffffffff' },
    { name: 'FL entry 2^40', fllMfn: BigInt(FLL), fl0: 2 ** 40, error: 'is 0x10000000000, above max_mfn 0xffffffffff' },
  ])('with max_mfn unknown to the image the bound is 2^40 − 1 (PADDR_BITS 52): $name fails', ({ fllMfn, fl0, error }) => {
    const img = treeGuest(0x80000n, [FL_A, FL_B], Infinity);
    setArch(img, { pfnToMfnFrameListList: fllMfn });
    putU64(img, FL_A, 0, fl0);
    expectFailure(mapP2mTree(img, 0x7ffff), error);
  });
});

// ---- linear list --------------------------------------------------------------------------------
// Root L4 at 0x3000; L3 0x3001; L2 0x3002 (and 0x3008 for a second 1 GiB); L1 pages C0..C3 =
// 0x3003..0x3006 mapping leaves 0x40000 + s, 0x50000 + s, 0x60000 + s, 0x70000 + s (C1 slot 100 is
// hand-picked 0xfedcb), and M = 0x3007 whose every slot maps the missing leaf 0x9999.
const ROOT = 0x3000;
const L3 = 0x3001;
const L2 = 0x3002;
const L2_NEXT = 0x3008;
const C0 = 0x3003;
const C1 = 0x3004;
const C2 = 0x3005;
const C3 = 0x3006;
const M = 0x3007;
const VMALLOC = 0xffffc90000000000n;
/** (0xffffc90000000000 & 0xffffffffffff) >> 39 = 0xc9 << 1 = 402. */
const L4_SLOT = 402;

function listGuest(archMaxPfn: bigint, vaddr: bigint, l2: Record<number, number>, l3 = [L2], maxFrame = MAX_FRAME): MemoryImage {
  const img = guest({ maxPfn: archMaxPfn, p2mCr3: BigInt(ROOT) << 12n, p2mVaddr: vaddr, p2mGeneration: 42n, pfnToMfnFrameListList: 2n ** 64n - 1n }, maxFrame);
  img.newFrame(ROOT);
  putU64(img, ROOT, L4_SLOT, pte(L3));
  l3.forEach((frame, i) => putU64(img, L3, i, pte(frame)));
  img.newFrame(L2);
  for (const [slot, frame] of Object.entries(l2)) {
    const n = Number(slot);
    putU64(img, n < 512 ? L2 : L2_NEXT, n % 512, pte(frame));
  }
  fill(img, C0, 0, 511, (s) => pte(0x40000 + s, true));
  fill(img, C1, 0, 511, (s) => pte(0x50000 + s, true));
  putU64(img, C1, 100, pte(0xfedcb, true));
  fill(img, C2, 0, 511, (s) => pte(0x60000 + s, true));
  fill(img, C3, 0, 511, (s) => pte(0x70000 + s, true));
  fill(img, M, 0, 511, () => pte(MISSING_LEAF, true));
  return img;
}

describe('map_p2m_list', () => {
  // arch.max_pfn 0x80000: p2m_frames 1024 = 4 MiB of list → L2 entries 0 and 1 (C0, C1).
  // Level 2: saved_idx 1 == idx_end 1 → 2; 2·0x40000 − 1 = 0x7ffff = max_pfn: no trimming.
  const basic = mapP2mList(listGuest(0x80000n, VMALLOC, { 0: C0, 1: C1 }), 0x7ffff);

  it('walks L4→L3→L2→L1 for a list at 0xffffc90000000000', () => {
    expect(basic.failure).toBeNull();
    expect(basic.method).toBe('list');
    expect(basic.maxPfn).toBe(0x7ffff);
    expect(basic.untrimmedMaxPfn).toBeNull();
    expect(basic.leafFrames.length).toBe(1024);
    expect([...basic.structureFrames].sort((a, b) => a - b)).toEqual([ROOT, L3, L2, C0, C1]);
  });

  it.each([
    [0, 0x40000],
    [511, 0x401ff],
    [512, 0x50000],
    [611, 0x50063],
    [612, 0xfedcb],
    [1023, 0x501ff],
  ])('list at 0xffffc90000000000: leaf %i is frame %i', (k, frame) => {
    expect(basic.leafFrames[k]).toBe(frame);
  });

  // vaddr 0xffffc90000605000 = L2 slot 3, L1 slot 5; arch.max_pfn 0x40000 → 512 frames,
  // p2m_end 0xffffc90000804fff. Level 2: idx 3..4 (C0, C1); saved_idx 1 → 0x3ffff, not below max_pfn.
  // Level 1: off 0xc90000600000, idx 5..516 over C0 (5..511) and C1 (512..516 = slots 0..4).
  const midL1 = mapP2mList(listGuest(0x40000n, VMALLOC + 0x605000n, { 2: 0, 3: C0, 4: C1, 5: 0 }), 0x3ffff);

  it('starts mid-L2 and mid-L1: off and back-to-back tables', () => {
    expect(midL1.failure).toBeNull();
    expect(midL1.maxPfn).toBe(0x3ffff);
    expect(midL1.untrimmedMaxPfn).toBeNull();
    expect(midL1.leafFrames.length).toBe(512);
  });

  it.each([
    [0, 0x40005],
    [506, 0x401ff],
    [507, 0x50000],
    [511, 0x50004],
  ])('list at 0xffffc90000605000: leaf %i is frame %i', (k, frame) => {
    expect(midL1.leafFrames[k]).toBe(frame);
  });

  it.each([
    // [C0,C1,M,M], 4 L2 entries (arch.max_pfn 0x100000): saved_idx 2 ≠ idx_end 3 → 2·0x40000 − 1 = 0x7ffff;
    // the whole trailing run goes (the tree would keep its first slot). L1 still maps saved_idx + 1 = 3 pages.
    { l2: [C0, C1, M, M], maxPfn: 0x7ffff, untrimmed: 0xfffff, leaves: 1024, l1: [C0, C1, M] },
    // [C0,M,M,M]: saved_idx 1 → 0x3ffff; L1 maps C0 and M
    { l2: [C0, M, M, M], maxPfn: 0x3ffff, untrimmed: 0xfffff, leaves: 512, l1: [C0, M] },
    // all distinct: saved_idx 3 == idx_end 3 → 4 → 0xfffff: no trimming
    { l2: [C0, C1, C2, C3], maxPfn: 0xfffff, untrimmed: null, leaves: 2048, l1: [C0, C1, C2, C3] },
    // all identical: saved_idx 0 → (0 << 9)·512 − 1 wraps to ~0: no trimming
    { l2: [M, M, M, M], maxPfn: 0xfffff, untrimmed: null, leaves: 2048, l1: [M] },
  ])('level-2 trimming: $l2 → max_pfn $maxPfn', ({ l2, maxPfn, untrimmed, leaves, l1 }) => {
    const v = mapP2mList(listGuest(0x100000n, VMALLOC, { ...l2 }), 0xfffff);
    expect(v.failure).toBeNull();
    expect(v.maxPfn).toBe(maxPfn);
    expect(v.untrimmedMaxPfn).toBe(untrimmed);
    expect(v.leafFrames.length).toBe(leaves);
    expect([...v.structureFrames].sort((a, b) => a - b)).toEqual([ROOT, L3, L2, ...l1].sort((a, b) => a - b));
  });

  it('level-2 trimming keeps the leaves of the entries before the run', () => {
    const v = mapP2mList(listGuest(0x100000n, VMALLOC, { 0: C0, 1: C1, 2: M, 3: M }), 0xfffff);
    expect(v.leafFrames[0]).toBe(0x40000);
    expect(v.leafFrames[1023]).toBe(0x501ff);
  });

  it.each([
    // vaddr 0xffffc90000600000 (L2 slot 3), 1024 frames: L2 idx 3..4 = C0, C1; saved_idx 1 (relative)
    // is compared with idx_end 4, not incremented → 1·0x40000 − 1 = 0x3ffff < 0x7ffff: C1's leaves are dropped.
    { name: 'starts at L2 slot 3', vaddr: VMALLOC + 0x600000n, l2: { 3: C0, 4: C1 } as Record<number, number>, l3: [L2], read: [L2, C0, C1] },
    // vaddr 0xffffc9003fe00000 (L3 slot 0, L2 slot 511): L3 idx 0..1, L2 idx 511..512 over L2 and
    // 0x3008 back to back; saved_idx 1 vs idx_end 512 → same trimming to 0x3ffff.
    { name: 'crosses an L3 boundary', vaddr: VMALLOC + 0x3fe00000n, l2: { 511: C0, 512: C1 } as Record<number, number>, l3: [L2, L2_NEXT], read: [L2, L2_NEXT, C0, C1] },
  ])('relative saved_idx vs absolute idx_end (spec §8), $name: trimmed to 0x3ffff', ({ vaddr, l2, l3, read }) => {
    const img = listGuest(0x80000n, vaddr, l2, l3);
    if (!img.hasFrame(L2_NEXT)) img.newFrame(L2_NEXT);
    const v = mapP2mList(img, 0x7ffff);
    expect(v.failure).toBeNull();
    expect(v.maxPfn).toBe(0x3ffff);
    expect(v.untrimmedMaxPfn).toBe(0x7ffff);
    expect(v.leafFrames.length).toBe(512);
    expect(v.leafFrames[0]).toBe(0x40000);
    expect(v.leafFrames[511]).toBe(0x401ff);
    expect([...v.structureFrames].sort((a, b) => a - b)).toEqual([ROOT, L3, ...read].sort((a, b) => a - b));
    expect(v.notes.join('\n')).toMatch(/saved_idx == idx_end test misses/);
  });

  it.each([
    { name: 'non-canonical start', vaddr: 0x0000900000000000n, error: 'its start 0x900000000000 is not canonical' },
    // 0x00007fffffe00000 + 4 MiB − 1 = 0x00008000001fffff
    { name: 'non-canonical end', vaddr: 0x00007fffffe00000n, error: 'its end 0x8000001fffff is not canonical' },
    { name: 'start of the Xen hole', vaddr: 0xffff800000000000n, error: "it overlaps Xen's hole 0xffff800000000000–0xffff87ffffffffff" },
    { name: 'end of the Xen hole', vaddr: 0xffff87ffffe00000n, error: "it overlaps Xen's hole" },
    // 0xffffffffffe00000 + 4 MiB − 1 wraps to 0x1fffff
    { name: 'wrap', vaddr: 0xffffffffffe00000n, error: 'bad virtual p2m address range 0xffffffffffe00000-0x1fffff: it wraps' },
  ])('fails on a bad virtual range: $name', ({ vaddr, error }) => {
    const v = mapP2mList(listGuest(0x80000n, vaddr, { 0: C0, 1: C1 }), 0x7ffff);
    expectFailure(v, error);
    expect(v.structureFrames.size).toBe(0);
  });

  it.each([
    {
      name: 'zero PTE frame at level 2',
      edit: (img: MemoryImage) => putU64(img, L2, 1, KERNEL_TABLE),
      error: 'level-2 entry 1 of table frame 0x3002 (vaddr 0xffffc90000200000) names frame 0',
    },
    {
      // level-1 index 512 + 7 = 519 → 0xc90000000000 + 519·4096
      name: 'PTE frame above max_mfn at level 1',
      edit: (img: MemoryImage) => putU64(img, C1, 7, pte(0x100000)),
      error: 'level-1 entry 7 of table frame 0x3004 (vaddr 0xffffc90000207000) names frame 0x100000, above max_mfn 0xfffff',
    },
    {
      name: 'root above max_mfn',
      edit: (img: MemoryImage) => setArch(img, { p2mCr3: 0x100000n << 12n }),
      error: 'arch.p2m_cr3 0x100000000 names root frame 0x100000, above max_mfn 0xfffff',
    },
    {
      name: 'root frame 0',
      edit: (img: MemoryImage) => setArch(img, { p2mCr3: 0x800n }),
      error: 'arch.p2m_cr3 0x800 names root frame 0',
    },
    {
      name: 'absent root',
      edit: (img: MemoryImage) => setArch(img, { p2mCr3: 0x3fffn << 12n }),
      error: 'frame 0x3fff (level-4 page table named by arch.p2m_cr3) is not in the image',
    },
    {
      name: 'absent level-2 table',
      edit: (img: MemoryImage) => putU64(img, L3, 0, pte(0x3100)),
      error: 'frame 0x3100 (level-2 page table named by level-3 entry 0) is not in the image',
    },
    {
      // ~0 / 512 + 1 = 2^55 → (unsigned int) 0 frames: p2m_end = vaddr − 1
      name: 'arch.max_pfn 0',
      edit: (img: MemoryImage) => setArch(img, { maxPfn: 0n }),
      error: 'bad virtual p2m address range 0xffffc90000000000-0xffffc8ffffffffff: it wraps',
    },
  ])('fails: $name', ({ edit, error }) => {
    const img = listGuest(0x80000n, VMALLOC, { 0: C0, 1: C1 });
    edit(img);
    expectFailure(mapP2mList(img, BigInt.asUintN(64, img.arch.maxPfn - 1n)), error);
  });
});

// ---- map_p2m --------------------------------------------------------------------------------------
/** Both a tree (FLL 0x1000 → A, B) and a list (root 0x3000 → … → C0, C1) for 2 GiB of pfns. */
function bothGuest(p2mCr3: bigint): MemoryImage {
  const img = listGuest(0x80000n, VMALLOC, { 0: C0, 1: C1 });
  const tree = treeGuest(0x80000n, [FL_A, FL_B]);
  for (const f of [FLL, FL_A, FL_B]) img.setFrame(f, tree.writableFrame(f));
  setArch(img, { pfnToMfnFrameListList: BigInt(FLL), p2mCr3 });
  return img;
}

describe('map_p2m', () => {
  it.each([
    { name: 'p2m_cr3 0 → tree', cr3: 0n, forced: undefined, method: 'tree', leaf0: 0x20000, why: 'arch.p2m_cr3 is 0' },
    { name: 'p2m_cr3 set → list', cr3: BigInt(ROOT) << 12n, forced: undefined, method: 'list', leaf0: 0x40000, why: 'arch.p2m_cr3 0x3000000 is non-zero' },
    { name: 'forced tree', cr3: BigInt(ROOT) << 12n, forced: 'tree' as const, method: 'tree', leaf0: 0x20000, why: 'forced' },
  ])('$name', ({ cr3, forced, method, leaf0, why }) => {
    const v = mapP2m(bothGuest(cr3), forced ? { method: forced } : undefined);
    expect(v.failure).toBeNull();
    expect(v.method).toBe(method);
    expect(v.archMaxPfn).toBe(0x80000n);
    expect(v.maxPfn).toBe(0x7ffff);
    expect(v.leafFrames.length).toBe(1024);
    expect(v.leafFrames[0]).toBe(leaf0);
    expect(v.notes[0]).toContain(`method ${method}: ${why}`);
    expect(v.notes.join('\n')).toContain('mfn_in_pseudophysmap');
  });

  it('forced list with p2m_cr3 0 fails on root frame 0', () => {
    const v = mapP2m(bothGuest(0n), { method: 'list' });
    expect(v.method).toBe('list');
    expectFailure(v, 'arch.p2m_cr3 0x0 names root frame 0');
  });

  it('the list method on a guest that set FLL to ~0 succeeds where the tree fails', () => {
    const img = listGuest(0x80000n, VMALLOC, { 0: C0, 1: C1 });
    expect(mapP2m(img).failure).toBeNull();
    expectFailure(mapP2m(img, { method: 'tree' }), '(~0: the guest publishes only the linear list)');
  });

  it('refuses a 32-bit guest', () => {
    const img = bothGuest(0n);
    img.guestWidth = 4;
    expectFailure(mapP2m(img), 'guest width 4');
  });
});
