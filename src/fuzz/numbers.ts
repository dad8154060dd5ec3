// Numbers the fuzz harness's anatomy and mutation classes share: integer limits, x86-64 PTE frame fields
// (Intel SDM vol. 3A §4.5: 52-bit physical frames) and virtual-address landmarks (docs/fuzz.md).
import { P2M_ENTRY_SIZE, PAGE_SHIFT, PAGE_SIZE } from '../xen/abi.js';

export const U32_LIMIT = 2 ** 32;
export const U32_BYTES = 4;
export const U64_MAX = (1n << 64n) - 1n;
/** 2^53: the first integer a JS number cannot hold exactly next to its neighbours. */
export const TWO_POW_53 = 1n << 53n;
/** x86-64 physical addresses have 52 bits: the largest frame a PTE can name is 2^40 − 1. */
const PADDR_BITS = 52;
export const MAX_PTE_FRAME = (1n << BigInt(PADDR_BITS - PAGE_SHIFT)) - 1n;
/** PTE frame field: bits 12..51. */
export const PTE_FRAME_MASK = MAX_PTE_FRAME << BigInt(PAGE_SHIFT);
/** Lowest non-canonical VA (bit 47 set, bits 63..48 clear) and other VA landmarks. */
export const VA_NONCANONICAL_LOW = 1n << 47n;
export const VA_SIGN_ONLY = 1n << 63n;
/** Entries per page of u64 words. */
export const U64_PER_PAGE = PAGE_SIZE / P2M_ENTRY_SIZE;
/** A p2m_top / mid page holds 512 pointers. */
export const PTR_SIZE = P2M_ENTRY_SIZE;

export function safeNum(v: bigint): number | null {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : null;
}

export function alignUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}
