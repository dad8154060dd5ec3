// Page walk over hand-built x86-64 tables (Intel SDM vol.3A §4.5). Every expected frame/offset below is
// worked out by hand from the VA's bit fields: L4 = bits 47..39, L3 = 38..30, L2 = 29..21, L1 = 20..12.
import { describe, expect, it } from 'vitest';
import { MemoryImage } from '../src/formats/memory-image.js';
import { PageTableBuilder } from '../src/emulate/kernel/page-table-builder.js';
import { frameOfVaWords, isWalkFailure, readVirt, readVirtU64, TableCache, translate, walkRange, type FrameReader, type Translation, type WalkFailure } from '../src/translate/page-walk.js';
import { _PAGE_ACCESSED, _PAGE_NX_HI, _PAGE_PRESENT, _PAGE_PSE, _PAGE_RW, _PAGE_USER, PAGE_SIZE } from '../src/xen/abi.js';

const P = _PAGE_PRESENT;
const RW = _PAGE_RW;
const TABLE = P | RW | _PAGE_USER | _PAGE_ACCESSED;

/** Write one entry as its two raw words (given by hand) into `table` at `index`. */
function setRaw(img: MemoryImage, table: number, index: number, lo: number, hi = 0): void {
  const page = img.hasFrame(table) ? img.writableFrame(table) : img.newFrame(table);
  page.writeUInt32LE(lo >>> 0, index * 8);
  page.writeUInt32LE(hi >>> 0, index * 8 + 4);
}

/** Entry naming a frame below 2^20 (so the whole address sits in the low word: frame * 0x1000). */
function low(frame: number, flags: number): number {
  return frame * 0x1000 + flags;
}

// ---- the hand-built image ----------------------------------------------------------------------
//  cr3 = 0x100 (L4)
//  L4[0]   → L3 0x101      L4[1] empty        L4[2] = PS set (reserved at L4)
//  L4[5]   → 0x100 itself (loop)              L4[7] empty
//  L4[273] → L3 0x110 (direct map 0xffff888000000000)
//  L3 0x101: [0] → L2 0x102, [1] empty
//  L2 0x102: [1] → L1 0x104, [2] → L1 0x103, [3] empty, [4] → 0x999 (absent), [5] = 2M leaf @0x40000,
//            [511] = 2M leaf @0x7fe00
//  L3 0x101: [1] = 1G leaf @0x80000 is set up in a separate image (see below)
//  L1 0x103: [3] → 0x5555, [4] → 0x5556, [5] empty, [6] = frame 0x777 without P,
//            [7] → 0x123456789a with NX and bits 52..62 set
//  L1 0x104: [0x1ff] → 0x6000, [0] → 0x6001
//  L3 0x110: [0] → L2 0x111, [1] = 1G leaf @0x80000
//  L2 0x111: [0x91] = 2M leaf with the PAT bit (frame 0x40001 → base 0x40000)
function handImage(): MemoryImage {
  const img = new MemoryImage();
  setRaw(img, 0x100, 0, low(0x101, TABLE));
  setRaw(img, 0x100, 2, low(0x200, TABLE | _PAGE_PSE));
  setRaw(img, 0x100, 5, low(0x100, TABLE));
  setRaw(img, 0x100, 273, low(0x110, TABLE));
  setRaw(img, 0x101, 0, low(0x102, TABLE));
  setRaw(img, 0x102, 1, low(0x104, TABLE));
  setRaw(img, 0x102, 2, low(0x103, TABLE));
  setRaw(img, 0x102, 4, low(0x999, TABLE));
  setRaw(img, 0x102, 5, low(0x40000, P | RW | _PAGE_PSE));
  setRaw(img, 0x102, 511, low(0x7fe00, P | RW | _PAGE_PSE));
  setRaw(img, 0x103, 3, low(0x5555, P | RW));
  setRaw(img, 0x103, 4, low(0x5556, P | RW));
  setRaw(img, 0x103, 6, low(0x777, RW));
  // frame 0x123456789a: address 0x123456789a000 → low word 0x6789a000, high word 0x12345; add NX (bit 63) and bits 52..62
  setRaw(img, 0x103, 7, 0x6789a000 + P + RW, 0x12345 | _PAGE_NX_HI | 0x7ff00000);
  setRaw(img, 0x104, 0x1ff, low(0x6000, P | RW));
  setRaw(img, 0x104, 0, low(0x6001, P | RW));
  setRaw(img, 0x110, 0, low(0x111, TABLE));
  setRaw(img, 0x110, 1, low(0x80000, P | RW | _PAGE_PSE));
  setRaw(img, 0x111, 0x91, low(0x40001, P | RW | _PAGE_PSE));
  // data pages for readVirt
  const a = img.newFrame(0x5555);
  a.set([0x11, 0x22, 0x33, 0x44], PAGE_SIZE - 4);
  a.set([0xab, 0xcd], 0xabc);
  const b = img.newFrame(0x5556);
  b.set([0x55, 0x66, 0x77, 0x88, 0x99], 0);
  return img;
}

const CR3 = 0x100;

function ok(r: Translation | WalkFailure): Translation {
  if (isWalkFailure(r)) throw new Error(`unexpected failure: ${r.error}`);
  return r;
}

describe('translate: leaves', () => {
  const img = handImage();
  it.each([
    // va, frame, offset, pageSize, how derived
    [0x403abcn, 0x5555, 0xabc, 4096, 'L4 0, L3 0, L2 2, L1 3'],
    [0x403000n, 0x5555, 0, 4096, 'first byte of the page'],
    [0x404fffn, 0x5556, 0xfff, 4096, 'L1 4, last byte'],
    [0x407010n, 0x123456789a, 0x10, 4096, 'L1 7: frame above 2^32; NX and bits 52..62 masked'],
    [0x3ff123n, 0x6000, 0x123, 4096, 'L2 1, L1 0x1ff'],
    [0xa00000n, 0x40000, 0, 2097152, 'L2 5 = 2M leaf, first page'],
    [0xb45678n, 0x40145, 0x678, 2097152, '0xb45678 - 0xa00000 = 0x145678 → page 0x145'],
    [0x3fffffffn, 0x7fe00 + 0x1ff, 0xfff, 2097152, 'L2 511 2M leaf, last byte'],
    [0xffff888012345678n, 0x40145, 0x678, 2097152, 'L4 273, L3 0, L2 0x91; PAT bit ignored (0x40001 → 0x40000)'],
    [0xffff888063456789n, 0xa3456, 0x789, 1073741824, 'L3 1 = 1G leaf: 0x23456789 → page 0x23456'],
    [0xffff888040000000n, 0x80000, 0, 1073741824, '1G leaf, first byte'],
    [0xffff88807fffffffn, 0xbffff, 0xfff, 1073741824, '1G leaf, last byte: 0x80000 + 0x3ffff'],
  ])('VA %s → frame %s offset %s (%s B leaf; %s)', (va, frame, offset, pageSize) => {
    expect(translate(img, CR3, va)).toEqual({ frame, offset, pageSize });
  });
});

describe('translate: failures', () => {
  const img = handImage();
  it.each([
    // va, level, tableFrame, index, message fragment
    [0x8000000000n, 4, 0x100, 1, 'not present', 'L4 1 empty'],
    [0x10000000000n, 4, 0x100, 2, 'reserved PS', 'PS in an L4 entry'],
    [0x00007fffffffffffn, 4, 0x100, 255, 'not present', 'last canonical low VA: L4 255 empty'],
    [0xffff800000000000n, 4, 0x100, 256, 'not present', 'first canonical high VA: L4 256 empty'],
    [0x40000000n, 3, 0x101, 1, 'not present', 'L3 1 empty'],
    [0x600000n, 2, 0x102, 3, 'not present', 'L2 3 empty'],
    [0x405000n, 1, 0x103, 5, 'not present', 'L1 5 empty'],
    [0x406000n, 1, 0x103, 6, 'not present', 'L1 6 names a frame but lacks P'],
    [0x800000n, 1, 0x999, 0, 'absent', 'L2 4 names table 0x999, not in the image'],
  ])('VA %s fails at level %s (table %s, index %s)', (va, level, tableFrame, index, fragment) => {
    const r = translate(img, CR3, va);
    expect(isWalkFailure(r)).toBe(true);
    expect(r).toMatchObject({ level, tableFrame, index });
    expect((r as WalkFailure).error).toContain(fragment);
  });

  it('an absent cr3 frame fails at level 4 naming it', () => {
    expect(translate(img, 0xdead, 0x1000n)).toMatchObject({ level: 4, tableFrame: 0xdead, index: 0 });
  });

  it.each([
    [0x0000800000000000n, 'first non-canonical'],
    [0xffff7fffffffffffn, 'last non-canonical'],
    [0x1234567812345678n, 'bits 63..47 mixed'],
    [-1n, 'negative'],
    [1n << 64n, '2^64'],
  ])('non-canonical VA %s (%s) fails at level 0 without reading tables', (va) => {
    let reads = 0;
    const counting: FrameReader = { readFrame: (f) => (reads++, img.readFrame(f)) };
    const r = translate(counting, CR3, va);
    expect(r).toMatchObject({ level: 0, tableFrame: -1, index: -1 });
    expect(reads).toBe(0);
  });
});

describe('translate: a table that points to itself', () => {
  const img = handImage();
  // L4[5] → 0x100 (the L4 page). va(i4,i3,i2,i1) = i4<<39 | i3<<30 | i2<<21 | i1<<12.
  it.each([
    // indices 5,5,5,5: every level reads L4[5] → the L4 page is the data page
    [0x28140a05010n, 'ok', 0x100, 0x10],
    // indices 5,5,5,0: the L1 step reads L4[0] → frame 0x101 (the L3 page, seen as data)
    [0x28140a00000n, 'ok', 0x101, 0],
    // indices 5,5,7: the L2 step reads the L4 page's entry 7 (empty)
    [0x28140e00000n, 'fail', 0x100, 7],
  ])('VA %s → %s (frame/table %s, offset/index %s)', (va, kind, frame, n) => {
    const r = translate(img, CR3, va);
    if (kind === 'ok') expect(r).toEqual({ frame, offset: n, pageSize: 4096 });
    else expect(r).toMatchObject({ level: 2, tableFrame: frame, index: n });
  });
});

/** The second code path: per-page translate. */
function perPage(img: FrameReader, cr3: number, va: bigint, count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = translate(img, cr3, va + BigInt(i) * 4096n);
    out.push(isWalkFailure(t) ? -1 : t.frame);
  }
  return out;
}

function walked(img: FrameReader, cr3: number, va: bigint, count: number): { frames: number[]; l1: number[] } {
  const frames: number[] = [];
  const l1: number[] = [];
  let inOrder = true;
  walkRange(img, cr3, va, count, (i, f, t) => {
    if (i !== frames.length) inOrder = false;
    frames.push(f);
    l1.push(t);
  });
  expect(inOrder).toBe(true);
  expect(frames).toHaveLength(count);
  return { frames, l1 };
}

describe('walkRange', () => {
  const img = handImage();

  it.each([
    // va, count, what the range covers
    [0n, 512 * 7, 'L2 0 (empty) … L2 6: 4K tables, empty L2, absent table, 2M leaf'],
    [0x3fe000n, 8, 'crossing L1 tables: L2 1 index 0x1fe → L2 2 index 5'],
    [0x3fe00000n, 1024, 'L2 511 (2M leaf) into L3 1 (empty)'],
    [0xffff888000000000n - 0x4000n, 600, 'L4 272 (empty) into L4 273: L2 0 empty … 2M leaf at L2 0x91 not reached'],
    [0xffff888012200000n - 0x2000n, 520, 'into the PAT 2M leaf at L2 0x91'],
    [0xffff88803fffe000n, 600, 'from L3 0 into the 1G leaf at L3 1'],
    [0x7ffffffff000n - 0x3000n, 8, 'across the canonical hole (low end)'],
    [0xfffffffffffff000n - 0x2000n, 6, 'past 2^64'],
    [0x28140a00000n, 1024, 'through the self-referencing L4 entry'],
  ])('%s + %s pages equals per-page translate (%s)', (va, count) => {
    expect(walked(img, CR3, va, count).frames).toEqual(perPage(img, CR3, va, count));
  });

  it('reports frames and the L1 table that mapped each page', () => {
    // pages 0x3fe..0x408: 0x3fe unmapped (0x104[0x1fe] empty), 0x3ff → 0x6000 via 0x104,
    // 0x400..0x402 unmapped, 0x403 → 0x5555 and 0x404 → 0x5556 via 0x103, 0x405, 0x406 unmapped,
    // 0x407 → 0x123456789a via 0x103
    const r = walked(img, CR3, 0x3fe000n, 10);
    expect(r.frames).toEqual([-1, 0x6000, -1, -1, -1, 0x5555, 0x5556, -1, -1, 0x123456789a]);
    expect(r.l1).toEqual([-1, 0x104, -1, -1, -1, 0x103, 0x103, -1, -1, 0x103]);
  });

  it('gives -1 as the L1 table for pages of 2M and 1G leaves', () => {
    expect(walked(img, CR3, 0xa00000n, 3)).toEqual({ frames: [0x40000, 0x40001, 0x40002], l1: [-1, -1, -1] });
    expect(walked(img, CR3, 0xffff888040000000n, 2)).toEqual({ frames: [0x80000, 0x80001], l1: [-1, -1] });
  });

  it('reads each table once per run and skips non-present ranges without reads', () => {
    let reads = 0;
    const counting: FrameReader = { readFrame: (f) => (reads++, img.readFrame(f)) };
    // 512 pages of L2 2 (one L1 table): L4, L3, L2, L1 read once each
    walked(counting, CR3, 0x400000n, 512);
    expect(reads).toBe(4);
    // a million pages under the empty L4 slot 1: only the L4 page is read
    reads = 0;
    const r = walked(counting, CR3, 0x8000000000n, 1 << 20);
    expect(reads).toBe(1);
    expect(r.frames.every((f) => f === -1)).toBe(true);
  });

  it('terminates in O(count) over tables forming a cycle', () => {
    // every table level is the L4 page (L4[5] → itself); 2^19 pages run through L2 entries 5.. of the loop
    let reads = 0;
    const counting: FrameReader = { readFrame: (f) => (reads++, img.readFrame(f)) };
    const count = 1 << 19;
    let visits = 0;
    walkRange(counting, CR3, 0x28140000000n, count, () => visits++);
    expect(visits).toBe(count);
    // 2^19 pages = L3 slot 5 of the loop (1 GiB) then L3 slot 6 (L4[6] empty: skipped, no reads).
    // Reads, by hand: 0x100 as L4, as L3 and as L2 (3); then as L1 tables the frames the L4 page's
    // entries name when read at L2: [0] → 0x101, [5] → 0x100, [273] → 0x110 ([2] has PS: a 2M leaf) (3).
    expect(reads).toBe(6);
    expect(walked(img, CR3, 0x28140000000n, 4096).frames).toEqual(perPage(img, CR3, 0x28140000000n, 4096));
  });

  it('is safe with a reader that reuses one buffer', () => {
    const scratch = Buffer.alloc(PAGE_SIZE);
    const reusing: FrameReader = {
      readFrame: (f) => {
        const p = img.readFrame(f);
        if (!p) return null;
        p.copy(scratch);
        return scratch;
      },
    };
    expect(walked(reusing, CR3, 0x3fe000n, 520).frames).toEqual(perPage(img, CR3, 0x3fe000n, 520));
  });

  // L2 0x302: [0], [1], [2] and [4] → the shared PTE page 0x303 (like Linux's p2m_identity_pte),
  // [3] → its own PTE page 0x304; 0x303 maps entries 0..9 to 0x7000+idx and leaves 10 empty.
  function sharedPteImage(): MemoryImage {
    const img = new MemoryImage();
    setRaw(img, 0x300, 0, low(0x301, TABLE));
    setRaw(img, 0x301, 0, low(0x302, TABLE));
    for (const e of [0, 1, 2, 4]) setRaw(img, 0x302, e, low(0x303, TABLE));
    setRaw(img, 0x302, 3, low(0x304, TABLE));
    for (let idx = 0; idx < 10; idx++) setRaw(img, 0x303, idx, low(0x7000 + idx, P | RW));
    setRaw(img, 0x304, 0, low(0x8000, P | RW));
    return img;
  }

  it.each([
    // va, count, repeats expected (by hand: runs through 0x303 right after a run through 0x303 at the same entries)
    [0n, 512 * 5, 2, 'L2 0..4: 0x303 three times (two repeats), 0x304, 0x303 again (after 0x304: visited)'],
    [0x5000n, 512 * 2 - 5, 0, 'from entry 5 of L2 0 (entries 5..511), then L2 1 (entries 0..511): not inside the first run → visited'],
    [0x200000n, 512 * 2 + 7, 1, 'L2 1 (visited), L2 2 (repeat), entries 0..6 of L2 3 (its own PTE page 0x304: visited)'],
    [0x1ff000n, 3, 0, 'the last entry of L2 0, then entries 0..1 of L2 1: not inside [511, 512) → visited'],
    [0x200000n, 512 + 300, 1, 'L2 1 (visited), then the count ends at entry 299 of L2 2: a repeat of part of the last run'],
    [0x3000n, 512 * 4 - 3, 1, 'entries 3..511 of L2 0 (visited), L2 1 (0..511: not inside [3, 512) → visited), L2 2 (repeat), L2 3 (0x304: visited)'],
  ])('with repeat: %s + %s pages expand to per-page translate (%s repeats)', (va, count, wantRepeats) => {
    const img = sharedPteImage();
    const frames: number[] = new Array(count).fill(NaN);
    let repeats = 0;
    walkRange(
      img,
      0x300,
      va,
      count,
      (i, f) => {
        frames[i] = f;
      },
      (i, n, from) => {
        repeats++;
        expect(from + n).toBeLessThanOrEqual(i);
        for (let k = 0; k < n; k++) frames[i + k] = frames[from + k]!;
      },
    );
    expect(frames).toEqual(perPage(img, 0x300, va, count));
    expect(repeats).toBe(wantRepeats);
  });

  it.each([
    [0x1001n, 1, 'unaligned VA'],
    [-4096n, 1, 'negative VA'],
    [0n, -1, 'negative count'],
    [0n, 1.5, 'fractional count'],
  ])('throws RangeError for %s/%s (%s)', (va, count) => {
    expect(() => walkRange(img, CR3, va, count, () => {})).toThrow(RangeError);
  });
});

describe('readVirt', () => {
  const img = handImage();

  it('reads across a page boundary (0x403ffc: last 4 bytes of 0x5555, first 4 of 0x5556)', () => {
    expect(readVirt(img, CR3, 0x403ffcn, 9)).toEqual(Buffer.from([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99]));
    expect(readVirtU64(img, CR3, 0x403ffcn)).toBe(0x8877665544332211n);
    expect(readVirtU64(img, CR3, 0x403abcn)).toBe(0xcdabn);
  });

  it.each([
    // va, len, level, tableFrame, index
    [0x404ffcn, 8, 1, 0x103, 5, 'second page not present'],
    [0xa00000n, 8, 0, 0x40000, -1, 'data frame of the 2M leaf absent from the image'],
    [0x00007ffffffffffcn, 8, 4, 0x100, 255, 'first page already unmapped'],
  ])('%s + %s fails at level %s (%s, %s): %s', (va, len, level, tableFrame, index) => {
    expect(readVirt(img, CR3, va, len)).toMatchObject({ level, tableFrame, index });
    expect(readVirtU64(img, CR3, va)).toMatchObject({ level, tableFrame, index });
  });

  it('reads zero bytes without walking', () => {
    expect(readVirt(img, CR3, 0x8000000000n, 0)).toEqual(Buffer.alloc(0));
  });
});

describe('PageTableBuilder', () => {
  function build(): { img: MemoryImage; b: PageTableBuilder } {
    const img = new MemoryImage();
    let next = 0x1000;
    const b = new PageTableBuilder(img, () => next++);
    return { img, b };
  }

  it('allocates tables on demand and writes entries a walk follows', () => {
    const { img, b } = build();
    b.map4k(0xffff888000001000n, 0x2000);
    // cr3 0x1000, then L3 0x1001, L2 0x1002, L1 0x1003
    expect(b.cr3Frame).toBe(0x1000);
    expect(b.tableFrames()).toEqual([0x1000, 0x1001, 0x1002, 0x1003]);
    // L4 index 273 → entry at byte 273*8 names 0x1001 (address 0x1001000) and is present
    const l4 = img.readFrame(0x1000)!;
    expect(l4.readUInt32LE(273 * 8) & 0xfffff000).toBe(0x1001000);
    expect(l4.readUInt32LE(273 * 8) & _PAGE_PRESENT).toBe(_PAGE_PRESENT);
    expect(img.readFrame(0x1003)!.readUInt32LE(1 * 8) & 0xfffff000).toBe(0x2000000);
    expect(translate(img, b.cr3Frame, 0xffff888000001234n)).toEqual({ frame: 0x2000, offset: 0x234, pageSize: 4096 });
    // a second page in the same L1 table allocates nothing
    b.map4k(0xffff888000002000n, 0x2001);
    expect(b.tableFrames()).toHaveLength(4);
  });

  it('encodes frames above 2^32 in both words', () => {
    const { img, b } = build();
    b.map4k(0x5000n, 0x123456789a);
    // L1 0x1003 entry 5: low word 0x6789a000 | flags, high word 0x12345
    const l1 = img.readFrame(0x1003)!;
    expect((l1.readUInt32LE(5 * 8) & 0xfffff000) >>> 0).toBe(0x6789a000);
    expect(l1.readUInt32LE(5 * 8 + 4)).toBe(0x12345);
    expect(ok(translate(img, b.cr3Frame, 0x5008n)).frame).toBe(0x123456789a);
  });

  it('writes non-present 4K entries when flags lack P', () => {
    const { img, b } = build();
    b.map4k(0x5000n, 0x77, RW);
    expect(translate(img, b.cr3Frame, 0x5000n)).toMatchObject({ level: 1, tableFrame: 0x1003, index: 5 });
  });

  it('maps 2M and 1G leaves', () => {
    const { img, b } = build();
    b.map2m(0x40200000n, 0x600); // L3 1, L2 1
    b.map1g(0xffffc90000000000n, 0xc0000); // L4 402, L3 0
    expect(translate(img, b.cr3Frame, 0x40203456n)).toEqual({ frame: 0x603, offset: 0x456, pageSize: 2097152 });
    expect(translate(img, b.cr3Frame, 0xffffc90012345678n)).toEqual({ frame: 0xd2345, offset: 0x678, pageSize: 1073741824 });
    // 2M: cr3, L3, L2; 1G: L3 only
    expect(b.tableFrames()).toEqual([0x1000, 0x1001, 0x1002, 0x1003]);
  });

  it('shares an L1 table between two L2 entries with setPmd', () => {
    const { img, b } = build();
    b.map4k(0x7000n, 0x3000); // L1 0x1003 index 7
    b.setPmd(0x200000n, 0x1003); // L2 1 → the same L1
    expect(ok(translate(img, b.cr3Frame, 0x207000n)).frame).toBe(0x3000);
    const r = walked(img, b.cr3Frame, 0x207000n, 1);
    expect(r).toEqual({ frames: [0x3000], l1: [0x1003] });
  });

  it('extends an existing cr3 page', () => {
    const img = handImage();
    let next = 0x9000;
    const b = new PageTableBuilder(img, () => next++, CR3);
    b.map4k(0x405000n, 0x4444); // fills L1 0x103 entry 5
    expect(b.tableFrames()).toEqual([CR3]);
    expect(ok(translate(img, CR3, 0x405000n)).frame).toBe(0x4444);
    expect(ok(translate(img, CR3, 0x403000n)).frame).toBe(0x5555);
  });

  it.each([
    ['map4k through a 2M leaf', (b: PageTableBuilder) => (b.map2m(0x200000n, 0x200), b.map4k(0x201000n, 1))],
    ['map2m at an unaligned VA', (b: PageTableBuilder) => b.map2m(0x201000n, 0x200)],
    ['map2m with an unaligned frame', (b: PageTableBuilder) => b.map2m(0x200000n, 0x201)],
    ['map1g with an unaligned frame', (b: PageTableBuilder) => b.map1g(0x40000000n, 0x200)],
    ['map4k at a non-canonical VA', (b: PageTableBuilder) => b.map4k(0x800000000000n, 1)],
    ['map4k with flags in the frame bits', (b: PageTableBuilder) => b.map4k(0x1000n, 1, 0x1001)],
    ['map4k through a table frame absent from the image', (b: PageTableBuilder) => (b.setPmd(0x200000n, 0x4242), b.map4k(0x201000n, 1))],
  ])('refuses %s', (_what, act) => {
    const { b } = build();
    expect(() => act(b)).toThrow(Error);
  });
});

describe('frameOfVaWords: the walk of a pointer given as its two words', () => {
  const img = handImage();
  const words = (va: bigint): [number, number] => [Number(va & 0xffffffffn), Number((va >> 32n) & 0xffffffffn)];
  // the frames worked out by hand for translate above (the same bit fields), and −1 where it fails
  const cases: [bigint, number][] = [
    [0x403abcn, 0x5555],
    [0x404fffn, 0x5556],
    [0x407010n, 0x123456789a],
    [0x3ff123n, 0x6000],
    [0xb45678n, 0x40145],
    [0x3fffffffn, 0x7fe00 + 0x1ff],
    [0xffff888012345678n, 0x40145],
    [0xffff888063456789n, 0xa3456],
    [0xffff88807fffffffn, 0xbffff],
    [0x8000000000n, -1],
    [0x10000000000n, -1],
    [0x40000000n, -1],
    [0x405000n, -1],
    [0x406000n, -1],
    [0x800000n, -1],
    [0xffff888000403000n, -1], // L4 273 → L2 0x111 entry 2: empty (the low word is that of 0x403000, the high word differs)
  ];
  it.each(cases)('VA %s → frame %s', (va, frame) => {
    const [lo, hi] = words(va);
    expect(frameOfVaWords(img, CR3, lo, hi)).toBe(frame);
  });

  it.each([0x0000800000000000n, 0xffff7fffffffffffn, 0x1234567812345678n])('non-canonical VA %s: −1 without reading tables', (va) => {
    let reads = 0;
    const counting: FrameReader = { readFrame: (f) => (reads++, img.readFrame(f)) };
    const [lo, hi] = words(va);
    expect(frameOfVaWords(counting, CR3, lo, hi)).toBe(-1);
    expect(reads).toBe(0);
  });

  it('through one TableCache, in any order: the same frames as walks without it (the cache starts a walk at the L1 table of the same 2 MiB region only)', () => {
    const cache = new TableCache(img);
    for (const order of [cases, [...cases].reverse()]) {
      for (const [va, frame] of order) {
        const [lo, hi] = words(va);
        expect(frameOfVaWords(cache, CR3, lo, hi)).toBe(frame);
        const t = translate(cache, CR3, va);
        expect(isWalkFailure(t) ? -1 : t.frame).toBe(frame);
      }
    }
  });

  it('the L1 table a cache remembers belongs to one top table and one VA region: another cr3, or another high word, is walked from the top', () => {
    const two = handImage();
    // cr3 0x300: L4[0] → L3 0x301 → L2 0x302 [2] → L1 0x303 [3] → 0x7777 (VA 0x403000, as under cr3 0x100 but another frame)
    setRaw(two, 0x300, 0, low(0x301, TABLE));
    setRaw(two, 0x301, 0, low(0x302, TABLE));
    setRaw(two, 0x302, 2, low(0x303, TABLE));
    setRaw(two, 0x303, 3, low(0x7777, P | RW));
    const cache = new TableCache(two);
    const [lo, hi] = words(0x403000n);
    expect(frameOfVaWords(cache, CR3, lo, hi)).toBe(0x5555);
    expect(frameOfVaWords(cache, 0x300, lo, hi)).toBe(0x7777);
    expect(frameOfVaWords(cache, CR3, lo, hi)).toBe(0x5555);
    // and to the whole VA above the L1 index: the same low word with another high word is another region
    const [lo2, hi2] = words(0xffff888000403000n);
    expect(lo2).toBe(lo);
    expect(frameOfVaWords(cache, CR3, lo2, hi2)).toBe(-1);
  });
});
