// A read-ahead window for parsers that step through many small records of a large file (a save stream's
// record headers, 8 bytes each, can come two million in a row): one positional read fills 64 KiB, and
// every small read inside it is a view, so the cost per record is a bounds check, not a system call.
import { readAt } from './file-io.js';

/** Bytes one refill reads. */
export const READ_WINDOW_BYTES = 64 * 1024;

export class ReadWindow {
  private readonly buf = Buffer.alloc(READ_WINDOW_BYTES);
  private start = 0;
  private len = 0;
  /** positional reads issued (refills) */
  reads = 0;

  constructor(
    private readonly fd: number,
    private readonly size: number,
  ) {}

  /** The window's bytes (positions from locate()); valid until the next locate/view. */
  get bytes(): Buffer {
    return this.buf;
  }

  /**
   * Make the `length` bytes at `off` available and return their position in `bytes`, or −1 when `length`
   * exceeds the window or the range runs past the file (callers read those themselves). No allocation.
   */
  locate(off: number, length: number): number {
    if (length > READ_WINDOW_BYTES || off < 0 || off + length > this.size) return -1;
    if (off < this.start || off + length > this.start + this.len) {
      this.start = off;
      this.len = readAt(this.fd, this.buf, off, Math.min(READ_WINDOW_BYTES, this.size - off));
      this.reads++;
      if (this.len < length) return -1;
    }
    return off - this.start;
  }

  /** The `length` bytes at `off` as a view into the window (valid until the next call), or null (see locate). */
  view(off: number, length: number): Buffer | null {
    const i = this.locate(off, length);
    return i < 0 ? null : this.buf.subarray(i, i + length);
  }
}
