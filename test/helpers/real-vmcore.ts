// The real Xen 4.17 dom0 kdump vmcore (corpora/real/dom0-6.1-clean.vmcore.zst, from ../shared/real-dom0-kdump/clean,
// whose README gives its size, sha256 and every number the tests check), decompressed with Debian's zstd CLI
// (.ci/run installs it) once into node_modules/.cache/p2m-audit/ and reused while its size and the sha256 of
// its first MiB match. If zstd is missing this throws: the tests that use it fail loudly, they never skip.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const REPO = path.resolve(__dirname, '../..');
export const REAL_VMCORE_ZST = path.join(REPO, 'corpora/real/dom0-6.1-clean.vmcore.zst');
const CACHE_DIR = path.join(REPO, 'node_modules/.cache/p2m-audit');
const CACHED = path.join(CACHE_DIR, 'dom0-6.1-clean.vmcore');
/** README: "1,878,511,616 bytes, sha256 4dcaff77…"; `zstd -d` of the committed copy gives that sha256 (checked when it was committed). */
export const REAL_VMCORE_BYTES = 1_878_511_616;
/** The cache is reused when its first MiB (ELF header, program headers, notes, low memory) has this sha256. */
const HEAD_BYTES = 1024 * 1024;
const HEAD_SHA256 = '51700d6e9b7d65a94a123f52ed731f3c2eb28f848b17adeace4c1054ff759aca';
/** zstd writes the 1.8 GB (167 MB of it data, the rest holes) in about a second; allow for slow disks. */
const ZSTD_TIMEOUT_MS = 600_000;

let known: string | null = null;

function headSha256(file: string): string {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(HEAD_BYTES);
    const n = fs.readSync(fd, b, 0, HEAD_BYTES, 0);
    return createHash('sha256').update(b.subarray(0, n)).digest('hex');
  } finally {
    fs.closeSync(fd);
  }
}

function matches(file: string): boolean {
  return fs.existsSync(file) && fs.statSync(file).size === REAL_VMCORE_BYTES && headSha256(file) === HEAD_SHA256;
}

/** Path of the decompressed real vmcore (decompressed on first use, then reused). */
export function realVmcorePath(): string {
  if (known) return known;
  if (!matches(CACHED)) {
    fs.mkdirSync(CACHE_DIR, { recursive: true });
    const tmp = `${CACHED}.${process.pid}.tmp`;
    const r = spawnSync('zstd', ['-d', '-q', '-f', '-o', tmp, REAL_VMCORE_ZST], { encoding: 'utf8', timeout: ZSTD_TIMEOUT_MS });
    if (r.error || r.status !== 0 || !matches(tmp)) {
      fs.rmSync(tmp, { force: true });
      throw new Error(`could not decompress ${REAL_VMCORE_ZST} with zstd (Debian package zstd; .ci/run installs it): ${r.error?.message ?? `exit ${r.status}: ${(r.stderr ?? '').trim()}`}`);
    }
    fs.renameSync(tmp, CACHED); // atomic: a parallel test file sees the old state or the whole file
  }
  known = CACHED;
  return CACHED;
}
