// Helpers the command modules share (I/O at the CLI's edge): loading the text inputs (inputs/text-input.ts:
// regular files or '-', size caps, streamed where the format allows), the TTY progress line, checking every
// output before the work (formats/output-file.ts), --system-map, and standard output that may be closed.
import { InputError } from '../common/errors.js';
import { STDIO_NAME } from '../common/input-file.js';
import { checkOutput, writeOutputText, type OutputRules } from '../formats/output-file.js';
import { type SymbolTable } from '../formats/symbols.js';
import { loadSymbols } from '../formats/symbols.js';
import { parseE820, type E820Entry } from '../inputs/e820.js';
import { sourceName, textInputLines } from '../inputs/text-input.js';

/** --e820 FILE ('-' = standard input): parsed line by line as it is read. */
export function loadE820(file: string): E820Entry[] {
  return parseE820(textInputLines(file, 'e820'), sourceName(file));
}

/**
 * True once a write to standard output failed: its reader went away (EPIPE; cli.ts lets the command finish
 * so the exit code stays the verdict) or the write error cli.ts reports. Long printers stop when it is.
 */
export function stdoutGone(): boolean {
  return process.stdout.errored != null;
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

/** How a command takes '-' as an output: 'text' writes it to standard output; otherwise it is refused. */
export interface OutputsRules extends OutputRules {
  stdout?: 'text';
}

/**
 * Check every output a command will write before its work starts (formats/output-file.ts): none may be an
 * input of the run or anything but a regular file, and an existing one needs --force. '-' is standard
 * output where the command prints text there (`stdout: 'text'`), and refused elsewhere.
 */
export function checkOutputs(outputs: readonly (string | undefined)[], rules: OutputsRules): void {
  for (const out of outputs) {
    if (!out) continue;
    if (out === STDIO_NAME) {
      if (rules.stdout === 'text') continue;
      throw new InputError(`${STDIO_NAME}: standard output cannot take this output: images are binary files written at random offsets (with FILE.map beside them); give a file name`);
    }
    checkOutput(out, rules);
  }
}

/**
 * A text output (--svg): written whole and atomically to its file, or to standard output for '-' (the
 * command's report then goes to standard error, see `reportStream`).
 */
export function writeTextOutput(out: string, text: string, rules: OutputRules): void {
  if (out === STDIO_NAME) process.stdout.write(text);
  else writeOutputText(out, text, rules);
}

/** Where a command prints its report: standard error when a text output ('-') has taken standard output. */
export function reportStream(...outputs: (string | undefined)[]): NodeJS.WriteStream {
  return outputs.includes(STDIO_NAME) ? process.stderr : process.stdout;
}

export function symbolsOpt(file: string | undefined): { symbols?: SymbolTable } {
  return file ? { symbols: loadSymbols(file) } : {};
}

