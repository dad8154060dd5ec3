// Domain-control ABI values the live reader needs, with their names in Xen 4.17's public headers:
// xen/include/public/domctl.h (XEN_DOMCTL_PFINFO_*, getpageframeinfo3) and
// xen/include/public/arch-x86/xen.h (XEN_X86_EMU_*, the emulation flags of struct xen_arch_domainconfig).

/** XEN_DOMCTL_PFINFO_LTAB_SHIFT: page types sit in bits 28–31 of each getpageframeinfo3 entry. */
export const XEN_DOMCTL_PFINFO_LTAB_SHIFT = 28;
/** XEN_DOMCTL_PFINFO_XTAB >> LTAB_SHIFT: an invalid page (what getpageframeinfo3 says of INVALID_MFN). */
export const XEN_DOMCTL_PFINFO_XTAB_TYPE = 0xf;
/** xg_domain.c / xg_sr_save.c query page types 1024 frames a call. */
export const PFN_TYPE_BATCH = 1024;

/** _XEN_X86_EMU_LAPIC: the only emulation a PVH domain gets from libxl (an HVM guest gets XEN_X86_EMU_ALL). */
export const XEN_X86_EMU_LAPIC = 1 << 0;

/** DOMID_FIRST_RESERVED (public/xen.h): domain ids at or above it name special domains. */
export const DOMID_FIRST_RESERVED = 0x7ff0;

/** vcpu_guest_context.gdt_ents counts 8-byte descriptors; a frame holds 512 of them. */
export const GDT_ENTRIES_PER_FRAME = 512;
