// How many 4 KiB frames one audit asks its image for (counts, never time). The bounds come from who reads
// what (docs/bench-notes.md, issue 17): five readers may need a page-table or frame-list page — the
// toolstack's own walk (xl save's tree or list walk), kernel-root's probe of its candidate (a presence
// check, then a walk to a kernel variable), the guest view's walks and the crash view's frame list
// (shared with kernel-root's pfn → frame map: read once per image) — so no such page is read more than
// five times; a page holding kernel variables is read once per variable read (at most KERNEL_VARS). The
// frame-list pages are found here straight from arch.pfn_to_mfn_frame_list_list (top page up to its first
// zero slot, every mid page it names), and the toolstack's tree walk reads the same pages: at most twice.
// Before the walks kept their upper tables, a tree kernel's audit read its shared L1/L2 pages once per
// leaf pointer (above-4g-backport: 2 068 reads of one page, 8 303 in all).
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { auditImage } from '../src/audit/audit-image.js';
import { openImage } from '../src/formats/open-image.js';
import { isWalkFailure, translate } from '../src/translate/page-walk.js';
import { MemoryImage } from '../src/formats/memory-image.js';
import { frameListOf, readFrameList } from '../src/views/crash-frame-list.js';

const dir = path.join(import.meta.dirname, '..', 'corpora/scenarios');
/** Readers that may each need a table or frame-list page (see the header). */
const READERS = 5;
/** Kernel variables the views read as u64s: readVars (8), the list's or tree's roots and sentinels (≤ 4), dom0 lookups (≤ 4). */
const KERNEL_VARS = 16;
/** The symbols whose pages hold the variables above. */
const VAR_SYMBOLS = ['max_pfn', 'xen_max_p2m_pfn', 'xen_p2m_size', 'xen_p2m_last_pfn', 'xen_p2m_addr', 'xen_start_info', 'page_offset_base', 'p2m_top', 'p2m_mid_missing', 'p2m_missing', 'p2m_identity'];

/** Top page and distinct mid pages of the frame list at `root`, read directly (u64 slots up to the first zero). */
function frameListPages(img: { readFrame(f: number): Buffer | null }, root: number): Set<number> {
  const pages = new Set<number>([root]);
  const top = img.readFrame(root);
  if (!top) return pages;
  for (let s = 0; s < 512; s++) {
    const v = top.readBigUInt64LE(s * 8);
    if (v === 0n) break;
    pages.add(Number(v));
  }
  return pages;
}

describe('frames read by one audit', () => {
  it.each(['seed-6.1', 'above-4g-backport', 'seed-3.18', 'above-4g-4x'])('%s: every structure page read at most once per reader', async (name) => {
    const img = openImage(path.join(dir, `${name}.p2ms`));
    try {
      const fll = img.arch.pfnToMfnFrameListList;
      const listPages = fll > 0n && fll < 0xffffffffffffffffn ? frameListPages(img, Number(fll)) : new Set<number>();
      const reads = new Map<number, number>();
      const inner = img.readFrame.bind(img);
      img.readFrame = (f: number) => {
        reads.set(f, (reads.get(f) ?? 0) + 1);
        return inner(f);
      };
      const { guest } = await auditImage(img, { jobs: 0 });
      img.readFrame = inner;
      const varPages = new Set<number>();
      for (const s of VAR_SYMBOLS) {
        const va = img.symbols.get(s);
        const t = va === undefined ? null : translate(img, guest.root!.frame, va);
        if (t && !isWalkFailure(t)) varPages.add(t.frame);
      }
      for (const [frame, n] of reads) {
        const bound = varPages.has(frame) ? KERNEL_VARS + READERS : listPages.has(frame) ? 2 : READERS;
        expect({ frame, n: Math.min(n, bound) }).toEqual({ frame, n });
      }
      const total = [...reads.values()].reduce((a, b) => a + b, 0);
      expect(total).toBeLessThanOrEqual(READERS * reads.size + KERNEL_VARS);
    } finally {
      img.close();
    }
  });

  it('a file image reads its frame list once for every view; an in-memory image reads it afresh', () => {
    const img = openImage(path.join(dir, 'above-4g-backport.p2ms'));
    try {
      const root = Number(img.arch.pfnToMfnFrameListList);
      const pages = frameListPages(img, root);
      let n = 0;
      const inner = img.readFrame.bind(img);
      img.readFrame = (f: number) => {
        n++;
        return inner(f);
      };
      const a = frameListOf(img, root);
      expect(n).toBe(pages.size); // each page once, shared mid pages included
      expect(frameListOf(img, root)).toBe(a);
      expect(n).toBe(pages.size);
      expect(Array.from(a.leaves)).toEqual(Array.from(readFrameList({ readFrame: inner }, root).leaves));
    } finally {
      img.close();
    }
    const mem = new MemoryImage('mfn');
    const top = Buffer.alloc(4096);
    top.writeBigUInt64LE(0x11n, 0);
    mem.setFrame(0x10, top);
    mem.setFrame(0x11, Buffer.alloc(4096, 0x01));
    expect(frameListOf(mem, 0x10).p2mFrames).toBe(512);
    mem.setFrame(0x11, Buffer.alloc(4096));
    expect(frameListOf(mem, 0x10).p2mFrames).toBe(0);
  });
});
