// `p2m` printing in the text of xen-project/xen tools/misc/xen-mfndump.c dump_p2m_func (RELEASE-4.17.0): a " --- Dumping P2M" line, the " Guest Width" header, one "  pfn=0x… ==> mfn=0x…" line per pfn, an end line.
//
// Views:
//  * toolstack — pfns 0..max_pfn of the save side's p2m (mapP2m leaves: what save/restore uses), each
//    entry as the leaf page holds it. xen-mfndump walks the same structure (xc_map_domain_meminfo →
//    xc_core_arch_map_p2m_writable) with p2m_size = XENMEM_maximum_gpfn + 1, which for a PV guest is
//    arch.max_pfn: the same pfns unless a tree walk was trimmed.
//  * guest — the guest's own p2m (readGuestView): private leaves as read, p2m_missing leaves as
//    INVALID_P2M_ENTRY (~0), p2m_identity leaves as IDENTITY_FRAME(pfn) = 0x4000000000000000 | pfn;
//    printed up to the last private leaf (trailing shared leaves describe no RAM and can span 2^27 pfns).
//  * dump — the pfn → gmfn pairs an xl dump-core file carries (.xen_p2m); pfns it left out (INVALID,
//    identity, foreign or above max_mfn: the dump does not say which) print as ~0.
// Page types: xen-mfndump appends " (type 0x…)" and " L1".." pinned L4"/" broken"/" xalloc"/" invalid"
// from XEN_DOMCTL_getpageframeinfo3. Only a source that knows types (opts.pfnType) gets that suffix;
// an xc_core dump or an emulated guest does not, so its lines end after the mfn
// (docs/spec-notes/xc-core.md). The domain id is not in any image: opts.domid, else "?".
// Output is streamed line by line; entries are read as two u32 words (no BigInt per pfn).
import { GuestLeaf } from '../views/p2m-leaves.js';
import { readGuestView } from '../views/guest-view.js';
import { InputError } from '../common/errors.js';
import { type GuestImage } from '../formats/guest-image.js';
import { mapP2m } from '../views/toolstack-view.js';
import { IDENTITY_FRAME_HI, INVALID_P2M_ENTRY_WORD, P2M_ENTRY_SIZE, P2M_PER_PAGE, PAGE_SIZE, PT_LEVELS_64, hex } from '../xen/abi.js';

export type MfndumpView = 'toolstack' | 'guest' | 'dump';

export interface MfndumpOptions {
  /** the domain id printed in the first and last lines (no image records it) */
  domid?: number;
  /** XEN_DOMCTL_PFINFO type nibble (0..15) of a pfn, when the source knows page types */
  pfnType?: (pfn: number) => number | undefined;
}

export interface MfndumpResult {
  /** the "P2M size" printed: pfns 0..p2mSize−1 were listed */
  p2mSize: number;
}

/** XEN_DOMCTL_PFINFO_* type nibbles (public/domctl.h, shifted down by XEN_DOMCTL_PFINFO_LTAB_SHIFT). */
const PFINFO_NOTAB = 0x0;
const PFINFO_L1TAB = 0x1;
const PFINFO_L4TAB = 0x4;
const PFINFO_LPINTAB = 0x8;
const PFINFO_BROKEN = 0xd;
const PFINFO_XALLOC = 0xe;
const PFINFO_XTAB = 0xf;
/** Level bits of a pinned type (pinned L1..L4 = 0x9..0xc). */
const PFINFO_LEVEL_MASK = 0x7;
const WORD_BYTES = 4;
const WORD_SCALE = 2 ** 32;
const HEX_WORD_DIGITS = 8;
const UNKNOWN_DOMID = '?';

/** u64 (lo, hi) as lowercase hex without a prefix (what %lx prints). */
function hexWords(lo: number, hi: number): string {
  return hi === 0 ? lo.toString(16) : hi.toString(16) + lo.toString(16).padStart(HEX_WORD_DIGITS, '0');
}

/** The text xen-mfndump prints after the mfn for a type nibble. */
export function typeSuffix(type: number): string {
  let kind: string;
  if (type === PFINFO_NOTAB) kind = '';
  else if (type >= PFINFO_L1TAB && type <= PFINFO_L4TAB) kind = ` L${type}`;
  else if (type >= (PFINFO_LPINTAB | PFINFO_L1TAB) && type <= (PFINFO_LPINTAB | PFINFO_L4TAB)) kind = ` pinned L${type & PFINFO_LEVEL_MASK}`;
  else if (type === PFINFO_BROKEN) kind = ' broken';
  else if (type === PFINFO_XALLOC) kind = ' xalloc';
  else if (type === PFINFO_XTAB) kind = ' invalid';
  else kind = ' <invalid type>';
  return ` (type ${hex(type)})${kind}`;
}

class Printer {
  constructor(
    private readonly out: (line: string) => void,
    private readonly pfnType: MfndumpOptions['pfnType'],
  ) {}

  entry(pfn: number, lo: number, hi: number): void {
    const t = this.pfnType?.(pfn);
    this.out(`  pfn=0x${pfn.toString(16)} ==> mfn=0x${hexWords(lo, hi)}${t === undefined ? '' : typeSuffix(t)}`);
  }

  /** Entries of one leaf page, slots 0..count−1, for pfns base.. */
  leaf(page: Buffer, base: number, count: number): void {
    for (let i = 0; i < count; i++) {
      const o = i * P2M_ENTRY_SIZE;
      this.entry(base + i, page.readUInt32LE(o), page.readUInt32LE(o + WORD_BYTES));
    }
  }
}

function where(img: GuestImage): string {
  return img.path || '<image>';
}

/**
 * Print the p2m of `img` as `xen-mfndump dump-p2m <domid>` prints it, one line per call of `out`
 * (no newline). Throws InputError when the view cannot be built or a leaf page is absent.
 */
export function renderMfndump(img: GuestImage, view: MfndumpView, out: (line: string) => void, opts: MfndumpOptions = {}): MfndumpResult {
  const domid = opts.domid === undefined ? UNKNOWN_DOMID : String(opts.domid);
  const p = new Printer(out, opts.pfnType);
  const leafCopy = Buffer.alloc(PAGE_SIZE);
  const readLeaf = (frame: number, what: string): Buffer => {
    const page = frame >= 0 ? img.readFrame(frame) : null;
    if (page === null) throw new InputError(`${where(img)}: ${what} (frame ${frame >= 0 ? hex(frame) : 'unknown'}) is not in the image; cannot print its entries`);
    page.copy(leafCopy);
    return leafCopy;
  };
  const header = (size: number): void => {
    out(` --- Dumping P2M for domain ${domid} ---`);
    out(` Guest Width: ${img.guestWidth}, PT Levels: ${PT_LEVELS_64} P2M size: = ${size}`);
  };

  let size: number;
  if (view === 'toolstack') {
    const tool = mapP2m(img);
    if (tool.failure !== null || tool.maxPfn < 0) throw new InputError(`${where(img)}: the toolstack's p2m cannot be mapped (${tool.method} walk: ${tool.failure ?? 'no pfns'})`);
    size = tool.maxPfn + 1;
    header(size);
    for (let k = 0; k < tool.leafFrames.length; k++) {
      const base = k * P2M_PER_PAGE;
      p.leaf(readLeaf(tool.leafFrames[k]!, `toolstack p2m leaf ${k}`), base, Math.min(P2M_PER_PAGE, size - base));
    }
  } else if (view === 'guest') {
    const g = readGuestView(img);
    let leaves = 0;
    for (let k = 0; k < g.kinds.length; k++) if (g.kinds[k] === GuestLeaf.PAGE) leaves = k + 1;
    size = leaves * P2M_PER_PAGE;
    header(size);
    for (let k = 0; k < leaves; k++) {
      const base = k * P2M_PER_PAGE;
      const kind = g.kinds[k];
      if (kind === GuestLeaf.PAGE) p.leaf(readLeaf(g.leafFrames[k]!, `guest p2m leaf ${k}`), base, P2M_PER_PAGE);
      else if (kind === GuestLeaf.MISSING) for (let i = 0; i < P2M_PER_PAGE; i++) p.entry(base + i, INVALID_P2M_ENTRY_WORD, INVALID_P2M_ENTRY_WORD);
      else {
        for (let i = 0; i < P2M_PER_PAGE; i++) {
          const pfn = base + i;
          p.entry(pfn, pfn % WORD_SCALE, (IDENTITY_FRAME_HI | Math.floor(pfn / WORD_SCALE)) >>> 0);
        }
      }
    }
  } else {
    if (img.formatFacts.kind !== 'dump-core') throw new InputError(`${where(img)}: the dump view needs an xl dump-core file (${img.format} images carry no .xen_p2m table)`);
    const { pfns, gmfns } = img.formatFacts.p2mPairs();
    const order = pfnOrder(pfns);
    const last = order.length ? pfns[order[order.length - 1]!]! : -1;
    size = Math.max(Number(img.arch.maxPfn) || 1, last + 1);
    header(size);
    let next = 0;
    for (let i = 0; i < order.length; i++) {
      const pfn = pfns[order[i]!]!;
      if (pfn < next) throw new InputError(`${where(img)}: .xen_p2m names pfn ${hex(pfn)} twice`);
      for (; next < pfn; next++) p.entry(next, INVALID_P2M_ENTRY_WORD, INVALID_P2M_ENTRY_WORD);
      const g = gmfns[order[i]!]!;
      p.entry(pfn, g % WORD_SCALE, Math.floor(g / WORD_SCALE));
      next = pfn + 1;
    }
    for (; next < size; next++) p.entry(next, INVALID_P2M_ENTRY_WORD, INVALID_P2M_ENTRY_WORD);
  }
  out(` --- End of P2M for domain ${domid} ---`);
  return { p2mSize: size };
}

/** Indexes of `pfns` in ascending pfn order (the identity when already ascending, as dump-core writes them). */
function pfnOrder(pfns: Float64Array): Uint32Array {
  const order = new Uint32Array(pfns.length);
  let sorted = true;
  for (let i = 0; i < pfns.length; i++) {
    order[i] = i;
    if (i > 0 && pfns[i]! < pfns[i - 1]!) sorted = false;
  }
  if (!sorted) order.sort((a, b) => pfns[a]! - pfns[b]!);
  return order;
}
