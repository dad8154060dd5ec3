// Boot-log input: what a Xen PV dom0 boot printed, as users paste it (`xl dmesg`, dom0 `dmesg`, a serial
// console with both interleaved, or a mailing-list copy of any of these). The formats followed, all read in
// the sources (docs/spec-notes/boot-log.md has files, tags and commits):
//  - Xen console (xen/drivers/char/console.c): every line starts "(XEN) ", optionally followed by a
//    console_timestamps= stamp "[%016lx] " (raw), "[YYYY-MM-DD HH:MM:SS] " / "[... .mmm] " (date,
//    datems) or "[%5lu.%06lu] " (boot); the banner "Xen version X.Y.Z (user@domain) (compiler) ...".
//  - Xen setup (xen/arch/x86/setup.c): "Command line: %s" (Xen's own options; " -- " dom0 extras cut
//    off before it is printed), "%s RAM map:" with "Xen-e820", "EFI", "Multiboot-e820" or "PVH-e820",
//    and print_e820_memory_map's entries (xen/arch/x86/e820.c) — parsed by ./e820.ts.
//  - dom0_construct_pv (xen/arch/x86/pv/dom0_build.c; xen/arch/x86/domain_build.c before 4.10):
//    " Dom0 kernel: 64-bit, ...", " Dom0 alloc.:   A->B (N pages to be allocated)", the physical
//    " Init. ramdisk: P->Q" right after it, and " Phys-Mach map: V->W" with W - V = nr_pages * 8.
//  - Linux (arch/x86/xen/setup.c, p2m.c, arch/x86/kernel/e820.c, setup.c, init/main.c, init/version.c;
//    v3.8.13 / v3.18 / v4.4 / v4.19 / v6.1): "Linux version R ...", "Command line: ...", "Kernel command
//    line: ...", "Xen: [mem A-B] type", "Released N pages of unused memory" and "Set N page(s) to 1-1
//    mapping" (3.x), "Released N page(s)" / "Remapped N page(s)" (3.18+), "p2m virtual area at P, size is
//    X" (3.19+), "[e820: ]last_pfn = 0xN max_arch_pfn = 0xM", "Xen version: X.Y.Z[ (preserve-AD)]".
// Mail copies: RFC 2045 quoted-printable, "> " quoting at any depth, lines hard-wrapped by the client.
// The parts: ./boot-log-lines.ts and ./boot-log-rejoin.ts (text to logical lines), ./boot-log-e820.ts (maps),
// ./boot-log-xen.ts, ./boot-log-linux.ts, ./boot-log-cmdline.ts (messages), ./boot-log-profile.ts (profile).
import { computeDom0Pages, parseDom0Mem } from './dom0-mem.js';
import { type E820Entry } from './e820.js';
import { chooseHostMap, findBlocks, kernelMap, sourcedMap } from './boot-log-e820.js';
import { type CmdlineScan, dom0MemOf, kernelMemOf, scanCmdline } from './boot-log-cmdline.js';
import { dom0AllocPagesOf, physMachPagesOf, scanXenLine, type XenScan } from './boot-log-xen.js';
import { type LinuxScan, scanLinuxLine } from './boot-log-linux.js';
import { profileOf } from './boot-log-profile.js';
import { logicalLines } from './boot-log-rejoin.js';
import { fromLinux, fromXen, type LogLine, sourced } from './boot-log-lines.js';

// ---- public types ---------------------------------------------------------------------------------

/** A value with the (1-based, physical) input line it came from and that line as found (unquoted, decoded, rejoined). */
export interface Sourced<T> {
  value: T;
  line: number;
  text: string;
}

export type MapKind = 'xen-e820' | 'efi' | 'linux-bios';

export interface BootMessages {
  /** 3.18+: "Released N page(s)" */
  released?: Sourced<number>;
  /** 3.18+: "Remapped N page(s)" */
  remapped?: Sourced<number>;
  /** 3.x: "Set N page(s) to 1-1 mapping" */
  identity?: Sourced<number>;
  /** 3.8 and older: "Released N pages of unused memory" */
  releasedPages38?: Sourced<number>;
  /** 3.19+: "p2m virtual area at ..., size is X" (bytes) */
  p2mAreaSize?: Sourced<number>;
  /** every "last_pfn = 0x..." in order */
  lastPfn: Sourced<number>[];
}

/** dom0_construct_pv's "Dom0 alloc.:" line and the physical "Init. ramdisk:" line printed with it. */
export interface Dom0Alloc {
  /** machine addresses of the initial contiguous chunk */
  start: number;
  end: number;
  chunkPages: number;
  /** "(N pages to be allocated)": nr_pages - domain_tot_pages(d); absent when nothing was left to allocate */
  toAllocate: number | null;
  /** PFN_UP(initrd length), from the physical "Init. ramdisk:" line; null when that line is not there */
  initrdPages: number | null;
}

export interface BootLog {
  /** Xen's map: 'Xen-e820 RAM map:' (BIOS) or 'EFI RAM map:' (EFI); else a native boot's BIOS-e820 lines */
  hostE820: Sourced<E820Entry[]> | null;
  mapKind: MapKind | null;
  /** the dom0 kernel's 'Xen: [mem A-B] type' lines (what it printed) */
  kernelE820: Sourced<E820Entry[]> | null;
  /** value of dom0_mem= on Xen's command line (several occurrences joined with ',') */
  dom0Mem: Sourced<string> | null;
  xenCmdline: Sourced<string> | null;
  kernelCmdline: Sourced<string> | null;
  /** mem= on the kernel command line, bytes (the last one, as Linux applies them) */
  kernelMem: Sourced<number> | null;
  /** (B - A) / 8 from 'Phys-Mach map: A->B' (/ 4 for a 32-bit dom0) */
  physMachPages: Sourced<number> | null;
  /** N of 'Dom0 alloc.: A->B (N pages to be allocated)' */
  dom0AllocPages: Sourced<number> | null;
  /** the whole 'Dom0 alloc.' line and its ramdisk line (our addition: dom0PagesFromLog needs it) */
  dom0Alloc: Sourced<Dom0Alloc> | null;
  /** 'Dom0 kernel: 64-bit, ...' (our addition) */
  dom0KernelBits: Sourced<32 | 64> | null;
  /** the release from 'Linux version 4.19.86 ...' ("4.19.86") */
  kernelVersion: Sourced<string> | null;
  suggestedProfile: string | null;
  /** Xen's own banner ("4.17.0"), else what the kernel reported ('Xen version: 4.17.0') */
  xenVersion: Sourced<string> | null;
  messages: BootMessages;
  notes: string[];
}

// ---- one pass over the lines ----------------------------------------------------------------------

/** What the one pass over the lines collects: each family's findings. */
type Scan = CmdlineScan & XenScan & LinuxScan;

function scanLines(lines: LogLine[], notes: string[]): Scan {
  const scan: Scan = {
    xenCmd: null,
    kernelCmd: null,
    kernelCmdFallback: null,
    physMach: null,
    alloc: null,
    bits: null,
    kernelVersion: null,
    xenVersion: null,
    xenVersionFromLinux: null,
    messages: { lastPfn: [] },
  };
  lines.forEach((l, i) => {
    if (l.origin === 'guest' || scanCmdline(scan, l, notes)) return;
    if (fromXen(l)) scanXenLine(scan, lines, i, notes);
    if (fromLinux(l)) scanLinuxLine(scan, l, notes);
  });
  return scan;
}

// ---- entry points ---------------------------------------------------------------------------------

/**
 * Parse a pasted boot log. Throws InputError (one line, naming the input line) when there is no host map
 * (unless `hostMap: 'optional'`: a guest's own dmesg has none), two different ones, a damaged one, an
 * unparseable dom0_mem= or an impossible Phys-Mach range.
 */
export function parseBootLog(text: string, source: string, opts: { hostMap?: 'required' | 'optional' } = {}): BootLog {
  const notes: string[] = [];
  const lines = logicalLines(text, notes);
  const blocks = findBlocks(lines, source, notes);
  const host = chooseHostMap(blocks, lines, source, notes, opts.hostMap === 'optional');
  const scan = scanLines(lines, notes);
  const kernelCmd = scan.kernelCmd ?? scan.kernelCmdFallback;
  const kernelVersion = scan.kernelVersion;
  return {
    hostE820: host && sourcedMap(host.block, lines),
    mapKind: host?.kind ?? null,
    kernelE820: kernelMap(blocks, lines, notes),
    dom0Mem: dom0MemOf(scan.xenCmd, source, notes),
    xenCmdline: scan.xenCmd && sourced(scan.xenCmd.value, scan.xenCmd),
    kernelCmdline: kernelCmd && sourced(kernelCmd.value, kernelCmd),
    kernelMem: kernelMemOf(kernelCmd, notes),
    physMachPages: physMachPagesOf(scan, source, notes),
    dom0AllocPages: dom0AllocPagesOf(scan.alloc),
    dom0Alloc: scan.alloc,
    dom0KernelBits: scan.bits,
    kernelVersion,
    suggestedProfile: profileOf(kernelVersion, notes),
    xenVersion: scan.xenVersion ?? scan.xenVersionFromLinux,
    messages: scan.messages,
    notes,
  };
}

function fromAlloc(alloc: Sourced<Dom0Alloc>): { nrPages: Sourced<number>; why: string } {
  const a = alloc.value;
  const total = a.toAllocate! + a.chunkPages + (a.initrdPages ?? 0);
  const parts = `${a.toAllocate} to be allocated + ${a.chunkPages} in the initial chunk` + (a.initrdPages === null ? '' : ` + ${a.initrdPages} of the initrd`);
  const bound =
    a.initrdPages === null
      ? '; a lower bound: no physical "Init. ramdisk:" line follows it, and an initrd Xen handed to dom0 would add its pages'
      : '';
  return {
    nrPages: { value: total, line: alloc.line, text: alloc.text },
    why: `Dom0 alloc. (line ${alloc.line}): nr_pages = ${parts} = ${total}${bound}`,
  };
}

function allocCheck(log: BootLog): string {
  const a = log.dom0Alloc?.value;
  if (!a || a.toAllocate === null || !log.physMachPages) return '';
  const rest = log.physMachPages.value - a.toAllocate - a.chunkPages;
  if (rest < 0) return `; Dom0 alloc. at line ${log.dom0Alloc!.line} does not fit it (${a.toAllocate} + ${a.chunkPages} pages already exceed it)`;
  return `; Dom0 alloc. agrees: ${a.toAllocate} to allocate + ${a.chunkPages} in the initial chunk + ${rest} assigned before (the initrd)`;
}

/** dom0's nr_pages: the Phys-Mach map's size beats Dom0 alloc. beats a size computed from dom0_mem and the host map. */
export function dom0PagesFromLog(log: BootLog): { nrPages?: Sourced<number>; why: string } {
  if (log.physMachPages) {
    const p = log.physMachPages;
    return { nrPages: p, why: `Phys-Mach map (line ${p.line}): Xen sizes the initial P->M table at one entry per page, ${p.value} pages${allocCheck(log)}` };
  }
  if (log.dom0Alloc && log.dom0Alloc.value.toAllocate !== null) return fromAlloc(log.dom0Alloc);
  if (!log.hostE820) return { why: 'no Phys-Mach map, Dom0 alloc. line or host map in the log' };
  const spec = log.dom0Mem ? parseDom0Mem(log.dom0Mem.value) : null;
  const r = computeDom0Pages(spec, log.hostE820.value);
  const from = log.dom0Mem ?? log.hostE820;
  const given = log.dom0Mem
    ? `dom0_mem=${log.dom0Mem.value} (line ${log.dom0Mem.line})`
    : "Xen's default (no dom0_mem= in the log; a CONFIG_DOM0_MEM built into Xen would change it)";
  return {
    nrPages: { value: r.nrPages, line: from.line, text: from.text },
    why: `computed: neither Phys-Mach map nor Dom0 alloc. in the log; ${given} on the host map: ${r.notes.join('; ')}`,
  };
}
