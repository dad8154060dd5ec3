// makedumpfile's compressed dump ("kdump-compressed", diskdump) wire format on x86_64: makedumpfile diskdump_mod.h (disk_dump_header, kdump_sub_header, page_desc, DUMP_DH_*), makedumpfile.h (the flattened format's makedumpfile_header), makedumpfile.c write_kdump_header / write_kdump_pages_and_bitmap_cyclic, crash diskdump.c read_dump_header / cache_page. Data only.
//
// File layout (block_size = the kernel's page size, 4096 on x86_64), all little-endian:
//   block 0                      disk_dump_header (464 bytes, then zeros)
//   block 1 … sub_hdr_size       kdump_sub_header (104 bytes) then the ELF notes of the vmcore (offset_note, size_note)
//   1 + sub_hdr_size …           bitmap_blocks blocks: 1st bitmap (pfns in memory), then the 2nd (pfns dumped), halves
//   1 + sub_hdr_size + bitmap_blocks   page_desc[k] for the k-th set bit of the 2nd bitmap, then the page data
// Bitmaps are LSB-first: pfn p is bit (p & 7) of byte p >> 3 (makedumpfile.h is_on, crash page_is_dumpable).

// ---- disk_dump_header (diskdump_mod.h) ------------------------------------------------------------
/** signature[SIG_LEN] of a makedumpfile dump, and of the older diskdump facility (not written any more). */
export const KDUMP_SIGNATURE = 'KDUMP   ';
export const DISK_DUMP_SIGNATURE = 'DISKDUMP';
/** SIG_LEN = sizeof("diskdump") − 1 */
export const SIG_LEN = 8;
/** struct new_utsname: six char[65] fields (sysname, nodename, release, version, machine, domainname). */
export const NEW_UTS_LEN_PLUS_1 = 65;
export const UTSNAME_FIELDS = ['sysname', 'nodename', 'release', 'version', 'machine', 'domainname'] as const;
/** Field offsets of struct disk_dump_header on x86_64 (timeval is 16 bytes, 8-aligned after utsname). */
export const DH_SIGNATURE = 0;
export const DH_HEADER_VERSION = 8;
export const DH_UTSNAME = 12;
export const DH_TIMESTAMP = 408;
export const DH_STATUS = 424;
export const DH_BLOCK_SIZE = 428;
export const DH_SUB_HDR_SIZE = 432;
export const DH_BITMAP_BLOCKS = 436;
/** 32-bit max_mapnr (OBSOLETE: the full value is kdump_sub_header.max_mapnr_64 from header_version 6) */
export const DH_MAX_MAPNR = 440;
export const DH_TOTAL_RAM_BLOCKS = 444;
export const DH_DEVICE_BLOCKS = 448;
export const DH_WRITTEN_BLOCKS = 452;
export const DH_CURRENT_CPU = 456;
export const DH_NR_CPUS = 460;
/** sizeof(struct disk_dump_header) on x86_64 (tasks[0] adds nothing). */
export const DISK_DUMP_HEADER_SIZE = 464;
/** DISKDUMP_HEADER_BLOCKS: the header occupies one block; the sub header starts at block 1. */
export const DISKDUMP_HEADER_BLOCKS = 1;
/** The header_version makedumpfile writes (write_kdump_header). */
export const KDUMP_HEADER_VERSION = 6;

// ---- kdump_sub_header (diskdump_mod.h), at file offset block_size ---------------------------------
// Each field exists from the header_version noted.
export const KH_PHYS_BASE = 0;
export const KH_DUMP_LEVEL = 8; // ≥ 1
export const KH_SPLIT = 12; // ≥ 2
export const KH_START_PFN = 16; // ≥ 2 (32-bit value kept for compatibility)
export const KH_END_PFN = 24; // ≥ 2
export const KH_OFFSET_VMCOREINFO = 32; // ≥ 3
export const KH_SIZE_VMCOREINFO = 40; // ≥ 3
export const KH_OFFSET_NOTE = 48; // ≥ 4
export const KH_SIZE_NOTE = 56; // ≥ 4
export const KH_OFFSET_ERASEINFO = 64; // ≥ 5
export const KH_SIZE_ERASEINFO = 72; // ≥ 5
export const KH_START_PFN_64 = 80; // ≥ 6
export const KH_END_PFN_64 = 88; // ≥ 6
export const KH_MAX_MAPNR_64 = 96; // ≥ 6
/** sizeof(struct kdump_sub_header) on x86_64; makedumpfile puts the notes right after it. */
export const KDUMP_SUB_HEADER_SIZE = 104;
/** First header_version with each field. */
export const HV_DUMP_LEVEL = 1;
export const HV_SPLIT = 2;
export const HV_VMCOREINFO = 3;
export const HV_NOTE = 4;
export const HV_ERASEINFO = 5;
export const HV_MAPNR_64 = 6;

// ---- disk_dump_header.status and page_desc.flags (diskdump_mod.h) --------------------------------
export const DUMP_DH_COMPRESSED_ZLIB = 0x1;
export const DUMP_DH_COMPRESSED_LZO = 0x2;
export const DUMP_DH_COMPRESSED_SNAPPY = 0x4;
/** status: the dump was cut short (ENOSPC); pages not written have page_desc.offset 0 (crash: PAGE_INCOMPLETE) */
export const DUMP_DH_COMPRESSED_INCOMPLETE = 0x8;
/** status: unused vmemmap pages were excluded (makedumpfile -e) */
export const DUMP_DH_EXCLUDED_VMEMMAP = 0x10;
export const DUMP_DH_COMPRESSED_ZSTD = 0x20;
/** The page codecs by flag, in the order write_kdump_pages_cyclic tries them. */
export const DUMP_DH_CODECS: readonly (readonly [flag: number, name: 'zlib' | 'lzo' | 'snappy' | 'zstd'])[] = [
  [DUMP_DH_COMPRESSED_ZLIB, 'zlib'],
  [DUMP_DH_COMPRESSED_LZO, 'lzo'],
  [DUMP_DH_COMPRESSED_SNAPPY, 'snappy'],
  [DUMP_DH_COMPRESSED_ZSTD, 'zstd'],
];
export const DUMP_DH_COMPRESSED_ANY = DUMP_DH_COMPRESSED_ZLIB | DUMP_DH_COMPRESSED_LZO | DUMP_DH_COMPRESSED_SNAPPY | DUMP_DH_COMPRESSED_ZSTD;

// ---- page_desc_t (diskdump_mod.h) ------------------------------------------------------------------
/** { off_t offset; unsigned int size; unsigned int flags; unsigned long long page_flags; } */
export const PD_OFFSET = 0;
export const PD_SIZE = 8;
export const PD_FLAGS = 12;
export const PD_PAGE_FLAGS = 16;
export const PAGE_DESC_SIZE = 24;
/** Pages crash keeps decoded (diskdump_mod.h DISKDUMP_CACHED_PAGES). */
export const DISKDUMP_CACHED_PAGES = 16;

// ---- makedumpfile's dump levels (makedumpfile.h DL_EXCLUDE_*) ------------------------------------
export const DL_EXCLUDE_ZERO = 0x1;
export const DL_EXCLUDE_CACHE = 0x2;
export const DL_EXCLUDE_CACHE_PRI = 0x4;
export const DL_EXCLUDE_USER_DATA = 0x8;
export const DL_EXCLUDE_FREE = 0x10;

// ---- the flattened format (makedumpfile.h; makedumpfile -F writes it, -R or makedumpfile-R.pl rearranges it)
/** makedumpfile_header.signature ("makedumpfile", NUL-padded to 16 bytes), then type and version as big-endian int64. */
export const MAKEDUMPFILE_SIGNATURE = 'makedumpfile';
export const SIZE_SIG_MDF = 16;
export const MDF_TYPE = 16;
export const MDF_VERSION = 24;
export const TYPE_FLAT_HEADER = 1;
export const VERSION_FLAT_HEADER = 1;
/** The header block is MAX_SIZE_MDF_HEADER bytes; then makedumpfile_data_header {int64 offset, buf_size} (big-endian) + data, … , {−1, −1}. */
export const MAX_SIZE_MDF_HEADER = 4096;
export const MAKEDUMPFILE_DATA_HEADER_SIZE = 16;
