// Which System.map fits a running guest: `--system-map-dir DIR` holds maps named System.map-VERSION (Debian's
// /boot naming). The guest's own banner decides: Linux init/version.c keeps linux_banner = "Linux version
// VERSION (...)", the text /proc/version prints; for each candidate, its linux_banner address is read in the
// guest (page walk from vCPU 0's cr3) and the map whose VERSION the banner names is taken. PV guests are not
// relocated (no KASLR: the domain builder loads the kernel at its link address), so System.map addresses hold.
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../common/errors.js';
import type { GuestImage } from '../formats/guest-image.js';
import { loadSymbols, type SymbolTable } from '../formats/symbols.js';
import { readVirt } from '../translate/page-walk.js';
import { PAGE_SHIFT } from '../xen/abi.js';

const SYSTEM_MAP_PREFIX = 'System.map-';
const BANNER_PREFIX = 'Linux version ';
/** Bytes of the banner read: enough for the prefix and a long version string. */
const BANNER_BYTES = 160;

/** The System.map-VERSION files of a directory (also .gz), sorted by name. */
export function systemMapsIn(dir: string): { version: string; file: string }[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (e) {
    throw new InputError(`${dir}: cannot read the System.map directory (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  return names
    .filter((n) => n.startsWith(SYSTEM_MAP_PREFIX))
    .sort()
    .map((n) => ({ version: n.slice(SYSTEM_MAP_PREFIX.length).replace(/\.gz$/, ''), file: path.join(dir, n) }));
}

/** The guest's banner text at `va`, or null when it cannot be read. */
export function bannerAt(img: GuestImage, va: bigint): string | null {
  const cr3Frame = Number(img.cr3 >> BigInt(PAGE_SHIFT));
  const b = readVirt(img, cr3Frame, va, BANNER_BYTES);
  if (!Buffer.isBuffer(b)) return null;
  const text = b.toString('latin1');
  const nul = text.indexOf('\0');
  return nul >= 0 ? text.slice(0, nul) : text;
}

/** The version a banner names ("Linux version 6.1.0-56-amd64 (debian-kernel@…" → "6.1.0-56-amd64"), or null. */
export function bannerVersion(banner: string): string | null {
  if (!banner.startsWith(BANNER_PREFIX)) return null;
  return banner.slice(BANNER_PREFIX.length).split(' ')[0] || null;
}

/** Symbols of the map in `dir` whose version the guest's own linux_banner names. */
export function symbolsForGuest(img: GuestImage, dir: string, label: string): { symbols: SymbolTable; file: string; version: string } {
  const maps = systemMapsIn(dir);
  if (maps.length === 0) throw new InputError(`${dir}: no ${SYMBOL_MAP_HINT} in it`);
  const seen: string[] = [];
  for (const m of maps) {
    const symbols = loadSymbols(m.file);
    const va = symbols.get('linux_banner');
    if (va === undefined) continue;
    const banner = bannerAt(img, va);
    const version = banner === null ? null : bannerVersion(banner);
    if (version === m.version) return { symbols, file: m.file, version };
    seen.push(`${m.version}: ${version === null ? 'no banner there' : `banner says ${version}`}`);
  }
  throw new InputError(`${label}: no System.map in ${dir} matches the guest's linux_banner (${seen.join('; ') || 'none has linux_banner'})`);
}

const SYMBOL_MAP_HINT = 'System.map-VERSION file';
