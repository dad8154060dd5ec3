// A running PV domain as a GuestImage in machine-frame space, read through Xen's foreign-memory interface the
// way xen-project/xen tools/libs/guest/xg_domain.c (xc_map_domain_meminfo, used by xen-mfndump dump-p2m) and
// xg_sr_save_x86_pv.c (map_shinfo, map_p2m_*) read it: xc_domain_getinfo → shared_info_frame, mapped
// read-only; xc_domain_get_guest_width; vCPU 0's ctrlreg[3] (xc_vcpu_getcontext); XENMEM_maximum_ram_page as
// max_mfn; frames mapped with xenforeignmemory_map (docs/spec-notes/live-domain.md).
//
// Frames are mapped in batches and copied out at once (no mapping outlives an addon call). A caller that knows
// which frames it will read next (the audit's leaf pages) says so with readAhead(): a miss on one of them maps
// the next BATCH_FRAMES of the list in one call. Other reads (page tables, kernel variables) are mapped one at a
// time and kept in a small cache (mapping 16 frames from each instead was tried on the real host: a 4 GiB
// guest's page tables are scattered, so it mapped 6× the frames in as many calls). Memory: one batch arena (4 MiB) + the small cache (1 MiB), whatever the
// guest's size. The reader knows bytes only: consistency (p2m_generation) and pausing live in src/live/.
import { InputError } from '../common/errors.js';
import { PAGE_SIZE, hex } from '../xen/abi.js';
import { XEN_X86_EMU_LAPIC, DOMID_FIRST_RESERVED } from '../xen/domctl.js';
import { archOf, type ArchSharedInfo } from '../xen/shared-info.js';
import type { GuestImage } from './guest-image.js';
import { parseVcpuContext64, type VcpuContext } from './vcpu-context.js';
import type { SymbolTable } from './symbols.js';
import { errnoOf, liveError, type XenDomainInfo, type XenHandle, type XenLiveAddon } from './xenlive-addon.js';

/** Frames mapped by one xenforeignmemory_map call when reading ahead (4 MiB). */
export const BATCH_FRAMES = 1024;
/** Frames kept from single reads (page tables, kernel variables) before the cache is emptied (1 MiB). */
const SMALL_CACHE_FRAMES = 256;
/** How far ahead of its cursor a miss is looked for in the read-ahead list. */
const READ_AHEAD_WINDOW = 64;
/** The only guests read: 64-bit PV (xc_domain_get_guest_width in bytes). */
const GUEST_WIDTH_64 = 8;
const ESRCH = 3;

export interface LiveDomainOptions {
  /** kernel symbols (System.map / kallsyms); a live domain carries none */
  symbols?: SymbolTable;
  /** domain name, when the caller looked it up */
  name?: string | null;
  /** frames per read-ahead map call (1 to BATCH_FRAMES; default BATCH_FRAMES): tests bound map calls with small ones */
  batchFrames?: number;
}

/** What kind of guest a domain is: PV guests are read; HVM and PVH guests have no PV p2m. */
export function guestType(info: XenDomainInfo): 'PV' | 'HVM' | 'PVH' {
  if (!info.hvm) return 'PV';
  return (info.emulationFlags & ~XEN_X86_EMU_LAPIC) === 0 ? 'PVH' : 'HVM';
}

/** "domain 7 (web01)" */
export function domainLabel(domid: number, name: string | null | undefined): string {
  return name ? `domain ${domid} (${name})` : `domain ${domid}`;
}

export class LiveDomainImage implements GuestImage {
  readonly path = '';
  readonly format = 'xen-live' as const;
  readonly frameSpace = 'mfn' as const;
  readonly guestWidth = GUEST_WIDTH_64;
  readonly arch: ArchSharedInfo;
  readonly formatFacts: Extract<GuestImage['formatFacts'], { kind: 'live-domain' }>;
  /** frames copied out of the domain so far, and addon map calls made */
  framesMapped = 0;
  mapCalls = 0;

  private readonly batch: Buffer;
  private readonly batchErrs: Int32Array;
  private batchSlots = new Map<number, number>();
  private readonly small = new Map<number, Buffer>();
  private readonly one = new Float64Array(1);
  private plan: Float64Array | null = null;
  private cursor = 0;

  constructor(
    private readonly addon: XenLiveAddon,
    private readonly handle: XenHandle,
    readonly domid: number,
    readonly label: string,
    readonly sharedInfo: Buffer,
    readonly cr3: bigint,
    readonly symbols: SymbolTable,
    readonly maxFrame: number,
    /** every online vCPU's context (xc_vcpu_getcontext), frames in mfn space */
    readonly vcpus: readonly VcpuContext[],
    facts: { name: string | null; nrPages: number },
    private readonly batchFrames = BATCH_FRAMES,
  ) {
    this.batch = Buffer.alloc(batchFrames * PAGE_SIZE);
    this.batchErrs = new Int32Array(batchFrames);
    this.arch = archOf(sharedInfo);
    this.formatFacts = { kind: 'live-domain', domid, ...facts };
  }

  readFrame(frame: number): Buffer | null {
    if (!(frame >= 0 && frame <= this.maxFrame)) return null;
    const slot = this.batchSlots.get(frame);
    if (slot !== undefined) return slot < 0 ? null : this.batch.subarray(slot * PAGE_SIZE, (slot + 1) * PAGE_SIZE);
    const cached = this.small.get(frame);
    if (cached !== undefined) return cached;
    const at = this.findAhead(frame);
    if (at >= 0) return this.fillBatch(at, frame);
    return this.readOne(frame);
  }

  /** Live frames have no file position: the audit reads them through readFrame. */
  frameOffset(_frame: number): number {
    return -1;
  }

  frameCount(): number {
    return this.formatFacts.nrPages;
  }

  /** The frames the caller reads next, in order (the audit's leaf pages): misses among them are mapped in batches. */
  readAhead(frames: Float64Array | null): void {
    this.plan = frames;
    this.cursor = 0;
  }

  /** shared_info mapped again now: the arch fields a consistency check compares with those read at open. */
  currentArch(): ArchSharedInfo {
    const info = this.info();
    if (info.dying || info.shutdown) throw new InputError(`${this.label}: the domain went away during the read (it is ${info.dying ? 'dying' : 'shut down'})`);
    const page = Buffer.alloc(PAGE_SIZE);
    this.mapInto([info.sharedInfoFrame], page, 'shared_info');
    return archOf(page);
  }

  /** xc_domain_getinfo now (throws a one-line InputError when the domain is gone). */
  info(): XenDomainInfo {
    try {
      return this.addon.domainInfo(this.handle, this.domid);
    } catch (e) {
      throw liveError(this.label, e, true);
    }
  }

  /** XEN_DOMCTL_getpageframeinfo3 type nibbles of raw p2m entries (what xen-mfndump prints after each mfn). */
  pageTypes(entries: BigUint64Array, out: Uint8Array): void {
    try {
      this.addon.pfnTypes(this.handle, this.domid, entries, out);
    } catch (e) {
      throw liveError(this.label, e, true);
    }
  }

  close(): void {
    this.batchSlots.clear();
    this.small.clear();
    this.plan = null;
  }

  private findAhead(frame: number): number {
    const plan = this.plan;
    if (!plan) return -1;
    const end = Math.min(plan.length, this.cursor + READ_AHEAD_WINDOW);
    for (let i = this.cursor; i < end; i++) if (plan[i] === frame) return i;
    return -1;
  }

  /** Map up to batchFrames distinct frames of the read-ahead list from index `at` in one call. */
  private fillBatch(at: number, frame: number): Buffer | null {
    const plan = this.plan!;
    const slots = new Map<number, number>();
    const list: number[] = [];
    let i = at;
    for (; i < plan.length && list.length < this.batchFrames; i++) {
      const f = plan[i]!;
      if (f < 0 || f > this.maxFrame || slots.has(f)) continue;
      slots.set(f, list.length);
      list.push(f);
    }
    this.cursor = i;
    const errs = this.batchErrs.subarray(0, list.length);
    this.mapInto(list, this.batch, `frames ${hex(list[0]!)}…`, errs);
    for (let s = 0; s < list.length; s++) if (errs[s] !== 0) slots.set(list[s]!, -1);
    this.batchSlots = slots;
    const slot = slots.get(frame)!;
    return slot < 0 ? null : this.batch.subarray(slot * PAGE_SIZE, (slot + 1) * PAGE_SIZE);
  }

  /** A read outside the read-ahead list (page tables, kernel variables): one frame, kept in the small cache. */
  private readOne(frame: number): Buffer | null {
    if (this.small.size >= SMALL_CACHE_FRAMES) this.small.clear();
    const page = Buffer.alloc(PAGE_SIZE);
    const errs = new Int32Array(1);
    this.one[0] = frame;
    this.mapInto(this.one, page, `frame ${hex(frame)}`, errs);
    if (errs[0] !== 0) return null;
    this.small.set(frame, page);
    return page;
  }

  /** One addon map call; without `errs` every frame must map. */
  private mapInto(frames: ArrayLike<number>, out: Buffer, what: string, errs?: Int32Array): void {
    const list = frames instanceof Float64Array ? frames : Float64Array.from(frames);
    const e = errs ?? new Int32Array(list.length);
    let got: number;
    try {
      got = this.addon.mapFrames(this.handle, this.domid, list, out, e);
    } catch (err) {
      throw liveError(this.label, err, true);
    }
    this.mapCalls++;
    this.framesMapped += got;
    if (!errs && got !== list.length) {
      const bad = e.findIndex((x) => x !== 0);
      throw new InputError(`${this.label}: cannot map ${what} (frame ${hex(list[bad] ?? 0)}: errno ${e[bad]})`);
    }
  }
}

/**
 * Open a running PV domain read-only. Throws a one-line InputError when it does not exist, is HVM/PVH or
 * 32-bit, is dying, or its shared_info cannot be mapped (dom0 itself: Xen refuses a domain mapping its own
 * frames as foreign, get_pg_owner → ESRCH).
 */
export function openDomain(addon: XenLiveAddon, handle: XenHandle, domid: number, opts: LiveDomainOptions = {}): LiveDomainImage {
  const name = opts.name ?? null;
  const label = domainLabel(domid, name);
  if (!Number.isInteger(domid) || domid < 0 || domid >= DOMID_FIRST_RESERVED) throw new InputError(`${label}: not a domain id (expected 0 to ${DOMID_FIRST_RESERVED - 1})`);
  let info: XenDomainInfo;
  let width: number;
  try {
    info = addon.domainInfo(handle, domid);
  } catch (e) {
    throw liveError(label, e);
  }
  const type = guestType(info);
  if (type !== 'PV') throw new InputError(`${label}: is ${type === 'HVM' ? 'an' : 'a'} ${type} guest; only PV guests have a p2m for the toolstack to read`);
  if (info.dying || info.shutdown) throw new InputError(`${label}: is ${info.dying ? 'dying' : 'shut down'}; nothing to read`);
  try {
    width = addon.guestWidth(handle, domid);
  } catch (e) {
    throw liveError(label, e, true);
  }
  if (width !== GUEST_WIDTH_64) throw new InputError(`${label}: guest width ${width} bytes: 32-bit PV guests are not supported, expected ${GUEST_WIDTH_64}`);
  // shared_info first: dom0 naming itself fails here (ESRCH), as xen-mfndump 0 does (its vCPU context would
  // fail earlier with EINVAL: Xen does not hand out the context of the vCPU that asks)
  const sharedInfo = Buffer.alloc(PAGE_SIZE);
  const errs = new Int32Array(1);
  try {
    addon.mapFrames(handle, domid, Float64Array.of(info.sharedInfoFrame), sharedInfo, errs);
  } catch (e) {
    if (errnoOf(e) === ESRCH && domid === 0) throw selfMapRefused(label, info.sharedInfoFrame);
    throw liveError(label, e, true);
  }
  if (errs[0] !== 0) {
    if (errs[0] === ESRCH && domid === 0) throw selfMapRefused(label, info.sharedInfoFrame);
    throw new InputError(`${label}: cannot map its shared_info frame ${hex(info.sharedInfoFrame)} (errno ${errs[0]})`);
  }
  const vcpus: VcpuContext[] = [];
  let cr3 = 0n;
  let maxMfn: number;
  try {
    for (let v = 0; v <= info.maxVcpuId; v++) {
      try {
        const c = addon.vcpuContext(handle, domid, v);
        if (v === 0) cr3 = c.cr3;
        vcpus.push(parseVcpuContext64(c.raw, v));
      } catch (e) {
        if (v === 0) throw e; // vCPU 0 must answer: its cr3 is where the views start; others may be offline
      }
    }
    maxMfn = addon.maxMfn(handle);
  } catch (e) {
    throw liveError(label, e, true);
  }
  const batch = opts.batchFrames ?? BATCH_FRAMES;
  if (!Number.isInteger(batch) || batch < 1 || batch > BATCH_FRAMES) throw new RangeError(`batchFrames ${batch}: expected 1 to ${BATCH_FRAMES}`);
  return new LiveDomainImage(addon, handle, domid, label, sharedInfo, cr3, opts.symbols ?? new Map(), maxMfn, vcpus, { name, nrPages: info.nrPages }, batch);
}

function selfMapRefused(label: string, frame: number): InputError {
  return new InputError(
    `${label}: Xen refuses to map dom0's own shared_info frame ${hex(frame)} through the foreign-memory interface ("Cannot specify itself as foreign domain", ESRCH; xen-mfndump 0 fails the same way): audit dom0 from a kdump vmcore instead`,
  );
}
