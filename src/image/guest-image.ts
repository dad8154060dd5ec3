// GuestImage: what every format reader hands to the views (ARCHITECTURE.md "image layer").
// Readers never interpret p2m semantics; they give frames, shared_info arch fields, cr3, symbols.
import {
  ARCH_MAX_PFN_OFFSET,
  ARCH_NMI_REASON_OFFSET,
  ARCH_P2M_CR3_OFFSET,
  ARCH_P2M_GENERATION_OFFSET,
  ARCH_P2M_VADDR_OFFSET,
  ARCH_PFN_TO_MFN_FRAME_LIST_LIST_OFFSET,
  PAGE_SIZE,
} from '../xen/abi.js';

/** Which numbers name frames in this image: machine frames (dump-core, snapshots) or pfns (save streams). */
export type FrameSpace = 'mfn' | 'pfn';

export type ImageFormat = 'p2ms' | 'xc-core' | 'xl-save' | 'libxc-stream';

/** struct arch_shared_info (64-bit guest), every field as read (u64). */
export interface ArchSharedInfo {
  maxPfn: bigint;
  pfnToMfnFrameListList: bigint;
  nmiReason: bigint;
  p2mCr3: bigint;
  p2mVaddr: bigint;
  p2mGeneration: bigint;
}

/** Kernel symbols: name → virtual address. */
export type SymbolTable = Map<string, bigint>;

/** A half-open pfn range [start, end). */
export interface PfnRange {
  start: number;
  end: number;
}

/** One e820 entry in bytes, end exclusive. `type` is the E820_* number. */
export interface E820Entry {
  addr: number;
  size: number;
  type: number;
}

/** RAM that boot moved (3.18+ remap) or released and repopulated (3.8) out of an e820 hole. */
export interface RemapRecord {
  /** source pfns (inside a non-RAM run of the e820 map) */
  from: PfnRange;
  /** destination pfns (at/after nr_pages) */
  to: PfnRange;
  how: 'remap' | 'populate';
}

/**
 * What the source knows of the boot that produced this guest. Emulated guests know all of it;
 * real files know none of it (the views then rely on kernel variables read through symbols).
 */
export interface BootFacts {
  profile: string;
  role: 'dom0' | 'domU';
  hostE820: E820Entry[];
  /** the map the kernel ended with (after its own edits) */
  kernelE820: E820Entry[];
  dom0Mem?: string;
  nrPages: number;
  maxPages: number;
  /** the kernel's max_pfn after xen_memory_setup */
  kernelMaxPfn: number;
  /** xen_max_p2m_pfn at the moment xen_build_mfn_list_list ran (the bound it used) */
  buildBound: number;
  /** every value xen_max_p2m_pfn took, in order, with the step that set it */
  xenMaxP2mPfnHistory: { value: number; by: string }[];
  identity: PfnRange[];
  remapped: RemapRecord[];
  released: number;
  extraRegions: PfnRange[];
  config: Record<string, string>;
  /** predicted boot messages in the profile's own wording */
  messages: string[];
  seed: number;
}

export interface GuestImage {
  readonly path: string;
  readonly format: ImageFormat;
  readonly frameSpace: FrameSpace;
  /** guest width in bytes (8; 32-bit guests are refused by readers) */
  readonly guestWidth: number;
  /** the raw shared_info page (4096 bytes), or null when the source has none */
  readonly sharedInfo: Buffer | null;
  readonly arch: ArchSharedInfo;
  /** vCPU 0's ctrlreg[3], raw (64-bit: frame << 12, in the image's frame space) */
  readonly cr3: bigint;
  readonly symbols: SymbolTable;
  readonly bootFacts: BootFacts | null;
  /** highest valid frame number (the toolstack's max_mfn), or Infinity when unknown */
  readonly maxFrame: number;
  /**
   * Save streams only: the X86_PV_P2M_FRAMES record (the p2m leaf pages the save side found, as pfns,
   * covering pfns startPfn..endPfn inclusive; leafPfns[k] holds p2m[(startPfn/512 + k)·512 …]).
   */
  readonly savedP2m?: { startPfn: number; endPfn: number; leafPfns: Float64Array } | null;
  /** 4096 bytes of one frame, or null when the image does not hold it. Do not keep the buffer. */
  readFrame(frame: number): Buffer | null;
  /** file offset of a frame's 4096 bytes, or -1 when absent (workers read frames by position) */
  frameOffset(frame: number): number;
  /** number of frames the image holds */
  frameCount(): number;
  close(): void;
}

/** Read struct arch_shared_info from a shared_info page (64-bit layout, xen-toolstack.md §2.1). */
export function parseArchSharedInfo(page: Buffer): ArchSharedInfo {
  if (page.length < PAGE_SIZE) throw new Error(`shared_info page is ${page.length} bytes, expected ${PAGE_SIZE}`);
  return {
    maxPfn: page.readBigUInt64LE(ARCH_MAX_PFN_OFFSET),
    pfnToMfnFrameListList: page.readBigUInt64LE(ARCH_PFN_TO_MFN_FRAME_LIST_LIST_OFFSET),
    nmiReason: page.readBigUInt64LE(ARCH_NMI_REASON_OFFSET),
    p2mCr3: page.readBigUInt64LE(ARCH_P2M_CR3_OFFSET),
    p2mVaddr: page.readBigUInt64LE(ARCH_P2M_VADDR_OFFSET),
    p2mGeneration: page.readBigUInt64LE(ARCH_P2M_GENERATION_OFFSET),
  };
}

/** The arch fields of an image's shared_info page; all zero when the image holds none. */
export function archOf(sharedInfo: Buffer | null): ArchSharedInfo {
  return sharedInfo
    ? parseArchSharedInfo(sharedInfo)
    : { maxPfn: 0n, pfnToMfnFrameListList: 0n, nmiReason: 0n, p2mCr3: 0n, p2mVaddr: 0n, p2mGeneration: 0n };
}

/** Write struct arch_shared_info into a shared_info page (64-bit layout). */
export function writeArchSharedInfo(page: Buffer, arch: ArchSharedInfo): void {
  page.writeBigUInt64LE(arch.maxPfn, ARCH_MAX_PFN_OFFSET);
  page.writeBigUInt64LE(arch.pfnToMfnFrameListList, ARCH_PFN_TO_MFN_FRAME_LIST_LIST_OFFSET);
  page.writeBigUInt64LE(arch.nmiReason, ARCH_NMI_REASON_OFFSET);
  page.writeBigUInt64LE(arch.p2mCr3, ARCH_P2M_CR3_OFFSET);
  page.writeBigUInt64LE(arch.p2mVaddr, ARCH_P2M_VADDR_OFFSET);
  page.writeBigUInt64LE(arch.p2mGeneration, ARCH_P2M_GENERATION_OFFSET);
}

/** Errors about bad input: the CLI prints the message as one line and exits 2. */
export class InputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InputError';
  }
}
