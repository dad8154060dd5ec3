// The emulated kernel's memory: where its pages live (kernel image + brk, Xen's initial mapping,
// memblock/bootmem via the direct map), kernel variables with symbols, and the final layout of every
// page into machine frames with real x86-64 page tables (arch/x86/xen/mmu.c, arch/x86/kernel/setup.c).
import { MemoryImage } from '../../formats/memory-image.js';
import { PageTableBuilder } from './page-table-builder.js';
import { INVALID_P2M_ENTRY_WORD, IDENTITY_FRAME_HI, P2M_PER_PAGE, PAGE_SIZE, START_KERNEL_MAP, _PAGE_PRESENT, _PAGE_RW, _PAGE_ACCESSED, _PAGE_DIRTY, _PAGE_NX_HI } from '../../xen/abi.js';
import type { MachineMemory } from './machine.js';

/** Physical address of the kernel image (CONFIG_PHYSICAL_START = 16 MiB): first kernel pfn. */
export const KERNEL_FIRST_PFN = 0x1000;
/** Pages of kernel text/rodata modelled before the data page. */
const KERNEL_TEXT_PAGES = 64;
/** Pages reserved for brk (RESERVE_BRK totals; ample for every profile's boot allocations). */
export const BRK_PAGES = 4096;
const TWO32 = 0x100000000;

/** Where a page was allocated from, which decides the kernel VA it is known by. */
export type PageRegion = 'image' | 'brk' | 'xen' | 'bootmem';

/** One guest page the kernel knows: its pfn and the VA the kernel uses for it. */
export class KPage {
  /** Xen-provided pages stay mapped after boot only when set (start_info); mfn_list is unmapped */
  keepMapped = false;
  constructor(
    readonly pfn: number,
    readonly va: bigint,
    readonly region: PageRegion,
  ) {}
}

/** A page of 512 u64 p2m values (a leaf, or an mfn-valued mirror page). Materialised on first write. */
export class P2mPage extends KPage {
  private data: Buffer | null = null;
  /** pfn of entry 0 when the contents are generated from the initial allocation; -1 otherwise */
  lazyBase = -1;
  lazyLimit = 0;
  lazyMachine: MachineMemory | null = null;

  /** A page whose entries all read INVALID_P2M_ENTRY (p2m_init); no bytes are held until one entry changes. */
  initInvalid(): this {
    this.data = null;
    this.lazyBase = -1;
    this.lazyMachine = null;
    return this;
  }

  /** every entry INVALID and nothing materialised (a fresh or initInvalid page) */
  isAllInvalid(): boolean {
    return this.data === null && this.lazyBase < 0;
  }

  /** Entries come from Xen's initial mfn_list: mfn of basePfn+i while < limit, INVALID after. */
  initFromMachine(machine: MachineMemory, basePfn: number, limit: number): this {
    this.data = null;
    this.lazyBase = basePfn;
    this.lazyLimit = limit;
    this.lazyMachine = machine;
    return this;
  }

  /** Copy another page's contents (copy_page); a lazily generated page stays lazy. */
  copyFrom(src: P2mPage): this {
    if (src.data) {
      this.data = Buffer.from(src.data);
      this.lazyBase = -1;
    } else {
      this.data = null;
      this.lazyBase = src.lazyBase;
      this.lazyLimit = src.lazyLimit;
      this.lazyMachine = src.lazyMachine;
    }
    return this;
  }

  isLazy(): boolean {
    return this.data === null && this.lazyBase >= 0;
  }

  generate(out: Buffer): void {
    if (this.data) {
      this.data.copy(out);
      return;
    }
    out.fill(0xff);
    if (this.lazyBase < 0 || !this.lazyMachine) return;
    const n = Math.max(0, Math.min(P2M_PER_PAGE, this.lazyLimit - this.lazyBase));
    const words = out.byteOffset % 4 === 0 ? new Uint32Array(out.buffer, out.byteOffset, PAGE_SIZE / 4) : null;
    this.lazyMachine.fillMfns(this.lazyBase, n, (i, mfn) => {
      if (mfn < 0) return;
      if (words) {
        words[i * 2] = mfn % TWO32;
        words[i * 2 + 1] = Math.floor(mfn / TWO32);
      } else {
        out.writeUInt32LE(mfn % TWO32, i * 8);
        out.writeUInt32LE(Math.floor(mfn / TWO32), i * 8 + 4);
      }
    });
  }

  buf(): Buffer {
    if (!this.data) {
      const b = Buffer.alloc(PAGE_SIZE);
      this.generate(b);
      this.data = b;
      this.lazyBase = -1;
    }
    return this.data;
  }

  hi(i: number): number {
    if (this.data) return this.data.readUInt32LE(i * 8 + 4);
    return this.lazyWord(i, true);
  }
  lo(i: number): number {
    if (this.data) return this.data.readUInt32LE(i * 8);
    return this.lazyWord(i, false);
  }
  private lazyWord(i: number, high: boolean): number {
    const pfn = this.lazyBase + i;
    const mfn = this.lazyBase >= 0 && pfn < this.lazyLimit && this.lazyMachine ? this.lazyMachine.mfnOf(pfn) : -1;
    if (mfn < 0) return INVALID_P2M_ENTRY_WORD;
    return high ? Math.floor(mfn / TWO32) : mfn % TWO32;
  }

  isInvalid(i: number): boolean {
    return this.hi(i) === INVALID_P2M_ENTRY_WORD && this.lo(i) === INVALID_P2M_ENTRY_WORD;
  }
  /** entry == IDENTITY_FRAME(pfn) */
  isIdentityOf(i: number, pfn: number): boolean {
    return this.hi(i) === (IDENTITY_FRAME_HI | Math.floor(pfn / TWO32)) && this.lo(i) === pfn % TWO32;
  }
  /** entry carries IDENTITY_FRAME_BIT (and is not INVALID) */
  hasIdentityBit(i: number): boolean {
    const h = this.hi(i);
    return h !== INVALID_P2M_ENTRY_WORD && (h & IDENTITY_FRAME_HI) !== 0;
  }
  /** pfn_to_mfn-style value: mfn with marker bits cleared, or -1 for INVALID */
  mfnAt(i: number): number {
    if (this.isInvalid(i)) return -1;
    return (this.hi(i) & 0x3fffffff) * TWO32 + this.lo(i);
  }

  setMfn(i: number, mfn: number): void {
    const b = this.buf();
    b.writeUInt32LE(mfn % TWO32, i * 8);
    b.writeUInt32LE(Math.floor(mfn / TWO32), i * 8 + 4);
  }
  setInvalid(i: number): void {
    if (this.isAllInvalid()) return; // already INVALID: writing it would only materialise the page
    const b = this.buf();
    b.writeUInt32LE(INVALID_P2M_ENTRY_WORD, i * 8);
    b.writeUInt32LE(INVALID_P2M_ENTRY_WORD, i * 8 + 4);
  }
  setIdentity(i: number, pfn: number): void {
    const b = this.buf();
    b.writeUInt32LE(pfn % TWO32, i * 8);
    b.writeUInt32LE((IDENTITY_FRAME_HI | Math.floor(pfn / TWO32)) >>> 0, i * 8 + 4);
  }
  /** p2m_init_identity: every entry IDENTITY_FRAME(base + i) */
  initIdentity(basePfn: number): this {
    for (let i = 0; i < P2M_PER_PAGE; i++) this.setIdentity(i, basePfn + i);
    return this;
  }
}

/** A page of 512 kernel pointers (p2m_top, a mid page, p2m_top_mfn_p). */
export class PtrPage<T extends KPage> extends KPage {
  slots: T[] = [];
  fill(target: T): this {
    this.slots = new Array<T>(P2M_PER_PAGE).fill(target);
    return this;
  }
}

/** A page-table page whose 512 PTEs map p2m leaves (the linear list's L1 pages). */
export class PtePage extends KPage {
  slots: P2mPage[] = [];
  /** read-only mappings (shared missing/identity leaves) */
  readOnly: boolean[] = [];
}

/** A kernel variable in the image's data page(s). */
interface KVar {
  va: bigint;
  value: bigint | KPage | null;
}

/**
 * The guest's pseudo-physical layout and allocators. pfns of the kernel image start at
 * KERNEL_FIRST_PFN; Xen's initial mapping (mfn_list, start_info) follows brk; bootmem grows down
 * from the top of the initial allocation, skipping pfns that are not RAM.
 */
export class KernelSpace {
  readonly pages: KPage[] = [];
  private readonly vars = new Map<string, KVar>();
  private nextVarOff = 0;
  private readonly dataPfn = KERNEL_FIRST_PFN + KERNEL_TEXT_PAGES;
  private readonly brkBase = KERNEL_FIRST_PFN + KERNEL_TEXT_PAGES + 2;
  private brkNext: number;
  readonly xenBase: number;
  private xenNext: number;
  private bootmemNext: number;

  constructor(
    readonly machine: MachineMemory,
    readonly nrPages: number,
    /** pfns the kernel may not allocate from (non-RAM runs below nr_pages) */
    private readonly isHole: (pfn: number) => boolean,
    readonly pageOffset: bigint,
  ) {
    this.brkNext = this.brkBase;
    this.xenBase = this.brkBase + BRK_PAGES;
    this.xenNext = this.xenBase;
    this.bootmemNext = nrPages - 1;
    if (this.xenBase >= nrPages) throw new Error(`guest of ${nrPages} pages is too small to hold the kernel image`);
  }

  get brkEndPfn(): number {
    return this.brkNext;
  }

  /** extend_brk(PAGE_SIZE, PAGE_SIZE): a page inside the kernel image. */
  brk<T extends KPage>(make: (pfn: number, va: bigint) => T): T {
    if (this.brkNext >= this.brkBase + BRK_PAGES) throw new Error('brk area exhausted (kernel would panic)');
    const pfn = this.brkNext++;
    const p = make(pfn, START_KERNEL_MAP + BigInt(pfn) * BigInt(PAGE_SIZE));
    this.pages.push(p);
    return p;
  }

  /** A page Xen's domain builder placed in the initial mapping (mfn_list, start_info). */
  xen<T extends KPage>(make: (pfn: number, va: bigint) => T): T {
    const pfn = this.xenNext++;
    const p = make(pfn, START_KERNEL_MAP + BigInt(pfn) * BigInt(PAGE_SIZE));
    this.pages.push(p);
    return p;
  }

  /** memblock/bootmem/__get_free_page: a direct-mapped page, top-down below nr_pages. */
  bootmem<T extends KPage>(make: (pfn: number, va: bigint) => T): T {
    while (this.bootmemNext >= this.xenNext && this.isHole(this.bootmemNext)) this.bootmemNext--;
    if (this.bootmemNext < this.xenNext) throw new Error('out of boot memory');
    const pfn = this.bootmemNext--;
    const p = make(pfn, this.directMapVa(pfn));
    this.pages.push(p);
    return p;
  }

  /** A contiguous bootmem block of n pages (alloc_bootmem_align), lowest pfn first. */
  bootmemBlock<T extends KPage>(n: number, make: (pfn: number, va: bigint) => T): T[] {
    // find n consecutive non-hole pfns top-down
    let top = this.bootmemNext;
    for (;;) {
      while (top >= this.xenNext && this.isHole(top)) top--;
      let bottom = top;
      while (bottom > top - n + 1 && bottom - 1 >= this.xenNext && !this.isHole(bottom - 1)) bottom--;
      if (top - bottom + 1 === n) {
        this.bootmemNext = bottom - 1;
        const out: T[] = [];
        for (let pfn = bottom; pfn <= top; pfn++) {
          const p = make(pfn, this.directMapVa(pfn));
          this.pages.push(p);
          out.push(p);
        }
        return out;
      }
      if (bottom - 1 < this.xenNext) throw new Error('out of boot memory');
      top = bottom - 1;
    }
  }

  directMapVa(pfn: number): bigint {
    return this.pageOffset + BigInt(pfn) * BigInt(PAGE_SIZE);
  }

  /** Define a kernel variable (8 bytes in the data page) and its symbol. */
  defineVar(name: string, value: bigint | KPage | null = 0n): void {
    if (this.vars.has(name)) {
      this.vars.get(name)!.value = value;
      return;
    }
    if (this.nextVarOff + 8 > 2 * PAGE_SIZE) throw new Error('kernel data page full');
    const va = START_KERNEL_MAP + BigInt(this.dataPfn) * BigInt(PAGE_SIZE) + BigInt(this.nextVarOff);
    this.nextVarOff += 8;
    this.vars.set(name, { va, value });
  }

  setVar(name: string, value: bigint | KPage | null): void {
    const v = this.vars.get(name);
    if (!v) throw new Error(`kernel variable ${name} not defined`);
    v.value = value;
  }

  /**
   * Lay every page into machine frames: p2m/mfn pages, pointer pages, the data page, page tables for the
   * kernel image, Xen's initial mapping, the direct map of every bootmem page, and `extraMaps`
   * (the vmalloc'd p2m area). Returns the image, cr3 frame and symbol table.
   */
  layout(opts: {
    mem: MemoryImage;
    extraMaps?: (pt: PageTableBuilder, allocTable: () => number) => void;
  }): { cr3Frame: number; symbols: Map<string, bigint>; l4Pfn: number } {
    const { mem } = opts;
    const mfnOf = (pfn: number): number => {
      const m = this.machine.mfnOf(pfn);
      if (m < 0) throw new Error(`pfn 0x${pfn.toString(16)} used by the kernel has no machine frame`);
      return m;
    };
    const frameOfPage = (p: KPage): number => mfnOf(p.pfn);
    // page tables live in bootmem pages too
    const tablePfns: number[] = [];
    const allocTable = (): number => {
      const p = this.bootmem((pfn, va) => new KPage(pfn, va, 'bootmem'));
      tablePfns.push(p.pfn);
      return mfnOf(p.pfn);
    };
    const l4 = this.brk((pfn, va) => new KPage(pfn, va, 'brk'));
    const pt = new PageTableBuilder(mem, allocTable, mfnOf(l4.pfn));
    const flags = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY;

    // the data page with every variable
    const data = Buffer.alloc(2 * PAGE_SIZE);
    const symbols = new Map<string, bigint>();
    const dataVa = START_KERNEL_MAP + BigInt(this.dataPfn) * BigInt(PAGE_SIZE);
    for (const [name, v] of this.vars) {
      symbols.set(name, v.va);
      const off = Number(v.va - dataVa);
      const val = v.value === null ? 0n : v.value instanceof KPage ? v.value.va : v.value;
      data.writeBigUInt64LE(BigInt.asUintN(64, val), off);
    }
    symbols.set('_text', START_KERNEL_MAP + BigInt(KERNEL_FIRST_PFN) * BigInt(PAGE_SIZE));
    symbols.set('_end', START_KERNEL_MAP + BigInt(this.brkNext) * BigInt(PAGE_SIZE));
    symbols.set('init_level4_pgt', l4.va);
    symbols.set('swapper_pg_dir', l4.va);
    for (let k = 0; k < 2; k++) {
      const frame = mfnOf(this.dataPfn + k);
      mem.setFrame(frame, data.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE));
    }

    // contents of every structure page
    for (const p of this.pages) {
      if (p === l4) continue;
      const frame = frameOfPage(p);
      if (p instanceof P2mPage) {
        if (p.isLazy() || p.isAllInvalid()) mem.setFrame(frame, (out) => p.generate(out));
        else mem.setFrame(frame, p.buf());
      } else if (p instanceof PtrPage) {
        const b = Buffer.alloc(PAGE_SIZE);
        for (let i = 0; i < p.slots.length; i++) {
          const s = p.slots[i];
          if (s) b.writeBigUInt64LE(s.va, i * 8);
        }
        mem.setFrame(frame, b);
      } else if (p instanceof PtePage) {
        const b = Buffer.alloc(PAGE_SIZE);
        for (let i = 0; i < p.slots.length; i++) {
          const leaf = p.slots[i];
          if (!leaf) continue;
          const m = frameOfPage(leaf);
          const f = _PAGE_PRESENT | _PAGE_ACCESSED | (p.readOnly[i] ? 0 : _PAGE_RW | _PAGE_DIRTY);
          b.writeUInt32LE(((m % 0x100000) * PAGE_SIZE + f) >>> 0, i * 8);
          b.writeUInt32LE((Math.floor(m / 0x100000) | _PAGE_NX_HI) >>> 0, i * 8 + 4);
        }
        mem.setFrame(frame, b);
      } else if (!mem.hasFrame(frame)) {
        mem.newFrame(frame);
      }
    }

    // kernel image + brk: VA = __START_KERNEL_map + pfn * PAGE_SIZE
    const mapImagePfn = (pfn: number): void => {
      if (!mem.hasFrame(mfnOf(pfn))) mem.newFrame(mfnOf(pfn));
      pt.map4k(START_KERNEL_MAP + BigInt(pfn) * BigInt(PAGE_SIZE), mfnOf(pfn), flags);
    };
    for (let pfn = KERNEL_FIRST_PFN; pfn < this.brkNext; pfn++) mapImagePfn(pfn);
    // Xen's initial mapping: the kernel unmaps the initial mfn_list once it has its own p2m
    // (xen_cleanhighmap in 3.8's xen_pagetable_init, xen_pagetable_p2m_free in 4.x); start_info stays
    for (const p of this.pages) if (p.region === 'xen' && p.keepMapped) mapImagePfn(p.pfn);
    // direct map of bootmem pages
    for (const p of this.pages) {
      if (p.region === 'bootmem') pt.map4k(p.va, frameOfPage(p), flags);
    }
    opts.extraMaps?.(pt, allocTable);
    // tables allocated while mapping are bootmem pages too: map them in the direct map
    for (let i = 0; i < tablePfns.length; i++) {
      const pfn = tablePfns[i]!;
      pt.map4k(this.directMapVa(pfn), mfnOf(pfn), flags);
    }
    return { cr3Frame: mfnOf(l4.pfn), symbols, l4Pfn: l4.pfn };
  }
}

/** Allocate a P2mPage of a region. */
export function newP2mPage(pfn: number, va: bigint, region: PageRegion): P2mPage {
  return new P2mPage(pfn, va, region);
}
