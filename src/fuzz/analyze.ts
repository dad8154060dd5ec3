// Analysis of one base file into its anatomy (docs/fuzz.md): open it with the project's own readers, run
// both walks (xen-toolstack.md §1: map_p2m_tree / map_p2m_list: FLL → frame-list pages → leaves; p2m_cr3 →
// L4..L1; §2: arch_shared_info), and record where every structure the mutation classes aim at sits in the file.
import * as fs from 'node:fs';
import { frameAt, guestLeafCount, type GuestView, type ToolstackView } from '../views/p2m-leaves.js';
import { readGuestView } from '../views/guest-view.js';
import type { GuestImage, ImageFormat } from '../formats/guest-image.js';
import type { SymbolTable } from '../formats/symbols.js';
import { openImage } from '../formats/open-image.js';
import { isWalkFailure, readVirtU64, translate } from '../translate/page-walk.js';
import { mapP2m } from '../views/toolstack-view.js';
import { dom0SharedInfo, withDom0SharedInfo } from '../views/dom0-kdump.js';
import { _PAGE_PRESENT, _PAGE_PSE, L1_SHIFT, L2_SHIFT, L3_SHIFT, L4_SHIFT, P2M_ENTRY_SIZE, P2M_PER_PAGE, PAGE_SHIFT, PAGE_SIZE, PT_LEVELS_64, PTE_SIZE, PTRS_PER_TABLE, START_INFO_NR_PAGES_OFFSET, hex } from '../xen/abi.js';
import { fileReader, type Anatomy, type BaseReader, type FrameSite, type IntField, type PtStep, type Region } from './anatomy.js';
import { layoutOf } from './anatomy-layouts.js';
import { alignUp, PTE_FRAME_MASK, PTR_SIZE, safeNum, U32_BYTES, U32_LIMIT, U64_PER_PAGE } from './numbers.js';

/** File chunk used when scanning a base file for a byte pattern. */
const SCAN_CHUNK = 16 * 1024 * 1024;
/** Bytes of a file's head used as a fallback region when its format cannot be laid out. */
const HEAD_REGION = 64 * 1024;
/** Caps keeping an anatomy small enough to ship to every child process. */
const MAX_STRUCTURE_SITES = 256;
const MAX_LEAF_SITES = 16;
const MAX_GENERIC_INTS = 1024;
const MAX_VARS = 48;
/** A value "looks like a length/offset/count" when it is in [1, LENGTH_LIKE_FACTOR × file size]. */
const LENGTH_LIKE_FACTOR = 2;
/** Kernel variables the guest view reads (guest-view.ts) and the p2m code's other globals. */
const KERNEL_VARS = [
  'max_pfn',
  'xen_max_p2m_pfn',
  'xen_p2m_size',
  'xen_p2m_last_pfn',
  'xen_p2m_addr',
  'xen_start_info',
  'page_offset_base',
  'p2m_top',
  'p2m_mid_missing',
  'p2m_missing',
  'p2m_identity',
  'p2m_top_mfn',
  'p2m_top_mfn_p',
];
/** Symbol names containing this are also treated as p2m variables. */
const P2M_NAME_PART = 'p2m';

/** Offsets of every copy of `needle` in the file (chunked scan; bounded memory). */
function findAll(r: BaseReader, needle: Buffer, limit = 8): number[] {
  const out: number[] = [];
  for (let at = 0; at < r.size && out.length < limit; at += SCAN_CHUNK) {
    const chunk = r.read(at, SCAN_CHUNK + needle.length - 1);
    let k = chunk.indexOf(needle);
    while (k >= 0 && out.length < limit) {
      if (k < SCAN_CHUNK) out.push(at + k);
      k = chunk.indexOf(needle, k + 1);
    }
  }
  return [...new Set(out)];
}

function inRegions(offset: number, regions: Region[]): boolean {
  for (const g of regions) if (offset >= g.start && offset < g.start + g.length) return true;
  return false;
}

/** Aligned u32 (LE and BE) and u64 (LE) values in [1, 2·size] inside `regions`, outside page data; sampled evenly. */
function genericInts(r: BaseReader, regions: Region[], pageData: Region[]): IntField[] {
  const found: IntField[] = [];
  const limit = LENGTH_LIKE_FACTOR * r.size;
  for (const g of regions) {
    if (g.name.startsWith('frame ')) continue; // frame contents belong to the structure classes
    const b = r.read(g.start, g.length);
    const first = alignUp(g.start, U32_BYTES) - g.start;
    for (let i = first; i + U32_BYTES <= b.length; i += U32_BYTES) {
      const off = g.start + i;
      if (inRegions(off, pageData)) continue;
      const le = b.readUInt32LE(i);
      const be = b.readUInt32BE(i);
      if (le >= 1 && le <= limit) found.push({ name: `u32le @${off}`, offset: off, width: 4, endian: 'le' });
      else if (be >= 1 && be <= limit) found.push({ name: `u32be @${off}`, offset: off, width: 4, endian: 'be' });
      if (off % P2M_ENTRY_SIZE === 0 && i + P2M_ENTRY_SIZE <= b.length) {
        const q = b.readBigUInt64LE(i);
        if (q >= 1n && q <= BigInt(limit) && q >= BigInt(U32_LIMIT)) found.push({ name: `u64le @${off}`, offset: off, width: 8, endian: 'le' });
      }
    }
  }
  if (found.length <= MAX_GENERIC_INTS) return found;
  const step = found.length / MAX_GENERIC_INTS;
  return Array.from({ length: MAX_GENERIC_INTS }, (_, k) => found[Math.floor(k * step)]!);
}

/** Tables read walking `va` from `cr3Frame` (stops at a non-present entry, a large leaf or an absent table). */
function ptPath(img: GuestImage, walk: string, cr3Frame: number, va: bigint): PtStep[] {
  const steps: PtStep[] = [];
  const shifts = [0, L1_SHIFT, L2_SHIFT, L3_SHIFT, L4_SHIFT];
  let table = cr3Frame;
  for (let level = PT_LEVELS_64; level >= 1; level--) {
    const offset = img.frameOffset(table);
    const page = img.readFrame(table);
    if (offset < 0 || page === null) break;
    const index = Number((va >> BigInt(shifts[level]!)) & BigInt(PTRS_PER_TABLE - 1));
    const entry = page.readBigUInt64LE(index * PTE_SIZE);
    steps.push({ walk, va, level, table, tableOffset: offset, index, entry });
    if ((entry & BigInt(_PAGE_PRESENT)) === 0n) break;
    if (level > 1 && (entry & BigInt(_PAGE_PSE)) !== 0n) break;
    table = Number((entry & PTE_FRAME_MASK) >> BigInt(PAGE_SHIFT));
  }
  return steps;
}

function site(img: GuestImage, role: string, frame: number): FrameSite | null {
  if (!Number.isSafeInteger(frame) || frame < 0) return null;
  const offset = img.frameOffset(frame);
  return offset < 0 ? null : { role, frame, offset };
}

/**
 * Analyse one base file: open it with the project's readers, run both walks, and record where every
 * structure the mutation classes aim at lives in the file. Nothing here throws for a partial result:
 * parts that cannot be found are left empty and listed in `notes`.
 */
export function analyze(source: string, basePath: string, ext: string, format: ImageFormat, symbols: SymbolTable | null, symbolsPath: string | null): Anatomy {
  const fd = fs.openSync(basePath, 'r');
  try {
    const r = fileReader(fd, fs.fstatSync(fd).size);
    const layout = layoutOf(r, format);
    const a: Anatomy = {
      source,
      basePath,
      ext,
      format,
      size: r.size,
      symbolsPath,
      maxFrame: null,
      highFrame: 0,
      regions: [...layout.regions],
      fields: layout.fields,
      genericInts: [],
      sharedInfoOffsets: [],
      structure: [],
      leaves: [],
      frameList: null,
      ptSteps: [],
      vars: [],
      guestTree: null,
      p2ms: layout.p2ms,
      arch: { maxPfn: 0n, fll: 0n, p2mCr3: 0n, p2mVaddr: 0n },
      cr3: 0n,
      notes: [],
    };
    if (a.regions.length === 0) a.regions.push({ name: 'file head', start: 0, length: Math.min(HEAD_REGION, r.size) });
    let img: GuestImage | null = null;
    try {
      // a dom0 kdump's shared_info is the page its symbols lead to (views/dom0-kdump.ts): mutated like any copy
      img = withDom0SharedInfo(openImage(basePath, symbols ? { symbols } : {}));
    } catch (e) {
      a.notes.push(`the base file does not open (${(e as Error).message}): byte-level classes only`);
    }
    if (img) {
      try {
        analyzeImage(img, a, r);
      } finally {
        img.close();
      }
    }
    a.genericInts = genericInts(r, a.regions, layout.pageData);
    return a;
  } finally {
    fs.closeSync(fd);
  }
}

function analyzeImage(img: GuestImage, a: Anatomy, r: BaseReader): void {
  a.maxFrame = Number.isFinite(img.maxFrame) ? img.maxFrame : null;
  a.arch = { maxPfn: img.arch.maxPfn, fll: img.arch.pfnToMfnFrameListList, p2mCr3: img.arch.p2mCr3, p2mVaddr: img.arch.p2mVaddr };
  a.cr3 = img.cr3;
  const addRegion = (s: FrameSite): void => {
    a.regions.push({ name: `frame ${hex(s.frame)} (${s.role})`, start: s.offset, length: PAGE_SIZE });
    a.highFrame = Math.max(a.highFrame, s.frame);
  };
  if (img.sharedInfo) {
    // a dom0 kdump holds it at its machine frame (searching a mostly-zero page through GiBs of zeros is quadratic)
    const dom0 = dom0SharedInfo(img);
    const at = dom0 ? img.frameOffset(dom0.maddr / PAGE_SIZE) : -1;
    a.sharedInfoOffsets = dom0 ? (at >= 0 ? [at] : []) : findAll(r, img.sharedInfo);
    for (const off of a.sharedInfoOffsets) a.regions.push({ name: 'shared_info copy', start: off, length: PAGE_SIZE });
    if (a.sharedInfoOffsets.length === 0) a.notes.push('shared_info bytes not found in the file');
  } else {
    a.notes.push('no shared_info page');
  }

  let tool: ToolstackView | null = null;
  let guest: GuestView | null = null;
  try {
    tool = mapP2m(img);
  } catch (e) {
    a.notes.push(`toolstack walk threw on the base file: ${(e as Error).message}`);
  }
  try {
    guest = readGuestView(img);
  } catch (e) {
    a.notes.push(`guest view failed on the base file: ${(e as Error).message}`);
  }
  const seen = new Set<number>();
  const addStructure = (role: string, frames: Iterable<number>): void => {
    for (const f of frames) {
      if (a.structure.length >= MAX_STRUCTURE_SITES || seen.has(f)) continue;
      const s = site(img, role, f);
      if (!s) continue;
      seen.add(f);
      a.structure.push(s);
      addRegion(s);
    }
  };
  if (tool) addStructure(`toolstack ${tool.method} structure`, tool.structureFrames);
  if (guest) addStructure(`guest ${guest.layout} structure`, guest.structureFrames);
  const leafSeen = new Set<number>();
  // the shared sentinel leaves first: one page stands for thousands of leaves
  if (guest) {
    for (const [role, f] of [['p2m_missing page (shared)', guest.missingFrame], ['p2m_identity page (shared)', guest.identityFrame]] as const) {
      const s = site(img, role, f);
      if (s && !leafSeen.has(f)) {
        leafSeen.add(f);
        a.leaves.push(s);
      }
    }
  }
  // the guest's leaves past its arrays are its uniform tail (one shared page): read through frameAt
  const lists: { length: number; at: (k: number) => number }[] = [];
  if (tool) lists.push({ length: tool.leafFrames.length, at: (k) => tool.leafFrames[k]! });
  if (guest) lists.push({ length: guestLeafCount(guest), at: (k) => frameAt(guest, k) });
  for (const list of lists) {
    for (let k = 0; k < list.length && a.leaves.length < MAX_LEAF_SITES; k += Math.max(1, Math.floor(list.length / MAX_LEAF_SITES))) {
      const f = list.at(k);
      if (leafSeen.has(f)) continue;
      const s = site(img, `p2m leaf ${k}`, f);
      if (s) {
        leafSeen.add(f);
        a.leaves.push(s);
      }
    }
  }

  // frame list (tree walk): FLL page and the frame-list pages of its leading non-zero entries
  const fll = img.arch.pfnToMfnFrameListList;
  const fllFrame = safeNum(fll);
  const fllSite = fllFrame === null ? null : site(img, 'frame-list list', fllFrame);
  if (fllSite) {
    const page = img.readFrame(fllSite.frame)!;
    const fl: FrameSite[] = [];
    for (let x = 0; x < U64_PER_PAGE; x++) {
      const v = page.readBigUInt64LE(x * P2M_ENTRY_SIZE);
      if (v === 0n) break;
      const s = safeNum(v) === null ? null : site(img, `frame-list page ${x}`, Number(v));
      if (s && fl.length < MAX_LEAF_SITES) fl.push(s);
    }
    a.frameList = { fll: fllSite, fl };
    addRegion(fllSite);
    fl.forEach(addRegion);
  } else {
    a.notes.push('no frame-list list page in the image');
  }

  // page-table walks: the toolstack's list walk (p2m_cr3 over p2m_vaddr) and the guest's (cr3 over its VAs)
  const cr3Frame = Number(img.cr3 >> BigInt(PAGE_SHIFT));
  const p2mCr3Frame = safeNum(img.arch.p2mCr3 >> BigInt(PAGE_SHIFT));
  if (img.arch.p2mCr3 !== 0n && p2mCr3Frame !== null) {
    const frames = (img.arch.maxPfn + BigInt(P2M_PER_PAGE) - 1n) / BigInt(P2M_PER_PAGE);
    a.ptSteps.push(...ptPath(img, 'p2m list start', p2mCr3Frame, img.arch.p2mVaddr));
    if (frames > 1n) a.ptSteps.push(...ptPath(img, 'p2m list end', p2mCr3Frame, img.arch.p2mVaddr + (frames - 1n) * BigInt(PAGE_SIZE)));
  }
  const symVa = (name: string): bigint | undefined => img.symbols.get(name);
  for (const name of ['xen_p2m_addr', 'p2m_top', 'max_pfn', 'xen_p2m_size']) {
    const va = symVa(name);
    if (va !== undefined) a.ptSteps.push(...ptPath(img, `guest symbol ${name}`, cr3Frame, va));
  }
  const listVa = guest?.vars.p2mAddr;
  if (listVa !== undefined) a.ptSteps.push(...ptPath(img, 'guest linear list', cr3Frame, listVa));
  for (const s of a.ptSteps) {
    if (!seen.has(s.table)) {
      seen.add(s.table);
      addRegion({ role: `L${s.level} table (${s.walk})`, frame: s.table, offset: s.tableOffset });
    }
  }

  // kernel variables reachable through the guest's page tables
  const names = new Set(KERNEL_VARS);
  for (const n of img.symbols.keys()) if (n.includes(P2M_NAME_PART) && names.size < MAX_VARS) names.add(n);
  const varAt = (name: string, va: bigint): void => {
    const t = translate(img, cr3Frame, va);
    if (isWalkFailure(t) || t.offset > PAGE_SIZE - P2M_ENTRY_SIZE) return;
    const off = img.frameOffset(t.frame);
    const page = img.readFrame(t.frame);
    if (off < 0 || page === null) return;
    a.vars.push({ name, va, offset: off + t.offset, value: page.readBigUInt64LE(t.offset) });
  };
  for (const n of names) {
    const va = symVa(n);
    if (va !== undefined) varAt(n, va);
  }
  const si = a.vars.find((v) => v.name === 'xen_start_info');
  if (si && si.value !== 0n) varAt('xen_start_info->nr_pages', si.value + BigInt(START_INFO_NR_PAGES_OFFSET));
  for (const v of a.vars) a.regions.push({ name: `page of ${v.name}`, start: v.offset - (v.offset % PAGE_SIZE), length: PAGE_SIZE });

  // the guest's p2m_top tree (Linux ≤ 3.18)
  const topVar = a.vars.find((v) => v.name === 'p2m_top');
  if (topVar) {
    const t = translate(img, cr3Frame, topVar.value);
    const top = isWalkFailure(t) ? null : site(img, 'p2m_top page', t.frame);
    if (top) {
      const page = img.readFrame(top.frame)!;
      const mids: { va: bigint; site: FrameSite }[] = [];
      for (let i = 0; i < U64_PER_PAGE && mids.length < MAX_LEAF_SITES; i++) {
        const va = page.readBigUInt64LE(i * PTR_SIZE);
        const m = translate(img, cr3Frame, va);
        const s = isWalkFailure(m) ? null : site(img, `p2m mid page (top ${i})`, m.frame);
        if (s && !mids.some((x) => x.site.frame === s.frame)) mids.push({ va, site: s });
      }
      const v = (n: string): bigint | null => {
        const x = symVa(n);
        if (x === undefined) return null;
        const got = readVirtU64(img, cr3Frame, x);
        return typeof got === 'bigint' ? got : null;
      };
      a.guestTree = { topVa: topVar.value, top, mids, midMissingVa: v('p2m_mid_missing'), missingVa: v('p2m_missing'), identityVa: v('p2m_identity') };
      addRegion(top);
      for (const m of mids) addRegion(m.site);
    }
  }
  if (a.maxFrame !== null) a.highFrame = Math.max(a.highFrame, a.maxFrame);
}
