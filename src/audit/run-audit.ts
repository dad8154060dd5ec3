// The audit driver (ARCHITECTURE.md "Shard planner + workers"): models the page-by-page comparison of
// the guest's own p2m (GuestView) with the save side's view (ToolstackView) over one GuestImage.
// The main thread turns both views into per-leaf locations (frames → file offsets, or ToolLeaf codes),
// cuts the leaves into shards, has a piscina pool of workers (workers/audit-worker.ts) classify them,
// and merges the run-length ranges in pfn order. `auditInProcess` runs the same per-leaf loop on the
// calling thread through GuestImage.readFrame (tests, in-memory images, tiny guests).
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Piscina } from 'piscina';
import type { GuestImage } from '../formats/guest-image.js';
import { P2M_PER_PAGE, PAGE_SIZE } from '../xen/abi.js';
import { classifyShard, RangeSink, type LeafPageSource } from './compare-leaf.js';
import { GuestLeaf, guestLeafCount, kindAt, type GuestView, type ToolstackView } from '../views/p2m-leaves.js';
import { PfnClass, ToolLeaf, type ClassRange, type PfnClassCode } from './pfn-class.js';
import { planShards, type Shard } from './shard-plan.js';
import { readShard, type AuditTask } from './shard-reader.js';

/** Exact per-class totals of an audit (ranges beyond MAX_KEPT_RANGES are counted, not kept). */
export interface RangeStats {
  /** pages per class, indexed by PfnClass code */
  pages: number[];
  /** ranges per class */
  ranges: number[];
  /** ranges counted but not kept in `ranges` */
  dropped: number;
}

export function sinkStats(sink: RangeSink): RangeStats {
  return { pages: [...sink.pages], ranges: [...sink.ranges], dropped: sink.dropped };
}

/** Merged result of an audit: class ranges [start, end) covering pfns [0, endPfn) in order. */
export interface AuditRanges {
  ranges: ClassRange[];
  stats?: RangeStats;
  /** audited pfns: [0, endPfn), endPfn = leaves · 512 */
  endPfn: number;
  leaves: number;
  /** the toolstack bound used (a count; 0 when its walk failed) */
  tBoundPfn: number;
  shards: number;
  /** worker threads used (0 = in process) */
  threads: number;
}

export interface AuditOptions {
  jobs: number;
  /** a pool started earlier (createAuditPool) so its threads boot while the views are computed; the caller destroys it */
  pool?: Piscina<AuditTask, Float64Array>;
  /** planLeaves(tool, guest), when the caller has it already */
  plan?: LeafPlan;
  onProgress?: (doneLeaves: number, totalLeaves: number) => void;
}

/**
 * Per-leaf inputs of the whole audit, in the image's frame space. Guest frames are −1 where the leaf
 * has no private page; tool entries are a frame (≥ 0) or a ToolLeaf.* code.
 *
 * The per-leaf arrays stop at `activeLeaves`: past it lies the uniform tail — leaves the toolstack never
 * reaches whose guest side is the shared p2m_identity (or p2m_missing) page, e.g. the rest of a linux-4.x
 * guest's xen_p2m_size (512 GiB of pfn space) beyond its RAM. classifyLeaf gives every such leaf the same
 * benign class for all 512 pfns, so the tail is one range (`tailClass`) and the audit's work follows the
 * guest's size, not the size of its p2m area.
 */
export interface LeafPlan {
  /** all audited leaves: pfns [0, leaves · 512) */
  leaves: number;
  /** leaves [0, activeLeaves) are classified one by one; [activeLeaves, leaves) are the uniform tail */
  activeLeaves: number;
  /** PfnClass of every pfn of the tail (meaningless when activeLeaves = leaves) */
  tailClass: PfnClassCode;
  tBoundPfn: number;
  gKinds: Uint8Array;
  gFrames: Float64Array;
  tFrames: Float64Array;
  missingFrame: number;
  identityFrame: number;
}

/**
 * Audit range = max(guest leaves, toolstack leaves); guest leaves past the view's arrays read as its uniform
 * tail (GuestView.tail), past limitPfn as `guest.beyond`.
 */
export function planLeaves(tool: ToolstackView, guest: GuestView): LeafPlan {
  if (guest.limitPfn % P2M_PER_PAGE !== 0) {
    throw new Error(`guest view: limitPfn ${guest.limitPfn} is not a multiple of ${P2M_PER_PAGE}`);
  }
  const gLeaves = guestLeafCount(guest);
  // the guest's leaves in three stretches: the arrays [0, gArr), the view's tail [gArr, gLeaves), beyond
  const gArr = Math.min(guest.kinds.length, gLeaves);
  const viewTailKind = guest.tail ? guest.tail.kind : GuestLeaf.PAGE; // (no tail: gArr = gLeaves)
  const walkOk = tool.failure === null && tool.maxPfn >= 0;
  const tLeaves = walkOk ? tool.leafFrames.length : 0;
  const leaves = Math.max(gLeaves, tLeaves);
  const beyondKind = guest.beyond === 'identity' ? GuestLeaf.IDENTITY : GuestLeaf.MISSING;
  // the plan's uniform tail: shared identity/missing leaves past the toolstack's last leaf, all of one kind
  let active = leaves;
  const tailKind = leaves > 0 ? kindAt(guest, leaves - 1) : GuestLeaf.PAGE;
  if (tailKind !== GuestLeaf.PAGE) {
    // each stretch from the end: past the guest's leaves every kind is beyondKind, in its tail viewTailKind
    if (active > gLeaves && beyondKind === tailKind) active = Math.max(gLeaves, tLeaves);
    if (active > gArr && active <= gLeaves && viewTailKind === tailKind) active = Math.max(gArr, tLeaves);
    // within the arrays, the last leaf of another kind, found by Buffer's byte search (~40× TypedArray.lastIndexOf,
    // which steps element by element)
    if (active > tLeaves && active <= gArr) {
      const kindBytes = Buffer.from(guest.kinds.buffer, guest.kinds.byteOffset, gArr);
      let lastOther = -1;
      for (const other of [GuestLeaf.PAGE, GuestLeaf.MISSING, GuestLeaf.IDENTITY]) {
        if (other !== tailKind) lastOther = Math.max(lastOther, kindBytes.lastIndexOf(other, active - 1));
      }
      active = Math.max(tLeaves, lastOther + 1);
    }
  }
  // kinds copied and filled natively; the two loops read only locals (they run once per audit, mostly
  // before V8 has compiled them: each property load saved counts)
  const gKinds = new Uint8Array(active);
  const gEnd = Math.min(active, gArr);
  const gTailEnd = Math.max(gEnd, Math.min(active, gLeaves));
  gKinds.set(guest.kinds.subarray(0, gEnd));
  gKinds.fill(viewTailKind, gEnd, gTailEnd);
  gKinds.fill(beyondKind, gTailEnd, active);
  const gFrames = new Float64Array(active).fill(-1);
  const guestFrames = guest.leafFrames;
  for (let k = 0; k < gEnd; k++) if (gKinds[k] === GuestLeaf.PAGE) gFrames[k] = guestFrames[k]!;
  const tFrames = new Float64Array(active).fill(ToolLeaf.BEYOND);
  const toolFrames = tool.leafFrames;
  const missing = guest.missingFrame;
  for (let k = 0, tEnd = Math.min(active, tLeaves); k < tEnd; k++) {
    const f = toolFrames[k]!;
    if (f < 0) tFrames[k] = ToolLeaf.ABSENT;
    else if (missing >= 0 && f === missing && gKinds[k] === GuestLeaf.PAGE) tFrames[k] = ToolLeaf.SHARED_MISSING;
    else tFrames[k] = f;
  }
  return {
    leaves,
    activeLeaves: active,
    tailClass: tailKind === GuestLeaf.IDENTITY ? PfnClass.IDENTITY : PfnClass.MISSING,
    tBoundPfn: walkOk ? tool.maxPfn + 1 : 0,
    gKinds,
    gFrames,
    tFrames,
    missingFrame: guest.missingFrame,
    identityFrame: guest.identityFrame,
  };
}

/** Close a sink that holds the ranges of leaves [0, activeLeaves): append the plan's uniform tail. */
export function addTail(sink: RangeSink, plan: LeafPlan): void {
  sink.add(plan.activeLeaves * P2M_PER_PAGE, plan.leaves * P2M_PER_PAGE, plan.tailClass);
}

function offsetOf(img: GuestImage, frame: number): number {
  return frame >= 0 ? img.frameOffset(frame) : -1;
}

/**
 * Leaf k = first + i of the plan → the file offsets of its guest and toolstack pages, for i in [0, n). A loop of
 * its own: V8 compiles it on the stack (OSR) mid-way, and code after the loop would then run with no type
 * feedback and throw the compiled loop away again (one deopt per shard on a 1 TiB audit).
 */
function fillOffsets(img: GuestImage, plan: LeafPlan, first: number, gKinds: Uint8Array, gOffsets: Float64Array, tOffsets: Float64Array): void {
  const { gFrames, tFrames } = plan; // locals: this loop runs once per shard, mostly not yet compiled
  for (let i = 0, k = first, n = gKinds.length; i < n; i++, k++) {
    // workers read a guest page only for private leaves; shared ones come through missing/identityOffset
    const gf = gFrames[k]!;
    const gOff = gKinds[i] === GuestLeaf.PAGE ? offsetOf(img, gf) : -1;
    gOffsets[i] = gOff;
    const tf = tFrames[k]!;
    if (tf < 0) tOffsets[i] = tf;
    else if (tf === gf && gOff >= 0) tOffsets[i] = gOff; // same leaf page: one lookup
    else {
      const off = img.frameOffset(tf);
      tOffsets[i] = off >= 0 ? off : ToolLeaf.ABSENT;
    }
  }
}

/** The worker's task for one shard: frames → file offsets (absent tool frames → ToolLeaf.ABSENT). */
export function shardTask(img: GuestImage, plan: LeafPlan, shard: Shard): AuditTask {
  const n = shard.endLeaf - shard.firstLeaf;
  // shared memory: posted to a worker without a copy and without detaching anything (see runShard)
  const gOffsets = new Float64Array(new SharedArrayBuffer(n * Float64Array.BYTES_PER_ELEMENT));
  const tOffsets = new Float64Array(new SharedArrayBuffer(n * Float64Array.BYTES_PER_ELEMENT));
  const gKinds = new Uint8Array(new SharedArrayBuffer(n));
  gKinds.set(plan.gKinds.subarray(shard.firstLeaf, shard.endLeaf));
  fillOffsets(img, plan, shard.firstLeaf, gKinds, gOffsets, tOffsets);
  return {
    path: img.path,
    shard: shard.index,
    firstLeaf: shard.firstLeaf,
    gKinds,
    gOffsets,
    tOffsets,
    tBoundPfn: plan.tBoundPfn,
    missingOffset: offsetOf(img, plan.missingFrame),
    identityOffset: offsetOf(img, plan.identityFrame),
  };
}

/** Compiled layout: dist/src/audit/run-audit.js → dist/workers/audit-worker.js; from TS source → <repo>/dist/…. */
export function auditWorkerPath(): string {
  const here = import.meta.url;
  const rel = here.endsWith('.ts') ? '../../dist/workers/audit-worker.js' : '../../workers/audit-worker.js';
  return fileURLToPath(new URL(rel, here));
}

function describeShard(s: Shard): string {
  const first = s.firstLeaf * P2M_PER_PAGE;
  const last = s.endLeaf * P2M_PER_PAGE - 1;
  return `audit shard ${s.index} (leaves ${s.firstLeaf}-${s.endLeaf - 1}, pfns 0x${first.toString(16)}-0x${last.toString(16)})`;
}

/**
 * Start the audit worker threads now (they load their modules while the caller walks the views). piscina is
 * loaded here, on first use: an audit on the calling thread (every guest up to 512 GiB) never loads it
 * (~15 modules, ~18 ms of a cold start; docs/bench-notes.md "Cold start").
 */
export function createAuditPool(jobs: number): Piscina<AuditTask, Float64Array> {
  const workerPath = auditWorkerPath();
  if (!fs.existsSync(workerPath)) throw new Error(`audit worker not built: ${workerPath} is missing (run npm run build)`);
  const { Piscina: Pool } = createRequire(import.meta.url)('piscina') as typeof import('piscina');
  return new Pool<AuditTask, Float64Array>({ filename: workerPath, minThreads: jobs, maxThreads: jobs });
}

/**
 * Post one shard's task. Its arrays live in shared memory (shardTask), never transferred: the first
 * ArrayBuffer a thread detaches invalidates V8's detaching protector for that thread, and every optimised
 * function that reads a typed array is thrown away and compiled again — on the main thread that was the
 * views, the plan and shardTask itself in the middle of a large audit (docs/bench-notes.md "Session 6").
 */
function runShard(pool: Piscina<AuditTask, Float64Array>, task: AuditTask): Promise<Float64Array> {
  return pool.run(task);
}

/** Audit through the worker pool (jobs ≥ 1 threads; jobs = 1 still uses one worker thread). */
export async function runAudit(img: GuestImage, tool: ToolstackView, guest: GuestView, opts: AuditOptions): Promise<AuditRanges> {
  const jobs = opts.jobs;
  if (!Number.isInteger(jobs) || jobs < 1) throw new RangeError(`--jobs must be an integer ≥ 1, got ${jobs}`);
  if (!img.path) throw new Error('runAudit needs a file-backed image (path is empty); use auditInProcess');
  const plan = opts.plan ?? planLeaves(tool, guest);
  const shards = planShards(plan.activeLeaves, jobs);
  const threads = Math.max(1, Math.min(jobs, shards.length));
  const result: AuditRanges = { ranges: [], endPfn: plan.leaves * P2M_PER_PAGE, leaves: plan.leaves, tBoundPfn: plan.tBoundPfn, shards: shards.length, threads };
  if (shards.length === 0) {
    const sink = new RangeSink();
    addTail(sink, plan);
    result.ranges = sink.toRanges();
    result.stats = sinkStats(sink);
    return result;
  }
  const pool = opts.pool ?? createAuditPool(threads);
  let done = 0;
  try {
    // settle every shard before the pool is destroyed: a failed shard must not leave replies in flight
    const settled = await Promise.allSettled(
      shards.map((s) =>
        runShard(pool, shardTask(img, plan, s)).then((triples) => {
          done += s.endLeaf - s.firstLeaf;
          opts.onProgress?.(done, plan.activeLeaves);
          return triples;
        }),
      ),
    );
    const parts: Float64Array[] = [];
    for (let i = 0; i < settled.length; i++) {
      const r = settled[i]!;
      if (r.status === 'rejected') {
        const err: unknown = r.reason;
        const msg = err instanceof Error ? err.message : String(err);
        throw new Error(`${describeShard(shards[i]!)} of ${img.path} failed: ${msg}`, { cause: err });
      }
      parts.push(r.value);
    }
    const sink = new RangeSink();
    for (const p of parts) sink.addPacked(p);
    addTail(sink, plan);
    result.ranges = sink.toRanges();
    result.stats = sinkStats(sink);
    return result;
  } finally {
    if (!opts.pool) await pool.destroy();
  }
}

/** Options of the two on-this-thread audits. */
interface HereOptions {
  onProgress?: (doneLeaves: number, totalLeaves: number) => void;
  plan?: LeafPlan;
}

/** Run `classify` over the plan's shards on this thread, in order, then close the ranges with the tail. */
function auditHere(tool: ToolstackView, guest: GuestView, opts: HereOptions, classify: (plan: LeafPlan, s: Shard, sink: RangeSink) => void): AuditRanges {
  const plan = opts.plan ?? planLeaves(tool, guest);
  const shards = planShards(plan.activeLeaves, 1);
  const sink = new RangeSink();
  let done = 0;
  for (const s of shards) {
    classify(plan, s, sink);
    done += s.endLeaf - s.firstLeaf;
    opts.onProgress?.(done, plan.activeLeaves);
  }
  addTail(sink, plan);
  return { ranges: sink.toRanges(), stats: sinkStats(sink), endPfn: plan.leaves * P2M_PER_PAGE, leaves: plan.leaves, tBoundPfn: plan.tBoundPfn, shards: shards.length, threads: 0 };
}

/**
 * The workers' code (shard-reader.ts readShard: batched reads, wasm page flags) on the calling thread, for
 * a file-backed image whose guest is too small to be worth starting worker threads for.
 */
export function auditOnThisThread(img: GuestImage, tool: ToolstackView, guest: GuestView, opts: HereOptions = {}): AuditRanges {
  if (!img.path) throw new Error('auditOnThisThread needs a file-backed image (path is empty); use auditInProcess');
  const fd = img.fileDescriptor?.();
  return auditHere(tool, guest, opts, (plan, s, sink) => sink.addPacked(readShard(shardTask(img, plan, s), fd)));
}

/** Pages through GuestImage.readFrame, copied into own buffers (readFrame may reuse its scratch page). */
class ImageFrameSource implements LeafPageSource {
  private readonly gBuf = Buffer.alloc(PAGE_SIZE);
  private readonly tBuf = Buffer.alloc(PAGE_SIZE);
  constructor(private readonly img: GuestImage) {}
  guestPage(_i: number, frame: number): Buffer | null {
    return this.copyOf(frame, this.gBuf);
  }
  toolPage(_i: number, frame: number): Buffer | null {
    return this.copyOf(frame, this.tBuf);
  }
  private copyOf(frame: number, into: Buffer): Buffer | null {
    const p = this.img.readFrame(frame);
    if (p === null || p.length < PAGE_SIZE) return null;
    p.copy(into, 0, 0, PAGE_SIZE);
    return into;
  }
}

/** The same per-leaf classification on the calling thread, reading frames with img.readFrame (the JS reference path). */
export function auditInProcess(img: GuestImage, tool: ToolstackView, guest: GuestView, opts: HereOptions = {}): AuditRanges {
  const src = new ImageFrameSource(img);
  return auditHere(tool, guest, opts, (plan, s, sink) =>
    classifyShard(
      {
        firstLeaf: s.firstLeaf,
        gKinds: plan.gKinds.subarray(s.firstLeaf, s.endLeaf),
        gLocs: plan.gFrames.subarray(s.firstLeaf, s.endLeaf),
        tLocs: plan.tFrames.subarray(s.firstLeaf, s.endLeaf),
        tBoundPfn: plan.tBoundPfn,
        missingLoc: plan.missingFrame,
        identityLoc: plan.identityFrame,
      },
      src,
      sink,
    ),
  );
}
