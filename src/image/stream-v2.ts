// Reader of `xl save` files and bare libxc migration streams v2/v3, following xen-project/xen
// docs/specs/libxc-migration-stream.pandoc (rev 3), docs/specs/libxl-migration-stream.pandoc (rev 2),
// tools/libs/guest/xg_sr_stream_format.h, xg_sr_restore.c, xg_sr_restore_x86_pv.c and tools/xl/xl.h
// (RELEASE-4.17.0 … RELEASE-4.22.0; docs/spec-notes/stream-v2.md).
//
// One pass over the record headers with positional reads (a save file can be tens of GiB, it is never
// read whole): PAGE_DATA records contribute their pfn arrays (read in 64 KiB chunks) to an index
// pfn → file offset of the page's 4096 bytes, kept in typed arrays; the few small records the views
// need (X86_PV_INFO, X86_PV_P2M_FRAMES, SHARED_INFO, vCPU 0's X86_PV_VCPU_BASIC) are read; every other
// record is checked and skipped. Every length is validated against REC_LENGTH_MAX and the file size
// before anything it names is allocated. Frames are pfns: page tables are normalised by the saver,
// p2m leaf pages still hold the source host's mfns.
import * as fs from 'node:fs';
import { findSorted, readAt, openReadOnly, FrameFile } from './file-io.js';
import { PAGE_SHIFT, PAGE_SIZE, SIZEOF_VCPU_GUEST_CONTEXT_64, VCPU_CTRLREG3_OFFSET_64, hex } from '../xen/abi.js';
import type { ArchSharedInfo, GuestImage, ImageFormat, SymbolTable } from './guest-image.js';
import { archOf, InputError } from './guest-image.js';

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
const LIBXL_REC_NAMES = ['END', 'LIBXC_CONTEXT', 'EMULATOR_XENSTORE_DATA', 'EMULATOR_CONTEXT', 'CHECKPOINT_END', 'CHECKPOINT_STATE'];

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

// ---- index codes -------------------------------------------------------------------------------------
/** frameCode(pfn) values that are not file offsets: the pfn is not in the stream, or carries no data. */
export const FRAME_ABSENT = -1;
export const FRAME_XTAB = -2;
export const FRAME_BROKEN = -3;
export const FRAME_XALLOC = -4;
/** Type byte for a pfn that is not in the stream. */
export const NO_TYPE = 0xff;

function codeOfNoDataType(nibble: number): number {
  if (nibble === PFINFO_XTAB) return FRAME_XTAB;
  if (nibble === PFINFO_BROKEN) return FRAME_BROKEN;
  return FRAME_XALLOC;
}

// ---- detection -----------------------------------------------------------------------------------------
export function isXlSave(head: Buffer): boolean {
  return head.length >= XL_MAGIC.length && head.subarray(0, XL_MAGIC.length).equals(XL_MAGIC);
}

/** A bare libxc stream: marker ~0 (8 bytes of 0xff) then "XENF". */
export function isLibxcStream(head: Buffer): boolean {
  if (head.length < IHDR_OFF_ID + 4) return false;
  for (let i = 0; i < IHDR_MARKER_BYTES; i++) if (head[i] !== 0xff) return false;
  return head.readUInt32BE(IHDR_OFF_ID) === IHDR_ID;
}

// ---- small helpers -------------------------------------------------------------------------------------
const WORD_SCALE = 2 ** 32;
/** High words above this make a u64 larger than 2^53 (not a safe JS number). */
const SAFE_HI_MAX = Math.floor(Number.MAX_SAFE_INTEGER / WORD_SCALE);
/** pfn words read per positional read of a PAGE_DATA pfn array / P2M_FRAMES list (64 KiB). */
const CHUNK_ENTRIES = 8192;
const INITIAL_LOG_ENTRIES = 65536;
/** Initial capacity of the run log (grows by doubling). */
const INITIAL_RUNS = 4096;
/** A direct pfn-indexed table is used when it is at most this many times the entries (or tiny). */
const DENSE_FACTOR = 4;
const DENSE_MIN_PFNS = 1 << 20;
/** Bytes of a padding run (at most REC_ALIGN − 1). */
const ZERO_PAD = Buffer.alloc(REC_ALIGN);

function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

// ---- the pfn index -------------------------------------------------------------------------------------
/** Append-only log of PAGE_DATA entries in stream order: pfn, location code, type nibble. */
class PfnLog {
  pfn = new Float64Array(INITIAL_LOG_ENTRIES);
  loc = new Float64Array(INITIAL_LOG_ENTRIES);
  type = new Uint8Array(INITIAL_LOG_ENTRIES);
  n = 0;
  maxPfn = -1;

  push(pfn: number, loc: number, type: number): void {
    if (this.n === this.pfn.length) {
      const cap = this.pfn.length * 2;
      const p = new Float64Array(cap);
      p.set(this.pfn);
      const l = new Float64Array(cap);
      l.set(this.loc);
      const t = new Uint8Array(cap);
      t.set(this.type);
      this.pfn = p;
      this.loc = l;
      this.type = t;
    }
    this.pfn[this.n] = pfn;
    this.loc[this.n] = loc;
    this.type[this.n] = type;
    this.n++;
    if (pfn > this.maxPfn) this.maxPfn = pfn;
  }
}

/** Counts over the final index (each pfn once, its last PAGE_DATA entry). */
export interface StreamCounts {
  /** libxc records read (END included) */
  records: number;
  pageDataRecords: number;
  /** pfn entries in all PAGE_DATA records */
  pfnEntries: number;
  /** distinct pfns in the stream */
  pfns: number;
  /** distinct pfns whose last entry carries data */
  withData: number;
  xtab: number;
  broken: number;
  xalloc: number;
  /** entries overridden by a later entry for the same pfn */
  overridden: number;
  /** distinct pfns whose last entry is a page table (L1–L4, pinned or not) */
  pageTables: number;
}

/**
 * The PAGE_DATA log as runs: consecutive pfns of one type whose data pages follow each other in the file (or
 * share one no-data code). A non-live save of a 64 GiB guest is ~16k runs instead of 16M entries.
 */
class RunLog {
  first = new Float64Array(INITIAL_RUNS);
  count = new Float64Array(INITIAL_RUNS);
  loc = new Float64Array(INITIAL_RUNS);
  type = new Uint8Array(INITIAL_RUNS);
  n = 0;
  entries = 0;
  maxPfn = -1;

  push(pfn: number, loc: number, type: number): void {
    this.entries++;
    if (pfn > this.maxPfn) this.maxPfn = pfn;
    const r = this.n - 1;
    if (r >= 0 && this.type[r] === type && this.first[r]! + this.count[r]! === pfn) {
      const l = this.loc[r]!;
      const next = l >= 0 ? l + this.count[r]! * PAGE_SIZE : l;
      if (next === loc) {
        this.count[r]!++;
        return;
      }
    }
    if (this.n === this.first.length) {
      const grow = <T extends Float64Array | Uint8Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.first = grow(this.first);
      this.count = grow(this.count);
      this.loc = grow(this.loc);
      this.type = grow(this.type);
    }
    this.first[this.n] = pfn;
    this.count[this.n] = 1;
    this.loc[this.n] = loc;
    this.type[this.n] = type;
    this.n++;
  }

  /** Runs ascending and disjoint: every pfn appears once (a non-live save). */
  disjointAscending(): boolean {
    for (let r = 1; r < this.n; r++) if (this.first[r]! < this.first[r - 1]! + this.count[r - 1]!) return false;
    return true;
  }

  /** Expand into a per-pfn log (streams that repeat pfns: live migration passes). */
  expand(): PfnLog {
    const log = new PfnLog();
    for (let r = 0; r < this.n; r++) {
      const l = this.loc[r]!;
      for (let k = 0; k < this.count[r]!; k++) log.push(this.first[r]! + k, l >= 0 ? l + k * PAGE_SIZE : l, this.type[r]!);
    }
    return log;
  }
}

/** pfn → location over disjoint ascending runs (binary search on the run starts). */
class RunIndex {
  constructor(private readonly runs: RunLog) {}

  private find(pfn: number): number {
    const f = this.runs.first;
    let lo = 0;
    let hi = this.runs.n - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (pfn < f[mid]!) hi = mid - 1;
      else if (pfn >= f[mid]! + this.runs.count[mid]!) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  loc(pfn: number): number {
    if (!Number.isInteger(pfn) || pfn < 0) return FRAME_ABSENT;
    const r = this.find(pfn);
    if (r < 0) return FRAME_ABSENT;
    const l = this.runs.loc[r]!;
    return l >= 0 ? l + (pfn - this.runs.first[r]!) * PAGE_SIZE : l;
  }

  type(pfn: number): number {
    if (!Number.isInteger(pfn) || pfn < 0) return NO_TYPE;
    const r = this.find(pfn);
    return r < 0 ? NO_TYPE : this.runs.type[r]!;
  }

  get counts(): Omit<StreamCounts, 'records' | 'pageDataRecords'> {
    const c = { pfnEntries: this.runs.entries, pfns: this.runs.entries, withData: 0, xtab: 0, broken: 0, xalloc: 0, overridden: 0, pageTables: 0 };
    for (let r = 0; r < this.runs.n; r++) {
      const n = this.runs.count[r]!;
      const l = this.runs.loc[r]!;
      const t = this.runs.type[r]!;
      if (l >= 0) {
        c.withData += n;
        if ((t & PFINFO_LTABTYPE_MASK) !== PFINFO_NOTAB) c.pageTables += n;
      } else if (l === FRAME_XTAB) c.xtab += n;
      else if (l === FRAME_BROKEN) c.broken += n;
      else if (l === FRAME_XALLOC) c.xalloc += n;
    }
    return c;
  }
}

/** What the image needs of a pfn index. */
interface PfnLookup {
  loc(pfn: number): number;
  type(pfn: number): number;
  readonly counts: Omit<StreamCounts, 'records' | 'pageDataRecords'>;
}

/** pfn → location lookup: a direct table when the pfns are dense, else sorted arrays (binary search). */
class PfnIndex {
  private dense: { loc: Float64Array; type: Uint8Array } | null = null;
  private sorted: { pfn: Float64Array; loc: Float64Array; type: Uint8Array } | null = null;
  readonly counts: Omit<StreamCounts, 'records' | 'pageDataRecords'>;

  constructor(log: PfnLog) {
    const n = log.n;
    const span = log.maxPfn + 1;
    let uniq = 0;
    if (span <= Math.max(DENSE_MIN_PFNS, DENSE_FACTOR * n)) {
      const loc = new Float64Array(span).fill(FRAME_ABSENT);
      const type = new Uint8Array(span).fill(NO_TYPE);
      for (let i = 0; i < n; i++) {
        const p = log.pfn[i]!;
        if (type[p] === NO_TYPE) uniq++;
        loc[p] = log.loc[i]!;
        type[p] = log.type[i]!;
      }
      this.dense = { loc, type };
    } else {
      // stable order by (pfn, position in stream); the last entry of each pfn wins
      const order = new Uint32Array(n);
      for (let i = 0; i < n; i++) order[i] = i;
      const pf = log.pfn;
      order.sort((a, b) => pf[a]! - pf[b]! || a - b);
      const sp = new Float64Array(n);
      const sl = new Float64Array(n);
      const st = new Uint8Array(n);
      for (let k = 0; k < n; k++) {
        const i = order[k]!;
        if (uniq > 0 && sp[uniq - 1] === pf[i]) {
          sl[uniq - 1] = log.loc[i]!;
          st[uniq - 1] = log.type[i]!;
        } else {
          sp[uniq] = pf[i]!;
          sl[uniq] = log.loc[i]!;
          st[uniq] = log.type[i]!;
          uniq++;
        }
      }
      this.sorted = { pfn: sp.slice(0, uniq), loc: sl.slice(0, uniq), type: st.slice(0, uniq) };
    }
    const c = { pfnEntries: n, pfns: uniq, withData: 0, xtab: 0, broken: 0, xalloc: 0, overridden: n - uniq, pageTables: 0 };
    const tally = (loc: number, type: number): void => {
      if (type === NO_TYPE) return;
      if (loc >= 0) {
        c.withData++;
        if ((type & PFINFO_LTABTYPE_MASK) !== PFINFO_NOTAB) c.pageTables++;
      } else if (loc === FRAME_XTAB) c.xtab++;
      else if (loc === FRAME_BROKEN) c.broken++;
      else if (loc === FRAME_XALLOC) c.xalloc++;
    };
    if (this.dense) for (let p = 0; p < this.dense.loc.length; p++) tally(this.dense.loc[p]!, this.dense.type[p]!);
    else for (let k = 0; k < this.sorted!.pfn.length; k++) tally(this.sorted!.loc[k]!, this.sorted!.type[k]!);
    this.counts = c;
  }

  private find(pfn: number): number {
    return findSorted(this.sorted!.pfn, pfn);
  }

  loc(pfn: number): number {
    if (!Number.isInteger(pfn) || pfn < 0) return FRAME_ABSENT;
    if (this.dense) return pfn < this.dense.loc.length ? this.dense.loc[pfn]! : FRAME_ABSENT;
    const k = this.find(pfn);
    return k < 0 ? FRAME_ABSENT : this.sorted!.loc[k]!;
  }

  type(pfn: number): number {
    if (!Number.isInteger(pfn) || pfn < 0) return NO_TYPE;
    if (this.dense) return pfn < this.dense.type.length ? this.dense.type[pfn]! : NO_TYPE;
    const k = this.find(pfn);
    return k < 0 ? NO_TYPE : this.sorted!.type[k]!;
  }
}

// ---- the image ------------------------------------------------------------------------------------------
/** X86_PV_P2M_FRAMES as restore assembles it: leafPfns[k] is the page holding p2m[(start/fpp + k)·fpp …]. */
export interface SavedP2m {
  startPfn: number;
  endPfn: number;
  leafPfns: Float64Array;
}

export interface XlHeaderInfo {
  mandatoryFlags: number;
  optionalFlags: number;
  optionalDataLength: number;
  /** libxl header options (bit 1: converted from a legacy stream) */
  libxlOptions: number;
}

export interface StreamFacts {
  /** stream version from the image header (2 or 3) */
  version: number;
  xenMajor: number;
  xenMinor: number;
  ptLevels: number;
  /** file offset of the libxc image header */
  libxcOffset: number;
  /** file offset just past the libxc END (or last CHECKPOINT) record */
  libxcEnd: number;
  xl: XlHeaderInfo | null;
  /** vCPU ids that sent an X86_PV_VCPU_BASIC record */
  vcpus: number[];
  /** vCPU 0's user_regs.rdx: the start_info pfn (the saver's suspend-record conversion) */
  startInfoPfn: number;
  /** the stream ended with CHECKPOINT (Remus/COLO) instead of END */
  checkpointed: boolean;
  /** optional records skipped, by type */
  skippedOptional: number[];
  /** bytes after the end of the outermost stream */
  trailingBytes: number;
}

/** A save stream opened for reading: a GuestImage in pfn space. */
export class StreamImage implements GuestImage {
  readonly frameSpace = 'pfn' as const;
  readonly bootFacts = null;
  readonly arch: ArchSharedInfo;
  private readonly file: FrameFile;

  constructor(
    readonly path: string,
    fd: number,
    readonly format: ImageFormat,
    readonly guestWidth: number,
    readonly sharedInfo: Buffer | null,
    readonly cr3: bigint,
    readonly symbols: SymbolTable,
    /** highest pfn named by any PAGE_DATA entry */
    readonly maxFrame: number,
    readonly savedP2m: SavedP2m | null,
    private readonly index: PfnLookup,
    readonly counts: StreamCounts,
    readonly facts: StreamFacts,
  ) {
    this.file = new FrameFile(path, fd);
    this.arch = archOf(sharedInfo);
  }

  /** File offset of the pfn's data (≥ 0), or FRAME_ABSENT / FRAME_XTAB / FRAME_BROKEN / FRAME_XALLOC. */
  frameCode(pfn: number): number {
    return this.index.loc(pfn);
  }

  /** The XEN_DOMCTL_PFINFO_* nibble the stream gives the pfn (last entry), or NO_TYPE when absent. */
  pageType(pfn: number): number {
    return this.index.type(pfn);
  }

  frameOffset(pfn: number): number {
    const loc = this.index.loc(pfn);
    return loc >= 0 ? loc : -1;
  }

  /** The page's bytes in a buffer owned by this image (overwritten by the next call), or null. */
  readFrame(pfn: number): Buffer | null {
    return this.file.readFrame(this.frameOffset(pfn), `page of pfn ${hex(pfn)}`);
  }

  frameCount(): number {
    return this.counts.withData;
  }

  close(): void {
    this.file.close();
  }
}

// ---- the parser -----------------------------------------------------------------------------------------
interface P2mPiece {
  start: number;
  end: number;
  startLeaf: number;
  pfns: Float64Array;
}

class StreamParser {
  private readonly hdr = Buffer.alloc(RHDR_SIZE);
  private readonly chunk = Buffer.alloc(CHUNK_ENTRIES * PFN_WORD_SIZE);
  readonly log = new RunLog();
  records = 0;
  pageDataRecords = 0;
  version = 0;
  xenMajor = 0;
  xenMinor = 0;
  width = 0;
  levels = 0;
  seenPvInfo = false;
  seenStaticDataEnd = false;
  /** restore's max_pfn: grown only by X86_PV_P2M_FRAMES (expand_p2m) */
  restoreMaxPfn = 0;
  p2m: P2mPiece | null = null;
  sharedInfo: Buffer | null = null;
  cr3: bigint | null = null;
  startInfoPfn = -1;
  readonly vcpus = new Set<number>();
  checkpointed = false;
  libxcEnd = -1;
  readonly skippedOptional: number[] = [];

  constructor(
    readonly path: string,
    readonly fd: number,
    readonly size: number,
  ) {}

  fail(off: number, msg: string): never {
    throw new InputError(`${this.path}: offset ${off}: ${msg}`);
  }

  /** Read exactly `length` bytes at `off` into a fresh or given buffer; a short file is an error. */
  read(off: number, length: number, what: string, into?: Buffer): Buffer {
    if (off + length > this.size) {
      this.fail(off, `${what} (${length} bytes) runs past the end of the file (${this.size} bytes); the file is truncated`);
    }
    const buf = into ?? Buffer.alloc(length);
    const n = readAt(this.fd, buf, off, length);
    if (n !== length) this.fail(off, `${what}: read ${n} of ${length} bytes`);
    return buf;
  }

  // ---- xl / libxl wrapper ------------------------------------------------------------------
  parseXl(): { libxcOffset: number; end: number; xl: XlHeaderInfo } {
    const h = this.read(0, Math.min(this.size, XL_HEADER_SIZE), 'xl header');
    if (!isXlSave(h)) this.fail(0, `expected the xl save magic "Xen saved domain, xl format\\n \\0 \\r"`);
    if (h.length < XL_HEADER_SIZE) this.fail(0, `xl header needs ${XL_HEADER_SIZE} bytes, the file has ${this.size}`);
    const byteorder = h.readUInt32LE(XL_OFF_BYTEORDER);
    if (byteorder !== SAVEFILE_BYTEORDER_VALUE) {
      const be = h.readUInt32BE(XL_OFF_BYTEORDER) === SAVEFILE_BYTEORDER_VALUE;
      this.fail(XL_OFF_BYTEORDER, `xl byteorder ${hex(byteorder)}, expected ${hex(SAVEFILE_BYTEORDER_VALUE)} written little-endian${be ? ' (this file is big-endian)' : ''}`);
    }
    const mandatory = h.readUInt32LE(XL_OFF_MANDATORY_FLAGS);
    if ((mandatory & ~XL_MANDATORY_FLAG_ALL) !== 0) {
      this.fail(XL_OFF_MANDATORY_FLAGS, `unknown xl mandatory flags ${hex(mandatory & ~XL_MANDATORY_FLAG_ALL)} (known: JSON config ${XL_MANDATORY_FLAG_JSON}, stream v2 ${XL_MANDATORY_FLAG_STREAMV2})`);
    }
    if ((mandatory & XL_MANDATORY_FLAG_STREAMV2) === 0) {
      this.fail(XL_OFF_MANDATORY_FLAGS, 'legacy (pre-v2, Xen ≤ 4.5) save stream: mandatory flag STREAMv2 is not set; convert it with convert-legacy-stream first');
    }
    const optionalFlags = h.readUInt32LE(XL_OFF_OPTIONAL_FLAGS);
    const optLen = h.readUInt32LE(XL_OFF_OPTIONAL_DATA_LEN);
    if (XL_HEADER_SIZE + optLen > this.size) {
      this.fail(XL_OFF_OPTIONAL_DATA_LEN, `optional data length ${optLen} runs past the end of the file (${this.size} bytes)`);
    }
    let off = XL_HEADER_SIZE + optLen;
    const lh = this.read(off, LIBXL_HDR_SIZE, 'libxl stream header');
    if (!lh.subarray(0, LIBXL_HDR_IDENT.length).equals(LIBXL_HDR_IDENT)) {
      this.fail(off, `expected the libxl header ident "LibxlFmt", found 0x${lh.subarray(0, LIBXL_HDR_IDENT.length).toString('hex')}`);
    }
    const lver = lh.readUInt32BE(LIBXL_HDR_OFF_VERSION);
    if (lver !== LIBXL_HDR_VERSION) this.fail(off + LIBXL_HDR_OFF_VERSION, `libxl stream version ${lver}, expected ${LIBXL_HDR_VERSION}`);
    const lopt = lh.readUInt32BE(LIBXL_HDR_OFF_OPTIONS);
    if (lopt & LIBXL_HDR_OPT_BIG_ENDIAN) this.fail(off + LIBXL_HDR_OFF_OPTIONS, 'big-endian libxl stream: no Xen tool writes or restores those');
    if (lopt & LIBXL_HDR_OPT_RESERVED) this.fail(off + LIBXL_HDR_OFF_OPTIONS, `reserved libxl header option bits ${hex(lopt & LIBXL_HDR_OPT_RESERVED)} are set`);
    off += LIBXL_HDR_SIZE;

    let libxcOffset = -1;
    for (;;) {
      const at = off;
      const rh = this.read(at, RHDR_SIZE, 'libxl record header', this.hdr);
      const type = rh.readUInt32LE(0);
      const length = rh.readUInt32LE(4);
      const name = LIBXL_REC_NAMES[type] ?? `type ${hex(type)}`;
      if (type >= LIBXL_REC_NAMES.length) this.fail(at, `unknown libxl record type ${hex(type)} (known 0–${LIBXL_REC_NAMES.length - 1})`);
      const padded = alignUp(length, REC_ALIGN);
      if (at + RHDR_SIZE + padded > this.size) {
        this.fail(at, `libxl record ${name}: body of ${length} bytes (${padded} padded) runs past the end of the file (${this.size} bytes)`);
      }
      this.checkPadding(at + RHDR_SIZE + length, padded - length, `libxl record ${name}`);
      off = at + RHDR_SIZE + padded;
      if (type === LIBXL_REC_TYPE_END) {
        if (length !== 0) this.fail(at, `libxl END record has length ${length}, expected 0`);
        if (libxcOffset < 0) this.fail(at, 'libxl END before any LIBXC_CONTEXT record: the file holds no domain memory');
        return { libxcOffset, end: off, xl: { mandatoryFlags: mandatory, optionalFlags, optionalDataLength: optLen, libxlOptions: lopt } };
      }
      if (type === LIBXL_REC_TYPE_LIBXC_CONTEXT) {
        if (length !== 0) this.fail(at, `libxl LIBXC_CONTEXT record has length ${length}, expected 0 (the libxc stream follows it)`);
        if (libxcOffset >= 0) this.fail(at, 'a second LIBXC_CONTEXT record (checkpointed libxl streams are not supported)');
        libxcOffset = off;
        off = this.parseLibxc(off);
        this.libxcEnd = off;
        if (this.checkpointed) this.fail(off, 'the libxc stream inside a libxl stream ended with CHECKPOINT (checkpointed streams are not supported here)');
      }
      // EMULATOR_* / CHECKPOINT_* records: checked for framing above, content not needed
    }
  }

  checkPadding(off: number, n: number, what: string): void {
    if (n === 0) return;
    const pad = this.read(off, n, `${what} padding`);
    if (!pad.equals(ZERO_PAD.subarray(0, n))) this.fail(off, `${what}: padding to ${REC_ALIGN} bytes is not all zero (0x${pad.toString('hex')})`);
  }

  // ---- libxc stream ----------------------------------------------------------------------------
  /** Parse a libxc stream starting at `base`; returns the offset just past its last record. */
  parseLibxc(base: number): number {
    const ih = this.read(base, IHDR_SIZE, 'libxc image header');
    for (let i = 0; i < IHDR_MARKER_BYTES; i++) {
      if (ih[i] !== 0xff) {
        const legacy = ' (a legacy pre-v2 stream has a zero bit here)';
        this.fail(base, `image header marker 0x${ih.subarray(0, IHDR_MARKER_BYTES).toString('hex')}, expected 0xffffffffffffffff${legacy}`);
      }
    }
    const id = ih.readUInt32BE(IHDR_OFF_ID);
    if (id !== IHDR_ID) this.fail(base + IHDR_OFF_ID, `image header id ${hex(id)}, expected ${hex(IHDR_ID)} ("XENF")`);
    const version = ih.readUInt32BE(IHDR_OFF_VERSION);
    if (version < IHDR_VERSION_MIN || version > IHDR_VERSION_MAX) {
      this.fail(base + IHDR_OFF_VERSION, `stream version ${version}, expected ${IHDR_VERSION_MIN}..${IHDR_VERSION_MAX}`);
    }
    const options = ih.readUInt16BE(IHDR_OFF_OPTIONS);
    if (options & IHDR_OPT_BIG_ENDIAN) this.fail(base + IHDR_OFF_OPTIONS, 'big-endian stream (options bit 0): restore refuses those');
    if (options & IHDR_OPT_RESERVED) this.fail(base + IHDR_OFF_OPTIONS, `reserved image header option bits ${hex(options & IHDR_OPT_RESERVED)} are set`);
    if (ih.readUInt16BE(IHDR_OFF_RES1) !== 0 || ih.readUInt32BE(IHDR_OFF_RES2) !== 0) {
      this.fail(base + IHDR_OFF_RES1, 'reserved image header fields are not zero');
    }
    this.version = version;

    const dOff = base + IHDR_SIZE;
    const dh = this.read(dOff, DHDR_SIZE, 'libxc domain header');
    const dtype = dh.readUInt32LE(0);
    if (dtype === DHDR_TYPE_X86_HVM) throw new InputError(`${this.path}: offset ${dOff}: domain type 2 (x86 HVM): HVM guests are not supported (only x86 PV guests have a P2M to audit)`);
    if (dtype !== DHDR_TYPE_X86_PV) this.fail(dOff, `domain type ${dtype}, expected ${DHDR_TYPE_X86_PV} (x86 PV)`);
    const pageShift = dh.readUInt16LE(DHDR_OFF_PAGE_SHIFT);
    if (pageShift !== PAGE_SHIFT) this.fail(dOff + DHDR_OFF_PAGE_SHIFT, `page_shift ${pageShift}, expected ${PAGE_SHIFT}`);
    if (dh.readUInt16LE(DHDR_OFF_RES1) !== 0) this.fail(dOff + DHDR_OFF_RES1, 'reserved domain header field is not zero');
    this.xenMajor = dh.readUInt32LE(DHDR_OFF_XEN_MAJOR);
    this.xenMinor = dh.readUInt32LE(DHDR_OFF_XEN_MINOR);

    let off = dOff + DHDR_SIZE;
    for (;;) {
      if (off === this.size && this.checkpointed) return off; // a checkpointed stream stops after CHECKPOINT
      const at = off;
      const rh = this.read(at, RHDR_SIZE, 'record header (the stream has no END record)', this.hdr);
      const type = rh.readUInt32LE(0);
      const length = rh.readUInt32LE(4);
      const name = recordName(type);
      if (length > REC_LENGTH_MAX) this.fail(at, `record ${name} length ${length} exceeds REC_LENGTH_MAX (${REC_LENGTH_MAX} = 128 MiB)`);
      const padded = alignUp(length, REC_ALIGN);
      const body = at + RHDR_SIZE;
      if (body + padded > this.size) {
        this.fail(at, `record ${name}: body of ${length} bytes (${padded} padded) runs past the end of the file (${this.size} bytes); the file is truncated`);
      }
      this.checkPadding(body + length, padded - length, `record ${name}`);
      this.records++;
      this.checkpointed = false;
      off = body + padded;
      if (this.record(type, length, at, body)) return off;
    }
  }

  /** Handle one record; returns true at the end of the stream. */
  private record(type: number, length: number, at: number, body: number): boolean {
    const name = recordName(type);
    const empty = (): void => {
      if (length !== 0) this.fail(at, `${name} record has length ${length}, expected 0`);
    };
    const needV3 = (): void => {
      if (this.version < IHDR_VERSION_STATIC_DATA) this.fail(at, `${name} record in a version ${this.version} stream (it exists from version ${IHDR_VERSION_STATIC_DATA})`);
    };
    switch (type) {
      case REC_TYPE_END:
        empty();
        return true;
      case REC_TYPE_PAGE_DATA:
        this.pageData(length, at, body);
        return false;
      case REC_TYPE_X86_PV_INFO:
        this.pvInfo(length, at, body);
        return false;
      case REC_TYPE_X86_PV_P2M_FRAMES:
        this.p2mFrames(length, at, body);
        return false;
      case REC_TYPE_X86_PV_VCPU_BASIC:
      case REC_TYPE_X86_PV_VCPU_EXTENDED:
      case REC_TYPE_X86_PV_VCPU_XSAVE:
      case REC_TYPE_X86_PV_VCPU_MSRS:
        this.vcpu(type, length, at, body);
        return false;
      case REC_TYPE_SHARED_INFO:
        if (!this.seenPvInfo) this.fail(at, 'SHARED_INFO record before X86_PV_INFO');
        if (length !== PAGE_SIZE) this.fail(at, `SHARED_INFO record has length ${length}, expected ${PAGE_SIZE}`);
        this.sharedInfo = this.read(body, PAGE_SIZE, 'SHARED_INFO page');
        return false;
      case REC_TYPE_X86_TSC_INFO: {
        if (length !== X86_TSC_INFO_SIZE) this.fail(at, `X86_TSC_INFO record has length ${length}, expected ${X86_TSC_INFO_SIZE}`);
        const t = this.read(body, X86_TSC_INFO_SIZE, 'X86_TSC_INFO');
        if (t.readUInt32LE(X86_TSC_INFO_OFF_RES) !== 0) this.fail(body + X86_TSC_INFO_OFF_RES, 'X86_TSC_INFO reserved field is not zero');
        return false;
      }
      case REC_TYPE_HVM_CONTEXT:
      case REC_TYPE_HVM_PARAMS:
        return this.fail(at, `${name} record in an x86 PV stream (restore has no PV handler for it)`);
      case REC_TYPE_TOOLSTACK:
        return this.fail(at, 'TOOLSTACK record: deprecated and not restorable by a v2 restore');
      case REC_TYPE_VERIFY:
        empty();
        return false;
      case REC_TYPE_CHECKPOINT:
        empty();
        this.checkpointed = true;
        return false;
      case REC_TYPE_CHECKPOINT_DIRTY_PFN_LIST:
        return this.fail(at, 'CHECKPOINT_DIRTY_PFN_LIST record: it only travels on the COLO back channel, never in a saved stream');
      case REC_TYPE_STATIC_DATA_END:
        empty();
        needV3();
        if (this.seenStaticDataEnd) this.fail(at, 'a second STATIC_DATA_END record');
        this.seenStaticDataEnd = true;
        return false;
      case REC_TYPE_X86_CPUID_POLICY:
      case REC_TYPE_X86_MSR_POLICY: {
        needV3();
        const unit = type === REC_TYPE_X86_CPUID_POLICY ? CPUID_LEAF_SIZE : MSR_ENTRY_SIZE;
        if (length === 0 || length % unit !== 0) this.fail(at, `${name} record has length ${length}, expected a non-zero multiple of ${unit}`);
        return false;
      }
      default:
        if ((type & REC_TYPE_OPTIONAL) !== 0) {
          this.skippedOptional.push(type >>> 0);
          return false;
        }
        return this.fail(at, `unknown mandatory record type ${hex(type >>> 0)} (known 0x0–${hex(REC_TYPE_NAMES.length - 1)}; optional records set bit 31)`);
    }
  }

  /** v2 streams have no STATIC_DATA_END: restore infers it at the first P2M_FRAMES / PAGE_DATA. */
  private requireStaticDataEnd(at: number, name: string): void {
    if (this.version < IHDR_VERSION_STATIC_DATA) this.seenStaticDataEnd = true;
    if (!this.seenStaticDataEnd) this.fail(at, `${name} record before STATIC_DATA_END`);
  }

  private pvInfo(length: number, at: number, body: number): void {
    if (this.seenPvInfo) this.fail(at, 'a second X86_PV_INFO record');
    if (length !== X86_PV_INFO_SIZE) this.fail(at, `X86_PV_INFO record has length ${length}, expected ${X86_PV_INFO_SIZE}`);
    const b = this.read(body, X86_PV_INFO_SIZE, 'X86_PV_INFO');
    const width = b[0]!;
    const levels = b[1]!;
    if (width === GUEST_WIDTH_32) throw new InputError(`${this.path}: offset ${body}: 32-bit PV guests are not supported (X86_PV_INFO guest_width 4, pt_levels ${levels})`);
    if (width !== GUEST_WIDTH_64 || levels !== PT_LEVELS_64) {
      this.fail(body, `X86_PV_INFO guest_width ${width}, pt_levels ${levels}; expected width ${GUEST_WIDTH_64} with ${PT_LEVELS_64} levels (or 4 with 3)`);
    }
    for (let i = 2; i < X86_PV_INFO_SIZE; i++) if (b[i] !== 0) this.fail(body + i, 'X86_PV_INFO reserved bytes are not zero');
    this.width = width;
    this.levels = levels;
    this.seenPvInfo = true;
  }

  private p2mFrames(length: number, at: number, body: number): void {
    this.requireStaticDataEnd(at, 'X86_PV_P2M_FRAMES');
    if (!this.seenPvInfo) this.fail(at, 'X86_PV_P2M_FRAMES record before X86_PV_INFO');
    if (length < P2M_FRAMES_HDR_SIZE) this.fail(at, `X86_PV_P2M_FRAMES record has length ${length}, expected at least ${P2M_FRAMES_HDR_SIZE}`);
    const h = this.read(body, P2M_FRAMES_HDR_SIZE, 'X86_PV_P2M_FRAMES header');
    const start = h.readUInt32LE(0);
    const end = h.readUInt32LE(4);
    if (start > end) this.fail(body, `X86_PV_P2M_FRAMES start pfn ${hex(start)} is above end pfn ${hex(end)}`);
    const fpp = PAGE_SIZE / this.width;
    const startLeaf = Math.floor(start / fpp);
    const n = Math.floor(end / fpp) + 1 - startLeaf;
    const expected = P2M_FRAMES_HDR_SIZE + n * PFN_WORD_SIZE;
    if (length !== expected) {
      this.fail(at, `X86_PV_P2M_FRAMES record has length ${length}, expected ${P2M_FRAMES_HDR_SIZE} + ${n} leaf pfns × ${PFN_WORD_SIZE} = ${expected} for pfns ${hex(start)}-${hex(end)}`);
    }
    const pfns = new Float64Array(n); // n·8 ≤ length ≤ REC_LENGTH_MAX, and the body is inside the file
    for (let k = 0; k < n; k += CHUNK_ENTRIES) {
      const m = Math.min(CHUNK_ENTRIES, n - k);
      const c = this.read(body + P2M_FRAMES_HDR_SIZE + k * PFN_WORD_SIZE, m * PFN_WORD_SIZE, 'X86_PV_P2M_FRAMES pfns', this.chunk);
      for (let j = 0; j < m; j++) {
        const lo = c.readUInt32LE(j * PFN_WORD_SIZE);
        const hi = c.readUInt32LE(j * PFN_WORD_SIZE + 4);
        pfns[k + j] = hi > SAFE_HI_MAX ? FRAME_ABSENT : hi * WORD_SCALE + lo;
      }
    }
    // restore stores them at p2m_pfns[start/fpp .. end/fpp]; a later record overwrites its range
    const prev = this.p2m;
    if (!prev) this.p2m = { start, end, startLeaf, pfns };
    else {
      const s = Math.min(prev.startLeaf, startLeaf);
      const e = Math.max(prev.startLeaf + prev.pfns.length, startLeaf + n);
      const merged = new Float64Array(e - s).fill(FRAME_ABSENT);
      merged.set(prev.pfns, prev.startLeaf - s);
      merged.set(pfns, startLeaf - s);
      this.p2m = { start: Math.min(prev.start, start), end: Math.max(prev.end, end), startLeaf: s, pfns: merged };
    }
    if (end > this.restoreMaxPfn) this.restoreMaxPfn = end; // expand_p2m
  }

  private pageData(length: number, at: number, body: number): void {
    this.requireStaticDataEnd(at, 'PAGE_DATA');
    this.pageDataRecords++;
    if (length < PAGE_DATA_HDR_SIZE) this.fail(at, `PAGE_DATA record has length ${length}, expected at least ${PAGE_DATA_HDR_SIZE}`);
    const h = this.read(body, PAGE_DATA_HDR_SIZE, 'PAGE_DATA header');
    const count = h.readUInt32LE(0);
    if (count < 1) this.fail(body, 'PAGE_DATA count is 0, expected at least 1 pfn');
    if (h.readUInt32LE(4) !== 0) this.fail(body + 4, 'PAGE_DATA reserved field is not zero');
    const arrayBytes = count * PFN_WORD_SIZE;
    if (PAGE_DATA_HDR_SIZE + arrayBytes > length) {
      this.fail(at, `PAGE_DATA record (length ${length}) is too short for its ${count} pfns (${PAGE_DATA_HDR_SIZE} + ${arrayBytes} bytes)`);
    }
    const arrayOff = body + PAGE_DATA_HDR_SIZE;
    const dataOff = arrayOff + arrayBytes;
    let withData = 0;
    for (let k = 0; k < count; k += CHUNK_ENTRIES) {
      const m = Math.min(CHUNK_ENTRIES, count - k);
      const c = this.read(arrayOff + k * PFN_WORD_SIZE, m * PFN_WORD_SIZE, 'PAGE_DATA pfn array', this.chunk);
      for (let j = 0; j < m; j++) {
        const wordOff = arrayOff + (k + j) * PFN_WORD_SIZE;
        const lo = c.readUInt32LE(j * PFN_WORD_SIZE);
        const hi = c.readUInt32LE(j * PFN_WORD_SIZE + 4);
        if ((hi & PFN_WORD_HI_RESERVED_MASK) !== 0) {
          this.fail(wordOff, `PAGE_DATA pfn[${k + j}] has reserved bits 52–59 set (word 0x${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')})`);
        }
        const nibble = hi >>> PFN_WORD_TYPE_SHIFT;
        if (nibble >= PFINFO_INVALID_FIRST && nibble <= PFINFO_INVALID_LAST) {
          this.fail(wordOff, `PAGE_DATA pfn[${k + j}] has invalid type ${hex(nibble)} (5–8 are not XEN_DOMCTL_PFINFO values)`);
        }
        const pfn = (hi & PFN_WORD_HI_PFN_MASK) * WORD_SCALE + lo;
        if (pfn > this.restoreMaxPfn) {
          this.fail(wordOff, `PAGE_DATA pfn[${k + j}] = ${hex(pfn)} is outside the domain maximum ${hex(this.restoreMaxPfn)} (only X86_PV_P2M_FRAMES raises it)`);
        }
        if (typeHasData(nibble)) {
          this.log.push(pfn, dataOff + withData * PAGE_SIZE, nibble);
          withData++;
        } else this.log.push(pfn, codeOfNoDataType(nibble), nibble);
      }
    }
    const expected = PAGE_DATA_HDR_SIZE + arrayBytes + withData * PAGE_SIZE;
    if (length !== expected) {
      this.fail(at, `PAGE_DATA record has length ${length}, expected ${PAGE_DATA_HDR_SIZE} + 8·${count} + ${PAGE_SIZE}·${withData} pages with data = ${expected}`);
    }
  }

  private vcpu(type: number, length: number, at: number, body: number): void {
    const name = recordName(type);
    if (length < VCPU_HDR_SIZE) this.fail(at, `${name} record has length ${length}, expected at least ${VCPU_HDR_SIZE}`);
    const h = this.read(body, VCPU_HDR_SIZE, `${name} header`);
    const id = h.readUInt32LE(0);
    if (h.readUInt32LE(4) !== 0) this.fail(body + 4, `${name} reserved field is not zero`);
    const blob = length - VCPU_HDR_SIZE;
    if (blob === 0) return; // restore tolerates empty vcpu records
    const blobOff = body + VCPU_HDR_SIZE;
    switch (type) {
      case REC_TYPE_X86_PV_VCPU_BASIC: {
        if (blob !== SIZEOF_VCPU_GUEST_CONTEXT_64) {
          this.fail(at, `X86_PV_VCPU_BASIC for vcpu ${id} has a ${blob}-byte context, expected ${SIZEOF_VCPU_GUEST_CONTEXT_64} (vcpu_guest_context x86_64)`);
        }
        this.vcpus.add(id);
        if (id === 0) {
          const w = this.read(blobOff + VCPU_CTRLREG3_OFFSET_64, 8, 'vcpu 0 ctrlreg[3]');
          this.cr3 = w.readBigUInt64LE(0);
          const d = this.read(blobOff + VCPU_RDX_OFFSET_64, 8, 'vcpu 0 user_regs.rdx');
          const lo = d.readUInt32LE(0);
          const hi = d.readUInt32LE(4);
          this.startInfoPfn = hi > SAFE_HI_MAX ? -1 : hi * WORD_SCALE + lo;
        }
        return;
      }
      case REC_TYPE_X86_PV_VCPU_EXTENDED:
        if (blob > VCPU_EXTENDED_MAX) this.fail(at, `X86_PV_VCPU_EXTENDED for vcpu ${id} has ${blob} bytes, at most ${VCPU_EXTENDED_MAX} allowed`);
        return;
      case REC_TYPE_X86_PV_VCPU_XSAVE:
        if (blob < VCPU_XSAVE_MIN) this.fail(at, `X86_PV_VCPU_XSAVE for vcpu ${id} has ${blob} bytes, at least ${VCPU_XSAVE_MIN} needed`);
        return;
      default:
        if (blob % VCPU_MSR_ENTRY_SIZE !== 0) this.fail(at, `X86_PV_VCPU_MSRS for vcpu ${id} has ${blob} bytes, not a multiple of ${VCPU_MSR_ENTRY_SIZE}`);
    }
  }
}

export interface OpenStreamOptions {
  /** kernel symbols (a save stream carries none) */
  symbols?: SymbolTable;
}

/**
 * Open an `xl save` file (format 'xl-save') or a bare libxc stream (format 'libxc-stream') as a
 * GuestImage in pfn space. Bad input throws InputError: one line naming the file, the byte offset and
 * what was expected.
 */
export function openStream(path: string, opts: OpenStreamOptions = {}): StreamImage {
  const fd = openReadOnly(path);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new InputError(`${path}: not a regular file`);
    const p = new StreamParser(path, fd, st.size);
    const head = Buffer.alloc(Math.min(st.size, XL_MAGIC.length));
    readAt(fd, head, 0);
    let format: ImageFormat;
    let libxcOffset = 0;
    let end: number;
    let xl: XlHeaderInfo | null = null;
    if (isXlSave(head)) {
      format = 'xl-save';
      const r = p.parseXl();
      libxcOffset = r.libxcOffset;
      end = r.end;
      xl = r.xl;
    } else if (isLibxcStream(head)) {
      format = 'libxc-stream';
      end = p.parseLibxc(0);
      p.libxcEnd = end;
    } else {
      const shown = head.subarray(0, IHDR_MARKER_BYTES).toString('hex');
      throw new InputError(`${path}: offset 0: expected an xl save header ("Xen saved domain, xl format") or a libxc stream marker (ffffffffffffffff "XENF"), found 0x${shown}`);
    }
    if (!p.seenPvInfo) throw new InputError(`${path}: offset ${libxcOffset}: the stream has no X86_PV_INFO record`);
    if (p.cr3 === null) throw new InputError(`${path}: offset ${libxcOffset}: the stream has no X86_PV_VCPU_BASIC record for vcpu 0 (restore needs it: "Sender didn't send vcpu0's basic state")`);
    const index = p.log.disjointAscending() ? new RunIndex(p.log) : new PfnIndex(p.log.expand());
    const counts: StreamCounts = { records: p.records, pageDataRecords: p.pageDataRecords, ...index.counts };
    const savedP2m: SavedP2m | null = p.p2m
      ? { startPfn: p.p2m.start, endPfn: p.p2m.end, leafPfns: p.p2m.pfns }
      : null;
    const facts: StreamFacts = {
      version: p.version,
      xenMajor: p.xenMajor,
      xenMinor: p.xenMinor,
      ptLevels: p.levels,
      libxcOffset,
      libxcEnd: p.libxcEnd,
      xl,
      vcpus: [...p.vcpus].sort((a, b) => a - b),
      startInfoPfn: p.startInfoPfn,
      checkpointed: p.checkpointed,
      skippedOptional: p.skippedOptional,
      trailingBytes: st.size - end,
    };
    return new StreamImage(
      path,
      fd,
      format,
      p.width,
      p.sharedInfo,
      p.cr3,
      opts.symbols ?? new Map(),
      p.log.maxPfn,
      savedP2m,
      index,
      counts,
      facts,
    );
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}
