// Kernel profiles: data + strategy choices per Linux version (linux-p2m.md §1–§5). Each names the
// source it follows; the emulator (emulate.ts) runs one boot order per layout.
import { PAGE_OFFSET_L4, PAGE_OFFSET_LEGACY, VMALLOC_START_LEGACY } from '../xen/abi.js';

export interface KernelProfile {
  id: string;
  /** one line: what differs */
  summary: string;
  /** the kernel source this profile follows */
  source: string;
  layout: 'tree' | 'linear';
  /** tree only: when the toolstack mirror is built and whether early helpers maintain it */
  mirror: 'early' | 'delayed';
  /** tree only: what bounds xen_build_mfn_list_list */
  buildBound: 'xen_max_p2m_pfn' | 'max_pfn';
  /** linear only: 4b511d5bfa74 (ALIGN(pfn+1, 512) hint) */
  maxPfnFix: boolean;
  /** direct-map base (__PAGE_OFFSET) */
  pageOffset: bigint;
  vmallocStart: bigint;
  /** default kernel config (a common distribution config) */
  defaults: Record<string, string>;
}

const GiB_PAGES = 2 ** 18;

export const PROFILES: KernelProfile[] = [
  {
    id: 'linux-3.8',
    summary: 'tree; holes released and repopulated above nr_pages; mirror built first and kept in sync by the early helpers',
    source: 'linux v3.8.13 arch/x86/xen/{p2m,setup,enlighten,mmu}.c',
    layout: 'tree',
    mirror: 'early',
    buildBound: 'xen_max_p2m_pfn',
    maxPfnFix: false,
    pageOffset: PAGE_OFFSET_LEGACY,
    vmallocStart: VMALLOC_START_LEGACY,
    defaults: { CONFIG_XEN_MAX_DOMAIN_MEMORY: '500' },
  },
  {
    id: 'linux-3.8.13-backport',
    summary: 'tree + backported 2c185687: mirror built once in xen_pagetable_init, bounded by xen_max_p2m_pfn (= nr_pages without extra memory)',
    source: 'linux v3.8.13 + 2c185687 "x86/xen: delay construction of mfn_list_list" (as in UEK3 before 3.8.13-118.5.1)',
    layout: 'tree',
    mirror: 'delayed',
    buildBound: 'xen_max_p2m_pfn',
    maxPfnFix: false,
    pageOffset: PAGE_OFFSET_LEGACY,
    vmallocStart: VMALLOC_START_LEGACY,
    defaults: { CONFIG_XEN_MAX_DOMAIN_MEMORY: '500' },
  },
  {
    id: 'linux-3.8.13-backport-fixed',
    summary: 'the backport with the proposed fix: the delayed build (and arch.max_pfn) bounded by the kernel max_pfn when larger',
    source: 'linux v3.8.13 + 2c185687 + fix: xen_max_p2m_pfn raised to max_pfn before xen_build_mfn_list_list',
    layout: 'tree',
    mirror: 'delayed',
    buildBound: 'max_pfn',
    maxPfnFix: false,
    pageOffset: PAGE_OFFSET_LEGACY,
    vmallocStart: VMALLOC_START_LEGACY,
    defaults: { CONFIG_XEN_MAX_DOMAIN_MEMORY: '500' },
  },
  {
    id: 'linux-4.x',
    summary: 'linear list; holes remapped above nr_pages as extra memory; build bounded by the vmalloc area; arch.max_pfn = xen_p2m_last_pfn',
    source: 'linux v4.4.155 arch/x86/xen/{p2m,setup,mmu}.c',
    layout: 'linear',
    mirror: 'delayed',
    buildBound: 'xen_max_p2m_pfn',
    maxPfnFix: false,
    pageOffset: PAGE_OFFSET_LEGACY,
    vmallocStart: VMALLOC_START_LEGACY,
    defaults: { CONFIG_XEN_BALLOON_MEMORY_HOTPLUG: 'y', CONFIG_XEN_BALLOON_MEMORY_HOTPLUG_LIMIT: '512' },
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
  const gib = Number(config['CONFIG_XEN_MAX_DOMAIN_MEMORY'] ?? '500');
  return gib * GiB_PAGES;
}

/** P2M_LIMIT in GiB of a 4.x/5.x+ config (0 unless memory hotplug is enabled). */
export function p2mLimitGiB(config: Record<string, string>): number {
  if (config['CONFIG_XEN_MEMORY_HOTPLUG_LIMIT']) return Number(config['CONFIG_XEN_MEMORY_HOTPLUG_LIMIT']);
  if (config['CONFIG_XEN_BALLOON_MEMORY_HOTPLUG'] === 'y') return Number(config['CONFIG_XEN_BALLOON_MEMORY_HOTPLUG_LIMIT'] ?? '512');
  return 0;
}

export { PAGE_OFFSET_L4 };
