// Xen/x86-64 PV ABI constants: xen/include/public/{xen.h,arch-x86/xen.h,arch-x86/xen-x86_64.h},
// Linux arch/x86/include/asm/xen/page.h, arch/x86/xen/p2m.c, arch/x86/include/asm/pgtable_types.h.
//
// Every number the logic needs lives here under its real name. 64-bit values that hot paths touch are
// described as their high/low 32-bit words (little-endian: low word first).

/** PAGE_SHIFT / PAGE_SIZE (x86, 4 KiB pages). */
export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
/** Bytes of one p2m entry (unsigned long on x86-64) and of one page-table entry. */
export const P2M_ENTRY_SIZE = 8;
export const PTE_SIZE = 8;

/** arch/x86/xen/p2m.c: entries per leaf, mid and top page (PAGE_SIZE / sizeof(unsigned long)). */
export const P2M_PER_PAGE = PAGE_SIZE / P2M_ENTRY_SIZE; // 512
export const P2M_MID_PER_PAGE = PAGE_SIZE / P2M_ENTRY_SIZE; // 512
export const P2M_TOP_PER_PAGE = PAGE_SIZE / P2M_ENTRY_SIZE; // 512
/** pfns covered by one mid page (one p2m_top slot): 512 * 512 = 0x40000 (1 GiB of pfns). */
export const P2M_PFNS_PER_TOP = P2M_PER_PAGE * P2M_MID_PER_PAGE;
/** MAX_P2M_PFN = P2M_TOP_PER_PAGE * P2M_MID_PER_PAGE * P2M_PER_PAGE = 0x8000000 (512 GiB). */
export const MAX_P2M_PFN = P2M_TOP_PER_PAGE * P2M_PFNS_PER_TOP;

/** p2m_top_index(pfn) = pfn / (P2M_MID_PER_PAGE * P2M_PER_PAGE). */
export function p2mTopIndex(pfn: number): number {
  return Math.floor(pfn / P2M_PFNS_PER_TOP);
}
/** p2m_mid_index(pfn) = (pfn / P2M_PER_PAGE) % P2M_MID_PER_PAGE. */
export function p2mMidIndex(pfn: number): number {
  return Math.floor(pfn / P2M_PER_PAGE) % P2M_MID_PER_PAGE;
}
/** p2m_index(pfn) = pfn % P2M_PER_PAGE. */
export function p2mIndex(pfn: number): number {
  return pfn % P2M_PER_PAGE;
}

// ---- p2m entry values (asm/xen/page.h) -------------------------------------------------------
/** INVALID_P2M_ENTRY = ~0UL: both words all ones. */
export const INVALID_P2M_ENTRY_WORD = 0xffffffff;
/** FOREIGN_FRAME_BIT = 1UL << (BITS_PER_LONG - 1): bit 63 = bit 31 of the high word. */
export const FOREIGN_FRAME_BIT = 63;
export const FOREIGN_FRAME_HI = 0x80000000;
/** IDENTITY_FRAME_BIT = 1UL << (BITS_PER_LONG - 2): bit 62 = bit 30 of the high word. */
export const IDENTITY_FRAME_BIT = 62;
export const IDENTITY_FRAME_HI = 0x40000000;
/** Bits of the high word that hold frame-number bits (everything below the two marker bits). */
export const FRAME_HI_MASK = 0x3fffffff;

// ---- page tables (asm/pgtable_types.h) ------------------------------------------------------
export const _PAGE_PRESENT = 0x001;
export const _PAGE_RW = 0x002;
export const _PAGE_USER = 0x004;
export const _PAGE_ACCESSED = 0x020;
export const _PAGE_DIRTY = 0x040;
/** _PAGE_PSE: at L2 a 2 MiB leaf, at L3 a 1 GiB leaf. */
export const _PAGE_PSE = 0x080;
export const _PAGE_GLOBAL = 0x100;
/** _PAGE_NX is bit 63 (bit 31 of the high word). */
export const _PAGE_NX_HI = 0x80000000;
/** PTE_PFN_MASK covers physical-address bits 12..51: low word 0xfffff000, high word 0x000fffff. */
export const PTE_PFN_MASK_LO = 0xfffff000;
export const PTE_PFN_MASK_HI = 0x000fffff;
/** Entries per page-table page (PTRS_PER_PTE = PTRS_PER_PMD = PTRS_PER_PUD = PTRS_PER_PGD). */
export const PTRS_PER_TABLE = 512;
/** Paging levels of a 64-bit PV guest (L4 → L1) and the VA shift of each level's index. */
export const PT_LEVELS_64 = 4;
export const L1_SHIFT = 12;
export const L2_SHIFT = 21;
export const L3_SHIFT = 30;
export const L4_SHIFT = 39;
/** Sizes of the leaves a walk can meet. */
export const SIZE_4K = 1 << 12;
export const SIZE_2M = 1 << 21;
export const SIZE_1G = 2 ** 30;

// ---- kernel virtual address layout (arch/x86/include/asm/page_64_types.h) ----------------------
/** __START_KERNEL_map: the kernel image mapping. */
export const START_KERNEL_MAP = 0xffffffff80000000n;
/** __PAGE_OFFSET before 4.20 (and the historical default): direct map base. */
export const PAGE_OFFSET_LEGACY = 0xffff880000000000n;
/** __PAGE_OFFSET_BASE_L4 from 4.20 on. */
export const PAGE_OFFSET_L4 = 0xffff888000000000n;
/** VMALLOC_START before 4.20 (a variable, vmalloc_base, from 4.9/KASLR on). */
export const VMALLOC_START_LEGACY = 0xffffc90000000000n;
/** Xen's reserved hole in 64-bit guest address space (xen-toolstack.md §1.3). */
export const XEN_VIRT_HOLE_START = 0xffff800000000000n;
export const XEN_VIRT_HOLE_END = 0xffff87ffffffffffn;
/** The first and last L4 slots Xen owns in a 64-bit PV guest (256..271). */
export const XEN_L4_FIRST_SLOT = 256;
export const XEN_L4_LAST_SLOT = 271;

// ---- shared_info (xen.h, arch-x86/xen.h; 64-bit guest layout) ---------------------------------
/** Offset of struct arch_shared_info inside the shared_info page. */
export const SHARED_INFO_ARCH_OFFSET = 0xc10;
export const ARCH_MAX_PFN_OFFSET = 0xc10;
export const ARCH_PFN_TO_MFN_FRAME_LIST_LIST_OFFSET = 0xc18;
export const ARCH_NMI_REASON_OFFSET = 0xc20;
export const ARCH_P2M_CR3_OFFSET = 0xc28;
export const ARCH_P2M_VADDR_OFFSET = 0xc30;
export const ARCH_P2M_GENERATION_OFFSET = 0xc38;
export const SIZEOF_SHARED_INFO_64 = 0xc40;

// ---- start_info (xen.h, 64-bit layout) --------------------------------------------------------
export const START_INFO_NR_PAGES_OFFSET = 32;
export const START_INFO_SHARED_INFO_OFFSET = 40;
export const START_INFO_FLAGS_OFFSET = 48;
export const START_INFO_PT_BASE_OFFSET = 88;
export const START_INFO_NR_PT_FRAMES_OFFSET = 96;
export const START_INFO_MFN_LIST_OFFSET = 104;
export const SIZEOF_START_INFO_64 = 1168;
/** start_info.flags bits. */
export const SIF_PRIVILEGED = 1 << 0;
export const SIF_INITDOMAIN = 1 << 1;
export const SIF_VIRT_P2M_4TOOLS = 1 << 4;

// ---- vcpu_guest_context (arch-x86/xen-x86_64.h) ----------------------------------------------
export const SIZEOF_VCPU_GUEST_CONTEXT_64 = 5168;
export const VCPU_CTRLREG3_OFFSET_64 = 5008;

// ---- e820 types (arch/x86/include/uapi/asm/e820.h; Xen's e820.h) ------------------------------
export const E820_RAM = 1;
export const E820_RESERVED = 2;
export const E820_ACPI = 3;
export const E820_NVS = 4;
export const E820_UNUSABLE = 5;
export const E820_PMEM = 7;
export const E820_PRAM = 12;

/** Sizes. */
export const KiB = 1024;
export const MiB = 1024 * 1024;
export const GiB = 1024 * 1024 * 1024;
/** Pages per MiB, for page-count → MiB conversions in reports. */
export const PAGES_PER_MIB = MiB / PAGE_SIZE;

/** Hex formatting used everywhere in output: 0x-prefixed lowercase. */
export function hex(n: number | bigint): string {
  return '0x' + n.toString(16);
}

/** PADDR_BITS (xen/arch/x86/include/asm/page-bits.h): x86-64 machine addresses have 52 bits. */
export const PADDR_BITS = 52;

/** The largest mfn x86-64 can name; stands in for max_mfn when the image does not know it. */
export const MAX_MFN_ARCH = 2 ** (PADDR_BITS - PAGE_SHIFT) - 1;
