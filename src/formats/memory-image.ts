// In-memory GuestImage: frames held in a Map (hand-built test tables, and the emulator's machine
// memory before it is written out). Pages may be materialised lazily by a generator.
import { PAGE_SIZE } from '../xen/abi.js';
import type { ArchSharedInfo } from '../xen/shared-info.js';
import type { FormatFacts, FrameSpace, GuestImage, ImageFormat } from './guest-image.js';
import type { SymbolTable } from './symbols.js';
import { archOf } from '../xen/shared-info.js';

/** A page whose bytes are produced on demand (into `out`, 4096 bytes, zero-filled beforehand). */
export type PageGenerator = (out: Buffer) => void;

export class MemoryImage implements GuestImage {
  readonly path = '';
  format: ImageFormat = 'p2ms';
  frameSpace: FrameSpace;
  guestWidth = 8;
  sharedInfo: Buffer | null = null;
  cr3 = 0n;
  symbols: SymbolTable = new Map();
  /** the emulated boot behind these frames, set by the emulator */
  formatFacts: FormatFacts = { kind: 'snapshot', boot: null };
  maxFrame = Infinity;
  private readonly pages = new Map<number, Buffer | PageGenerator>();
  private readonly scratch = Buffer.alloc(PAGE_SIZE);

  constructor(frameSpace: FrameSpace = 'mfn') {
    this.frameSpace = frameSpace;
  }

  get arch(): ArchSharedInfo {
    return archOf(this.sharedInfo);
  }

  /** Store a page (the buffer is kept, not copied) or a generator for it. */
  setFrame(frame: number, page: Buffer | PageGenerator): void {
    if (Buffer.isBuffer(page) && page.length !== PAGE_SIZE) {
      throw new Error(`frame ${frame}: page must be ${PAGE_SIZE} bytes, got ${page.length}`);
    }
    this.pages.set(frame, page);
  }

  /** A fresh zeroed page stored at `frame`, returned for filling. */
  newFrame(frame: number): Buffer {
    const page = Buffer.alloc(PAGE_SIZE);
    this.pages.set(frame, page);
    return page;
  }

  hasFrame(frame: number): boolean {
    return this.pages.has(frame);
  }

  /** The page as a mutable buffer: a generated page is materialised (and kept) first. */
  writableFrame(frame: number): Buffer {
    const p = this.pages.get(frame);
    if (p === undefined) throw new Error(`frame ${frame} is not present`);
    if (Buffer.isBuffer(p)) return p;
    const page = Buffer.alloc(PAGE_SIZE);
    p(page);
    this.pages.set(frame, page);
    return page;
  }

  /** Returns the stored buffer, or a shared scratch buffer for generated pages: copy it to keep it. */
  readFrame(frame: number): Buffer | null {
    const p = this.pages.get(frame);
    if (p === undefined) return null;
    if (Buffer.isBuffer(p)) return p;
    this.scratch.fill(0);
    p(this.scratch);
    return this.scratch;
  }

  frameOffset(): number {
    return -1;
  }

  frameCount(): number {
    return this.pages.size;
  }

  frames(): IterableIterator<number> {
    return this.pages.keys();
  }

  close(): void {}
}
