// `p2m --domain`: the toolstack p2m of a running domain in xen-mfndump dump-p2m's text, page types included.
// xen-project/xen tools/libs/guest/xg_domain.c xc_map_domain_meminfo passes every raw p2m entry of pfns
// 0..p2m_size−1 to XEN_DOMCTL_getpageframeinfo3 (1024 a call) and xen-mfndump prints the type nibble after
// each mfn (dump_p2m_func's "  pfn=0x%lx ==> mfn=0x%lx (type 0x%lx)" lines); the same is done here, leaf page
// by leaf page, before the lines are printed.
import { InputError } from '../common/errors.js';
import type { LiveDomainImage } from '../formats/live-domain.js';
import { mapP2m } from '../views/toolstack-view.js';
import { typeSuffix } from '../report/mfndump.js';
import { relabel } from './live-audit.js';
import { P2M_ENTRY_SIZE, P2M_PER_PAGE, PAGE_SIZE, PT_LEVELS_64, hex } from '../xen/abi.js';

const WORD_BYTES = 4;
const HEX_WORD_DIGITS = 8;

/** Leaf pages whose entries go to one pfnTypes call (64 leaves: 32768 entries, 256 KiB). */
const TYPE_CHUNK_LEAVES = 64;

/** The page-type nibble of every pfn 0..maxPfn of the toolstack's p2m, as xen-mfndump gets them. */
export function toolstackPageTypes(img: LiveDomainImage): Uint8Array {
  const tool = mapP2m(img);
  if (tool.failure !== null || tool.maxPfn < 0) throw new InputError(`${img.label}: the toolstack's p2m cannot be mapped (${tool.method} walk: ${tool.failure ?? 'no pfns'})`);
  const size = tool.maxPfn + 1;
  const types = new Uint8Array(size);
  const chunk = Buffer.alloc(TYPE_CHUNK_LEAVES * PAGE_SIZE);
  img.readAhead(tool.leafFrames);
  try {
    for (let first = 0; first < tool.leafFrames.length; first += TYPE_CHUNK_LEAVES) {
      const end = Math.min(tool.leafFrames.length, first + TYPE_CHUNK_LEAVES);
      for (let k = first; k < end; k++) {
        const page = img.readFrame(tool.leafFrames[k]!);
        if (page === null) throw new InputError(`${img.label}: toolstack p2m leaf ${k} (frame ${hex(tool.leafFrames[k]!)}) cannot be mapped`);
        page.copy(chunk, (k - first) * PAGE_SIZE);
      }
      const firstPfn = first * P2M_PER_PAGE;
      const count = Math.min(size - firstPfn, (end - first) * P2M_PER_PAGE);
      const entries = new BigUint64Array(chunk.buffer, chunk.byteOffset, count);
      img.pageTypes(entries, types.subarray(firstPfn, firstPfn + count));
    }
  } finally {
    img.readAhead(null);
  }
  return types;
}

/** u64 (lo, hi) words as %lx prints them. */
function hexWords(lo: number, hi: number): string {
  return hi === 0 ? lo.toString(16) : hi.toString(16) + lo.toString(16).padStart(HEX_WORD_DIGITS, '0');
}

/**
 * Print the live toolstack p2m line by line (`out` gets lines without newlines), every pfn 0..p2m_size−1 on its
 * own line as xen-mfndump prints it (the file-image printer folds long runs without RAM; a live domain's
 * p2m_size is Xen's own, so the output is exactly xen-mfndump's). Returns the P2M size.
 */
export function renderLiveP2m(img: LiveDomainImage, types: Uint8Array, out: (line: string) => void): number {
  const tool = relabel(img, () => mapP2m(img));
  if (tool.failure !== null || tool.maxPfn < 0) throw new InputError(`${img.label}: the toolstack's p2m cannot be mapped (${tool.method} walk: ${tool.failure ?? 'no pfns'})`);
  const size = tool.maxPfn + 1;
  out(` --- Dumping P2M for domain ${img.domid} ---`);
  out(` Guest Width: ${img.guestWidth}, PT Levels: ${PT_LEVELS_64} P2M size: = ${size}`);
  img.readAhead(tool.leafFrames);
  try {
    for (let k = 0; k < tool.leafFrames.length; k++) {
      const page = img.readFrame(tool.leafFrames[k]!);
      if (page === null) throw new InputError(`${img.label}: toolstack p2m leaf ${k} (frame ${hex(tool.leafFrames[k]!)}) cannot be mapped`);
      const base = k * P2M_PER_PAGE;
      const count = Math.min(P2M_PER_PAGE, size - base);
      for (let i = 0; i < count; i++) {
        const o = i * P2M_ENTRY_SIZE;
        const pfn = base + i;
        out(`  pfn=0x${pfn.toString(16)} ==> mfn=0x${hexWords(page.readUInt32LE(o), page.readUInt32LE(o + WORD_BYTES))}${typeSuffix(types[pfn]!)}`);
      }
    }
  } finally {
    img.readAhead(null);
  }
  out(` --- End of P2M for domain ${img.domid} ---`);
  return size;
}
