// `inspect`: what an image contains (format, frame space, shared_info arch fields, cr3, symbols, boot facts).
import type { GuestImage } from '../formats/guest-image.js';
import { hex } from '../xen/abi.js';
import { bootFactsOf } from '../formats/guest-image.js';
import { inspectKdump, renderKdump, type KdumpInspect } from './inspect-kdump.js';

/** Kernel symbols the views use, by layout. */
export const P2M_SYMBOLS = {
  list: ['xen_p2m_addr', 'xen_p2m_size', 'xen_max_p2m_pfn', 'xen_p2m_last_pfn', 'p2m_missing', 'p2m_identity'],
  tree: ['p2m_top', 'p2m_mid_missing', 'p2m_missing', 'p2m_identity', 'xen_max_p2m_pfn'],
  common: ['max_pfn', 'xen_start_info', 'page_offset_base', 'p2m_top_mfn'],
};

export interface InspectInfo {
  schema: 'p2m-audit/inspect@1';
  file: string;
  format: string;
  frameSpace: string;
  guestWidth: number;
  frames: number;
  maxFrame: string | null;
  cr3: string;
  arch: Record<string, string>;
  symbols: { total: number; found: string[]; missing: string[]; layout: 'list' | 'tree' | 'unknown' };
  boot: Record<string, unknown> | null;
  /** a dom0 kdump's notes, crash_xen_info_t, machine ranges (inspect-kdump.ts); null for other images */
  kdump: KdumpInspect | null;
}

export function inspectImage(img: GuestImage): InspectInfo {
  const wanted = [...new Set([...P2M_SYMBOLS.list, ...P2M_SYMBOLS.tree, ...P2M_SYMBOLS.common])];
  const found = wanted.filter((s) => img.symbols.has(s));
  const layout = img.symbols.has('xen_p2m_addr') ? 'list' : img.symbols.has('p2m_top') ? 'tree' : 'unknown';
  const needed = layout === 'list' ? P2M_SYMBOLS.list : layout === 'tree' ? P2M_SYMBOLS.tree : ['xen_p2m_addr or p2m_top'];
  const a = img.arch;
  const f = bootFactsOf(img);
  return {
    schema: 'p2m-audit/inspect@1',
    file: img.path,
    format: img.format,
    frameSpace: img.frameSpace,
    guestWidth: img.guestWidth,
    frames: img.frameCount(),
    maxFrame: Number.isFinite(img.maxFrame) ? hex(img.maxFrame) : null,
    cr3: hex(img.cr3),
    arch: {
      max_pfn: hex(a.maxPfn),
      pfn_to_mfn_frame_list_list: hex(a.pfnToMfnFrameListList),
      p2m_cr3: hex(a.p2mCr3),
      p2m_vaddr: hex(a.p2mVaddr),
      p2m_generation: hex(a.p2mGeneration),
    },
    symbols: { total: img.symbols.size, found, missing: needed.filter((s) => !img.symbols.has(s)), layout },
    boot: f
      ? {
          profile: f.profile,
          role: f.role,
          dom0Mem: f.dom0Mem ?? null,
          nrPages: hex(f.nrPages),
          maxPages: hex(f.maxPages),
          kernelMaxPfn: hex(f.kernelMaxPfn),
          buildBound: hex(f.buildBound),
          seed: f.seed,
          config: f.config,
          messages: f.messages,
        }
      : null,
    kdump: inspectKdump(img),
  };
}

/** What to do when the image carries no (or too few) kernel symbols: the guest views need them. */
export const SYMBOLS_HINT =
  "hint: the guest's own p2m needs the kernel's symbols: pass --system-map FILE (the guest kernel's System.map or /proc/kallsyms, plain or .gz), or put it beside the image as IMAGE.map";

export function renderInspect(i: InspectInfo): string {
  const lines = [
    `file: ${i.file}`,
    `format: ${i.format}, frame space ${i.frameSpace}, guest width ${i.guestWidth * 8}-bit, ${i.frames} frames stored, max frame ${i.maxFrame ?? 'unknown'}`,
    `vcpu0 cr3: ${i.cr3}`,
    `shared_info.arch: ${Object.entries(i.arch).map(([k, v]) => `${k}=${v}`).join(' ')}`,
    `symbols: ${i.symbols.total} in all; p2m layout by symbols: ${i.symbols.layout}; found: ${i.symbols.found.join(', ') || 'none'}` +
      (i.symbols.missing.length ? `; missing: ${i.symbols.missing.join(', ')}` : ''),
  ];
  if (i.symbols.total === 0 || i.symbols.missing.length > 0) lines.push(SYMBOLS_HINT);
  if (i.boot) {
    const b = i.boot;
    lines.push(
      `emulated boot: profile ${String(b['profile'])}, ${String(b['role'])}, dom0_mem=${String(b['dom0Mem'] ?? '(none)')}, nr_pages ${String(b['nrPages'])}, max pages ${String(b['maxPages'])}, kernel max_pfn ${String(b['kernelMaxPfn'])}, mfn_list_list bound ${String(b['buildBound'])}, seed ${String(b['seed'])}`,
    );
    for (const m of b['messages'] as string[]) lines.push(`  | ${m}`);
  }
  if (i.kdump) lines.push(...renderKdump(i.kdump));
  return lines.join('\n') + '\n';
}
