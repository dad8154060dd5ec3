// Every file a command writes goes through here (README "Outputs", docs/architecture-notes.md): the .p2ms,
// save-stream and dump-core writers, emulate's FILE.map side file, the --svg pictures and scan's --out log.
// One rule for all of them:
//  - an output that resolves (realpath, or the same dev + inode: symbolic and hard links) to an input of
//    the run is refused;
//  - outputs are regular files only: a device, FIFO, socket or directory is never replaced, even with --force;
//  - an existing file is replaced only with --force (scan's --out log is append-only and keeps its file);
//  - a file is written whole to a temporary file in the same directory, fsynced and renamed into place, so a
//    failed or interrupted write leaves the old file (or none) and no partial one;
//  - write errors (ENOSPC, EIO, EFBIG, …) are one-line InputErrors naming the output path, never the
//    temporary name.
// Commands call checkOutput for every output before the work starts, so a bad path costs nothing.
import { fileKindOf } from '../common/input-file.js';
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../common/errors.js';

export interface OutputRules {
  /** every file the run reads: the output may not be any of them */
  inputs?: readonly (string | undefined)[];
  /** replace an existing regular file */
  force?: boolean;
  /** the output is appended to (scan's results log): an existing regular file is kept, not refused */
  append?: boolean;
}

function errCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? '';
}

/** "ENOSPC: no space left on device" from a system error, without the path or syscall Node appends. */
export function ioCause(e: unknown): string {
  const msg = (e as Error)?.message ?? String(e);
  return errCode(e) ? msg.split(', ')[0]! : msg;
}

/** True for an error from the operating system (it has an errno code), as opposed to a bug or bad input. */
export function isSystemError(e: unknown): boolean {
  return e instanceof Error && !(e instanceof InputError) && typeof (e as NodeJS.ErrnoException).code === 'string' && typeof (e as NodeJS.ErrnoException).syscall === 'string';
}

/** Where an output lands: the file a symbolic link names (the link stays), with its stat, or the path itself. */
function resolveOutput(out: string): { target: string; st: fs.Stats | null } {
  let lst: fs.Stats;
  try {
    lst = fs.lstatSync(out);
  } catch (e) {
    if (errCode(e) !== 'ENOENT') throw new InputError(`${out}: cannot use as an output (${ioCause(e)})`);
    return { target: path.resolve(out), st: null };
  }
  if (!lst.isSymbolicLink()) return { target: path.resolve(out), st: lst };
  try {
    const target = fs.realpathSync(out);
    return { target, st: fs.statSync(target) };
  } catch (e) {
    throw new InputError(`${out}: is a symbolic link that cannot be followed (${ioCause(e)}); refusing to write through it`);
  }
}

/** Does `input` name the same file as the output (dev + inode, or the same real path)? */
function sameFile(outSt: fs.Stats, outReal: string, input: string): boolean {
  try {
    const st = fs.statSync(input);
    return (st.dev === outSt.dev && st.ino === outSt.ino) || fs.realpathSync(input) === outReal;
  } catch {
    return false; // an input that does not exist cannot be overwritten
  }
}

/**
 * Check an output path before any work (InputError, exit 2, naming the path): it may not be an input of
 * the run, nor anything but a regular file, nor an existing file without `force` (unless `append`); its
 * directory must exist. Returns the path to write (a symbolic link's target).
 */
export function checkOutput(out: string, rules: OutputRules = {}): string {
  const { target, st } = resolveOutput(out);
  if (st) {
    if (!st.isFile()) throw new InputError(`${out}: is ${fileKindOf(st)}; outputs are written only as regular files, so it is not replaced${rules.force ? ' (not even with --force)' : ''}`);
    const real = fs.realpathSync(target);
    for (const input of rules.inputs ?? []) {
      if (input && sameFile(st, real, input)) throw new InputError(`${out}: is an input of this run${path.resolve(input) !== path.resolve(out) ? ` (the same file as ${input})` : ''}; refusing to write over it`);
    }
    if (!rules.force && !rules.append) throw new InputError(`${out}: already exists (use --force to replace it)`);
    return target;
  }
  const dir = path.dirname(target);
  let dst: fs.Stats;
  try {
    dst = fs.statSync(dir);
  } catch (e) {
    throw new InputError(`${out}: cannot be created: directory ${dir} ${errCode(e) === 'ENOENT' ? 'does not exist' : `cannot be read (${ioCause(e)})`}`);
  }
  if (!dst.isDirectory()) throw new InputError(`${out}: cannot be created: ${dir} is not a directory`);
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (e) {
    throw new InputError(`${out}: cannot be created in ${dir} (${ioCause(e)})`);
  }
  return target;
}

/** Temporary names beside the target: hidden, unique per process and call, removed on every failure path. */
let tempSerial = 0;
function tempBeside(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${++tempSerial}.tmp`);
}

/**
 * Write `out` atomically: checkOutput(out, rules), then `body(fd)` writes a temporary file in the same
 * directory (positional or sequential writes), which is fsynced and renamed onto the target. An existing
 * file keeps its permission bits. On any failure the temporary file is removed and the old file (if any)
 * stays; system errors become `InputError("OUT: cannot write (ENOSPC: no space left on device)")`.
 */
export function writeOutput<T>(out: string, rules: OutputRules, body: (fd: number) => T): T {
  const target = checkOutput(out, { ...rules, append: false });
  const tmp = tempBeside(target);
  let fd = -1;
  try {
    fd = fs.openSync(tmp, 'wx', 0o666);
    const result = body(fd);
    const old = statOrNull(target);
    if (old) fs.fchmodSync(fd, old.mode & 0o7777);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = -1;
    // the target may have changed while we wrote: the same rules again, just before the rename
    checkOutput(out, { ...rules, append: false });
    fs.renameSync(tmp, target);
    return result;
  } catch (e) {
    if (fd >= 0) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    if (isSystemError(e)) throw new InputError(`${out}: cannot write (${ioCause(e)})`);
    throw e;
  }
}

/** writeOutput of a whole text (pictures, symbol files). */
export function writeOutputText(out: string, text: string, rules: OutputRules = {}): void {
  writeOutput(out, rules, (fd) => writeAllAt(fd, Buffer.from(text, 'utf8'), 0));
}

/** Write all of `buf` (or its first `length` bytes) at `position`, looping over short writes. */
export function writeAllAt(fd: number, buf: Buffer, position: number, length = buf.length): void {
  let done = 0;
  while (done < length) done += fs.writeSync(fd, buf, done, length - done, position + done);
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}
