// Runs Xen's own stream verifier (xen-project/xen tools/python/scripts/verify-stream-v2, from Debian's
// xen-utils-4.17, fetched by scripts/get-xen-verifier.sh) on a file. If the verifier cannot be obtained
// this throws: tests that use it fail loudly, they never skip.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const REPO = path.resolve(__dirname, '../..');
const SCRIPT = path.join(REPO, 'scripts/get-xen-verifier.sh');
const REL_BIN = 'usr/lib/xen-4.17/bin/verify-stream-v2';
const REL_PYTHONPATH = 'usr/lib/xen-4.17/lib/python';
/** The verifier reads a 100 MB stream in well under a second; allow for slow disks. */
const VERIFY_TIMEOUT_MS = 120_000;
const FETCH_TIMEOUT_MS = 300_000;

let cachedRoot: string | null = null;

/** Extracted root of xen-utils-4.17 (downloaded and unpacked on first use). */
export function xenVerifierRoot(): string {
  if (cachedRoot) return cachedRoot;
  const r = spawnSync('bash', [SCRIPT], { encoding: 'utf8', timeout: FETCH_TIMEOUT_MS });
  const root = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !root || !fs.existsSync(path.join(root, REL_BIN))) {
    throw new Error(
      `Xen's verify-stream-v2 could not be obtained (scripts/get-xen-verifier.sh exit ${r.status}${r.error ? `, ${r.error.message}` : ''}): ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`,
    );
  }
  cachedRoot = root;
  return root;
}

export interface VerifyResult {
  ok: boolean;
  status: number | null;
  /** stdout + stderr of the verifier (-v: one line per record) */
  output: string;
}

/** verify-stream-v2 -v -f <format> -i <file>: exit 0 means Xen's verifier accepts the stream. */
export function verifyStream(file: string, format: 'xl' | 'libxc'): VerifyResult {
  const root = xenVerifierRoot();
  const r = spawnSync('python3', [path.join(root, REL_BIN), '-v', '-f', format, '-i', file], {
    encoding: 'utf8',
    timeout: VERIFY_TIMEOUT_MS,
    env: { ...process.env, PYTHONPATH: path.join(root, REL_PYTHONPATH) },
  });
  if (r.error) throw new Error(`verify-stream-v2 could not run: ${r.error.message}`);
  return { ok: r.status === 0, status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}
