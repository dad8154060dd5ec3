// What `p2m-audit … --help` and a usage error tell the user (docs/exit-codes.md): the ranges numeric options
// accept, each command's examples and exit codes, and one "p2m-audit: " prefix for commander's own errors.
// Loads nothing but commander, so --help stays cheap (docs/bench-notes.md "Cold start"); the codes repeat
// audit/verdict.ts's EXIT_* constants, and test/help-messages.test.ts checks them against it.
import os from 'node:os';
import { type Command, InvalidArgumentError, Option } from 'commander';

/** The prefix of every error line p2m-audit prints (src/cli.ts, src/commands/*). */
export const ERROR_PREFIX = 'p2m-audit: ';

/** --jobs: worker threads, 1 … JOBS_MAX. */
export const JOBS_MIN = 1;
export const JOBS_MAX = 256;
export const JOBS_RANGE_TEXT = `${JOBS_MIN}–${JOBS_MAX}`;

export function parseJobs(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < JOBS_MIN || n > JOBS_MAX) throw new InvalidArgumentError(`expected a whole number of worker threads from ${JOBS_MIN} to ${JOBS_MAX}`);
  return n;
}

/** The --jobs option of a command that starts worker threads: `what` ends its help line; default: one per CPU. */
export function jobsOption(what: string): Option {
  return new Option('--jobs <n>', what).argParser(parseJobs).default(Math.max(1, os.availableParallelism()));
}

/** --seed: a 32-bit unsigned seed. */
export const SEED_MAX = 0xffffffff;
export const SEED_RANGE_TEXT = `0–${SEED_MAX}`;

export function parseSeed(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > SEED_MAX) throw new InvalidArgumentError(`expected an integer seed from 0 to ${SEED_MAX}`);
  return n;
}

/**
 * emulate without --dom0-mem: Xen's dom0_compute_nr_pages with no dom0_mem= (inputs/dom0-mem.ts
 * DOM0_RESERVE_DIVISOR, DOM0_RESERVE_MAX_PAGES, UINT_MAX).
 */
export const DOM0_MEM_DEFAULT_TEXT = "default: the log's dom0_mem=, else Xen's own: all available RAM less min(1/16, 128 MiB), max pages UINT_MAX";

/** Exit codes (audit/verdict.ts EXIT_*; 4 and 130 are src/cli.ts's and scan's). */
const INPUT = '2  usage, input or output error (nothing on stdout; one line on stderr)';
const INTERNAL = '4  internal error (a bug in p2m-audit)';
const VERDICT = ['0  clean: benign differences only', '1  fatal: RAM the toolstack would lose or misread', '3  warnings only', '5  partial: a report was printed, but part of the input could not be read or checked'];

interface CommandHelp {
  /** what the options do not say, printed before the examples */
  notes?: string[];
  examples: string[];
  exitCodes: string[];
}

/** Per command, keyed by its name (nested ones as "fleet submit"). */
export const COMMAND_HELP: Readonly<Record<string, CommandHelp>> = {
  emulate: {
    examples: [
      'p2m-audit emulate --profile linux-3.8.13-backport --e820 host-e820.txt --dom0-mem 1g,max:1g -o dom0.p2ms',
      'p2m-audit emulate --from-log xl-dmesg.txt --compare',
      'p2m-audit emulate --role domU --xl-config guest.cfg --profile linux-6.1 --audit',
    ],
    exitCodes: ['0  written / predicted (with --compare: every predicted message matches the log)', '1  --compare: a predicted boot message differs from the log', '   with --audit: the audit\'s code (0, 1, 3 or 5)', INPUT, INTERNAL],
  },
  audit: {
    examples: ['p2m-audit audit guest.save', 'p2m-audit audit guest.core --system-map System.map-6.1.0 --svg guest.svg', 'p2m-audit audit --domain guest1 --pause --json'],
    exitCodes: [...VERDICT.slice(0, 2), VERDICT[2] + ' (--domain: also no consistent read after --attempts)', VERDICT[3], INPUT, INTERNAL],
  },
  p2m: {
    notes: [
      "Page types: xen-mfndump's \" (type 0x…) L1…\" suffix is printed for a save file or migration stream (each",
      'PAGE_DATA record carries its pages\' XEN_DOMCTL_PFINFO types) and for --domain. An xl dump-core (xc_core) file',
      'records no page types (.xen_p2m holds pfn/gmfn pairs only; docs/spec-notes/xc-core.md), so its lines end after the mfn.',
    ],
    examples: ['p2m-audit p2m guest.save', 'p2m-audit p2m guest.core --view guest --system-map System.map-6.1.0', 'p2m-audit p2m --domain guest1'],
    exitCodes: ['0  printed (also when stdout is closed early: … | head)', '5  partial: leaf pages of the view are not in the image ("not in the image" lines)', INPUT, INTERNAL],
  },
  'restore-check': {
    examples: ['p2m-audit restore-check guest.save', 'p2m-audit restore-check stream.libxc --json'],
    exitCodes: ['0  restore would carry every RAM pfn', '1  RAM pfns the stream does not carry, or restore itself fails', '5  partial: nothing lost, but some pfns could not be checked', INPUT, INTERNAL],
  },
  inspect: {
    examples: ['p2m-audit inspect guest.core', 'p2m-audit inspect guest.save --system-map System.map-6.1.0 --json'],
    exitCodes: ['0  shown', INPUT, INTERNAL],
  },
  scan: {
    examples: ["p2m-audit scan /var/lib/xen/dump '/srv/saves/**/*.save'", 'p2m-audit scan corpus/ --out scan.jsonl --resume', 'p2m-audit scan --domains all'],
    exitCodes: [...VERDICT.slice(0, 3), '5  partial: a file failed or an audit exited 5', '130  stopped by Ctrl-C (results so far, then the summary)', '   precedence: 130, 5, 1, 3, 0', INPUT, INTERNAL],
  },
  sweep: {
    examples: ['p2m-audit sweep --e820 host-e820.txt --dom0-mem 512m..64g', 'p2m-audit sweep --e820 host-e820.txt --dom0-mem 1g..8g:512m --profile linux-3.8.13-backport --csv'],
    exitCodes: ['0  every cell clean', '1  a cell is fatal', '3  warnings only', '5  partial: some cells failed (every cell failing: 2)', INPUT, INTERNAL],
  },
  profiles: {
    examples: ['p2m-audit profiles', 'p2m-audit profiles --json'],
    exitCodes: ['0  listed', INPUT, INTERNAL],
  },
  fleet: {
    examples: ['p2m-audit fleet submit --name corpus /srv/saves', 'p2m-audit fleet worker --jobs 8', 'p2m-audit fleet results --name corpus --wait'],
    exitCodes: ['0  submit, status: done; worker: stopped by SIGTERM or SIGINT', '   results: as scan (0, 1, 3, 5)', '143  worker: a second signal (stops at once)', INPUT, INTERNAL],
  },
};

/** Rows in the order of their code; a row without one (a continuation) stays after the row above it. */
function byCode(rows: string[]): string[] {
  let code = -1;
  const keyed = rows.map((r, i) => {
    const m = /^(\d+) /.exec(r);
    if (m) code = Number(m[1]);
    return { r, code, i };
  });
  return keyed.sort((a, b) => a.code - b.code || a.i - b.i).map((k) => k.r);
}

/** The "Examples:" and "Exit codes:" block after a command's options. */
export function commandHelpText(name: string): string {
  const h = COMMAND_HELP[name];
  if (!h) return '';
  const notes = h.notes ? `\n${h.notes.join('\n')}\n` : '';
  return `${notes}\nExamples:\n${h.examples.map((e) => `  ${e}`).join('\n')}\n\nExit codes (docs/exit-codes.md):\n${byCode(h.exitCodes).map((c) => `  ${c}`).join('\n')}\n`;
}

/** Add the block to every command of the program that has one. */
export function addCommandHelp(program: Command): void {
  for (const c of program.commands) {
    const text = commandHelpText(c.name());
    if (text) c.addHelpText('after', text);
  }
}

/** commander's own errors ("error: unknown option …") in p2m-audit's style: "p2m-audit: unknown option …". */
export function outputError(str: string, write: (s: string) => void): void {
  write(str.replace(/^error: /, ERROR_PREFIX));
}
