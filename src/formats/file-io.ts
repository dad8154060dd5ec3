// Positional file reads shared by the image readers (.p2ms, xc_core, migration streams): whole reads at an
// offset, one frame into a reused page buffer, and the sorted-index search their frame lookups use.
import fs from 'node:fs';
import { PAGE_SIZE } from '../xen/abi.js';
import { InputError } from '../common/errors.js';
import { openRegularInput, type RegularInput } from '../common/input-file.js';

/** What an image input must be, and why (common/input-file.ts messages). */
export const IMAGE_EXPECTED = 'an image file';
export const IMAGE_NEEDS = 'images are read at random offsets, so they must be regular files (copy it to one first)';

/**
 * Open an image read-only: a regular file only (common/input-file.ts: a FIFO is refused without blocking,
 * a device or '-' without reading); a missing, unreadable or non-regular path is a one-line InputError.
 */
export function openReadOnly(path: string): number {
  return openImageInput(path).fd;
}

/** openReadOnly with the size fstat gave (one open and one fstat for the caller's checks and reads). */
export function openImageInput(path: string): RegularInput {
  return openRegularInput(path, IMAGE_EXPECTED, IMAGE_NEEDS);
}

/** Read up to `length` bytes at `position` (looping over short reads); returns the count read. */
export function readAt(fd: number, buf: Buffer, position: number, length = buf.length): number {
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * One 4 KiB frame at file offset `off` into `page` (the image's reused buffer), or null for off < 0. `what`
 * names the frame in the error when the file ends early ("frame 0x1000", "page of pfn 0x1f").
 */
export function readFrameAt(path: string, fd: number, page: Buffer, off: number, what: string): Buffer | null {
  if (fd < 0) throw new Error(`${path}: image is closed`);
  if (off < 0) return null;
  const n = readAt(fd, page, off, PAGE_SIZE);
  if (n !== PAGE_SIZE) throw new InputError(`${path}: offset ${off}: ${what} is cut short (${n} of ${PAGE_SIZE} bytes; file changed since it was opened?)`);
  return page;
}

/** An input being parsed: its path (for errors), descriptor and size (from fstat). */
export class ParsedFile {
  constructor(
    readonly path: string,
    readonly fd: number,
    readonly size: number,
  ) {}

  /** One InputError line: the file, the byte offset, what was found and what was expected. */
  fail(offset: number, msg: string): never {
    throw new InputError(`${this.path}: offset ${offset}: ${msg}`);
  }
}

/**
 * An image reader's open file: its descriptor (−1 once closed) and the one page buffer readFrame reuses
 * (a returned page is valid until the next read).
 */
export class FrameFile {
  private fd: number;
  private readonly page = Buffer.alloc(PAGE_SIZE);

  constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /** The descriptor, for the reader's other positional reads; an error once closed. */
  get descriptor(): number {
    if (this.fd < 0) throw new Error(`${this.path}: image is closed`);
    return this.fd;
  }

  /** The frame at file offset `off` (null for off < 0); `what` names it in a cut-short error. */
  readFrame(off: number, what: string): Buffer | null {
    return readFrameAt(this.path, this.fd, this.page, off, what);
  }

  close(): void {
    if (this.fd >= 0) {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
  }
}

/** Index of `value` in an ascending array, or −1. */
export function findSorted(sorted: ArrayLike<number>, value: number): number {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = sorted[mid]!;
    if (v === value) return mid;
    if (v < value) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

