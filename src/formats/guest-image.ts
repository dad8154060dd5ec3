// What every format reader hands up (ARCHITECTURE.md "Frame source"), after libkdumpfile's format_ops and
// drgn's memory reader: a small frame source (read or locate a 4 KiB frame in the image's frame space) plus
// a metadata record (shared_info's arch fields, vCPU 0's cr3, symbols, and the facts only one format has).
// Readers never interpret p2m semantics; the views above do.
import type { BootFacts } from '../inputs/boot-facts.js';
import type { ArchSharedInfo } from '../xen/shared-info.js';
import type { SymbolTable } from './symbols.js';

/** Which numbers name frames in this image: machine frames (dump-core, snapshots) or pfns (save streams). */
export type FrameSpace = 'mfn' | 'pfn';

export type ImageFormat = 'p2ms' | 'xc-core' | 'xl-save' | 'libxc-stream';

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
  /** number of frames the image holds */
  frameCount(): number;
  close(): void;
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

/** A dump-core's .xen_p2m table: pfn → gmfn pairs, index k describing the k-th page of .xen_pages. */
export interface P2mPairs {
  pfns: Float64Array;
  gmfns: Float64Array;
}

/** What only one kind of image knows, kept out of the common record. */
export type FormatFacts =
  /** p2m-audit's own snapshot (.p2ms, or the emulator's memory): the boot facts travel beside the frames */
  | { readonly kind: 'snapshot'; readonly boot: BootFacts | null }
  /** a save stream: the save side's own P2M_FRAMES record */
  | { readonly kind: 'save-stream'; readonly savedP2m: SavedP2m | null }
  /** an xl dump-core: its .xen_p2m table, read on demand */
  | { readonly kind: 'dump-core'; p2mPairs(): P2mPairs };

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
}

/** An opened image: a frame source with its metadata record. */
export interface GuestImage extends FrameSource, ImageMetadata {}

/** The emulated boot behind a snapshot, or null (real files know nothing of their boot). */
export function bootFactsOf(img: GuestImage): BootFacts | null {
  return img.formatFacts.kind === 'snapshot' ? img.formatFacts.boot : null;
}

/** A save stream's P2M_FRAMES record, or null for every other image. */
export function savedP2mOf(img: GuestImage): SavedP2m | null {
  return img.formatFacts.kind === 'save-stream' ? img.formatFacts.savedP2m : null;
}
