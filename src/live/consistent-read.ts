// Reading a running domain consistently, as the save side does (xen-project/xen
// tools/libs/guest/xg_sr_save_x86_pv.c: map_p2m_list records arch.p2m_generation, x86_pv_check_vm_state
// compares it after each pass and aborts on a change; Linux arch/x86/xen/p2m.c makes it odd while it
// replaces a p2m page). Without --pause each attempt opens the domain, reads, and maps shared_info again:
// an odd generation, or any arch word that changed, throws the attempt away. With --pause the domain is
// paused for the read and unpaused afterwards, always: on success, on errors, on SIGINT/SIGTERM.
import { InputError } from '../common/errors.js';
import type { ArchSharedInfo } from '../xen/shared-info.js';
import type { LiveDomainImage } from '../formats/live-domain.js';

/** Attempts of an unpaused read before giving up (exit 3). */
export const DEFAULT_ATTEMPTS = 5;

/** The read never saw the same p2m twice in a row: exit 3, not an input error. */
export class InconsistentReadError extends Error {
  constructor(
    message: string,
    readonly attempts: number,
  ) {
    super(message);
    this.name = 'InconsistentReadError';
  }
}

/** Whether the guest publishes the linear list (p2m_cr3 ≠ 0): only then is p2m_generation maintained. */
export function listMode(a: ArchSharedInfo): boolean {
  return a.p2mCr3 !== 0n;
}

/** Why two readings of shared_info's arch fields describe different p2ms, or null when they agree. */
export function archChange(before: ArchSharedInfo, after: ArchSharedInfo): string | null {
  if (listMode(after) && (after.p2mGeneration & 1n) === 1n) return `p2m_generation ${after.p2mGeneration} is odd (an update is in progress)`;
  if (before.p2mGeneration !== after.p2mGeneration) return `p2m_generation changed from ${before.p2mGeneration} to ${after.p2mGeneration}`;
  const words: [keyof ArchSharedInfo, string][] = [
    ['maxPfn', 'max_pfn'],
    ['pfnToMfnFrameListList', 'pfn_to_mfn_frame_list_list'],
    ['p2mCr3', 'p2m_cr3'],
    ['p2mVaddr', 'p2m_vaddr'],
  ];
  for (const [k, name] of words) if (before[k] !== after[k]) return `arch.${name} changed from 0x${before[k].toString(16)} to 0x${after[k].toString(16)}`;
  return null;
}

export interface ConsistentReadOptions {
  /** attempts before InconsistentReadError (default DEFAULT_ATTEMPTS) */
  attempts?: number;
  /** called between attempts (e.g. to let a paused guest finish its update) */
  between?: () => void;
}

/**
 * Run `read` on freshly opened images until shared_info's arch fields are the same before and after it and
 * the generation is even. Returns the value and the attempts used.
 */
export function readConsistently<T>(open: () => LiveDomainImage, read: (img: LiveDomainImage) => T, opts: ConsistentReadOptions = {}): { value: T; attempts: number; img: LiveDomainImage } {
  const max = opts.attempts ?? DEFAULT_ATTEMPTS;
  let last = '';
  let label = 'domain';
  for (let attempt = 1; attempt <= max; attempt++) {
    if (attempt > 1) opts.between?.();
    const img = open();
    label = img.label;
    try {
      const odd = archChange(img.arch, img.arch);
      if (odd) {
        last = odd;
        continue;
      }
      const value = read(img);
      const change = archChange(img.arch, img.currentArch());
      if (change === null) return { value, attempts: attempt, img };
      last = change;
    } finally {
      img.close();
    }
  }
  throw new InconsistentReadError(`${label}: could not get a consistent read in ${max} attempts (last: ${last}); retry, or use --pause`, max);
}

/** The addon calls a pause guard needs. */
export interface Pauser {
  pause(): void;
  unpause(): void;
}

/** How long the event loop keeps polling after a paused read (from its first turn) for a pending SIGINT/SIGTERM. */
const SIGNAL_GRACE_MS = 50;

/** Unpause callbacks of the reads holding a domain paused now (SIGINT/SIGTERM runs them before exiting). */
const held = new Set<() => void>();
let signalsInstalled = false;

/**
 * One handler for the life of the process: a signal unpauses whatever is still paused and ends the run with
 * 130/143. The read is synchronous, so a signal that comes during it is dispatched right after it; the
 * handler is never removed, because that dispatch may come after the read's own unpause (then it only exits).
 */
function installSignalHandlers(): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  const onSignal = (signal: NodeJS.Signals): void => {
    const paused = held.size;
    for (const release of [...held]) release();
    process.stderr.write(`p2m-audit: ${signal}: stopped; ${paused ? 'domain unpaused' : 'no domain is left paused'}\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/**
 * Run `fn` with the domain paused; unpause exactly once afterwards — also when `fn` throws, and on SIGINT /
 * SIGTERM (then exit 130 / 143). An unpause that fails because the domain is gone is ignored.
 */
export function withPause<T>(p: Pauser, fn: () => T): T {
  installSignalHandlers();
  p.pause();
  let paused = true;
  const release = (): void => {
    if (!paused) return;
    paused = false;
    held.delete(release);
    try {
      p.unpause();
    } catch {
      // the domain died meanwhile: nothing is left paused
    }
  };
  held.add(release);
  try {
    return fn();
  } finally {
    release();
    // keep the event loop alive a moment once the caller's synchronous work (the report) is done, so that a
    // signal received during the read is dispatched: libuv hands it over when the loop polls with a timer
    // still pending. A timer set here already expired when that work outlasted it, and the loop exited without
    // dispatching (exit 0 instead of 130 on the real host; the same with setImmediate alone), so the timer is
    // set from the first loop turn
    setImmediate(() => setTimeout(() => undefined, SIGNAL_GRACE_MS));
  }
}

/** A one-line error for a bad --attempts value. */
export function checkAttempts(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 100) throw new InputError(`--attempts ${n}: expected a whole number from 1 to 100`);
  return n;
}
