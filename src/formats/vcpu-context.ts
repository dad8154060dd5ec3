// One 64-bit PV vCPU's struct vcpu_guest_context (xen/include/public/arch-x86/xen.h), as dump-core's
// .xen_prstatus and a save stream's X86_PV_VCPU_BASIC records carry it: the fields the save side converts
// in write_one_vcpu_basic (xg_sr_save_x86_pv.c): the suspend record in user_regs.rdx, gdt_frames/gdt_ents,
// ctrlreg[3] and ctrlreg[1]. Frames are in the image's frame space (mfns in a dump, pfns in a stream).
import { GDT_ENTRIES_PER_FRAME } from '../xen/domctl.js';
import { VCPU_CTRLREG3_OFFSET_64 } from '../xen/abi.js';
import { VCPU_CTRLREG1_OFFSET_64, VCPU_FLAGS_OFFSET_64, VCPU_RDX_OFFSET_64 } from '../xen/stream-format.js';
import { VCPU_GDT_ENTS_OFFSET_64, VCPU_GDT_FRAME_SLOTS, VCPU_GDT_FRAMES_OFFSET_64 } from '../xen/vcpu-guest-context.js';

export interface VcpuContext {
  /** the vCPU id (a stream's vcpu_id; in a dump-core the position among the contexts Xen returned) */
  readonly id: number;
  readonly flags: number;
  /** gdt_ents as stored (the saver refuses more than FIRST_RESERVED_GDT_ENTRY) */
  readonly gdtEnts: number;
  /** gdt_frames[0 … ceil(gdt_ents / 512) − 1] (at most the 16 slots), −1 where a value is not a frame number */
  readonly gdtFrames: readonly number[];
  /** ctrlreg[3] >> 12 and ctrlreg[1] >> 12 (0: none), −1 where not a frame number */
  readonly cr3Frame: number;
  readonly cr1Frame: number;
  /** user_regs.rdx: for vCPU 0 of a suspended guest, the start_info frame (the suspend record) */
  readonly rdx: number;
}

const WORD = 2 ** 32;
/** A u64 above 2^53 is not a number this reader needs (frames have at most 40 bits). */
const SAFE_HI_MAX = 0x1fffff;
/** Frame numbers have at most 40 bits (52-bit machine addresses): high words above this are not frames. */
const FRAME_HI_MAX = 0xff;
/** cr3-style values: frame in bits 12..51 of the u64 (PTE_PFN_MASK), bits 52–63 must be clear. */
const CR3_FRAME_HI_MASK = 0xfffff;
const CR3_HI_SCALE = 2 ** 20;

function u64Number(b: Buffer, off: number): number {
  const hi = b.readUInt32LE(off + 4);
  return hi > SAFE_HI_MAX ? -1 : hi * WORD + b.readUInt32LE(off);
}

/** A u64 holding a frame number, or −1. */
function frameAt(b: Buffer, off: number): number {
  const hi = b.readUInt32LE(off + 4);
  return hi > FRAME_HI_MAX ? -1 : hi * WORD + b.readUInt32LE(off);
}

/** The frame of a cr3-style u64 (frame << 12 | flags), or −1. */
function cr3FrameAt(b: Buffer, off: number): number {
  const hi = b.readUInt32LE(off + 4);
  if ((hi & ~CR3_FRAME_HI_MASK) !== 0) return -1;
  return hi * CR3_HI_SCALE + (b.readUInt32LE(off) >>> 12);
}

/** Parse a 5168-byte x86_64 vcpu_guest_context. */
export function parseVcpuContext64(b: Buffer, id: number): VcpuContext {
  const gdtEnts = u64Number(b, VCPU_GDT_ENTS_OFFSET_64);
  const n = gdtEnts < 0 ? VCPU_GDT_FRAME_SLOTS : Math.min(VCPU_GDT_FRAME_SLOTS, Math.ceil(gdtEnts / GDT_ENTRIES_PER_FRAME));
  const gdtFrames: number[] = [];
  for (let i = 0; i < n; i++) gdtFrames.push(frameAt(b, VCPU_GDT_FRAMES_OFFSET_64 + 8 * i));
  return {
    id,
    flags: b.readUInt32LE(VCPU_FLAGS_OFFSET_64),
    gdtEnts,
    gdtFrames,
    cr3Frame: cr3FrameAt(b, VCPU_CTRLREG3_OFFSET_64),
    cr1Frame: cr3FrameAt(b, VCPU_CTRLREG1_OFFSET_64),
    rdx: u64Number(b, VCPU_RDX_OFFSET_64),
  };
}
