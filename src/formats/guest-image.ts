// What every format reader hands up (ARCHITECTURE.md "Frame source"), after libkdumpfile's format_ops and
// drgn's memory reader: a small frame source (read or locate a 4 KiB frame in the image's frame space) plus
// a metadata record (shared_info's arch fields, vCPU 0's cr3, symbols, and the facts only one format has).
// Readers never interpret p2m semantics; the views above do.
import type { BootFacts } from '../inputs/boot-facts.js';
import type { ArchSharedInfo } from '../xen/shared-info.js';
import type { SymbolTable } from './symbols.js';
import type { VcpuContext } from './vcpu-context.js';

/** Which numbers name frames in this image: machine frames (dump-core, snapshots) or pfns (save streams). */
export type FrameSpace = 'mfn' | 'pfn';

/** xen-live = a running domain read through Xen's foreign-memory interface (formats/live-domain.ts); xc-core = xl dump-core; vmcore = a Xen kdump ELF vmcore of a dom0; kdump-compressed = makedumpfile's diskdump format */
export type ImageFormat = 'p2ms' | 'xc-core' | 'xl-save' | 'libxc-stream' | 'vmcore' | 'kdump-compressed' | 'xen-live';

/** Each format as a message names it, with its article ("is an xl dump-core (xc_core) image"). */
export const IMAGE_FORMAT_NAMES: Readonly<Record<ImageFormat, string>> = {
  p2ms: 'a p2m-audit snapshot (.p2ms)',
  'xc-core': 'an xl dump-core (xc_core) image',
  'xl-save': 'an xl save file',
  'libxc-stream': 'a libxc migration stream',
  vmcore: 'a dom0 kdump (ELF vmcore)',
  'kdump-compressed': 'a dom0 kdump (makedumpfile compressed)',
  'xen-live': 'a running domain',
};

/**
 * Whether a format's frames lie whole at file offsets (frameOffset ≥ 0), so the audit's shard workers can read
 * them from the file themselves; otherwise (compressed pages, a running domain) frames come only through readFrame.
 */
export const FRAMES_AT_FILE_OFFSETS: Readonly<Record<ImageFormat, boolean>> = {
  p2ms: true,
  'xc-core': true,
  'xl-save': true,
  'libxc-stream': true,
  vmcore: true,
  'kdump-compressed': false,
  'xen-live': false,
};

/** The reader interface: frames by number, where they lie in the file, and nothing else. */
export interface FrameSource {
  /** the file read ('' for an image held in memory) */
  readonly path: string;
  readonly format: ImageFormat;
  readonly frameSpace: FrameSpace;
  /** highest valid frame number (the toolstack's max_mfn), or Infinity when unknown */
  readonly maxFrame: number;
  /** 4096 bytes of one frame, or null when the image does not hold it. Do not keep the buffer. */
  readFrame(frame: number): Buffer | null;
  /** file offset of a frame's 4096 bytes, or -1 when absent (workers read frames by position) */
  frameOffset(frame: number): number;
  /** the image file's open descriptor, when frameOffset's offsets are read from it (an audit on this thread reads the leaf pages through it instead of opening the file again) */
  fileDescriptor?(): number;
  /** number of frames the image holds */
  frameCount(): number;
  close(): void;
  /**
   * Optional: the frames about to be read, in order (null: none). A live domain maps its misses among them in
   * batches (formats/live-domain.ts); files read each frame where it lies and leave this out.
   */
  readAhead?(frames: Float64Array | null): void;
}

/**
 * Save streams: the X86_PV_P2M_FRAMES record (the p2m leaf pages the save side found, as pfns, covering pfns
 * startPfn..endPfn inclusive; leafPfns[k] holds p2m[(startPfn/512 + k)·512 …]).
 */
export interface SavedP2m {
  startPfn: number;
  endPfn: number;
  leafPfns: Float64Array;
}

/**
 * Where a save stream without its END record stops (xg_sr_save.c writes END last: a failed save, or a copy
 * cut short, leaves a stream that just ends).
 */
export interface StreamStop {
  /** file offset where the readable stream ends (the file size, or the start of a record cut off by it) */
  readonly offset: number;
  /** the last whole libxc record, and where it starts */
  readonly afterRecord: string;
  readonly afterRecordOffset: number;
  /** the record the end of the file cuts through ('record header' when not even its 8-byte header is whole), or null */
  readonly tornRecord: string | null;
  /** whole libxc records by name, in first-seen order */
  readonly records: readonly { readonly name: string; readonly count: number }[];
  /** vCPU ids with an X86_PV_VCPU_BASIC record */
  readonly vcpuRecords: readonly number[];
}

/** A dump-core's .xen_p2m table: pfn → gmfn pairs, index k describing the k-th page of .xen_pages. */
export interface P2mPairs {
  pfns: Float64Array;
  gmfns: Float64Array;
}

/**
 * Xen's crash_xen_info_t, from the "Xen" note of type XEN_ELFNOTE_CRASH_INFO (xen/include/xen/elfcore.h,
 * written by xen/common/kexec.c): its length tells the Xen version's layout apart (makedumpfile.h
 * xen_crash_info_*); crash and libkdumpfile take the frame-list root from the last word.
 */
export interface CrashXenInfo {
  /** the note's descsz in bytes */
  readonly descSize: number;
  readonly xenMajor: number;
  readonly xenMinor: number;
  /** 'tainted' (null when the layout has none) */
  readonly tainted: number | null;
  /** xen_phys_start (null when the layout has none) */
  readonly xenPhysStart: number | null;
  /** dom0's pfn_to_mfn_frame_list_list (an mfn): the last word of the note; −1 when it is no frame (~0: no list) */
  readonly frameListListMfn: number;
  /** every u64 word of the note in order (names: xen/kdump-format.ts crashInfoFieldNames) */
  readonly words: readonly bigint[];
}

/** One ELF note of a dump, where it lies in the file. */
export interface DumpNote {
  readonly name: string;
  readonly type: number;
  readonly descSize: number;
  /** file offset of the desc bytes */
  readonly descOffset: number;
}

/** A run of machine memory held by a dump (an ELF PT_LOAD, or a run of a diskdump bitmap). */
export interface DumpSegment {
  /** machine address of the first byte */
  readonly maddr: number;
  readonly size: number;
  /** file offset of the first byte (-1 for compressed pages, which have no fixed position) */
  readonly fileOffset: number;
}

/** What only one kind of image knows, kept out of the common record. */
export type FormatFacts =
  /** p2m-audit's own snapshot (.p2ms, or the emulator's memory): the boot facts travel beside the frames */
  | { readonly kind: 'snapshot'; readonly boot: BootFacts | null }
  /** a save stream: the save side's own P2M_FRAMES record */
  | { readonly kind: 'save-stream'; readonly savedP2m: SavedP2m | null; readonly incomplete: StreamStop | null }
  /** an xl dump-core: its .xen_p2m table, read on demand */
  | { readonly kind: 'dump-core'; p2mPairs(): P2mPairs }
  /** a running domain (formats/live-domain.ts): what xc_domain_getinfo said at open (its vCPUs are in `vcpus`) */
  | {
      readonly kind: 'live-domain';
      readonly domid: number;
      /** xenstore /local/domain/ID/name, or null */
      readonly name: string | null;
      /** xc_dominfo_t nr_pages (pages the domain holds now) */
      readonly nrPages: number;
    }
  /**
   * a dom0 crash dump written through Xen's kexec path (ELF vmcore, or makedumpfile's compressed form of one):
   * frames are machine frames; the only p2m root is the crash note's (there is no max_pfn in it)
   */
  | {
      readonly kind: 'dom0-kdump';
      readonly crashInfo: CrashXenInfo;
      readonly notes: readonly DumpNote[];
      readonly segments: readonly DumpSegment[];
      /** Xen's VMCOREINFO_XEN text, or null */
      readonly vmcoreInfoXen: string | null;
      /** page compression of a makedumpfile file ('zlib', 'lzo', 'snappy', 'zstd', or several joined by '+'); null for ELF */
      readonly compression: string | null;
    };

/** The metadata record beside the frames: what Xen and the kernel left in the image about itself. */
export interface ImageMetadata {
  /** guest width in bytes (8; 32-bit guests are refused by readers) */
  readonly guestWidth: number;
  /** the raw shared_info page (4096 bytes), or null when the source has none */
  readonly sharedInfo: Buffer | null;
  readonly arch: ArchSharedInfo;
  /** vCPU 0's ctrlreg[3], raw (64-bit: frame << 12, in the image's frame space) */
  readonly cr3: bigint;
  readonly symbols: SymbolTable;
  readonly formatFacts: FormatFacts;
  /** every vCPU context the image holds (dump-core .xen_prstatus, a stream's X86_PV_VCPU_BASIC records), when the reader keeps them */
  readonly vcpus?: readonly VcpuContext[];
}

/** An opened image: a frame source with its metadata record. */
export interface GuestImage extends FrameSource, ImageMetadata {}

/** The emulated boot behind a snapshot, or null (real files know nothing of their boot). */
export function bootFactsOf(img: GuestImage): BootFacts | null {
  return img.formatFacts.kind === 'snapshot' ? img.formatFacts.boot : null;
}

/** The crash-dump facts of a dom0 kdump (vmcore or kdump-compressed), or null for every other image. */
export function dom0KdumpOf(img: GuestImage): Extract<FormatFacts, { kind: 'dom0-kdump' }> | null {
  return img.formatFacts.kind === 'dom0-kdump' ? img.formatFacts : null;
}

/** Where a save stream without an END record stops, or null (a whole stream, or not a stream). */
export function streamStopOf(img: GuestImage): StreamStop | null {
  return img.formatFacts.kind === 'save-stream' ? img.formatFacts.incomplete : null;
}

/** A save stream's P2M_FRAMES record, or null for every other image. */
export function savedP2mOf(img: GuestImage): SavedP2m | null {
  return img.formatFacts.kind === 'save-stream' ? img.formatFacts.savedP2m : null;
}
