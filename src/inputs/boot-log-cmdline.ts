// Command lines in a boot log: Xen's "Command line: %s" (xen/arch/x86/setup.c; " -- " dom0 extras cut off), Linux's
// "Command line:" / "Kernel command line:" (arch/x86/kernel/setup.c, init/main.c); dom0_mem= and mem= on them.
import { InputError } from '../common/errors.js';
import { parseDom0Mem } from './dom0-mem.js';
import type { Sourced } from './boot-log.js';
import { firstLine, lineAt, type LogLine, sourced } from './boot-log-lines.js';

const CMDLINE_RE = /^(\s*Command line:\s?)(.*)$/;
export const KERNEL_CMDLINE_RE = /^(\s*Kernel command line:\s?)(.*)$/;
export const CMDLINE_START_RE = /^(?:Kernel )?Command line:/;
/** Options only Xen knows (xen-command-line.pandoc): a bare "Command line:" with one of these is Xen's. */
const XEN_ONLY_OPTION_RE =
  /(?:^|\s)(?:dom0_mem|dom0_max_vcpus|dom0_vcpus_pin|dom0|loglvl|guest_loglvl|com[1-4]|conring_size|console_timestamps|sync_console|ucode|smt|sched|cpufreq|no-real-mode|x2apic_phys|spec-ctrl|hap_1gb|altp2m)(?:=|\s|$)/;

export interface Located {
  value: string;
  /** offset of `value` in the log line's `shown` */
  at: number;
  log: LogLine;
}

export function located(re: RegExp, l: LogLine): Located | null {
  const m = re.exec(l.body);
  if (!m) return null;
  return { value: m[2]!.trim(), at: l.bodyAt + m[1]!.length, log: l };
}

/** Whose "Command line:" is this? (XEN) lines are Xen's, dmesg/kernel lines Linux's; bare ones by their options. */
function cmdlineOwner(l: LogLine, value: string): 'xen' | 'linux' | null {
  if (l.origin === 'xen') return 'xen';
  if (l.origin === 'linux') return 'linux';
  if (l.origin === 'guest') return null;
  return XEN_ONLY_OPTION_RE.test(value) ? 'xen' : 'linux';
}

interface OptionToken {
  value: string;
  /** offset of the token in the command line */
  at: number;
}

/** Every `key=value` token of a command line (whitespace separated, exact key, as Xen and Linux parse them). */
function optionTokens(cmdline: string, key: string): OptionToken[] {
  const out: OptionToken[] = [];
  const re = /\S+/g;
  for (let m = re.exec(cmdline); m !== null; m = re.exec(cmdline)) {
    if (m[0].startsWith(`${key}=`)) out.push({ value: m[0].slice(key.length + 1), at: m.index });
  }
  return out;
}

export function dom0MemOf(xen: Located | null, source: string, notes: string[]): Sourced<string> | null {
  if (!xen) {
    notes.push("Xen's command line is not in the log: dom0_mem unknown (give `xl dmesg` or the serial console)");
    return null;
  }
  const tokens = optionTokens(xen.value, 'dom0_mem');
  if (tokens.length === 0) {
    notes.push(
      "no dom0_mem= on Xen's command line: Xen applies CONFIG_DOM0_MEM if its build set one (Kconfig, 4.12+), " +
        'else dom0 gets avail - min(avail/16, 128 MiB) pages and d->max_pages = UINT_MAX (dom0_compute_nr_pages)',
    );
    return null;
  }
  const value = tokens.map((t) => t.value).join(',');
  const loc = { at: xen.at + tokens[0]!.at, log: xen.log };
  if (tokens.length > 1) notes.push(`dom0_mem= given ${tokens.length} times; Xen parses each in turn, taken as "${value}"`);
  try {
    parseDom0Mem(value);
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    throw new InputError(`${source}:${lineAt(xen.log, loc.at)}: ${err.message}`);
  }
  return sourced(value, loc);
}

/** Linux memparse's size suffixes, each a further shift by 10. */
const MEMPARSE_SUFFIXES = 'kmgtpe';

/** simple_strtoull(s, NULL, 0)'s number forms: 0x hex, 0-prefixed octal, decimal. */
function cNumber(digits: string): bigint {
  if (/^0x/i.test(digits)) return BigInt(digits);
  return digits.length > 1 && digits.startsWith('0') ? BigInt(`0o${digits.slice(1)}`) : BigInt(digits);
}

/** Linux memparse: a number (0x hex, 0 octal, decimal) with an optional K, M, G, T, P or E suffix. */
export function memparse(text: string): bigint | null {
  const m = /^(0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*)([kmgtpe])?$/i.exec(text);
  if (!m) return null;
  const steps = m[2] ? MEMPARSE_SUFFIXES.indexOf(m[2].toLowerCase()) + 1 : 0;
  return cNumber(m[1]!) << (10n * BigInt(steps));
}

export function kernelMemOf(kernel: Located | null, notes: string[]): Sourced<number> | null {
  if (!kernel) return null;
  const tokens = optionTokens(kernel.value, 'mem');
  const last = tokens[tokens.length - 1];
  if (!last) return null;
  const loc = { at: kernel.at + last.at, log: kernel.log };
  const bytes = memparse(last.value);
  if (bytes === null || bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    notes.push(`kernel mem=${last.value} (line ${lineAt(kernel.log, loc.at)}) is not a size; ignored`);
    return null;
  }
  return sourced(Number(bytes), loc);
}

/** What the pass over the lines collects from "Command line:" lines. */
export interface CmdlineScan {
  xenCmd: Located | null;
  kernelCmd: Located | null;
}

export function scanCmdline(scan: CmdlineScan, l: LogLine, notes: string[]): boolean {
  const c = located(CMDLINE_RE, l);
  if (!c) return false;
  const owner = cmdlineOwner(l, c.value);
  if (owner === null) return true;
  if (l.origin === 'plain') notes.push(`line ${firstLine(l)}: "Command line:" without a console prefix taken as ${owner === 'xen' ? "Xen's" : "the kernel's"}`);
  const slot = owner === 'xen' ? 'xenCmd' : 'kernelCmd';
  const cur = scan[slot];
  if (!cur) scan[slot] = c;
  else if (cur.value !== c.value) notes.push(`${owner === 'xen' ? 'Xen' : 'kernel'} command line at line ${firstLine(l)} differs from line ${firstLine(cur.log)}; using line ${firstLine(cur.log)}`);
  return true;
}
