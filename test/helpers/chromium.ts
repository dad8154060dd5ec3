// Test helper: a real headless Chromium for the SVG tests. Finds Debian's /usr/bin/chromium (installing
// it with apt-get when absent; a machine that cannot get it fails the test loudly, never skips it), loads
// an HTML page with --dump-dom to collect script errors and layout measurements, takes a PNG screenshot,
// and decodes that PNG (8-bit RGB/RGBA, non-interlaced: what Chromium writes) with node:zlib.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

/** Where Debian's chromium package puts the browser. */
export const CHROMIUM_PATH = '/usr/bin/chromium';
/** apt-get may take minutes on a cold machine; a single browser run should not. */
const APT_TIMEOUT_MS = 15 * 60_000;
const BROWSER_TIMEOUT_MS = 90_000;
/** How long the page may run (virtual time) before the DOM is dumped or the screenshot taken. */
const VIRTUAL_TIME_BUDGET_MS = 5000;

/** The browser and a monospace font (the SVG's text widths are estimated for monospace). */
const INSTALL_ARGS = ['install', '-y', 'chromium', 'fonts-dejavu-core'];

const BROWSER_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--hide-scrollbars',
  '--force-device-scale-factor=1',
];

function apt(args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('apt-get', args, {
    encoding: 'utf8',
    timeout: APT_TIMEOUT_MS,
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

/** The chromium binary, installed with apt-get if needed. Throws (the test fails) when it cannot be had. */
export function ensureChromium(): string {
  if (fs.existsSync(CHROMIUM_PATH)) return CHROMIUM_PATH;
  const log: string[] = [];
  let r = apt(INSTALL_ARGS);
  log.push(r.out);
  if (!r.ok || !fs.existsSync(CHROMIUM_PATH)) {
    // a fresh machine has no package lists yet
    const u = apt(['update']);
    log.push(u.out);
    r = apt(INSTALL_ARGS);
    log.push(r.out);
  }
  if (!fs.existsSync(CHROMIUM_PATH)) {
    const tail = log.join('\n').split('\n').slice(-30).join('\n');
    throw new Error(`chromium is required for the SVG tests and could not be installed with apt-get:\n${tail}`);
  }
  return CHROMIUM_PATH;
}

/** Run chromium once on an HTML page in a fresh profile directory; returns stdout. */
function runBrowser(html: string, extra: string[], work: string): string {
  const browser = ensureChromium();
  const page = path.join(work, 'page.html');
  fs.writeFileSync(page, html);
  const profile = fs.mkdtempSync(path.join(work, 'profile-'));
  try {
    return execFileSync(
      browser,
      [...BROWSER_FLAGS, `--user-data-dir=${profile}`, `--virtual-time-budget=${VIRTUAL_TIME_BUDGET_MS}`, ...extra, `file://${page}`],
      { encoding: 'utf8', timeout: BROWSER_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] },
    );
  } finally {
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

function withTmp<T>(fn: (dir: string) => T): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-chromium-'));
  try {
    return fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The DOM after the page's scripts ran (chromium --dump-dom). */
export function dumpDom(html: string): string {
  return withTmp((dir) => runBrowser(html, ['--dump-dom'], dir));
}

/** A PNG screenshot of the page at the given window size (chromium --screenshot). */
export function screenshot(html: string, width: number, height: number): Buffer {
  return withTmp((dir) => {
    const out = path.join(dir, 'shot.png');
    runBrowser(html, [`--screenshot=${out}`, `--window-size=${width},${height}`], dir);
    if (!fs.existsSync(out)) throw new Error('chromium wrote no screenshot');
    return fs.readFileSync(out);
  });
}

export interface DecodedPng {
  width: number;
  height: number;
  /** RGBA, 4 bytes a pixel, rows top to bottom */
  rgba: Buffer;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const COLOR_RGB = 2;
const COLOR_RGBA = 6;

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

/** Decode an 8-bit RGB or RGBA non-interlaced PNG; anything else throws. */
export function decodePng(buf: Buffer): DecodedPng {
  if (buf.length < PNG_SIGNATURE.length || !buf.subarray(0, PNG_SIGNATURE.length).equals(PNG_SIGNATURE)) {
    throw new Error('not a PNG file');
  }
  let at = PNG_SIGNATURE.length;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (at + 8 <= buf.length) {
    const len = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    const data = buf.subarray(at + 8, at + 8 + len);
    at += 12 + len; // length, type, data, crc
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const [depth, color, , , interlace] = [data[8], data[9], data[10], data[11], data[12]];
      if (depth !== 8 || (color !== COLOR_RGB && color !== COLOR_RGBA) || interlace !== 0) {
        throw new Error(`unsupported PNG: bit depth ${depth}, colour type ${color}, interlace ${interlace}`);
      }
      channels = color === COLOR_RGB ? 3 : 4;
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
  }
  if (channels === 0) throw new Error('PNG has no IHDR');
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  if (raw.length < height * (stride + 1)) throw new Error('PNG image data is truncated');
  const px = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? px[row + i - channels] : 0;
      const b = y > 0 ? px[row - stride + i] : 0;
      const c = i >= channels && y > 0 ? px[row - stride + i - channels] : 0;
      const x = raw[src + i];
      let v: number;
      switch (filter) {
        case 0: v = x; break;
        case 1: v = x + a; break;
        case 2: v = x + b; break;
        case 3: v = x + ((a + b) >> 1); break;
        case 4: v = x + paeth(a, b, c); break;
        default: throw new Error(`bad PNG filter ${filter} in row ${y}`);
      }
      px[row + i] = v & 0xff;
    }
  }
  if (channels === 4) return { width, height, rgba: px };
  const rgba = Buffer.alloc(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    rgba[p * 4] = px[p * 3];
    rgba[p * 4 + 1] = px[p * 3 + 1];
    rgba[p * 4 + 2] = px[p * 3 + 2];
    rgba[p * 4 + 3] = 0xff;
  }
  return { width, height, rgba };
}

/** Pixel count per colour, keyed "#rrggbb" (alpha ignored). */
export function colourHistogram(img: DecodedPng): Map<string, number> {
  const counts = new Map<string, number>();
  for (let p = 0; p < img.width * img.height; p++) {
    const key = `#${((img.rgba[p * 4] << 16) | (img.rgba[p * 4 + 1] << 8) | img.rgba[p * 4 + 2]).toString(16).padStart(6, '0')}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}
