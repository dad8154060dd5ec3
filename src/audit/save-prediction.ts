// What a real `xl save` / migration of this guest does, not only which pages it cannot see: xen-project/xen
// tools/libs/guest/xg_sr_save.c (save(): memory first, then end_of_checkpoint: TSC_INFO, SHARED_INFO, the
// vCPU records, END) and xg_sr_save_x86_pv.c write_one_vcpu_basic() at RELEASE-4.17.x
// (docs/spec-notes/save-failure.md). For each online vCPU in id order the saver converts vCPU 0's suspend
// record, each GDT frame and cr3 (then ctrlreg[1]) from mfn to pfn with mfn_in_pseudophysmap(); the first
// frame past the saver's max_pfn aborts the save ("Bad mfn for frame N of vcpuX's GDT", "Bad mfn for
// vcpuX's cr3") after every page has been written, leaving a stream that stops after SHARED_INFO. Page-table
// pages it cannot normalise go out earlier as XTAB without data (normalise-tables.ts), silently.
//
// Sources, best first: the image's vCPU contexts (a dump-core's .xen_prstatus, a stream's X86_PV_VCPU_BASIC
// records); for a stream without vCPU records (the failed save itself), the kernel's per-cpu GDT
// (gdt_page + __per_cpu_offset[cpu], read through the PV linear maps) and its start_info (xen_start_info).
import type { GuestImage } from '../formats/guest-image.js';
import { IMAGE_FORMAT_NAMES, streamStopOf } from '../formats/guest-image.js';
import type { VcpuContext } from '../formats/vcpu-context.js';
import { StreamImage } from '../formats/save-stream.js';
import { FRAME_XTAB } from '../formats/save-stream-index.js';
import { GuestLeaf, type GuestView, type ToolstackView } from '../views/p2m-leaves.js';
import { PvLinearReader } from '../views/guest-mirror.js';
import { pfnsOfMfns, pseudophysmap, walkTables } from './normalise-tables.js';
import { GDT_ENTRIES_PER_FRAME } from '../xen/domctl.js';
import { FIRST_RESERVED_GDT_PAGE } from '../xen/vcpu-guest-context.js';
import { P2M_ENTRY_SIZE, P2M_PER_PAGE, PAGES_PER_MIB, hex } from '../xen/abi.js';

export type SaveCheckKind = 'gdt-count' | 'suspend-record' | 'gdt' | 'cr3' | 'cr1' | 'superpage';

/** One conversion write_one_vcpu_basic makes. */
export interface SaveCheck {
  vcpu: number;
  kind: SaveCheckKind;
  /** GDT frame index (0 for the others) */
  index: number;
  /** the frame in the image's frame space (an mfn in a dump, a pfn in a stream); −1 when not a frame */
  frame: number;
  /** the guest pfn of that frame (the m2p the saver reads), or null when no guest pfn maps it */
  pfn: number | null;
  ok: boolean;
  /** Xen's error line when it fails */
  message: string;
  /** where the value came from */
  source: string;
}

export type VcpuSource = 'vcpu-contexts' | 'stream-records' | 'per-cpu-symbols' | 'none';

export interface SavePrediction {
  /** fails: the save aborts; drops: it completes but pages go without data; complete; unknown */
  outcome: 'fails' | 'drops' | 'complete' | 'unknown';
  /** the saver's max_pfn (inclusive) and arch.max_pfn it came from */
  maxPfn: number;
  archMaxPfn: bigint;
  /** the check that stops the save (the first failing one in the saver's order), or null */
  failure: SaveCheck | null;
  /** every failing check (the save stops at the first) and how many were made */
  failing: SaveCheck[];
  checked: number;
  vcpuSource: VcpuSource;
  /** page-table pages the saver sends without data (XTAB), as inclusive-exclusive pfn ranges */
  tables: { pages: number; ranges: { start: number; end: number }[]; source: 'page-table walk' | 'stream types' | 'none'; walked: number };
  /** pages the save loses silently: the audit's fatal pages plus those tables */
  droppedPages: number;
  /** one sentence: what the save does, to follow "save/migration " ("fails: …", "silently drops N pages …", "completes …") */
  text: string;
  notes: string[];
}

const WORD = 2 ** 32;
const ENTRY_MARK_HI = 0xc0000000;
/** GDT_ENTRIES of x86_64 Linux (asm/segment.h): the per-cpu GDT is one page. */
const LINUX_GDT_ENTRIES = 16;
/** vCPUs predicted from the per-cpu symbols (possible CPUs, nr_cpu_ids) at most. */
const MAX_PERCPU_VCPUS = 256;

/** The p2m entry of `pfn` in a view's leaves (an mfn), or −1. */
function entryOf(img: GuestImage, kinds: Uint8Array | null, frames: Float64Array, pfn: number): number {
  const k = Math.floor(pfn / P2M_PER_PAGE);
  if (pfn < 0 || k >= frames.length || (kinds && kinds[k] !== GuestLeaf.PAGE) || frames[k]! < 0) return -1;
  const page = img.readFrame(frames[k]!);
  if (!page) return -1;
  const i = (pfn % P2M_PER_PAGE) * P2M_ENTRY_SIZE;
  const hi = page.readUInt32LE(i + 4);
  return (hi & ENTRY_MARK_HI) !== 0 ? -1 : hi * WORD + page.readUInt32LE(i);
}

function message(c: Pick<SaveCheck, 'vcpu' | 'kind' | 'index'>, gdtEnts = 0, level = 0): string {
  switch (c.kind) {
    case 'superpage':
      return `Cannot migrate superpage (L${level}[${c.index}])`;
    case 'gdt-count':
      return `GDT entry count (${gdtEnts}) out of range (max ${FIRST_RESERVED_GDT_PAGE * GDT_ENTRIES_PER_FRAME})`;
    case 'suspend-record':
      return 'Bad mfn for suspend record';
    case 'gdt':
      return `Bad mfn for frame ${c.index} of vcpu${c.vcpu}'s GDT`;
    case 'cr3':
      return `Bad mfn for vcpu${c.vcpu}'s cr3`;
    case 'cr1':
      return `Bad mfn for vcpu${c.vcpu}'s cr1`;
  }
}

/** Frame → (pfn, accepted?) the way mfn_in_pseudophysmap answers, for the image's frame space. */
interface FrameJudge {
  judge(frames: readonly number[]): Map<number, { pfn: number | null; ok: boolean }>;
}

/** pfn space (a stream): the frame is the pfn; accepted when ≤ max_pfn and both p2ms map it to the same RAM frame. */
function pfnJudge(img: GuestImage, tool: ToolstackView, guest: GuestView): FrameJudge {
  return {
    judge(frames) {
      const out = new Map<number, { pfn: number | null; ok: boolean }>();
      for (const f of frames) {
        if (f < 0) out.set(f, { pfn: null, ok: false });
        else {
          const g = entryOf(img, guest.kinds, guest.leafFrames, f);
          out.set(f, { pfn: f, ok: f <= tool.maxPfn && g >= 0 && g === entryOf(img, null, tool.leafFrames, f) });
        }
      }
      return out;
    },
  };
}

/** mfn space: m2p as the inverse of the guest's p2m; accepted when that pfn ≤ max_pfn and the saver's p2m agrees. */
function mfnJudge(img: GuestImage, tool: ToolstackView, guest: GuestView): FrameJudge {
  return {
    judge(frames) {
      const m2p = pfnsOfMfns(img, guest.kinds, guest.leafFrames, frames);
      const out = new Map<number, { pfn: number | null; ok: boolean }>();
      for (const f of frames) {
        const pfn = m2p.get(f) ?? null;
        out.set(f, { pfn, ok: pfn !== null && pfn <= tool.maxPfn && entryOf(img, null, tool.leafFrames, pfn) === f });
      }
      return out;
    },
  };
}

/** The saver's conversions for each vCPU context, in its order (suspend record, GDT frames, cr3, cr1). */
function contextChecks(contexts: readonly VcpuContext[], source: string, judge: FrameJudge, suspendFrame: number | null): SaveCheck[] {
  const frames: number[] = [];
  for (const v of contexts) frames.push(...v.gdtFrames, v.cr3Frame, v.cr1Frame);
  if (suspendFrame !== null) frames.push(suspendFrame);
  const verdicts = judge.judge(frames);
  const checks: SaveCheck[] = [];
  const add = (vcpu: number, kind: SaveCheckKind, index: number, frame: number): void => {
    const v = verdicts.get(frame) ?? { pfn: null, ok: false };
    checks.push({ vcpu, kind, index, frame, pfn: v.pfn, ok: v.ok, message: message({ vcpu, kind, index }), source });
  };
  for (const v of contexts) {
    if (v.id === 0 && suspendFrame !== null) add(0, 'suspend-record', 0, suspendFrame);
    if (v.gdtEnts < 0 || v.gdtEnts > FIRST_RESERVED_GDT_PAGE * GDT_ENTRIES_PER_FRAME) {
      checks.push({ vcpu: v.id, kind: 'gdt-count', index: 0, frame: -1, pfn: null, ok: false, message: message({ vcpu: v.id, kind: 'gdt-count', index: 0 }, v.gdtEnts), source });
      continue;
    }
    v.gdtFrames.forEach((f, i) => add(v.id, 'gdt', i, f));
    add(v.id, 'cr3', 0, v.cr3Frame);
    if (v.cr1Frame > 0) add(v.id, 'cr1', 0, v.cr1Frame);
  }
  return checks;
}

/**
 * A stream without vCPU records: each possible CPU's GDT is its per-cpu gdt_page (Linux keeps the GDT
 * there; xen_load_gdt hands Xen that page's frame), at __per_cpu_offset[cpu] + gdt_page in the direct map;
 * vCPU 0's suspend record is the start_info page (xen_start_info). cr3 is unknown (whatever task ran).
 */
function perCpuContexts(img: GuestImage, notes: string[]): { contexts: VcpuContext[]; suspendPfn: number | null } {
  const none = { contexts: [], suspendPfn: null };
  const sym = img.symbols;
  if (img.frameSpace !== 'pfn' || !sym.has('gdt_page') || !sym.has('__per_cpu_offset')) {
    notes.push('no vCPU context, and no gdt_page / __per_cpu_offset symbols to find the GDTs with (give --system-map)');
    return none;
  }
  const r = new PvLinearReader(img);
  const nrCpus = r.u64('nr_cpu_ids');
  const n = Math.min(MAX_PERCPU_VCPUS, nrCpus === undefined ? 1 : Number(nrCpus & 0xffffffffn));
  const contexts: VcpuContext[] = [];
  for (let cpu = 0; cpu < n; cpu++) {
    const off = r.u64At(sym.get('__per_cpu_offset')! + BigInt(cpu * 8));
    if (off === undefined) break;
    const pfn = r.maps.pfnOf((off + sym.get('gdt_page')!) & 0xffffffffffffffffn);
    contexts.push({ id: cpu, flags: 0, gdtEnts: LINUX_GDT_ENTRIES, gdtFrames: [pfn], cr3Frame: 0, cr1Frame: 0, rdx: -1 });
  }
  const si = r.u64('xen_start_info');
  const suspendPfn = si !== undefined && si !== 0n ? r.maps.pfnOf(si) : null;
  notes.push(
    `vCPU GDT frames from the per-cpu gdt_page of CPUs 0–${contexts.length - 1} (nr_cpu_ids ${nrCpus ?? 'unknown'}), taken as the online vCPUs; ` +
      'cr3 is not predicted (the stream stops before the vCPU records that would hold it)',
  );
  return { contexts, suspendPfn };
}

/** Sorted pfns → [start, end) runs. */
function runsOf(pfns: number[]): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  for (const p of [...pfns].sort((a, b) => a - b)) {
    const last = out[out.length - 1];
    if (last && last.end === p) last.end++;
    else if (!last || last.end < p) out.push({ start: p, end: p + 1 });
  }
  return out;
}

/** Page-table pages the saver sends without data: from a stream's own types, or by walking a dump's tables. */
function deferredTables(img: GuestImage, tool: ToolstackView, guest: GuestView, notes: string[]): { tables: SavePrediction['tables']; superpage: SaveCheck | null } {
  const none = { tables: { pages: 0, ranges: [], source: 'none' as const, walked: 0 }, superpage: null };
  if (img instanceof StreamImage) {
    // the saver already did it: XTAB pfns the guest maps to RAM below its bound (ballooned pfns are INVALID)
    const pfns: number[] = [];
    img.forEachRun((first, count, loc) => {
      if (loc !== FRAME_XTAB) return;
      for (let p = first; p < first + count && p <= tool.maxPfn; p++) if (entryOf(img, guest.kinds, guest.leafFrames, p) >= 0) pfns.push(p);
    });
    return { tables: { pages: pfns.length, ranges: runsOf(pfns), source: 'stream types', walked: 0 }, superpage: null };
  }
  if (img.format !== 'xc-core') {
    notes.push(`page tables: not walked (${IMAGE_FORMAT_NAMES[img.format]} need not hold every page table the saver would read)`);
    return none;
  }
  const ppm = pseudophysmap(img, tool, guest);
  if ('skipped' in ppm) {
    notes.push(`page tables: not walked (${ppm.skipped})`);
    return none;
  }
  const roots = new Set<number>();
  const root = guest.root?.frame ?? -1;
  if (root > 0) roots.add(root);
  for (const v of img.vcpus ?? []) for (const f of [v.cr3Frame, v.cr1Frame]) if (f > 0) roots.add(f);
  const walk = walkTables(img, [...roots], ppm);
  const pfnOf = pfnsOfMfns(img, null, tool.leafFrames, [...walk.deferred, ...(walk.superpage ? [walk.superpage.table] : [])], 0, tool.maxPfn);
  const pfns = walk.deferred.map((m) => pfnOf.get(m)).filter((p): p is number => p !== undefined);
  notes.push(
    `page tables: ${walk.walked} walked from the kernel's top-level table and the vCPUs' cr3/ctrlreg[1]` +
      `${walk.absent > 0 ? ` (${walk.absent} not in the image)` : ''}; other processes' tables (xen_mm_pin_all pins them all before a save) are not reachable from a dump, so the count is a lower bound`,
  );
  const sp = walk.superpage;
  const superpage: SaveCheck | null = sp
    ? { vcpu: -1, kind: 'superpage', index: sp.index, frame: sp.table, pfn: pfnOf.get(sp.table) ?? null, ok: false, message: message({ vcpu: -1, kind: 'superpage', index: sp.index }, 0, sp.level), source: 'page-table walk' }
    : null;
  return { tables: { pages: pfns.length, ranges: runsOf(pfns), source: 'page-table walk', walked: walk.walked }, superpage };
}

function pagesText(n: number): string {
  return `${n} page${n === 1 ? '' : 's'} (${(n / PAGES_PER_MIB).toFixed(1)} MiB)`;
}

function frameText(c: SaveCheck, img: GuestImage): string {
  if (c.pfn === null) return c.frame < 0 ? 'not a frame number' : `${img.frameSpace} ${hex(c.frame)}, which no guest pfn maps`;
  return img.frameSpace === 'mfn' ? `pfn ${hex(c.pfn)} (mfn ${hex(c.frame)})` : `pfn ${hex(c.pfn)}`;
}

/** The failing check in words: what the saver met, and why it stops there. */
function failureText(c: SaveCheck, img: GuestImage, bound: string): string {
  switch (c.kind) {
    case 'superpage':
      return `page table ${frameText(c, img)} maps a superpage (PSE in entry ${c.index}), which a PV save cannot carry`;
    case 'gdt-count':
      return `vCPU ${c.vcpu}'s GDT has more than ${FIRST_RESERVED_GDT_PAGE * GDT_ENTRIES_PER_FRAME} entries`;
    case 'gdt':
      return `vCPU ${c.vcpu}'s GDT frame ${c.index} is ${frameText(c, img)}, beyond ${bound}`;
    case 'cr3':
      return `vCPU ${c.vcpu}'s cr3 is ${frameText(c, img)}, beyond ${bound}`;
    case 'cr1':
      return `vCPU ${c.vcpu}'s user page table (ctrlreg[1]) is ${frameText(c, img)}, beyond ${bound}`;
    case 'suspend-record':
      return `vCPU 0's suspend record (start_info) is ${frameText(c, img)}, beyond ${bound}`;
  }
}

/**
 * Predict the save of this image. `fatalPages` are the audit's fatal pages (dropped or wrong past the bound).
 * Never throws on a guest it cannot fully judge: what is missing goes into `notes` and the outcome says so.
 */
export function predictSave(img: GuestImage, tool: ToolstackView, guest: GuestView, fatalPages: number): SavePrediction {
  const notes: string[] = [];
  const base = { maxPfn: tool.maxPfn, archMaxPfn: tool.archMaxPfn, failing: [], checked: 0, vcpuSource: 'none' as VcpuSource, tables: { pages: 0, ranges: [], source: 'none' as const, walked: 0 }, notes };
  if (tool.failure !== null || tool.maxPfn < 0) {
    return { ...base, outcome: 'fails', failure: null, droppedPages: 0, text: `fails before writing any page: map_p2m: ${tool.failure ?? 'no pfns covered'}` };
  }
  const judge = img.frameSpace === 'pfn' ? pfnJudge(img, tool, guest) : mfnJudge(img, tool, guest);
  let vcpuSource: VcpuSource = 'none';
  let checks: SaveCheck[] = [];
  const contexts = img.vcpus ?? [];
  if (contexts.length > 0) {
    vcpuSource = img.frameSpace === 'pfn' ? 'stream-records' : 'vcpu-contexts';
    // a stream's vCPU 0 record holds the converted suspend record; a dump's rdx is whatever the vCPU held
    const suspend = img.frameSpace === 'pfn' ? (contexts[0]?.id === 0 ? contexts[0].rdx : null) : null;
    checks = contextChecks(contexts, vcpuSource === 'stream-records' ? 'X86_PV_VCPU_BASIC records' : 'the vCPU contexts', judge, suspend);
    if (img.frameSpace === 'mfn') notes.push("vCPU 0's suspend record is not checked: a dump's user_regs.rdx is not one (the guest sets it when it suspends)");
  } else {
    const pc = perCpuContexts(img, notes);
    if (pc.contexts.length > 0) {
      vcpuSource = 'per-cpu-symbols';
      checks = contextChecks(pc.contexts, 'per-cpu gdt_page + __per_cpu_offset', judge, pc.suspendPfn).filter((c) => c.kind !== 'cr3');
    }
  }
  const { tables, superpage } = deferredTables(img, tool, guest, notes);
  const failing = checks.filter((c) => !c.ok);
  const failure = superpage ?? failing[0] ?? null;
  const droppedPages = fatalPages + tables.pages;
  const stop = streamStopOf(img);
  const bound = `the saver's max_pfn ${hex(tool.maxPfn)} (arch.max_pfn ${hex(tool.archMaxPfn)})`;
  let outcome: SavePrediction['outcome'];
  let text: string;
  if (failure) {
    outcome = 'fails';
    const when = superpage ? 'while it writes the pages' : 'after it has written every page and SHARED_INFO: the stream it leaves stops there';
    text = `fails: ${failureText(failure, img, bound)}; Xen 4.17 stops with "${failure.message}" ${when}`;
  } else if (stop && stop.vcpuRecords.length === 0) {
    outcome = 'fails';
    const cause =
      vcpuSource === 'per-cpu-symbols'
        ? "the GDT frames and the suspend record lie within the bound, so it failed on what only the vCPU records would show (a vCPU's cr3 or ctrlreg[1] past the bound) or outside the stream (a write error)"
        : 'what it failed on cannot be predicted without symbols (give --system-map)';
    text = `failed: the stream stops after ${stop.afterRecord}, before vCPU 0's record; ${cause}`;
  } else if (vcpuSource === 'none' && droppedPages === 0) {
    outcome = 'unknown';
    text = 'drops no page; whether it fails on a vCPU frame could not be checked (no vCPU context)';
  } else if (droppedPages > 0) {
    outcome = 'drops';
    const parts = [`${fatalPages} past its bound or with wrong mfns in its p2m`];
    if (tables.source !== 'none') parts.push(`${tables.pages} page-table page${tables.pages === 1 ? '' : 's'} sent without data (XTAB)`);
    const unchecked = vcpuSource === 'none' ? '; vCPU frames not checked (the image holds no vCPU context)' : '';
    text = `silently drops ${pagesText(droppedPages)}: ${parts.join(', ')}${unchecked}`;
  } else {
    outcome = 'complete';
    text = `completes: every vCPU frame checked lies within ${bound} and no page table is sent without data`;
  }
  if (tables.pages > 0) {
    notes.push("a domain paused by its controller (xl pause) makes those page tables fatal instead: Xen 4.17 then stops at the first with \"Bad mfn for L<n>[<i>]\"");
  }
  return { ...base, outcome, failure, failing, checked: checks.length, vcpuSource, tables, droppedPages, text };
}
