// `p2m --domain`: the toolstack p2m of a running domain in xen-mfndump dump-p2m's text, page types included.
// xen-project/xen tools/libs/guest/xg_domain.c xc_map_domain_meminfo passes every raw p2m entry of pfns
// 0..p2m_size−1 to XEN_DOMCTL_getpageframeinfo3 (1024 a call) and xen-mfndump prints the type nibble after
// each mfn; the same is done here, leaf page by leaf page, before the lines are rendered (report/mfndump.ts).
import { InputError } from '../common/errors.js';
import type { LiveDomainImage } from '../formats/live-domain.js';
import { mapP2m } from '../views/toolstack-view.js';
import { renderMfndump } from '../report/mfndump.js';
import { relabel } from './live-audit.js';
import { P2M_PER_PAGE, PAGE_SIZE, hex } from '../xen/abi.js';

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

/** Print the live toolstack p2m line by line (`out` gets lines without newlines); returns the P2M size. */
export function renderLiveP2m(img: LiveDomainImage, types: Uint8Array, out: (line: string) => void): number {
  const tool = mapP2m(img);
  img.readAhead(tool.leafFrames);
  try {
    return relabel(img, () => renderMfndump(img, 'toolstack', out, { domid: img.domid, pfnType: (pfn) => types[pfn] }).p2mSize);
  } finally {
    img.readAhead(null);
  }
}
