// gzip-compressed real files (corpora/real/*.gz, ../shared/real-xen-fatal/*/*.gz) decompressed once into
// os.tmpdir()/p2m-audit-real-cache/<sha256 prefix of the .gz>/ and reused while their size is the one the
// gzip trailer states (ISIZE, RFC 1952 §2.3.1: the size modulo 2^32; every file here is below 4 GiB).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';

const CACHE = path.join(os.tmpdir(), 'p2m-audit-real-cache');

/** ISIZE, the last 4 bytes of a gzip member: the uncompressed size modulo 2^32. */
function gzipSize(gz: string): number {
  const fd = fs.openSync(gz, 'r');
  try {
    const b = Buffer.alloc(4);
    fs.readSync(fd, b, 0, 4, fs.fstatSync(fd).size - 4);
    return b.readUInt32LE(0);
  } finally {
    fs.closeSync(fd);
  }
}

function sha16(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex').slice(0, 16);
}

/** Path of the decompressed `gz` (decompressed on first use). */
export async function gunzipCached(gz: string): Promise<string> {
  const dir = path.join(CACHE, sha16(gz));
  const file = path.join(dir, path.basename(gz, '.gz'));
  const size = gzipSize(gz);
  if (fs.existsSync(file) && fs.statSync(file).size === size) return file;
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await pipeline(fs.createReadStream(gz), zlib.createGunzip(), fs.createWriteStream(tmp));
  fs.renameSync(tmp, file);
  return file;
}
