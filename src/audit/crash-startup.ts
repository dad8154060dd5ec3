// What crash does with a dom0 kdump whose RAM it cannot all read (docs/spec-notes/dom0-kdump-views.md §6):
// the start-up reads of crash-utility/crash in their order — the frame list (x86_64.c
// x86_64_xen_kdump_p2m_create, FATAL when a page is missing), the kernel's top-level table ("pgd page",
// x86_64_init_kernel_pgd, FAULT_ON_ERROR), "__per_cpu_offset" (kernel.c, FAULT_ON_ERROR), per CPU
// "cpu number (per_cpu)" (QUIET) and "current_task (per_cpu)" (RETURN_ON_ERROR: a message, crash goes on;
// x86_64_per_cpu_init), then per CPU "tss_struct ist array" (FAULT_ON_ERROR: crash exits; x86_64_ist_init)
// — each judged by reading its page the way crash does (direct map and kernel image by arithmetic,
// x86_64_VTOP with phys_base 0; the pfn through the crash note's frame list, xen_kdump_p2m) against the
// guest's own p2m. Beside them, what else crash needs lies in the lost RAM: each CPU's per-cpu area,
// init_task, the kernel page tables the guest walk used, the printk ring buffer.
import type { GuestImage } from '../formats/guest-image.js';
import { GuestLeaf, type GuestView } from '../views/p2m-leaves.js';
import type { CrashView } from '../views/crash-view.js';
import { listEntry } from '../views/crash-frame-list.js';
import { readVirt, readVirtU64 } from '../translate/page-walk.js';
import { P2M_PER_PAGE, PAGE_OFFSET_LEGACY, PAGE_SHIFT, PAGE_SIZE, START_KERNEL_MAP, hex } from '../xen/abi.js';

/** What crash does when a read fails: exit during start-up, print "read error" and go on, or say nothing. */
export type OnError = 'fatal' | 'message' | 'quiet';

export interface CrashRead {
  /** crash's readmem type string */
  type: string;
  /** the kernel virtual address crash reads */
  va: bigint;
  /** the pfn crash turns it into (x86_64_VTOP) */
  pfn: number;
  onError: OnError;
  outcome: 'reads' | 'read-error' | 'wrong-data';
  /** the mfn crash reads the page at (−1: its translation fails first) */
  crashMfn: number;
  /** the guest's own mfn for the pfn (−1: no RAM there) */
  guestMfn: number;
  /** one line, in crash's words */
  line: string;
}

/** A thing crash needs whose pages lie (partly) in the lost RAM. */
export interface LostItem {
  what: string;
  vaStart: bigint;
  /** inclusive */
  vaEnd: bigint;
  pages: number;
  lostPages: number;
}

export interface CrashStartup {
  /** whether crash gets through start-up */
  starts: boolean;
  /** the first read that fails (the one crash stops at when `starts` is false) */
  firstFailure: CrashRead | null;
  reads: CrashRead[];
  lost: LostItem[];
  notes: string[];
}

/** Per-CPU areas examined (crash reads NR_CPUS entries; a report names at most this many CPUs). */
export const MAX_CPUS_PREDICTED = 64;
/** OFFSET(tss_struct_ist): struct x86_hw_tss (packed) = u32 reserved1; u64 sp0, sp1, sp2, reserved2; u64 ist[7] (arch/x86/include/asm/processor.h). */
export const TSS_STRUCT_IST_OFFSET = 0x24;
/** MAX_EXCEPTION_STACKS in crash (defs.h): the ist words it reads. */
const MAX_EXCEPTION_STACKS = 7;
/** pcpu_hot (≥ 6.2): current_task at 0, cpu_number at 12 (arch/x86/include/asm/current.h). */
const PCPU_HOT_CPU_NUMBER = 12;
/** Direct-map size of 4-level paging (MAXMEM = 2^46 bytes): VAs above page_offset + this are not direct-mapped. */
const DIRECT_MAP_BYTES = 2n ** 46n;
/** printk ring buffer (kernel/printk/printk_ringbuffer.h, 5.10+): desc_ring.count_bits, .descs, .infos. */
const PRB_COUNT_BITS = 0;
const PRB_DESCS = 8;
const PRB_INFOS = 16;
/** sizeof(struct prb_desc) (state_var + text_blk_lpos) and sizeof(struct printk_info) (5.10+, with dev_printk_info). */
const SIZEOF_PRB_DESC = 24;
const SIZEOF_PRINTK_INFO = 88;
/** Ring buffers larger than this many descriptors are not believed (a corrupt count_bits). */
const MAX_PRB_COUNT_BITS = 28;
const WORD = 2 ** 32;
const ENTRY_MARK_HI = 0xc0000000;

export interface CrashStartupInput {
  img: GuestImage;
  guest: GuestView;
  crash: CrashView;
  /** the audit's fatal ranges, [start, end) */
  lostRanges: readonly { start: number; end: number }[];
}

class Reader {
  readonly pageOffset: bigint;
  private readonly out = { lo: 0, hi: 0, leaf: -1 };
  constructor(private readonly input: CrashStartupInput) {
    this.pageOffset = input.guest.vars.pageOffset ?? PAGE_OFFSET_LEGACY;
  }

  get rootFrame(): number {
    return this.input.guest.root?.frame ?? -1;
  }

  /** x86_64_VTOP: the pfn of a kernel-image or direct-map VA, or −1 (vmalloc and others go through page tables) */
  pfnOf(va: bigint): number {
    if (va >= START_KERNEL_MAP) return Number((va - START_KERNEL_MAP) >> BigInt(PAGE_SHIFT));
    if (va >= this.pageOffset && va < this.pageOffset + DIRECT_MAP_BYTES) return Number((va - this.pageOffset) >> BigInt(PAGE_SHIFT));
    return -1;
  }

  /** the mfn crash reads pfn at, or −1 when xen_kdump_p2m fails or the page is not in the dump */
  crashMfn(pfn: number): number {
    const list = this.input.crash.list;
    if (!list || listEntry(this.input.img, list, pfn, this.out) !== 'ok') return -1;
    if ((this.out.hi & ENTRY_MARK_HI) !== 0) return -1;
    const mfn = this.out.hi * WORD + this.out.lo;
    return this.input.img.readFrame(mfn) === null ? -1 : mfn;
  }

  /** the guest's own mfn for pfn, or −1 */
  guestMfn(pfn: number): number {
    const g = this.input.guest;
    const k = Math.floor(pfn / P2M_PER_PAGE);
    if (k >= g.kinds.length || g.kinds[k] !== GuestLeaf.PAGE || g.leafFrames[k]! < 0) return -1;
    const page = this.input.img.readFrame(g.leafFrames[k]!);
    if (!page) return -1;
    const o = (pfn % P2M_PER_PAGE) * 8;
    const hi = page.readUInt32LE(o + 4);
    return (hi & ENTRY_MARK_HI) !== 0 ? -1 : hi * WORD + page.readUInt32LE(o);
  }

  /** a u64 of the dump's memory, read through the kernel's own page tables (the truth crash is judged against) */
  u64(va: bigint): bigint | null {
    const v = readVirtU64(this.input.img, this.rootFrame, va);
    return typeof v === 'bigint' ? v : null;
  }

  u32(va: bigint): number | null {
    const b = readVirt(this.input.img, this.rootFrame, va, 4);
    return Buffer.isBuffer(b) ? b.readUInt32LE(0) : null;
  }

  lostPages(pfnStart: number, pfnEnd: number): number {
    let n = 0;
    for (const r of this.input.lostRanges) n += Math.max(0, Math.min(pfnEnd, r.end) - Math.max(pfnStart, r.start));
    return n;
  }
}

function judge(r: Reader, type: string, va: bigint, onError: OnError): CrashRead {
  const pfn = r.pfnOf(va);
  const crashMfn = pfn >= 0 ? r.crashMfn(pfn) : -1;
  const guestMfn = pfn >= 0 ? r.guestMfn(pfn) : -1;
  const outcome = crashMfn < 0 ? 'read-error' : guestMfn >= 0 && guestMfn !== crashMfn ? 'wrong-data' : 'reads';
  const at = `${va.toString(16)} (pfn ${hex(pfn)})`;
  const line =
    outcome === 'read-error'
      ? `crash: read error: kernel virtual address: ${va.toString(16)}  type: "${type}"`
      : outcome === 'wrong-data'
        ? `crash reads pfn ${hex(pfn)} through mfn ${hex(crashMfn)}, but the guest has it at mfn ${hex(guestMfn)}: "${type}" at ${at} reads the wrong page`
        : `crash reads pfn ${hex(pfn)} through mfn ${hex(crashMfn)} ("${type}" at ${va.toString(16)})`;
  return { type, va, pfn, onError, outcome, crashMfn, guestMfn, line };
}

/** The per-CPU symbols of this kernel: current_task and cpu_number (plain ≤ 6.1, in pcpu_hot from 6.2). */
function perCpuSymbols(img: GuestImage): { current: bigint; cpuNumber: bigint } | null {
  const s = img.symbols;
  if (s.has('current_task') && s.has('cpu_number')) return { current: s.get('current_task')!, cpuNumber: s.get('cpu_number')! };
  if (s.has('pcpu_hot')) return { current: s.get('pcpu_hot')!, cpuNumber: s.get('pcpu_hot')! + BigInt(PCPU_HOT_CPU_NUMBER) };
  return null;
}

/** Each possible CPU's __per_cpu_offset: nr_cpu_ids entries, or up to the first __per_cpu_load (crash's own stop). */
function perCpuOffsets(img: GuestImage, r: Reader, notes: string[]): bigint[] {
  const base = img.symbols.get('__per_cpu_offset')!;
  const nr = img.symbols.has('nr_cpu_ids') ? r.u32(img.symbols.get('nr_cpu_ids')!) : null;
  const load = img.symbols.get('__per_cpu_load');
  const limit = nr !== null && nr > 0 ? Math.min(nr, MAX_CPUS_PREDICTED) : MAX_CPUS_PREDICTED;
  if (nr !== null && nr > MAX_CPUS_PREDICTED) notes.push(`nr_cpu_ids ${nr}: the prediction looks at the first ${MAX_CPUS_PREDICTED} CPUs`);
  const out: bigint[] = [];
  for (let i = 0; i < limit; i++) {
    const off = r.u64(base + BigInt(8 * i));
    if (off === null || (nr === null && (off === 0n || off === load))) break;
    out.push(off);
  }
  return out;
}

function lostItem(r: Reader, what: string, vaStart: bigint, bytes: number): LostItem | null {
  if (bytes <= 0) return null;
  const vaEnd = vaStart + BigInt(bytes) - 1n;
  const a = r.pfnOf(vaStart);
  const b = r.pfnOf(vaEnd);
  if (a < 0 || b < a) return null;
  return { what, vaStart, vaEnd, pages: b - a + 1, lostPages: r.lostPages(a, b + 1) };
}

/** The printk ring buffer's parts: descriptors, infos and text (5.10+), or log_buf alone (older kernels). */
function printkParts(img: GuestImage, r: Reader): { what: string; va: bigint; bytes: number }[] {
  const s = img.symbols;
  const parts: { what: string; va: bigint; bytes: number }[] = [];
  const logBuf = s.has('log_buf') ? r.u64(s.get('log_buf')!) : null;
  const logLen = s.has('log_buf_len') ? r.u32(s.get('log_buf_len')!) : null;
  if (logBuf !== null && logLen !== null) parts.push({ what: 'printk text (log_buf)', va: logBuf, bytes: logLen });
  const prb = s.has('prb') ? r.u64(s.get('prb')!) : null;
  if (prb === null) return parts;
  const bits = r.u32(prb + BigInt(PRB_COUNT_BITS));
  const descs = r.u64(prb + BigInt(PRB_DESCS));
  const infos = r.u64(prb + BigInt(PRB_INFOS));
  if (bits === null || bits > MAX_PRB_COUNT_BITS || descs === null || infos === null) return parts;
  parts.unshift({ what: `printk ring buffer (prb ${hex(prb)})`, va: prb, bytes: 8 });
  parts.push({ what: 'printk descriptors (prb->desc_ring.descs)', va: descs, bytes: SIZEOF_PRB_DESC << bits });
  parts.push({ what: 'printk infos (prb->desc_ring.infos)', va: infos, bytes: SIZEOF_PRINTK_INFO << bits });
  return parts;
}

/** Predict crash's start-up on a dom0 kdump, and name what it needs that lies in the lost RAM. */
export function predictCrashStartup(input: CrashStartupInput): CrashStartup {
  const { img, crash } = input;
  const notes: string[] = [];
  const reads: CrashRead[] = [];
  const lost: LostItem[] = [];
  const r = new Reader(input);
  const finish = (): CrashStartup => {
    // a QUIET read's failure prints nothing: the first failure a user sees is the first loud one
    const firstFailure = reads.find((x) => x.outcome !== 'reads' && x.onError !== 'quiet') ?? null;
    const fatal = reads.find((x) => x.outcome === 'read-error' && x.onError === 'fatal') ?? null;
    return { starts: fatal === null, firstFailure, reads, lost: lost.filter((l) => l.lostPages > 0), notes };
  };
  if (!crash.list || crash.list.failure) {
    notes.push(`crash cannot build its pfn → mfn list: ${crash.list?.failure ?? crash.why}; it stops with "cannot create xen kdump pfn-to-mfn mapping"`);
    reads.push({ type: 'xen kdump p2m mfn page', va: 0n, pfn: -1, onError: 'fatal', outcome: 'read-error', crashMfn: -1, guestMfn: -1, line: 'crash: cannot read xen kdump p2m mfn page' });
    return finish();
  }
  if (r.rootFrame < 0) {
    notes.push('no kernel page table: the start-up reads cannot be judged');
    return finish();
  }
  const s = img.symbols;
  // the kernel's top-level table (vt->kernel_pgd[0]) and the per-cpu offsets, read from the kernel image
  const table = ['init_level4_pgt', 'init_top_pgt'].find((n) => s.has(n));
  if (table) reads.push(judge(r, 'pgd page', s.get(table)!, 'fatal'));
  if (!s.has('__per_cpu_offset')) {
    notes.push('__per_cpu_offset is not among the symbols: the per-CPU reads cannot be predicted');
    return finish();
  }
  reads.push(judge(r, '__per_cpu_offset', s.get('__per_cpu_offset')!, 'fatal'));
  const offsets = perCpuOffsets(img, r, notes);
  const pc = perCpuSymbols(img);
  if (pc) {
    offsets.forEach((off) => reads.push(judge(r, 'cpu number (per_cpu)', pc.cpuNumber + off, 'quiet')));
    offsets.forEach((off) => reads.push(judge(r, 'current_task (per_cpu)', pc.current + off, 'message')));
  } else notes.push('neither current_task nor pcpu_hot is among the symbols');
  const tss = ['cpu_tss_rw', 'cpu_tss', 'init_tss'].find((n) => s.has(n));
  if (tss) offsets.forEach((off) => reads.push(judge(r, 'tss_struct ist array', s.get(tss)! + off + BigInt(TSS_STRUCT_IST_OFFSET), 'fatal')));
  notes.push(`each "tss_struct ist array" read is ${MAX_EXCEPTION_STACKS * 8} bytes at ${tss ?? 'the TSS'} + ${hex(TSS_STRUCT_IST_OFFSET)} (OFFSET(tss_struct_ist))`);

  // what else crash needs, where it lies
  const pcStart = s.get('__per_cpu_start');
  const pcEnd = s.get('__per_cpu_end');
  offsets.forEach((off, cpu) => {
    if (pcStart === undefined || pcEnd === undefined) return;
    const item = lostItem(r, `CPU ${cpu}'s per-cpu area (current_task, ${tss ?? 'the TSS'} with its ist array, the IRQ stack pointer)`, pcStart + off, Number(pcEnd - pcStart));
    if (item) lost.push(item);
  });
  if (s.has('init_task')) {
    const item = lostItem(r, 'init_task (the task list crash starts from)', s.get('init_task')!, 1);
    if (item) lost.push(item);
  }
  if (table) {
    const item = lostItem(r, `${table} (the kernel's top-level page table)`, s.get(table)!, PAGE_SIZE);
    if (item) lost.push(item);
  }
  const tablesLost = tablesInLostRam(input);
  if (tablesLost.length > 0) {
    lost.push({ what: `kernel page-table and p2m-structure pages the guest walk read, at mfns ${tablesLost.slice(0, 8).map((m) => hex(m)).join(', ')}${tablesLost.length > 8 ? ', …' : ''}`, vaStart: 0n, vaEnd: 0n, pages: tablesLost.length, lostPages: tablesLost.length });
  }
  for (const p of printkParts(img, r)) {
    const item = lostItem(r, p.what, p.va, p.bytes);
    if (item) lost.push(item);
  }
  return finish();
}

/** Frames the guest walk read (page tables, variable pages) that are the guest's pages inside the lost ranges. */
function tablesInLostRam(input: CrashStartupInput): number[] {
  const { img, guest, lostRanges } = input;
  const wanted = guest.structureFrames;
  const found: number[] = [];
  for (const range of lostRanges) {
    for (let k = Math.floor(range.start / P2M_PER_PAGE); k * P2M_PER_PAGE < range.end; k++) {
      if (k >= guest.kinds.length || guest.kinds[k] !== GuestLeaf.PAGE || guest.leafFrames[k]! < 0) continue;
      const page = img.readFrame(guest.leafFrames[k]!);
      if (!page) continue;
      const first = Math.max(range.start, k * P2M_PER_PAGE);
      const last = Math.min(range.end, (k + 1) * P2M_PER_PAGE);
      for (let pfn = first; pfn < last; pfn++) {
        const o = (pfn % P2M_PER_PAGE) * 8;
        const hi = page.readUInt32LE(o + 4);
        if ((hi & ENTRY_MARK_HI) !== 0) continue;
        const mfn = hi * WORD + page.readUInt32LE(o);
        if (wanted.has(mfn)) found.push(mfn);
      }
    }
  }
  return found;
}

/** The report's lines for a prediction: the verdict on start-up, the reads that fail, what lies in the lost RAM. */
export function describeCrashStartup(p: CrashStartup): string[] {
  const lines: string[] = [];
  const fatal = p.reads.find((x) => x.outcome === 'read-error' && x.onError === 'fatal');
  if (p.starts && !p.firstFailure) lines.push('crash starts: every start-up read goes through the frame list to the right page');
  else if (p.starts) lines.push(`crash starts, with read errors: ${p.firstFailure!.line}`);
  else lines.push(`crash does not start: it stops at "${fatal!.type}" (${fatal!.va.toString(16)}, pfn ${hex(fatal!.pfn)}), a read it cannot do without`);
  for (const x of p.reads) if (x.outcome !== 'reads' && x.onError !== 'quiet') lines.push(`  ${x.line}`);
  const ok = p.reads.filter((x) => x.outcome === 'reads');
  if (ok.length > 0) lines.push(`  ${ok[0]!.line}${ok.length > 1 ? ` (and ${ok.length - 1} more start-up read${ok.length === 2 ? '' : 's'})` : ''}`);
  for (const l of p.lost) {
    const where = l.vaStart !== 0n ? ` ${l.vaStart.toString(16)}-${l.vaEnd.toString(16)}` : '';
    lines.push(`  in the lost RAM: ${l.what}${where} (${l.lostPages} of ${l.pages} page${l.pages === 1 ? '' : 's'})`);
  }
  return lines;
}
