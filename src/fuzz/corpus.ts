// The fuzz corpus (docs/fuzz.md): every file under the given paths, .gz gunzipped into the work directory,
// probed with detectFormat, given its symbols and analysed into an anatomy; and where work directories go.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { InputError } from '../common/errors.js';
import { detectFormat, readHead } from '../formats/open-image.js';
import { loadSymbols } from '../formats/symbols.js';
import { analyze } from './analyze.js';
import type { Anatomy } from './anatomy.js';

/** Names that identify a symbol file next to an image. */
const SYMBOL_FILE_RE = /^(System\.map|kallsyms)/i;
/** Suffix openImage looks for next to an image (symbols.ts symbolsBeside). */
const BESIDE_SUFFIX = '.map';
export const GZ = '.gz';

export function defaultWorkParent(): string {
  const shm = '/dev/shm';
  try {
    fs.accessSync(shm, fs.constants.W_OK);
    return shm;
  } catch {
    return os.tmpdir();
  }
}

function listFiles(p: string, out: string[]): void {
  const st = fs.statSync(p);
  if (st.isDirectory()) {
    for (const name of fs.readdirSync(p).sort()) listFiles(path.join(p, name), out);
  } else if (st.isFile()) {
    out.push(p);
  }
}

export async function gunzipTo(src: string, dst: string): Promise<void> {
  await pipeline(fs.createReadStream(src), zlib.createGunzip(), fs.createWriteStream(dst));
}

/** Symbols for an image: `<file>.map` as openImage would find it, else a System.map/kallsyms file beside it. */
function symbolsPathFor(source: string, format: string): string | null {
  const plain = source.endsWith(GZ) ? source.slice(0, -GZ.length) : source;
  for (const p of [source + BESIDE_SUFFIX, plain + BESIDE_SUFFIX]) if (fs.existsSync(p)) return p;
  if (format === 'p2ms') return null; // snapshots carry their own symbols
  const dir = path.dirname(source);
  for (const name of fs.readdirSync(dir).sort()) {
    if (!SYMBOL_FILE_RE.test(name)) continue;
    const p = path.join(dir, name);
    try {
      loadSymbols(p);
      return p;
    } catch {
      // not a symbol file after all
    }
  }
  return null;
}

export async function prepareCorpus(
  inputs: string[],
  workDir: string,
  onEvent: (line: string) => void,
): Promise<{ entries: Anatomy[]; skipped: { path: string; why: string }[] }> {
  const files: string[] = [];
  for (const p of inputs) {
    if (!fs.existsSync(p)) throw new InputError(`${p}: no such file or directory`);
    listFiles(p, files);
  }
  const entries: Anatomy[] = [];
  const skipped: { path: string; why: string }[] = [];
  const unpacked = path.join(workDir, 'corpus');
  fs.mkdirSync(unpacked, { recursive: true });
  for (const source of files) {
    let basePath = source;
    if (source.endsWith(GZ)) {
      basePath = path.join(unpacked, `${entries.length + skipped.length}-${path.basename(source, GZ)}`);
      try {
        await gunzipTo(source, basePath);
      } catch (e) {
        skipped.push({ path: source, why: `not a readable gzip file (${(e as Error).message})` });
        continue;
      }
    }
    const d = detectFormat(readHead(basePath), basePath); // the path lets an ELF be probed by its notes
    if (d.format === null) {
      skipped.push({ path: source, why: d.description });
      if (basePath !== source) fs.rmSync(basePath, { force: true });
      continue;
    }
    const symbolsPath = symbolsPathFor(source, d.format);
    const symbols = symbolsPath ? loadSymbols(symbolsPath) : null;
    const ext = path.extname(path.basename(source, GZ)).slice(1) || d.format;
    const a = analyze(source, basePath, ext, d.format, symbols, symbolsPath);
    entries.push(a);
    onEvent(
      `corpus: ${source} (${d.format}, ${a.size} bytes${symbolsPath ? `, symbols ${path.basename(symbolsPath)}` : ''}): ${a.structure.length} structure pages, ${a.ptSteps.length} page-table steps, ${a.vars.length} kernel variables, ${a.fields.length} length fields${a.notes.length ? `; ${a.notes.join('; ')}` : ''}`,
    );
  }
  return { entries, skipped };
}

