// Kernel .config reading (scripts/kconfig format: `CONFIG_X=value`, `# CONFIG_X is not set`), keeping the
// symbols that change the p2m (linux-p2m.md §0, §3, §5).
import fs from 'node:fs';
import zlib from 'node:zlib';
import { InputError } from '../common/errors.js';

/** The config symbols the emulator reads; every other symbol of a .config is ignored. */
export const P2M_CONFIG_SYMBOLS = [
  'CONFIG_XEN_BALLOON_MEMORY_HOTPLUG',
  'CONFIG_XEN_BALLOON_MEMORY_HOTPLUG_LIMIT',
  'CONFIG_XEN_MEMORY_HOTPLUG_LIMIT',
  'CONFIG_XEN_512GB',
  'CONFIG_XEN_MAX_DOMAIN_MEMORY',
] as const;

const GZIP_MAGIC = [0x1f, 0x8b];
const SET_LINE = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/;
const UNSET_LINE = /^# (CONFIG_[A-Za-z0-9_]+) is not set$/;

/**
 * Parse a .config text. Returns every P2M_CONFIG_SYMBOLS entry: its value, or 'n' when the file leaves it
 * unset (a .config is complete: a symbol it does not mention is not set). Throws when the text is not a
 * kernel config.
 */
export function parseKconfig(text: string, source: string): Record<string, string> {
  const all = new Map<string, string>();
  let configLines = 0;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    let m = SET_LINE.exec(line);
    if (m) {
      all.set(m[1]!, m[2]!.replace(/^"(.*)"$/, '$1'));
      configLines++;
      return;
    }
    m = UNSET_LINE.exec(line);
    if (m) {
      all.set(m[1]!, 'n');
      configLines++;
      return;
    }
    if (line.startsWith('#')) return;
    throw new InputError(`${source}:${i + 1}: not a kernel .config line: expected CONFIG_NAME=value or "# CONFIG_NAME is not set"`);
  });
  if (configLines === 0) throw new InputError(`${source}: not a kernel .config: no CONFIG_ lines found`);
  const out: Record<string, string> = {};
  for (const sym of P2M_CONFIG_SYMBOLS) out[sym] = all.get(sym) ?? 'n';
  return out;
}

export function loadKconfig(file: string): Record<string, string> {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(`${file}: cannot read the kernel config (${code === 'ENOENT' ? 'no such file' : code ?? String(e)})`);
  }
  if (buf[0] === GZIP_MAGIC[0] && buf[1] === GZIP_MAGIC[1]) {
    try {
      buf = zlib.gunzipSync(buf);
    } catch {
      throw new InputError(`${file}: offset 0: gzip data is corrupt`);
    }
  }
  return parseKconfig(buf.toString('utf8'), file);
}
