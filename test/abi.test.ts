// ABI index math and p2m entry encoding against values worked out by hand from linux-p2m.md §0.
import { describe, expect, it } from 'vitest';
import { P2mPage } from '../src/emulate/kernel/kspace.js';
import { FOREIGN_FRAME_HI, IDENTITY_FRAME_HI, INVALID_P2M_ENTRY_WORD, MAX_P2M_PFN, P2M_PER_PAGE, P2M_PFNS_PER_TOP, p2mIndex, p2mMidIndex, p2mTopIndex } from '../src/xen/abi.js';

describe('p2m index math (top = pfn>>18, mid = (pfn>>9)&511, idx = pfn&511)', () => {
  it.each([
    [0x0, 0, 0, 0],
    [0x1ff, 0, 0, 0x1ff],
    [0x200, 0, 1, 0],
    [0x3ffff, 0, 511, 511],
    [0x40000, 1, 0, 0],
    [0x40061, 1, 0, 0x61],
    [0x7ffdf, 1, 511, 0x1df],
    [0x135af1, 4, 0x1ad, 0xf1],
    [0x7ffffff, 511, 511, 511],
  ])('pfn %s → top %i mid %i idx %i', (pfn, top, mid, idx) => {
    expect(p2mTopIndex(pfn)).toBe(top);
    expect(p2mMidIndex(pfn)).toBe(mid);
    expect(p2mIndex(pfn)).toBe(idx);
    expect(top * P2M_PFNS_PER_TOP + mid * P2M_PER_PAGE + idx).toBe(pfn);
  });

  it('constants', () => {
    expect(P2M_PER_PAGE).toBe(512);
    expect(P2M_PFNS_PER_TOP).toBe(0x40000);
    expect(MAX_P2M_PFN).toBe(0x8000000);
  });
});

describe('p2m entries as (lo, hi) words', () => {
  const page = (): P2mPage => new P2mPage(0, 0n, 'bootmem').initInvalid();
  it.each([
    // [what, write, expected lo, expected hi]
    ['INVALID_P2M_ENTRY', (p: P2mPage) => p.setInvalid(3), INVALID_P2M_ENTRY_WORD, INVALID_P2M_ENTRY_WORD],
    ['mfn 0x12345', (p: P2mPage) => p.setMfn(3, 0x12345), 0x12345, 0],
    ['mfn above 4G frames (0x1_0000_0001)', (p: P2mPage) => p.setMfn(3, 0x100000001), 1, 1],
    ['IDENTITY_FRAME(0x9f) = 0x400000000000009f', (p: P2mPage) => p.setIdentity(3, 0x9f), 0x9f, IDENTITY_FRAME_HI],
  ] as const)('%s', (_n, write, lo, hi) => {
    const p = page();
    write(p);
    expect(p.lo(3)).toBe(lo);
    expect(p.hi(3)).toBe(hi);
    expect(p.buf().readBigUInt64LE(3 * 8)).toBe((BigInt(hi) << 32n) | BigInt(lo));
  });

  it('decodes marker bits like pfn_to_mfn', () => {
    const p = page();
    p.setIdentity(0, 0x40061);
    expect(p.isIdentityOf(0, 0x40061)).toBe(true);
    expect(p.hasIdentityBit(0)).toBe(true);
    expect(p.mfnAt(0)).toBe(0x40061); // identity bit cleared
    expect(p.isInvalid(1)).toBe(true);
    expect(p.mfnAt(1)).toBe(-1);
    // FOREIGN_FRAME(m): bit 63 set, not identity
    p.buf().writeUInt32LE(0x777, 16);
    p.buf().writeUInt32LE(FOREIGN_FRAME_HI, 20);
    expect(p.hasIdentityBit(2)).toBe(false);
    expect(p.mfnAt(2)).toBe(0x777);
  });
});
