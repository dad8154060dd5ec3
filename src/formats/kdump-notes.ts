// The ELF notes of a Xen dom0 kdump, classified the way makedumpfile (elf_info.c get_pt_note_info) and crash (netdump.c, xen_dom0.c process_xen_note) read them: per physical CPU a "CORE" NT_PRSTATUS and a "Xen" XEN_ELFNOTE_CRASH_REGS, once a "Xen" XEN_ELFNOTE_CRASH_INFO (xen/common/kexec.c), and Xen's "VMCOREINFO_XEN" text. Shared by the ELF vmcore reader (its PT_NOTE) and makedumpfile's compressed format (its offset_note / size_note area).
import { InputError } from '../common/errors.js';
import { hex } from '../xen/abi.js';
import { N_DESCSZ } from '../xen/elf-format.js';
import { KEXEC_CORE_NOTE_NAME, NT_PRSTATUS, NT_XEN_KDUMP_CR3, VMCOREINFO_NOTE_NAME, VMCOREINFO_XEN_NOTE_NAME, XEN_ELFNOTE_CRASH_INFO, XEN_ELFNOTE_CRASH_REGS, XEN_NOTE_NAME, parseCrashXenCore, parseCrashXenInfo, type CrashXenCore } from '../xen/kdump-format.js';
import { cString, readNotes, type ElfFile, type NoteRegion } from './elf.js';
import type { CrashXenInfo, DumpNote } from './guest-image.js';

/** Notes kept per dump (a host has at most a few thousand CPUs, two or three notes each). */
export const MAX_KDUMP_NOTES = 65536;
/** Largest note region read (Xen's notes are 0x194 bytes per CPU, plus 0x1000 of VMCOREINFO_XEN). */
const MAX_NOTE_REGION_BYTES = 16 * 1024 * 1024;

/** What a dump's notes say. */
export interface KdumpNotes {
  /** every note in file order (a trailing all-zero header ends a region, as fs/proc/vmcore.c reads it) */
  notes: DumpNote[];
  /** crash_xen_info_t, or null when there is no XEN_ELFNOTE_CRASH_INFO note */
  crashInfo: CrashXenInfo | null;
  /** file offset of the XEN_ELFNOTE_CRASH_INFO note's header, or −1 */
  crashInfoAt: number;
  /** Xen's VMCOREINFO_XEN text up to its first NUL, or null */
  vmcoreInfoXen: string | null;
  /** Linux's own VMCOREINFO note is there (a kernel's kdump, not Xen's) */
  linuxVmcoreInfo: boolean;
  /** "CORE" NT_PRSTATUS notes: one per physical CPU in a Xen kdump */
  prstatus: number;
  /** crash_xen_core_t of each XEN_ELFNOTE_CRASH_REGS note, in file order (physical CPU order) */
  crashRegs: CrashXenCore[];
  /** any note owned by "Xen" (CRASH_INFO, CRASH_REGS, the obsolete NT_XEN_KDUMP_CR3, …) */
  xenNotes: number;
}

/**
 * Read every note of the regions (a vmcore's PT_NOTE segments, or a diskdump's note area) and classify
 * them. Lengths are checked by readNotes before anything is allocated; a second CRASH_INFO note, a
 * CRASH_INFO of unknown length or a CRASH_REGS that is not crash_xen_core_t is an InputError.
 */
export function readKdumpNotes(f: ElfFile, regions: readonly NoteRegion[]): KdumpNotes {
  const out: KdumpNotes = { notes: [], crashInfo: null, crashInfoAt: -1, vmcoreInfoXen: null, linuxVmcoreInfo: false, prstatus: 0, crashRegs: [], xenNotes: 0 };
  for (const region of regions) {
    for (const note of readNotes(f, region, { maxBytes: MAX_NOTE_REGION_BYTES, maxWhy: 'a Xen kdump has a few hundred bytes of notes per CPU' })) {
      if (note.name === '' && note.type === 0 && note.desc.length === 0) break; // zero padding after the last note
      if (out.notes.length === MAX_KDUMP_NOTES) f.fail(note.at, `${region.what}: more than ${MAX_KDUMP_NOTES} notes, expected a few per physical CPU`);
      out.notes.push({ name: note.name, type: note.type, descSize: note.desc.length, descOffset: note.descAt });
      const where = { path: f.path, offset: note.at + N_DESCSZ };
      if (note.name === KEXEC_CORE_NOTE_NAME && note.type === NT_PRSTATUS) out.prstatus++;
      else if (note.name === VMCOREINFO_NOTE_NAME && note.type === 0) out.linuxVmcoreInfo = true;
      else if (note.name === VMCOREINFO_XEN_NOTE_NAME && note.type === 0) out.vmcoreInfoXen ??= cString(note.desc);
      else if (note.name === XEN_NOTE_NAME) {
        out.xenNotes++;
        if (note.type === XEN_ELFNOTE_CRASH_REGS) out.crashRegs.push(parseCrashXenCore(note.desc, where));
        if (note.type !== XEN_ELFNOTE_CRASH_INFO) continue;
        if (out.crashInfo) f.fail(note.at, `a second XEN_ELFNOTE_CRASH_INFO note (the first is at offset ${out.crashInfoAt}), expected one (Xen writes it once, in CPU 0's notes)`);
        out.crashInfo = parseCrashXenInfo(note.desc, where);
        out.crashInfoAt = note.at;
      }
    }
  }
  return out;
}

/**
 * The crash note a dom0 kdump must have, or an InputError saying what the notes are instead: a native Linux
 * kdump (no "Xen" note), or Xen notes without XEN_ELFNOTE_CRASH_INFO (an obsolete NT_XEN_KDUMP_CR3 dump).
 */
export function requireCrashInfo(path: string, offset: number, k: KdumpNotes): CrashXenInfo {
  if (k.crashInfo) return k.crashInfo;
  const kinds = k.notes.length === 0 ? 'no notes' : [...new Set(k.notes.map((n) => `${n.name}/${hex(n.type)}`))].join(', ');
  if (k.notes.some((n) => n.name === XEN_NOTE_NAME && n.type === NT_XEN_KDUMP_CR3)) {
    throw new InputError(`${path}: offset ${offset}: an early Xen kdump (obsolete NT_XEN_KDUMP_CR3 note, no XEN_ELFNOTE_CRASH_INFO): it names no dom0 frame list, expected a "Xen" note of type ${hex(XEN_ELFNOTE_CRASH_INFO)}`);
  }
  if (k.xenNotes === 0) {
    throw new InputError(`${path}: offset ${offset}: ${nativeVmcoreDescription(k)} (notes: ${kinds}); expected a dom0 kdump written through Xen's kexec path, with a "Xen" note of type ${hex(XEN_ELFNOTE_CRASH_INFO)} (XEN_ELFNOTE_CRASH_INFO)`);
  }
  throw new InputError(`${path}: offset ${offset}: Xen crash notes without XEN_ELFNOTE_CRASH_INFO (notes: ${kinds}); expected one "Xen" note of type ${hex(XEN_ELFNOTE_CRASH_INFO)} holding crash_xen_info_t`);
}

/** How a kdump without Xen's notes is named in messages. */
export function nativeVmcoreDescription(k: KdumpNotes): string {
  return k.linuxVmcoreInfo || k.prstatus > 0 ? 'a native Linux vmcore (no Xen crash note): crash or makedumpfile read it, p2m-audit reads dom0 kdumps' : 'an ELF core without Xen crash notes';
}

