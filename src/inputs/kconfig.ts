// Kernel .config reading (scripts/kconfig format: `CONFIG_X=value`, `# CONFIG_X is not set`), keeping the
// symbols that change the p2m (linux-p2m.md §0, §3, §5).
import { InputError } from '../common/errors.js';
import { sourceName, textInputLines } from './text-input.js';

/** The config symbols the emulator reads; every other symbol of a .config is ignored. */
export const P2M_CONFIG_SYMBOLS = [
  'CONFIG_XEN_BALLOON_MEMORY_HOTPLUG',
  'CONFIG_XEN_BALLOON_MEMORY_HOTPLUG_LIMIT',
  'CONFIG_XEN_MEMORY_HOTPLUG_LIMIT',
  'CONFIG_XEN_512GB',
  'CONFIG_XEN_MAX_DOMAIN_MEMORY',
] as const;

const SET_LINE = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/;
const UNSET_LINE = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/;

/**
 * Parse a .config text. Returns every P2M_CONFIG_SYMBOLS entry: its value, or 'n' when the file leaves it
 * unset (a .config is complete: a symbol it does not mention is not set). Throws when the text is not a
 * kernel config.
 */
export function parseKconfig(text: string | Iterable<string>, source: string): Record<string, string> {
  const all = new Map<string, string>();
  let configLines = 0;
  let lineNo = 0;
  for (const raw of typeof text === 'string' ? text.split(/\r?\n/) : text) {
    lineNo++;
    const line = raw.trim();
    if (line === '') continue;
    let m = SET_LINE.exec(line);
    if (m) {
      all.set(m[1]!, m[2]!.replace(/^"(.*)"$/, '$1'));
      configLines++;
      continue;
    }
    m = UNSET_LINE.exec(line);
    if (m) {
      all.set(m[1]!, 'n');
      configLines++;
      continue;
    }
    if (line.startsWith('#')) continue;
    throw new InputError(`${source}:${lineNo}: not a kernel .config line: expected CONFIG_NAME=value or "# CONFIG_NAME is not set"`);
  }
  if (configLines === 0) throw new InputError(`${source}: not a kernel .config: no CONFIG_ lines found`);
  const out: Record<string, string> = {};
  for (const sym of P2M_CONFIG_SYMBOLS) out[sym] = all.get(sym) ?? 'n';
  return out;
}

/** A kernel .config file (plain or gzip, '-' for standard input), streamed line by line under its size cap (inputs/text-input.ts). */
export function loadKconfig(file: string): Record<string, string> {
  return parseKconfig(textInputLines(file, 'kconfig'), sourceName(file));
}
