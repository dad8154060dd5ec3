// The audit pipeline on one image: toolstack view (as save does) + guest view → worker pool → report.
import { InputError, type GuestImage } from '../image/guest-image.js';
import { readGuestView } from '../guest/guest-view.js';
import { mapP2m, type ToolstackMethod } from '../toolstack/toolstack-view.js';
import { buildReport, type AuditReport } from '../report/classify.js';
import { auditInProcess, createAuditPool, runAudit, type AuditRanges } from './run-audit.js';
import type { GuestView, ToolstackView } from './leaf-map.js';

export interface AuditImageOptions {
  /** worker threads; 0 = on the calling thread */
  jobs: number;
  method?: ToolstackMethod;
  onProgress?: (doneLeaves: number, totalLeaves: number) => void;
  /** a pool started earlier with `jobs` threads (createAuditPool), reused across images; the caller destroys it */
  pool?: ReturnType<typeof createAuditPool>;
}

export interface AuditOutcome {
  report: AuditReport;
  tool: ToolstackView;
  guest: GuestView;
  audit: AuditRanges;
}

export async function auditImage(img: GuestImage, opts: AuditImageOptions): Promise<AuditOutcome> {
  // start the workers first: they load while the main thread walks both views
  if (opts.pool) return auditWithPool(img, opts, opts.pool);
  const pool = opts.jobs > 0 && img.path ? createAuditPool(opts.jobs) : undefined;
  try {
    return await auditWithPool(img, opts, pool);
  } finally {
    await pool?.destroy();
  }
}

async function auditWithPool(img: GuestImage, opts: AuditImageOptions, pool: ReturnType<typeof createAuditPool> | undefined): Promise<AuditOutcome> {
  const tool = mapP2m(img, { method: opts.method });
  if (tool.absentFrame !== undefined) {
    throw new InputError(`${img.path || '<image>'}: the ${tool.method} walk's ${tool.failure}: the frame list points outside the image`);
  }
  const guest = readGuestView(img);
  const audit =
    opts.jobs === 0 || !img.path
      ? auditInProcess(img, tool, guest, { onProgress: opts.onProgress })
      : await runAudit(img, tool, guest, { jobs: opts.jobs, onProgress: opts.onProgress, pool });
  const report = buildReport({ img, tool, guest, ranges: audit.ranges, stats: audit.stats, endPfn: audit.endPfn });
  return { report, tool, guest, audit };
}
