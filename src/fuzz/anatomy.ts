// The "anatomy" of a corpus image (docs/fuzz.md): where its length fields, shared_info copies, frame lists,
// page tables and kernel variables sit in the file, as plain data shipped to every child; and the
// positional reader of the base file that analysis and mutation classes share.
import * as fs from 'node:fs';
import type { ImageFormat } from '../formats/guest-image.js';

/** A byte range worth mutating (headers, metadata, structure pages, record bodies). */
export interface Region {
  name: string;
  start: number;
  length: number;
}

/** A format-aware integer field (a length, offset, count or bound the reader trusts). */
export interface IntField {
  name: string;
  offset: number;
  width: 1 | 2 | 4 | 8;
  endian: 'le' | 'be';
}

/** A frame of the image and where its 4096 bytes sit in the file. */
export interface FrameSite {
  role: string;
  frame: number;
  offset: number;
}

/** One table read on a page walk: the entry at `index` of table `table` (level 4..1). */
export interface PtStep {
  walk: string;
  va: bigint;
  level: number;
  table: number;
  tableOffset: number;
  index: number;
  entry: bigint;
}

/** A kernel variable's 8 bytes in the file. */
export interface VarSite {
  name: string;
  va: bigint;
  offset: number;
  value: bigint;
}

export interface FrameListAnatomy {
  fll: FrameSite;
  /** frame-list pages named by the leading non-zero FLL entries */
  fl: FrameSite[];
}

export interface GuestTreeAnatomy {
  topVa: bigint;
  top: FrameSite;
  mids: { va: bigint; site: FrameSite }[];
  midMissingVa: bigint | null;
  missingVa: bigint | null;
  identityVa: bigint | null;
}

export interface P2msLayout {
  metaOffset: number;
  metaLength: number;
  indexOffset: number;
  count: number;
  dataOffset: number;
}

/** Everything the mutation classes need to know about one base file. Plain data (structured-cloneable). */
export interface Anatomy {
  /** the corpus file as found (for messages) */
  source: string;
  /** the file that is mutated: the corpus file, or its decompressed copy for .gz */
  basePath: string;
  /** extension for reproducers (p2ms, core, save, …) */
  ext: string;
  format: ImageFormat;
  size: number;
  symbolsPath: string | null;
  /** the image's maxFrame, null for Infinity */
  maxFrame: number | null;
  /** highest frame number seen in the structures (a stand-in when maxFrame is unknown) */
  highFrame: number;
  regions: Region[];
  fields: IntField[];
  /** aligned integers outside page data whose value looks like a length/offset/count */
  genericInts: IntField[];
  sharedInfoOffsets: number[];
  structure: FrameSite[];
  leaves: FrameSite[];
  frameList: FrameListAnatomy | null;
  ptSteps: PtStep[];
  vars: VarSite[];
  guestTree: GuestTreeAnatomy | null;
  p2ms: P2msLayout | null;
  /** image facts at analysis time */
  arch: { maxPfn: bigint; fll: bigint; p2mCr3: bigint; p2mVaddr: bigint };
  cr3: bigint;
  /** what the analysis could not find (each part is optional) */
  notes: string[];
}

/** Positional reads of the base file. */
export interface BaseReader {
  readonly size: number;
  read(offset: number, length: number): Buffer;
}

export function fileReader(fd: number, size: number): BaseReader {
  return {
    size,
    read(offset: number, length: number): Buffer {
      const n = Math.max(0, Math.min(length, size - offset));
      const buf = Buffer.alloc(n);
      let done = 0;
      while (done < n) {
        const got = fs.readSync(fd, buf, done, n - done, offset + done);
        if (got === 0) break;
        done += got;
      }
      return buf.subarray(0, done);
    },
  };
}
