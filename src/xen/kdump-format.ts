// A Xen kdump's ELF notes and crash-memory layout: xen/include/public/elfnote.h (XEN_ELFNOTE_CRASH_*), xen/include/xen/elfcore.h (ELF_Prstatus, crash_xen_info_t), xen/arch/x86/include/asm/{elf.h,x86_64/elf.h} (crash_xen_core_t, ELF_Gregset), xen/include/xen/kexec.h (VMCOREINFO_*), makedumpfile.h (xen_crash_info_com_t / _t / _v2_t), kexec-tools crashdump-x86.h (X86_64_PAGE_OFFSET), crash xen_dom0.h (NT_XEN_KDUMP_CR3). RELEASE-4.17.7 unless noted; docs/spec-notes/dom0-kdump.md.
//
// Data and two pure parsers (crash_xen_info_t, crash_xen_core_t), shared by the ELF vmcore reader and
// makedumpfile's compressed format, which carries the same notes.
import { InputError } from '../common/errors.js';
import { MAX_MFN_ARCH, hex } from './abi.js';

// ---- note owners and types --------------------------------------------------------------------------
/** Linux/Xen per-CPU register note: owner "CORE", type NT_PRSTATUS (elfcore.h). */
export const KEXEC_CORE_NOTE_NAME = 'CORE';
export const NT_PRSTATUS = 1;
/** Owner of Xen's crash notes (xen/common/kexec.c setup_note). */
export const XEN_NOTE_NAME = 'Xen';
/** public/elfnote.h: one per crash, on CPU 0's note range: crash_xen_info_t. */
export const XEN_ELFNOTE_CRASH_INFO = 0x1000001;
/** public/elfnote.h: one per physical CPU: crash_xen_core_t (cr0, cr2, cr3, cr4). */
export const XEN_ELFNOTE_CRASH_REGS = 0x1000002;
/** crash xen_dom0.h: the obsolete single-cr3 note of early Xen kdumps (crash warns and uses the cr3). */
export const NT_XEN_KDUMP_CR3 = 0x10000001;
/** xen/include/xen/kexec.h: Xen's own vmcoreinfo note, type 0, in a VMCOREINFO_BYTES buffer. */
export const VMCOREINFO_XEN_NOTE_NAME = 'VMCOREINFO_XEN';
export const VMCOREINFO_BYTES = 4096;
/** Linux's vmcoreinfo note (a native kdump; absent from a Xen dom0 kdump). */
export const VMCOREINFO_NOTE_NAME = 'VMCOREINFO';

// ---- ELF_Prstatus and crash_xen_core_t (x86_64) ------------------------------------------------------
/** sizeof(ELF_Prstatus) on x86_64: pr_info 12, pr_cursig 2 (+2), sigpend, sighold, 4 pids, 4 timevals, pr_reg, pr_fpvalid (+4). */
export const SIZEOF_ELF_PRSTATUS_64 = 336;
/** offsetof(ELF_Prstatus, pr_reg) on x86_64. */
export const PR_REG_OFFSET_64 = 112;
/** ELF_Gregset word indexes (asm/x86_64/elf.h): r15 … gs, 27 words. */
export const GREG_RIP = 16;
export const GREG_CS = 17;
export const GREG_RFLAGS = 18;
export const GREG_RSP = 19;
export const GREG_SS = 20;
export const ELF_GREGSET_WORDS = 27;
/** crash_xen_core_t: unsigned long cr0, cr2, cr3, cr4. */
export const SIZEOF_CRASH_XEN_CORE_64 = 32;
export const XC_CR0 = 0;
export const XC_CR2 = 8;
export const XC_CR3 = 16;
export const XC_CR4 = 24;

// ---- crash_xen_info_t (elfcore.h) and the lengths makedumpfile tells apart -------------------------
/** Bytes of one word (unsigned long on x86_64). */
export const CRASH_INFO_WORD = 8;
/** The eight common words (makedumpfile xen_crash_info_com_t), in order. */
export const CRASH_INFO_COMMON_FIELDS = ['xen_major_version', 'xen_minor_version', 'xen_extra_version', 'xen_changeset', 'xen_compiler', 'xen_compile_date', 'xen_compile_time', 'tainted'] as const;
/** xen_crash_info_com_t: no frame-list root (makedumpfile "version 0"). */
export const XEN_CRASH_INFO_COM_SIZE = 64;
/** xen_crash_info_t: the common words + dom0_pfn_to_mfn_frame_list_list (Xen before 3.3). */
export const XEN_CRASH_INFO_V1_SIZE = 72;
/** xen_crash_info_v2_t = Xen ≥ 3.3's crash_xen_info_t on x86: + xen_phys_start, then the frame-list root (Xen commit 96967abdc7). */
export const XEN_CRASH_INFO_V2_SIZE = 80;
export const CI_XEN_MAJOR_VERSION = 0x00;
export const CI_XEN_MINOR_VERSION = 0x08;
export const CI_TAINTED = 0x38;
/** xen_phys_start in the v2 layout (crash takes the word before the last when the note has more than 9). */
export const CI_XEN_PHYS_START_V2 = 0x40;

/** The word names of a crash_xen_info_t of `descSize` bytes (v1 or v2 layout). */
export function crashInfoFieldNames(descSize: number): string[] {
  const tail = descSize === XEN_CRASH_INFO_V2_SIZE ? ['xen_phys_start', 'dom0_pfn_to_mfn_frame_list_list'] : ['dom0_pfn_to_mfn_frame_list_list'];
  return [...CRASH_INFO_COMMON_FIELDS, ...tail];
}

// ---- kexec-tools' program headers for a Xen host -----------------------------------------------------
/**
 * crashdump-x86.h X86_64_PAGE_OFFSET: p_vaddr = p_paddr + this for every PT_LOAD (phys_to_virt), because
 * get_kernel_vaddr_and_size returns early under Xen. For machine memory it means nothing.
 */
export const X86_64_PAGE_OFFSET = 0xffff888000000000n;

/** What parseCrashXenInfo found (the shape of guest-image.ts CrashXenInfo). */
export interface ParsedCrashXenInfo {
  descSize: number;
  xenMajor: number;
  xenMinor: number;
  tainted: number | null;
  xenPhysStart: number | null;
  /** the last word as a machine frame, or −1 when it is none (~0: the kernel published no frame list) */
  frameListListMfn: number;
  /** every u64 word of the descriptor, in order (names: crashInfoFieldNames) */
  words: readonly bigint[];
}

/** Where a descriptor came from, for errors: the file, and the offset to blame (the note's descsz field). */
export interface NoteWhere {
  path: string;
  offset: number;
}

/**
 * Read crash_xen_info_t from a XEN_ELFNOTE_CRASH_INFO descriptor. Accepted: 80 bytes (Xen ≥ 3.3 on x86_64)
 * and 72 (older, no xen_phys_start); the frame-list root is the last word, as crash and libkdumpfile read
 * it. Any other length is an InputError (64 bytes carry no frame-list root).
 */
export function parseCrashXenInfo(desc: Buffer, where: NoteWhere): ParsedCrashXenInfo {
  const n = desc.length;
  if (n !== XEN_CRASH_INFO_V2_SIZE && n !== XEN_CRASH_INFO_V1_SIZE) {
    const why = n === XEN_CRASH_INFO_COM_SIZE ? ' (xen_crash_info_com_t: no dom0_pfn_to_mfn_frame_list_list, nothing to find dom0\'s p2m with)' : '';
    throw new InputError(
      `${where.path}: offset ${where.offset}: XEN_ELFNOTE_CRASH_INFO descsz ${n}${why}, expected ${XEN_CRASH_INFO_V2_SIZE} (crash_xen_info_t of Xen ≥ 3.3 on x86_64, ending xen_phys_start, dom0_pfn_to_mfn_frame_list_list) or ${XEN_CRASH_INFO_V1_SIZE} (older, without xen_phys_start)`,
    );
  }
  const words: bigint[] = [];
  for (let at = 0; at < n; at += CRASH_INFO_WORD) words.push(desc.readBigUInt64LE(at));
  const small = (w: bigint): number => (w <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(w) : Number.NaN);
  const last = words[words.length - 1]!;
  return {
    descSize: n,
    xenMajor: small(words[CI_XEN_MAJOR_VERSION / CRASH_INFO_WORD]!),
    xenMinor: small(words[CI_XEN_MINOR_VERSION / CRASH_INFO_WORD]!),
    tainted: small(words[CI_TAINTED / CRASH_INFO_WORD]!),
    xenPhysStart: n === XEN_CRASH_INFO_V2_SIZE ? small(words[CI_XEN_PHYS_START_V2 / CRASH_INFO_WORD]!) : null,
    frameListListMfn: last <= BigInt(MAX_MFN_ARCH) ? Number(last) : -1,
    words,
  };
}

/** crash_xen_core_t of one physical CPU. */
export interface CrashXenCore {
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
}

/** Read crash_xen_core_t from a XEN_ELFNOTE_CRASH_REGS descriptor (32 bytes, else an InputError). */
export function parseCrashXenCore(desc: Buffer, where: NoteWhere): CrashXenCore {
  if (desc.length !== SIZEOF_CRASH_XEN_CORE_64) {
    throw new InputError(`${where.path}: offset ${where.offset}: XEN_ELFNOTE_CRASH_REGS descsz ${desc.length}, expected ${SIZEOF_CRASH_XEN_CORE_64} (crash_xen_core_t: cr0, cr2, cr3, cr4)`);
  }
  return { cr0: desc.readBigUInt64LE(XC_CR0), cr2: desc.readBigUInt64LE(XC_CR2), cr3: desc.readBigUInt64LE(XC_CR3), cr4: desc.readBigUInt64LE(XC_CR4) };
}

/** A note type in words, for listings ("NT_PRSTATUS", "XEN_ELFNOTE_CRASH_INFO", or its hex value). */
export function kdumpNoteTypeName(name: string, type: number): string {
  if (name === KEXEC_CORE_NOTE_NAME && type === NT_PRSTATUS) return 'NT_PRSTATUS';
  if (name === XEN_NOTE_NAME && type === XEN_ELFNOTE_CRASH_INFO) return 'XEN_ELFNOTE_CRASH_INFO';
  if (name === XEN_NOTE_NAME && type === XEN_ELFNOTE_CRASH_REGS) return 'XEN_ELFNOTE_CRASH_REGS';
  if (name === XEN_NOTE_NAME && type === NT_XEN_KDUMP_CR3) return 'NT_XEN_KDUMP_CR3';
  return hex(type);
}
