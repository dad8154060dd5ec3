// Builds x86-64 4-level page tables into an in-memory image (the emulator's kernel mappings): the entry
// layout of Linux arch/x86/include/asm/pgtable_types.h that src/translate/page-walk.ts reads back.
import { entryFrame, FRAMES_PER_1G, FRAMES_PER_2M, HI_WORD_FRAME_SCALE, isCanonical, levelIndex, VA_MASK, WORD_BYTES } from '../../translate/page-walk.js';
import { _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_PRESENT, _PAGE_PSE, _PAGE_RW, PAGE_SHIFT, PT_LEVELS_64, PTE_PFN_MASK_HI, PTE_PFN_MASK_LO, PTE_SIZE, SIZE_1G, SIZE_2M, SIZE_4K, hex } from '../../xen/abi.js';
import type { MemoryImage } from '../../formats/memory-image.js';

/** Flags the builder gives table (non-leaf) entries: Linux's _KERNPG_TABLE. */
const TABLE_ENTRY_FLAGS = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;
/** Default flags of a leaf the builder writes. */
const LEAF_ENTRY_FLAGS = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;
/** Flag bits a caller may pass (the low 12 bits of the low word). */
const LOW_FLAG_MASK = ~PTE_PFN_MASK_LO >>> 0;

/**
 * Builder for tests and the emulator: allocates page-table pages on demand in a MemoryImage and writes
 * entries. Table entries get Linux's _KERNPG_TABLE flags (P|RW|A|D); leaves default to the same.
 * Every method throws Error on a request it cannot honour (unaligned VA or frame, a non-canonical VA,
 * descending through a large leaf, or a present table entry whose table frame is not in the image).
 */
export class PageTableBuilder {
  readonly cr3Frame: number;
  private readonly tables: number[] = [];

  /**
   * @param allocFrame returns a fresh frame number for each new table page (the builder stores a zeroed page there)
   * @param cr3Frame an existing L4 page to extend, or a frame to create the L4 page at; allocated when omitted
   */
  constructor(
    private readonly img: MemoryImage,
    private readonly allocFrame: () => number,
    cr3Frame?: number,
  ) {
    if (cr3Frame === undefined) {
      this.cr3Frame = this.newTable();
    } else {
      this.cr3Frame = cr3Frame;
      if (!img.hasFrame(cr3Frame)) img.newFrame(cr3Frame);
      this.tables.push(cr3Frame);
    }
  }

  /** Map one 4 KiB page. `flags` are the low flag bits (0..11) of the L1 entry; omit _PAGE_PRESENT to write a non-present entry. */
  map4k(va: bigint, frame: number, flags: number = LEAF_ENTRY_FLAGS): void {
    this.checkVa(va, SIZE_4K);
    if ((flags & ~LOW_FLAG_MASK) !== 0) throw new Error(`map4k: flags ${hex(flags)} reach into the frame bits`);
    const l1 = this.tableFor(va, 1);
    this.setEntry(l1, levelIndex(Number(va & VA_MASK), 1), frame, flags);
  }

  /** Map a 2 MiB leaf (PSE at L2) of 512 frames from `firstFrame` (512-aligned). Replaces whatever the L2 entry held. */
  map2m(va: bigint, firstFrame: number): void {
    this.checkVa(va, SIZE_2M);
    if (firstFrame % FRAMES_PER_2M !== 0) throw new Error(`map2m: first frame ${hex(firstFrame)} is not ${FRAMES_PER_2M}-frame aligned`);
    const l2 = this.tableFor(va, 2);
    this.setEntry(l2, levelIndex(Number(va & VA_MASK), 2), firstFrame, LEAF_ENTRY_FLAGS | _PAGE_PSE);
  }

  /** Map a 1 GiB leaf (PSE at L3) of 262144 frames from `firstFrame` (262144-aligned). Replaces whatever the L3 entry held. */
  map1g(va: bigint, firstFrame: number): void {
    this.checkVa(va, SIZE_1G);
    if (firstFrame % FRAMES_PER_1G !== 0) throw new Error(`map1g: first frame ${hex(firstFrame)} is not ${FRAMES_PER_1G}-frame aligned`);
    const l3 = this.tableFor(va, 3);
    this.setEntry(l3, levelIndex(Number(va & VA_MASK), 3), firstFrame, LEAF_ENTRY_FLAGS | _PAGE_PSE);
  }

  /** Point the L2 entry covering va at an existing L1 table frame (shared PTE pages). The frame need not be in the image. */
  setPmd(va: bigint, l1Frame: number): void {
    this.checkVa(va, SIZE_4K);
    const l2 = this.tableFor(va, 2);
    this.setEntry(l2, levelIndex(Number(va & VA_MASK), 2), l1Frame, TABLE_ENTRY_FLAGS);
  }

  /** Frames of the table pages this builder created or was given as cr3 (cr3 first, then in allocation order). */
  tableFrames(): number[] {
    return [...this.tables];
  }

  private newTable(): number {
    const frame = this.allocFrame();
    this.img.newFrame(frame);
    this.tables.push(frame);
    return frame;
  }

  private checkVa(va: bigint, align: number): void {
    if (!isCanonical(va)) throw new Error(`VA ${hex(va)} is not a canonical 64-bit address`);
    if (va % BigInt(align) !== 0n) throw new Error(`VA ${hex(va)} is not ${hex(align)}-aligned`);
  }

  /** The frame of the level-`level` table covering va, creating missing tables above it. */
  private tableFor(va: bigint, level: number): number {
    const v48 = Number(va & VA_MASK);
    let table = this.cr3Frame;
    for (let l = PT_LEVELS_64; l > level; l--) {
      const page = this.img.writableFrame(table);
      const idx = levelIndex(v48, l);
      const lo = page.readUInt32LE(idx * PTE_SIZE);
      const hi = page.readUInt32LE(idx * PTE_SIZE + WORD_BYTES);
      if ((lo & _PAGE_PRESENT) === 0) {
        const next = this.newTable();
        this.setEntry(table, idx, next, TABLE_ENTRY_FLAGS);
        table = next;
        continue;
      }
      if ((lo & _PAGE_PSE) !== 0) {
        throw new Error(`VA ${hex(va)}: L${l} entry ${idx} of table ${hex(table)} is a large leaf; cannot descend to L${level}`);
      }
      const next = entryFrame(lo, hi);
      if (!this.img.hasFrame(next)) {
        throw new Error(`VA ${hex(va)}: L${l} entry ${idx} names table frame ${hex(next)}, which is not in the image`);
      }
      table = next;
    }
    return table;
  }

  private setEntry(table: number, idx: number, frame: number, flags: number): void {
    if (!Number.isSafeInteger(frame) || frame < 0 || frame >= HI_WORD_FRAME_SCALE * (PTE_PFN_MASK_HI + 1)) {
      throw new Error(`frame ${frame} does not fit in a page-table entry`);
    }
    const page = this.img.writableFrame(table);
    const lo = (((frame % HI_WORD_FRAME_SCALE) << PAGE_SHIFT) | flags) >>> 0;
    const hi = Math.floor(frame / HI_WORD_FRAME_SCALE) & PTE_PFN_MASK_HI;
    page.writeUInt32LE(lo, idx * PTE_SIZE);
    page.writeUInt32LE(hi, idx * PTE_SIZE + WORD_BYTES);
  }
}
