// The audit pipeline on one image: toolstack view (as save does) + guest view → worker pool (or the calling
// thread, for small guests) → report.
import { InputError } from '../common/errors.js';
import { FRAMES_AT_FILE_OFFSETS, type GuestImage } from '../formats/guest-image.js';
import { readGuestViewOrMirror } from '../views/guest-mirror.js';
import { mapP2m, type ToolstackMethod } from '../views/toolstack-view.js';
import { buildReport, type AuditReport } from './verdict.js';
import { predictSave } from './save-prediction.js';
import { auditInProcess, auditOnThisThread, createAuditPool, planLeaves, runAudit, type AuditRanges } from './run-audit.js';
import { P2M_PER_PAGE } from '../xen/abi.js';
import type { GuestView, ToolstackView } from '../views/p2m-leaves.js';

export interface AuditImageOptions {
  /** worker threads; 0 = on the calling thread (so are small guests: IN_THREAD_MAX_LEAVES, IN_THREAD_MAX_LEAVES_WARM) */
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
 * With a pool already running (opts.pool: scan, a long-lived caller), guests whose audit classifies at
 * most this many leaves one by one stay on the calling thread: below it, handing shards to the workers
 * costs more than it saves (8192 leaves = a 16 GiB guest, 32 MiB of leaf pages).
 */
export const IN_THREAD_MAX_LEAVES_WARM = 8192;
/**
 * Without one, workers must be started (~50 ms each, cold code on 2 vCPUs); one thread reading the leaf
 * pages wins up to about a 512 GiB guest (measured with `audit --jobs 2` children: 64 GiB 0.20 vs
 * 0.26 s, 256 GiB 0.29 vs 0.34 s on the thread; 1 TiB 0.60 vs 0.54 s with the pool).
 */
export const IN_THREAD_MAX_LEAVES = 262144;

/** Whether the guest looks large enough, from shared_info's arch.max_pfn alone, to start workers before the walks. */
function looksLarge(img: GuestImage): boolean {
  return Number(img.arch.maxPfn) / P2M_PER_PAGE > IN_THREAD_MAX_LEAVES;
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
  const guest = readGuestViewOrMirror(img); // a failed save's stream: through the frame-list mirror
  const plan = planLeaves(tool, guest);
  const progress = { onProgress: opts.onProgress, plan };
  // an image in memory, or a format whose frames have no file offset the workers could read: frames through readFrame
  const audit = !img.path || !FRAMES_AT_FILE_OFFSETS[img.format]
    ? auditInProcess(img, tool, guest, progress)
    : opts.jobs === 0 || plan.activeLeaves <= (opts.pool ? IN_THREAD_MAX_LEAVES_WARM : IN_THREAD_MAX_LEAVES)
      ? auditOnThisThread(img, tool, guest, progress)
      : await runAudit(img, tool, guest, { jobs: opts.jobs, pool: pool(), ...progress });
  const report = buildReport({ img, tool, guest, ranges: audit.ranges, stats: audit.stats, endPfn: audit.endPfn });
  // a dom0 kdump's toolstack is crash (method 'crash'): nothing saves or migrates a dom0, so no save is predicted
  if (tool.method !== 'crash') report.save = predictSave(img, tool, guest, report.fatalPages);
  return { report, tool, guest, audit };
}
