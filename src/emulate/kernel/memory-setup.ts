// xen_memory_setup (arch/x86/xen/setup.c): v3.8.13 (identity + release + populate back), v4.4.155
// (identity + remap, extra memory for the remapped pages) and v6.5's iBFT reservation (9338c2233b97).
// linux-p2m.md §1.4, §2, §3; docs/spec-notes/xen-dom0-map.md.
import type { E820Entry } from '../../inputs/e820.js';
import type { PfnRange } from '../../common/pfn-range.js';
import type { RemapRecord } from '../../inputs/boot-facts.js';
import { sanitizeE820 } from '../../inputs/e820.js';
import { E820_RAM, E820_RESERVED, E820_UNUSABLE, PAGE_SIZE } from '../../xen/abi.js';

/** EXTRA_MEM_RATIO: extra memory is capped at 10× the base size. */
export const EXTRA_MEM_RATIO = 10;
/** MAXMEM on x86-64 with 4-level paging: 1 << MAX_PHYSMEM_BITS (46) bytes, in pages. */
export const MAXMEM_PAGES = 2 ** 46 / PAGE_SIZE;
/** ISA_START_ADDRESS / ISA_END_ADDRESS: reserved by xen_memory_setup in the kernel's e820. */
export const ISA_START_ADDRESS = 0xa0000;
export const ISA_END_ADDRESS = 0x100000;
/** XEN_EXTRA_MEM_MAX_REGIONS */
export const XEN_EXTRA_MEM_MAX_REGIONS = 128;
/** include/linux/iscsi_ibft.h IBFT_START / IBFT_END: where reserve_ibft_region() searches for the iBFT. */
export const IBFT_START = 0x80000;
export const IBFT_END = 0x100000;
/** MAX_ARCH_PFN on x86-64 with 4-level paging: 1 << (MAX_PHYSMEM_BITS 46 - PAGE_SHIFT) ("max_arch_pfn = 0x400000000"). */
export const MAX_ARCH_PFN = 2 ** 34;

const pfnDown = (a: number): number => Math.floor(a / PAGE_SIZE);
const pfnUp = (a: number): number => Math.ceil(a / PAGE_SIZE);

/**
 * The non-RAM runs the kernel walks (xen_set_identity_and_release / xen_foreach_remap_area): gaps and
 * non-RAM entries between two RAM entries merge; partial pages round outward.
 */
export function nonRamRuns(map: E820Entry[]): PfnRange[] {
  const runs: PfnRange[] = [];
  let start = 0;
  map.forEach((e, i) => {
    const end = e.addr + e.size;
    if (e.type === E820_RAM || i === map.length - 1) {
      const s = pfnDown(start);
      const en = e.type === E820_RAM ? pfnUp(e.addr) : pfnUp(end);
      if (s < en) runs.push({ start: s, end: en });
      start = end;
    }
  });
  return runs;
}

/**
 * A membership test for sorted, disjoint runs (nonRamRuns' output): binary search, so a boot that asks
 * about every page it allocates stays O(pages · log runs). `probes` counts the comparisons made.
 */
export class RunIndex {
  probes = 0;
  constructor(private readonly runs: PfnRange[]) {}

  has(pfn: number): boolean {
    let lo = 0;
    let hi = this.runs.length - 1;
    while (lo <= hi) {
      this.probes++;
      const mid = (lo + hi) >>> 1;
      const r = this.runs[mid]!;
      if (pfn < r.start) hi = mid - 1;
      else if (pfn >= r.end) lo = mid + 1;
      else return true;
    }
    return false;
  }
}

/** The p2m operations memory setup needs, provided by the tree or the linear list. */
export interface P2mOps {
  /** pfn_to_mfn: INVALID → invalid; identity entries count as valid (mfn = pfn) */
  get(pfn: number): { invalid: boolean; identity: boolean; mfn: number };
  /** early_set_phys_to_machine */
  earlySet(pfn: number, value: number | 'invalid'): boolean;
  setRangeIdentity(s: number, e: number): number;
  xenMaxP2mPfn: number;
  xenP2mSize?: number;
}

export interface MachineOps {
  mfnOf(pfn: number): number;
  populate(pfn: number): number;
  forget(pfn: number): void;
  /** XENMEM_decrease_reservation: give pfn's frame back to Xen */
  release(pfn: number): void;
  assign(pfn: number, mfn: number): void;
}

export interface MemorySetupInput {
  hostE820: E820Entry[];
  nrPages: number;
  /** XENMEM_maximum_reservation for dom0 (d->max_pages) */
  maxPages: number;
  role: 'dom0' | 'domU';
  /** MAX_DOMAIN_PAGES (3.x) or xen_get_pages_limit (4.x) */
  pagesLimit: number;
  /**
   * 6.5+ with CONFIG_ISCSI_IBFT_FIND (9338c2233b97): dom0 adds a reserved [IBFT_START, IBFT_END) to the map
   * Xen gave it before sanitising, so the RAM there becomes identity and is remapped
   */
  reserveIbft?: boolean;
}

export interface MemorySetupResult {
  kernelE820: E820Entry[];
  /** the kernel's max_pfn (e820_end_of_ram_pfn) */
  maxPfn: number;
  /** RAM below 4 GiB end (the second "last_pfn" line) */
  maxLowPfn: number;
  extraRegions: PfnRange[];
  released: number;
  identity: number;
  remapped: RemapRecord[];
  /** 4.x: the deferred remap list (source, target) run by xen_remap_memory */
  pendingRemap: { from: number; to: number; size: number }[];
  /** the non-RAM runs of the map the kernel worked on (after its own additions, e.g. the iBFT window) */
  runs: PfnRange[];
  /** map entries xen_find_pfn_range looked at (RamRangeCursor.steps; 0 where it is not used) */
  findSteps: number;
  messages: string[];
  history: { value: number; by: string }[];
}

const hex = (n: number): string => n.toString(16);

/** add a region to xen_extra_mem (append to a region it continues, else a new slot) */
function addExtra(regions: PfnRange[], start: number, n: number): void {
  for (const r of regions) {
    if (r.end === start) {
      r.end += n;
      return;
    }
  }
  if (regions.length < XEN_EXTRA_MEM_MAX_REGIONS) regions.push({ start, end: start + n });
}

/** xen_del_extra_mem */
export function delExtra(regions: PfnRange[], start: number, n: number): void {
  for (const r of regions) {
    if (r.start === start) {
      r.start += n;
      return;
    }
    if (r.end === start + n) {
      r.end -= n;
      return;
    }
    if (start > r.start && start < r.end) {
      const oldEnd = r.end;
      r.end = start;
      addExtra(regions, start + n, oldEnd - (start + n));
      return;
    }
  }
}

function xenGetMaxPages38(input: MemorySetupInput): number {
  let maxPages = input.pagesLimit;
  if (input.role === 'dom0') {
    const ret = input.maxPages | 0; // HYPERVISOR_memory_op's result is stored in an int
    if (ret > 0) maxPages = ret;
  }
  return Math.min(maxPages, input.pagesLimit);
}

function xenGetMaxPages4x(input: MemorySetupInput): number {
  let maxPages = input.pagesLimit;
  if (input.role === 'dom0' && input.maxPages > 0) maxPages = input.maxPages; // long
  return Math.min(maxPages, input.pagesLimit);
}

/** e820_end_pfn (e820__end_of_ram_pfn / …_low_ram_pfn): the end of RAM below limitPfn, capped at MAX_ARCH_PFN. */
export function endOfRam(map: E820Entry[], limitPfn: number): number {
  let last = 0;
  for (const e of map) {
    if (e.type !== E820_RAM) continue;
    const s = pfnUp(e.addr);
    const en = pfnDown(e.addr + e.size);
    if (s >= limitPfn) continue;
    last = Math.max(last, Math.min(en, limitPfn));
  }
  return Math.min(last, MAX_ARCH_PFN);
}

function finishKernelE820(entries: E820Entry[]): { e820: E820Entry[]; maxPfn: number; maxLowPfn: number } {
  entries.push({ addr: ISA_START_ADDRESS, size: ISA_END_ADDRESS - ISA_START_ADDRESS, type: E820_RESERVED });
  const e820 = sanitizeE820(entries);
  return { e820, maxPfn: endOfRam(e820, Infinity), maxLowPfn: endOfRam(e820, 0x100000) };
}

/** xen_align_and_add_e820_region: RAM edges page-aligned inward. */
function alignAdd(out: E820Entry[], addr: number, size: number, type: number): void {
  let s = addr;
  let e = addr + size;
  if (type === E820_RAM) {
    s = Math.ceil(s / PAGE_SIZE) * PAGE_SIZE;
    e = Math.floor(e / PAGE_SIZE) * PAGE_SIZE;
  }
  if (e > s) out.push({ addr: s, size: e - s, type });
}

/**
 * The v3.8/v3.18 e820 loop: RAM below mem_end kept (truncated at it), RAM beyond it becomes extra memory
 * while extra pages last (xen_add_extra_mem: xen_max_p2m_pfn := end of the region, its pfns INVALID unless
 * identity), else E820_UNUSABLE. Returns the kernel's entries, the extra regions and the end of the map.
 */
function e820LoopWithExtra38(
  map: E820Entry[],
  memEnd: number,
  extraPages: number,
  p2m: P2mOps,
  history: { value: number; by: string }[],
): { out: E820Entry[]; extraRegions: PfnRange[]; lastAddr: number } {
  let extra = extraPages;
  const out: E820Entry[] = [];
  const extraRegions: PfnRange[] = [];
  let lastAddr = 0;
  for (const ent of map) {
    let addr = ent.addr;
    let left = ent.size;
    while (left > 0) {
      let size = left;
      let type = ent.type;
      if (type === E820_RAM) {
        if (addr < memEnd) {
          size = Math.min(size, memEnd - addr);
        } else if (extra) {
          size = Math.min(size, extra * PAGE_SIZE);
          extra -= Math.floor(size / PAGE_SIZE);
          addExtra(extraRegions, pfnDown(addr), pfnDown(addr + size) - pfnDown(addr));
          p2m.xenMaxP2mPfn = pfnDown(addr + size);
          history.push({ value: p2m.xenMaxP2mPfn, by: `xen_add_extra_mem(${hex(addr)}, ${hex(size)})` });
          for (let pfn = pfnDown(addr); pfn < p2m.xenMaxP2mPfn; pfn++) {
            const v = p2m.get(pfn);
            if (v.identity && !v.invalid) continue; // WARN: over-write of a 1-1 mapping is skipped
            p2m.earlySet(pfn, 'invalid');
          }
        } else type = E820_UNUSABLE;
      }
      alignAdd(out, addr, size, type);
      addr += size;
      left -= size;
    }
    lastAddr = addr;
  }
  return { out, extraRegions, lastAddr };
}

/** v3.8.13: release RAM in non-RAM runs, populate it back at [nr_pages, …), extra memory. */
export function memorySetup38(input: MemorySetupInput, p2m: P2mOps, machine: MachineOps): MemorySetupResult {
  const messages: string[] = [];
  const history: { value: number; by: string }[] = [];
  const remapped: RemapRecord[] = [];
  let maxPfn = Math.min(input.pagesLimit, input.nrPages);
  let memEnd = maxPfn * PAGE_SIZE;
  const map = sanitizeE820(input.hostE820);
  const maxPages = xenGetMaxPages38(input);
  let extra = maxPages > maxPfn ? maxPages - maxPfn : 0;
  // xen_set_identity_and_release
  let released = 0;
  let identity = 0;
  const nr = maxPfn;
  const releasedRuns: PfnRange[] = [];
  for (const run of nonRamRuns(map)) {
    if (run.start < nr) {
      let len = 0;
      for (let pfn = run.start; pfn < Math.min(run.end, nr); pfn++) {
        const v = p2m.get(pfn);
        if (v.invalid || v.identity) continue; // "make sure pfn exists": m2p must point back
        machine.release(pfn);
        if (!p2m.earlySet(pfn, 'invalid')) break;
        len++;
      }
      if (len) {
        messages.push(`Freeing ${hex(run.start)}-${hex(Math.min(run.end, nr))} pfn range: ${len} pages freed`);
        releasedRuns.push({ start: run.start, end: Math.min(run.end, nr) });
      }
      released += len;
    }
    identity += p2m.setRangeIdentity(run.start, run.end);
  }
  if (released) messages.push(`Released ${released} pages of unused memory`);
  if (identity) messages.push(`Set ${identity} page(s) to 1-1 mapping`);
  // xen_populate_chunk
  let lastPfn = 0;
  let credits = released;
  let populated = 0;
  for (const e of map) {
    if (credits <= 0) break;
    if (e.type !== E820_RAM) continue;
    const ePfn = pfnDown(e.addr + e.size);
    if (ePfn <= maxPfn) continue;
    const sPfn = pfnUp(e.addr);
    let capacity: number;
    let dest: number;
    if (sPfn <= maxPfn) {
      capacity = ePfn - maxPfn;
      dest = maxPfn;
    } else {
      capacity = ePfn - sPfn;
      dest = sPfn;
    }
    capacity = Math.min(capacity, credits);
    let done = 0;
    for (let pfn = dest; pfn < dest + capacity; pfn++) {
      if (!p2m.get(pfn).invalid) continue;
      const mfn = machine.populate(pfn);
      if (!p2m.earlySet(pfn, mfn)) {
        machine.release(pfn);
        break;
      }
      done++;
    }
    if (done) messages.push(`Populating ${hex(dest)}-${hex(dest + capacity)} pfn range: ${done} pages added`);
    populated += done;
    lastPfn = dest + done;
    if (done < capacity) break;
    credits -= done;
  }
  // record where released RAM came back (for causes): released runs in order → populated pfns in order
  let destCursor = 0;
  const destStart = populated ? lastPfn - populated : 0;
  for (const r of releasedRuns) {
    const n = Math.min(r.end - r.start, populated - destCursor);
    if (n <= 0) break;
    remapped.push({ from: { start: r.start, end: r.start + n }, to: { start: destStart + destCursor, end: destStart + destCursor + n }, how: 'populate' });
    destCursor += n;
  }
  released -= populated;
  extra += released;
  if (lastPfn > maxPfn) {
    maxPfn = Math.min(input.pagesLimit, lastPfn);
    memEnd = maxPfn * PAGE_SIZE;
  }
  extra = Math.min(EXTRA_MEM_RATIO * Math.min(maxPfn, MAXMEM_PAGES), extra);
  const { out, extraRegions } = e820LoopWithExtra38(map, memEnd, extra, p2m, history);
  const fin = finishKernelE820(out);
  return { kernelE820: fin.e820, maxPfn: fin.maxPfn, maxLowPfn: fin.maxLowPfn, extraRegions, released: released + populated, identity, remapped, pendingRemap: [], runs: nonRamRuns(map), findSteps: 0, messages, history };
}

/**
 * xen_find_pfn_range: the next E820 RAM stretch at/after minPfn. Linux rescans the map from its start on
 * every call; the callers ask for non-decreasing pfns, so a cursor that never passes the entry it last
 * returned gives the same answers with every entry visited once (`steps` counts the entries looked at).
 * `v318`: v3.18.30's test `e_pfn < min`, which still returns an entry ending exactly at minPfn.
 */
export class RamRangeCursor {
  steps = 0;
  private i = 0;
  private last = 0;

  constructor(
    private readonly map: E820Entry[],
    private readonly v318 = false,
  ) {}

  find(minPfn: number): { start: number; size: number } {
    if (minPfn < this.last) this.i = 0; // not monotonic: start over, as Linux does
    this.last = minPfn;
    for (; this.i < this.map.length; this.i++) {
      this.steps++;
      const e = this.map[this.i]!;
      if (e.type !== E820_RAM) continue;
      const ePfn = pfnDown(e.addr + e.size);
      if (this.v318 ? ePfn < minPfn : ePfn <= minPfn) continue;
      const sPfn = pfnUp(e.addr);
      if (sPfn <= minPfn) return { start: minPfn, size: ePfn - minPfn };
      return { start: sPfn, size: ePfn - sPfn };
    }
    return { start: minPfn, size: 0 };
  }
}

/** REMAP_SIZE: mfns one remap record page holds (P2M_PER_PAGE − 3). */
export const REMAP_SIZE = 512 - 3;

/** v4.4.155: identity for non-RAM runs, remap their RAM above nr_pages (done later by xen_remap_memory). */
export function memorySetup4x(input: MemorySetupInput, p2m: P2mOps & { xenP2mSize: number }, machine: MachineOps): MemorySetupResult {
  const messages: string[] = [];
  const history: { value: number; by: string }[] = [];
  const maxPfn0 = Math.min(input.pagesLimit, input.nrPages);
  const memEnd = maxPfn0 * PAGE_SIZE;
  let map = input.hostE820.map((e) => ({ ...e }));
  if (input.role === 'dom0') {
    map = map.map((e) => (e.type === E820_UNUSABLE ? { ...e, type: E820_RAM } : e)); // xen_ignore_unusable
    // 6.5+: "Reserve 0.5 MiB to 1 MiB region so iBFT can be found" (reserved wins over RAM when sanitised)
    if (input.reserveIbft) map.push({ addr: IBFT_START, size: IBFT_END - IBFT_START, type: E820_RESERVED });
  }
  map = sanitizeE820(map);
  let maxPages = xenGetMaxPages4x(input);
  const runs = nonRamRuns(map);
  let remapCount = 0;
  for (const r of runs) if (r.start < maxPfn0) remapCount += Math.min(r.end, maxPfn0) - r.start; // xen_count_remap_pages
  maxPages += remapCount;
  let extra = maxPages > maxPfn0 ? maxPages - maxPfn0 : 0;
  extra = Math.min(EXTRA_MEM_RATIO * Math.min(maxPfn0, MAXMEM_PAGES), extra, maxPages - maxPfn0);
  const out: E820Entry[] = [];
  const extraRegions: PfnRange[] = [];
  let addr = map[0]!.addr;
  let size = map[0]!.size;
  let i = 0;
  while (i < map.length) {
    let discard = false;
    let chunk = size;
    const type = map[i]!.type;
    if (type === E820_RAM) {
      if (addr < memEnd) chunk = Math.min(size, memEnd - addr);
      else if (extra) {
        chunk = Math.min(size, extra * PAGE_SIZE);
        const pfnS = pfnUp(addr);
        const n = pfnDown(addr + chunk) - pfnS;
        extra -= n;
        addExtra(extraRegions, pfnS, n);
        p2m.xenMaxP2mPfn = pfnS + n;
        history.push({ value: p2m.xenMaxP2mPfn, by: `xen_memory_setup: extra memory at ${hex(pfnS)}+${hex(n)}` });
      } else discard = true;
    }
    if (!discard) alignAdd(out, addr, chunk, type);
    addr += chunk;
    size -= chunk;
    if (size === 0) {
      i++;
      if (i < map.length) {
        addr = map[i]!.addr;
        size = map[i]!.size;
      }
    }
  }
  // identity for everything past the map (clamped to xen_p2m_size)
  p2m.setRangeIdentity(pfnDown(addr), Number.MAX_SAFE_INTEGER);
  const fin = finishKernelE820(out);
  // xen_foreach_remap_area(max_pfn, xen_set_identity_and_remap_chunk)
  let released = 0;
  const pendingRemap: { from: number; to: number; size: number }[] = [];
  const remapped: RemapRecord[] = [];
  let remapPfn = 0;
  const ram = new RamRangeCursor(map);
  for (const run of runs) {
    if (remapPfn === 0) remapPfn = maxPfn0;
    const n = run.end - run.start;
    let k = 0;
    while (k < n) {
      const cur = run.start + k;
      const left = n - k;
      let sz = left;
      if (cur >= maxPfn0) {
        p2m.setRangeIdentity(cur, cur + sz);
        break;
      }
      if (cur + sz > maxPfn0) sz = maxPfn0 - cur;
      const found = ram.find(remapPfn);
      remapPfn = found.start;
      if (!found.size) {
        // release instead of remapping
        for (let pfn = cur; pfn < Math.min(cur + left, maxPfn0); pfn++) {
          const v = p2m.get(pfn);
          if (v.invalid || v.identity) continue;
          machine.release(pfn);
          released++;
          p2m.earlySet(pfn, 'invalid');
        }
        p2m.setRangeIdentity(cur, cur + left);
        break;
      }
      sz = Math.min(sz, found.size);
      // xen_do_set_identity_and_remap_chunk: record the chunk, source becomes identity
      pendingRemap.push({ from: cur, to: remapPfn, size: sz });
      remapped.push({ from: { start: cur, end: cur + sz }, to: { start: remapPfn, end: remapPfn + sz }, how: 'remap' });
      p2m.setRangeIdentity(cur, cur + sz);
      k += sz;
      remapPfn += sz;
    }
  }
  messages.push(`Released ${released} page(s)`);
  return { kernelE820: fin.e820, maxPfn: fin.maxPfn, maxLowPfn: fin.maxLowPfn, extraRegions, released, identity: 0, remapped, pendingRemap, runs, findSteps: ram.steps, messages, history };
}

/** xen_do_chunk(release): give back every pfn of [start, end) that has a frame; p2m := INVALID. */
function releaseChunk(p2m: P2mOps, machine: MachineOps, start: number, end: number): number {
  let n = 0;
  for (let pfn = start; pfn < end; pfn++) {
    const v = p2m.get(pfn);
    if (v.invalid || v.identity) continue;
    machine.release(pfn);
    if (!p2m.earlySet(pfn, 'invalid')) break;
    n++;
  }
  return n;
}

/**
 * xen_do_set_identity_and_remap_chunk (v3.18.30): 512-aligned blocks first (save the mfns, make the source
 * identity so its leaf can be reused, write the targets), then the unaligned ends pfn by pfn, then identity
 * for the unaligned source ends. Returns the pfns made identity.
 */
function remapChunk318(p2m: P2mOps, machine: MachineOps, start: number, size: number, remap: number): number {
  const P = 512;
  const up = (x: number) => Math.ceil(x / P) * P;
  const down = (x: number) => Math.floor(x / P) * P;
  const identAlignStart = up(start);
  const remapAlignStart = up(remap);
  const identAlignEnd = down(start + size);
  const remapAlignEnd = down(remap + size);
  let ident = 0;
  let left = size;
  const move = (target: number, mfn: number, source: number): void => {
    machine.forget(source);
    machine.assign(target, mfn);
    p2m.earlySet(target, mfn); // xen_update_mem_tables: p2m + m2p
  };
  let identIter = identAlignStart;
  let remapIter = remapAlignStart;
  for (; identIter < identAlignEnd && remapIter < remapAlignEnd; identIter += P, remapIter += P) {
    const buf: number[] = [];
    for (let i = 0; i < P; i++) buf.push(machine.mfnOf(identIter + i));
    ident += p2m.setRangeIdentity(identIter, identIter + P);
    for (let i = 0; i < P; i++) move(remapIter + i, buf[i]!, identIter + i);
    left -= P;
  }
  let identB = start;
  let remapB = remap;
  for (let i = 0; i < left; i++) {
    if (identB === identAlignStart) identB = identIter;
    if (remapB === remapAlignStart) remapB = remapIter;
    move(remapB, machine.mfnOf(identB), identB);
    identB++;
    remapB++;
  }
  if (identAlignStart >= identAlignEnd) ident += p2m.setRangeIdentity(start, start + size);
  else {
    if (start < identAlignStart) ident += p2m.setRangeIdentity(start, identAlignStart);
    if (start + size > identIter) ident += p2m.setRangeIdentity(identIter, start + size);
  }
  return ident;
}

/** v3.18.30: identity + immediate remap (release when no RAM stretch is left), then 3.8's extra memory. */
export function memorySetup318(input: MemorySetupInput, p2m: P2mOps, machine: MachineOps): MemorySetupResult {
  const messages: string[] = [];
  const history: { value: number; by: string }[] = [];
  const remapped: RemapRecord[] = [];
  let maxPfn = Math.min(input.pagesLimit, input.nrPages);
  let memEnd = maxPfn * PAGE_SIZE;
  let map = input.hostE820.map((e) => ({ ...e }));
  if (input.role === 'dom0') map = map.map((e) => (e.type === E820_UNUSABLE ? { ...e, type: E820_RAM } : e));
  map = sanitizeE820(map);
  const maxPages = xenGetMaxPages38(input);
  let extra = maxPages > maxPfn ? maxPages - maxPfn : 0;
  // xen_set_identity_and_remap
  const nr = maxPfn;
  let identity = 0;
  let remappedPages = 0;
  let released = 0;
  let lastPfn = nr;
  const ram = new RamRangeCursor(map, true);
  for (const run of nonRamRuns(map)) {
    let remapPfn = lastPfn;
    const n = run.end - run.start;
    let i = 0;
    while (i < n) {
      const cur = run.start + i;
      const left = n - i;
      let size = left;
      if (cur >= nr) {
        identity += p2m.setRangeIdentity(cur, cur + size);
        break;
      }
      if (cur + size > nr) size = nr - cur;
      const found = ram.find(remapPfn);
      remapPfn = found.start;
      if (!found.size) {
        released += releaseChunk(p2m, machine, cur, Math.min(cur + left, nr));
        identity += p2m.setRangeIdentity(cur, cur + left);
        break;
      }
      size = Math.min(size, found.size);
      remapChunk318(p2m, machine, cur, size, remapPfn);
      remapped.push({ from: { start: cur, end: cur + size }, to: { start: remapPfn, end: remapPfn + size }, how: 'remap' });
      i += size;
      remapPfn += size;
      identity += size;
      remappedPages += size;
    }
    lastPfn = remapPfn;
  }
  messages.push(`Set ${identity} page(s) to 1-1 mapping`);
  messages.push(`Remapped ${remappedPages} page(s), last_pfn=${lastPfn}`);
  messages.push(`Released ${released} page(s)`);
  extra += released;
  if (lastPfn > maxPfn) {
    maxPfn = Math.min(input.pagesLimit, lastPfn);
    memEnd = maxPfn * PAGE_SIZE;
  }
  extra = Math.min(EXTRA_MEM_RATIO * Math.min(maxPfn, MAXMEM_PAGES), extra);
  const { out, extraRegions, lastAddr } = e820LoopWithExtra38(map, memEnd, extra, p2m, history);
  // identity from the end of the last entry to ~0 (clamped to MAX_P2M_PFN by the tree)
  p2m.setRangeIdentity(pfnDown(lastAddr), Number.MAX_SAFE_INTEGER);
  const fin = finishKernelE820(out);
  return { kernelE820: fin.e820, maxPfn: fin.maxPfn, maxLowPfn: fin.maxLowPfn, extraRegions, released, identity, remapped, pendingRemap: [], runs: nonRamRuns(map), findSteps: ram.steps, messages, history };
}
