// The audit pipeline on one image: toolstack view (as save does) + guest view → worker pool (or the calling
// thread, for small guests) → report.
import { InputError, type GuestImage } from '../image/guest-image.js';
import { readGuestView } from '../guest/guest-view.js';
import { mapP2m, type ToolstackMethod } from '../toolstack/toolstack-view.js';
import { buildReport, type AuditReport } from '../report/classify.js';
import { auditInProcess, createAuditPool, planLeaves, runAudit, type AuditRanges } from './run-audit.js';
import { P2M_PER_PAGE } from '../xen/abi.js';
import type { GuestView, ToolstackView } from './leaf-map.js';

export interface AuditImageOptions {
  /** worker threads; 0 = on the calling thread (so are guests of at most IN_PROCESS_MAX_LEAVES leaves) */
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

/**
 * Guests whose audit classifies at most this many leaves one by one are audited on the calling thread:
 * booting worker threads (~50 ms each) costs more than reading their leaf pages does (8192 leaves = a
 * 16 GiB guest, 32 MiB of leaf pages, ~20–40 ms on one thread). Both paths give the same ranges.
 */
export const IN_PROCESS_MAX_LEAVES = 8192;

/** Whether the guest looks large enough, from shared_info's arch.max_pfn alone, to start workers before the walks. */
function looksLarge(img: GuestImage): boolean {
  return Number(img.arch.maxPfn) / P2M_PER_PAGE > IN_PROCESS_MAX_LEAVES;
}

export async function auditImage(img: GuestImage, opts: AuditImageOptions): Promise<AuditOutcome> {
  if (opts.pool) return auditWithPool(img, opts, () => opts.pool!);
  // start the workers first when the guest looks large: they load while the main thread walks both views
  let pool = opts.jobs > 0 && img.path && looksLarge(img) ? createAuditPool(opts.jobs) : undefined;
  try {
    return await auditWithPool(img, opts, () => (pool ??= createAuditPool(opts.jobs)));
  } finally {
    await pool?.destroy();
  }
}

async function auditWithPool(img: GuestImage, opts: AuditImageOptions, pool: () => ReturnType<typeof createAuditPool>): Promise<AuditOutcome> {
  const tool = mapP2m(img, { method: opts.method });
  if (tool.absentFrame !== undefined) {
    throw new InputError(`${img.path || '<image>'}: the ${tool.method} walk's ${tool.failure}: the frame list points outside the image`);
  }
  const guest = readGuestView(img);
  const plan = planLeaves(tool, guest);
  const inProcess = opts.jobs === 0 || !img.path || plan.activeLeaves <= IN_PROCESS_MAX_LEAVES;
  const audit = inProcess
    ? auditInProcess(img, tool, guest, { onProgress: opts.onProgress, plan })
    : await runAudit(img, tool, guest, { jobs: opts.jobs, onProgress: opts.onProgress, pool: pool(), plan });
  const report = buildReport({ img, tool, guest, ranges: audit.ranges, stats: audit.stats, endPfn: audit.endPfn });
  return { report, tool, guest, audit };
}
