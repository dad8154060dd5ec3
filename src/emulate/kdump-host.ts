// What Xen and kexec-tools leave for the kdump kernel of an emulated dom0 (shared by the ELF vmcore and makedumpfile writers): the crash region Xen reserves (xen/arch/x86/setup.c: the highest free range below the crashkernel limit), the machine memory kexec-tools dumps (kexec/arch/i386/crashdump-x86.c get_crash_memory_ranges_xen: Xen's machine e820 RAM less the crash region, exclude_region) and the notes Xen writes at crash time (xen/common/kexec.c kexec_crash_save_cpu / kexec_crash_save_info, xen/arch/x86/crash.c machine_crash_shutdown, crash_save_vmcoreinfo). docs/spec-notes/dom0-kdump.md.
import { InputError } from '../common/errors.js';
import type { E820Entry } from '../inputs/e820.js';
import { E820_RAM, MiB, PAGE_SIZE, hex } from '../xen/abi.js';
import { NHDR_SIZE, NOTE_ALIGN } from '../xen/elf-format.js';
import { CRASH_INFO_WORD, GREG_CS, GREG_SS, KEXEC_CORE_NOTE_NAME, NT_PRSTATUS, PR_REG_OFFSET_64, SIZEOF_CRASH_XEN_CORE_64, SIZEOF_ELF_PRSTATUS_64, VMCOREINFO_BYTES, VMCOREINFO_XEN_NOTE_NAME, XC_CR0, XC_CR3, XC_CR4, XEN_CRASH_INFO_V2_SIZE, XEN_ELFNOTE_CRASH_INFO, XEN_ELFNOTE_CRASH_REGS, XEN_NOTE_NAME } from '../xen/kdump-format.js';

/** crashkernel=256M<4G, as on the real host of corpora/real/dom0-6.1-clean.vmcore.zst. */
export const DEFAULT_CRASH_SIZE = 256 * MiB;
export const CRASH_AREA_LIMIT = 4 * 1024 * MiB;
/** The emulator halves a crash region that does not fit down to this size before giving up. */
const MIN_CRASH_SIZE = 16 * MiB;
/** Physical CPUs of the emulated host (the real host had 2). */
export const DEFAULT_PCPUS = 2;
/** Xen's segment selectors in a crash-time NT_PRSTATUS (__HYPERVISOR_CS64 / __HYPERVISOR_DS64; the real notes hold them). */
const HYPERVISOR_CS64 = 0xe008;
const HYPERVISOR_DS64 = 0xe010;
/** cr0 / cr4 of the crashing pCPU in the real dump's CRASH_REGS note (README of real-dom0-kdump). */
const CRASH_CR0 = 0x80050033n;
const CRASH_CR4 = 0x150660n;

/** A byte range of machine memory: [start, start + size). */
export interface MachineRange {
  start: number;
  size: number;
}

/** Host RAM (E820_RAM entries) in address order, as kexec-tools reads Xen's machine memory map. */
export function hostRamRanges(machineE820: readonly E820Entry[]): MachineRange[] {
  return machineE820
    .filter((e) => e.type === E820_RAM && e.size > 0)
    .map((e) => ({ start: e.addr, size: e.size }))
    .sort((a, b) => a.start - b.start);
}

/**
 * get_crash_memory_ranges_xen: the RAM ranges less the crash region, which must lie inside one of them
 * (exclude_region assumes so). These become the PT_LOADs of the vmcore, in this order.
 */
export function crashMemoryRanges(ram: readonly MachineRange[], crash: MachineRange): MachineRange[] {
  const end = crash.start + crash.size;
  const host = ram.find((r) => crash.start >= r.start && end <= r.start + r.size);
  if (!host) throw new InputError(`crash region ${hex(crash.start)}-${hex(end - 1)} is not inside one host RAM range, expected it reserved from RAM (kexec-tools exclude_region)`);
  const out: MachineRange[] = [];
  for (const r of ram) {
    if (r !== host) out.push(r);
    else {
      if (crash.start > r.start) out.push({ start: r.start, size: crash.start - r.start });
      if (end < r.start + r.size) out.push({ start: end, size: r.start + r.size - end });
    }
  }
  return out;
}

/** Index of the last element ≤ value in an ascending array, or −1. */
function lastAtOrBelow(sorted: Float64Array, value: number): number {
  let lo = 0;
  let hi = sorted.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= value) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/** Whether any of the (ascending) frames lies in the machine range. */
export function holdsFrameIn(frames: Float64Array, r: MachineRange): boolean {
  const k = lastAtOrBelow(frames, Math.ceil((r.start + r.size) / PAGE_SIZE) - 1);
  return k >= 0 && (frames[k]! + 1) * PAGE_SIZE > r.start;
}

/**
 * Where Xen would put a crash area of `size` bytes: looking backwards from the limit (4 GiB), the highest
 * page-aligned window inside one RAM range that holds none of `frames` (what the emulated machine already
 * uses: Xen reserves the area before dom0 is built, so none of dom0's frames can be in it). Null if none.
 */
export function findCrashArea(ram: readonly MachineRange[], frames: Float64Array, size: number, limit = CRASH_AREA_LIMIT): MachineRange | null {
  for (const r of [...ram].reverse()) {
    let e = Math.floor(Math.min(r.start + r.size, limit) / PAGE_SIZE) * PAGE_SIZE;
    while (e - size >= r.start) {
      const start = e - size;
      const k = lastAtOrBelow(frames, e / PAGE_SIZE - 1);
      if (k < 0 || frames[k]! * PAGE_SIZE < start) return { start, size };
      e = frames[k]! * PAGE_SIZE; // move below the frame in the way, as Xen moves below a module
    }
  }
  return null;
}

/** The crash area: the one given (checked), else findCrashArea of 256 MiB, halved down to 16 MiB until one fits. */
export function chooseCrashArea(ram: readonly MachineRange[], frames: Float64Array, given?: MachineRange): MachineRange {
  if (given) {
    if (holdsFrameIn(frames, given)) throw new InputError(`crash region ${hex(given.start)}-${hex(given.start + given.size - 1)} holds frames the emulated machine uses, expected memory Xen reserved before building dom0`);
    crashMemoryRanges(ram, given); // inside one RAM range
    return given;
  }
  for (let size = DEFAULT_CRASH_SIZE; size >= MIN_CRASH_SIZE; size /= 2) {
    const area = findCrashArea(ram, frames, size);
    if (area) return area;
  }
  throw new InputError(`no room for a crash region: no ${MIN_CRASH_SIZE / MiB} MiB of host RAM below 4 GiB is free of the emulated machine's frames (Xen would print "Kdump: DISABLED")`);
}

/** What Xen's crash path records in the notes of an emulated host. */
export interface CrashNoteFacts {
  /** physical CPUs (one CORE + one CRASH_REGS note each) */
  pcpus: number;
  xenMajor: number;
  xenMinor: number;
  /** crash_xen_info_t.xen_phys_start (0: the emulator has no Xen image) */
  xenPhysStart: number;
  /** crash_xen_info_t.dom0_pfn_to_mfn_frame_list_list: dom0's shared_info arch field, as it is */
  frameListList: bigint;
  /** cr3 of the crashing pCPU 0 (it was running dom0) */
  cr3: bigint;
}

/** One note as Xen's setup_note lays it out: Elf_Note, name and descriptor each padded to 4. */
function note(name: string, type: number, desc: Buffer): Buffer {
  const nameBytes = Buffer.from(name + '\0', 'latin1');
  const pad = (n: number): number => Math.ceil(n / NOTE_ALIGN) * NOTE_ALIGN;
  const b = Buffer.alloc(NHDR_SIZE + pad(nameBytes.length) + pad(desc.length));
  b.writeUInt32LE(nameBytes.length, 0);
  b.writeUInt32LE(desc.length, 4);
  b.writeUInt32LE(type, 8);
  nameBytes.copy(b, NHDR_SIZE);
  desc.copy(b, NHDR_SIZE + pad(nameBytes.length));
  return b;
}

/**
 * The note area as /proc/vmcore presents it (fs/proc/vmcore.c merge_note_headers_elf64 concatenates the
 * PT_NOTEs kexec-tools made: one per physical CPU, then Xen's vmcoreinfo): per CPU "CORE" NT_PRSTATUS and
 * "Xen" CRASH_REGS, CPU 0 also "Xen" CRASH_INFO (the 4.17 length), then "VMCOREINFO_XEN".
 */
export function kdumpNoteArea(f: CrashNoteFacts): Buffer {
  const parts: Buffer[] = [];
  for (let cpu = 0; cpu < f.pcpus; cpu++) {
    const prstatus = Buffer.alloc(SIZEOF_ELF_PRSTATUS_64);
    prstatus.writeBigUInt64LE(BigInt(HYPERVISOR_CS64), PR_REG_OFFSET_64 + GREG_CS * CRASH_INFO_WORD);
    prstatus.writeBigUInt64LE(BigInt(HYPERVISOR_DS64), PR_REG_OFFSET_64 + GREG_SS * CRASH_INFO_WORD);
    parts.push(note(KEXEC_CORE_NOTE_NAME, NT_PRSTATUS, prstatus));
    const regs = Buffer.alloc(SIZEOF_CRASH_XEN_CORE_64);
    regs.writeBigUInt64LE(CRASH_CR0, XC_CR0);
    regs.writeBigUInt64LE(cpu === 0 ? f.cr3 : 0n, XC_CR3);
    regs.writeBigUInt64LE(CRASH_CR4, XC_CR4);
    parts.push(note(XEN_NOTE_NAME, XEN_ELFNOTE_CRASH_REGS, regs));
    if (cpu !== 0) continue;
    // xen_major, xen_minor, five string addresses (no Xen image here: 0), tainted, xen_phys_start, frame-list root
    const info = Buffer.alloc(XEN_CRASH_INFO_V2_SIZE);
    info.writeBigUInt64LE(BigInt(f.xenMajor), 0);
    info.writeBigUInt64LE(BigInt(f.xenMinor), CRASH_INFO_WORD);
    info.writeBigUInt64LE(BigInt(f.xenPhysStart), XEN_CRASH_INFO_V2_SIZE - 2 * CRASH_INFO_WORD);
    info.writeBigUInt64LE(f.frameListList, XEN_CRASH_INFO_V2_SIZE - CRASH_INFO_WORD);
    parts.push(note(XEN_NOTE_NAME, XEN_ELFNOTE_CRASH_INFO, info));
  }
  // crash_save_vmcoreinfo: the note fills VMCOREINFO_BYTES; the text is what the emulator knows of Xen
  const header = NHDR_SIZE + Math.ceil((VMCOREINFO_XEN_NOTE_NAME.length + 1) / NOTE_ALIGN) * NOTE_ALIGN;
  const text = Buffer.alloc(VMCOREINFO_BYTES - header);
  text.write(`PAGESIZE=${PAGE_SIZE}\n`, 'latin1');
  parts.push(note(VMCOREINFO_XEN_NOTE_NAME, 0, text));
  return Buffer.concat(parts);
}

/** How an emulated dom0 crash is dumped: the host's machine map and Xen's side of the crash. */
export interface Dom0KdumpOptions {
  /** Xen's machine memory map (default: the emulated boot's host e820) */
  machineE820?: readonly E820Entry[];
  /** the crash region (default: where Xen would reserve crashkernel=256M<4G, see chooseCrashArea) */
  crashRegion?: MachineRange;
  /** physical CPUs (default 2) */
  pcpus?: number;
  /** hypervisor version in crash_xen_info_t (default 4.17) */
  xen?: { major: number; minor: number };
  /** crash_xen_info_t.xen_phys_start (default 0: no Xen image is emulated) */
  xenPhysStart?: number;
}

/** What a kdump of the emulated dom0 holds: the dumped machine ranges, the crash region, the notes, the frames. */
export interface Dom0KdumpPlan {
  /** host RAM less the crash region, in address order (the vmcore's PT_LOADs) */
  ranges: MachineRange[];
  crashRegion: MachineRange;
  /** the note area (kdumpNoteArea) */
  notes: Buffer;
  /** frames the emulated machine holds, ascending; every one lies in `ranges` */
  frames: Float64Array;
}

/** The emulated machine as a Xen kdump would see it (role, frames, host map are checked). */
export interface EmulatedMachine {
  readonly frameSpace: 'mfn' | 'pfn';
  readonly cr3: bigint;
  readonly arch: { readonly pfnToMfnFrameListList: bigint };
  frames(): IterableIterator<number>;
}

/** Plan the kdump of an emulated dom0 (InputError for a domU, a pfn-space image, or a machine map that cannot hold it). */
export function planDom0Kdump(img: EmulatedMachine, boot: { role: string; hostE820: readonly E820Entry[] } | null, opts: Dom0KdumpOptions = {}): Dom0KdumpPlan {
  if (img.frameSpace !== 'mfn') throw new InputError('kdump: the image must be in machine frames (a save stream\'s pfn-space image is not a running host)');
  if (boot?.role === 'domU') throw new InputError("kdump: a domU has no kdump vmcore (Xen's kexec path dumps the host, with dom0's frame list); emulate a dom0");
  const map = opts.machineE820 ?? boot?.hostE820;
  if (!map) throw new InputError("kdump: the host's machine memory map is unknown (no emulated boot behind this image); give machineE820");
  const ram = hostRamRanges(map);
  const frames = Float64Array.from(img.frames()).sort();
  const crashRegion = chooseCrashArea(ram, frames, opts.crashRegion);
  const ranges = crashMemoryRanges(ram, crashRegion);
  let r = 0;
  for (const f of frames) {
    while (r < ranges.length && (f + 1) * PAGE_SIZE > ranges[r]!.start + ranges[r]!.size) r++;
    if (r === ranges.length || f * PAGE_SIZE < ranges[r]!.start) throw new InputError(`kdump: frame ${hex(f)} of the emulated machine lies outside host RAM less the crash region, so no PT_LOAD could hold it`);
  }
  const pcpus = opts.pcpus ?? DEFAULT_PCPUS;
  if (!Number.isInteger(pcpus) || pcpus < 1) throw new InputError(`kdump: ${pcpus} physical CPUs, expected at least 1`);
  const notes = kdumpNoteArea({
    pcpus,
    xenMajor: opts.xen?.major ?? 4,
    xenMinor: opts.xen?.minor ?? 17,
    xenPhysStart: opts.xenPhysStart ?? 0,
    frameListList: img.arch.pfnToMfnFrameListList,
    cr3: img.cr3,
  });
  return { ranges, crashRegion, notes, frames };
}
