// The linear virtually mapped p2m list of Linux ≥ 3.19 and its toolstack mirror
// (arch/x86/xen/p2m.c, v4.4.155; the 2021 arch.max_pfn fix 4b511d5bfa74 as an option; linux-p2m.md §3, §5).
import { MAX_P2M_PFN, P2M_MID_PER_PAGE, P2M_PER_PAGE, P2M_PFNS_PER_TOP, P2M_TOP_PER_PAGE, PTRS_PER_TABLE, p2mMidIndex, p2mTopIndex } from '../../xen/abi.js';
import { P2mPage, PtePage, PtrPage, type KernelSpace } from './kspace.js';

/** PMD_SIZE (2 MiB of list) / 8 bytes = pfns one PTE page covers; PMDS_PER_MID_PAGE = 1 on x86-64. */
export const PFNS_PER_PMD = PTRS_PER_TABLE * P2M_PER_PAGE;
const PMD_BYTES = PFNS_PER_PMD * 8;

export interface LinearOptions {
  /** P2M_LIMIT in GiB (CONFIG_XEN_BALLOON_MEMORY_HOTPLUG_LIMIT / CONFIG_XEN_MEMORY_HOTPLUG_LIMIT), 0 if unset */
  p2mLimitGiB: number;
  /** 4b511d5bfa74: the hint is ALIGN(pfn + 1, P2M_PER_PAGE) instead of pfn */
  maxPfnFix: boolean;
  /** SIF_VIRT_P2M_4TOOLS set by the domain builder (libxc ≥ 4.7 domUs) */
  virtP2m4Tools: boolean;
}

/** Element types of xen_rebuild_p2m_list. */
const TYPE_IDENTITY = 0;
const TYPE_MISSING = 1;
const TYPE_PFN = 2;

export class P2mLinear {
  xenMaxP2mPfn = 0;
  xenP2mSize = 0;
  xenP2mLastPfn = 0;
  /** arch.max_pfn as xen_alloc_p2m_entry last published it (null: not yet) */
  archMaxPfnHint: number | null = null;
  p2mGeneration = 0;
  /** Xen's initial list (start_info.mfn_list), one page per 512 pfns */
  readonly xenList: P2mPage[] = [];
  /** after vmalloc: one entry per 2 MiB of list (PMD): a PTE page (private or shared) */
  pmds: PtePage[] = [];
  missing!: P2mPage;
  identity!: P2mPage;
  missingPte!: PtePage;
  identityPte!: PtePage;
  areaVa = 0n;
  vmallocDone = false;
  // toolstack mirror
  topMfn: P2mPage | null = null;
  topMfnP: PtrPage<P2mPage> | null = null;
  midMissingMfn: P2mPage | null = null;

  constructor(
    readonly ks: KernelSpace,
    readonly opts: LinearOptions,
    readonly vmallocStart: bigint,
  ) {}

  private mfnOf(p: P2mPage | PtePage | PtrPage<P2mPage>): number {
    return this.ks.machine.mfnOf(p.pfn);
  }

  /** xen_build_dynamic_phys_to_machine (3.19+) */
  buildDynamic(nrPages: number): void {
    this.xenP2mSize = Math.ceil(nrPages / P2M_PER_PAGE) * P2M_PER_PAGE;
    for (let pfn = 0; pfn < this.xenP2mSize; pfn += P2M_PER_PAGE) {
      this.xenList.push(this.ks.xen((p, va) => new P2mPage(p, va, 'xen')).initFromMachine(this.ks.machine, pfn, nrPages));
    }
    this.xenMaxP2mPfn = this.xenP2mSize;
  }

  private leafOf(pfn: number): P2mPage {
    if (!this.vmallocDone) return this.xenList[Math.floor(pfn / P2M_PER_PAGE)]!;
    const pte = this.pmds[Math.floor(pfn / PFNS_PER_PMD)]!;
    return pte.slots[Math.floor(pfn / P2M_PER_PAGE) % PTRS_PER_TABLE]!;
  }

  /** __pfn_to_mfn / get_phys_to_machine semantics */
  get(pfn: number): { invalid: boolean; identity: boolean; mfn: number } {
    if (pfn >= this.xenP2mSize) return { invalid: false, identity: true, mfn: pfn };
    const leaf = this.leafOf(pfn);
    if (leaf === this.identity && this.vmallocDone) return { invalid: false, identity: true, mfn: pfn };
    const i = pfn % P2M_PER_PAGE;
    if (leaf.isInvalid(i)) return { invalid: true, identity: false, mfn: -1 };
    return { invalid: false, identity: leaf.hasIdentityBit(i), mfn: leaf.mfnAt(i) };
  }

  /** set_phys_range_identity (3.19+): direct writes, clamped to xen_p2m_size. */
  setRangeIdentity(s: number, e: number): number {
    if (s >= this.xenP2mSize || s > e) return 0;
    const end = Math.min(e, this.xenP2mSize);
    for (let pfn = s; pfn < end; pfn++) this.xenList[Math.floor(pfn / P2M_PER_PAGE)]!.setIdentity(pfn % P2M_PER_PAGE, pfn);
    return end - s;
  }

  /** __set_phys_to_machine before/after vmalloc; false when a shared page refuses the value. */
  private trySet(pfn: number, value: number | 'invalid'): boolean {
    if (pfn >= this.xenP2mSize) return value === 'invalid';
    const leaf = this.leafOf(pfn);
    const i = pfn % P2M_PER_PAGE;
    if (this.vmallocDone && (leaf === this.missing || leaf === this.identity)) {
      return leaf === this.missing && value === 'invalid';
    }
    if (value === 'invalid') leaf.setInvalid(i);
    else leaf.setMfn(i, value);
    return true;
  }

  /** set_phys_to_machine: __set, else xen_alloc_p2m_entry and retry. */
  set(pfn: number, value: number | 'invalid'): boolean {
    if (this.trySet(pfn, value)) return true;
    this.allocEntry(pfn);
    return this.trySet(pfn, value);
  }

  /** early_set_phys_to_machine is set_phys_to_machine in 3.19+ (P2mOps for memory setup) */
  earlySet(pfn: number, value: number | 'invalid'): boolean {
    return this.set(pfn, value);
  }

  /**
   * xen_alloc_p2m_entry. `thenInvalid`: the caller is about to set every entry of the new leaf INVALID
   * (xen_inv_extra_mem), so an identity leaf's private copy is made INVALID at once instead of identity first.
   */
  private allocEntry(pfn: number, thenInvalid = false): void {
    const pmdIdx = Math.floor(pfn / PFNS_PER_PMD);
    let pte = this.pmds[pmdIdx]!;
    if (pte === this.missingPte || pte === this.identityPte) {
      // alloc_p2m_pmd: a private copy of the shared PTE page
      const copy = this.ks.bootmem((p, va) => new PtePage(p, va, 'bootmem'));
      copy.slots = pte.slots.slice();
      copy.readOnly = pte.readOnly.slice();
      this.pmds[pmdIdx] = copy;
      pte = copy;
    }
    let midMfn: P2mPage | null = null;
    if (this.topMfn && pfn < MAX_P2M_PFN) {
      const t = p2mTopIndex(pfn);
      midMfn = this.topMfnP!.slots[t]!;
      if (midMfn === this.midMissingMfn) {
        midMfn = this.newMidMfn();
        this.topMfnP!.slots[t] = midMfn;
        this.topMfn.setMfn(t, this.mfnOf(midMfn));
      }
    }
    const slot = Math.floor(pfn / P2M_PER_PAGE) % PTRS_PER_TABLE;
    const cur = pte.slots[slot]!;
    if (cur === this.missing || cur === this.identity) {
      const leaf = this.ks.bootmem((p, va) => new P2mPage(p, va, 'bootmem'));
      const base = pfn - (pfn % P2M_PER_PAGE);
      if (cur === this.missing || thenInvalid) leaf.initInvalid();
      else leaf.initIdentity(base);
      this.p2mGeneration++;
      pte.slots[slot] = leaf;
      pte.readOnly[slot] = false;
      this.p2mGeneration++;
      if (midMfn) midMfn.setMfn(p2mMidIndex(pfn), this.mfnOf(leaf));
    }
    if (this.opts.maxPfnFix) {
      if (pfn >= this.xenP2mLastPfn) {
        this.xenP2mLastPfn = Math.ceil((pfn + 1) / P2M_PER_PAGE) * P2M_PER_PAGE;
        this.archMaxPfnHint = this.xenP2mLastPfn;
      }
    } else if (pfn > this.xenP2mLastPfn) {
      this.xenP2mLastPfn = pfn;
      this.archMaxPfnHint = this.xenP2mLastPfn;
    }
  }

  private newMidMfn(): P2mPage {
    const p = this.ks.bootmem((pfn, va) => new P2mPage(pfn, va, 'bootmem'));
    const m = this.mfnOf(this.missing);
    for (let i = 0; i < P2M_MID_PER_PAGE; i++) p.setMfn(i, m);
    return p;
  }

  /** Element type of pfn in the list being rebuilt (xen_p2m_elem_type). */
  private elemType(pfn: number): number {
    if (pfn >= this.xenP2mSize) return TYPE_IDENTITY;
    const leaf = this.xenList[Math.floor(pfn / P2M_PER_PAGE)]!;
    const i = pfn % P2M_PER_PAGE;
    if (leaf.isInvalid(i)) return TYPE_MISSING;
    if (leaf.hasIdentityBit(i)) return TYPE_IDENTITY;
    return TYPE_PFN;
  }

  /**
   * Type shared by all of [pfn, pfn+n), or -1 when mixed or any PFN (fast for lazily generated pages; the
   * part beyond xen_p2m_size is identity without looking at it).
   */
  private uniformType(pfn: number, n: number): number {
    const t = this.elemType(pfn);
    if (t === TYPE_PFN) return -1;
    const end = pfn + n;
    const inList = Math.min(end, this.xenP2mSize);
    for (let p = pfn + 1; p < inList; p++) {
      const leaf = this.xenList[Math.floor(p / P2M_PER_PAGE)]!;
      if (leaf.isLazy() && leaf.lazyBase + (p % P2M_PER_PAGE) < leaf.lazyLimit) return -1;
      if (this.elemType(p) !== t) return -1;
    }
    return end > inList && t !== TYPE_IDENTITY ? -1 : t;
  }

  /**
   * xen_vmalloc_p2m_tree + xen_rebuild_p2m_list + xen_inv_extra_mem. Returns the area size in bytes
   * (the "p2m virtual area at …, size is …" message).
   */
  vmalloc(extraRegions: { start: number; end: number }[]): number {
    this.xenP2mLastPfn = this.xenMaxP2mPfn;
    const p2mLimit = (this.opts.p2mLimitGiB * 2 ** 30) / 4096;
    const size = Math.ceil((8 * Math.max(this.xenMaxP2mPfn, p2mLimit)) / PMD_BYTES) * PMD_BYTES;
    this.xenMaxP2mPfn = size / 8;
    this.areaVa = this.vmallocStart;
    // xen_rebuild_p2m_list
    this.missing = this.ks.bootmem((p, va) => new P2mPage(p, va, 'bootmem')).initInvalid();
    this.identity = this.ks.bootmem((p, va) => new P2mPage(p, va, 'bootmem')).initInvalid();
    this.missingPte = this.sharedPte(this.missing);
    this.identityPte = this.sharedPte(this.identity);
    const pmds: PtePage[] = new Array<PtePage>(Math.ceil(this.xenMaxP2mPfn / PFNS_PER_PMD));
    let pfn = 0;
    while (pfn < this.xenMaxP2mPfn) {
      let chunk = pfn % P2M_PFNS_PER_TOP ? P2M_PER_PAGE : P2M_PFNS_PER_TOP;
      const pmdIdx = Math.floor(pfn / PFNS_PER_PMD);
      let type = this.elemType(pfn);
      let uniform = false;
      if (type === TYPE_PFN) chunk = P2M_PER_PAGE;
      else {
        const u = this.uniformType(pfn, chunk);
        if (u < 0 && chunk !== P2M_PER_PAGE) {
          chunk = P2M_PER_PAGE;
          uniform = this.uniformType(pfn, chunk) === type;
        } else uniform = u === type;
        if (!uniform) chunk = P2M_PER_PAGE;
      }
      if (type === TYPE_PFN || !uniform) {
        const leaf = this.ks.bootmem((p, va) => new P2mPage(p, va, 'bootmem'));
        const src = pfn < this.xenP2mSize ? this.xenList[Math.floor(pfn / P2M_PER_PAGE)]! : null;
        if (src) leaf.copyFrom(src);
        else leaf.initIdentity(pfn);
        this.pteFor(pmds, pmdIdx).slots[(pfn / P2M_PER_PAGE) % PTRS_PER_TABLE] = leaf;
        type = TYPE_PFN;
      } else if (chunk === P2M_PER_PAGE) {
        const pte = this.pteFor(pmds, pmdIdx);
        const slot = (pfn / P2M_PER_PAGE) % PTRS_PER_TABLE;
        pte.slots[slot] = type === TYPE_MISSING ? this.missing : this.identity;
        pte.readOnly[slot] = true;
      } else {
        pmds[pmdIdx] = type === TYPE_MISSING ? this.missingPte : this.identityPte;
      }
      pfn += chunk;
    }
    this.pmds = pmds;
    this.vmallocDone = true;
    this.xenP2mSize = this.xenMaxP2mPfn;
    // xen_inv_extra_mem: set_phys_to_machine(pfn, INVALID) for every extra pfn, a whole leaf at a time
    for (const r of extraRegions) {
      let p = r.start;
      while (p < r.end) {
        const leafEnd = Math.min(r.end, (Math.floor(p / P2M_PER_PAGE) + 1) * P2M_PER_PAGE);
        if (p % P2M_PER_PAGE === 0 && leafEnd - p === P2M_PER_PAGE) this.invalidateLeaf(p);
        else for (let q = p; q < leafEnd; q++) this.set(q, 'invalid');
        p = leafEnd;
      }
    }
    return size;
  }

  /**
   * The state 512 set_phys_to_machine(pfn, INVALID) calls leave on the leaf of `pfn` (512-aligned): beyond
   * xen_p2m_size and on the shared missing leaf nothing changes; the shared identity leaf is replaced first
   * (xen_alloc_p2m_entry, once, for the leaf's first pfn); then every entry reads INVALID.
   */
  private invalidateLeaf(pfn: number): void {
    if (pfn >= this.xenP2mSize || this.leafOf(pfn) === this.missing) return;
    if (this.leafOf(pfn) === this.identity) this.allocEntry(pfn, true);
    else this.leafOf(pfn).initInvalid();
  }

  private sharedPte(leaf: P2mPage): PtePage {
    const pte = this.ks.bootmem((p, va) => new PtePage(p, va, 'bootmem'));
    pte.slots = new Array<P2mPage>(PTRS_PER_TABLE).fill(leaf);
    pte.readOnly = new Array<boolean>(PTRS_PER_TABLE).fill(true);
    return pte;
  }

  /** The private PTE page for a PMD, allocated on first use during the rebuild. */
  private pteFor(pmds: PtePage[], idx: number): PtePage {
    let pte = pmds[idx];
    if (!pte) {
      pte = this.ks.bootmem((p, va) => new PtePage(p, va, 'bootmem'));
      pte.slots = new Array<P2mPage>(PTRS_PER_TABLE);
      pte.readOnly = new Array<boolean>(PTRS_PER_TABLE).fill(false);
      pmds[idx] = pte;
    }
    return pte;
  }

  /** xen_build_mfn_list_list (linear): bounded by xen_max_p2m_pfn and MAX_P2M_PFN. */
  buildMfnListList(): void {
    if (this.opts.virtP2m4Tools) return;
    if (!this.topMfn) {
      this.midMissingMfn = this.newMidMfn();
      this.topMfnP = this.ks.bootmem((p, va) => new PtrPage<P2mPage>(p, va, 'bootmem')).fill(this.midMissingMfn);
      this.topMfn = this.ks.bootmem((p, va) => new P2mPage(p, va, 'bootmem'));
      const mm = this.mfnOf(this.midMissingMfn);
      for (let i = 0; i < P2M_TOP_PER_PAGE; i++) this.topMfn.setMfn(i, mm);
    }
    for (let pfn = 0; pfn < this.xenMaxP2mPfn && pfn < MAX_P2M_PFN; pfn += P2M_PER_PAGE) {
      const t = p2mTopIndex(pfn);
      const pte = this.pmds[Math.floor(pfn / PFNS_PER_PMD)]!;
      const leaf = pte.slots[(pfn / P2M_PER_PAGE) % PTRS_PER_TABLE]!;
      if (pte === this.missingPte || pte === this.identityPte) {
        this.topMfn.setMfn(t, this.mfnOf(this.midMissingMfn!));
        pfn += (P2M_MID_PER_PAGE - 1) * P2M_PER_PAGE;
        continue;
      }
      let mm = this.topMfnP!.slots[t]!;
      if (mm === this.midMissingMfn) {
        mm = this.newMidMfn();
        this.topMfnP!.slots[t] = mm;
      }
      this.topMfn.setMfn(t, this.mfnOf(mm));
      mm.setMfn(p2mMidIndex(pfn), this.mfnOf(leaf));
    }
  }

  /** Kernel variables with their 4.x/6.1 names. */
  publishVars(): void {
    const ks = this.ks;
    ks.defineVar('xen_p2m_addr', this.areaVa);
    ks.defineVar('xen_p2m_size', BigInt(this.xenP2mSize));
    ks.defineVar('xen_max_p2m_pfn', BigInt(this.xenMaxP2mPfn));
    ks.defineVar('xen_p2m_last_pfn', BigInt(this.xenP2mLastPfn));
    ks.defineVar('p2m_missing', this.missing);
    ks.defineVar('p2m_identity', this.identity);
    ks.defineVar('p2m_missing_pte', this.missingPte);
    ks.defineVar('p2m_identity_pte', this.identityPte);
    ks.defineVar('p2m_top_mfn', this.topMfn);
    ks.defineVar('p2m_top_mfn_p', this.topMfnP);
    ks.defineVar('p2m_mid_missing_mfn', this.midMissingMfn);
  }
}
