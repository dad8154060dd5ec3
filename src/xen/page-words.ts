// A 4 KiB page of little-endian u64 entries (page-table entries, p2m entries) as u32 words (lo, hi per
// entry), for loops that decode every entry: a typed view in place where the host and alignment allow.
import os from 'node:os';
import { PAGE_SIZE } from './abi.js';

const WORD_BYTES = Uint32Array.BYTES_PER_ELEMENT;
/** u32 words per 4 KiB page. */
export const WORDS_PER_PAGE = PAGE_SIZE / WORD_BYTES;
/** Typed-array views read native byte order: on a little-endian host they read the entries' words directly. */
export const LITTLE_ENDIAN_HOST = os.endianness() === 'LE';

/**
 * The page's u32 words in entry order: a view sharing the page's memory on a little-endian host when the
 * page is 4-byte aligned (the usual case), else a decoded copy — into `scratch` when given (hot loops
 * reuse one), else a new array. Read it before the page buffer (or the scratch) is reused.
 */
export function pageWords(page: Buffer, scratch?: Uint32Array): Uint32Array {
  if (LITTLE_ENDIAN_HOST && page.byteOffset % WORD_BYTES === 0) return new Uint32Array(page.buffer, page.byteOffset, WORDS_PER_PAGE);
  const w = scratch ?? new Uint32Array(WORDS_PER_PAGE);
  for (let k = 0; k < WORDS_PER_PAGE; k++) w[k] = page.readUInt32LE(k * WORD_BYTES);
  return w;
}
