// A dom0 kdump's verdict in crash's own terms (docs/spec-notes/dom0-kdump-views.md §6): nothing saves a
// dom0, so a fatal range is RAM crash cannot read — "crash: read error: kernel virtual address A–B" —
// told with the frame-list slots crash follows (x86_64_xen_kdump_p2m_create, xen_kdump_p2m), the
// arch.max_pfn bound beside it, and the start-up prediction (crash-startup.ts).
import type { GuestImage } from '../formats/guest-image.js';
import type { GuestView, ToolstackView } from '../views/p2m-leaves.js';
import type { CrashView } from '../views/crash-view.js';
import { listEntry, type FrameList } from '../views/crash-frame-list.js';
import { P2M_PER_PAGE, PAGES_PER_MIB, hex } from '../xen/abi.js';
import { predictCrashStartup, type CrashStartup } from './crash-startup.js';
import type { FatalRange } from './verdict.js';

const INVALID = 0xffffffff;
const WORD = 2 ** 32;

function allInvalid(page: Buffer | null): boolean {
  if (!page) return false;
  for (let o = 0; o < page.length; o += 4) if (page.readUInt32LE(o) !== INVALID) return false;
  return true;
}

function mib(pages: number): string {
  const m = pages / PAGES_PER_MIB;
  return m < 0.1 ? m.toPrecision(2) : m.toFixed(1);
}

/** What crash reads for `pfn` through its list, in words. */
function crashReadsAt(img: GuestImage, list: FrameList, pfn: number): string {
  const out = { lo: 0, hi: 0, leaf: -1 };
  const k = Math.floor(pfn / P2M_PER_PAGE);
  const t = Math.floor(k / P2M_PER_PAGE);
  const why = listEntry(img, list, pfn, out);
  if (why === 'beyond') return `pfn ${hex(pfn)} lies past crash's p2m_frames ${list.p2mFrames} leaves (xen_kdump_p2m: "mfn_idx nonexistent")`;
  if (why === 'unset') return `crash's list slot for leaf ${k} was never written (uninitialised memory in crash)`;
  const mid = list.midMfns[t];
  const sharedMid = mid !== undefined && list.midMfns.filter((m) => m === mid).length > 1;
  const path = `top slot ${t} → mid page ${mid === undefined ? '?' : hex(mid)}${sharedMid ? ' (shared by several top slots: the missing mid page)' : ''} → leaf ${hex(out.leaf)}`;
  if (why === 'leaf-absent') return `the frame list's ${path}, a page the dump does not hold`;
  const leafNote = allInvalid(img.readFrame(out.leaf)) ? ' (an all-INVALID leaf: the kernel\'s p2m_missing)' : '';
  const value = out.lo === INVALID && out.hi === INVALID ? '~0 (INVALID)' : hex(BigInt(out.hi) * BigInt(WORD) + BigInt(out.lo));
  return `crash reads pfn ${hex(pfn)} as ${value} through the crash note's frame list: ${path}${leafNote}`;
}

export interface CrashTermsInput {
  img: GuestImage;
  tool: ToolstackView;
  guest: GuestView;
  crash: CrashView;
  /** the report's fatal ranges: their text and breaksText are rewritten in crash's terms */
  fatal: FatalRange[];
}

/**
 * Rewrite the fatal ranges of a dom0 kdump in crash's terms and predict crash's start-up. Returns the
 * prediction, and the verdict's reason for a fatal result.
 */
export function applyCrashTerms(input: CrashTermsInput): { startup: CrashStartup; reason: (fatalPages: number) => string } {
  const { img, tool, crash, fatal } = input;
  const bound = tool.crash?.maxPfnBound ?? null;
  for (const r of fatal) {
    const parts: string[] = [];
    parts.push(crash.list ? crashReadsAt(img, crash.list, r.start) : `crash has no frame list to read them through (${crash.why})`);
    if (bound) {
      parts.push(
        r.start >= bound.boundPfn
          ? `they lie past arch.max_pfn ${hex(bound.archMaxPfn)} of ${bound.source} too`
          : `arch.max_pfn ${hex(bound.archMaxPfn)} of ${bound.source} covers them, yet the list does not map them`,
      );
    }
    const reach = r.cause.kernel.filter((v) => r.cause.reachesRange.includes(v.name));
    if (reach.length > 0) parts.push(`the kernel's ${reach.map((v) => `${v.name} ${hex(v.value)}`).join(', ')} count${reach.length === 1 ? 's' : ''} these pfns as its own`);
    r.text = parts.join('; ');
    const vas = `${r.cause.breaks.vaStart.toString(16)}-${r.cause.breaks.vaEnd.toString(16)}`;
    const size = `${r.pages} page${r.pages === 1 ? '' : 's'}, ${mib(r.pages)} MiB`;
    r.breaksText =
      r.cause.breaks.effect === 'wrong-data'
        ? `crash reads the wrong machine pages for kernel virtual addresses ${vas} (${size})`
        : r.cause.breaks.crashReadablePages === r.pages
          ? `crash reads them (${size})`
          : `crash: read error: kernel virtual address ${vas} (${size})`;
  }
  const startup = predictCrashStartup({ img, guest: input.guest, crash, lostRanges: fatal });
  const reason = (fatalPages: number): string => {
    const start = startup.starts ? (startup.firstFailure ? 'crash starts with read errors' : 'crash starts') : `crash stops at start-up on "${startup.reads.find((x) => x.outcome === 'read-error' && x.onError === 'fatal')?.type ?? '?'}"`;
    return `${fatalPages} page${fatalPages === 1 ? '' : 's'} (${mib(fatalPages)} MiB) of dom0's RAM cannot be read by crash through the crash note's frame list; ${start}`;
  };
  return { startup, reason };
}
