// Bulk scanning: every file under the given paths, detected by content; unknown files are skipped.
import fs from 'node:fs';
import path from 'node:path';
import { auditImage } from '../audit/audit-image.js';
import { InputError } from '../image/guest-image.js';
import { detectFormat, openImage, readHead } from '../image/open-image.js';
import type { AuditReport } from '../report/classify.js';

export interface ScanResult {
  file: string;
  status: 'audited' | 'skipped' | 'error';
  format?: string;
  verdict?: AuditReport['verdict'];
  exitCode?: number;
  fatalPages?: number;
  fatalMib?: number;
  reason?: string;
}

/** Files under the given paths (directories recursively, sorted for a stable order). */
export function collectFiles(paths: string[]): string[] {
  const out: string[] = [];
  const visit = (p: string): void => {
    let st: fs.Stats;
    try {
      st = fs.statSync(p);
    } catch {
      throw new InputError(`${p}: no such file or directory`);
    }
    if (st.isDirectory()) {
      for (const name of fs.readdirSync(p).sort()) visit(path.join(p, name));
    } else if (st.isFile()) out.push(p);
  };
  for (const p of paths) visit(p);
  return out;
}

export async function scanFile(file: string, jobs: number): Promise<ScanResult> {
  let head: Buffer;
  try {
    head = readHead(file);
  } catch (e) {
    return { file, status: 'error', reason: (e as Error).message };
  }
  const d = detectFormat(head);
  if (!d.format) return { file, status: 'skipped', reason: d.description };
  try {
    const img = openImage(file);
    try {
      const { report } = await auditImage(img, { jobs });
      return {
        file,
        status: 'audited',
        format: d.format,
        verdict: report.verdict,
        exitCode: report.exitCode,
        fatalPages: report.fatalPages,
        fatalMib: Math.round((report.fatalPages * 4096) / 1048576 * 10) / 10,
      };
    } finally {
      img.close();
    }
  } catch (e) {
    if (e instanceof InputError) return { file, status: 'error', format: d.format, reason: e.message };
    throw e;
  }
}
