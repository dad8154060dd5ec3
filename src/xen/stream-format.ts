// The save/migration stream wire format: xl's save-file header (tools/xl/xl.h), the libxl stream v2
// (libxl_sr_stream_format.h), and libxc's image, domain and record headers and record bodies
// (tools/libs/guest/xg_sr_stream_format.h; docs/specs/libxc-migration-stream.pandoc rev 3). Data only.
import { VCPU_CTRLREG3_OFFSET_64, hex } from './abi.js';

// ---- xl save file header (tools/xl/xl.h) ----------------------------------------------------------
/** savefileheader_magic: "Xen saved domain, xl format\n \0 \r" (32 bytes, no extra NUL). */
export const XL_MAGIC: Buffer = Buffer.from('Xen saved domain, xl format\n \0 \r', 'latin1');
/** struct save_file_header: magic[32] + byteorder, mandatory_flags, optional_flags, optional_data_len. */
export const XL_HEADER_SIZE = 48;
export const XL_OFF_BYTEORDER = 32;
export const XL_OFF_MANDATORY_FLAGS = 36;
export const XL_OFF_OPTIONAL_FLAGS = 40;
export const XL_OFF_OPTIONAL_DATA_LEN = 44;
/** SAVEFILE_BYTEORDER_VALUE, written in the saver's native order (04 03 02 01 on x86). */
export const SAVEFILE_BYTEORDER_VALUE = 0x01020304;
export const XL_MANDATORY_FLAG_JSON = 1 << 0;
export const XL_MANDATORY_FLAG_STREAMV2 = 1 << 1;
export const XL_MANDATORY_FLAG_ALL = XL_MANDATORY_FLAG_JSON | XL_MANDATORY_FLAG_STREAMV2;

// ---- libxl stream (libxl_sr_stream_format.h; big-endian header, native-endian records) ------------
/** "LibxlFmt" */
export const LIBXL_HDR_IDENT: Buffer = Buffer.from('LibxlFmt', 'latin1');
export const LIBXL_HDR_SIZE = 16;
export const LIBXL_HDR_VERSION = 2;
export const LIBXL_HDR_OFF_VERSION = 8;
export const LIBXL_HDR_OFF_OPTIONS = 12;
export const LIBXL_HDR_OPT_BIG_ENDIAN = 1 << 0;
export const LIBXL_HDR_OPT_LEGACY = 1 << 1;
export const LIBXL_HDR_OPT_RESERVED = 0xfffc;
export const LIBXL_REC_TYPE_END = 0;
export const LIBXL_REC_TYPE_LIBXC_CONTEXT = 1;
export const LIBXL_REC_TYPE_EMULATOR_XENSTORE_DATA = 2;
export const LIBXL_REC_TYPE_EMULATOR_CONTEXT = 3;
export const LIBXL_REC_TYPE_CHECKPOINT_END = 4;
export const LIBXL_REC_TYPE_CHECKPOINT_STATE = 5;
export const LIBXL_REC_NAMES = ['END', 'LIBXC_CONTEXT', 'EMULATOR_XENSTORE_DATA', 'EMULATOR_CONTEXT', 'CHECKPOINT_END', 'CHECKPOINT_STATE'];

// ---- libxc image / domain / record headers (xg_sr_stream_format.h) --------------------------------
/** struct xc_sr_ihdr (big-endian): marker u64, id u32, version u32, options u16, _res1 u16, _res2 u32. */
export const IHDR_SIZE = 24;
export const IHDR_MARKER_BYTES = 8;
export const IHDR_OFF_ID = 8;
export const IHDR_OFF_VERSION = 12;
export const IHDR_OFF_OPTIONS = 16;
export const IHDR_OFF_RES1 = 18;
export const IHDR_OFF_RES2 = 20;
/** IHDR_ID: "XENF" */
export const IHDR_ID = 0x58454e46;
export const IHDR_VERSION_MIN = 2;
export const IHDR_VERSION_MAX = 3;
/** Stream version 3 adds STATIC_DATA_END and the CPU policy records (Xen 4.14+). */
export const IHDR_VERSION_STATIC_DATA = 3;
export const IHDR_OPT_BIG_ENDIAN = 1 << 0;
export const IHDR_OPT_RESERVED = 0xfffe;
/** struct xc_sr_dhdr: type u32, page_shift u16, _res1 u16, xen_major u32, xen_minor u32. */
export const DHDR_SIZE = 16;
export const DHDR_OFF_PAGE_SHIFT = 4;
export const DHDR_OFF_RES1 = 6;
export const DHDR_OFF_XEN_MAJOR = 8;
export const DHDR_OFF_XEN_MINOR = 12;
export const DHDR_TYPE_X86_PV = 1;
export const DHDR_TYPE_X86_HVM = 2;
/** struct xc_sr_rhdr: type u32, length u32; bodies are padded to REC_ALIGN. */
export const RHDR_SIZE = 8;
export const REC_ALIGN = 8;
/** REC_LENGTH_MAX: "somewhat arbitrary - 128MB". */
export const REC_LENGTH_MAX = 128 * 1024 * 1024;

export const REC_TYPE_END = 0x00;
export const REC_TYPE_PAGE_DATA = 0x01;
export const REC_TYPE_X86_PV_INFO = 0x02;
export const REC_TYPE_X86_PV_P2M_FRAMES = 0x03;
export const REC_TYPE_X86_PV_VCPU_BASIC = 0x04;
export const REC_TYPE_X86_PV_VCPU_EXTENDED = 0x05;
export const REC_TYPE_X86_PV_VCPU_XSAVE = 0x06;
export const REC_TYPE_SHARED_INFO = 0x07;
export const REC_TYPE_X86_TSC_INFO = 0x08;
export const REC_TYPE_HVM_CONTEXT = 0x09;
export const REC_TYPE_HVM_PARAMS = 0x0a;
export const REC_TYPE_TOOLSTACK = 0x0b;
export const REC_TYPE_X86_PV_VCPU_MSRS = 0x0c;
export const REC_TYPE_VERIFY = 0x0d;
export const REC_TYPE_CHECKPOINT = 0x0e;
export const REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST = 0x0f;
export const REC_TYPE_STATIC_DATA_END = 0x10;
export const REC_TYPE_X86_CPUID_POLICY = 0x11;
export const REC_TYPE_X86_MSR_POLICY = 0x12;
/** Bit 31 of a record type: the record may be skipped by a reader that does not know it. */
export const REC_TYPE_OPTIONAL = 0x80000000;

export const REC_TYPE_NAMES: readonly string[] = [
  'END',
  'PAGE_DATA',
  'X86_PV_INFO',
  'X86_PV_P2M_FRAMES',
  'X86_PV_VCPU_BASIC',
  'X86_PV_VCPU_EXTENDED',
  'X86_PV_VCPU_XSAVE',
  'SHARED_INFO',
  'X86_TSC_INFO',
  'HVM_CONTEXT',
  'HVM_PARAMS',
  'TOOLSTACK',
  'X86_PV_VCPU_MSRS',
  'VERIFY',
  'CHECKPOINT',
  'CHECKPOINT_DIRTY_PFN_LIST',
  'STATIC_DATA_END',
  'X86_CPUID_POLICY',
  'X86_MSR_POLICY',
];

/** Name of a libxc record type for messages. */
export function recordName(type: number): string {
  const base = REC_TYPE_NAMES[type];
  if (base !== undefined) return base;
  const opt = (type & REC_TYPE_OPTIONAL) !== 0 ? 'optional ' : '';
  return `${opt}type ${hex(type >>> 0)}`;
}

// ---- record bodies ---------------------------------------------------------------------------------
/** PAGE_DATA header: count u32, _res1 u32, then count u64 pfn words. */
export const PAGE_DATA_HDR_SIZE = 8;
export const PFN_WORD_SIZE = 8;
/**
 * A pfn word, seen as its high u32: bits 0–19 = pfn bits 32–51 (PAGE_DATA_PFN_MASK), bits 20–27 reserved,
 * bits 28–31 = the type (PAGE_DATA_TYPE_MASK: XEN_DOMCTL_PFINFO_* >> 28).
 */
export const PFN_WORD_HI_PFN_MASK = 0x000fffff;
export const PFN_WORD_HI_RESERVED_MASK = 0x0ff00000;
export const PFN_WORD_TYPE_SHIFT = 28;
/** XEN_DOMCTL_PFINFO_* (xen/include/public/domctl.h) as the 4-bit type nibble. */
export const PFINFO_NOTAB = 0x0;
export const PFINFO_L1TAB = 0x1;
export const PFINFO_L2TAB = 0x2;
export const PFINFO_L3TAB = 0x3;
export const PFINFO_L4TAB = 0x4;
/** XEN_DOMCTL_PFINFO_LTABTYPE_MASK and the pinned bit (LPINTAB). */
export const PFINFO_LTABTYPE_MASK = 0x7;
export const PFINFO_LPINTAB = 0x8;
export const PFINFO_BROKEN = 0xd;
export const PFINFO_XALLOC = 0xe;
export const PFINFO_XTAB = 0xf;
/** Nibbles 5–8 (a type field of 5..7, or pinned NOTAB) are not XEN_DOMCTL_PFINFO values. */
export const PFINFO_INVALID_FIRST = 0x5;
export const PFINFO_INVALID_LAST = 0x8;

/** Whether a PAGE_DATA entry of this type carries 4096 bytes (NOTAB and L1–L4, pinned or not). */
export function typeHasData(nibble: number): boolean {
  return nibble < PFINFO_INVALID_FIRST || (nibble > PFINFO_INVALID_LAST && nibble < PFINFO_BROKEN);
}

/** X86_PV_INFO: guest_width u8, pt_levels u8, 6 reserved bytes. */
export const X86_PV_INFO_SIZE = 8;
export const GUEST_WIDTH_32 = 4;
export const GUEST_WIDTH_64 = 8;
export const PT_LEVELS_32 = 3;
export const PT_LEVELS_64 = 4;
/** X86_PV_P2M_FRAMES: p2m_start_pfn u32, p2m_end_pfn u32 (inclusive), then u64 pfns. */
export const P2M_FRAMES_HDR_SIZE = 8;
/** X86_PV_VCPU_*: vcpu_id u32, _res1 u32, then the blob. */
export const VCPU_HDR_SIZE = 8;
/** Largest X86_PV_VCPU_EXTENDED blob restore accepts (xen_domctl_ext_vcpucontext). */
export const VCPU_EXTENDED_MAX = 128;
/** Smallest X86_PV_VCPU_XSAVE blob restore accepts (xcr0 + xcr0_accum). */
export const VCPU_XSAVE_MIN = 16;
/** One xen_domctl_vcpu_msr_t {index u32, reserved u32, value u64}. */
export const VCPU_MSR_ENTRY_SIZE = 16;
/** struct vcpu_guest_context (x86_64): flags @512, user_regs @520 (rdx is its 13th u64), ctrlreg[1] @4992. */
export const VCPU_FLAGS_OFFSET_64 = 512;
export const VCPU_USER_REGS_OFFSET_64 = 520;
export const VCPU_RDX_OFFSET_64 = VCPU_USER_REGS_OFFSET_64 + 12 * 8;
export const VCPU_CTRLREG1_OFFSET_64 = VCPU_CTRLREG3_OFFSET_64 - 2 * 8;
/** X86_TSC_INFO: mode u32, khz u32, nsec u64, incarnation u32, _res1 u32. */
export const X86_TSC_INFO_SIZE = 24;
export const X86_TSC_INFO_OFF_RES = 20;
/** X86_CPUID_POLICY entries (xen_cpuid_leaf_t) and X86_MSR_POLICY entries (xen_msr_entry_t). */
export const CPUID_LEAF_SIZE = 24;
export const MSR_ENTRY_SIZE = 16;
