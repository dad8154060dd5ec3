// What setup_arch does with the map xen_memory_setup returned (Linux arch/x86/kernel/setup.c, e820.c; v3.8.13,
// v4.4, v6.1): the kernel's mem= (parse_memopt → e820__range_remove of RAM from mem_size up, then
// e820__finish_early_params prints the "user" table), max_pfn = e820__end_of_ram_pfn(), and the second
// "last_pfn" line, printed only when max_pfn lies above 4 GiB (max_low_pfn = e820__end_of_low_ram_pfn()).
import type { E820Entry } from '../../inputs/e820.js';
import { formatLinuxE820, sanitizeE820 } from '../../inputs/e820.js';
import { E820_RAM, PAGE_SIZE, hex } from '../../xen/abi.js';
import { MAX_ARCH_PFN, endOfRam } from './memory-setup.js';

/** 1UL << (32 - PAGE_SHIFT): setup_arch computes max_low_pfn separately only when max_pfn is above this. */
export const PFN_4G = 2 ** 20;

export interface MemCap {
  /** mem= in bytes */
  bytes: number;
  /** the RAM e820__range_remove took away (byte ranges, end exclusive) */
  removed: E820Entry[];
}

export interface SetupArchE820 {
  /** the map the kernel ends with (the "user" table when mem= changed it) */
  e820: E820Entry[];
  maxPfn: number;
  /** max_low_pfn: e820__end_of_low_ram_pfn() when max_pfn > 4 GiB, else max_pfn */
  maxLowPfn: number;
  cap: MemCap | null;
  /** the messages in print order: the "user" table (mem=), then one or two "last_pfn" lines */
  messages: string[];
}

/** e820__range_remove(mem, ULLONG_MAX - mem, E820_TYPE_RAM, 1): RAM at and above `mem` is dropped, other types stay. */
export function removeRamFrom(map: E820Entry[], mem: number): { e820: E820Entry[]; removed: E820Entry[] } {
  const out: E820Entry[] = [];
  const removed: E820Entry[] = [];
  for (const e of map) {
    const end = e.addr + e.size;
    if (e.type !== E820_RAM || end <= mem) {
      out.push(e);
      continue;
    }
    if (e.addr < mem) out.push({ addr: e.addr, size: mem - e.addr, type: e.type });
    const from = Math.max(e.addr, mem);
    removed.push({ addr: from, size: end - from, type: e.type });
  }
  return { e820: sanitizeE820(out), removed };
}

const lastPfnLine = (pfn: number): string => `last_pfn = ${hex(pfn)} max_arch_pfn = ${hex(MAX_ARCH_PFN)}`;

/**
 * mem= (if any, and not 0: parse_memopt ignores "mem=0"), then max_pfn and max_low_pfn with the "last_pfn"
 * lines e820_end_pfn prints for each computation.
 */
export function setupArchE820(kernelE820: E820Entry[], memBytes: number | null): SetupArchE820 {
  const messages: string[] = [];
  let e820 = kernelE820;
  let cap: MemCap | null = null;
  if (memBytes !== null && memBytes > 0) {
    const r = removeRamFrom(kernelE820, memBytes);
    e820 = r.e820;
    cap = { bytes: memBytes, removed: r.removed };
    messages.push('user-defined physical RAM map:', ...formatLinuxE820(e820, 'user'));
  }
  const maxPfn = endOfRam(e820, Infinity);
  messages.push(lastPfnLine(maxPfn));
  let maxLowPfn = maxPfn;
  if (maxPfn > PFN_4G) {
    maxLowPfn = endOfRam(e820, PFN_4G);
    messages.push(lastPfnLine(maxLowPfn));
  }
  return { e820, maxPfn, maxLowPfn, cap, messages };
}

/** One line saying where mem= capped the map (for the emulate output). */
export function describeCap(cap: MemCap, maxPfnBefore: number, maxPfnAfter: number): string {
  const pages = cap.removed.reduce((n, e) => n + Math.floor((e.addr + e.size) / PAGE_SIZE) - Math.ceil(e.addr / PAGE_SIZE), 0);
  if (cap.removed.length === 0) return `mem=${hex(cap.bytes)} is above the kernel's RAM (max_pfn ${hex(maxPfnBefore)}): nothing removed`;
  const ranges = cap.removed.map((e) => `${hex(e.addr)}-${hex(e.addr + e.size - 1)}`).join(', ');
  return `mem=${hex(cap.bytes)} capped the kernel's map at ${hex(cap.bytes)}: RAM ${ranges} removed (${pages} pages); max_pfn ${hex(maxPfnBefore)} -> ${hex(maxPfnAfter)}`;
}
