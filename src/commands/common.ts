// Helpers the command modules share (I/O at the CLI's edge): reading input text, the TTY progress line,
// "is this output an input file?", writing a picture, and --system-map.
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../common/errors.js';
import { type SymbolTable } from '../formats/symbols.js';
import { loadSymbols } from '../formats/symbols.js';

export function readText(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(`${file}: cannot read ${what} (${code === 'ENOENT' ? 'no such file' : code ?? String(e)})`);
  }
}

/** A progress line on stderr, only when it is a terminal. */
export function progress(label: string): ((done: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  let last = 0;
  return (done, total) => {
    const now = Date.now();
    if (done < total && now - last < 100) return;
    last = now;
    const pct = total ? Math.floor((done / total) * 100) : 100;
    process.stderr.write(`\r${label}: ${pct}% (${done}/${total} leaf pages)${done >= total ? '\n' : ''}`);
  };
}

export function sameFile(a: string, b: string): boolean {
  try {
    const sa = fs.statSync(a);
    const sb = fs.statSync(b);
    return sa.ino === sb.ino && sa.dev === sb.dev;
  } catch {
    return path.resolve(a) === path.resolve(b);
  }
}


/** Write a picture next to the run's other output, never over an input. */
export function writeSvgFile(out: string, svg: string, inputs: string[]): void {
  for (const i of inputs) if (i && fs.existsSync(out) && sameFile(out, i)) throw new InputError(`${out}: is an input file; refusing to write the picture over it`);
  try {
    fs.writeFileSync(out, svg);
  } catch (e) {
    throw new InputError(`${out}: cannot write the picture (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}


export function symbolsOpt(file: string | undefined): { symbols?: SymbolTable } {
  return file ? { symbols: loadSymbols(file) } : {};
}

