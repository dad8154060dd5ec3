// Which files a scan covers: the given paths, directories walked recursively, globs expanded
// (src/scan/glob.ts). Every regular file is a candidate whatever its name — the scan detects formats by
// content. Each file is stat()ed once here: its size schedules the work (small files whole, large ones
// in shards) and size + mtime key the --resume log. Files are listed once (by resolved path), in a
// stable order: the arguments' order, sorted inside each directory and glob.
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../common/errors.js';
import { fileKindOf, STDIO_NAME } from '../common/input-file.js';
import { expandGlob, hasGlobMagic } from './glob.js';

/** One file to scan. */
export interface ScanEntry {
  /** the path as found (relative paths stay relative: this is what results print) */
  file: string;
  /** absolute path (the --resume key, with size and mtime) */
  resolved: string;
  size: number;
  mtimeMs: number;
}

/** Something under the given paths that could not be listed (reported as an error result, not fatal). */
export interface CollectProblem {
  file: string;
  reason: string;
}

export interface Collected {
  entries: ScanEntry[];
  problems: CollectProblem[];
  /** paths named on the command line (or matched by a glob) that are not regular files: listed as skipped */
  skipped: CollectProblem[];
}

/** Why a named FIFO, device, socket or '-' is not scanned (images are read at random offsets). */
const NOT_REGULAR = 'only regular files are scanned: images are read at random offsets';

function errCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? String(e);
}

/**
 * Files under the given paths. A path that does not exist, or a glob that matches nothing, is bad
 * input (InputError: the whole scan stops, exit 2); an unreadable directory met while walking is a
 * problem of that directory only.
 */
export function collectEntries(paths: string[]): Collected {
  const entries: ScanEntry[] = [];
  const problems: CollectProblem[] = [];
  const skipped: CollectProblem[] = [];
  const seenFiles = new Set<string>();
  const seenDirs = new Set<string>();

  const addFile = (p: string, st: fs.Stats): void => {
    const resolved = path.resolve(p);
    if (seenFiles.has(resolved)) return;
    seenFiles.add(resolved);
    entries.push({ file: p, resolved, size: st.size, mtimeMs: st.mtimeMs });
  };
  // top: a command-line argument (missing = bad input); named: an argument or a glob match (listed when skipped)
  const visit = (p: string, top: boolean, named: boolean): void => {
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch (e) {
      if (top) throw new InputError(`${p}: ${errCode(e) === 'ENOENT' ? 'no such file or directory' : `cannot stat (${errCode(e)})`}`);
      problems.push({ file: p, reason: `cannot stat (${errCode(e)})` });
      return;
    }
    if (st.isFile()) {
      addFile(p, st);
      return;
    }
    if (!st.isDirectory()) {
      // sockets, FIFOs, devices: never images (a FIFO would block the reader, /dev/zero never ends)
      if (named) skipped.push({ file: p, reason: `${fileKindOf(st)}: ${NOT_REGULAR}` });
      return;
    }
    const dirId = `${st.dev}:${st.ino}`;
    if (seenDirs.has(dirId)) return; // a directory reached twice (symbolic link loop, repeated argument)
    seenDirs.add(dirId);
    let names: string[];
    try {
      names = fs.readdirSync(p).sort();
    } catch (e) {
      problems.push({ file: p, reason: `cannot read directory (${errCode(e)})` });
      return;
    }
    for (const name of names) visit(path.join(p, name), false, false);
  };

  for (const arg of paths) {
    if (arg === STDIO_NAME && !fs.existsSync(arg)) {
      skipped.push({ file: arg, reason: `standard input: ${NOT_REGULAR}` });
      continue;
    }
    if (!hasGlobMagic(arg) || fs.existsSync(arg)) {
      visit(arg, true, true);
      continue;
    }
    const g = expandGlob(arg);
    for (const [dir, reason] of g.unreadable) problems.push({ file: dir, reason });
    if (g.matches.length === 0) {
      if (g.unreadable.length) continue;
      throw new InputError(`${arg}: no file matches this pattern`);
    }
    for (const m of g.matches) visit(m, false, true);
  }
  return { entries, problems, skipped };
}

/** Files under the given paths (directories recursively, globs expanded), in a stable order. */
export function collectFiles(paths: string[]): string[] {
  return collectEntries(paths).entries.map((e) => e.file);
}
