// struct vcpu_guest_context for 64-bit PV guests (the fields save checks) and the save side's limits on it:
// xen-project/xen xen/include/public/arch-x86/xen.h (vcpu_guest_context, FIRST_RESERVED_GDT_*),
// arch-x86/xen-x86_64.h (HYPERVISOR_VIRT_START/END) and tools/libs/guest/xg_sr_save_x86_pv.c
// (write_one_vcpu_basic, normalise_pagetable) at RELEASE-4.17.0 … 4.17.7 (docs/spec-notes/save-failure.md).
import { VCPU_CTRLREG1_OFFSET_64 } from './stream-format.js';

/** Bytes of one u64 field. */
const U64 = 8;

/** gdt_ents, kernel_ss, kernel_sp precede ctrlreg[8]; gdt_frames[16] precede gdt_ents. */
export const VCPU_GDT_FRAME_SLOTS = 16;
export const VCPU_GDT_ENTS_OFFSET_64 = VCPU_CTRLREG1_OFFSET_64 - U64 /* ctrlreg[0] */ - 2 * U64 /* kernel_ss, kernel_sp */ - U64;
export const VCPU_GDT_FRAMES_OFFSET_64 = VCPU_GDT_ENTS_OFFSET_64 - VCPU_GDT_FRAME_SLOTS * U64;

/** _VGCF_online (xen.h arch-x86): the vCPU is up. */
export const VGCF_ONLINE = 1 << 5;

/** FIRST_RESERVED_GDT_PAGE = 14: the guest owns the GDT entries below FIRST_RESERVED_GDT_ENTRY (14 · 512). */
export const FIRST_RESERVED_GDT_PAGE = 14;

/**
 * normalise_pagetable() zeroes a 64-bit guest's L4 slots from HYPERVISOR_VIRT_START_X86_64 >> 39 (256) to
 * HYPERVISOR_VIRT_END_X86_64 >> 39 (0xFFFF880000000000 >> 39 & 511 = 272) inclusive before it checks the
 * entries: one slot more than Xen's own hole (256–271).
 */
export const NORMALISE_XEN_L4_FIRST = 256;
export const NORMALISE_XEN_L4_LAST = 272;
