// What the save side's page-table normalisation does with a machine-frame image (dump-core): xen-project/xen
// tools/libs/guest/xg_sr_save_x86_pv.c normalise_pagetable() and xg_sr_common_x86_pv.c
// mfn_in_pseudophysmap() at RELEASE-4.17.x (docs/spec-notes/save-failure.md). Every page-table page the
// saver sends has each present entry's mfn checked: mfn ≤ max_mfn, m2p[mfn] ≤ max_pfn and
// p2m[m2p[mfn]] == mfn. One failing entry makes the whole page fail; write_batch() then sends it as XTAB
// without data (errno EAGAIN, the domain is suspended but not paused) and a non-live save never resends
// it. An L2/L3 entry with PSE set fails the save ("Cannot migrate superpage").
//
// Images carry no m2p: it is taken as the inverse of the guest's own p2m (Linux keeps both in step through
// MMU_MACHPHYS_UPDATE), so "in the pseudo-physical map" means: the saver's p2m and the guest's p2m both map
// some pfn ≤ max_pfn to that mfn. An entry fails when it names guest RAM outside that set (a pfn past
// max_pfn, or one the two p2ms disagree on). Entries naming frames that are no guest RAM at all are not
// judged: in a running guest they are Xen's own pages, which a suspending guest unmaps before the saver
// reads its page tables (xen_pv_pre_suspend: the shared_info fixmap; gnttab_suspend: the grant-table
// frames); the real saves in ../shared confirm both (the saved tables hold 0 there). Tables are found by
// walking from the roots given (the kernel's top-level table, each vCPU's cr3 and ctrlreg[1]); other
// processes' tables are not reachable this way.
import type { GuestImage } from '../formats/guest-image.js';
import { GuestLeaf, type GuestView, type ToolstackView } from '../views/p2m-leaves.js';
import { entryFrame } from '../translate/page-walk.js';
import { _PAGE_PRESENT, _PAGE_PSE, P2M_ENTRY_SIZE, P2M_PER_PAGE, PAGE_SIZE, PTE_SIZE, PTRS_PER_TABLE, PT_LEVELS_64 } from '../xen/abi.js';
import { NORMALISE_XEN_L4_FIRST, NORMALISE_XEN_L4_LAST } from '../xen/vcpu-guest-context.js';
import { WORDS_PER_PAGE, pageWords } from '../xen/page-words.js';

const WORD = 2 ** 32;
/** High-word bits that mark a p2m entry as no RAM frame (FOREIGN, IDENTITY; INVALID has both). */
const ENTRY_MARK_HI = 0xc0000000;
/** The bitmap of mfns covers at most 2^31 mfns (8 TiB hosts, 256 MiB); a larger mfn skips the prediction. */
export const MAX_BITMAP_MFNS = 2 ** 31;

/** A growable bitmap over mfn space. */
class MfnBits {
  bits = new Uint8Array(1 << 16);

  set(m: number): void {
    const byte = m >>> 3;
    if (byte >= this.bits.length) {
      let n = this.bits.length;
      while (n <= byte) n *= 2;
      const b = new Uint8Array(n);
      b.set(this.bits);
      this.bits = b;
    }
    this.bits[byte]! |= 1 << (m & 7);
  }

  has(m: number): boolean {
    const byte = Math.floor(m / 8);
    return byte < this.bits.length && (this.bits[byte]! & (1 << (m % 8))) !== 0;
  }
}

/** mfns the saver's mfn_in_pseudophysmap() accepts, the guest RAM it refuses, or why they could not be collected. */
export type Pseudophysmap = { has(mfn: number): boolean; refuses(mfn: number): boolean } | { skipped: string };

/** One RAM entry of a leaf page as a number, or −1 (INVALID, marked, or above 2^53). */
function ramEntry(page: Buffer, i: number): number {
  const hi = page.readUInt32LE(i * P2M_ENTRY_SIZE + 4);
  return (hi & ENTRY_MARK_HI) !== 0 ? -1 : hi * WORD + page.readUInt32LE(i * P2M_ENTRY_SIZE);
}

/**
 * The mfns of pfns 0 … tool.maxPfn that the saver's p2m (the toolstack view's leaves) and the guest's own
 * p2m agree on (accepted), and the rest of the guest's RAM (refused: past max_pfn, or the p2ms disagree).
 * One pass over both views' leaf pages.
 */
export function pseudophysmap(img: GuestImage, tool: ToolstackView, guest: GuestView): Pseudophysmap {
  const good = new MfnBits();
  const other = new MfnBits();
  const own = Buffer.alloc(PAGE_SIZE);
  for (let k = 0; k < guest.kinds.length; k++) {
    if (guest.kinds[k] !== GuestLeaf.PAGE || guest.leafFrames[k]! < 0) continue;
    const g = img.readFrame(guest.leafFrames[k]!);
    if (!g) continue;
    g.copy(own);
    const tf = k < tool.leafFrames.length && k * P2M_PER_PAGE <= tool.maxPfn ? tool.leafFrames[k]! : -1;
    const t = tf < 0 ? null : tf === guest.leafFrames[k] ? own : img.readFrame(tf);
    for (let i = 0; i < P2M_PER_PAGE; i++) {
      const m = ramEntry(own, i);
      if (m < 0) continue;
      if (m >= MAX_BITMAP_MFNS) return { skipped: `mfn ${m} is past the ${MAX_BITMAP_MFNS}-frame map this prediction keeps` };
      if (t && k * P2M_PER_PAGE + i <= tool.maxPfn && ramEntry(t, i) === m) good.set(m);
      else other.set(m);
    }
  }
  return { has: (m) => good.has(m), refuses: (m) => other.has(m) && !good.has(m) };
}

/** Up to this many wanted mfns are found in each leaf page by a native byte search for their entries. */
export const SEARCHED_MFNS = 16;

/** Records in `out` the first pfn of leaf page k (within [fromPfn, toPfn]) mapping each wanted mfn not found yet. */
type LeafScan = (page: Buffer, k: number) => void;

/**
 * A few mfns: each one's p2m entry is 8 exact bytes (an unmarked entry equal to the mfn, as ramEntry reads
 * it), so Buffer.indexOf finds it at an entry boundary without decoding the other 511 entries in JavaScript.
 */
function searchScan(mfns: readonly number[], out: Map<number, number>, fromPfn: number, toPfn: number): LeafScan {
  const patterns = mfns.map((m) => {
    const b = Buffer.alloc(P2M_ENTRY_SIZE);
    b.writeUInt32LE(m % WORD, 0);
    b.writeUInt32LE(Math.floor(m / WORD), 4);
    return b;
  });
  return (page, k) => {
    for (let j = 0; j < mfns.length; j++) {
      const m = mfns[j]!;
      if (out.has(m)) continue;
      for (let at = page.indexOf(patterns[j]!); at >= 0 && at < PAGE_SIZE; at = page.indexOf(patterns[j]!, at + 1)) {
        if (at % P2M_ENTRY_SIZE !== 0) continue;
        const pfn = k * P2M_PER_PAGE + at / P2M_ENTRY_SIZE;
        if (pfn < fromPfn || pfn > toPfn) continue;
        out.set(m, pfn);
        break;
      }
    }
  };
}

/** Many mfns: every entry decoded (the words read in place) and tested against a bitmap of the wanted ones. */
function bitmapScan(mfns: readonly number[], out: Map<number, number>, fromPfn: number, toPfn: number): LeafScan {
  const want = new MfnBits();
  let lowest = Infinity;
  let highest = -1;
  for (const m of mfns) {
    want.set(m);
    lowest = Math.min(lowest, m);
    highest = Math.max(highest, m);
  }
  const scratch = new Uint32Array(WORDS_PER_PAGE);
  return (page, k) => {
    const w = pageWords(page, scratch);
    for (let i = 0; i < P2M_PER_PAGE; i++) {
      const hi = w[2 * i + 1]!;
      if ((hi & ENTRY_MARK_HI) !== 0) continue;
      const m = hi * WORD + w[2 * i]!;
      if (m < lowest || m > highest || !want.has(m)) continue;
      const pfn = k * P2M_PER_PAGE + i;
      if (pfn >= fromPfn && pfn <= toPfn && !out.has(m)) out.set(m, pfn);
    }
  };
}

/**
 * pfn of each wanted mfn through a view's leaves (the guest's own p2m: m2p as its inverse), for pfns
 * [fromPfn, toPfn]: the first pfn in pfn order that maps it. One pass over the leaf pages in pfn order (a
 * byte search per page for up to SEARCHED_MFNS mfns, else a bitmap test per entry), ending once every wanted
 * mfn has its pfn (later pfns cannot change a first one); mfns no pfn maps are left out. The leaf pages it
 * may read are announced first (readAhead: a live domain maps them in batches instead of one call each).
 */
export function pfnsOfMfns(img: GuestImage, kinds: Uint8Array | null, leafFrames: Float64Array, wanted: readonly number[], fromPfn = 0, toPfn = Infinity): Map<number, number> {
  const out = new Map<number, number>();
  const mfns = [...new Set(wanted.filter((m) => m >= 0 && m < MAX_BITMAP_MFNS))];
  if (mfns.length === 0) return out;
  const scan = (mfns.length <= SEARCHED_MFNS ? searchScan : bitmapScan)(mfns, out, fromPfn, toPfn);
  const first = Math.floor(fromPfn / P2M_PER_PAGE);
  const end = Math.min(leafFrames.length, Math.floor(Math.min(toPfn, Number.MAX_SAFE_INTEGER) / P2M_PER_PAGE) + 1);
  const isLeaf = (k: number): boolean => (!kinds || kinds[k] === GuestLeaf.PAGE) && leafFrames[k]! >= 0;
  if (img.readAhead) {
    const order = new Float64Array(Math.max(0, end - first));
    let n = 0;
    for (let k = first; k < end; k++) if (isLeaf(k)) order[n++] = leafFrames[k]!;
    img.readAhead(order.subarray(0, n));
  }
  try {
    for (let k = first; k < end && out.size < mfns.length; k++) {
      if (!isLeaf(k)) continue;
      const page = img.readFrame(leafFrames[k]!);
      if (page) scan(page, k);
    }
  } finally {
    img.readAhead?.(null);
  }
  return out;
}

export interface TableWalk {
  /** table pages (mfns) the saver sends but cannot normalise: sent as XTAB without data */
  deferred: number[];
  /** the first L2/L3 entry with PSE in a table the saver sends (the save fails), or null */
  superpage: { table: number; level: number; index: number } | null;
  /** tables visited, and roots or tables whose frame the image does not hold */
  walked: number;
  absent: number;
}

/**
 * Walk the page tables reachable from `roots` (L4 frames) and apply normalise_pagetable's test to every
 * table the saver sends (its own mfn in the pseudo-physical map). Each table is read once; the walk is
 * bounded by the frames the image holds.
 */
export function walkTables(img: GuestImage, roots: readonly number[], ppm: { has(mfn: number): boolean; refuses(mfn: number): boolean }): TableWalk {
  const seen = new Set<number>();
  const stack: number[] = [];
  const push = (frame: number, level: number): void => {
    if (frame > 0 && !seen.has(frame)) {
      seen.add(frame);
      stack.push(frame, level);
    }
  };
  for (const r of roots) push(r, PT_LEVELS_64);
  const out: TableWalk = { deferred: [], superpage: null, walked: 0, absent: 0 };
  while (stack.length > 0) {
    const level = stack.pop()!;
    const table = stack.pop()!;
    const page = img.readFrame(table);
    if (!page) {
      out.absent++;
      continue;
    }
    out.walked++;
    const sent = ppm.has(table);
    let bad = false;
    for (let i = 0; i < PTRS_PER_TABLE; i++) {
      if (level === PT_LEVELS_64 && i >= NORMALISE_XEN_L4_FIRST && i <= NORMALISE_XEN_L4_LAST) continue; // Xen's slots: zeroed, unchecked
      const lo = page.readUInt32LE(i * PTE_SIZE);
      if ((lo & _PAGE_PRESENT) === 0) continue;
      const frame = entryFrame(lo, page.readUInt32LE(i * PTE_SIZE + 4));
      if (level > 1 && (lo & _PAGE_PSE) !== 0) {
        if (sent && !out.superpage) out.superpage = { table, level, index: i };
        continue;
      }
      if (ppm.refuses(frame)) bad = true;
      if (level > 1) push(frame, level - 1);
    }
    if (sent && bad) out.deferred.push(table);
  }
  return out;
}
