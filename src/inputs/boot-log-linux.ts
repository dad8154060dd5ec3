// Linux's Xen PV memory-setup messages in a boot log (arch/x86/xen/setup.c, p2m.c, arch/x86/kernel/e820.c, setup.c,
// init/version.c; v3.8.13 / v3.18 / v4.4 / v4.19 / v6.1): pages released, remapped, set 1-1; p2m area; last_pfn; versions.
import type { BootMessages, Sourced } from './boot-log.js';
import { KERNEL_CMDLINE_RE, type Located, located } from './boot-log-cmdline.js';
import { keepFirst, type LogLine, onLine } from './boot-log-lines.js';

// Linux's lines.
const LINUX_XEN_VERSION_RE = /^Xen version: (\S+)/;
const LINUX_VERSION_RE = /^Linux version (\S+)/;
export const RELEASED_RE = /^Released (\d+) page\(s\)$/;
export const REMAPPED_RE = /^Remapped (\d+) page\(s\)(?:, last_pfn=\d+)?$/;
export const IDENTITY_RE = /^Set (\d+) page\(s\) to 1-1 mapping$/;
/** 3.x "Released %lu pages of unused memory"; 2.6.3x printed it in lower case. */
export const RELEASED_38_RE = /^released (\d+) pages of unused memory$/i;
export const P2M_AREA_RE = /^p2m virtual area at .+, size is ([0-9a-f]+)$/i;
export const LAST_PFN_RE = /^(?:e820: )?last_pfn = (0x[0-9a-f]+) max_arch_pfn = 0x[0-9a-f]+$/i;

/** What the pass over the lines collects from Linux's messages. */
export interface LinuxScan {
  kernelCmdFallback: Located | null;
  kernelVersion: Sourced<string> | null;
  xenVersionFromLinux: Sourced<string> | null;
  messages: BootMessages;
}

function keepMessage(msgs: BootMessages, key: Exclude<keyof BootMessages, 'lastPfn'>, v: Sourced<number>, notes: string[]): void {
  msgs[key] = keepFirst(msgs[key], v, `"${v.text.trim()}"`, notes);
}

export function scanLinuxLine(scan: LinuxScan, l: LogLine, notes: string[]): void {
  const t = l.body.trim();
  const msgs = scan.messages;
  const num = (m: RegExpExecArray, radix = 10) => onLine(parseInt(m[1]!, radix), l);
  let m: RegExpExecArray | null;
  if ((m = RELEASED_RE.exec(t))) keepMessage(msgs, 'released', num(m), notes);
  else if ((m = REMAPPED_RE.exec(t))) keepMessage(msgs, 'remapped', num(m), notes);
  else if ((m = IDENTITY_RE.exec(t))) keepMessage(msgs, 'identity', num(m), notes);
  else if ((m = RELEASED_38_RE.exec(t))) keepMessage(msgs, 'releasedPages38', num(m), notes);
  else if ((m = P2M_AREA_RE.exec(t))) keepMessage(msgs, 'p2mAreaSize', num(m, 16), notes);
  else if ((m = LAST_PFN_RE.exec(t))) msgs.lastPfn.push(onLine(Number(BigInt(m[1]!)), l));
  else if ((m = LINUX_VERSION_RE.exec(t))) {
    scan.kernelVersion = keepFirst(scan.kernelVersion, onLine(m[1]!, l), 'Linux version', notes);
  } else if ((m = LINUX_XEN_VERSION_RE.exec(t))) {
    scan.xenVersionFromLinux ??= onLine(m[1]!, l);
  } else {
    const k = located(KERNEL_CMDLINE_RE, l);
    if (k) scan.kernelCmdFallback ??= k;
  }
}
