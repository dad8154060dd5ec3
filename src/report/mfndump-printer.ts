// The entry lines of xen-project/xen tools/misc/xen-mfndump.c dump_p2m_func (RELEASE-4.17.0): "  pfn=0x%lx ==>
// mfn=0x%lx" plus the page type, with the output bounded by what the image holds (README "p2m"):
//  * a run of pfns with no RAM — INVALID_P2M_ENTRY (~0) or IDENTITY_FRAME(pfn) entries, one after the other —
//    is printed line by line while it is shorter than one p2m leaf (P2M_PER_PAGE pfns), else as ONE line
//    "  pfn=0xA..0xB ==> mfn=… (N pfns, …)" (a shared p2m_missing leaf, or a header claiming 2^52 pfns, would
//    otherwise print gigabytes from a few bytes of the file);
//  * pfns whose leaf page the image does not hold are one "==> not in the image" line per run (counted:
//    the command's exit code says the output is partial);
//  * a leaf page with RAM entries met again (the same frame under other pfns) is printed once; each later
//    run of it is one "==> the same leaf page as …" line.
// Range lines are not "pfn=0x… ==> mfn=0x…" lines (".." follows the pfn), so a parser of those skips them.
// No BigInt and no allocation per entry; only the range lines (a few per run) build strings from bigints.
import { IDENTITY_FRAME_HI, INVALID_P2M_ENTRY_WORD, P2M_ENTRY_SIZE, P2M_PER_PAGE, hex } from '../xen/abi.js';

/** XEN_DOMCTL_PFINFO_* type nibbles (public/domctl.h, shifted down by XEN_DOMCTL_PFINFO_LTAB_SHIFT). */
const PFINFO_NOTAB = 0x0;
const PFINFO_L1TAB = 0x1;
const PFINFO_L4TAB = 0x4;
const PFINFO_LPINTAB = 0x8;
const PFINFO_BROKEN = 0xd;
const PFINFO_XALLOC = 0xe;
const PFINFO_XTAB = 0xf;
/** Level bits of a pinned type (pinned L1..L4 = 0x9..0xc). */
const PFINFO_LEVEL_MASK = 0x7;
const WORD_BYTES = 4;
const WORD_SCALE = 2 ** 32;
const HEX_WORD_DIGITS = 8;
/** Runs of no-RAM pfns at least this long are one line: one p2m leaf's worth. */
export const FOLD_MIN_PFNS = P2M_PER_PAGE;

/** u64 (lo, hi) as lowercase hex without a prefix (what %lx prints). */
export function hexWords(lo: number, hi: number): string {
  return hi === 0 ? lo.toString(16) : hi.toString(16) + lo.toString(16).padStart(HEX_WORD_DIGITS, '0');
}

/** The text xen-mfndump prints after the mfn for a type nibble. */
export function typeSuffix(type: number): string {
  let kind: string;
  if (type === PFINFO_NOTAB) kind = '';
  else if (type >= PFINFO_L1TAB && type <= PFINFO_L4TAB) kind = ` L${type}`;
  else if (type >= (PFINFO_LPINTAB | PFINFO_L1TAB) && type <= (PFINFO_LPINTAB | PFINFO_L4TAB)) kind = ` pinned L${type & PFINFO_LEVEL_MASK}`;
  else if (type === PFINFO_BROKEN) kind = ' broken';
  else if (type === PFINFO_XALLOC) kind = ' xalloc';
  else if (type === PFINFO_XTAB) kind = ' invalid';
  else kind = ' <invalid type>';
  return ` (type ${hex(type)})${kind}`;
}

/** What a run of pfns is: entries without RAM (foldable), or pfns the image cannot answer for. */
const Run = { NONE: 0, INVALID: 1, IDENTITY: 2, ABSENT: 3 } as const;
type Run = (typeof Run)[keyof typeof Run];

/** IDENTITY_FRAME(pfn) = IDENTITY_FRAME_BIT | pfn, as (lo, hi) words. */
function isIdentityOf(pfn: number, lo: number, hi: number): boolean {
  return lo === pfn % WORD_SCALE && hi === ((IDENTITY_FRAME_HI | Math.floor(pfn / WORD_SCALE)) >>> 0);
}

/** "0x40000..0x7ffff" for pfns [start, end) (end exclusive, possibly beyond 2^53 as a bigint). */
function span(start: number | bigint, end: number | bigint): string {
  return `0x${start.toString(16)}..0x${(BigInt(end) - 1n).toString(16)}`;
}

export class MfndumpPrinter {
  private run: Run = Run.NONE;
  private runStart = 0;
  private runLen = 0;
  /** the absent leaves' description, for the ABSENT run line */
  private runWhy = '';
  /** pfns printed as "not in the image" */
  notHeld = 0;
  /** leaf frame → the pfns it was first printed for, and whether it holds RAM entries */
  private readonly seen = new Map<number, { base: number; count: number; ram: boolean }>();
  /** a pending "the same leaf page as" run: frame and pfns */
  private repeatFrame = -1;
  private repeatStart = 0;
  private repeatLen = 0;

  constructor(
    private readonly out: (line: string) => void,
    private readonly pfnType: ((pfn: number) => number | undefined) | undefined,
  ) {}

  private line(pfn: number, lo: number, hi: number): void {
    const t = this.pfnType?.(pfn);
    this.out(`  pfn=0x${pfn.toString(16)} ==> mfn=0x${hexWords(lo, hi)}${t === undefined ? '' : typeSuffix(t)}`);
  }

  /** One pfn's entry: printed, or added to the run of no-RAM entries it continues. */
  entry(pfn: number, lo: number, hi: number): void {
    const kind = lo === INVALID_P2M_ENTRY_WORD && hi === INVALID_P2M_ENTRY_WORD ? Run.INVALID : isIdentityOf(pfn, lo, hi) ? Run.IDENTITY : Run.NONE;
    if (kind !== Run.NONE) {
      this.extend(kind, pfn, 1);
      return;
    }
    this.flush();
    this.line(pfn, lo, hi);
  }

  /** `count` pfns from `start` that all have INVALID_P2M_ENTRY (or IDENTITY_FRAME(pfn)) entries, in O(1). */
  noRam(kind: 'invalid' | 'identity', start: number, count: number): void {
    if (count > 0) this.extend(kind === 'invalid' ? Run.INVALID : Run.IDENTITY, start, count);
  }

  /** `count` pfns from `start` whose entries the image does not hold (`why` names what is absent). */
  absent(start: number, count: number, why: string): void {
    if (count <= 0) return;
    if (this.run === Run.ABSENT && start === this.runStart + this.runLen) {
      this.runLen += count;
      return;
    }
    this.flush();
    [this.run, this.runStart, this.runLen, this.runWhy] = [Run.ABSENT, start, count, why];
  }

  private extend(kind: Run, start: number, count: number): void {
    if (this.run === kind && start === this.runStart + this.runLen) {
      this.runLen += count;
      return;
    }
    this.flush();
    [this.run, this.runStart, this.runLen] = [kind, start, count];
  }

  /** Entries of one leaf page (`page`: its 4096 bytes), slots 0..count−1, for pfns base.. */
  leaf(page: Buffer, base: number, count: number): void {
    for (let i = 0; i < count; i++) {
      const o = i * P2M_ENTRY_SIZE;
      this.entry(base + i, page.readUInt32LE(o), page.readUInt32LE(o + WORD_BYTES));
    }
  }

  /**
   * The leaf page at `frame` for pfns base..base+count−1: read from the image (`read`), printed; absent → one
   * "not in the image" run; a page with RAM entries printed before → one "the same leaf page as" run.
   */
  leafFrame(frame: number, base: number, count: number, read: (frame: number) => Buffer | null, what: string): void {
    const first = this.seen.get(frame);
    if (first?.ram) {
      this.repeat(frame, base, count);
      return;
    }
    const page = frame >= 0 ? read(frame) : null;
    if (page === null) {
      this.absent(base, count, `${what} (frame ${frame >= 0 ? hex(frame) : 'unknown'}) is absent`);
      return;
    }
    if (!first) this.seen.set(frame, { base, count, ram: hasRam(page, base, count) });
    this.leaf(page, base, count);
  }

  private repeat(frame: number, base: number, count: number): void {
    if (this.repeatFrame === frame && base === this.repeatStart + this.repeatLen) {
      this.repeatLen += count;
      return;
    }
    this.flush();
    [this.repeatFrame, this.repeatStart, this.repeatLen] = [frame, base, count];
  }

  /** Print the pending run (line by line when short and foldable, else as one range line). */
  flush(): void {
    if (this.repeatFrame >= 0) {
      const f = this.seen.get(this.repeatFrame)!;
      this.out(`  pfn=${span(this.repeatStart, this.repeatStart + this.repeatLen)} ==> the same leaf page as pfn=${span(f.base, f.base + f.count)} (frame ${hex(this.repeatFrame)}, printed once; ${this.repeatLen} pfns)`);
      this.repeatFrame = -1;
    }
    const [run, start, len] = [this.run, this.runStart, this.runLen];
    if (run === Run.NONE) return;
    this.run = Run.NONE;
    this.runLen = 0;
    if (run === Run.ABSENT) {
      this.notHeld += len;
      this.out(`  pfn=${span(start, start + len)} ==> not in the image (${len} pfns: ${this.runWhy})`);
    } else if (len < FOLD_MIN_PFNS) {
      for (let pfn = start; pfn < start + len; pfn++) {
        if (run === Run.INVALID) this.line(pfn, INVALID_P2M_ENTRY_WORD, INVALID_P2M_ENTRY_WORD);
        else this.line(pfn, pfn % WORD_SCALE, (IDENTITY_FRAME_HI | Math.floor(pfn / WORD_SCALE)) >>> 0);
      }
    } else {
      this.out(runLine(run === Run.INVALID ? 'invalid' : 'identity', start, start + len));
    }
  }

  /**
   * The pfns from `start` up to `end` (exclusive, a bigint: a header may claim up to 2^64) have
   * INVALID_P2M_ENTRY entries: joined to a pending INVALID run that ends at `start`, printed as one line.
   */
  invalidUpTo(start: number, end: bigint): void {
    if (end <= BigInt(start)) return;
    let from: number | bigint = start;
    if (this.run === Run.INVALID && this.runStart + this.runLen === start) {
      from = this.runStart;
      this.run = Run.NONE;
      this.runLen = 0;
    }
    this.flush();
    if (end - BigInt(from) < BigInt(FOLD_MIN_PFNS)) {
      this.noRam('invalid', Number(from), Number(end - BigInt(from)));
      this.flush();
      return;
    }
    this.out(runLine('invalid', from, end));
  }
}

function runLine(kind: 'invalid' | 'identity', start: number | bigint, end: number | bigint): string {
  const n = (BigInt(end) - BigInt(start)).toString();
  return kind === 'invalid'
    ? `  pfn=${span(start, end)} ==> mfn=0xffffffffffffffff (${n} pfns, INVALID_P2M_ENTRY)`
    : `  pfn=${span(start, end)} ==> mfn=IDENTITY_FRAME(pfn) (${n} pfns, 0x${IDENTITY_FRAME_HI.toString(16)}00000000 | pfn)`;
}

/** Does a leaf page map any of its pfns to RAM (an entry that is neither INVALID nor IDENTITY_FRAME(pfn))? */
function hasRam(page: Buffer, base: number, count: number): boolean {
  for (let i = 0; i < count; i++) {
    const o = i * P2M_ENTRY_SIZE;
    const lo = page.readUInt32LE(o);
    const hi = page.readUInt32LE(o + WORD_BYTES);
    if (!(lo === INVALID_P2M_ENTRY_WORD && hi === INVALID_P2M_ENTRY_WORD) && !isIdentityOf(base + i, lo, hi)) return true;
  }
  return false;
}
