// Boot emulation of a PV guest (dom0 by default): Xen's domain builder allocation, then the profile's
// boot order (linux-p2m.md §1.2, §3 "Boot order"), then the final memory laid out as a GuestImage.
import type { BootFacts } from '../../inputs/boot-facts.js';
import type { E820Entry } from '../../inputs/e820.js';
import { writeArchSharedInfo } from '../../xen/shared-info.js';
import { InputError } from '../../common/errors.js';
import { MemoryImage } from '../../formats/memory-image.js';
import { checkXenHostMap, formatLinuxE820, sanitizeE820 } from '../../inputs/e820.js';
import { PAGE_OFFSET_LEGACY, PAGE_SIZE, SIF_INITDOMAIN, SIF_PRIVILEGED, SIF_VIRT_P2M_4TOOLS, START_INFO_FLAGS_OFFSET, START_INFO_MFN_LIST_OFFSET, START_INFO_NR_PAGES_OFFSET, START_INFO_SHARED_INFO_OFFSET, SIZE_2M, hex } from '../../xen/abi.js';
import { KPage, KernelSpace } from './kspace.js';
import { MachineMemory } from './machine.js';
import { memorySetup38, memorySetup318, memorySetup4x, nonRamRuns, delExtra, RunIndex, type MemorySetupResult } from './memory-setup.js';
import { describeCap, setupArchE820 } from './setup-arch-e820.js';
import { P2mLinear, PFNS_PER_PMD } from './p2m-linear.js';
import { P2mTree } from './p2m-tree.js';
import { effectiveConfig, maxDomainPages, p2mLimitGiB, type KernelProfile } from './profiles.js';

export interface EmulateInput {
  profile: KernelProfile;
  /** the map the kernel gets from Xen: the host's (XENMEM_machine_memory_map, dom0) or libxl's (XENMEM_memory_map, domU) */
  hostE820: E820Entry[];
  /** host RAM machine frames come from (default: hostE820) */
  machineE820?: E820Entry[];
  /**
   * start_info SIF_VIRT_P2M_4TOOLS: libxenguest's builder sets it for domUs since Xen 4.7, but xl's
   * libxl__build_pv (4.17) overwrites dom->flags, so xl-built domUs do not see it (docs/spec-notes/xc-core.md)
   */
  virtP2m4Tools?: boolean;
  /** start_info.nr_pages */
  nrPages: number;
  /** XENMEM_maximum_reservation (d->max_pages) */
  maxPages: number;
  role?: 'dom0' | 'domU';
  /** a whole kernel .config (its P2M symbols; replaces the profile's defaults) */
  kconfig?: Record<string, string> | null;
  /** single config overrides (CONFIG_* → value), applied last */
  config?: Record<string, string>;
  seed?: number;
  dom0Mem?: string;
  /** the kernel's mem= in bytes (Linux parse_memopt), applied to its map after xen_memory_setup */
  kernelMem?: number | null;
}

export interface EmulatedGuest {
  image: MemoryImage;
  facts: BootFacts;
  /** what the emulator did beyond the kernel's own messages (where mem= capped the map), one line each */
  notes: string[];
  /** work counters (tests bound them by the map's size, never by time) */
  work: { machineBlocks: number; findSteps: number; holeProbes: number };
}

/** MAXMEM / PAGE_SIZE: xen_get_pages_limit for 64-bit dom0 (4.x). */
const PAGES_LIMIT_4X = 2 ** 46 / PAGE_SIZE;
/** GB(512) / PAGE_SIZE: the domU limit while xen_512gb_limit (CONFIG_XEN_512GB) holds. */
const PAGES_LIMIT_512GB = 2 ** 39 / PAGE_SIZE;

/**
 * Guests the emulator holds: 2^30 pages (4 TiB). Xen itself gives dom0 at most its avail (its frame table
 * covers 16 TiB without CONFIG_BIGMEM), but the emulator keeps every p2m leaf of the guest in memory.
 */
export const MAX_EMULATED_PAGES = 2 ** 30;

/** After xen_memory_setup: the p2m the kernel will build spans xen_max_p2m_pfn pfns (nr_pages plus extra memory). */
function checkP2mSpan(xenMaxP2mPfn: number): void {
  if (xenMaxP2mPfn > MAX_EMULATED_PAGES) {
    throw new InputError(
      `the guest's p2m would span ${hex(xenMaxP2mPfn)} pfns (${(xenMaxP2mPfn / 2 ** 28).toFixed(1)} TiB, nr_pages and extra memory up to max pages): more than the emulator holds (${hex(MAX_EMULATED_PAGES)}, 4 TiB); give dom0_mem a max:`,
    );
  }
}

function checkGuestSize(nrPages: number): void {
  if (!Number.isSafeInteger(nrPages) || nrPages <= 0) throw new InputError(`nr_pages ${nrPages}: expected a positive whole number of pages`);
  if (nrPages > MAX_EMULATED_PAGES) {
    throw new InputError(`a guest of ${hex(nrPages)} pages (${(nrPages / 2 ** 28).toFixed(1)} TiB) is more than the emulator holds (${hex(MAX_EMULATED_PAGES)} pages, 4 TiB): give a smaller --dom0-mem`);
  }
}

/** xen_memory_setup's result plus what setup_arch does next: mem=, max_pfn, max_low_pfn. */
type BootSetup = MemorySetupResult & { xenE820: E820Entry[]; arch: ReturnType<typeof setupArchE820> };

function withSetupArch(setup: MemorySetupResult, kernelMem: number | null): BootSetup {
  const arch = setupArchE820(setup.kernelE820, kernelMem);
  return { ...setup, xenE820: setup.kernelE820, kernelE820: arch.e820, maxPfn: arch.maxPfn, maxLowPfn: arch.maxLowPfn, arch };
}

/** max_pfn of the map before mem= */
function endOfXenMap(setup: BootSetup): number {
  return setupArchE820(setup.xenE820, null).maxPfn;
}

export function emulate(input: EmulateInput): EmulatedGuest {
  const { profile } = input;
  const role = input.role ?? 'dom0';
  const seed = input.seed ?? 1;
  const config = effectiveConfig(profile, input.kconfig ?? null, input.config ?? {});
  checkXenHostMap(input.machineE820 ?? input.hostE820, 'host map');
  checkGuestSize(input.nrPages);
  const machine = new MachineMemory(input.machineE820 ?? input.hostE820, input.nrPages, seed);
  const holes = new RunIndex(nonRamRuns(sanitizeE820(input.hostE820)));
  const isHole = (pfn: number): boolean => holes.has(pfn);
  const ks = new KernelSpace(machine, input.nrPages, isHole, profile.pageOffset);
  const mem = new MemoryImage('mfn');
  const sharedInfo = Buffer.alloc(PAGE_SIZE);
  const sharedInfoMfn = machine.xenPage();
  const startInfo = ks.xen((pfn, va) => new KPage(pfn, va, 'xen'));
  startInfo.keepMapped = true;
  const flags = (role === 'dom0' ? SIF_PRIVILEGED | SIF_INITDOMAIN : 0) | (input.virtP2m4Tools ? SIF_VIRT_P2M_4TOOLS : 0);
  const history: { value: number; by: string }[] = [];
  let setup: BootSetup;
  let buildBound: number;
  let archMaxPfn: number;
  let fll: bigint;
  let p2mCr3 = 0n;
  let p2mVaddr = 0n;
  const messages: string[] = [];
  let extraMaps: Parameters<KernelSpace['layout']>[0]['extraMaps'];
  let mfnListVa: bigint;

  if (profile.layout === 'tree') {
    const limit = maxDomainPages(config);
    const tree = new P2mTree(ks, { maxDomainPages: limit, mirror: profile.mirror, variant: profile.treeVariant });
    // xen_start_kernel
    tree.buildDynamic(input.nrPages);
    history.push({ value: tree.xenMaxP2mPfn, by: 'xen_build_dynamic_phys_to_machine (nr_pages)' });
    mfnListVa = tree.mfnList[0]!.va;
    if (profile.mirror === 'early') tree.buildMfnListList();
    // setup_arch → xen_memory_setup
    const setupInput = { hostE820: input.hostE820, nrPages: input.nrPages, maxPages: input.maxPages, role, pagesLimit: limit };
    setup = withSetupArch(profile.treeVariant === '3.18' ? memorySetup318(setupInput, tree, machine) : memorySetup38(setupInput, tree, machine), input.kernelMem ?? null);
    history.push(...setup.history);
    // xen_pagetable_init
    if (profile.mirror === 'early') {
      buildBound = Math.min(input.nrPages, limit);
      archMaxPfn = tree.xenMaxP2mPfn; // xen_setup_mfn_list_list
      tree.revector(input.nrPages);
    } else {
      tree.revector(input.nrPages);
      if (profile.buildBound === 'max_pfn' && setup.maxPfn > tree.xenMaxP2mPfn) {
        tree.xenMaxP2mPfn = setup.maxPfn;
        history.push({ value: tree.xenMaxP2mPfn, by: 'fix: raised to the kernel max_pfn before the build' });
      }
      buildBound = tree.xenMaxP2mPfn;
      tree.buildMfnListList();
      archMaxPfn = tree.xenMaxP2mPfn;
    }
    fll = BigInt(machine.mfnOf(tree.topMfn!.pfn));
    tree.publishVars();
  } else {
    const lin = new P2mLinear(
      ks,
      { p2mLimitGiB: p2mLimitGiB(config), maxPfnFix: profile.maxPfnFix, virtP2m4Tools: (flags & SIF_VIRT_P2M_4TOOLS) !== 0 },
      profile.vmallocStart,
    );
    lin.buildDynamic(input.nrPages);
    mfnListVa = lin.xenList[0]!.va;
    history.push({ value: lin.xenMaxP2mPfn, by: 'xen_build_dynamic_phys_to_machine (ALIGN(nr_pages, 512))' });
    const pagesLimit = role === 'domU' && config['CONFIG_XEN_512GB'] === 'y' ? PAGES_LIMIT_512GB : PAGES_LIMIT_4X; // xen_get_pages_limit
    const reserveIbft = profile.ibftReserve && config['CONFIG_ISCSI_IBFT_FIND'] === 'y';
    setup = withSetupArch(memorySetup4x({ hostE820: input.hostE820, nrPages: input.nrPages, maxPages: input.maxPages, role, pagesLimit, reserveIbft }, lin, machine), input.kernelMem ?? null);
    history.push(...setup.history);
    checkP2mSpan(lin.xenMaxP2mPfn);
    // xen_pagetable_init: p2m setup (vmalloc), build, remap, shared info
    const size = lin.vmalloc(setup.extraRegions);
    history.push({ value: lin.xenMaxP2mPfn, by: `xen_vmalloc_p2m_tree (area of ${hex(size)} bytes)` });
    messages.push(`p2m virtual area at ${hex(lin.areaVa)}, size is ${size.toString(16)}`);
    buildBound = lin.xenMaxP2mPfn;
    lin.buildMfnListList();
    // xen_remap_memory
    let remappedPages = 0;
    for (const r of setup.pendingRemap) {
      for (let k = 0; k < r.size; k++) {
        const mfn = machine.mfnOf(r.from + k);
        machine.forget(r.from + k);
        machine.assign(r.to + k, mfn);
        lin.set(r.to + k, mfn);
        remappedPages++;
      }
    }
    for (const r of mergeRuns(setup.pendingRemap.map((p) => ({ start: p.to, end: p.to + p.size })))) {
      delExtra(setup.extraRegions, r.start, r.end - r.start);
    }
    messages.push(`Remapped ${remappedPages} page(s)`);
    // xen_setup_mfn_list_list
    archMaxPfn = lin.xenP2mLastPfn;
    fll = lin.opts.virtP2m4Tools ? 0xffffffffffffffffn : BigInt(machine.mfnOf(lin.topMfn!.pfn));
    p2mVaddr = lin.areaVa;
    lin.publishVars();
    extraMaps = (pt) => {
      for (let k = 0; k < lin.pmds.length; k++) {
        const pte = lin.pmds[k]!;
        pt.setPmd(lin.areaVa + BigInt(k) * BigInt(SIZE_2M), machine.mfnOf(pte.pfn));
      }
    };
    void PFNS_PER_PMD;
  }

  messages.unshift(...setup.messages);
  messages.push(...formatLinuxE820(setup.xenE820, 'Xen'));
  messages.push(...setup.arch.messages);
  const notes = setup.arch.cap ? [describeCap(setup.arch.cap, endOfXenMap(setup), setup.maxPfn)] : [];

  // kernel variables every profile has
  ks.defineVar('max_pfn', BigInt(setup.maxPfn));
  ks.defineVar('xen_start_info', startInfo);
  ks.defineVar('xen_released_pages', BigInt(setup.released));
  if (profile.pageOffset !== PAGE_OFFSET_LEGACY) {
    // 4.9+ (KASLR-capable) kernels keep the bases in variables; the emulator does not randomise them
    ks.defineVar('page_offset_base', profile.pageOffset);
    ks.defineVar('vmalloc_base', profile.vmallocStart);
  }
  const laid = ks.layout({ mem, extraMaps });
  if (profile.layout === 'linear') p2mCr3 = BigInt(laid.cr3Frame) * BigInt(PAGE_SIZE); // xen_pfn_to_cr3(mfn(swapper_pg_dir))

  // start_info (Xen's page in the initial mapping)
  const si = mem.writableFrame(machine.mfnOf(startInfo.pfn));
  si.write(`xen-3.0-x86_64`, 0, 'latin1');
  si.writeBigUInt64LE(BigInt(input.nrPages), START_INFO_NR_PAGES_OFFSET);
  si.writeBigUInt64LE(BigInt(sharedInfoMfn) * BigInt(PAGE_SIZE), START_INFO_SHARED_INFO_OFFSET);
  si.writeUInt32LE(flags, START_INFO_FLAGS_OFFSET);
  si.writeBigUInt64LE(mfnListVa, START_INFO_MFN_LIST_OFFSET);

  writeArchSharedInfo(sharedInfo, {
    maxPfn: BigInt(archMaxPfn),
    pfnToMfnFrameListList: fll,
    nmiReason: 0n,
    p2mCr3,
    p2mVaddr,
    p2mGeneration: 0n,
  });
  mem.sharedInfo = sharedInfo;
  // Xen's shared_info page lies in host RAM at the machine address start_info.shared_info names: a dump of
  // the host (dom0's kdump) holds it there; writers that follow the p2m never reach it (no pfn maps it)
  mem.setFrame(sharedInfoMfn, sharedInfo);
  mem.cr3 = BigInt(laid.cr3Frame) * BigInt(PAGE_SIZE);
  mem.symbols = laid.symbols;
  mem.maxFrame = machine.maxMfn - 1;
  const facts: BootFacts = {
    profile: profile.id,
    role,
    hostE820: input.hostE820,
    kernelE820: setup.kernelE820,
    dom0Mem: input.dom0Mem,
    nrPages: input.nrPages,
    maxPages: input.maxPages,
    kernelMaxPfn: setup.maxPfn,
    buildBound,
    xenMaxP2mPfnHistory: history,
    identity: setup.runs,
    remapped: setup.remapped,
    released: setup.released,
    extraRegions: setup.extraRegions.filter((r) => r.end > r.start),
    config,
    messages,
    seed,
  };
  mem.formatFacts = { kind: 'snapshot', boot: facts };
  return { image: mem, facts, notes, work: { machineBlocks: machine.blocksDrawn, findSteps: setup.findSteps, holeProbes: holes.probes } };
}

function mergeRuns(rs: { start: number; end: number }[]): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  for (const r of [...rs].sort((a, b) => a.start - b.start)) {
    const last = out[out.length - 1];
    if (last && last.end === r.start) last.end = r.end;
    else out.push({ ...r });
  }
  return out;
}
