// Opens any supported image file, detected by content (magic), never by extension.
import fs from 'node:fs';
import { InputError } from '../common/errors.js';
import { type GuestImage, type ImageFormat } from './guest-image.js';
import { type SymbolTable } from './symbols.js';
import { isP2ms, openP2msFile } from './p2ms.js';
import { isLibxcStream, isXlSave, openStream } from './save-stream.js';
import { symbolsBeside } from './symbols.js';
import { isElf, openXcCore } from './dump-core.js';
import { openImageInput, openReadOnly } from './file-io.js';
import { elfKindOfHead, openVmcore, probeElfFile } from './vmcore.js';
import { isFlattenedDump, isKdumpCompressed, openKdumpCompressed } from './kdump-compressed.js';

/** Bytes read from the start of a file to recognise its format. */
export const MAGIC_PROBE_BYTES = 64;

export interface DetectedFormat {
  format: ImageFormat | null;
  /** what was seen, for messages about unknown files */
  description: string;
}

/**
 * Compressed containers dumps are often kept in (magic numbers from RFC 1952, the xz and zstd file-format
 * specifications and bzip2's 'BZh'). Images are read at random offsets, so they must be decompressed first.
 */
const COMPRESSED: readonly { magic: readonly number[]; name: string; tool: string }[] = [
  { magic: [0x1f, 0x8b], name: 'gzip', tool: 'zcat' },
  { magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], name: 'xz', tool: 'xzcat' },
  { magic: [0x28, 0xb5, 0x2f, 0xfd], name: 'zstd', tool: 'zstdcat' },
  { magic: [0x42, 0x5a, 0x68], name: 'bzip2', tool: 'bzcat' },
];

/**
 * Recognise a file's format from its first bytes. An ELF file goes to the reader whose notes it carries:
 * with `path`, a bounded look at its program headers and notes (formats/vmcore.ts probeElfFile) tells a Xen
 * kdump vmcore from a native Linux one; without it, the ELF header alone decides (elfKindOfHead).
 */
export function detectFormat(head: Buffer, path?: string): DetectedFormat {
  if (isP2ms(head)) return { format: 'p2ms', description: 'p2m-audit snapshot' };
  if (isXlSave(head)) return { format: 'xl-save', description: 'xl save file' };
  if (isLibxcStream(head)) return { format: 'libxc-stream', description: 'libxc migration stream' };
  // makedumpfile's compressed dump; its flattened form (-F) goes to the same reader, which says how to rearrange it
  if (isKdumpCompressed(head)) return { format: 'kdump-compressed', description: "makedumpfile compressed dump ('KDUMP')" };
  if (isFlattenedDump(head)) return { format: 'kdump-compressed', description: 'makedumpfile flattened dump (makedumpfile -F)' };
  // an ELF core with sections goes to the xc_core reader (.note.Xen), one without to the vmcore reader (PT_NOTE)
  if (isElf(head)) return path === undefined ? elfKindOfHead(head) : probeElfFile(path, head);
  for (const c of COMPRESSED) {
    if (head.length >= c.magic.length && c.magic.every((b, i) => head[i] === b)) {
      return { format: null, description: `${c.name}-compressed data: decompress it first (${c.tool} FILE > FILE.raw)` };
    }
  }
  const hex = head.subarray(0, 8).toString('hex');
  return { format: null, description: head.length === 0 ? 'empty file' : `unrecognised content (first bytes ${hex})` };
}

export function readHead(path: string): Buffer {
  // a regular file only: a FIFO, a device or '-' is refused before any read (it would block or never end)
  const fd = openReadOnly(path);
  try {
    return readHeadOf(path, fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The first MAGIC_PROBE_BYTES of an open image (fewer when the file is shorter). */
function readHeadOf(path: string, fd: number): Buffer {
  const head = Buffer.alloc(MAGIC_PROBE_BYTES);
  let n: number;
  try {
    n = fs.readSync(fd, head, 0, MAGIC_PROBE_BYTES, 0);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') throw new InputError(`${path}: is a directory, expected an image file (use scan for directories)`);
    throw new InputError(`${path}: cannot read (${code ?? String(e)})`);
  }
  return head.subarray(0, n);
}

/**
 * Open an image of any supported format. For formats that carry no kernel symbols (save streams, dump-core
 * files): `symbols` if given, else PATH.map beside the image, else `defaultSymbols` (scan --system-map).
 */
export function openImage(path: string, opts: { symbols?: SymbolTable; defaultSymbols?: SymbolTable } = {}): GuestImage {
  // one open for a .p2ms (the image keeps the descriptor, its header is the head read here); the other
  // readers open the file themselves
  const { fd, size } = openImageInput(path);
  let head: Buffer;
  try {
    head = readHeadOf(path, fd);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  if (isP2ms(head)) return openP2msFile(path, fd, size, head); // closes fd itself on an error
  fs.closeSync(fd);
  const d = detectFormat(head, path);
  const symbols = (): SymbolTable | undefined => opts.symbols ?? symbolsBeside(path) ?? opts.defaultSymbols;
  switch (d.format) {
    case 'xl-save':
    case 'libxc-stream':
      return openStream(path, { symbols: symbols() });
    case 'xc-core':
      return openXcCore(path, { symbols: symbols() });
    case 'vmcore':
      return openVmcore(path, { symbols: symbols() });
    case 'kdump-compressed':
      return openKdumpCompressed(path, { symbols: symbols() });
    default:
      throw new InputError(`${path}: offset 0: not a supported image (${d.description}); expected a .p2ms snapshot, an xl save file or libxc stream, an xl dump-core (xc_core ELF) file, or a Xen dom0 kdump (ELF vmcore or makedumpfile compressed)`);
  }
}
