// Extreme values of the fields the walks trust (docs/fuzz.md): shared_info arch fields (xen-toolstack.md
// §2.1: max_pfn, the frame-list list, p2m_cr3, p2m_vaddr, p2m_generation) and the kernel's p2m variables.
import { ARCH_MAX_PFN_OFFSET, ARCH_NMI_REASON_OFFSET, ARCH_P2M_CR3_OFFSET, ARCH_P2M_GENERATION_OFFSET, ARCH_P2M_VADDR_OFFSET, ARCH_PFN_TO_MFN_FRAME_LIST_LIST_OFFSET, L4_SHIFT, MAX_P2M_PFN, P2M_PFNS_PER_TOP, PAGE_SHIFT, PAGE_SIZE, XEN_VIRT_HOLE_END, XEN_VIRT_HOLE_START, hex } from '../xen/abi.js';
import { framePool, u64Bytes, type ClassFn } from './mutation-context.js';
import { TWO_POW_53, U32_LIMIT, U64_MAX, VA_NONCANONICAL_LOW, VA_SIGN_ONLY } from './numbers.js';

/** shared_info arch field extremes (xen-toolstack.md §2.1). */
export const arch: ClassFn = (ctx, rng) => {
  const a = ctx.anatomy;
  if (a.sharedInfoOffsets.length === 0) return null;
  const frames = framePool(a);
  const field = rng.pick(['max_pfn', 'max_pfn', 'fll', 'fll', 'p2m_cr3', 'p2m_cr3', 'p2m_vaddr', 'p2m_vaddr', 'p2m_generation', 'nmi_reason'] as const);
  let at: number;
  let value: bigint;
  let why: string;
  switch (field) {
    case 'max_pfn': {
      at = ARCH_MAX_PFN_OFFSET;
      const cur = a.arch.maxPfn;
      [value, why] = rng.pick<[bigint, string]>([
        [0n, '0 (max_pfn wraps to ~0)'],
        [1n, '1'],
        [BigInt(MAX_P2M_PFN), 'MAX_P2M_PFN (2^27)'],
        [BigInt(MAX_P2M_PFN) + 1n, 'MAX_P2M_PFN + 1'],
        [BigInt(U32_LIMIT), '2^32'],
        [BigInt(U32_LIMIT) + 1n, '2^32 + 1'],
        [1n << 40n, '2^40'],
        [1n << 52n, '2^52'],
        [TWO_POW_53 + 1n, '2^53 + 1'],
        [VA_SIGN_ONLY, '2^63'],
        [U64_MAX, '~0'],
        [cur * 2n, 'twice the real value'],
        [cur + 1n, 'real + 1'],
        [cur + BigInt(P2M_PFNS_PER_TOP), 'one frame-list page more'],
        [cur > 0n ? cur - 1n : 0n, 'real − 1'],
      ]);
      break;
    }
    case 'fll': {
      at = ARCH_PFN_TO_MFN_FRAME_LIST_LIST_OFFSET;
      const f = rng.pick(frames);
      [value, why] = [f.frame, f.why];
      break;
    }
    case 'p2m_cr3': {
      at = ARCH_P2M_CR3_OFFSET;
      const f = rng.pick(frames);
      [value, why] = rng.pick<[bigint, string]>([
        [0n, '0 (switches the toolstack to the tree walk)'],
        [BigInt.asUintN(64, f.frame << BigInt(PAGE_SHIFT)), `names ${f.why}`],
        [a.arch.p2mCr3 | BigInt(PAGE_SIZE - 1), 'real with the low 12 bits set'],
        [U64_MAX, '~0'],
        [a.cr3, "the guest's own cr3"],
      ]);
      break;
    }
    case 'p2m_vaddr': {
      at = ARCH_P2M_VADDR_OFFSET;
      const cur = a.arch.p2mVaddr;
      [value, why] = rng.pick<[bigint, string]>([
        [0n, '0'],
        [VA_NONCANONICAL_LOW, 'non-canonical 2^47'],
        [VA_SIGN_ONLY, 'non-canonical 2^63'],
        [XEN_VIRT_HOLE_START, "Xen's hole start"],
        [XEN_VIRT_HOLE_END + 1n - BigInt(PAGE_SIZE), "the last page of Xen's hole"],
        [U64_MAX - BigInt(PAGE_SIZE) + 1n, 'the last page of the address space (wraps)'],
        [U64_MAX, '~0'],
        [cur + 8n, 'real + 8 (unaligned)'],
        [cur + 1n, 'real + 1'],
        [VA_NONCANONICAL_LOW - BigInt(PAGE_SIZE), 'the last lower-half page (list runs into the hole)'],
        [BigInt.asUintN(64, cur - (1n << BigInt(L4_SHIFT))), 'real − 512 GiB'],
      ]);
      break;
    }
    case 'p2m_generation':
      at = ARCH_P2M_GENERATION_OFFSET;
      [value, why] = rng.pick<[bigint, string]>([
        [1n, 'odd (update in progress)'],
        [U64_MAX, '~0'],
      ]);
      break;
    case 'nmi_reason':
      at = ARCH_NMI_REASON_OFFSET;
      [value, why] = [U64_MAX, '~0'];
      break;
  }
  value = BigInt.asUintN(64, value);
  return {
    desc: `arch.${field} = ${hex(value)} (${why}) in ${a.sharedInfoOffsets.length} shared_info cop${a.sharedInfoOffsets.length === 1 ? 'y' : 'ies'}`,
    edits: a.sharedInfoOffsets.map((o) => ({ offset: o + at, bytes: u64Bytes(value) })),
  };
};

/** Kernel variables read through symbols (guest-view.ts readVars / readLinear / readTree). */
export const kvar: ClassFn = (ctx, rng) => {
  const vars = ctx.anatomy.vars;
  if (vars.length === 0) return null;
  const v = rng.pick(vars);
  const [value, why] = rng.pick<[bigint, string]>([
    [0n, '0'],
    [1n, '1'],
    [U64_MAX, '~0'],
    [TWO_POW_53, '2^53'],
    [TWO_POW_53 - 1n, '2^53 − 1'],
    [1n << 40n, '2^40'],
    [BigInt(U32_LIMIT), '2^32'],
    [VA_NONCANONICAL_LOW, 'non-canonical 2^47'],
    [U64_MAX - BigInt(PAGE_SIZE) + 1n, 'the last page of the address space'],
    [v.value + 1n, 'real + 1'],
    [v.value + BigInt(PAGE_SIZE - 3), 'real + 4093 (a u64 straddling two pages)'],
    [v.value << 20n, 'real × 2^20'],
    [v.value ^ VA_SIGN_ONLY, 'real with bit 63 flipped'],
  ]);
  const nv = BigInt.asUintN(64, value);
  return { desc: `kernel variable ${v.name} (VA ${hex(v.va)}, file @${v.offset}) ${hex(v.value)} → ${hex(nv)} (${why})`, edits: [{ offset: v.offset, bytes: u64Bytes(nv) }] };
};
