// `xl dump-core` writer for emulated guests: the layout of xen-project/xen tools/libs/guest/xg_core.c xc_domain_dumpcore_via_callback and xg_core_x86.c (RELEASE-4.17.0; xen-toolstack.md §4.1–4.5).
//
// What dump-core does for a PV guest, and what this writer does in its place:
//  * p2m_size = xc_domain_nr_gpfns = XENMEM_maximum_gpfn + 1. For a PV domain Xen answers maximum_gpfn
//    with (shared_info arch.max_pfn ?: 1) − 1 (xen/arch/x86/mm.c domain_get_maximum_gpfn,
//    arch_get_max_pfn = shared_info arch.max_pfn), so p2m_size is arch.max_pfn. dump-core fails when
//    it is below tot_pages; so does this writer (InputError).
//  * The p2m is found like the save side finds it (list when arch.p2m_cr3 ≠ 0, else tree); here through
//    mapP2m (src/views/toolstack-view.ts, map-p2m-tree.ts, map-p2m-list.ts): its leaves cover pfns 0..max_pfn with max_pfn = arch.max_pfn − 1. The two
//    walks differ only where it cannot matter for an emulated guest (docs/spec-notes/xc-core.md):
//    dump-core does not trim a tree (trimmed pfns are all-invalid leaves) nor check frames against
//    max_mfn (emulated frames are all below it).
//  * Every pfn whose entry is not INVALID (~0) and not above max_mfn is dumped, pfn-ascending: its page
//    at .xen_pages index j, {pfn, gmfn} at .xen_p2m index j. Identity / foreign entries are above
//    max_mfn, so they are skipped as dump-core skips them.
//  * N (xch_nr_pages) = tot_pages, the pages the domain owns: for an emulated guest the pfns its own p2m
//    (readGuestView) maps to RAM, or the pages found when that is larger or the guest view cannot be
//    read. When the toolstack's p2m reaches fewer pages than the domain owns (RAM beyond arch.max_pfn),
//    dump-core pads with zero pages and {~0, ~0} entries; opts.totPages forces N (fewer drops the excess).
//    Xen skips a page whose frame is no longer the domain's (a stale entry); the emulator cannot tell,
//    so such a page is dumped.
//  * One vCPU context (vcpu_guest_context x86_64, 5168 bytes) with ctrlreg[3] = img.cr3.
// Pages the emulator holds no content for are written as zeros (left as a hole of the sparse file).
// Memory stays bounded: two passes over the p2m leaves (count, then write) and WRITE_BATCH_PAGES pages
// per write; nothing is kept per page.
import * as fs from 'node:fs';
import { checkOutput, writeAllAt as writeAll, writeOutput } from '../formats/output-file.js';
import { GuestLeaf, type ToolstackView } from '../views/p2m-leaves.js';
import { readGuestView } from '../views/guest-view.js';
import { mapP2m } from '../views/toolstack-view.js';
import { effectiveMaxMfn, u64Value } from '../views/map-p2m-tree.js';
import { FOREIGN_FRAME_HI, IDENTITY_FRAME_HI, P2M_ENTRY_SIZE, P2M_PER_PAGE, PAGE_SIZE, SIZEOF_VCPU_GUEST_CONTEXT_64, VCPU_CTRLREG3_OFFSET_64, XEN_VIRT_HOLE_START, hex } from '../xen/abi.js';
import { InputError } from '../common/errors.js';
import type { MemoryImage } from '../formats/memory-image.js';
import { E_EHSIZE, E_MACHINE, E_PHENTSIZE, E_SHENTSIZE, E_SHNUM, E_SHOFF, E_SHSTRNDX, E_TYPE, E_VERSION, EI_ABIVERSION, EI_CLASS, EI_DATA, EI_OSABI, EI_VERSION, ELF64_EHDR_SIZE, ELF64_PHDR_SIZE, ELF64_SHDR_SIZE, ELFCLASS64, ELFDATA2LSB, ELFMAG, ELFOSABI_SYSV, EM_X86_64, ET_CORE, EV_CURRENT, N_DESCSZ, N_NAMESZ, N_TYPE, NHDR_SIZE, SH_ADDRALIGN, SH_ENTSIZE, SH_NAME, SH_OFFSET, SH_SIZE, SH_TYPE, SHT_NOTE, SHT_PROGBITS, SHT_STRTAB } from '../xen/elf-format.js';
import { ELF_SHSTRTAB, FORMAT_VERSION_DESC_SIZE, HEADER_DESC_SIZE, NONE_DESC_SIZE, P2M_ENTRY_GMFN, XC_CORE_INVALID_WORD, XC_CORE_MAGIC, XCH_MAGIC, XCH_NR_PAGES, XCH_NR_VCPUS, XCH_PAGE_SIZE, XEN_CAPABILITIES_LEN, XEN_COMPILE_BY_LEN, XEN_COMPILER_LEN, XEN_DUMPCORE_ELFNOTE_NAME, XEN_DUMPCORE_ELFNOTE_NAMESZ, XEN_DUMPCORE_FORMAT_MAJOR, XEN_DUMPCORE_FORMAT_MINOR, XEN_DUMPCORE_P2M_ENTRY_SIZE, XEN_DUMPCORE_SEC_NOTE, XEN_DUMPCORE_SEC_P2M, XEN_DUMPCORE_SEC_PAGES, XEN_DUMPCORE_SEC_PRSTATUS, XEN_DUMPCORE_SEC_SHARED_INFO, XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION, XEN_ELFNOTE_DUMPCORE_HEADER, XEN_ELFNOTE_DUMPCORE_NONE, XEN_ELFNOTE_DUMPCORE_XEN_VERSION, XEN_EXTRAVERSION_LEN, XEN_VERSION_DESC_SIZE, XV_CAPABILITIES, XV_COMPILE_INFO, XV_EXTRA, XV_MAJOR, XV_MINOR, XV_PAGESIZE, XV_VIRT_START } from '../xen/dump-core-format.js';

/** __alignof__(vcpu_guest_context_any_t) and __alignof__(shared_info_any_t) on x86_64. */
const CONTEXT_ALIGN = 8;
const SHARED_INFO_ALIGN = 8;
/** __alignof__(struct xen_dumpcore_p2m). */
const P2M_ALIGN = 8;
/** struct elfnote as xg_core.c writes it: Elf64_Nhdr + name[4]. */
const ELFNOTE_SIZE = NHDR_SIZE + XEN_DUMPCORE_ELFNOTE_NAMESZ;
/** vcpu_guest_context.flags (public/arch-x86/xen.h): what Xen reports for a running Linux PV vCPU. */
const VGCF_I387_VALID = 1 << 0;
const VGCF_IN_KERNEL = 1 << 2;
const VGCF_FAILSAFE_DISABLES_EVENTS = 1 << 3;
const VGCF_SYSCALL_DISABLES_EVENTS = 1 << 4;
const VGCF_ONLINE = 1 << 5;
const VCPU_FLAGS_OFFSET = 512;
const RUNNING_VCPU_FLAGS = VGCF_I387_VALID | VGCF_IN_KERNEL | VGCF_FAILSAFE_DISABLES_EVENTS | VGCF_SYSCALL_DISABLES_EVENTS | VGCF_ONLINE;
/** Pages per positional write (1 MiB). */
const WRITE_BATCH_PAGES = 256;
const WORD_BYTES = 4;
const WORD_SCALE = 2 ** 32;
/** Every byte of a padding entry {XC_CORE_INVALID_PFN, XC_CORE_INVALID_GMFN} = {~0, ~0}. */
const INVALID_BYTE = 0xff;
/** High-word marker bits of a p2m entry that is not RAM (identity, foreign, INVALID). */
const NOT_RAM_HI = (IDENTITY_FRAME_HI | FOREIGN_FRAME_HI) >>> 0;
/** Header index of .shstrtab (e_shstrndx): the first after the null section. */
const SHSTRTAB_INDEX = 1;
/** What XENVER_capabilities says on a 64-bit x86 host. */
const DEFAULT_CAPABILITIES = 'xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 ';
export const XC_CORE_WRITER_COMPILE_BY = 'p2m-audit';

export interface XenVersionInfo {
  major: number;
  minor: number;
  /** XENVER_extraversion, e.g. ".0" */
  extra: string;
}

export interface WriteXcCoreOptions {
  overwrite?: boolean;
  /** xch_nr_pages (the domain's tot_pages); default: the number of pages the p2m walk finds */
  totPages?: number;
  /** the hypervisor version recorded in the XEN_VERSION note (default 4.17.0) */
  xen?: XenVersionInfo;
}

export interface WriteXcCoreResult {
  /** xch_nr_pages */
  pages: number;
  /** pages the walk found (valid entries below p2m_size) */
  found: number;
  /** pfns scanned: arch.max_pfn (after any trimming of the walk) */
  p2mSize: number;
  method: ToolstackView['method'];
  fileSize: number;
  /** file offsets of .xen_pages and .xen_p2m */
  pagesOffset: number;
  p2mOffset: number;
}

export const DEFAULT_XEN_VERSION: XenVersionInfo = { major: 4, minor: 17, extra: '.0' };

interface SectionPlan {
  name: string;
  type: number;
  offset: number;
  size: number;
  addralign: number;
  entsize: number;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function writeU64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32LE(value % WORD_SCALE, at);
  buf.writeUInt32LE(Math.floor(value / WORD_SCALE), at + WORD_BYTES);
}

/** One ELF note as xg_core.c emits it: namesz 4, descsz, type, "Xen\0", descriptor. */
function note(type: number, desc: Buffer): Buffer {
  const b = Buffer.alloc(ELFNOTE_SIZE + desc.length);
  b.writeUInt32LE(XEN_DUMPCORE_ELFNOTE_NAMESZ, N_NAMESZ);
  b.writeUInt32LE(desc.length, N_DESCSZ);
  b.writeUInt32LE(type, N_TYPE);
  b.write(XEN_DUMPCORE_ELFNOTE_NAME, NHDR_SIZE, 'latin1');
  desc.copy(b, ELFNOTE_SIZE);
  return b;
}

function notes(nrVcpus: number, nrPages: number, xen: XenVersionInfo): Buffer {
  const header = Buffer.alloc(HEADER_DESC_SIZE);
  writeU64(header, XC_CORE_MAGIC, XCH_MAGIC);
  writeU64(header, nrVcpus, XCH_NR_VCPUS);
  writeU64(header, nrPages, XCH_NR_PAGES);
  writeU64(header, PAGE_SIZE, XCH_PAGE_SIZE);
  const version = Buffer.alloc(XEN_VERSION_DESC_SIZE);
  writeU64(version, xen.major, XV_MAJOR);
  writeU64(version, xen.minor, XV_MINOR);
  version.write(xen.extra.slice(0, XEN_EXTRAVERSION_LEN - 1), XV_EXTRA, 'latin1');
  version.write(XC_CORE_WRITER_COMPILE_BY, XV_COMPILE_INFO + XEN_COMPILER_LEN, XEN_COMPILE_BY_LEN - 1, 'latin1');
  version.write(DEFAULT_CAPABILITIES, XV_CAPABILITIES, XEN_CAPABILITIES_LEN - 1, 'latin1');
  version.writeBigUInt64LE(XEN_VIRT_HOLE_START, XV_VIRT_START); // platform_parameters.virt_start (HYPERVISOR_VIRT_START)
  writeU64(version, PAGE_SIZE, XV_PAGESIZE);
  const format = Buffer.alloc(FORMAT_VERSION_DESC_SIZE);
  format.writeUInt32LE(XEN_DUMPCORE_FORMAT_MINOR, 0);
  format.writeUInt32LE(XEN_DUMPCORE_FORMAT_MAJOR, WORD_BYTES);
  return Buffer.concat([
    note(XEN_ELFNOTE_DUMPCORE_NONE, Buffer.alloc(NONE_DESC_SIZE)),
    note(XEN_ELFNOTE_DUMPCORE_HEADER, header),
    note(XEN_ELFNOTE_DUMPCORE_XEN_VERSION, version),
    note(XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION, format),
  ]);
}

/** The pfn → mfn source: mapP2m's leaf pages, entries read as two u32 words. */
class P2mSource {
  readonly method: ToolstackView['method'];
  readonly p2mSize: number;
  private readonly leaves: Float64Array;
  private readonly maxMfn: number;
  /** a private copy of the current leaf: img.readFrame may hand out a buffer the next read reuses */
  private readonly leaf = Buffer.alloc(PAGE_SIZE);

  constructor(private readonly img: MemoryImage) {
    const tool = mapP2m(img);
    if (tool.failure !== null || tool.maxPfn < 0) {
      throw new InputError(`xl dump-core would fail for this guest: its p2m cannot be mapped (${tool.method} walk: ${tool.failure ?? 'no pfns'})`);
    }
    this.method = tool.method;
    this.p2mSize = tool.maxPfn + 1;
    this.leaves = tool.leafFrames;
    this.maxMfn = effectiveMaxMfn(img);
  }

  /** Call fn(pfn, mfn) for every pfn < p2mSize whose entry dump-core keeps, ascending; stop when fn returns false. */
  forEach(fn: (pfn: number, mfn: number) => boolean): void {
    for (let k = 0; k < this.leaves.length; k++) {
      const frame = this.leaves[k]!;
      const src = this.img.readFrame(frame);
      if (src === null) throw new InputError(`xl dump-core would fail for this guest: p2m leaf page ${k} (frame ${hex(frame)}) cannot be mapped`);
      const page = this.leaf;
      src.copy(page);
      const base = k * P2M_PER_PAGE;
      const n = Math.min(P2M_PER_PAGE, this.p2mSize - base);
      for (let i = 0; i < n; i++) {
        const lo = page.readUInt32LE(i * P2M_ENTRY_SIZE);
        const hi = page.readUInt32LE(i * P2M_ENTRY_SIZE + WORD_BYTES);
        if (lo === XC_CORE_INVALID_WORD && hi === XC_CORE_INVALID_WORD) continue; // INVALID_PFN
        const mfn = u64Value(lo, hi);
        if (mfn > this.maxMfn) continue; // identity / foreign markers, or beyond the host
        if (!fn(base + i, mfn)) return;
      }
    }
  }
}

/** pfns the guest's own p2m maps to RAM (tot_pages of an emulated domain), or null without a guest view. */
function guestRamPages(img: MemoryImage): number | null {
  let view;
  try {
    view = readGuestView(img);
  } catch (e) {
    if (e instanceof InputError) return null; // no symbols: a hand-built image
    throw e;
  }
  const leaf = Buffer.alloc(PAGE_SIZE);
  let ram = 0;
  for (let k = 0; k < view.kinds.length; k++) {
    if (view.kinds[k] !== GuestLeaf.PAGE) continue;
    const src = view.leafFrames[k]! >= 0 ? img.readFrame(view.leafFrames[k]!) : null;
    if (src === null) continue;
    src.copy(leaf);
    for (let i = 0; i < P2M_PER_PAGE; i++) {
      const hi = leaf.readUInt32LE(i * P2M_ENTRY_SIZE + WORD_BYTES);
      if ((hi & NOT_RAM_HI) === 0) ram++; // INVALID has both marker bits set
    }
  }
  return ram;
}

/**
 * Write an emulated guest as `xl dump-core` would write it (7 sections with shared_info, 6 without).
 * Written through writeOutput (formats/output-file.ts: a temporary file beside it, fsynced and renamed);
 * refuses (InputError) to replace an existing file unless opts.overwrite, and anything but a regular file.
 */
export function writeXcCore(img: MemoryImage, path: string, opts: WriteXcCoreOptions = {}): WriteXcCoreResult {
  if (img.guestWidth !== P2M_ENTRY_SIZE) throw new InputError(`xl dump-core: guest width ${img.guestWidth}: only 64-bit PV guests are written`);
  if (img.frameSpace !== 'mfn') throw new InputError('xl dump-core: the image must be in machine frames (a save stream\'s pfn-space image is not a running guest)');
  checkOutput(path, { force: opts.overwrite });
  const src = new P2mSource(img);
  let found = 0;
  src.forEach(() => {
    found++;
    return true;
  });
  const nrPages = opts.totPages ?? Math.max(found, guestRamPages(img) ?? 0);
  if (!Number.isSafeInteger(nrPages) || nrPages < 0) throw new Error(`writeXcCore: totPages ${nrPages} is not a page count`);
  // xc_core_arch_map_p2m_rw refuses before walking: p2m_size (= arch.max_pfn ?: 1) below tot_pages
  const xenP2mSize = img.arch.maxPfn === 0n ? 1 : Number(img.arch.maxPfn);
  if (xenP2mSize < nrPages) {
    throw new InputError(`xl dump-core would fail for this guest: p2m_size ${hex(xenP2mSize)} (XENMEM_maximum_gpfn + 1, i.e. arch.max_pfn) is below tot_pages ${hex(nrPages)} ("p2m_size < nr_pages")`);
  }
  const nrVcpus = 1;

  // ---- layout (xc_domain_dumpcore_via_callback) ----
  const strtab: number[] = [0]; // index 0 is the empty name
  const nameIndex = (name: string): number => {
    const at = strtab.length;
    for (const c of Buffer.from(name + '\0', 'latin1')) strtab.push(c);
    return at;
  };
  const plan: (SectionPlan & { nameAt: number })[] = [];
  const add = (s: SectionPlan): void => {
    plan.push({ ...s, nameAt: nameIndex(s.name) });
  };
  const noteBytes = notes(nrVcpus, nrPages, opts.xen ?? DEFAULT_XEN_VERSION);
  add({ name: ELF_SHSTRTAB, type: SHT_STRTAB, offset: 0, size: 0, addralign: 0, entsize: 0 });
  let offset = 0; // relative to the end of the section header table until the table size is known
  add({ name: XEN_DUMPCORE_SEC_NOTE, type: SHT_NOTE, offset, size: noteBytes.length, addralign: 0, entsize: 0 });
  offset += noteBytes.length;
  add({ name: XEN_DUMPCORE_SEC_PRSTATUS, type: SHT_PROGBITS, offset, size: nrVcpus * SIZEOF_VCPU_GUEST_CONTEXT_64, addralign: CONTEXT_ALIGN, entsize: SIZEOF_VCPU_GUEST_CONTEXT_64 });
  offset += nrVcpus * SIZEOF_VCPU_GUEST_CONTEXT_64;
  if (img.sharedInfo !== null) {
    add({ name: XEN_DUMPCORE_SEC_SHARED_INFO, type: SHT_PROGBITS, offset, size: PAGE_SIZE, addralign: SHARED_INFO_ALIGN, entsize: PAGE_SIZE });
    offset += PAGE_SIZE;
  }
  const shnum = plan.length + 3; // + null section, .xen_pages, .xen_p2m
  const fixup = ELF64_EHDR_SIZE + shnum * ELF64_SHDR_SIZE;
  for (const s of plan.slice(1)) s.offset += fixup;
  offset += fixup;
  const pagesOffset = roundUp(offset, PAGE_SIZE);
  add({ name: XEN_DUMPCORE_SEC_PAGES, type: SHT_PROGBITS, offset: pagesOffset, size: nrPages * PAGE_SIZE, addralign: PAGE_SIZE, entsize: PAGE_SIZE });
  const p2mOffset = pagesOffset + nrPages * PAGE_SIZE;
  add({ name: XEN_DUMPCORE_SEC_P2M, type: SHT_PROGBITS, offset: p2mOffset, size: nrPages * XEN_DUMPCORE_P2M_ENTRY_SIZE, addralign: P2M_ALIGN, entsize: XEN_DUMPCORE_P2M_ENTRY_SIZE });
  const strtabOffset = p2mOffset + nrPages * XEN_DUMPCORE_P2M_ENTRY_SIZE;
  plan[0]!.offset = strtabOffset;
  plan[0]!.size = strtab.length;
  const fileSize = strtabOffset + strtab.length;

  // ---- the head: ELF header, section headers, notes, prstatus, shared_info, padding ----
  const head = Buffer.alloc(pagesOffset);
  ELFMAG.copy(head, 0);
  head[EI_CLASS] = ELFCLASS64;
  head[EI_DATA] = ELFDATA2LSB;
  head[EI_VERSION] = EV_CURRENT;
  head[EI_OSABI] = ELFOSABI_SYSV;
  head[EI_ABIVERSION] = EV_CURRENT;
  head.writeUInt16LE(ET_CORE, E_TYPE);
  head.writeUInt16LE(EM_X86_64, E_MACHINE);
  head.writeUInt32LE(EV_CURRENT, E_VERSION);
  writeU64(head, ELF64_EHDR_SIZE, E_SHOFF);
  head.writeUInt16LE(ELF64_EHDR_SIZE, E_EHSIZE);
  head.writeUInt16LE(ELF64_PHDR_SIZE, E_PHENTSIZE);
  head.writeUInt16LE(ELF64_SHDR_SIZE, E_SHENTSIZE);
  head.writeUInt16LE(shnum, E_SHNUM);
  head.writeUInt16LE(SHSTRTAB_INDEX, E_SHSTRNDX);
  plan.forEach((s, i) => {
    const at = ELF64_EHDR_SIZE + (i + 1) * ELF64_SHDR_SIZE;
    head.writeUInt32LE(s.nameAt, at + SH_NAME);
    head.writeUInt32LE(s.type, at + SH_TYPE);
    writeU64(head, s.offset, at + SH_OFFSET);
    writeU64(head, s.size, at + SH_SIZE);
    writeU64(head, s.addralign, at + SH_ADDRALIGN);
    writeU64(head, s.entsize, at + SH_ENTSIZE);
  });
  const sec = (name: string): SectionPlan => plan.find((s) => s.name === name)!;
  noteBytes.copy(head, sec(XEN_DUMPCORE_SEC_NOTE).offset);
  const ctx = sec(XEN_DUMPCORE_SEC_PRSTATUS).offset;
  head.writeUInt32LE(RUNNING_VCPU_FLAGS, ctx + VCPU_FLAGS_OFFSET);
  head.writeBigUInt64LE(img.cr3, ctx + VCPU_CTRLREG3_OFFSET_64);
  if (img.sharedInfo !== null) img.sharedInfo.copy(head, sec(XEN_DUMPCORE_SEC_SHARED_INFO).offset);

  writeOutput(path, { force: opts.overwrite }, (fd) => {
    fs.ftruncateSync(fd, fileSize); // pages without content stay holes
    writeAll(fd, head, 0);
    // ---- .xen_pages and .xen_p2m, pfn-ascending, in batches ----
    const pageBuf = Buffer.alloc(WRITE_BATCH_PAGES * PAGE_SIZE);
    const pairBuf = Buffer.alloc(WRITE_BATCH_PAGES * XEN_DUMPCORE_P2M_ENTRY_SIZE);
    let j = 0;
    let inBatch = 0;
    let batchHasData = false;
    const flush = (): void => {
      if (inBatch === 0) return;
      const first = j - inBatch;
      if (batchHasData) writeAll(fd, pageBuf, pagesOffset + first * PAGE_SIZE, inBatch * PAGE_SIZE);
      writeAll(fd, pairBuf, p2mOffset + first * XEN_DUMPCORE_P2M_ENTRY_SIZE, inBatch * XEN_DUMPCORE_P2M_ENTRY_SIZE);
      inBatch = 0;
      batchHasData = false;
    };
    const put = (pfn: number, mfn: number, page: Buffer | null): void => {
      const slot = pageBuf.subarray(inBatch * PAGE_SIZE, (inBatch + 1) * PAGE_SIZE);
      if (page) {
        page.copy(slot);
        batchHasData = true;
      } else slot.fill(0);
      const o = inBatch * XEN_DUMPCORE_P2M_ENTRY_SIZE;
      writeU64(pairBuf, pfn, o);
      writeU64(pairBuf, mfn, o + P2M_ENTRY_GMFN);
      inBatch++;
      j++;
      if (inBatch === WRITE_BATCH_PAGES) flush();
    };
    src.forEach((pfn, mfn) => {
      if (j >= nrPages) return false; // dump-core drops pages beyond tot_pages
      put(pfn, mfn, img.readFrame(mfn));
      return true;
    });
    // fewer pages than tot_pages: zero pages and {~0, ~0} entries
    while (j < nrPages) {
      const o = inBatch * XEN_DUMPCORE_P2M_ENTRY_SIZE;
      pageBuf.fill(0, inBatch * PAGE_SIZE, (inBatch + 1) * PAGE_SIZE);
      pairBuf.fill(INVALID_BYTE, o, o + XEN_DUMPCORE_P2M_ENTRY_SIZE);
      inBatch++;
      j++;
      if (inBatch === WRITE_BATCH_PAGES) flush();
    }
    flush();
    writeAll(fd, Buffer.from(strtab), strtabOffset);
  });
  return { pages: nrPages, found, p2mSize: src.p2mSize, method: src.method, fileSize, pagesOffset, p2mOffset };
}
