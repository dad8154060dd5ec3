// One shard of the audit read from the image file and classified (ARCHITECTURE.md "Shard planner +
// workers"): given both views' leaf locations as file offsets (no page data crosses a thread boundary),
// it opens the file read-only, reads the leaf pages itself with positional reads — runs of consecutive
// offsets in one larger read — into buffers inside the WebAssembly leaf kernel's memory
// (src/audit/page-flags-loader.ts), computes every batch's page flags in one call, and runs the shared classifier
// (compare-leaf.ts classifyShard): classifyLeaf's fast path is a bit test (JS fallback: no flags). Used by
// the audit worker (workers/audit-worker.ts) and, for small guests, on the main thread (run-audit.ts).
import fs from 'node:fs';
import { classifyShard, PAGE_FLAGS_UNKNOWN, RangeSink, type LeafPageSource } from './compare-leaf.js';
import { LeafScanBatch } from './page-flags-loader.js';
import { PAGE_SIZE } from '../xen/abi.js';
import { readAt } from '../formats/file-io.js';

/** One shard, as run-audit.ts posts it. Offsets are file offsets of 4 KiB frames. */
export interface AuditTask {
  path: string;
  /** index of the shard (for error messages) */
  shard: number;
  firstLeaf: number;
  /** GuestLeaf.* per leaf of the shard */
  gKinds: Uint8Array;
  /** file offset of the guest leaf page (kind PAGE), −1 when it has none / it is absent */
  gOffsets: Float64Array;
  /** file offset of the toolstack's leaf page, or a ToolLeaf.* code (< 0) */
  tOffsets: Float64Array;
  /** toolstack bound (a count of pfns) */
  tBoundPfn: number;
  /** file offsets of the guest's shared p2m_missing / p2m_identity pages, −1 when unknown or absent */
  missingOffset: number;
  identityOffset: number;
}

/** Pages per positional read when leaf pages sit at consecutive offsets (128 KiB). */
const READ_BATCH_PAGES = 32;

/** One side's reader: a reusable batch buffer (in wasm memory), pre-cut into page views (no allocation per leaf). */
class BatchedPageReader {
  private readonly batch = new LeafScanBatch(READ_BATCH_PAGES);
  private readonly buf = this.batch.buf;
  private readonly views: Buffer[] = [];
  /** flags of the page the last `page` call returned */
  private lastFlags = PAGE_FLAGS_UNKNOWN;
  private fd = -1;
  private locs: Float64Array = new Float64Array(0);
  private batchFirst = 0;
  private batchPages = 0;
  /** the batch's leaves sit at descending file offsets (memblock hands out pages top-down) */
  private batchDesc = false;

  constructor() {
    for (let p = 0; p < READ_BATCH_PAGES; p++) this.views.push(this.buf.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE));
  }

  reset(fd: number, locs: Float64Array): void {
    this.fd = fd;
    this.locs = locs;
    this.batchFirst = 0;
    this.batchPages = 0;
    this.batchDesc = false;
  }

  /** PAGE_FLAG_* bits of the page the last `page` call returned (PAGE_FLAGS_UNKNOWN on the JS path). */
  flags(): number {
    return this.lastFlags;
  }

  /** Page `rel` of the batch in leaf order (descending batches sit reversed in the buffer). */
  private pick(rel: number): Buffer {
    const p = this.batchDesc ? this.batchPages - 1 - rel : rel;
    this.lastFlags = this.batch.flags(p);
    return this.views[p]!;
  }

  page(i: number, loc: number): Buffer | null {
    const rel = i - this.batchFirst;
    if (rel >= 0 && rel < this.batchPages && this.locs[i] === loc) return this.pick(rel);
    // new batch: leaf i plus the following leaves whose pages are its file neighbours, in either direction
    const step = i + 1 < this.locs.length && this.locs[i + 1] === loc - PAGE_SIZE ? -PAGE_SIZE : PAGE_SIZE;
    let run = 1;
    while (run < READ_BATCH_PAGES && i + run < this.locs.length && this.locs[i + run] === loc + run * step) run++;
    const start = step > 0 ? loc : loc - (run - 1) * PAGE_SIZE;
    const bytes = readAt(this.fd, this.buf, start, run * PAGE_SIZE);
    this.batchFirst = i;
    this.batchDesc = step < 0;
    if (bytes < run * PAGE_SIZE) {
      // short read (truncated file): only an ascending prefix is usable
      this.batchDesc = false;
      this.batchPages = step > 0 ? Math.floor(bytes / PAGE_SIZE) : 0;
      if (step < 0) return null;
    } else this.batchPages = run;
    this.batch.scan(this.batchPages);
    return this.batchPages > 0 ? this.pick(0) : null;
  }
}

// Reused across the shards this thread reads (one shard at a time per thread). Made on the first shard, not
// at import: each compiles and instantiates the wasm kernel, which commands that never read a shard (and
// an audit that fails before its first) should not pay for.
let readers: { guest: BatchedPageReader; tool: BatchedPageReader; source: LeafPageSource } | null = null;

function threadReaders(): { guest: BatchedPageReader; tool: BatchedPageReader; source: LeafPageSource } {
  if (readers === null) {
    const guest = new BatchedPageReader();
    const tool = new BatchedPageReader();
    const source: LeafPageSource = {
      guestPage: (i, loc) => guest.page(i, loc),
      toolPage: (i, loc) => tool.page(i, loc),
      guestFlags: () => guest.flags(),
      toolFlags: () => tool.flags(),
    };
    readers = { guest, tool, source };
  }
  return readers;
}

/**
 * Read and classify one shard on the calling thread; the packed ranges (RangeSink.toPacked). `openFd`: the
 * image's own descriptor when the caller has the image open (kept open), else the file is opened here.
 */
export function readShard(task: AuditTask, openFd?: number): Float64Array {
  const { guest: guestReader, tool: toolReader, source } = threadReaders();
  const fd = openFd ?? fs.openSync(task.path, 'r');
  try {
    guestReader.reset(fd, task.gOffsets);
    toolReader.reset(fd, task.tOffsets);
    const sink = new RangeSink();
    classifyShard(
      {
        firstLeaf: task.firstLeaf,
        gKinds: task.gKinds,
        gLocs: task.gOffsets,
        tLocs: task.tOffsets,
        tBoundPfn: task.tBoundPfn,
        missingLoc: task.missingOffset,
        identityLoc: task.identityOffset,
      },
      source,
      sink,
    );
    return sink.toPacked();
  } finally {
    if (openFd === undefined) fs.closeSync(fd);
  }
}
