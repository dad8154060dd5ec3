// Xen's messages about dom0 in a boot log: dom0_construct_pv's "Dom0 kernel:", "Dom0 alloc.:", "Init. ramdisk:" and
// "Phys-Mach map:" (xen/arch/x86/pv/dom0_build.c; xen/arch/x86/domain_build.c before 4.10) and Xen's version banner.
import { PAGE_SIZE } from '../xen/abi.js';
import { InputError } from '../common/errors.js';
import type { Dom0Alloc, Sourced } from './boot-log.js';
import { fromXen, keepFirst, type LogLine, onLine } from './boot-log-lines.js';

const HEX = '(?:0x)?([0-9a-f]+)';
/** Bytes per P2M entry Xen reserves for the initial P->M table: sizeof(unsigned long) / sizeof(unsigned int). */
const P2M_ENTRY_BYTES_64 = 8n;
const P2M_ENTRY_BYTES_32 = 4n;
/** PADDR_BITS: physical addresses (Dom0 alloc., the physical Init. ramdisk) lie below 2^52. */
const MAX_PADDR = 2n ** 52n;

// Xen's lines (trimmed body). " Dom0 alloc.:   %PRIpaddr->%PRIpaddr[ (%lu pages to be allocated)]"
export const DOM0_ALLOC_RE = new RegExp(`^Dom0 alloc\\.:\\s+${HEX}->${HEX}(?:\\s+\\((\\d+) pages to be allocated\\))?$`, 'i');
export const INIT_RAMDISK_RE = new RegExp(`^Init\\. ramdisk:\\s+${HEX}->${HEX}$`, 'i');
export const PHYS_MACH_RE = new RegExp(`^Phys-Mach map:\\s+${HEX}->${HEX}$`, 'i');
const DOM0_KERNEL_RE = /^Dom0 kernel:\s+(64|32)-bit\b/;
const XEN_BANNER_RE = /^Xen version (\S+) \(/;
const XEN_CRASH_BANNER_RE = /^-+\[ Xen-(\S+)\s/;

/** What the pass over the lines collects from Xen's messages. */
export interface XenScan {
  physMach: Sourced<{ start: string; end: string }> | null;
  alloc: Sourced<Dom0Alloc> | null;
  bits: Sourced<32 | 64> | null;
  xenVersion: Sourced<string> | null;
}

function bigHex(digits: string): bigint {
  return BigInt(`0x${digits}`);
}

/** The physical "Init. ramdisk: P->Q" printed right after "Dom0 alloc." (a virtual one lies above 2^52 or is empty). */
function initrdPagesAfter(lines: LogLine[], i: number): number | null {
  const next = lines[i + 1];
  const m = next && fromXen(next) ? INIT_RAMDISK_RE.exec(next.body.trim()) : null;
  if (!m) return null;
  const start = bigHex(m[1]!);
  const end = bigHex(m[2]!);
  if (end <= start || end > MAX_PADDR) return null;
  const pageSize = BigInt(PAGE_SIZE);
  return Number((end - start + pageSize - 1n) / pageSize);
}

function dom0AllocOf(m: RegExpExecArray, lines: LogLine[], i: number): Sourced<Dom0Alloc> {
  const start = Number(bigHex(m[1]!));
  const end = Number(bigHex(m[2]!));
  const value: Dom0Alloc = {
    start,
    end,
    chunkPages: Math.max(0, Math.floor((end - start) / PAGE_SIZE)),
    toAllocate: m[3] === undefined ? null : Number(m[3]),
    initrdPages: initrdPagesAfter(lines, i),
  };
  return onLine(value, lines[i]!);
}

export function scanXenLine(scan: XenScan, lines: LogLine[], i: number, notes: string[]): void {
  const l = lines[i]!;
  const t = l.body.trim();
  let m: RegExpExecArray | null;
  if ((m = DOM0_ALLOC_RE.exec(t))) {
    scan.alloc = keepFirst(scan.alloc, dom0AllocOf(m, lines, i), 'Dom0 alloc.', notes);
  } else if ((m = PHYS_MACH_RE.exec(t))) {
    scan.physMach = keepFirst(scan.physMach, onLine({ start: m[1]!, end: m[2]! }, l), 'Phys-Mach map', notes);
  } else if ((m = DOM0_KERNEL_RE.exec(t))) {
    scan.bits ??= onLine<32 | 64>(m[1] === '32' ? 32 : 64, l);
  } else if ((m = XEN_BANNER_RE.exec(t) ?? (l.origin === 'xen' ? XEN_CRASH_BANNER_RE.exec(t) : null))) {
    scan.xenVersion = keepFirst(scan.xenVersion, onLine(m[1]!, l), 'Xen version', notes);
  }
}

export function physMachPagesOf(scan: XenScan, source: string, notes: string[]): Sourced<number> | null {
  const pm = scan.physMach;
  if (!pm) return null;
  const bits = scan.bits?.value ?? 64;
  const entry = bits === 32 ? P2M_ENTRY_BYTES_32 : P2M_ENTRY_BYTES_64;
  const bytes = bigHex(pm.value.end) - bigHex(pm.value.start);
  if (bytes <= 0n) throw new InputError(`${source}:${pm.line}: Phys-Mach map ends before it starts`);
  if (bytes % entry !== 0n) {
    throw new InputError(
      `${source}:${pm.line}: Phys-Mach map spans 0x${bytes.toString(16)} bytes, not a multiple of ${entry} (one entry per dom0 page)`,
    );
  }
  if (bits === 32) notes.push('32-bit dom0: Phys-Mach map entries are 4 bytes');
  return { value: Number(bytes / entry), line: pm.line, text: pm.text };
}

export function dom0AllocPagesOf(alloc: Sourced<Dom0Alloc> | null): Sourced<number> | null {
  if (!alloc || alloc.value.toAllocate === null) return null;
  return { value: alloc.value.toAllocate, line: alloc.line, text: alloc.text };
}
