// A fuzz child's working copy of a base file (docs/fuzz.md): a mutant's patch is applied to it in place and
// undone after the run, so a 100 MB dump costs a few KiB of I/O per mutant.
import * as fs from 'node:fs';
import { MiB } from './limits.js';
import type { Patch } from './patch.js';

/** Copy chunk when undoing a truncation of a working copy. */
const COPY_CHUNK = 4 * MiB;

/** A private copy of a base file that patches are applied to in place and undone after each run. */
export class WorkFile {
  private readonly fd: number;
  private readonly baseFd: number;
  private undo: { offset: number; old: Buffer }[] = [];
  private changedLength: number | null = null;

  constructor(
    basePath: string,
    readonly path: string,
    private readonly size: number,
  ) {
    fs.copyFileSync(basePath, path);
    this.fd = fs.openSync(path, 'r+');
    this.baseFd = fs.openSync(basePath, 'r');
  }

  /** Apply the edits and length of a patch (not `replace`). */
  apply(patch: Patch): void {
    for (const e of patch.edits) {
      if (e.offset >= this.size) continue;
      const n = Math.min(e.bytes.length, this.size - e.offset);
      const old = Buffer.alloc(n);
      fs.readSync(this.fd, old, 0, n, e.offset);
      this.undo.push({ offset: e.offset, old });
      fs.writeSync(this.fd, e.bytes, 0, n, e.offset);
    }
    if (patch.length !== null && patch.length !== this.size) {
      this.changedLength = patch.length;
      fs.ftruncateSync(this.fd, patch.length);
      if (patch.length > this.size && patch.fill) fs.writeSync(this.fd, patch.fill, 0, patch.length - this.size, this.size);
    }
  }

  restore(): void {
    if (this.changedLength !== null) {
      fs.ftruncateSync(this.fd, this.size);
      if (this.changedLength < this.size) {
        const buf = Buffer.alloc(Math.min(COPY_CHUNK, this.size - this.changedLength));
        for (let at = this.changedLength; at < this.size; ) {
          const n = fs.readSync(this.baseFd, buf, 0, Math.min(buf.length, this.size - at), at);
          if (n <= 0) break;
          fs.writeSync(this.fd, buf, 0, n, at);
          at += n;
        }
      }
      this.changedLength = null;
    }
    for (let i = this.undo.length - 1; i >= 0; i--) {
      const u = this.undo[i]!;
      fs.writeSync(this.fd, u.old, 0, u.old.length, u.offset);
    }
    this.undo = [];
  }

  close(): void {
    fs.closeSync(this.fd);
    fs.closeSync(this.baseFd);
  }
}
