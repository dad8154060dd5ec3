// struct arch_shared_info of a 64-bit PV guest (xen/include/public/arch-x86/xen.h; xen-toolstack.md §2.1):
// the fields the toolstack and crash read, parsed from and written into a shared_info page.
import { ARCH_MAX_PFN_OFFSET, ARCH_NMI_REASON_OFFSET, ARCH_P2M_CR3_OFFSET, ARCH_P2M_GENERATION_OFFSET, ARCH_P2M_VADDR_OFFSET, ARCH_PFN_TO_MFN_FRAME_LIST_LIST_OFFSET, PAGE_SIZE } from './abi.js';

/** struct arch_shared_info (64-bit guest), every field as read (u64). */
export interface ArchSharedInfo {
  maxPfn: bigint;
  pfnToMfnFrameListList: bigint;
  nmiReason: bigint;
  p2mCr3: bigint;
  p2mVaddr: bigint;
  p2mGeneration: bigint;
}

/** Read struct arch_shared_info from a shared_info page (64-bit layout, xen-toolstack.md §2.1). */
export function parseArchSharedInfo(page: Buffer): ArchSharedInfo {
  if (page.length < PAGE_SIZE) throw new Error(`shared_info page is ${page.length} bytes, expected ${PAGE_SIZE}`);
  return {
    maxPfn: page.readBigUInt64LE(ARCH_MAX_PFN_OFFSET),
    pfnToMfnFrameListList: page.readBigUInt64LE(ARCH_PFN_TO_MFN_FRAME_LIST_LIST_OFFSET),
    nmiReason: page.readBigUInt64LE(ARCH_NMI_REASON_OFFSET),
    p2mCr3: page.readBigUInt64LE(ARCH_P2M_CR3_OFFSET),
    p2mVaddr: page.readBigUInt64LE(ARCH_P2M_VADDR_OFFSET),
    p2mGeneration: page.readBigUInt64LE(ARCH_P2M_GENERATION_OFFSET),
  };
}

/** The arch fields of an image's shared_info page; all zero when the image holds none. */
export function archOf(sharedInfo: Buffer | null): ArchSharedInfo {
  return sharedInfo
    ? parseArchSharedInfo(sharedInfo)
    : { maxPfn: 0n, pfnToMfnFrameListList: 0n, nmiReason: 0n, p2mCr3: 0n, p2mVaddr: 0n, p2mGeneration: 0n };
}

/** Write struct arch_shared_info into a shared_info page (64-bit layout). */
export function writeArchSharedInfo(page: Buffer, arch: ArchSharedInfo): void {
  page.writeBigUInt64LE(arch.maxPfn, ARCH_MAX_PFN_OFFSET);
  page.writeBigUInt64LE(arch.pfnToMfnFrameListList, ARCH_PFN_TO_MFN_FRAME_LIST_LIST_OFFSET);
  page.writeBigUInt64LE(arch.nmiReason, ARCH_NMI_REASON_OFFSET);
  page.writeBigUInt64LE(arch.p2mCr3, ARCH_P2M_CR3_OFFSET);
  page.writeBigUInt64LE(arch.p2mVaddr, ARCH_P2M_VADDR_OFFSET);
  page.writeBigUInt64LE(arch.p2mGeneration, ARCH_P2M_GENERATION_OFFSET);
}
