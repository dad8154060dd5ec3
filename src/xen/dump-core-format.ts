// The xl dump-core (xc_core ELF) wire format: section names, Xen's ELF notes and their descriptor layouts, the
// .xen_p2m entry, xen_version_info offsets — xen-project/xen tools/libs/guest/xg_core.h, xen/include/public/elfnote.h
// and docs/misc/dump-core-format.txt (RELEASE-4.17.0; xen-toolstack.md §4). Data only.

// ---- xc_core (xg_core.h, public/elfnote.h) -------------------------------------------------------
export const ELF_SHSTRTAB = '.shstrtab';
export const XEN_DUMPCORE_SEC_NOTE = '.note.Xen';
export const XEN_DUMPCORE_SEC_PRSTATUS = '.xen_prstatus';
export const XEN_DUMPCORE_SEC_SHARED_INFO = '.xen_shared_info';
export const XEN_DUMPCORE_SEC_P2M = '.xen_p2m';
export const XEN_DUMPCORE_SEC_PFN = '.xen_pfn';
export const XEN_DUMPCORE_SEC_PAGES = '.xen_pages';
/** Note name: "Xen" plus its NUL (namesz 4). */
export const XEN_DUMPCORE_ELFNOTE_NAME = 'Xen';
export const XEN_DUMPCORE_ELFNOTE_NAMESZ = 4;
export const XEN_ELFNOTE_DUMPCORE_NONE = 0x2000000;
export const XEN_ELFNOTE_DUMPCORE_HEADER = 0x2000001;
export const XEN_ELFNOTE_DUMPCORE_XEN_VERSION = 0x2000002;
export const XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION = 0x2000003;
/** Descriptor sizes: none {}, header 4 × u64, xen_version (see below), format_version u64. */
export const NONE_DESC_SIZE = 0;
export const HEADER_DESC_SIZE = 32;
export const XEN_VERSION_DESC_SIZE = 1280;
export const FORMAT_VERSION_DESC_SIZE = 8;
/** xen_dumpcore_elfnote_header_desc field offsets. */
export const XCH_MAGIC = 0;
export const XCH_NR_VCPUS = 8;
export const XCH_NR_PAGES = 16;
export const XCH_PAGE_SIZE = 24;
/** xch_magic values. */
export const XC_CORE_MAGIC = 0xf00febed;
export const XC_CORE_MAGIC_HVM = 0xf00febee;
/** Format version: major in the high 32 bits, minor in the low; (0, 1) is the only one defined. */
export const XEN_DUMPCORE_FORMAT_MAJOR = 0;
export const XEN_DUMPCORE_FORMAT_MINOR = 1;
/** One .xen_p2m entry: struct xen_dumpcore_p2m { u64 pfn; u64 gmfn; }. */
export const XEN_DUMPCORE_P2M_ENTRY_SIZE = 16;
export const P2M_ENTRY_GMFN = 8;
/** Padding entries (fewer pages found than xch_nr_pages): XC_CORE_INVALID_PFN / _GMFN = ~0. */
export const XC_CORE_INVALID_WORD = 0xffffffff;
/** xen_dumpcore_elfnote_xen_version_desc: major u64 @0, minor u64 @8, extra_version char[16] @16. */
export const XV_MAJOR = 0;
export const XV_MINOR = 8;
export const XV_EXTRA = 16;
export const XEN_EXTRAVERSION_LEN = 16;
/** compile_info @32: compiler[64], compile_by[16], compile_domain[32], compile_date[32]. */
export const XV_COMPILE_INFO = 32;
export const XEN_COMPILER_LEN = 64;
export const XEN_COMPILE_BY_LEN = 16;
export const XEN_COMPILE_DOMAIN_LEN = 32;
export const XEN_COMPILE_DATE_LEN = 32;
/** capabilities char[1024] @176, changeset char[64] @1200, platform_parameters.virt_start u64 @1264, pagesize u64 @1272. */
export const XV_CAPABILITIES = 176;
export const XEN_CAPABILITIES_LEN = 1024;
export const XV_CHANGESET = 1200;
export const XEN_CHANGESET_LEN = 64;
export const XV_VIRT_START = 1264;
export const XV_PAGESIZE = 1272;
