// Emulated non-live `xl save` of an in-memory guest: xen-project/xen tools/libs/guest/xg_sr_save.c
// (write_headers, send_all_pages, write_batch) and xg_sr_save_x86_pv.c (map_p2m, normalise_pagetable,
// write_x86_pv_p2m_frames, write_one_vcpu_basic), wrapped per tools/xl/xl_saverestore.c and
// tools/libs/light/libxl_stream_write.c (docs/spec-notes/stream-v2.md, xen-toolstack.md §1, §3).
//
// The save side's view decides everything: the p2m is found with map_p2m (mapP2m), pfns 0..max_pfn are
// sent once each in ascending PAGE_DATA batches of MAX_BATCH_SIZE; a pfn whose p2m entry is INVALID,
// carries marker bits or names no host frame goes as XTAB without data; page-table pages (every table
// reachable from vCPU 0's cr3) go as L1TAB..L4TAB with their PTEs' mfns replaced by pfns (through an
// m2p built from the same p2m: Xen's mfn_in_pseudophysmap) and Xen's L4 slots zeroed. Pfns past max_pfn
// are never sent: the stream omits exactly the pages the toolstack cannot see. Written to disk one
// batch at a time (bounded memory), through writeOutput (a temporary file beside it, then renamed).
import { checkOutput, writeAllAt, writeOutput } from '../formats/output-file.js';
import { effectiveMaxMfn } from '../views/map-p2m-tree.js';
import { mapP2m } from '../views/toolstack-view.js';
import { _PAGE_PRESENT, _PAGE_PSE, FOREIGN_FRAME_HI, IDENTITY_FRAME_HI, P2M_ENTRY_SIZE, P2M_PER_PAGE, PAGE_SHIFT, PAGE_SIZE, PTE_PFN_MASK_HI, PTE_PFN_MASK_LO, PTE_SIZE, PTRS_PER_TABLE, SIZEOF_VCPU_GUEST_CONTEXT_64, VCPU_CTRLREG3_OFFSET_64, XEN_L4_FIRST_SLOT, XEN_L4_LAST_SLOT, hex } from '../xen/abi.js';
import { InputError } from '../common/errors.js';
import type { MemoryImage } from '../formats/memory-image.js';
import { isWalkFailure, readVirtU64, translate } from '../translate/page-walk.js';
import { CPUID_LEAF_SIZE, DHDR_OFF_PAGE_SHIFT, DHDR_OFF_XEN_MAJOR, DHDR_OFF_XEN_MINOR, DHDR_SIZE, DHDR_TYPE_X86_PV, GUEST_WIDTH_64, IHDR_ID, IHDR_MARKER_BYTES, IHDR_OFF_ID, IHDR_OFF_OPTIONS, IHDR_OFF_VERSION, IHDR_SIZE, LIBXL_HDR_IDENT, LIBXL_HDR_OFF_OPTIONS, LIBXL_HDR_OFF_VERSION, LIBXL_HDR_SIZE, LIBXL_HDR_VERSION, LIBXL_REC_TYPE_END, LIBXL_REC_TYPE_LIBXC_CONTEXT, MSR_ENTRY_SIZE, P2M_FRAMES_HDR_SIZE, PAGE_DATA_HDR_SIZE, PFINFO_LPINTAB, PFINFO_NOTAB, PFINFO_XTAB, PFN_WORD_SIZE, PFN_WORD_TYPE_SHIFT, PT_LEVELS_64, REC_ALIGN, REC_TYPE_END, REC_TYPE_PAGE_DATA, REC_TYPE_SHARED_INFO, REC_TYPE_STATIC_DATA_END, REC_TYPE_X86_CPUID_POLICY, REC_TYPE_X86_MSR_POLICY, REC_TYPE_X86_PV_INFO, REC_TYPE_X86_PV_P2M_FRAMES, REC_TYPE_X86_PV_VCPU_BASIC, REC_TYPE_X86_PV_VCPU_EXTENDED, REC_TYPE_X86_PV_VCPU_XSAVE, REC_TYPE_X86_TSC_INFO, RHDR_SIZE, SAVEFILE_BYTEORDER_VALUE, VCPU_FLAGS_OFFSET_64, VCPU_HDR_SIZE, VCPU_RDX_OFFSET_64, X86_PV_INFO_SIZE, X86_TSC_INFO_SIZE, XL_HEADER_SIZE, XL_MAGIC, XL_MANDATORY_FLAG_JSON, XL_MANDATORY_FLAG_STREAMV2, XL_OFF_BYTEORDER, XL_OFF_MANDATORY_FLAGS, XL_OFF_OPTIONAL_DATA_LEN, XL_OFF_OPTIONAL_FLAGS } from '../xen/stream-format.js';
import { bootFactsOf } from '../formats/guest-image.js';

/** MAX_BATCH_SIZE (tools/libs/guest/xg_save_restore.h): pfns per PAGE_DATA record. */
export const MAX_BATCH_SIZE = 1024;
/** The stream version 4.14+ savers write, and the Xen version the emulated host reports (XENVER_version). */
const STREAM_VERSION = 3;
const EMULATED_XEN_MAJOR = 4;
const EMULATED_XEN_MINOR = 17;
/** VGCF_* (public/arch-x86/xen.h): i387 state valid, vcpu in kernel mode, vcpu online. */
const VGCF_I387_VALID = 1 << 0;
const VGCF_IN_KERNEL = 1 << 2;
const VGCF_ONLINE = 1 << 5;
/** fxsave image defaults (FNINIT / power-on): FCW 0x37f at byte 0, MXCSR 0x1f80 at byte 24. */
const FXSAVE_FCW_OFFSET = 0;
const FXSAVE_FCW_DEFAULT = 0x37f;
const FXSAVE_MXCSR_OFFSET = 24;
const FXSAVE_MXCSR_DEFAULT = 0x1f80;
/** xen_domctl_ext_vcpucontext: vcpu u32, size u32, then x86 fields; Xen 4.17 reports size 64 for PV. */
const EXT_VCPUCONTEXT_SIZE = 64;
const EXT_OFF_SIZE = 4;
/** XEN_DOMCTL_getvcpuextstate buffer: xcr0 u64, xcr0_accum u64, then the xsave area. */
const XSAVE_HDR_SIZE = 16;
/** XSTATE_FP | XSTATE_SSE, and the xsave area they need (legacy 512 + xsave header 64). */
const XSTATE_FP_SSE = 0x3;
const XSAVE_AREA_FP_SSE = 512 + 64;
/** TSC_MODE_DEFAULT and the emulated host's TSC frequency. */
const TSC_MODE_DEFAULT = 0;
const EMULATED_TSC_KHZ = 2_000_000;
/** XEN_CPUID_NO_SUBLEAF, and the emulated CPU's leaf 0 (max basic leaf 0xd, "GenuineIntel"). */
const XEN_CPUID_NO_SUBLEAF = 0xffffffff;
const CPUID_MAX_BASIC_LEAF = 0xd;
const CPUID_VENDOR_EBX = 0x756e6547; // "Genu"
const CPUID_VENDOR_EDX = 0x49656e69; // "ineI"
const CPUID_VENDOR_ECX = 0x6c65746e; // "ntel"
/** The MSRs 4.17's policy carries for PV (MSR_INTEL_PLATFORM_INFO, MSR_ARCH_CAPABILITIES), both 0. */
const MSR_INTEL_PLATFORM_INFO = 0xce;
const MSR_ARCH_CAPABILITIES = 0x10a;
/** Frame bits in a PTE's words: low word bits 12–31 = frame bits 0–19, high word bits 0–19 = frame bits 20–39. */
const LO_FRAME_SCALE = 2 ** PAGE_SHIFT;
const FRAMES_PER_LO_WORD = 2 ** (32 - PAGE_SHIFT);
const LO_FLAG_MASK = ~PTE_PFN_MASK_LO >>> 0;
const HI_FLAG_MASK = ~PTE_PFN_MASK_HI >>> 0;
const WORD_SCALE = 2 ** 32;
const SAFE_HI_MAX = Math.floor(Number.MAX_SAFE_INTEGER / WORD_SCALE);
const ZERO_PAGE = Buffer.alloc(PAGE_SIZE);
/** High-word bits that make a p2m entry no mfn for the toolstack (identity bit 62, foreign/INVALID bit 63). */
const TOOL_INVALID_HI = (IDENTITY_FRAME_HI | FOREIGN_FRAME_HI) >>> 0;
const PAD = Buffer.alloc(REC_ALIGN);

export interface WriteSaveOptions {
  /** 'xl': xl header + libxl v2 wrapper (an `xl save` file); 'none': the bare libxc stream */
  wrapper: 'xl' | 'none';
  overwrite?: boolean;
  /** domain name in the emulated xl config */
  name?: string;
}

export interface SaveSummary {
  path: string;
  /** the save side's max_pfn (X86_PV_P2M_FRAMES end_pfn) */
  maxPfn: number;
  /** leaf pages of the p2m, as pfns (the X86_PV_P2M_FRAMES body) */
  leafPfns: Float64Array;
  pagesWithData: number;
  xtab: number;
  pageTables: number;
  pageDataRecords: number;
  cr3Pfn: number;
  startInfoPfn: number;
  bytes: number;
}

/** mfn → pfn over the saved p2m (the role of Xen's m2p in mfn_in_pseudophysmap), sorted by mfn. */
class M2p {
  private readonly mfns: Float64Array;
  private readonly pfns: Float64Array;

  constructor(lo: Uint32Array, hi: Uint32Array, maxMfn: number) {
    const n = lo.length;
    let valid = 0;
    const order = new Uint32Array(n);
    const mfnOf = new Float64Array(n);
    for (let pfn = 0; pfn < n; pfn++) {
      const h = hi[pfn]!;
      if ((h & TOOL_INVALID_HI) !== 0 || h > SAFE_HI_MAX) continue;
      const mfn = h * WORD_SCALE + lo[pfn]!;
      if (mfn > maxMfn) continue;
      mfnOf[pfn] = mfn;
      order[valid++] = pfn;
    }
    const o = order.subarray(0, valid);
    o.sort((a, b) => mfnOf[a]! - mfnOf[b]! || a - b);
    this.mfns = new Float64Array(valid);
    this.pfns = new Float64Array(valid);
    for (let k = 0; k < valid; k++) {
      this.mfns[k] = mfnOf[o[k]!]!;
      this.pfns[k] = o[k]!;
    }
  }

  /** The pfn mapping mfn (the lowest, when several do), or −1 when no pfn ≤ max_pfn maps it. */
  pfnOf(mfn: number): number {
    const a = this.mfns;
    let lo = 0;
    let hi = a.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = a[mid]!;
      if (v < mfn) lo = mid + 1;
      else {
        if (v === mfn) found = mid;
        hi = mid - 1;
      }
    }
    return found < 0 ? -1 : this.pfns[found]!;
  }
}

function pteFrameOf(lo: number, hi: number): number {
  return (hi & PTE_PFN_MASK_HI) * FRAMES_PER_LO_WORD + ((lo & PTE_PFN_MASK_LO) >>> PAGE_SHIFT);
}

/** Sequential writer with exact positions (writeAllAt loops until everything is written). */
class Out {
  pos = 0;
  constructor(private readonly fd: number) {}
  write(buf: Buffer): void {
    writeAllAt(this.fd, buf, this.pos);
    this.pos += buf.length;
  }
  record(type: number, body: Buffer, bodyLength = body.length): void {
    const h = Buffer.alloc(RHDR_SIZE);
    h.writeUInt32LE(type, 0);
    h.writeUInt32LE(bodyLength, 4);
    this.write(h);
    this.write(body.subarray(0, bodyLength));
    const pad = (REC_ALIGN - (bodyLength % REC_ALIGN)) % REC_ALIGN;
    if (pad) this.write(PAD.subarray(0, pad));
  }
}

interface SavePlan {
  maxPfn: number;
  p2mLo: Uint32Array;
  p2mHi: Uint32Array;
  m2p: M2p;
  maxMfn: number;
  /** table level (1–4) of each pfn's page, 0 for ordinary pages */
  tableLevel: Uint8Array;
  cr3Pfn: number;
  startInfoPfn: number;
  leafPfns: Float64Array;
}

function planSave(img: MemoryImage): SavePlan {
  if (img.frameSpace !== 'mfn') throw new Error('writeSaveStream: the image must be in machine-frame space (an emulated guest)');
  if (img.guestWidth !== GUEST_WIDTH_64) throw new InputError(`save: guest width ${img.guestWidth}: only 64-bit PV guests are emulated`);
  const tool = mapP2m(img);
  if (tool.failure !== null) throw new InputError(`save aborts: the save side's ${tool.method} walk fails: ${tool.failure}`);
  const maxPfn = tool.maxPfn;
  const maxMfn = effectiveMaxMfn(img);
  const p2mLo = new Uint32Array(maxPfn + 1);
  const p2mHi = new Uint32Array(maxPfn + 1);
  for (let k = 0; k < tool.leafFrames.length; k++) {
    const leaf = tool.leafFrames[k]!;
    const page = img.readFrame(leaf);
    if (page === null) throw new InputError(`save aborts: p2m leaf page ${k} (mfn ${hex(leaf)}) is not in the image ("Failed to map p2m frames")`);
    const first = k * P2M_PER_PAGE;
    const n = Math.min(P2M_PER_PAGE, maxPfn + 1 - first);
    for (let i = 0; i < n; i++) {
      p2mLo[first + i] = page.readUInt32LE(i * P2M_ENTRY_SIZE);
      p2mHi[first + i] = page.readUInt32LE(i * P2M_ENTRY_SIZE + 4);
    }
  }
  const m2p = new M2p(p2mLo, p2mHi, maxMfn);

  // map_p2m_leaves: every leaf must be in the pseudo-physical map; its pfn goes into P2M_FRAMES
  const leafPfns = new Float64Array(tool.leafFrames.length);
  for (let k = 0; k < leafPfns.length; k++) {
    const pfn = m2p.pfnOf(tool.leafFrames[k]!);
    if (pfn < 0) throw new InputError(`save aborts: "Bad mfn in p2m_frame_list[${k}]": leaf mfn ${hex(tool.leafFrames[k]!)} is not mapped by any pfn ≤ max_pfn ${hex(maxPfn)}`);
    leafPfns[k] = pfn;
  }

  // write_one_vcpu_basic: cr3 must be in the pseudo-physical map
  const cr3Mfn = Number(img.cr3 >> BigInt(PAGE_SHIFT));
  const cr3Pfn = m2p.pfnOf(cr3Mfn);
  if (cr3Pfn < 0) throw new InputError(`save aborts: "Bad mfn for vcpu0's cr3": mfn ${hex(cr3Mfn)} is not mapped by any pfn ≤ max_pfn ${hex(maxPfn)}`);

  // every page table reachable from cr3, level by level (Xen types pages by use; only vCPU 0's tables exist here)
  const tableLevel = new Uint8Array(maxPfn + 1);
  let current = new Set<number>([cr3Mfn]);
  const levelOfMfn = new Map<number, number>([[cr3Mfn, PT_LEVELS_64]]);
  for (let level = PT_LEVELS_64; level >= 1; level--) {
    const next = new Set<number>();
    for (const mfn of current) {
      const pfn = m2p.pfnOf(mfn);
      // a table outside the pseudo-physical map fails its parent's normalisation (checked when writing)
      if (pfn >= 0) tableLevel[pfn] = level;
      if (level === 1) continue;
      const page = img.readFrame(mfn);
      if (page === null) continue; // never written by the emulator: reads as an empty table
      for (let i = 0; i < PTRS_PER_TABLE; i++) {
        if (level === PT_LEVELS_64 && i >= XEN_L4_FIRST_SLOT && i <= XEN_L4_LAST_SLOT) continue;
        const lo = page.readUInt32LE(i * PTE_SIZE);
        if ((lo & _PAGE_PRESENT) === 0 || (lo & _PAGE_PSE) !== 0) continue; // superpages fail at normalisation
        const child = pteFrameOf(lo, page.readUInt32LE(i * PTE_SIZE + 4));
        const seen = levelOfMfn.get(child);
        if (seen !== undefined && seen !== level - 1) {
          throw new InputError(`save aborts: mfn ${hex(child)} is used as both an L${seen} and an L${level - 1} page table (Xen would refuse the second type)`);
        }
        levelOfMfn.set(child, level - 1);
        next.add(child);
      }
    }
    current = next;
  }

  // the suspend record: vcpu0 user_regs.rdx = start_info, found through the kernel's xen_start_info pointer
  const siVar = img.symbols.get('xen_start_info');
  if (siVar === undefined) throw new InputError('save: the image has no xen_start_info symbol: cannot find the start_info page for vcpu0\'s suspend record');
  const siVa = readVirtU64(img, cr3Mfn, siVar);
  if (typeof siVa !== 'bigint') throw new InputError(`save: cannot read xen_start_info: ${siVa.error}`);
  const siT = translate(img, cr3Mfn, siVa);
  if (isWalkFailure(siT)) throw new InputError(`save: start_info at ${hex(siVa)} is not mapped: ${siT.error}`);
  const startInfoPfn = m2p.pfnOf(siT.frame);
  if (startInfoPfn < 0) throw new InputError(`save aborts: "Bad mfn for suspend record": start_info mfn ${hex(siT.frame)} is not mapped by any pfn ≤ max_pfn ${hex(maxPfn)}`);

  return { maxPfn, p2mLo, p2mHi, m2p, maxMfn, tableLevel, cr3Pfn, startInfoPfn, leafPfns };
}

/** normalise_pagetable: copy `src` into `dst` with every present PTE's mfn replaced by its pfn. */
function normalise(plan: SavePlan, src: Buffer, dst: Buffer, level: number, pfn: number): void {
  for (let i = 0; i < PTRS_PER_TABLE; i++) {
    const off = i * PTE_SIZE;
    if (level === PT_LEVELS_64 && i >= XEN_L4_FIRST_SLOT && i <= XEN_L4_LAST_SLOT) {
      dst.writeUInt32LE(0, off);
      dst.writeUInt32LE(0, off + 4);
      continue;
    }
    const lo = src.readUInt32LE(off);
    const hi = src.readUInt32LE(off + 4);
    if ((lo & _PAGE_PRESENT) === 0) {
      dst.writeUInt32LE(lo, off);
      dst.writeUInt32LE(hi, off + 4);
      continue;
    }
    if (level > 1 && (lo & _PAGE_PSE) !== 0) {
      throw new InputError(`save aborts: "Cannot migrate superpage (L${level}[${i}])" in the page table at pfn ${hex(pfn)}`);
    }
    const mfn = pteFrameOf(lo, hi);
    const target = plan.m2p.pfnOf(mfn);
    if (target < 0) {
      throw new InputError(`save aborts: "Bad mfn for L${level}[${i}]" in the page table at pfn ${hex(pfn)}: mfn ${hex(mfn)} is not mapped by any pfn ≤ max_pfn ${hex(plan.maxPfn)}`);
    }
    dst.writeUInt32LE(((lo & LO_FLAG_MASK) + (target % FRAMES_PER_LO_WORD) * LO_FRAME_SCALE) >>> 0, off);
    dst.writeUInt32LE(((hi & HI_FLAG_MASK) | Math.floor(target / FRAMES_PER_LO_WORD)) >>> 0, off + 4);
  }
}

function u64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32LE(value % WORD_SCALE, at);
  buf.writeUInt32LE(Math.floor(value / WORD_SCALE), at + 4);
}

function xlPrologue(out: Out, img: MemoryImage, name: string): void {
  const nrPages = bootFactsOf(img)?.nrPages ?? 0;
  const memKiB = (nrPages * PAGE_SIZE) / 1024;
  const config = JSON.stringify({ c_info: { type: 'pv', name }, b_info: { max_memkb: memKiB, target_memkb: memKiB } }, null, 4) + '\0';
  const cfg = Buffer.from(config, 'utf8');
  const optional = Buffer.alloc(4 + cfg.length); // u32 config length, then the JSON text with its NUL
  optional.writeUInt32LE(cfg.length, 0);
  cfg.copy(optional, 4);
  const h = Buffer.alloc(XL_HEADER_SIZE);
  XL_MAGIC.copy(h, 0);
  h.writeUInt32LE(SAVEFILE_BYTEORDER_VALUE, XL_OFF_BYTEORDER);
  h.writeUInt32LE(XL_MANDATORY_FLAG_JSON | XL_MANDATORY_FLAG_STREAMV2, XL_OFF_MANDATORY_FLAGS);
  h.writeUInt32LE(0, XL_OFF_OPTIONAL_FLAGS);
  h.writeUInt32LE(optional.length, XL_OFF_OPTIONAL_DATA_LEN);
  out.write(h);
  out.write(optional);
  const lh = Buffer.alloc(LIBXL_HDR_SIZE);
  LIBXL_HDR_IDENT.copy(lh, 0);
  lh.writeUInt32BE(LIBXL_HDR_VERSION, LIBXL_HDR_OFF_VERSION);
  lh.writeUInt32BE(0, LIBXL_HDR_OFF_OPTIONS);
  out.write(lh);
  out.record(LIBXL_REC_TYPE_LIBXC_CONTEXT, Buffer.alloc(0));
}

function headers(out: Out): void {
  const ih = Buffer.alloc(IHDR_SIZE);
  ih.fill(0xff, 0, IHDR_MARKER_BYTES);
  ih.writeUInt32BE(IHDR_ID, IHDR_OFF_ID);
  ih.writeUInt32BE(STREAM_VERSION, IHDR_OFF_VERSION);
  ih.writeUInt16BE(0, IHDR_OFF_OPTIONS); // little-endian
  out.write(ih);
  const dh = Buffer.alloc(DHDR_SIZE);
  dh.writeUInt32LE(DHDR_TYPE_X86_PV, 0);
  dh.writeUInt16LE(PAGE_SHIFT, DHDR_OFF_PAGE_SHIFT);
  dh.writeUInt32LE(EMULATED_XEN_MAJOR, DHDR_OFF_XEN_MAJOR);
  dh.writeUInt32LE(EMULATED_XEN_MINOR, DHDR_OFF_XEN_MINOR);
  out.write(dh);
}

/** x86_pv_static_data + STATIC_DATA_END + x86_pv_start_of_stream. */
function staticData(out: Out, plan: SavePlan): void {
  const info = Buffer.alloc(X86_PV_INFO_SIZE);
  info[0] = GUEST_WIDTH_64;
  info[1] = PT_LEVELS_64;
  out.record(REC_TYPE_X86_PV_INFO, info);

  const cpuid = Buffer.alloc(2 * CPUID_LEAF_SIZE); // {leaf, subleaf, a, b, c, d} for leaves 0 and 1
  cpuid.writeUInt32LE(0, 0);
  cpuid.writeUInt32LE(XEN_CPUID_NO_SUBLEAF, 4);
  cpuid.writeUInt32LE(CPUID_MAX_BASIC_LEAF, 8);
  cpuid.writeUInt32LE(CPUID_VENDOR_EBX, 12);
  cpuid.writeUInt32LE(CPUID_VENDOR_ECX, 16);
  cpuid.writeUInt32LE(CPUID_VENDOR_EDX, 20);
  cpuid.writeUInt32LE(1, CPUID_LEAF_SIZE);
  cpuid.writeUInt32LE(XEN_CPUID_NO_SUBLEAF, CPUID_LEAF_SIZE + 4);
  out.record(REC_TYPE_X86_CPUID_POLICY, cpuid);

  const msrs = Buffer.alloc(2 * MSR_ENTRY_SIZE); // {idx, flags, val}
  msrs.writeUInt32LE(MSR_INTEL_PLATFORM_INFO, 0);
  msrs.writeUInt32LE(MSR_ARCH_CAPABILITIES, MSR_ENTRY_SIZE);
  out.record(REC_TYPE_X86_MSR_POLICY, msrs);

  out.record(REC_TYPE_STATIC_DATA_END, Buffer.alloc(0));

  const frames = Buffer.alloc(P2M_FRAMES_HDR_SIZE + plan.leafPfns.length * PFN_WORD_SIZE);
  frames.writeUInt32LE(0, 0);
  frames.writeUInt32LE(plan.maxPfn, 4);
  for (let k = 0; k < plan.leafPfns.length; k++) u64(frames, plan.leafPfns[k]!, P2M_FRAMES_HDR_SIZE + k * PFN_WORD_SIZE);
  out.record(REC_TYPE_X86_PV_P2M_FRAMES, frames);
}

/** send_all_pages → write_batch for pfns 0..max_pfn. Returns [pages with data, xtab, tables, records]. */
function pageData(out: Out, img: MemoryImage, plan: SavePlan): [number, number, number, number] {
  const batch = Buffer.alloc(PAGE_DATA_HDR_SIZE + MAX_BATCH_SIZE * PFN_WORD_SIZE + MAX_BATCH_SIZE * PAGE_SIZE);
  let withData = 0;
  let xtab = 0;
  let tables = 0;
  let records = 0;
  for (let first = 0; first <= plan.maxPfn; first += MAX_BATCH_SIZE) {
    const count = Math.min(MAX_BATCH_SIZE, plan.maxPfn + 1 - first);
    let nPages = 0;
    const arrayEnd = PAGE_DATA_HDR_SIZE + count * PFN_WORD_SIZE; // pages follow the pfn array
    batch.writeUInt32LE(count, 0);
    batch.writeUInt32LE(0, 4);
    for (let i = 0; i < count; i++) {
      const pfn = first + i;
      const lo = plan.p2mLo[pfn]!;
      const hi = plan.p2mHi[pfn]!;
      let type = PFINFO_XTAB;
      // INVALID_MFN / marked entries / mfns past max_mfn: getpageframeinfo3 cannot resolve them → XTAB, no data
      if ((hi & TOOL_INVALID_HI) === 0 && hi <= SAFE_HI_MAX && hi * WORD_SCALE + lo <= plan.maxMfn) {
        const mfn = hi * WORD_SCALE + lo;
        const src = img.readFrame(mfn) ?? ZERO_PAGE;
        const dst = batch.subarray(arrayEnd + nPages * PAGE_SIZE, arrayEnd + (nPages + 1) * PAGE_SIZE);
        const level = plan.tableLevel[pfn]!;
        if (level > 0) {
          type = level | (pfn === plan.cr3Pfn ? PFINFO_LPINTAB : 0);
          normalise(plan, src, dst, level, pfn);
          tables++;
        } else {
          type = PFINFO_NOTAB;
          src.copy(dst, 0, 0, PAGE_SIZE);
        }
        nPages++;
      }
      if (type === PFINFO_XTAB) xtab++;
      const at = PAGE_DATA_HDR_SIZE + i * PFN_WORD_SIZE;
      batch.writeUInt32LE(pfn % WORD_SCALE, at);
      batch.writeUInt32LE(((type << PFN_WORD_TYPE_SHIFT) | Math.floor(pfn / WORD_SCALE)) >>> 0, at + 4);
    }
    out.record(REC_TYPE_PAGE_DATA, batch, arrayEnd + nPages * PAGE_SIZE);
    withData += nPages;
    records++;
  }
  return [withData, xtab, tables, records];
}

/** x86_pv_end_of_checkpoint: TSC info, shared info, then vcpu 0's BASIC / EXTENDED / XSAVE. */
function endOfCheckpoint(out: Out, img: MemoryImage, plan: SavePlan): void {
  const tsc = Buffer.alloc(X86_TSC_INFO_SIZE);
  tsc.writeUInt32LE(TSC_MODE_DEFAULT, 0);
  tsc.writeUInt32LE(EMULATED_TSC_KHZ, 4);
  out.record(REC_TYPE_X86_TSC_INFO, tsc);

  out.record(REC_TYPE_SHARED_INFO, img.sharedInfo ?? ZERO_PAGE);

  const basic = Buffer.alloc(VCPU_HDR_SIZE + SIZEOF_VCPU_GUEST_CONTEXT_64); // vcpu_id 0
  const ctx = basic.subarray(VCPU_HDR_SIZE);
  ctx.writeUInt16LE(FXSAVE_FCW_DEFAULT, FXSAVE_FCW_OFFSET);
  ctx.writeUInt32LE(FXSAVE_MXCSR_DEFAULT, FXSAVE_MXCSR_OFFSET);
  ctx.writeUInt32LE(VGCF_I387_VALID | VGCF_IN_KERNEL | VGCF_ONLINE, VCPU_FLAGS_OFFSET_64);
  u64(ctx, plan.startInfoPfn, VCPU_RDX_OFFSET_64); // suspend record: start_info mfn → pfn
  u64(ctx, plan.cr3Pfn * LO_FRAME_SCALE, VCPU_CTRLREG3_OFFSET_64); // mfn_to_cr3(pfn) = pfn << 12 (64-bit)
  out.record(REC_TYPE_X86_PV_VCPU_BASIC, basic);

  const ext = Buffer.alloc(VCPU_HDR_SIZE + EXT_VCPUCONTEXT_SIZE);
  ext.writeUInt32LE(EXT_VCPUCONTEXT_SIZE, VCPU_HDR_SIZE + EXT_OFF_SIZE);
  out.record(REC_TYPE_X86_PV_VCPU_EXTENDED, ext);

  const xsave = Buffer.alloc(VCPU_HDR_SIZE + XSAVE_HDR_SIZE + XSAVE_AREA_FP_SSE);
  u64(xsave, XSTATE_FP_SSE, VCPU_HDR_SIZE); // xcr0
  u64(xsave, XSTATE_FP_SSE, VCPU_HDR_SIZE + 8); // xcr0_accum
  const area = VCPU_HDR_SIZE + XSAVE_HDR_SIZE;
  xsave.writeUInt16LE(FXSAVE_FCW_DEFAULT, area + FXSAVE_FCW_OFFSET);
  xsave.writeUInt32LE(FXSAVE_MXCSR_DEFAULT, area + FXSAVE_MXCSR_OFFSET);
  out.record(REC_TYPE_X86_PV_VCPU_XSAVE, xsave);
  // X86_PV_VCPU_MSRS: the emulated vcpu has no MSRs to send, so the saver skips the record
}

/**
 * Write an emulated non-live `xl save` of `img` (an emulated guest, machine-frame space) to `path`.
 * Throws InputError where the real saver would abort (walk failure, a page table naming a frame outside
 * the pseudo-physical map, a superpage) or when the file exists and !overwrite.
 */
export function writeSaveStream(img: MemoryImage, path: string, opts: WriteSaveOptions): SaveSummary {
  checkOutput(path, { force: opts.overwrite });
  const plan = planSave(img);
  let counts: [number, number, number, number] = [0, 0, 0, 0];
  let bytes = 0;
  writeOutput(path, { force: opts.overwrite }, (fd) => {
    const out = new Out(fd);
    if (opts.wrapper === 'xl') xlPrologue(out, img, opts.name ?? 'p2m-audit-emulated');
    headers(out);
    staticData(out, plan);
    counts = pageData(out, img, plan);
    endOfCheckpoint(out, img, plan);
    out.record(REC_TYPE_END, Buffer.alloc(0));
    if (opts.wrapper === 'xl') out.record(LIBXL_REC_TYPE_END, Buffer.alloc(0));
    bytes = out.pos;
  });
  return {
    path,
    maxPfn: plan.maxPfn,
    leafPfns: plan.leafPfns,
    pagesWithData: counts[0],
    xtab: counts[1],
    pageTables: counts[2],
    pageDataRecords: counts[3],
    cr3Pfn: plan.cr3Pfn,
    startInfoPfn: plan.startInfoPfn,
    bytes,
  };
}
