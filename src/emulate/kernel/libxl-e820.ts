// The memory map, start_info.nr_pages and d->max_pages that xl/libxl and the domain builder give a 64-bit
// PV domU. Follows Xen RELEASE-4.17.0 (RELEASE-4.14.0 identical in every function used; paths there are
// tools/libxl/ and tools/libxc/):
//   tools/libs/light/libxl_x86.c   e820_sanitize, e820_host_sanitize, libxl__e820_alloc,
//                                  libxl__arch_domain_create (xc_domain_set_memmap_limit for every PV
//                                  guest, then libxl__e820_alloc with e820_host), libxl__arch_extra_memory
//   tools/libs/light/libxl_dom.c   libxl__build_pre (xc_domain_setmaxmem(target_memkb + extra)),
//                                  libxl__build_dom (xc_dom_mem_init(target_memkb / 1024) for PV)
//   tools/libs/light/libxl_create.c libxl__domain_build_info_setdefault (PV: video 0, slack 0)
//   tools/libs/ctrl/xc_domain.c    xc_domain_set_memmap_limit, xc_get_machine_memory_map
//   tools/libs/guest/xg_dom_core.c xc_dom_mem_init; xg_dom_x86.c start_info->nr_pages = total_pages
//   xen/common/domctl.c XEN_DOMCTL_max_mem, xen/common/memory.c XENMEM_maximum_reservation,
//   xen/arch/x86/mm.c XENMEM_set_memory_map / XENMEM_memory_map / XENMEM_machine_memory_map.
// docs/spec-notes/libxl-domu.md has the arithmetic of the worked cases.
import { type E820Entry } from '../../inputs/e820.js';
import { InputError } from '../../common/errors.js';
import { e820RamPages, sanitizeE820 } from '../../inputs/e820.js';
import type { XlConfig } from '../../inputs/xl-config.js';
import { E820_RAM, E820_UNUSABLE, PAGE_SHIFT, hex } from '../../xen/abi.js';

// ---- constants (Xen's names) --------------------------------------------------------------------

/** libxl_internal.h: KiB libxl adds to a domain's max memory (libxl__arch_extra_memory on x86). */
export const LIBXL_MAXMEM_CONSTANT = 1024;
/** tools/include/xenctrl.h E820MAX: the size of libxl's e820 arrays. */
export const E820MAX = 128;
/** e820_sanitize: host entries starting at or below 1 MiB are weeded out. */
const LOW_MEMORY_END = 0x100000n;
/** e820_sanitize: RAM moved out of the low map goes to 4 GiB (1ULL << 32). */
const FOUR_GIB = 1n << 32n;
/** e820_sanitize: start_kb is only taken when start > 1024. */
const START_KB_THRESHOLD = 1024n;
/** libxl works in unsigned 64-bit integers (uint64_t, unsigned long on x86-64). */
const U64_MODULUS = 1n << 64n;
const U64_MAX = U64_MODULUS - 1n;
/** Addresses this tool can hold exactly (E820Entry uses numbers): 2^52, Xen's PADDR_BITS. */
const MAX_PADDR = 1n << 52n;
/** KiB → pages: >> (PAGE_SHIFT - 10), as XEN_DOMCTL_max_mem does. */
const KB_TO_PAGES_SHIFT = BigInt(PAGE_SHIFT - 10);
/** MiB → pages: << (20 - PAGE_SHIFT), as xc_dom_mem_init does. */
const MB_TO_PAGES_SHIFT = BigInt(20 - PAGE_SHIFT);

const u64 = (v: bigint): bigint => ((v % U64_MODULUS) + U64_MODULUS) % U64_MODULUS;

/** libxl's result for a PV domU. */
export interface DomUMemoryMap {
  /** what XENMEM_memory_map returns to the guest, in libxl's order (the guest kernel sorts it) */
  guestE820: E820Entry[];
  /** start_info.nr_pages (xc_dom_mem_init: memory in MiB << 8) */
  nrPages: number;
  /** d->max_pages, what XENMEM_maximum_reservation returns (XEN_DOMCTL_max_mem from libxl__build_pre) */
  maxPages: number;
  notes: string[];
}

interface Ent {
  addr: bigint;
  size: bigint;
  type: number;
}

/** e820_names: libxl's debug-log type names. */
function e820Name(type: number): string {
  return ['', 'RAM', 'Reserved', 'ACPI', 'ACPI NVS', 'Unusable'][type] || 'Unknown';
}

/**
 * libxl's e820_sanitize(src, nr, map_limitkb, balloon_kb) on the host map, step for step and in 64-bit
 * unsigned arithmetic, including its quirk: `last` is assigned the result of a comparison (0 or 1), so
 * the RAM it appends always starts at 4 GiB. Returns the map in libxl's order and its debug-log lines.
 */
export function e820Sanitize(host: E820Entry[], mapLimitKb: bigint, balloonKb: bigint): { entries: E820Entry[]; log: string[] } {
  if (mapLimitKb === 0n) throw new InputError('e820_sanitize: map_limitkb (memory) is 0: libxl fails with ERROR_INVAL');
  if (host.length === 0) throw new InputError('e820_sanitize: the host memory map is empty: libxl fails with ERROR_INVAL');
  if (host.length > E820MAX) throw new InputError(`e820_sanitize: ${host.length} host entries > E820MAX (${E820MAX}): libxl fails with ERROR_NOMEM`);
  const src: Ent[] = host.map((e) => ({ addr: BigInt(e.addr), size: BigInt(e.size), type: e.type }));
  const e820: Ent[] = [];
  const log: string[] = [];

  // Weed out anything under 1MB.
  for (const s of src) {
    if (s.addr > LOW_MEMORY_END) continue;
    s.type = 0;
    s.size = 0n;
    s.addr = U64_MAX;
  }

  // Lowest start (and "highest end") of the entries that are not RAM, unusable or weeded out.
  let start = U64_MAX;
  let last = 0n;
  for (const s of src) {
    if (s.type === E820_RAM || s.type === E820_UNUSABLE || s.type === 0) continue;
    start = s.addr < start ? s.addr : start;
    const end = u64(s.addr + s.size);
    // libxl: last = end > last ? end > last : last; — it stores the comparison (1), never the end.
    if (end > last) last = 1n;
  }
  const startKb = start > START_KB_THRESHOLD ? start >> 10n : 0n;

  // The guest's RAM from 0, trimmed to end where the first host hole starts.
  const ram: Ent = { addr: 0n, size: u64(mapLimitKb << 10n), type: E820_RAM };
  let deltaKb = 0n;
  if (startKb !== 0n && mapLimitKb > startKb) {
    deltaKb = mapLimitKb - startKb;
    if (deltaKb !== 0n) ram.size = u64(ram.size - u64(deltaKb << 10n));
  }
  const ramEnd = u64(ram.addr + ram.size);
  e820.push(ram);
  log.push(
    `Memory: ${mapLimitKb}kB End of RAM: 0x${(ramEnd >> 12n).toString(16)} (PFN) Delta: ${deltaKb}kB, ` +
      `PCI start: ${startKb}kB (0x${(start >> 12n).toString(16)} PFN), Balloon ${balloonKb}kB`,
  );

  // Host RAM below 4 GiB that reaches past ram_end becomes E820_UNUSABLE (moved up to ram_end if it
  // overlaps); anything ending inside the guest's RAM and every host E820_UNUSABLE entry is dropped.
  for (const s of src) {
    const end = u64(s.addr + s.size);
    if (s.type === E820_UNUSABLE || end < ramEnd) {
      s.type = 0;
      continue;
    }
    if (s.type !== E820_RAM) continue;
    if (s.addr >= FOUR_GIB) continue;
    if (s.addr < ramEnd) {
      s.type = E820_UNUSABLE;
      const delta = ramEnd - s.addr;
      if (s.size < delta) s.type = 0;
      else {
        s.size -= delta;
        s.addr = ramEnd;
      }
      if (u64(s.addr + s.size) !== end) {
        s.type = 0;
        log.push('Computed E820 wrongly. Continuing on.');
      }
    }
    if (end > ramEnd) s.type = E820_UNUSABLE;
  }

  // A gap between ram_end and the first host hole is covered with E820_UNUSABLE.
  if (start > ramEnd) {
    let addUnusable = true;
    for (const s of src) {
      if (!addUnusable) break;
      if (s.type !== E820_UNUSABLE) continue;
      if (ramEnd !== s.addr) continue;
      if (start !== u64(s.addr + s.size)) s.size = u64(start - s.addr);
      addUnusable = false;
    }
    if (addUnusable) e820.push({ type: E820_UNUSABLE, addr: ramEnd, size: u64(start - ramEnd) });
  }

  // Copy everything left that is neither RAM nor weeded out, in host order.
  for (const s of src) {
    if (s.type === E820_RAM || s.type === 0) continue;
    e820.push({ ...s });
  }

  // The trimmed RAM plus the balloon space go to the end, at 4 GiB.
  if (balloonKb !== 0n || deltaKb !== 0n) {
    e820.push({
      type: E820_RAM,
      addr: FOUR_GIB > last ? FOUR_GIB : last,
      size: u64(u64(deltaKb << 10n) + u64(balloonKb << 10n)),
    });
  }

  if (e820.length > E820MAX) {
    throw new InputError(`e820_sanitize: the guest map would have ${e820.length} entries, more than libxl's e820[E820MAX] (${E820MAX}) holds`);
  }
  for (const e of e820) log.push(`:\t[${(e.addr >> 12n).toString(16)} -> ${(u64(e.addr + e.size) >> 12n).toString(16)}] ${e820Name(e.type)}`);

  const entries = e820.map((e): E820Entry => {
    if (e.addr + e.size > MAX_PADDR) {
      throw new InputError(
        `e820_sanitize produced [0x${e.addr.toString(16)}, +0x${e.size.toString(16)}) (${e820Name(e.type)}), beyond 2^52: ` +
          `libxl's unsigned arithmetic wrapped (maxmem < memory, or no reserved/ACPI entry above 1 MiB in the host map)`,
      );
    }
    return { addr: Number(e.addr), size: Number(e.size), type: e.type };
  });
  return { entries, log };
}

/** Entries out of address order, or overlapping, as the guest kernel will find them before sorting. */
function orderNote(map: E820Entry[]): string | null {
  for (let i = 1; i < map.length; i++) {
    const a = map[i - 1]!;
    const b = map[i]!;
    if (b.addr < a.addr + a.size) {
      return `the map libxl sets is not sorted or overlaps at entry ${i} (${hex(b.addr)}); the guest kernel sorts it ` +
        `(sanitize_e820_map / e820__update_table) before use`;
    }
  }
  return null;
}

/**
 * libxl + the domain builder for a 64-bit PV domU: the e820 XENMEM_memory_map returns to the guest,
 * start_info.nr_pages and d->max_pages. With e820_host the host map (as XENMEM_machine_memory_map gives
 * it to libxl) is required.
 */
export function buildDomUMemoryMap(cfg: XlConfig, hostE820: E820Entry[] | null): DomUMemoryMap {
  const notes: string[] = [];
  // libxl__domain_build_info_setdefault (PV): video_memkb = 0, u.pv.slack_memkb = 0; xl sets neither.
  const targetMemkb = BigInt(cfg.memory) * 1024n;
  const maxMemkb = BigInt(cfg.maxmem) * 1024n;
  const slackMemkb = 0n;

  // libxl__build_dom → xc_dom_mem_init(dom, target_memkb / 1024): total_pages = mem_mb << 8, which
  // xg_dom_x86.c start_info_x86_64 stores as start_info->nr_pages.
  const nrPages = Number((targetMemkb / 1024n) << MB_TO_PAGES_SHIFT);
  // libxl__build_pre → xc_domain_setmaxmem(target_memkb + LIBXL_MAXMEM_CONSTANT); XEN_DOMCTL_max_mem:
  // d->max_pages = max_memkb >> (PAGE_SHIFT - 10). maxmem does not enter d->max_pages.
  const maxPages = Number((targetMemkb + BigInt(LIBXL_MAXMEM_CONSTANT)) >> KB_TO_PAGES_SHIFT);
  notes.push(
    `nr_pages = ${cfg.memory} MiB << 8 = ${hex(nrPages)}; d->max_pages = (${targetMemkb} + LIBXL_MAXMEM_CONSTANT ${LIBXL_MAXMEM_CONSTANT}) KiB >> 2 = ${hex(maxPages)}` +
      (cfg.maxmem !== cfg.memory ? ` (libxl__build_pre uses memory, not maxmem ${cfg.maxmem} MiB; xl mem-set/mem-max raise it later)` : ''),
  );

  let guestE820: E820Entry[];
  if (!cfg.e820Host) {
    // libxl__arch_domain_create → xc_domain_set_memmap_limit(max_memkb + slack_memkb): one RAM entry.
    const limitKb = maxMemkb + slackMemkb;
    guestE820 = [{ addr: 0, size: Number(limitKb << 10n), type: E820_RAM }];
    notes.push(`e820_host=0: xc_domain_set_memmap_limit(${limitKb} KiB) → one RAM entry [0, ${hex(Number(limitKb << 10n))})`);
    if (hostE820) notes.push('the host memory map is not used (e820_host=0)');
  } else {
    const why = cfg.e820HostSetting === true ? 'e820_host=1' : 'e820_host (turned on by pci)';
    if (!hostE820 || hostE820.length === 0) {
      throw new InputError(
        `${cfg.source}: ${why} needs the host's memory map (libxl copies the host e820 into the guest's): ` +
          `give it with --e820 FILE or --from-log FILE`,
      );
    }
    // XENMEM_machine_memory_map fails (-EINVAL) unless libxl's E820MAX buffer holds the map plus one.
    if (hostE820.length > E820MAX - 1) {
      throw new InputError(`${cfg.source}: the host map has ${hostE820.length} entries; XENMEM_machine_memory_map into libxl's E820MAX (${E820MAX}) buffer takes at most ${E820MAX - 1}`);
    }
    // Xen's own e820 (what XENMEM_machine_memory_map copies) is sorted and merged; so is this input.
    const host = sanitizeE820(hostE820);
    if (host.length !== hostE820.length || host.some((e, i) => e.addr !== hostE820[i]!.addr || e.size !== hostE820[i]!.size || e.type !== hostE820[i]!.type)) {
      notes.push(`the host map was sorted/merged first (${hostE820.length} → ${host.length} entries), as Xen keeps its own e820`);
    }
    // e820_host_sanitize: e820_sanitize(map, target_memkb, (max_memkb - target_memkb) + slack_memkb).
    const balloonKb = u64(maxMemkb - targetMemkb + slackMemkb);
    const { entries, log } = e820Sanitize(host, targetMemkb, balloonKb);
    guestE820 = entries;
    notes.push(`${why}: e820_sanitize(host, map_limitkb ${targetMemkb}, balloon_kb ${balloonKb}); libxl logs:`, ...log.map((l) => `  ${l}`));
    notes.push(
      'not modelled: the E820_RESERVED entries XENMEM_machine_memory_map adds for hole ranges dom0 may not map ' +
        '(IOAPIC pages and others outside its iomem caps); give the map from `xl -vvv create` if they matter',
    );
  }

  const ramPages = e820RamPages(guestE820);
  notes.push(`RAM in the guest map: ${hex(ramPages)} pages (nr_pages ${hex(nrPages)}${ramPages > nrPages ? `, ${hex(ramPages - nrPages)} more for ballooning` : ''})`);
  if (ramPages < nrPages) notes.push(`the guest map holds less RAM than nr_pages (maxmem < memory): the guest keeps only what its map covers`);
  if (guestE820.some((e) => e.size === 0)) notes.push('the map libxl sets contains an empty entry (the guest kernel drops it)');
  const order = orderNote(guestE820);
  if (order) notes.push(order);
  if (cfg.pci.length > 0) {
    notes.push(`pci: ${cfg.pci.join(', ')}: passthrough is not emulated; only the e820_host map it implies matters here`);
  }
  return { guestE820, nrPages, maxPages, notes };
}
