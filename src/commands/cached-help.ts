// Answers that need no commander program (docs/bench-notes.md "Cold start"): `--version`, and `--help` of the
// program or of one command from the text commander printed at build time (scripts/bundle.mjs writes it).
// commander lays help out for the terminal's width, or 80 columns when stdout is not a terminal (its
// Help.helpWidth / getOutHelpWidth): the cache holds the 80-column text, so it answers only at that width.
import fs from 'node:fs';
import { createRequire } from 'node:module';

/** The cache beside this module's build output: dist/src/commands/help-cache.json. */
export const HELP_CACHE_FILE = 'help-cache.json';
/** The width commander lays help out for when stdout is not a terminal (its default helpWidth). */
export const CACHED_HELP_WIDTH = 80;
/** Set to 0 to ignore the cache (scripts/bundle.mjs renders it with the cache off; tests compare both). */
export const HELP_CACHE_ENV = 'P2M_AUDIT_HELP_CACHE';

export interface HelpCache {
  /** the entry file the texts belong to: the text of dist/src/cli.js when they were rendered (entryKey) */
  entry: string;
  width: number;
  /** '' = the program's help; otherwise a command's name */
  help: Record<string, string>;
}

/** package.json's version, found by walking up from this file (dist/src/commands/ or src/commands/). */
export function packageVersion(): string {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'p2m-audit' && pkg.version) return pkg.version;
    } catch {
      // not at this level
    }
  }
  return 'unknown';
}

/** Which help `argv` asks for: '' for the program's, a command's name, or null (anything else). */
export function helpRequest(argv: readonly string[]): string | null {
  const isHelp = (a: string | undefined): boolean => a === '--help' || a === '-h';
  if (argv.length === 1 && isHelp(argv[0])) return '';
  if (argv.length === 2 && isHelp(argv[1]) && /^[a-z][a-z0-9-]*$/.test(argv[0]!)) return argv[0]!;
  return null;
}

/**
 * The key of an entry file's build: its text. The bundled entry is a few hundred bytes naming its chunks by
 * content hash (esbuild's hash covers the chunks a chunk imports), so any change to the program or its help
 * changes it; tsc's unbundled entry differs from it; copies (cp, npm pack) keep it.
 */
export function entryKey(entryPath: string): string {
  return fs.readFileSync(entryPath, 'utf8');
}

/** The width commander would lay help out for on this process's stdout. */
function stdoutHelpWidth(): number {
  // a terminal is a character device; so is /dev/null, which is not a terminal (commander: 80 columns).
  // node:tty is loaded only then: it brings node's whole net stack with it
  if (!fs.fstatSync(1).isCharacterDevice()) return CACHED_HELP_WIDTH;
  const { isatty } = createRequire(import.meta.url)('node:tty') as typeof import('node:tty');
  if (!isatty(1)) return CACHED_HELP_WIDTH;
  return process.stdout.columns || CACHED_HELP_WIDTH;
}

/** The cached help text `argv` asks for, when the cache belongs to `entryPath`'s build and the width matches. */
function cachedHelp(argv: readonly string[], entryPath: string): string | null {
  const want = helpRequest(argv);
  if (want === null || process.env[HELP_CACHE_ENV] === '0') return null;
  try {
    const cache = JSON.parse(fs.readFileSync(new URL(HELP_CACHE_FILE, import.meta.url), 'utf8')) as HelpCache;
    if (cache.width !== stdoutHelpWidth() || cache.entry !== entryKey(entryPath)) return null;
    const text = cache.help[want];
    return typeof text === 'string' ? text : null;
  } catch {
    return null; // no cache (an unbundled build, or run from the TypeScript sources): commander answers
  }
}

/** The whole stdout of `argv` when it needs no program (`--version`, a cached `--help`), else null. */
export function quickAnswer(argv: readonly string[], entryPath: string): string | null {
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) return `${packageVersion()}\n`;
  return cachedHelp(argv, entryPath);
}

/**
 * Write a quick answer to fd 1 without creating process.stdout (for a pipe that loads node's net stack). A
 * reader that went away (EPIPE) is not an error; a full pipe (EAGAIN, a non-blocking stdout) hands the rest
 * to process.stdout; any other failure is an output error: one line, exit 2 (as commands/program.ts's guard).
 */
export function writeQuickAnswer(text: string): number {
  const bytes = Buffer.from(text);
  let done = 0;
  try {
    while (done < bytes.length) done += fs.writeSync(1, bytes, done);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EPIPE') return 0;
    if (code === 'EAGAIN') {
      process.stdout.on('error', () => undefined); // a reader gone by then changes nothing either
      process.stdout.write(bytes.subarray(done));
      return 0;
    }
    process.stderr.write(`p2m-audit: cannot write standard output (${code ?? (e as Error).message})\n`);
    return 2;
  }
  return 0;
}
