// Kernel profiles: data + strategy choices per Linux version (linux-p2m.md §1–§5). Each names the
// source it follows; the emulator (emulate.ts) runs one boot order per layout.
import { PAGE_OFFSET_L4, PAGE_OFFSET_LEGACY, VMALLOC_START_LEGACY } from '../../xen/abi.js';

export interface KernelProfile {
  id: string;
  /** one line: what differs */
  summary: string;
  /** the kernel source this profile follows */
  source: string;
  layout: 'tree' | 'linear';
  /** tree only: when the toolstack mirror is built and whether early helpers maintain it */
  mirror: 'early' | 'delayed';
  /** tree only: 3.8 or 3.18 p2m.c (sentinels, identity ranges) and setup.c (release vs remap) */
  treeVariant: '3.8' | '3.18';
  /** tree only: what bounds xen_build_mfn_list_list */
  buildBound: 'xen_max_p2m_pfn' | 'max_pfn';
  /** linear only: 4b511d5bfa74 (ALIGN(pfn+1, 512) hint) */
  maxPfnFix: boolean;
  /** 9338c2233b97 (v6.5): dom0 reserves [IBFT_START, IBFT_END) in Xen's map when CONFIG_ISCSI_IBFT_FIND=y */
  ibftReserve: boolean;
  /** direct-map base (__PAGE_OFFSET) */
  pageOffset: bigint;
  vmallocStart: bigint;
  /** default kernel config (a common distribution config) */
  defaults: Record<string, string>;
}

const GiB_PAGES = 2 ** 18;

/** What kernels before the 2021 arch.max_pfn fix and before 4.9's KASLR page_offset_base share. */
const BEFORE_4_9 = { maxPfnFix: false, ibftReserve: false, pageOffset: PAGE_OFFSET_LEGACY, vmallocStart: VMALLOC_START_LEGACY } as const;

export const PROFILES: KernelProfile[] = [
  {
    id: 'linux-3.8',
    summary: 'tree; holes released and repopulated above nr_pages; mirror built first and kept in sync by the early helpers',
    source: 'linux v3.8.13 arch/x86/xen/{p2m,setup,enlighten,mmu}.c',
    layout: 'tree',
    treeVariant: '3.8',
    mirror: 'early',
    buildBound: 'xen_max_p2m_pfn',
    ...BEFORE_4_9,
    defaults: { CONFIG_XEN_MAX_DOMAIN_MEMORY: '500' },
  },
  {
    id: 'linux-3.8.13-backport',
    summary: 'tree + backported 2c185687: mirror built once in xen_pagetable_init, bounded by xen_max_p2m_pfn (= nr_pages without extra memory)',
    source: 'linux v3.8.13 + 2c185687 "x86/xen: delay construction of mfn_list_list" (as in UEK3 before 3.8.13-118.5.1)',
    layout: 'tree',
    treeVariant: '3.8',
    mirror: 'delayed',
    buildBound: 'xen_max_p2m_pfn',
    ...BEFORE_4_9,
    defaults: { CONFIG_XEN_MAX_DOMAIN_MEMORY: '500' },
  },
  {
    id: 'linux-3.8.13-backport-fixed',
    summary: 'the backport with the proposed fix: the delayed build (and arch.max_pfn) bounded by the kernel max_pfn when larger',
    source: 'linux v3.8.13 + 2c185687 + fix: xen_max_p2m_pfn raised to max_pfn before xen_build_mfn_list_list',
    layout: 'tree',
    treeVariant: '3.8',
    mirror: 'delayed',
    buildBound: 'max_pfn',
    ...BEFORE_4_9,
    defaults: { CONFIG_XEN_MAX_DOMAIN_MEMORY: '500' },
  },
  {
    id: 'linux-3.18',
    summary: 'tree with p2m_mid_identity; holes remapped above nr_pages (not counted as extra); delayed build bounded by xen_max_p2m_pfn',
    source: 'linux v3.18.30 arch/x86/xen/{p2m,setup,mmu}.c',
    layout: 'tree',
    treeVariant: '3.18',
    mirror: 'delayed',
    buildBound: 'xen_max_p2m_pfn',
    ...BEFORE_4_9,
    defaults: { CONFIG_XEN_MAX_DOMAIN_MEMORY: '500' },
  },
  {
    id: 'linux-4.x',
    summary: 'linear list; holes remapped above nr_pages as extra memory; build bounded by the vmalloc area; arch.max_pfn = xen_p2m_last_pfn',
    source: 'linux v4.4.155 arch/x86/xen/{p2m,setup,mmu}.c',
    layout: 'linear',
    treeVariant: '3.8',
    mirror: 'delayed',
    buildBound: 'xen_max_p2m_pfn',
    ...BEFORE_4_9,
    defaults: { CONFIG_XEN_BALLOON_MEMORY_HOTPLUG: 'y', CONFIG_XEN_BALLOON_MEMORY_HOTPLUG_LIMIT: '512', CONFIG_XEN_512GB: 'y' },
  },
  {
    id: 'linux-6.1',
    summary: 'linear list as 4.x, plus the 2021 arch.max_pfn fix (ALIGN(pfn+1, 512)); 4-level direct map at 0xffff888000000000; domUs built with SIF_VIRT_P2M_4TOOLS publish an invalid frame-list root',
    source: 'linux v6.1 arch/x86/xen/{p2m,setup,mmu_pv}.c (4b511d5bfa74 "xen: fix setting of max_pfn in shared_info")',
    layout: 'linear',
    treeVariant: '3.8',
    mirror: 'delayed',
    buildBound: 'xen_max_p2m_pfn',
    maxPfnFix: true,
    ibftReserve: false,
    pageOffset: PAGE_OFFSET_L4,
    vmallocStart: VMALLOC_START_LEGACY,
    defaults: { CONFIG_XEN_MEMORY_HOTPLUG_LIMIT: '512', CONFIG_XEN_512GB: 'y' },
  },
  {
    id: 'linux-6.5',
    summary: 'linux-6.1, plus a dom0 that reserves 0x80000-0xfffff in Xen\'s map when CONFIG_ISCSI_IBFT_FIND=y (the RAM there is remapped too)',
    source: 'linux v6.5 arch/x86/xen/setup.c xen_memory_setup (9338c2233b97 "iscsi_ibft: Fix finding the iBFT under Xen Dom 0")',
    layout: 'linear',
    treeVariant: '3.8',
    mirror: 'delayed',
    buildBound: 'xen_max_p2m_pfn',
    maxPfnFix: true,
    ibftReserve: true,
    pageOffset: PAGE_OFFSET_L4,
    vmallocStart: VMALLOC_START_LEGACY,
    defaults: { CONFIG_XEN_MEMORY_HOTPLUG_LIMIT: '512', CONFIG_XEN_512GB: 'y', CONFIG_ISCSI_IBFT_FIND: 'y' },
  },
];

export function findProfile(id: string): KernelProfile | undefined {
  return PROFILES.find((p) => p.id === id);
}

export function profileIds(): string[] {
  return PROFILES.map((p) => p.id);
}

/** MAX_DOMAIN_PAGES of a 3.x config (CONFIG_XEN_MAX_DOMAIN_MEMORY GiB). */
export function maxDomainPages(config: Record<string, string>): number {
  const v = config['CONFIG_XEN_MAX_DOMAIN_MEMORY'];
  const gib = v !== undefined && v !== 'n' ? Number(v) : 500;
  return gib * GiB_PAGES;
}

const isSet = (v: string | undefined): v is string => v !== undefined && v !== 'n' && v !== '';

/**
 * P2M_LIMIT in GiB (arch/x86/xen/p2m.c): CONFIG_XEN_MEMORY_HOTPLUG_LIMIT (5.x+), or
 * CONFIG_XEN_BALLOON_MEMORY_HOTPLUG_LIMIT when CONFIG_XEN_BALLOON_MEMORY_HOTPLUG=y (3.19–4.x); else 0.
 */
export function p2mLimitGiB(config: Record<string, string>): number {
  if (isSet(config['CONFIG_XEN_MEMORY_HOTPLUG_LIMIT'])) return Number(config['CONFIG_XEN_MEMORY_HOTPLUG_LIMIT']);
  if (config['CONFIG_XEN_BALLOON_MEMORY_HOTPLUG'] === 'y' && isSet(config['CONFIG_XEN_BALLOON_MEMORY_HOTPLUG_LIMIT'])) {
    return Number(config['CONFIG_XEN_BALLOON_MEMORY_HOTPLUG_LIMIT']);
  }
  return 0;
}

/** The config a boot uses: the profile's defaults, or a whole .config; then single overrides. */
export function effectiveConfig(profile: KernelProfile, kconfig: Record<string, string> | null, overrides: Record<string, string>): Record<string, string> {
  return { ...(kconfig ?? profile.defaults), ...overrides };
}

export { PAGE_OFFSET_L4 };
