// Every host-side text input (--e820, --from-log, --kconfig, --xl-config, --system-map) is read through here:
// a regular file or '-' (standard input) only (common/input-file.ts: a FIFO would block, /dev/zero never
// ends), under a stated size cap per kind, as whole text or streamed line by line. gzip (RFC 1952 magic
// 1f 8b) is decompressed for the kinds that accept it, under the same cap. The caps are in --help and README.
import fs from 'node:fs';
import zlib from 'node:zlib';
import { StringDecoder } from 'node:string_decoder';
import { InputError } from '../common/errors.js';
import { openRegularInput, STDIO_NAME } from '../common/input-file.js';

export type TextInputKind = 'e820' | 'boot-log' | 'kconfig' | 'xl-config' | 'system-map';

export interface TextInputLimit {
  /** what the input is, for messages ("the e820 map") */
  what: string;
  /** largest input accepted, in bytes (decompressed, for gzip) */
  maxBytes: number;
  /** may be gzip-compressed */
  gzip: boolean;
}

const MiB = 1024 * 1024;

/**
 * The caps. A boot log or e820 paste is a dmesg (Linux's printk ring is at most 32 MiB: init/Kconfig
 * LOG_BUF_SHIFT range 12..25) and Xen's console ring (16 KiB by default, console.c _CONRING_SIZE). A boot
 * log is parsed whole (~9 bytes of memory per byte of junk: 32 MiB peaks near 300 MiB RSS); an e820 map is
 * streamed, so its cap can be twice that. A kernel .config is ~250 KiB; an xl config a few KiB; a
 * distribution System.map 4–15 MiB (about 100–300 thousand symbols).
 */
export const TEXT_INPUT_LIMITS: Readonly<Record<TextInputKind, TextInputLimit>> = {
  e820: { what: 'the e820 map', maxBytes: 64 * MiB, gzip: false },
  'boot-log': { what: 'the boot log', maxBytes: 32 * MiB, gzip: false },
  kconfig: { what: 'the kernel config', maxBytes: 4 * MiB, gzip: true },
  'xl-config': { what: 'the xl config', maxBytes: 1 * MiB, gzip: false },
  'system-map': { what: 'the symbol file', maxBytes: 64 * MiB, gzip: true },
};

/** Bytes read per step. */
const CHUNK_BYTES = 64 * 1024;
/** Wait between reads of a non-blocking standard input that has nothing yet (EAGAIN). */
const EAGAIN_WAIT_MS = 5;
const GZIP_MAGIC: readonly number[] = [0x1f, 0x8b];
const NEWLINE = '\n';
const CR = '\r';

/** What the user calls the input in messages: the path, or "<stdin>" for '-'. */
export function sourceName(file: string): string {
  return file === STDIO_NAME ? '<stdin>' : file;
}

/** "64 MiB" */
function sizeText(bytes: number): string {
  return bytes % MiB === 0 ? `${bytes / MiB} MiB` : `${bytes} bytes`;
}

/** Which input took standard input (it can be read once per run). */
let stdinTakenBy: string | null = null;

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** An open text input: chunked reads with the byte count checked against the cap. */
class TextSource {
  private readonly fd: number;
  private readonly isStdin: boolean;
  private pos = 0;
  private readonly buf = Buffer.alloc(CHUNK_BYTES);
  /** a regular file's size when opened (−1: standard input) */
  private readonly size: number = -1;
  readonly name: string;
  readonly limit: TextInputLimit;

  constructor(file: string, kind: TextInputKind) {
    this.limit = TEXT_INPUT_LIMITS[kind];
    this.name = sourceName(file);
    this.isStdin = file === STDIO_NAME;
    if (this.isStdin) {
      if (stdinTakenBy !== null) throw new InputError(`-: standard input is already read for ${stdinTakenBy}; only one input can come from '-'`);
      stdinTakenBy = this.limit.what;
      this.fd = 0;
      return;
    }
    const opened = openRegularInput(file, `${this.limit.what} (a text file)`, `${this.limit.what} is read from a regular file, or from standard input given as '${STDIO_NAME}' (… | p2m-audit … ${STDIO_NAME})`);
    this.fd = opened.fd;
    this.size = opened.size;
    if (opened.size > this.limit.maxBytes) {
      fs.closeSync(this.fd);
      throw this.tooLarge(`${opened.size} bytes, more`);
    }
  }

  /** "FILE: 200000000 bytes, more than the 64 MiB the boot log may have" */
  tooLarge(found: string): InputError {
    return new InputError(`${this.name}: ${found} than the ${sizeText(this.limit.maxBytes)} ${this.limit.what} may have`);
  }

  /** The next chunk (a view of the reused buffer), or null at the end. */
  read(): Buffer | null {
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(this.fd, this.buf, 0, CHUNK_BYTES, this.isStdin ? null : this.pos);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') {
          sleepMs(EAGAIN_WAIT_MS);
          continue;
        }
        if (code === 'EOF') return null; // Windows pipes
        throw new InputError(`${this.name}: cannot read ${this.limit.what} (${code ?? String(e)})`);
      }
      if (n === 0) return null;
      this.pos += n;
      if (this.pos > this.limit.maxBytes) throw this.tooLarge('longer');
      return this.buf.subarray(0, n);
    }
  }

  /**
   * Everything from the start, whole: a regular file is read in place into one buffer of its size (a
   * 5 MB System.map: no chunk copies; the cap was checked at open), and whatever it grew by since in
   * chunks; standard input in chunks.
   */
  readAll(): Buffer {
    const parts: Buffer[] = [];
    if (this.size > 0) {
      const whole = Buffer.allocUnsafe(this.size);
      let got = 0;
      for (let n = -1; got < this.size && n !== 0; got += n) n = this.readInto(whole, got, this.size - got);
      this.pos = got;
      parts.push(whole.subarray(0, got));
    }
    return this.joinRest(parts);
  }

  /** `parts`, then every chunk not read yet (copied: read() reuses its buffer), as one buffer. */
  joinRest(parts: Buffer[]): Buffer {
    for (let c = this.read(); c !== null; c = this.read()) parts.push(Buffer.from(c));
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  private readInto(into: Buffer, at: number, length: number): number {
    try {
      return fs.readSync(this.fd, into, at, length, at);
    } catch (e) {
      throw new InputError(`${this.name}: cannot read ${this.limit.what} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
  }

  close(): void {
    if (!this.isStdin) fs.closeSync(this.fd);
  }
}

function isGzip(head: Buffer): boolean {
  return head.length >= GZIP_MAGIC.length && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1];
}

/** The rest of a source after `first`, whole (for gzip, whose stream is decompressed at once). */
function readRest(src: TextSource, first: Buffer): Buffer {
  return src.joinRest([Buffer.from(first)]);
}

function gunzip(src: TextSource, raw: Buffer): Buffer {
  try {
    return zlib.gunzipSync(raw, { maxOutputLength: src.limit.maxBytes });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw src.tooLarge('gzip data that decompresses to more');
    throw new InputError(`${src.name}: offset 0: gzip magic 1f 8b, but the file is not valid gzip (${(e as Error).message.split('\n')[0]})`);
  }
}

/** Lines of a text (split at '\n', one trailing '\r' dropped), the last one even without its '\n'. */
function* linesOf(text: string): Generator<string> {
  let start = 0;
  for (let nl = text.indexOf(NEWLINE); nl >= 0; nl = text.indexOf(NEWLINE, start)) {
    yield dropCr(text.slice(start, nl));
    start = nl + 1;
  }
  yield dropCr(text.slice(start));
}

function dropCr(line: string): string {
  return line.endsWith(CR) ? line.slice(0, -1) : line;
}

/**
 * The input's lines, read `CHUNK_BYTES` at a time (only the current chunk and one partial line are held),
 * or from the decompressed text of a gzip input. Lines are split as `text.split(/\r?\n/)` splits them.
 * Throws InputError for a non-regular file, a missing one, or more bytes than the kind's cap.
 */
export function* textInputLines(file: string, kind: TextInputKind, encoding: BufferEncoding = 'utf8'): Generator<string> {
  const src = new TextSource(file, kind);
  try {
    const first = src.read();
    if (first === null) {
      yield '';
      return;
    }
    if (src.limit.gzip && isGzip(first)) {
      yield* linesOf(gunzip(src, readRest(src, first)).toString(encoding));
      return;
    }
    const decoder = new StringDecoder(encoding);
    let carry = '';
    for (let chunk: Buffer | null = first; chunk !== null; chunk = src.read()) {
      const text = carry + decoder.write(chunk);
      let start = 0;
      for (let nl = text.indexOf(NEWLINE); nl >= 0; nl = text.indexOf(NEWLINE, start)) {
        yield dropCr(text.slice(start, nl));
        start = nl + 1;
      }
      carry = text.slice(start);
    }
    yield dropCr(carry + decoder.end());
  } finally {
    src.close();
  }
}

/** The whole input as text (for formats that need all of it at once: boot logs, xl configs), capped. */
export function readTextInput(file: string, kind: TextInputKind, encoding: BufferEncoding = 'utf8'): string {
  const src = new TextSource(file, kind);
  try {
    const raw = src.readAll();
    if (raw.length === 0) return '';
    return (src.limit.gzip && isGzip(raw) ? gunzip(src, raw) : raw).toString(encoding);
  } finally {
    src.close();
  }
}
