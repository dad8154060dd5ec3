// Helpers the command modules share (I/O at the CLI's edge): reading input text, the TTY progress line,
// checking every output before the work (formats/output-file.ts), and --system-map.
import fs from 'node:fs';
import { InputError } from '../common/errors.js';
import { checkOutput, type OutputRules } from '../formats/output-file.js';
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

/**
 * Check every output a command will write before its work starts (formats/output-file.ts): none may be an
 * input of the run or anything but a regular file, and an existing one needs --force.
 */
export function checkOutputs(outputs: readonly (string | undefined)[], rules: OutputRules): void {
  for (const out of outputs) if (out) checkOutput(out, rules);
}

export function symbolsOpt(file: string | undefined): { symbols?: SymbolTable } {
  return file ? { symbols: loadSymbols(file) } : {};
}

