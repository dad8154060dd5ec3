// Command-line options of the bench: defaults, --quick sizes, the sections, the usage text and parseArgs.
import { GiB } from './common.js';

const DEFAULT_SIZES = [64, 256, 1024];
const QUICK_SIZES = [4, 16];
/** Save-stream guest sizes wanted by default; a size whose stream does not fit on the temp dir's filesystem is replaced by STREAM_FALLBACK_GiB. */
export const DEFAULT_STREAM_SIZES = [16, 256];
export const STREAM_FALLBACK_GiB = 64;
const QUICK_STREAM_SIZES = [1, 4];
/** dom0 crash-dump sizes (section kdump, bench/dom0-kdump.ts): issue 13's 64 and 256 GiB. */
const DEFAULT_KDUMP_SIZES = [64, 256];
const QUICK_KDUMP_SIZES = [4];
/** Space left free on the temp dir's filesystem for everybody else while a stream exists. */
export const DISK_RESERVE_BYTES = 6 * 2 ** 30;
/** Files in the scan corpus. */
const DEFAULT_CORPUS_FILES = 2000;
const QUICK_CORPUS_FILES = 200;

const DEFAULT_REPS = 3;
export const SECTIONS = ['p2ms', 'stream', 'real', 'corpus', 'fleet', 'cold', 'kdump'] as const;
export type Section = (typeof SECTIONS)[number];

export interface Options {
  sizes: number[];
  /** 'auto': DEFAULT_STREAM_SIZES with the fallback; a list: exactly these (a size that does not fit is skipped) */
  streamSizes: number[] | 'auto';
  /** dom0 kdump sizes in GiB (section kdump) */
  kdumpSizes: number[];
  corpusFiles: number;
  sections: Set<Section>;
  reps: number;
  cpuProf: boolean;
  rssMethod: 'auto' | 'time' | 'hook';
  keep: boolean;
}

export class UsageError extends Error {}

export const USAGE = `usage: npm run bench -- [--sizes LIST] [--stream-sizes LIST] [--kdump-sizes LIST] [--corpus N] [--only LIST] [--quick] [--reps N] [--cpu-prof] [--rss auto|time|hook] [--keep]
  --sizes LIST         .p2ms guest sizes in GiB (default ${DEFAULT_SIZES.join(',')})
  --stream-sizes LIST  save-stream guest sizes in GiB (default ${DEFAULT_STREAM_SIZES.join(',')}; a default size whose stream
                       does not fit on the temp dir's filesystem, keeping ${DISK_RESERVE_BYTES / GiB} GiB free, is replaced by ${STREAM_FALLBACK_GiB};
                       a size given here that does not fit is skipped)
  --kdump-sizes LIST   dom0 crash-dump sizes in GiB (default ${DEFAULT_KDUMP_SIZES.join(',')}): a sparse ELF vmcore and a zstd
                       makedumpfile dump of each, audited against cat (section kdump)
  --corpus N           files in the scan corpus (default ${DEFAULT_CORPUS_FILES})
  --only LIST          sections to run, of ${SECTIONS.join(',')} (default all)
  --quick              smoke run: --sizes ${QUICK_SIZES.join(',')} --stream-sizes ${QUICK_STREAM_SIZES.join(',')} --kdump-sizes ${QUICK_KDUMP_SIZES.join(',')} --corpus ${QUICK_CORPUS_FILES}
  --reps N             timed repetitions per figure, median reported (default ${DEFAULT_REPS})
  --cpu-prof           also run one audit child (--jobs 2) of the largest .p2ms size, the first stream and the real
                       save file under node --cpu-prof and summarise the top frames per thread
  --rss M              peak-RSS method: time = /usr/bin/time -f %M, hook = process.resourceUsage().maxRSS
                       reported by an --import hook in the child, auto = time when it works (default)
  --keep               keep the temp dir (its path is printed; streams are deleted anyway)`;

function parseGiBList(name: string, text: string): number[] {
  const list = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const sizes = list.map(Number);
  if (sizes.length === 0 || sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 65536)) {
    throw new UsageError(`${name}: expected a comma-separated list of whole GiB from 1 to 65536, got "${list.join(',')}"`);
  }
  return [...new Set(sizes)].sort((x, y) => x - y);
}

export function parseArgs(argv: string[]): Options {
  const o: Options = {
    sizes: DEFAULT_SIZES,
    streamSizes: 'auto',
    kdumpSizes: DEFAULT_KDUMP_SIZES,
    corpusFiles: DEFAULT_CORPUS_FILES,
    sections: new Set(SECTIONS),
    reps: DEFAULT_REPS,
    cpuProf: false,
    rssMethod: 'auto',
    keep: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const inline = a.startsWith('--') && eq > 0 ? a.slice(eq + 1) : undefined;
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`${name} needs a value`);
      return v;
    };
    switch (name) {
      case '--sizes':
        o.sizes = parseGiBList(name, value());
        break;
      case '--stream-sizes':
        o.streamSizes = parseGiBList(name, value());
        break;
      case '--kdump-sizes':
        o.kdumpSizes = parseGiBList(name, value());
        break;
      case '--corpus': {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 1 || n > 1_000_000) throw new UsageError('--corpus: expected a whole number of files from 1 to 1000000');
        o.corpusFiles = n;
        break;
      }
      case '--only': {
        const list = value().split(',').map((s) => s.trim()).filter((s) => s !== '');
        const bad = list.filter((x) => !(SECTIONS as readonly string[]).includes(x));
        if (list.length === 0 || bad.length) throw new UsageError(`--only: expected sections from ${SECTIONS.join(',')}, got "${list.join(',')}"`);
        o.sections = new Set(list as Section[]);
        break;
      }
      case '--quick':
        o.sizes = QUICK_SIZES;
        o.streamSizes = QUICK_STREAM_SIZES;
        o.kdumpSizes = QUICK_KDUMP_SIZES;
        o.corpusFiles = QUICK_CORPUS_FILES;
        break;
      case '--reps': {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 1 || n > 50) throw new UsageError('--reps: expected a whole number from 1 to 50');
        o.reps = n;
        break;
      }
      case '--cpu-prof':
        o.cpuProf = true;
        break;
      case '--rss': {
        const m = value();
        if (m !== 'auto' && m !== 'time' && m !== 'hook') throw new UsageError('--rss: expected auto, time or hook');
        o.rssMethod = m;
        break;
      }
      case '--keep':
        o.keep = true;
        break;
      case '-h':
      case '--help':
        process.stdout.write(USAGE + '\n');
        process.exit(0);
        break;
      default:
        throw new UsageError(`unknown option ${a}`);
    }
  }
  return o;
}
