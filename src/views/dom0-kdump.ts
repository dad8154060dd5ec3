// dom0's shared_info in its own crash dump (docs/spec-notes/dom0-kdump-views.md §3). Xen's crash note
// carries only the frame-list root; arch.max_pfn, p2m_cr3, p2m_vaddr and p2m_generation live in dom0's
// shared_info page, whose machine address dom0 keeps in start_info.shared_info (xen/include/public/xen.h;
// xen_start_info, revectored into the direct map by xen_setup_kernel_pagetable, arch/x86/xen/mmu_pv.c)
// and maps at HYPERVISOR_shared_info (a fixmap of that machine frame, xen_setup_shared_info,
// arch/x86/xen/enlighten_pv.c). Both pointers are read through the kernel's own page tables
// (kernel-root.ts); the page is used when the dump holds it (it is Xen's page, in host RAM).
import { dom0KdumpOf, type GuestImage } from '../formats/guest-image.js';
import { isWalkFailure, readVirt, readVirtU64, translate } from '../translate/page-walk.js';
import { PAGE_SIZE, START_INFO_SHARED_INFO_OFFSET, hex } from '../xen/abi.js';
import { parseArchSharedInfo, type ArchSharedInfo } from '../xen/shared-info.js';
import { findKernelRoot } from './kernel-root.js';

/** start_info.magic of a 64-bit PV guest ("xen-3.0-x86_64", xen.h). */
const START_INFO_MAGIC = 'xen-3.0-x86_64';

export interface Dom0SharedInfo {
  /** machine address of the page */
  maddr: number;
  /** how it was found, in words */
  via: string;
  /** a copy of the page */
  page: Buffer;
  arch: ArchSharedInfo;
}

export interface Dom0SharedInfoSearch {
  found: Dom0SharedInfo | null;
  /** what was tried and what it gave */
  notes: string[];
}

const cache = new WeakMap<GuestImage, Dom0SharedInfoSearch>();

/** The machine address start_info.shared_info holds, or why it cannot be had. */
function viaStartInfo(img: GuestImage, rootFrame: number): { maddr: number } | { why: string } {
  const va = img.symbols.get('xen_start_info');
  if (va === undefined) return { why: 'xen_start_info is not among the symbols' };
  const ptr = readVirtU64(img, rootFrame, va);
  if (typeof ptr !== 'bigint') return { why: `xen_start_info at ${hex(va)}: ${ptr.error}` };
  const magic = readVirt(img, rootFrame, ptr, START_INFO_MAGIC.length);
  if (!Buffer.isBuffer(magic)) return { why: `start_info at ${hex(ptr)}: ${magic.error}` };
  if (magic.toString('latin1') !== START_INFO_MAGIC) return { why: `start_info at ${hex(ptr)} does not begin with "${START_INFO_MAGIC}"` };
  const si = readVirtU64(img, rootFrame, ptr + BigInt(START_INFO_SHARED_INFO_OFFSET));
  if (typeof si !== 'bigint') return { why: `start_info.shared_info at ${hex(ptr + BigInt(START_INFO_SHARED_INFO_OFFSET))}: ${si.error}` };
  if (si === 0n || si % BigInt(PAGE_SIZE) !== 0n || si > BigInt(Number.MAX_SAFE_INTEGER)) return { why: `start_info.shared_info ${hex(si)} is not a page's machine address` };
  return { maddr: Number(si) };
}

/** The machine frame HYPERVISOR_shared_info maps, or why it cannot be had. */
function viaFixmap(img: GuestImage, rootFrame: number): { maddr: number } | { why: string } {
  const va = img.symbols.get('HYPERVISOR_shared_info');
  if (va === undefined) return { why: 'HYPERVISOR_shared_info is not among the symbols' };
  const ptr = readVirtU64(img, rootFrame, va);
  if (typeof ptr !== 'bigint') return { why: `HYPERVISOR_shared_info at ${hex(va)}: ${ptr.error}` };
  const t = translate(img, rootFrame, ptr);
  if (isWalkFailure(t)) return { why: `HYPERVISOR_shared_info = ${hex(ptr)}: ${t.error}` };
  return { maddr: t.frame * PAGE_SIZE };
}

/**
 * Look for dom0's shared_info in a dom0 kdump: through xen_start_info, then HYPERVISOR_shared_info.
 * Cached per image. `found` is null for any other image, and when neither pointer leads to a page the
 * dump holds.
 */
export function searchDom0SharedInfo(img: GuestImage): Dom0SharedInfoSearch {
  const hit = cache.get(img);
  if (hit) return hit;
  const result = search(img);
  cache.set(img, result);
  return result;
}

function search(img: GuestImage): Dom0SharedInfoSearch {
  const kdump = dom0KdumpOf(img);
  if (!kdump) return { found: null, notes: [] };
  const notes: string[] = [];
  let rootFrame: number;
  try {
    rootFrame = findKernelRoot(img, { skipP2mCr3: true }).frame;
  } catch (e) {
    notes.push(`dom0's shared_info not looked for: ${(e as Error).message}`);
    return { found: null, notes };
  }
  const tries: [string, (img: GuestImage, root: number) => { maddr: number } | { why: string }][] = [
    ['xen_start_info → start_info.shared_info', viaStartInfo],
    ['HYPERVISOR_shared_info', viaFixmap],
  ];
  for (const [via, find] of tries) {
    const r = find(img, rootFrame);
    if ('why' in r) {
      notes.push(`${via}: ${r.why}`);
      continue;
    }
    const page = img.readFrame(r.maddr / PAGE_SIZE);
    if (!page) {
      notes.push(`${via}: machine ${hex(r.maddr)}, a page the dump does not hold`);
      continue;
    }
    const copy = Buffer.from(page);
    const arch = parseArchSharedInfo(copy);
    // Xen copies the note's root from this very field (xen/arch/x86/crash.c): a page that disagrees is not dom0's live shared_info
    if (arch.pfnToMfnFrameListList !== BigInt(kdump.crashInfo.frameListListMfn)) {
      notes.push(`${via}: the page at machine ${hex(r.maddr)} has arch.pfn_to_mfn_frame_list_list ${hex(arch.pfnToMfnFrameListList)}, not the crash note's ${hex(kdump.crashInfo.frameListListMfn)}: not used`);
      continue;
    }
    return { found: { maddr: r.maddr, via, page: copy, arch }, notes };
  }
  return { found: null, notes };
}

/** dom0's shared_info found in a kdump, or null. */
export function dom0SharedInfo(img: GuestImage): Dom0SharedInfo | null {
  return searchDom0SharedInfo(img).found;
}

/**
 * A dom0 kdump whose metadata carries the shared_info found through its symbols (sharedInfo, arch): a
 * wrapper that hands every frame read to the image it wraps. Any other image, or a kdump whose
 * shared_info is not found, is returned as it is.
 */
export function withDom0SharedInfo(img: GuestImage): GuestImage {
  if (img.sharedInfo) return img;
  const si = dom0SharedInfo(img);
  if (!si) return img;
  return {
    get path() {
      return img.path;
    },
    format: img.format,
    frameSpace: img.frameSpace,
    maxFrame: img.maxFrame,
    readFrame: (frame: number) => img.readFrame(frame),
    frameOffset: (frame: number) => img.frameOffset(frame),
    frameCount: () => img.frameCount(),
    close: () => img.close(),
    guestWidth: img.guestWidth,
    sharedInfo: si.page,
    arch: si.arch,
    cr3: img.cr3,
    symbols: img.symbols,
    formatFacts: img.formatFacts,
    ...(img.vcpus ? { vcpus: img.vcpus } : {}),
  };
}
