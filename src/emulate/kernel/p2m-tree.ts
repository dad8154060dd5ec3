// The 3-level p2m_top tree of Linux ≤ 3.18 and its toolstack mirror (arch/x86/xen/p2m.c, v3.8.13 and
// v3.18.30; the 2c185687 "delay construction of mfn_list_list" variant per linux-p2m.md §2, §4).
import { MAX_P2M_PFN, P2M_MID_PER_PAGE, P2M_PER_PAGE, P2M_PFNS_PER_TOP, P2M_TOP_PER_PAGE, p2mIndex, p2mMidIndex, p2mTopIndex } from '../../xen/abi.js';
import { KPage, P2mPage, PtrPage, type KernelSpace } from './kspace.js';

type Mid = PtrPage<P2mPage>;
type Top = PtrPage<Mid>;

export interface TreeOptions {
  /** MAX_DOMAIN_PAGES (CONFIG_XEN_MAX_DOMAIN_MEMORY GiB in pages) */
  maxDomainPages: number;
  /**
   * 'early': 3.8.13 as released — the mirror is built in xen_start_kernel and the early_alloc_*
   * helpers keep it in sync. 'delayed': 2c185687 — the helpers no longer touch it; it is built once in
   * xen_pagetable_init.
   */
  mirror: 'early' | 'delayed';
  /**
   * '3.8': identity ranges pre-allocate mids at every GiB boundary; pfns ≥ MAX_P2M_PFN read INVALID.
   * '3.18': a top-level p2m_mid_identity sentinel, early_split_p2m at both ends, pfns ≥ MAX_P2M_PFN read
   * as identity.
   */
  variant: '3.8' | '3.18';
}

export class P2mTree {
  xenMaxP2mPfn = 0;
  readonly missing: P2mPage;
  readonly identity: P2mPage;
  readonly midMissing: Mid;
  /** 3.18: the whole-GiB identity sentinel (null in 3.8) */
  readonly midIdentity: Mid | null = null;
  readonly top: Top;
  // toolstack mirror
  topMfn: P2mPage | null = null;
  topMfnP: PtrPage<P2mPage> | null = null;
  midMissingMfn: P2mPage | null = null;
  /** leaf pages that live in Xen's mfn_list (before revector) */
  readonly mfnList: P2mPage[] = [];

  constructor(
    readonly ks: KernelSpace,
    readonly opts: TreeOptions,
  ) {
    const leafPage = () => ks.brk((pfn, va) => new P2mPage(pfn, va, 'brk')).initInvalid();
    const midPage = () => ks.brk((pfn, va) => new PtrPage<P2mPage>(pfn, va, 'brk'));
    if (opts.variant === '3.18') {
      // 3.18 brk order: p2m_missing, p2m_identity, p2m_mid_missing, p2m_mid_identity, p2m_top
      this.missing = leafPage();
      this.identity = leafPage();
      this.midMissing = midPage().fill(this.missing);
      this.midIdentity = midPage().fill(this.identity);
      this.top = ks.brk((pfn, va) => new PtrPage<Mid>(pfn, va, 'brk')).fill(this.midMissing);
    } else {
      // 3.8 brk order: p2m_missing, p2m_mid_missing, p2m_top, p2m_identity
      this.missing = leafPage();
      this.midMissing = midPage().fill(this.missing);
      this.top = ks.brk((pfn, va) => new PtrPage<Mid>(pfn, va, 'brk')).fill(this.midMissing);
      this.identity = leafPage();
    }
  }

  private mfnOf(p: KPage): number {
    return this.ks.machine.mfnOf(p.pfn);
  }

  private newMid(region: 'brk' | 'bootmem'): Mid {
    const make = (pfn: number, va: bigint) => new PtrPage<P2mPage>(pfn, va, region);
    return (region === 'brk' ? this.ks.brk(make) : this.ks.bootmem(make)).fill(this.missing);
  }

  private newMidMfn(region: 'brk' | 'bootmem'): P2mPage {
    const make = (pfn: number, va: bigint) => new P2mPage(pfn, va, region);
    const p = region === 'brk' ? this.ks.brk(make) : this.ks.bootmem(make);
    const m = this.mfnOf(this.missing);
    for (let i = 0; i < P2M_MID_PER_PAGE; i++) p.setMfn(i, m); // p2m_mid_mfn_init
    return p;
  }

  private mirrorLive(): boolean {
    return this.opts.mirror === 'early' && this.topMfn !== null;
  }

  /** xen_build_dynamic_phys_to_machine: leaves point into Xen's mfn_list. */
  buildDynamic(nrPages: number): void {
    const n = Math.min(this.opts.maxDomainPages, nrPages);
    this.xenMaxP2mPfn = n;
    for (let pfn = 0; pfn < n; pfn += P2M_PER_PAGE) {
      const t = p2mTopIndex(pfn);
      if (this.top.slots[t] === this.midMissing) this.top.slots[t] = this.newMid('brk');
      // Xen's mfn_list page; the last partial leaf is padded with INVALID
      const leaf = this.ks.xen((pfn2, va) => new P2mPage(pfn2, va, 'xen')).initFromMachine(this.ks.machine, pfn, n);
      this.mfnList.push(leaf);
      this.top.slots[t]!.slots[p2mMidIndex(pfn)] = leaf;
    }
  }

  /** get_phys_to_machine */
  get(pfn: number): { invalid: boolean; identity: boolean; mfn: number } {
    if (pfn >= MAX_P2M_PFN) {
      return this.opts.variant === '3.18' ? { invalid: false, identity: true, mfn: pfn } : { invalid: true, identity: false, mfn: -1 };
    }
    const leaf = this.top.slots[p2mTopIndex(pfn)]!.slots[p2mMidIndex(pfn)]!;
    if (leaf === this.identity) return { invalid: false, identity: true, mfn: pfn };
    const i = p2mIndex(pfn);
    if (leaf.isInvalid(i)) return { invalid: true, identity: false, mfn: -1 };
    return { invalid: false, identity: leaf.hasIdentityBit(i), mfn: leaf.mfnAt(i) };
  }

  /** __set_phys_to_machine with value = mfn ≥ 0, 'invalid', or 'identity' (IDENTITY_FRAME(pfn)). */
  set(pfn: number, value: number | 'invalid' | 'identity'): boolean {
    if (pfn >= MAX_P2M_PFN) return value === 'invalid';
    const t = p2mTopIndex(pfn);
    const mid = this.top.slots[t]!;
    const m = p2mMidIndex(pfn);
    const leaf = mid.slots[m]!;
    if (value === 'identity' && this.midIdentity) {
      if (mid === this.midIdentity) return true;
      if (mid === this.midMissing) {
        this.top.slots[t] = this.midIdentity; // whole GiB becomes identity; the mirror is not touched
        return true;
      }
    }
    if (value === 'identity') {
      if (leaf === this.identity) return true;
      if (leaf === this.missing) {
        // the mid slot swaps to p2m_identity; the mfn mirror is not touched (it stays mfn(p2m_missing))
        if (mid === this.midMissing) return false;
        mid.slots[m] = this.identity;
        return true;
      }
    }
    if (leaf === this.missing) return value === 'invalid';
    if (leaf === this.identity) return false;
    const i = p2mIndex(pfn);
    if (value === 'invalid') leaf.setInvalid(i);
    else if (value === 'identity') leaf.setIdentity(i, pfn);
    else leaf.setMfn(i, value);
    return true;
  }

  /** early_alloc_p2m (3.8 name): make sure the mid page for top(pfn) exists (+ its mirror page). */
  earlyAllocMid(pfn: number): void {
    const t = p2mTopIndex(pfn);
    if (this.top.slots[t] === this.midMissing) this.top.slots[t] = this.newMid('brk');
    if (this.mirrorLive() && this.topMfnP!.slots[t] === this.midMissingMfn) {
      const mm = this.newMidMfn('brk');
      this.topMfnP!.slots[t] = mm;
      this.topMfn!.setMfn(t, this.mfnOf(mm));
    }
  }

  /** early_alloc_p2m_middle (3.8 name): a brk leaf for a missing slot. */
  earlyAllocLeaf(pfn: number, checkBoundary: boolean): boolean {
    if (checkBoundary && p2mIndex(pfn) === 0) return false;
    const t = p2mTopIndex(pfn);
    const m = p2mMidIndex(pfn);
    const mid = this.top.slots[t]!;
    if (mid === this.midMissing || mid.slots[m] !== this.missing) return false;
    const leaf = this.ks.brk((pfn2, va) => new P2mPage(pfn2, va, 'brk')).initInvalid();
    mid.slots[m] = leaf;
    if (this.mirrorLive()) this.topMfnP!.slots[t]!.setMfn(m, this.mfnOf(leaf));
    return true;
  }

  /** early_can_reuse_p2m_middle: move an all-identity or all-INVALID leaf to set_pfn's slot. */
  earlyCanReuse(setPfn: number): boolean {
    if (p2mIndex(setPfn) !== 0) return false;
    let reused = false;
    this.someLeafSlot(Math.min(this.opts.maxDomainPages, MAX_P2M_PFN), (pfn, t, m, mid) => {
      const leaf = mid.slots[m]!;
      if (leaf === this.missing || leaf === this.identity) return false;
      let ident = 0;
      let inv = 0;
      for (let i = 0; i < P2M_PER_PAGE; i++) {
        if (leaf.isIdentityOf(i, pfn + i)) ident++;
        else if (leaf.isInvalid(i)) inv++;
        else break;
      }
      if (ident !== P2M_PER_PAGE && inv !== P2M_PER_PAGE) return false;
      mid.slots[m] = ident ? this.identity : this.missing;
      if (this.mirrorLive()) this.topMfnP!.slots[t]!.setMfn(m, this.mfnOf(this.missing));
      const st = p2mTopIndex(setPfn);
      const sm = p2mMidIndex(setPfn);
      if (this.top.slots[st] === this.midMissing) this.earlyAllocMid(setPfn);
      if (this.top.slots[st]!.slots[sm] !== this.missing) return true; // the first candidate decides: not reused
      leaf.initInvalid();
      this.top.slots[st]!.slots[sm] = leaf;
      if (this.mirrorLive()) this.topMfnP!.slots[st]!.setMfn(sm, this.mfnOf(leaf));
      reused = true;
      return true;
    });
    return reused;
  }

  /** Each leaf slot of a real mid page below `limit`, in pfn order (mid_missing tops skipped), until fn returns true. */
  private someLeafSlot(limit: number, fn: (pfn: number, t: number, m: number, mid: Mid) => boolean): void {
    for (let pfn = 0; pfn < limit; pfn += P2M_PER_PAGE) {
      const t = p2mTopIndex(pfn);
      const mid = this.top.slots[t]!;
      if (mid === this.midMissing) {
        pfn += P2M_PFNS_PER_TOP - P2M_PER_PAGE;
        continue;
      }
      if (fn(pfn, t, p2mMidIndex(pfn), mid)) return;
    }
  }

  /** early_set_phys_to_machine */
  earlySet(pfn: number, value: number | 'invalid' | 'identity'): boolean {
    if (this.set(pfn, value)) return true;
    this.earlyAllocMid(pfn);
    if (this.earlyCanReuse(pfn)) return this.set(pfn, value);
    if (!this.earlyAllocLeaf(pfn, false)) return false;
    return this.set(pfn, value);
  }

  /** set_phys_range_identity: returns the number of pfns set. */
  setRangeIdentity(s: number, e: number): number {
    return this.opts.variant === '3.18' ? this.setRangeIdentity318(s, e) : this.setRangeIdentity38(s, e);
  }

  /** v3.8.13: mids at every GiB boundary of the range, boundary leaves at both ends, then one by one. */
  private setRangeIdentity38(s: number, e: number): number {
    if (s >= MAX_P2M_PFN || e >= MAX_P2M_PFN || s > e) return 0;
    const first = s - (s % P2M_PFNS_PER_TOP);
    const end = Math.ceil(e / P2M_PFNS_PER_TOP) * P2M_PFNS_PER_TOP;
    for (let pfn = first; pfn < end; pfn += P2M_PFNS_PER_TOP) this.earlyAllocMid(pfn);
    this.earlyAllocLeaf(s, true);
    this.earlyAllocLeaf(e, true);
    let pfn = s;
    for (; pfn < e; pfn++) if (!this.set(pfn, 'identity')) break;
    return pfn - s;
  }

  /** early_split_p2m (3.18): a mid unless pfn starts a GiB, a leaf unless it starts a leaf. */
  private earlySplit(pfn: number): void {
    if (pfn >= MAX_P2M_PFN) return;
    if (p2mMidIndex(pfn) || p2mIndex(pfn)) this.earlyAllocMid(pfn);
    if (p2mIndex(pfn)) this.earlyAllocLeaf(pfn, false);
  }

  /** v3.18.30: split both ends, then set, skipping whole identity leaves and GiBs. */
  private setRangeIdentity318(s: number, e0: number): number {
    if (s >= MAX_P2M_PFN || s > e0) return 0;
    const e = Math.min(e0, MAX_P2M_PFN);
    this.earlySplit(s);
    this.earlySplit(e);
    let pfn = s;
    while (pfn < e) {
      const t = p2mTopIndex(pfn);
      const m = p2mMidIndex(pfn);
      if (!this.set(pfn, 'identity')) break;
      pfn++;
      if (this.top.slots[t] === this.midIdentity) pfn = Math.ceil(pfn / P2M_PFNS_PER_TOP) * P2M_PFNS_PER_TOP;
      else if (this.top.slots[t]!.slots[m] === this.identity) pfn = Math.ceil(pfn / P2M_PER_PAGE) * P2M_PER_PAGE;
    }
    return Math.min(pfn, e) - s;
  }

  /**
   * xen_build_mfn_list_list, bounded by xen_max_p2m_pfn. Mirror pages come from brk (3.8) or
   * bootmem (the delayed build).
   */
  buildMfnListList(): void {
    const region = this.opts.mirror === 'early' ? 'brk' : 'bootmem';
    if (!this.topMfn) {
      this.midMissingMfn = this.newMidMfn(region);
      const make = (pfn: number, va: bigint) => new PtrPage<P2mPage>(pfn, va, region);
      this.topMfnP = (region === 'brk' ? this.ks.brk(make) : this.ks.bootmem(make)).fill(this.midMissingMfn);
      const makeTop = (pfn: number, va: bigint) => new P2mPage(pfn, va, region);
      this.topMfn = region === 'brk' ? this.ks.brk(makeTop) : this.ks.bootmem(makeTop);
      const mm = this.mfnOf(this.midMissingMfn);
      for (let i = 0; i < P2M_TOP_PER_PAGE; i++) this.topMfn.setMfn(i, mm);
    }
    for (let pfn = 0; pfn < this.xenMaxP2mPfn; pfn += P2M_PER_PAGE) {
      const t = p2mTopIndex(pfn);
      const m = p2mMidIndex(pfn);
      const mid = this.top.slots[t]!;
      if (mid === this.midMissing) {
        this.topMfn.setMfn(t, this.mfnOf(this.midMissingMfn!));
        pfn += (P2M_MID_PER_PAGE - 1) * P2M_PER_PAGE;
        continue;
      }
      let mm = this.topMfnP!.slots[t]!;
      if (mm === this.midMissingMfn) {
        mm = this.newMidMfn(region);
        this.topMfnP!.slots[t] = mm;
      }
      this.topMfn.setMfn(t, this.mfnOf(mm));
      mm.setMfn(m, this.mfnOf(mid.slots[m]!));
    }
  }

  /**
   * xen_revector_p2m_tree: copy the leaves living in Xen's mfn_list into one bootmem array and
   * repoint the tree (and, when the mirror is live, its mid-mfn slots).
   */
  revector(nrPages: number): void {
    const n = Math.ceil(nrPages / P2M_PER_PAGE);
    const copies = this.ks.bootmemBlock(n, (pfn, va) => new P2mPage(pfn, va, 'bootmem'));
    const inList = new Set<P2mPage>(this.mfnList);
    let next = 0;
    const limit = Math.min(Math.ceil(this.opts.maxDomainPages / P2M_PER_PAGE) * P2M_PER_PAGE, MAX_P2M_PFN);
    this.someLeafSlot(limit, (_pfn, t, m, mid) => {
      const leaf = mid.slots[m]!;
      if (!inList.has(leaf)) return false;
      const copy = copies[next++]!.copyFrom(leaf);
      mid.slots[m] = copy;
      if (this.mirrorLive()) this.topMfnP!.slots[t]!.setMfn(m, this.mfnOf(copy));
      return false;
    });
    for (const leaf of this.mfnList) leaf.initInvalid(); // memset(mfn_list, 0xff) before it is freed
  }

  /** Highest top index with a real mid page, +1 (the guest-view extent). */
  topsInUse(): number {
    let last = 0;
    for (let t = 0; t < P2M_TOP_PER_PAGE; t++) if (this.top.slots[t] !== this.midMissing) last = t + 1;
    return last;
  }

  /** Kernel variables the guest view and the toolstack need, with their 3.8 names. */
  publishVars(): void {
    const ks = this.ks;
    ks.defineVar('p2m_top', this.top);
    ks.defineVar('p2m_mid_missing', this.midMissing);
    if (this.midIdentity) ks.defineVar('p2m_mid_identity', this.midIdentity);
    ks.defineVar('p2m_missing', this.missing);
    ks.defineVar('p2m_identity', this.identity);
    ks.defineVar('p2m_top_mfn', this.topMfn);
    ks.defineVar('p2m_top_mfn_p', this.topMfnP);
    ks.defineVar('p2m_mid_missing_mfn', this.midMissingMfn);
    ks.defineVar('xen_max_p2m_pfn', BigInt(this.xenMaxP2mPfn));
  }
}
