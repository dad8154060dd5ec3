// What every reader of a dom0 crash dump written through Xen's kexec path hands up (ELF vmcore, makedumpfile's compressed form): machine frames of a 64-bit host, no shared_info and no vCPU cr3 (the kexec path records neither), and the frame-list root of crash_xen_info_t (xen/arch/x86/crash.c machine_crash_shutdown) where the toolstack finds it. docs/spec-notes/dom0-kdump.md.
import type { ArchSharedInfo } from '../xen/shared-info.js';
import { archOf } from '../xen/shared-info.js';
import { FrameFile } from './file-io.js';
import type { CrashXenInfo, FormatFacts, GuestImage, ImageFormat } from './guest-image.js';
import type { SymbolTable } from './symbols.js';

/** The formatFacts of a dom0 kdump. */
export type Dom0KdumpFacts = Extract<FormatFacts, { kind: 'dom0-kdump' }>;

/** Guest width of the only dom0s read (64-bit PV). */
const GUEST_WIDTH_64 = 8;

/**
 * The arch fields of a dom0 kdump: every field is unknown (0) except the frame-list root, the crash note's
 * last word as it is (crash and libkdumpfile read the root there).
 */
export function archOfCrashInfo(crashInfo: CrashXenInfo): ArchSharedInfo {
  return { ...archOf(null), pfnToMfnFrameListList: crashInfo.words[crashInfo.words.length - 1]! };
}

/** The common part of a dom0 kdump image; a reader adds where its frames are. */
export abstract class Dom0KdumpImage implements GuestImage {
  abstract readonly format: ImageFormat;
  abstract readonly maxFrame: number;
  readonly frameSpace = 'mfn' as const;
  readonly guestWidth = GUEST_WIDTH_64;
  readonly sharedInfo = null;
  readonly cr3 = 0n;
  readonly arch: ArchSharedInfo;
  protected readonly file: FrameFile;

  constructor(
    readonly path: string,
    fd: number,
    readonly symbols: SymbolTable,
    readonly formatFacts: Dom0KdumpFacts,
  ) {
    this.file = new FrameFile(path, fd);
    this.arch = archOfCrashInfo(formatFacts.crashInfo);
  }

  abstract readFrame(frame: number): Buffer | null;
  fileDescriptor(): number {
    return this.file.descriptor;
  }

  abstract frameOffset(frame: number): number;
  abstract frameCount(): number;

  close(): void {
    this.file.close();
  }
}
