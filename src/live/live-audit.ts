// The audit of a running domain: the same views, leaf plan, per-leaf classification, verdict and save
// prediction as src/audit/audit-image.ts, on the calling thread through readFrame, with the leaf pages announced to the
// live reader first so that they are mapped in batches (xenforeignmemory_map of BATCH_FRAMES frames, as
// xen-mfndump maps the whole p2m in one call) rather than one by one.
import { InputError } from '../common/errors.js';
import type { LiveDomainImage } from '../formats/live-domain.js';
import { readGuestView } from '../views/guest-view.js';
import { mapP2m, type ToolstackMethod } from '../views/toolstack-view.js';
import { GuestLeaf } from '../views/p2m-leaves.js';
import { auditInProcess, planLeaves, type LeafPlan } from '../audit/run-audit.js';
import { buildReport } from '../audit/verdict.js';
import { predictSave } from '../audit/save-prediction.js';
import type { AuditOutcome } from '../audit/audit-image.js';

/** The leaf frames the classification reads, in its order: leaf k's guest page, then its toolstack page. */
export function leafReadOrder(plan: LeafPlan): Float64Array {
  const out = new Float64Array(plan.activeLeaves * 2);
  let n = 0;
  for (let k = 0; k < plan.activeLeaves; k++) {
    const g = plan.gKinds[k] === GuestLeaf.PAGE ? plan.gFrames[k]! : -1;
    const t = plan.tFrames[k]!;
    if (g >= 0) out[n++] = g;
    if (t >= 0 && t !== g) out[n++] = t;
  }
  return out.subarray(0, n);
}

/** The views name an image by its path ('<image>' when it has none): a live domain is named by its label. */
export function relabel<T>(img: LiveDomainImage, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof InputError && e.message.startsWith(NO_PATH)) throw new InputError(img.label + e.message.slice(NO_PATH.length));
    throw e;
  }
}
const NO_PATH = '<image>';

/** Audit one opened live domain; the report names the domain instead of a file. */
export function auditLiveDomain(img: LiveDomainImage, opts: { method?: ToolstackMethod } = {}): AuditOutcome {
  return relabel(img, () => auditHere(img, opts));
}

function auditHere(img: LiveDomainImage, opts: { method?: ToolstackMethod }): AuditOutcome {
  const tool = mapP2m(img, { method: opts.method });
  if (tool.absentFrame !== undefined) {
    throw new InputError(`${img.label}: the ${tool.method} walk's ${tool.failure}: the frame list names a frame Xen would not map`);
  }
  const guest = readGuestView(img);
  const plan = planLeaves(tool, guest);
  img.readAhead(leafReadOrder(plan));
  try {
    const audit = auditInProcess(img, tool, guest, { plan });
    const report = buildReport({ img, tool, guest, ranges: audit.ranges, stats: audit.stats, endPfn: audit.endPfn });
    report.file = img.label;
    // what a real `xl save` / `xl migrate` of it would do (vCPU frames past the bound stop it)
    report.save = predictSave(img, tool, guest, report.fatalPages);
    return { report, tool, guest, audit };
  } finally {
    img.readAhead(null);
  }
}
