// Emulated restore check of a save stream: reads the stream as xen-project/xen
// tools/libs/guest/xg_sr_restore.c (handle_page_data, populate_pfns) and xg_sr_restore_x86_pv.c
// (expand_p2m, update_guest_p2m) would, and lists every pfn the guest's own p2m calls RAM that the
// stream did not carry: such pages come back empty (or not at all) after `xl restore` / migration.
// The guest's p2m is found through its own page tables in pfn space (src/views/guest-view.ts); its
// leaf pages hold mfns, so an entry is RAM when it is neither INVALID_P2M_ENTRY nor marked
// (IDENTITY_FRAME_BIT / FOREIGN_FRAME_BIT, arch/x86/include/asm/xen/page.h).
import { GuestLeaf } from '../views/p2m-leaves.js';
import { readGuestViewOrMirror } from '../views/guest-mirror.js';
import { EXIT_CLEAN, EXIT_FATAL, EXIT_PARTIAL } from '../audit/verdict.js';
import { FOREIGN_FRAME_HI, IDENTITY_FRAME_HI, P2M_ENTRY_SIZE, P2M_PER_PAGE, PAGES_PER_MIB, hex } from '../xen/abi.js';
import type { GuestImage } from '../formats/guest-image.js';
import { FRAME_ABSENT, FRAME_BROKEN, FRAME_XALLOC, FRAME_XTAB, StreamImage } from '../formats/save-stream.js';
import { savedP2mOf, streamStopOf, type StreamStop } from '../formats/guest-image.js';
import { RHDR_SIZE } from '../xen/stream-format.js';

export const RESTORE_CHECK_SCHEMA = 'p2m-audit/restore-check@1';

/** Why a guest RAM pfn is not restored with its contents. */
export type LossReason = 'beyond-max-pfn' | 'absent' | 'xtab' | 'broken' | 'xalloc';

const REASON_TEXT: Record<LossReason, string> = {
  'beyond-max-pfn': 'past the saver\'s max_pfn: never sent, and restore rejects such pfns',
  absent: 'not in any PAGE_DATA record',
  xtab: 'sent as XTAB (no data): restore neither populates nor fills it',
  broken: 'sent as BROKEN (no data)',
  xalloc: 'sent as XALLOC: populated without data, comes back zeroed',
};

/** A run of pfns [start, end) with one reason. */
export interface LossRange {
  start: number;
  end: number;
  pages: number;
  mib: number;
  reason: LossReason;
}

export interface UncheckedRange {
  start: number;
  end: number;
  pages: number;
}

export interface RestoreLoss {
  file: string;
  format: string;
  /** restore's max_pfn (the X86_PV_P2M_FRAMES end pfn); −1 when the stream has none */
  streamMaxPfn: number;
  /** pfns the guest's own p2m maps to RAM (an mfn, no marker bits) */
  guestRamPages: number;
  /** of those, pages whose last PAGE_DATA entry carries data */
  carriedPages: number;
  lostPages: number;
  lostMib: number;
  lost: LossRange[];
  /** guest leaf pages the stream does not hold: those pfns could not be checked */
  unchecked: UncheckedRange[];
  uncheckedPages: number;
  /** why restore itself fails (a stream without END: what a failed save leaves), or null */
  restoreFails: string | null;
  /** 0 nothing lost, 1 RAM lost or restore fails, 5 nothing lost but pfns unchecked: partial (audit/verdict.ts exit codes) */
  exitCode: number;
  notes: string[];
}

/** The stream's verdict on one pfn: a file offset (≥ 0: carried) or a FRAME_* code. */
function codeOf(img: GuestImage, pfn: number): number {
  if (img instanceof StreamImage) return img.frameCode(pfn);
  const off = img.frameOffset(pfn);
  return off >= 0 ? off : FRAME_ABSENT;
}

function reasonOf(code: number, pfn: number, maxPfn: number): LossReason {
  if (code === FRAME_XTAB) return 'xtab';
  if (code === FRAME_BROKEN) return 'broken';
  if (code === FRAME_XALLOC) return 'xalloc';
  return pfn > maxPfn ? 'beyond-max-pfn' : 'absent';
}

/** Appends runs, merging with the previous one when contiguous and of the same reason. */
class Runs<T extends string | null> {
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  readonly tags: T[] = [];
  add(start: number, end: number, tag: T): void {
    const n = this.starts.length;
    if (n > 0 && this.ends[n - 1] === start && this.tags[n - 1] === tag) this.ends[n - 1] = end;
    else {
      this.starts.push(start);
      this.ends.push(end);
      this.tags.push(tag);
    }
  }
}

/**
 * Why restore stops on a stream without END: xg_sr_restore.c restore() reads records until END, and
 * read_record() (xg_sr_common.c) fails at the end of the data, so no domain is created.
 */
export function restoreFailure(stop: StreamStop): string {
  const at = `the stream has no END record and stops at offset ${stop.offset} after ${stop.afterRecord}`;
  const vcpu = stop.vcpuRecords.length === 0 ? ", before vCPU 0's X86_PV_VCPU_BASIC record" : '';
  const why =
    stop.tornRecord === null || stop.tornRecord === 'record header' || stop.tornRecord === 'libxl record header'
      ? `restore reads the next ${RHDR_SIZE}-byte record header there and stops with "Failed to read Record Header from stream"`
      : `restore stops inside the ${stop.tornRecord} record with "Failed to read … bytes of data for record (…, ${stop.tornRecord})"`;
  return `restore fails: ${at}${vcpu}; ${why}: no domain is created`;
}

/**
 * Restore check of a save stream (needs kernel symbols: the guest view walks the guest's own p2m).
 * Throws InputError when the guest view cannot be read.
 */
export function restoreCheck(img: GuestImage): RestoreLoss {
  const guest = readGuestViewOrMirror(img);
  const rec = savedP2mOf(img);
  const maxPfn = rec ? rec.endPfn : -1;
  const lost = new Runs<LossReason>();
  const unchecked = new Runs<null>();
  let ram = 0;
  let carried = 0;
  // past the arrays lies the uniform tail: shared missing / identity leaves only
  for (let k = 0; k < guest.kinds.length; k++) {
    if (guest.kinds[k] !== GuestLeaf.PAGE) continue; // shared missing / identity leaves map no RAM
    const first = k * P2M_PER_PAGE;
    const frame = guest.leafFrames[k]!;
    const page = frame >= 0 ? img.readFrame(frame) : null;
    if (page === null) {
      unchecked.add(first, first + P2M_PER_PAGE, null);
      continue;
    }
    for (let i = 0; i < P2M_PER_PAGE; i++) {
      const hi = page.readUInt32LE(i * P2M_ENTRY_SIZE + 4);
      if ((hi & (IDENTITY_FRAME_HI | FOREIGN_FRAME_HI)) !== 0) continue; // INVALID has both bits
      const pfn = first + i;
      ram++;
      const code = codeOf(img, pfn);
      if (code >= 0) carried++;
      else lost.add(pfn, pfn + 1, reasonOf(code, pfn, maxPfn));
    }
  }
  const lostRanges: LossRange[] = lost.starts.map((start, j) => {
    const pages = lost.ends[j]! - start;
    return { start, end: lost.ends[j]!, pages, mib: pages / PAGES_PER_MIB, reason: lost.tags[j]! };
  });
  const uncheckedRanges: UncheckedRange[] = unchecked.starts.map((start, j) => ({ start, end: unchecked.ends[j]!, pages: unchecked.ends[j]! - start }));
  const lostPages = ram - carried;
  const uncheckedPages = uncheckedRanges.reduce((s, r) => s + r.pages, 0);
  const notes = [...guest.notes];
  const stop = streamStopOf(img);
  const restoreFails = stop ? restoreFailure(stop) : null;
  if (!rec) notes.push('the stream has no X86_PV_P2M_FRAMES record: restore\'s max_pfn stays 0');
  return {
    file: img.path,
    format: img.format,
    streamMaxPfn: maxPfn,
    guestRamPages: ram,
    carriedPages: carried,
    lostPages,
    lostMib: lostPages / PAGES_PER_MIB,
    lost: lostRanges,
    unchecked: uncheckedRanges,
    uncheckedPages,
    restoreFails,
    exitCode: restoreFails || lostPages > 0 ? EXIT_FATAL : uncheckedPages > 0 ? EXIT_PARTIAL : EXIT_CLEAN,
    notes,
  };
}

function mibText(mib: number): string {
  return mib === 0 ? '0' : mib < 0.1 ? mib.toPrecision(2) : mib.toFixed(1);
}

/** Text (one summary line, one line per range) or JSON (schema p2m-audit/restore-check@1, ranges inclusive, pfns as hex). */
export function renderRestoreCheck(loss: RestoreLoss, json: boolean): string {
  if (json) {
    return JSON.stringify(
      {
        schema: RESTORE_CHECK_SCHEMA,
        file: loss.file,
        format: loss.format,
        exitCode: loss.exitCode,
        restoreFails: loss.restoreFails,
        streamMaxPfn: loss.streamMaxPfn >= 0 ? hex(loss.streamMaxPfn) : null,
        guestRamPages: loss.guestRamPages,
        carriedPages: loss.carriedPages,
        lostPages: loss.lostPages,
        lostMib: loss.lostMib,
        lost: loss.lost.map((r) => ({ start: hex(r.start), end: hex(r.end - 1), pages: r.pages, mib: r.mib, reason: r.reason })),
        uncheckedPages: loss.uncheckedPages,
        unchecked: loss.unchecked.map((r) => ({ start: hex(r.start), end: hex(r.end - 1), pages: r.pages })),
        notes: loss.notes,
      },
      null,
      2,
    ) + '\n';
  }
  const lines: string[] = [];
  const verdict = loss.restoreFails ? 'FAILS' : loss.lostPages > 0 ? 'LOSS' : loss.uncheckedPages > 0 ? 'UNCHECKED' : 'OK';
  const bound = loss.streamMaxPfn >= 0 ? `, saver's max_pfn ${hex(loss.streamMaxPfn)}` : '';
  lines.push(`${verdict.padEnd(9)} ${loss.file || '<image>'}  [${loss.format}${bound}]`);
  if (loss.restoreFails) lines.push(`  ${loss.restoreFails}; had it gone on, this is what the stream carries:`);
  lines.push(
    `  guest RAM ${loss.guestRamPages} pages; restored with their contents ${loss.carriedPages}; ` +
      `not carried by the stream ${loss.lostPages} pages (${mibText(loss.lostMib)} MiB)`,
  );
  for (const r of loss.lost) {
    lines.push(`  lost      ${hex(r.start)}-${hex(r.end - 1)}  ${r.pages} page${r.pages === 1 ? '' : 's'} (${mibText(r.mib)} MiB): ${REASON_TEXT[r.reason]}`);
  }
  for (const r of loss.unchecked) {
    lines.push(`  unchecked ${hex(r.start)}-${hex(r.end - 1)}  ${r.pages} pages: the guest's leaf page for them is not in the stream`);
  }
  return lines.join('\n') + '\n';
}
