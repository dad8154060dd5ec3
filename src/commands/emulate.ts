// `p2m-audit emulate`: gather the boot inputs (host map, profile, dom0_mem= or an xl config, kernel config)
// with where each came from, run the kernel emulator (src/emulate/kernel/boot.ts), write the guest in one of
// the formats, and optionally compare it with a boot log or audit it at once.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InputError } from '../common/errors.js';
import { type E820Entry } from '../inputs/e820.js';
import { writeSaveStream } from '../emulate/save-stream-writer.js';
import { formatSystemMap, SYMBOLS_BESIDE_SUFFIX } from '../formats/symbols.js';
import { writeOutputText } from '../formats/output-file.js';
import { writeXcCore } from '../emulate/dump-core-writer.js';
import { writeVmcore } from '../emulate/vmcore-writer.js';
import { writeKdumpCompressed, type KdumpWriteCodec } from '../emulate/kdump-compressed-writer.js';
import { dom0PagesChecked, parseDom0Mem } from '../inputs/dom0-mem.js';
import { checkXenHostMap, sanitizeE820 } from '../inputs/e820.js';
import { parseXlConfig } from '../inputs/xl-config.js';
import { buildDomUMemoryMap } from '../emulate/kernel/libxl-e820.js';
import { loadKconfig } from '../inputs/kconfig.js';
import { dom0PagesFromLog, parseBootLog, type BootLog } from '../inputs/boot-log.js';
import { compareBoot, renderComparison } from '../report/boot-comparison.js';
import { E820_RAM, hex } from '../xen/abi.js';
import { emulate } from '../emulate/kernel/boot.js';
import { findProfile, profileIds } from '../emulate/kernel/profiles.js';
import { writeEmulatedP2ms } from '../emulate/snapshot.js';
import { auditFile } from './audit.js';
import { checkOutputs, loadE820 } from './common.js';
import { readTextInput } from '../inputs/text-input.js';

/** The files `emulate` writes: the guest, and FILE.map beside it for the formats that carry no symbols. */
function outputsOf(out: string | undefined, format: string): string[] {
  if (!out) return [];
  return format === 'p2ms' ? [out] : [out, out + SYMBOLS_BESIDE_SUFFIX];
}

/** Refuse a bad -o (or its side file) before anything is read or emulated (formats/output-file.ts rules). */
function checkEmulateOutputs(o: EmulateOpts): void {
  checkOutputs(outputsOf(o.output, o.format), { inputs: [o.e820, o.fromLog, o.kconfig, o.xlConfig], force: o.force });
}

/** Write an emulated guest in one of the formats; symbols travel inside (.p2ms) or beside (FILE.map). */
async function writeGuest(img: Parameters<typeof writeEmulatedP2ms>[0], out: string, format: string, force: boolean, compression?: string): Promise<{ frames: number }> {
  const overwrite = { overwrite: force };
  let frames: number;
  switch (format) {
    case 'p2ms':
      return writeEmulatedP2ms(img, out, overwrite);
    case 'xc-core':
      frames = writeXcCore(img, out, overwrite).pages;
      break;
    case 'vmcore':
      frames = writeVmcore(img, out, overwrite).frames;
      break;
    case 'kdump-compressed':
      frames = (await writeKdumpCompressed(img, out, { ...overwrite, compression: compression as KdumpWriteCodec | undefined })).frames;
      break;
    case 'xl-save':
    case 'libxc-stream':
      frames = writeSaveStream(img, out, { wrapper: format === 'xl-save' ? 'xl' : 'none', ...overwrite }).pagesWithData;
      break;
    default:
      throw new InputError(`--format ${format}: expected p2ms, xc-core, xl-save, libxc-stream, vmcore or kdump-compressed`);
  }
  writeOutputText(out + SYMBOLS_BESIDE_SUFFIX, formatSystemMap(img.symbols), { force });
  return { frames };
}


export interface EmulateOpts {
  role: 'dom0' | 'domU';
  xlConfig?: string;
  profile?: string;
  e820?: string;
  fromLog?: string;
  compare?: boolean;
  dom0Mem?: string;
  nrPages?: number;
  maxPages?: number;
  seed: number;
  config: Record<string, string>;
  kconfig?: string;
  output?: string;
  format: string;
  /** --format kdump-compressed: the page codec (zlib, zstd, snappy, none) */
  compression?: string;
  force?: boolean;
  audit?: boolean;
  json?: boolean;
  jobs: number;
}

/** One emulator input and where it came from (printed, so every number can be traced). */
interface SourcedInput {
  what: string;
  value: string;
  from: string;
}

/** UINT_MAX: d->max_pages when dom0_mem= has no max: (dom0_build.c). */
const XEN_UINT_MAX = 0xffffffff;

/** Host RAM for machine frames when a domU is emulated without the host's map. */
function syntheticHost(guestE820: E820Entry[]): E820Entry[] {
  const end = Math.max(...guestE820.map((e) => e.addr + e.size));
  return [{ addr: 0, size: 2 * end + 256 * 2 ** 20, type: E820_RAM }];
}

/** emulate --role domU --xl-config FILE: libxl builds the guest's map from the config (and the host's, for e820_host). */
async function cmdEmulateDomU(o: EmulateOpts): Promise<number> {
  if (!o.xlConfig) throw new InputError('emulate --role domU needs --xl-config FILE (the guest\'s xl config: memory, maxmem, e820_host, pci)');
  checkEmulateOutputs(o);
  // --from-log: the host's boot log (its Xen RAM map, for e820_host), or with --compare the domU's own dmesg
  const log = o.fromLog ? parseBootLog(readTextInput(o.fromLog, 'boot-log'), o.fromLog, { hostMap: 'optional' }) : null;
  const guestLog = domUCompareLog(o, log);
  const profileId = o.profile ?? guestLog?.suggestedProfile ?? undefined;
  if (!profileId) throw new InputError('emulate --role domU: --profile is required' + (guestLog ? ` (${o.fromLog} has no "Linux version" line to choose one from)` : ''));
  const profile = findProfile(profileId);
  if (!profile) throw new InputError(`--profile ${profileId}: unknown profile; expected one of ${profileIds().join(', ')}`);
  const inputs: SourcedInput[] = [{ what: 'profile', value: profile.id, from: o.profile ? '--profile' : `${o.fromLog}:${guestLog!.kernelVersion!.line} (Linux ${guestLog!.kernelVersion!.value})` }];
  const cfg = parseXlConfig(readTextInput(o.xlConfig, 'xl-config'), o.xlConfig);
  let host: E820Entry[] | null = null;
  if (o.e820) {
    host = loadE820(o.e820);
    checkXenHostMap(host, o.e820);
    inputs.push({ what: 'host e820', value: `${host.length} entries`, from: o.e820 });
  } else if (log?.hostE820) {
    host = log.hostE820.value;
    checkXenHostMap(host, `${o.fromLog}:${log.hostE820.line}`);
    inputs.push({ what: 'host e820', value: `${host.length} entries (${log.mapKind})`, from: `${o.fromLog}:${log.hostE820.line}` });
  }
  const dm = buildDomUMemoryMap(cfg, host);
  const guestE820 = sanitizeE820(dm.guestE820);
  inputs.push({ what: 'guest e820', value: `${guestE820.length} entries (libxl, e820_host=${cfg.e820Host ? 1 : 0})`, from: o.xlConfig });
  const nrPages = o.nrPages ?? dm.nrPages;
  const maxPages = o.maxPages ?? dm.maxPages;
  inputs.push({ what: 'nr_pages', value: hex(nrPages), from: o.nrPages !== undefined ? '--nr-pages' : `${o.xlConfig}: memory = ${cfg.memory} MiB` });
  inputs.push({ what: 'max pages', value: hex(maxPages), from: o.maxPages !== undefined ? '--max-pages' : `${o.xlConfig}: memory + LIBXL_MAXMEM_CONSTANT` });
  const kconfig = o.kconfig ? loadKconfig(o.kconfig) : null;
  let guest;
  try {
    guest = emulate({ profile, hostE820: guestE820, machineE820: host ?? syntheticHost(guestE820), role: 'domU', nrPages, maxPages, seed: o.seed, kconfig, config: o.config, kernelMem: kernelMemInput(guestLog, o.fromLog, inputs) });
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`emulation of ${profile.id} (domU) failed: ${(e as Error).message}`);
  }
  inputs.push({ what: 'kernel config', value: Object.entries(guest.facts.config).map(([k, v]) => `${k}=${v}`).join(' ') || '(none)', from: o.kconfig ? `${o.kconfig} + --config` : 'profile defaults + --config' });
  return finishEmulate(o, profile.id, guest, inputs, nrPages, maxPages, guestLog ? compareBoot(guest.facts, guestLog) : null);
}

/**
 * The log a domU's prediction is compared with: its own dmesg. A host boot log (one with Xen's RAM map) only
 * gives the host map; comparing a domU with it would compare against dom0's messages.
 */
function domUCompareLog(o: EmulateOpts, log: BootLog | null): BootLog | null {
  if (!o.compare) {
    if (log && !log.hostE820) {
      throw new InputError(`${o.fromLog}: no Xen RAM map ('Xen-e820 RAM map:' / 'EFI RAM map:'): for a domU, --from-log is the host's boot log, or the domU's own dmesg together with --compare`);
    }
    return null;
  }
  if (!log) throw new InputError("emulate --role domU --compare needs --from-log FILE: the domU's own dmesg (dmesg inside the guest)");
  if (log.hostE820) {
    throw new InputError(
      `${o.fromLog}:${log.hostE820.line}: this is a host boot log (Xen's RAM map), not the domU's: --compare needs the domU's own dmesg; give the host map with --e820`,
    );
  }
  return log;
}

/** mem= on the kernel command line of the log (Linux parse_memopt), as an emulator input with where it came from. */
function kernelMemInput(log: BootLog | null, source: string | undefined, inputs: SourcedInput[]): number | null {
  const m = log?.kernelMem;
  if (!m) return null;
  inputs.push({ what: 'kernel mem=', value: `${hex(m.value)} bytes (RAM from there up is removed from the kernel's map after xen_memory_setup)`, from: `${source}:${m.line}` });
  return m.value;
}

export async function cmdEmulate(o: EmulateOpts): Promise<number> {
  if (o.role === 'domU') return cmdEmulateDomU(o);
  if (o.xlConfig) throw new InputError('emulate: --xl-config describes a domU; add --role domU');
  if (!o.e820 && !o.fromLog) throw new InputError('emulate: give the host memory map with --e820 FILE or --from-log FILE');
  if (o.compare && !o.fromLog) throw new InputError('emulate --compare needs --from-log FILE (the log to compare against)');
  checkEmulateOutputs(o);
  const inputs: SourcedInput[] = [];
  const log = o.fromLog ? parseBootLog(readTextInput(o.fromLog, 'boot-log'), o.fromLog) : null;
  const at = (line: number) => `${o.fromLog}:${line}`;
  // host map: --e820 beats the log
  let hostE820;
  if (o.e820) {
    hostE820 = loadE820(o.e820);
    checkXenHostMap(hostE820, o.e820);
    inputs.push({ what: 'host e820', value: `${hostE820.length} entries`, from: o.e820 });
  } else {
    if (!log!.hostE820) throw new InputError(`${o.fromLog}: no memory map found: expected 'Xen-e820 RAM map:' or 'EFI RAM map:' followed by entries`);
    hostE820 = log!.hostE820.value;
    checkXenHostMap(hostE820, at(log!.hostE820.line));
    inputs.push({ what: 'host e820', value: `${hostE820.length} entries (${log!.mapKind})`, from: at(log!.hostE820.line) });
  }
  if (log) inputs.push(xenOfLog(log, o.fromLog!));
  // profile: --profile beats the version the log names
  let profileId = o.profile;
  if (profileId) inputs.push({ what: 'profile', value: profileId, from: '--profile' + (log?.suggestedProfile && log.suggestedProfile !== profileId ? ` (the log's Linux ${log.kernelVersion?.value} suggests ${log.suggestedProfile})` : '') });
  else if (log?.suggestedProfile) {
    profileId = log.suggestedProfile;
    inputs.push({ what: 'profile', value: profileId, from: `${at(log.kernelVersion!.line)} (Linux ${log.kernelVersion!.value})` });
  } else throw new InputError(log ? `${o.fromLog}: no "Linux version" line to choose a profile from; give --profile` : 'emulate: --profile is required');
  const profile = findProfile(profileId);
  if (!profile) throw new InputError(`--profile ${profileId}: unknown profile; expected one of ${profileIds().join(', ')}`);
  // dom0_mem: --dom0-mem beats the log's Xen command line
  let dom0Mem = o.dom0Mem;
  if (dom0Mem !== undefined) inputs.push({ what: 'dom0_mem', value: dom0Mem, from: '--dom0-mem' });
  else if (log?.dom0Mem) {
    dom0Mem = log.dom0Mem.value;
    inputs.push({ what: 'dom0_mem', value: dom0Mem, from: at(log.dom0Mem.line) });
  } else inputs.push({ what: 'dom0_mem', value: '(none)', from: log ? `${o.fromLog}: no dom0_mem= on Xen's command line` : 'not given' });
  const computed = dom0PagesChecked(dom0Mem !== undefined ? parseDom0Mem(dom0Mem) : null, hostE820, inputs.find((i) => i.what === 'dom0_mem')!.from);
  // nr_pages: --nr-pages > Phys-Mach map / Dom0 alloc. in the log > computed from dom0_mem
  let nrPages: number;
  const fromLogPages = log ? dom0PagesFromLog(log) : null;
  if (o.nrPages !== undefined) {
    nrPages = o.nrPages;
    inputs.push({ what: 'nr_pages', value: hex(nrPages), from: '--nr-pages' });
  } else if (fromLogPages?.nrPages) {
    nrPages = fromLogPages.nrPages.value;
    inputs.push({ what: 'nr_pages', value: hex(nrPages), from: `${at(fromLogPages.nrPages.line)} (${fromLogPages.why})` });
  } else {
    nrPages = computed.nrPages;
    inputs.push({ what: 'nr_pages', value: hex(nrPages), from: `Xen's dom0_compute_nr_pages (${computed.notes[computed.notes.length - 2] ?? 'dom0_mem'})` });
  }
  // max pages: --max-pages > dom0_mem's max: > Xen's default UINT_MAX
  let maxPages: number;
  if (o.maxPages !== undefined) {
    maxPages = o.maxPages;
    inputs.push({ what: 'max pages (d->max_pages)', value: hex(maxPages), from: '--max-pages' });
  } else {
    maxPages = dom0Mem !== undefined && /max:/.test(dom0Mem) ? computed.maxPages : XEN_UINT_MAX;
    inputs.push({ what: 'max pages (d->max_pages)', value: hex(maxPages), from: dom0Mem !== undefined && /max:/.test(dom0Mem) ? 'dom0_mem max:' : 'no max: given, Xen sets UINT_MAX' });
  }
  const kconfig = o.kconfig ? loadKconfig(o.kconfig) : null;
  let guest;
  try {
    guest = emulate({ profile, hostE820, nrPages, maxPages, seed: o.seed, kconfig, config: o.config, dom0Mem, kernelMem: kernelMemInput(log, o.fromLog, inputs) });
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`emulation of ${profile.id} failed: ${(e as Error).message}`);
  }
  inputs.push({ what: 'kernel config', value: Object.entries(guest.facts.config).map(([k, v]) => `${k}=${v}`).join(' ') || '(none)', from: o.kconfig ? `${o.kconfig} + --config` : `profile defaults + --config` });
  if (profile.ibftReserve && guest.facts.config['CONFIG_ISCSI_IBFT_FIND'] === 'y') {
    inputs.push({ what: "dom0's own map edit", value: 'reserves 0x80000-0xfffff (iBFT window; its RAM is remapped like a hole)', from: `${profile.source}, CONFIG_ISCSI_IBFT_FIND=y` });
  }
  const comparison = o.compare && log ? compareBoot(guest.facts, log) : null;
  return finishEmulate(o, profile.id, guest, inputs, nrPages, maxPages, comparison);
}

/**
 * Xen's version and boot mode from the log. Xen 4.12–4.19 hand dom0 their final RAM map unchanged in either
 * mode (XENMEM_machine_memory_map; docs/spec-notes/xen-dom0-map.md), so neither changes the emulation.
 */
function xenOfLog(log: BootLog, source: string): SourcedInput {
  const mode = log.mapKind === 'efi' ? 'EFI boot' : log.mapKind === 'xen-e820' ? 'BIOS e820 boot' : 'boot mode unknown';
  const v = log.xenVersion;
  return {
    what: 'Xen',
    value: `${v ? v.value : 'version not in the log'}, ${mode} (dom0 gets Xen's printed RAM map as is; gaps only gain reserved entries)`,
    from: v ? `${source}:${v.line}` : log.hostE820 ? `${source}:${log.hostE820.line}` : source,
  };
}

/** Write / print / audit an emulated guest (shared by dom0 and domU). */
async function finishEmulate(
  o: EmulateOpts,
  profileId: string,
  guest: ReturnType<typeof emulate>,
  inputs: SourcedInput[],
  nrPages: number,
  maxPages: number,
  comparison: ReturnType<typeof compareBoot> | null,
): Promise<number> {
  let written: { frames: number } | null = null;
  const outPath = o.output ?? (o.audit ? path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-audit-')), `guest.${o.format}`) : null);
  if (outPath) written = await writeGuest(guest.image, outPath, o.format, Boolean(o.force), o.compression);
  if (o.json && !o.audit) {
    process.stdout.write(
      JSON.stringify({ schema: 'p2m-audit/emulate@1', file: o.output ?? null, format: o.format, frames: written?.frames ?? null, profile: profileId, role: guest.facts.role, inputs, config: guest.facts.config, nrPages, maxPages, kernelMaxPfn: guest.facts.kernelMaxPfn, messages: guest.facts.messages, notes: guest.notes, comparison }, null, 2) + '\n',
    );
  } else if (!o.json) {
    if (written && o.output) process.stdout.write(`wrote ${o.output}: ${profileId} ${guest.facts.role}, nr_pages ${hex(nrPages)}, max pages ${hex(maxPages)}, ${written.frames} frames\n`);
    process.stdout.write('inputs:\n' + inputs.map((i) => `  ${i.what}: ${i.value}  [${i.from}]`).join('\n') + '\n');
    process.stdout.write('predicted boot messages:\n' + guest.facts.messages.map((m) => `  | ${m}\n`).join(''));
    if (guest.notes.length) process.stdout.write(guest.notes.map((n) => `note: ${n}\n`).join(''));
    if (comparison) process.stdout.write('\ncompared with the log:\n' + renderComparison(comparison));
  }
  if (!o.audit) return comparison && comparison.different > 0 ? 1 : 0;
  try {
    return await auditFile(outPath!, { json: o.json, jobs: o.jobs });
  } finally {
    if (!o.output) fs.rmSync(path.dirname(outPath!), { recursive: true, force: true });
  }
}
