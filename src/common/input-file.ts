// Opening an input without blocking, after POSIX open(2) and fstat(2): a FIFO opened O_RDONLY blocks until
// a writer appears (O_NONBLOCK returns at once), and a device such as /dev/zero never ends, so only regular
// files are inputs. Every reader opens through here: images (formats/file-io.ts, open-image.ts) and text
// inputs (inputs/text-input.ts), which also take '-' for standard input.
import fs from 'node:fs';
import { InputError } from './errors.js';

/** The name that stands for standard input (text inputs) or standard output (text outputs). */
export const STDIO_NAME = '-';

/** "a FIFO", "a character device", … for a message about a path that is not a regular file. */
export function fileKindOf(st: fs.Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

export interface RegularInput {
  fd: number;
  /** bytes, from fstat of the open descriptor */
  size: number;
}

function codeOf(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? String(e);
}

/**
 * Open `path` read-only when it is a regular file; otherwise a one-line InputError naming it:
 * "no such file", "is a directory, expected <expected> (not a regular file)", or "is a FIFO, not a
 * regular file: <needs>".
 * `needs` says why a regular file is required (e.g. images are read at random offsets).
 */
export function openRegularInput(path: string, expected: string, needs: string): RegularInput {
  if (path === STDIO_NAME) throw new InputError(`${STDIO_NAME}: standard input cannot be read here: ${needs}`);
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO without a writer opens at once (and is refused below) instead of hanging here
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    const code = codeOf(e);
    if (code === 'ENOENT') throw new InputError(`${path}: no such file`);
    if (code === 'EISDIR') throw new InputError(`${path}: is a directory, expected ${expected} (not a regular file)`);
    throw new InputError(`${path}: cannot open (${code})`);
  }
  let st: fs.Stats;
  try {
    st = fs.fstatSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    throw new InputError(`${path}: cannot stat (${codeOf(e)})`);
  }
  if (!st.isFile()) {
    fs.closeSync(fd);
    if (st.isDirectory()) throw new InputError(`${path}: is a directory, expected ${expected} (not a regular file)`);
    throw new InputError(`${path}: is ${fileKindOf(st)}, not a regular file: ${needs}`);
  }
  return { fd, size: st.size };
}
