// Which top-level page table the guest view walks from (docs/spec-notes/dom0-kdump-views.md §2): the
// kernel's own, never a process's if it can be helped. Linux publishes its table as arch.p2m_cr3 =
// xen_pfn_to_cr3(virt_to_mfn(swapper_pg_dir)) (arch/x86/xen/p2m.c xen_setup_mfn_list_list, ≥ 4.x); the
// table itself is init_top_pgt (init_level4_pgt before 4.13; swapper_pg_dir names it), pinned and loaded
// by xen_setup_kernel_pagetable (arch/x86/xen/mmu_pv.c), reached at pfn = va − __START_KERNEL_map (a PV
// kernel runs where Xen's builder put it: XEN_ELFNOTE_VIRT_BASE = __START_KERNEL_map, PADDR_OFFSET 0,
// phys_base 0; crash does the same, x86_64.c x86_64_init_kernel_pgd / x86_64_VTOP). A vCPU's cr3 comes
// last: it can be a user process's table lying in the very RAM the toolstack cannot see.
import { InputError } from '../common/errors.js';
import { dom0KdumpOf, type GuestImage } from '../formats/guest-image.js';
import type { ArchSharedInfo } from '../xen/shared-info.js';
import { isWalkFailure, translate, type FrameReader } from '../translate/page-walk.js';
import { PAGE_SHIFT, PAGE_SIZE, START_KERNEL_MAP, hex } from '../xen/abi.js';
import { frameListOf, listEntry, type FrameList } from './crash-frame-list.js';

export type KernelRootSource = 'p2m_cr3' | 'kernel-table' | 'vcpu-cr3';

/** The table the guest view walks from, and why that one. */
export interface KernelRoot {
  source: KernelRootSource;
  /** the top-level table's frame, in the image's frame space */
  frame: number;
  /** one line: which table, found how */
  text: string;
  /** every earlier candidate and why it was not used */
  skipped: string[];
}

/** The kernel's top-level table symbols, newest name first (init_top_pgt ≥ 4.13, init_level4_pgt before). */
export const KERNEL_TOP_TABLE_SYMBOLS = ['init_top_pgt', 'init_level4_pgt', 'swapper_pg_dir'] as const;
/** Symbols whose pages the views must reach: the p2m roots, then plain kernel variables. */
const PROBE_SYMBOLS = ['xen_p2m_addr', 'p2m_top', 'max_pfn', 'xen_start_info'] as const;
/** ~0: Linux's "no frame list" (SIF_VIRT_P2M_4TOOLS). */
const FLL_INVALID = 0xffffffffffffffffn;
/** High word bits of a p2m entry that mark it as no RAM frame (FOREIGN, IDENTITY) or invalid. */
const ENTRY_MARK_HI = 0xc0000000;
const WORD = 2 ** 32;

/** pfn → frame in the image, for the kernel-image pfns: what each format has for it. */
export interface PfnFrameMap {
  /** the frame holding pfn, or −1 */
  frameOf(pfn: number): number;
  /** where the map comes from, in words */
  label: string;
}

/** A frame list read by crash's rule as a pfn → mfn map (RAM entries only). */
function listMap(img: GuestImage, list: FrameList, label: string): PfnFrameMap {
  const out = { lo: 0, hi: 0, leaf: -1 };
  return {
    label,
    frameOf(pfn: number): number {
      if (listEntry(img, list, pfn, out) !== 'ok' || (out.hi & ENTRY_MARK_HI) !== 0) return -1;
      return out.hi * WORD + out.lo;
    },
  };
}

/** A dump-core's .xen_p2m pairs as a pfn → gmfn map (the table is read on first use; a lookup is one scan). */
function pairsMap(pairs: () => { pfns: Float64Array; gmfns: Float64Array }): PfnFrameMap {
  let table: { pfns: Float64Array; gmfns: Float64Array } | null = null;
  return {
    label: "the dump's .xen_p2m table",
    frameOf(pfn: number): number {
      table ??= pairs();
      const i = table.pfns.indexOf(pfn);
      return i < 0 ? -1 : table.gmfns[i]!;
    },
  };
}

/**
 * The image's own pfn → frame map: a save stream is in pfn space already; a dump-core has its .xen_p2m
 * pairs; a dom0 kdump the frame list from the crash note (read as crash reads it); any other machine-frame
 * image the frame list at arch.pfn_to_mfn_frame_list_list. Null when the image has none.
 */
export function pfnFrameMap(img: GuestImage): PfnFrameMap | null {
  if (img.frameSpace === 'pfn') return { label: "the stream's own pfns", frameOf: (pfn) => pfn };
  const facts = img.formatFacts;
  if (facts.kind === 'dump-core') return pairsMap(() => facts.p2mPairs());
  const kdump = dom0KdumpOf(img);
  if (kdump) {
    const root = kdump.crashInfo.frameListListMfn;
    return listMap(img, frameListOf(img, root), `the crash note's frame list (top page mfn ${hex(root)})`);
  }
  const fll = img.arch.pfnToMfnFrameListList;
  if (fll === 0n || fll === FLL_INVALID || fll > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return listMap(img, frameListOf(img, Number(fll)), `the frame list at arch.pfn_to_mfn_frame_list_list ${hex(fll)}`);
}

/** Why a candidate table cannot be walked to the kernel's symbols, or null when it can. */
function unreachable(img: GuestImage, reader: FrameReader, frame: number): string | null {
  if (reader.readFrame(frame) === null) return `its frame ${hex(frame)} is not in the image`;
  const probe = PROBE_SYMBOLS.find((s) => img.symbols.has(s));
  if (!probe) return null; // nothing to check against: the guest view reports the missing symbols itself
  const va = img.symbols.get(probe)!;
  const t = translate(reader, frame, va);
  if (isWalkFailure(t)) return `it does not map ${probe} at ${hex(va)} (${t.error})`;
  if (reader.readFrame(t.frame) === null) return `${probe} at ${hex(va)} maps to frame ${hex(t.frame)}, which is not in the image`;
  return null;
}

export interface KernelRootOptions {
  /** arch fields to take p2m_cr3 from when the image's own shared_info has none (a dom0 kdump's, found through its symbols) */
  arch?: ArchSharedInfo | null;
  /** where `arch` came from, in words */
  archSource?: string;
  /** leave arch.p2m_cr3 out (while looking for the shared_info that would publish it) */
  skipP2mCr3?: boolean;
  /** what the candidates' probe walks read the image's frames through (the guest view's frame cache: the walk after it reads the same tables); default the image */
  reader?: FrameReader;
}

function frameOfCr3(cr3: bigint): number {
  return Number(cr3 >> BigInt(PAGE_SHIFT));
}

/**
 * The kernel's top-level page table: arch.p2m_cr3 when shared_info publishes it (machine-frame images
 * only: a save stream's frames are pfns, its p2m_cr3 a machine address of the saving host); else the
 * kernel's own table (init_top_pgt …) through the kernel-image mapping and the image's pfn → frame map;
 * else each vCPU's cr3. The first candidate present in the image whose walk reaches the kernel's symbols
 * wins. Throws InputError naming every candidate and why it failed when none does.
 */
export function findKernelRoot(img: GuestImage, opts: KernelRootOptions = {}): KernelRoot {
  const skipped: string[] = [];
  const reader = opts.reader ?? img;
  const attempt = (source: KernelRootSource, frame: number, text: string): KernelRoot | null => {
    const why = unreachable(img, reader, frame);
    if (why === null) return { source, frame, text, skipped };
    skipped.push(`${text}: ${why}`);
    return null;
  };

  // 1. arch.p2m_cr3
  const arch = img.sharedInfo ? img.arch : (opts.arch ?? null);
  const archFrom = img.sharedInfo ? "the image's shared_info" : (opts.archSource ?? 'shared_info');
  if (!opts.skipP2mCr3) {
    if (!arch) skipped.push('arch.p2m_cr3: the image holds no shared_info page');
    else if (arch.p2mCr3 === 0n) skipped.push(`arch.p2m_cr3: 0 in ${archFrom} (not published)`);
    else if (img.frameSpace === 'pfn') skipped.push(`arch.p2m_cr3 ${hex(arch.p2mCr3)}: a machine address of the saving host, and this image's frames are pfns`);
    else {
      const r = attempt('p2m_cr3', frameOfCr3(arch.p2mCr3), `arch.p2m_cr3 ${hex(arch.p2mCr3)} from ${archFrom} (the kernel's swapper_pg_dir)`);
      if (r) return r;
    }
  }

  // 2. the kernel's own table through the kernel-image mapping
  const sym = KERNEL_TOP_TABLE_SYMBOLS.find((s) => img.symbols.has(s));
  if (!sym) skipped.push(`kernel table: none of ${KERNEL_TOP_TABLE_SYMBOLS.join(', ')} is among the symbols`);
  else {
    const va = img.symbols.get(sym)!;
    const off = va - START_KERNEL_MAP;
    if (off < 0n || off % BigInt(PAGE_SIZE) !== 0n) skipped.push(`${sym} at ${hex(va)}: not a page of the kernel-image mapping (__START_KERNEL_map ${hex(START_KERNEL_MAP)})`);
    else {
      const pfn = Number(off >> BigInt(PAGE_SHIFT));
      const map = pfnFrameMap(img);
      const frame = map ? map.frameOf(pfn) : -1;
      if (!map) skipped.push(`${sym} (pfn ${hex(pfn)}): the image has no pfn → frame map`);
      else if (frame < 0) skipped.push(`${sym} (pfn ${hex(pfn)}): ${map.label} has no frame for it`);
      else {
        const via = img.frameSpace === 'pfn' ? `pfn ${hex(pfn)}` : `pfn ${hex(pfn)} → frame ${hex(frame)} through ${map.label}`;
        const r = attempt('kernel-table', frame, `${sym} at ${hex(va)} (${via})`);
        if (r) return r;
      }
    }
  }

  // 3. the vCPUs' cr3
  const vcpus = img.vcpus ?? [];
  if (vcpus.length > 0) {
    for (const v of vcpus) {
      const r = v.cr3Frame > 0 ? attempt('vcpu-cr3', v.cr3Frame, `vCPU ${v.id}'s cr3 (frame ${hex(v.cr3Frame)})`) : null;
      if (r) return r;
      if (v.cr3Frame <= 0) skipped.push(`vCPU ${v.id}'s cr3: none`);
    }
  } else if (img.cr3 !== 0n) {
    const r = attempt('vcpu-cr3', frameOfCr3(img.cr3), `vCPU 0's cr3 ${hex(img.cr3)}`);
    if (r) return r;
  } else skipped.push("vCPU cr3: the image holds no vCPU context");

  throw new InputError(`${img.path || '<image>'}: no kernel page table the guest view can walk from: ${skipped.join('; ')}`);
}

/** The root's line for reports: the table used, then what was passed over. */
export function describeRoot(root: KernelRoot): string {
  const skipped = root.skipped.length > 0 ? ` (not used: ${root.skipped.join('; ')})` : '';
  return `kernel page tables from ${root.text}${skipped}`;
}
