// The image a save stream opens as (src/formats/save-stream.ts parses it): a GuestImage in pfn space whose
// frames are the PAGE_DATA pages, found through the pfn index (save-stream-index.ts), with what the stream
// says about itself (headers, vCPU records, where a stream without END stops).
import { FrameFile } from './file-io.js';
import type { PfnCounts, PfnLookup, RunVisitor } from './save-stream-index.js';
import type { FormatFacts, GuestImage, ImageFormat, SavedP2m, StreamStop } from './guest-image.js';
import type { SymbolTable } from './symbols.js';
import type { VcpuContext } from './vcpu-context.js';
import type { ArchSharedInfo } from '../xen/shared-info.js';
import { archOf } from '../xen/shared-info.js';
import { hex } from '../xen/abi.js';

/** Counts over the final index (each pfn once, its last PAGE_DATA entry). */
export interface StreamCounts extends PfnCounts {
  /** libxc records read (END included) */
  records: number;
  pageDataRecords: number;
  /** optional records skipped (REC_TYPE_OPTIONAL set) */
  optionalRecords: number;
  /** positional reads the parse issued: window refills plus the larger reads (pfn arrays, pages, contexts) */
  fileReads: number;
}

// ---- the image ------------------------------------------------------------------------------------------
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
  /** distinct types of the optional records skipped, first seen first (at most 64; counts.optionalRecords counts all) */
  skippedOptional: number[];
  /** where a stream without an END record stops, or null */
  incomplete: StreamStop | null;
  /** bytes after the end of the outermost stream */
  trailingBytes: number;
}

/** A save stream opened for reading: a GuestImage in pfn space. */
export class StreamImage implements GuestImage {
  readonly frameSpace = 'pfn' as const;
  readonly arch: ArchSharedInfo;
  readonly formatFacts: FormatFacts;
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
    /** X86_PV_VCPU_BASIC contexts by vcpu_id (frames already converted to pfns by the saver) */
    readonly vcpus: readonly VcpuContext[],
  ) {
    this.file = new FrameFile(path, fd);
    this.arch = archOf(sharedInfo);
    this.formatFacts = { kind: 'save-stream', savedP2m, incomplete: facts.incomplete };
  }

  /** File offset of the pfn's data (≥ 0), or FRAME_ABSENT / FRAME_XTAB / FRAME_BROKEN / FRAME_XALLOC. */
  frameCode(pfn: number): number {
    return this.index.loc(pfn);
  }

  /** The XEN_DOMCTL_PFINFO_* nibble the stream gives the pfn (last entry), or NO_TYPE when absent. */
  pageType(pfn: number): number {
    return this.index.type(pfn);
  }

  /** Every pfn of the stream as ascending runs (first pfn, count, file offset or FRAME_* code, type nibble). */
  forEachRun(fn: RunVisitor): void {
    this.index.forEachRun(fn);
  }

  fileDescriptor(): number {
    return this.file.descriptor;
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
