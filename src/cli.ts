#!/usr/bin/env node
// p2m-audit command line: wires options to the pipeline (ARCHITECTURE.md "CLI"). No logic lives here.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { auditImage } from './audit/audit-image.js';
import { InputError } from './image/guest-image.js';
import type { E820Entry, SymbolTable } from './image/guest-image.js';
import { openImage } from './image/open-image.js';
import { renderRestoreCheck, restoreCheck } from './image/restore-check.js';
import { writeSaveStream } from './image/stream-writer.js';
import { formatSystemMap, loadSymbols } from './image/symbols.js';
import { writeXcCore } from './image/xc-core-writer.js';
import { renderMfndump, type MfndumpView } from './report/p2m-dump.js';
import { dom0PagesChecked, parseDom0Mem } from './input/dom0-mem.js';
import { parseE820, sanitizeE820 } from './input/e820.js';
import { parseXlConfig } from './input/xl-config.js';
import { buildDomUMemoryMap } from './kernel/libxl-e820.js';
import { loadKconfig } from './input/kconfig.js';
import { dom0PagesFromLog, parseBootLog } from './input/boot-log.js';
import { compareBoot, renderComparison } from './report/compare.js';
import { E820_RAM, hex } from './xen/abi.js';
import { emulate } from './kernel/emulate.js';
import { findProfile, profileIds, PROFILES } from './kernel/profiles.js';
import { writeEmulatedP2ms } from './kernel/snapshot.js';
import { EXIT_INPUT_ERROR } from './report/classify.js';
import { inspectImage, renderInspect } from './report/inspect.js';
import { renderJson } from './report/json.js';
import { renderText } from './report/text.js';
import { renderSvg, renderSweepSvg } from './report/svg.js';
import { runScan } from './scan/scan.js';
import { renderSweepCsv, renderSweepText, runSweep } from './sweep/sweep.js';

/** Exit code for a bug in p2m-audit itself (never for bad input). */
const EXIT_INTERNAL = 4;

function parseJobs(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new InvalidArgumentError('expected a whole number of worker threads from 1 to 256');
  return n;
}

function parseCount(v: string): number {
  const n = /^0x[0-9a-f]+$/i.test(v) ? Number.parseInt(v.slice(2), 16) : /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('expected a page count (decimal or 0x-hex), > 0');
  return n;
}

function parseSeed(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new InvalidArgumentError('expected an integer seed from 0 to 4294967295');
  return n;
}

function collectConfig(v: string, prev: Record<string, string>): Record<string, string> {
  const m = /^(?:CONFIG_)?([A-Z0-9_]+)=(.*)$/.exec(v);
  if (!m) throw new InvalidArgumentError('expected SYMBOL=VALUE, e.g. XEN_MEMORY_HOTPLUG_LIMIT=512');
  return { ...prev, [`CONFIG_${m[1]}`]: m[2]! };
}

function readText(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(`${file}: cannot read ${what} (${code === 'ENOENT' ? 'no such file' : code ?? String(e)})`);
  }
}

/** A progress line on stderr, only when it is a terminal. */
function progress(label: string): ((done: number, total: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  let last = 0;
  return (done, total) => {
    const now = Date.now();
    if (done < total && now - last < 100) return;
    last = now;
    const pct = total ? Math.floor((done / total) * 100) : 100;
    process.stderr.write(`\r${label}: ${pct}% (${done}/${total} leaf pages)${done >= total ? '\n' : ''}`);
  };
}

function sameFile(a: string, b: string): boolean {
  try {
    const sa = fs.statSync(a);
    const sb = fs.statSync(b);
    return sa.ino === sb.ino && sa.dev === sb.dev;
  } catch {
    return path.resolve(a) === path.resolve(b);
  }
}

/** Write an emulated guest in one of the formats; symbols travel inside (.p2ms) or beside (FILE.map). */
function writeGuest(img: Parameters<typeof writeEmulatedP2ms>[0], out: string, format: string): { frames: number } {
  switch (format) {
    case 'p2ms':
      return writeEmulatedP2ms(img, out, { overwrite: true });
    case 'xc-core': {
      const r = writeXcCore(img, out, { overwrite: true });
      fs.writeFileSync(out + '.map', formatSystemMap(img.symbols));
      return { frames: r.pages };
    }
    case 'xl-save':
    case 'libxc-stream': {
      const r = writeSaveStream(img, out, { wrapper: format === 'xl-save' ? 'xl' : 'none', overwrite: true });
      fs.writeFileSync(out + '.map', formatSystemMap(img.symbols));
      return { frames: r.pagesWithData };
    }
    default:
      throw new InputError(`--format ${format}: expected p2ms, xc-core, xl-save or libxc-stream`);
  }
}

function symbolsOpt(file: string | undefined): { symbols?: SymbolTable } {
  return file ? { symbols: loadSymbols(file) } : {};
}

interface EmulateOpts {
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
  if (!o.output && !o.audit) throw new InputError('emulate: give -o FILE to write the guest, or --audit to audit it at once');
  if (!o.profile) throw new InputError('emulate --role domU: --profile is required');
  const profile = findProfile(o.profile);
  if (!profile) throw new InputError(`--profile ${o.profile}: unknown profile; expected one of ${profileIds().join(', ')}`);
  const inputs: SourcedInput[] = [{ what: 'profile', value: profile.id, from: '--profile' }];
  const cfg = parseXlConfig(readText(o.xlConfig, 'the xl config'), o.xlConfig);
  let host: E820Entry[] | null = null;
  if (o.e820) {
    host = parseE820(readText(o.e820, 'the e820 map'), o.e820);
    inputs.push({ what: 'host e820', value: `${host.length} entries`, from: o.e820 });
  } else if (o.fromLog) {
    const log = parseBootLog(readText(o.fromLog, 'the host boot log'), o.fromLog);
    if (!log.hostE820) throw new InputError(`${o.fromLog}: no memory map found: expected 'Xen-e820 RAM map:' or 'EFI RAM map:' followed by entries`);
    host = log.hostE820.value;
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
  if (o.output && fs.existsSync(o.output)) {
    for (const input of [o.e820, o.fromLog, o.kconfig, o.xlConfig]) {
      if (input && sameFile(o.output, input)) throw new InputError(`${o.output}: is an input file; refusing to write over an input`);
    }
    if (!o.force) throw new InputError(`${o.output}: already exists (use --force to replace it)`);
  }
  let guest;
  try {
    guest = emulate({ profile, hostE820: guestE820, machineE820: host ?? syntheticHost(guestE820), role: 'domU', nrPages, maxPages, seed: o.seed, kconfig, config: o.config });
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`emulation of ${profile.id} (domU) failed: ${(e as Error).message}`);
  }
  inputs.push({ what: 'kernel config', value: Object.entries(guest.facts.config).map(([k, v]) => `${k}=${v}`).join(' ') || '(none)', from: o.kconfig ? `${o.kconfig} + --config` : 'profile defaults + --config' });
  return finishEmulate(o, profile.id, guest, inputs, nrPages, maxPages, null);
}

async function cmdEmulate(o: EmulateOpts): Promise<number> {
  if (o.role === 'domU') return cmdEmulateDomU(o);
  if (o.xlConfig) throw new InputError('emulate: --xl-config describes a domU; add --role domU');
  if (!o.e820 && !o.fromLog) throw new InputError('emulate: give the host memory map with --e820 FILE or --from-log FILE');
  if (!o.output && !o.audit && !o.compare) throw new InputError('emulate: give -o FILE to write the guest, --audit to audit it at once, or --compare with --from-log');
  if (o.compare && !o.fromLog) throw new InputError('emulate --compare needs --from-log FILE (the log to compare against)');
  const inputs: SourcedInput[] = [];
  const log = o.fromLog ? parseBootLog(readText(o.fromLog, 'the boot log'), o.fromLog) : null;
  const at = (line: number) => `${o.fromLog}:${line}`;
  // host map: --e820 beats the log
  let hostE820;
  if (o.e820) {
    hostE820 = parseE820(readText(o.e820, 'the e820 map'), o.e820);
    inputs.push({ what: 'host e820', value: `${hostE820.length} entries`, from: o.e820 });
  } else {
    if (!log!.hostE820) throw new InputError(`${o.fromLog}: no memory map found: expected 'Xen-e820 RAM map:' or 'EFI RAM map:' followed by entries`);
    hostE820 = log!.hostE820.value;
    inputs.push({ what: 'host e820', value: `${hostE820.length} entries (${log!.mapKind})`, from: at(log!.hostE820.line) });
  }
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
  if (o.output && fs.existsSync(o.output)) {
    for (const input of [o.e820, o.fromLog, o.kconfig]) {
      if (input && sameFile(o.output, input)) throw new InputError(`${o.output}: is an input file; refusing to write over an input`);
    }
    if (!o.force) throw new InputError(`${o.output}: already exists (use --force to replace it)`);
  }
  let guest;
  try {
    guest = emulate({ profile, hostE820, nrPages, maxPages, seed: o.seed, kconfig, config: o.config, dom0Mem });
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`emulation of ${profile.id} failed: ${(e as Error).message}`);
  }
  inputs.push({ what: 'kernel config', value: Object.entries(guest.facts.config).map(([k, v]) => `${k}=${v}`).join(' ') || '(none)', from: o.kconfig ? `${o.kconfig} + --config` : `profile defaults + --config` });
  const comparison = o.compare && log ? compareBoot(guest.facts, log) : null;
  return finishEmulate(o, profile.id, guest, inputs, nrPages, maxPages, comparison);
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
  if (outPath) written = writeGuest(guest.image, outPath, o.format);
  if (o.json && !o.audit) {
    process.stdout.write(
      JSON.stringify({ schema: 'p2m-audit/emulate@1', file: o.output ?? null, format: o.format, frames: written?.frames ?? null, profile: profileId, role: guest.facts.role, inputs, config: guest.facts.config, nrPages, maxPages, kernelMaxPfn: guest.facts.kernelMaxPfn, messages: guest.facts.messages, comparison }, null, 2) + '\n',
    );
  } else if (!o.json) {
    if (written && o.output) process.stdout.write(`wrote ${o.output}: ${profileId} ${guest.facts.role}, nr_pages ${hex(nrPages)}, max pages ${hex(maxPages)}, ${written.frames} frames\n`);
    process.stdout.write('inputs:\n' + inputs.map((i) => `  ${i.what}: ${i.value}  [${i.from}]`).join('\n') + '\n');
    process.stdout.write('predicted boot messages:\n' + guest.facts.messages.map((m) => `  | ${m}\n`).join(''));
    if (comparison) process.stdout.write('\ncompared with the log:\n' + renderComparison(comparison));
  }
  if (!o.audit) return comparison && comparison.different > 0 ? 1 : 0;
  try {
    return await auditFile(outPath!, { json: o.json, jobs: o.jobs });
  } finally {
    if (!o.output) fs.rmSync(path.dirname(outPath!), { recursive: true, force: true });
  }
}

/** Write a picture next to the run's other output, never over an input. */
function writeSvgFile(out: string, svg: string, inputs: string[]): void {
  for (const i of inputs) if (i && fs.existsSync(out) && sameFile(out, i)) throw new InputError(`${out}: is an input file; refusing to write the picture over it`);
  try {
    fs.writeFileSync(out, svg);
  } catch (e) {
    throw new InputError(`${out}: cannot write the picture (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

async function auditFile(file: string, o: { json?: boolean; jobs: number; method?: 'tree' | 'list'; systemMap?: string; svg?: string }): Promise<number> {
  const img = openImage(file, symbolsOpt(o.systemMap));
  try {
    const { report } = await auditImage(img, { jobs: o.jobs, method: o.method, onProgress: progress(`auditing ${file}`) });
    if (o.svg) writeSvgFile(o.svg, renderSvg(report), [file, o.systemMap ?? '']);
    process.stdout.write(o.json ? renderJson(report) : renderText(report));
    return report.exitCode;
  } finally {
    img.close();
  }
}

function build(): Command {
  const program = new Command();
  program
    .name('p2m-audit')
    .description(
      "Audits a Xen PV guest's pfn→mfn map (P2M) the way save/restore, migration, xl dump-core and crash see it, " +
        'and emulates dom0/domU boots of Linux kernel profiles to predict it without a Xen host.',
    )
    .addHelpText(
      'after',
      `
Exit codes: 0 clean (benign differences only), 1 fatal (RAM the toolstack would lose or misread),
            2 usage or input error, 3 warnings only, 4 internal error.

Example (the OVM/UEK 3.8.13 dom0 case):
  p2m-audit emulate --profile linux-3.8.13-backport --e820 host-e820.txt --dom0-mem 1g,max:1g -o dom0.p2ms
  p2m-audit audit dom0.p2ms`,
    )
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('emulate')
    .description('boot a PV guest of a kernel profile on a host e820 map and write the resulting guest (or audit it at once)')
    .option('--profile <id>', `kernel profile (${profileIds().join(', ')}; see "p2m-audit profiles"); default: from the log's Linux version`)
    .option('--e820 <file>', "host memory map: Xen's '(XEN) A - B (type)' or '[A, B] (type)' lines, Linux 'BIOS-e820:'/'Xen:' lines, or a JSON list")
    .option('--from-log <file>', 'a pasted xl dmesg / dom0 dmesg / serial console / mail-archive copy: host map, dom0_mem=, dom0 size (Phys-Mach map, Dom0 alloc.) and kernel version are read from it')
    .addOption(new Option('--role <role>', 'dom0 (built by Xen from dom0_mem=) or domU (built by libxl from --xl-config)').choices(['dom0', 'domU']).default('dom0'))
    .option('--xl-config <file>', 'domU: the guest\'s xl config (memory, maxmem, e820_host, pci); with e820_host also give the host map (--e820 or --from-log)')
    .option('--compare', 'set every predicted boot message beside the same line of --from-log (exit 1 if any differs)')
    .option('--dom0-mem <spec>', "Xen's dom0_mem= value, e.g. 1g,max:1g, -512M, min:1g (no suffix = KiB)")
    .option('--nr-pages <n>', 'start_info.nr_pages directly (overrides --dom0-mem, the log and the xl config)', parseCount)
    .option('--max-pages <n>', "dom0's maximum reservation (d->max_pages) directly", parseCount)
    .option('--seed <n>', 'seed for machine-frame assignment', parseSeed, 1)
    .option('--kconfig <file>', "the kernel's .config (/boot/config-*, plain or .gz): its Xen p2m symbols replace the profile's defaults")
    .option('--config <SYMBOL=VALUE>', 'one kernel config symbol (repeatable, applied last), e.g. XEN_MEMORY_HOTPLUG_LIMIT=0', collectConfig, {})
    .option('-o, --output <file>', 'write the emulated guest here')
    .addOption(
      new Option('--format <fmt>', 'output format: p2ms (snapshot), xl-save (what `xl save` writes), libxc-stream (bare migration stream), xc-core (what `xl dump-core` writes); the last three get FILE.map beside them')
        .choices(['p2ms', 'xl-save', 'libxc-stream', 'xc-core'])
        .default('p2ms'),
    )
    .option('--force', 'replace an existing output file')
    .option('--audit', 'audit the emulated guest at once (exit code as for audit)')
    .option('--json', 'JSON output')
    .option('--jobs <n>', 'worker threads for --audit', parseJobs, Math.max(1, os.availableParallelism()))
    .action(async (o: EmulateOpts) => {
      process.exitCode = await cmdEmulate(o);
    });

  program
    .command('audit <file>')
    .description('compare the toolstack view (as save/restore walks it) with the guest\'s own p2m, page by page, and classify every difference')
    .option('--json', 'JSON output (schema p2m-audit/audit@1, see docs/json-report.md)')
    .option('--jobs <n>', 'worker threads', parseJobs, Math.max(1, os.availableParallelism()))
    .addOption(new Option('--method <m>', 'force the toolstack walk: tree (frame list, as crash and Xen < 4.7) or list (linear p2m)').choices(['tree', 'list']))
    .option('--system-map <file>', 'kernel symbols (System.map or /proc/kallsyms, plain or .gz) for images that carry none (default: FILE.map beside the image)')
    .option('--svg <file>', 'also draw the pfn space (e820 regions, guest classes, remapped holes, the toolstack bound, fatal ranges) as an SVG picture')
    .action(async (file: string, o: { json?: boolean; jobs: number; method?: 'tree' | 'list'; systemMap?: string; svg?: string }) => {
      process.exitCode = await auditFile(file, o);
    });

  program
    .command('p2m <file>')
    .description("print a p2m pfn by pfn in xen-mfndump dump-p2m's format: the toolstack view (what save/restore uses), the guest's own view, or the pages a dump holds")
    .addOption(new Option('--view <v>', 'which p2m').choices(['toolstack', 'guest', 'dump']).default('toolstack'))
    .option('--domid <n>', 'domain id to print in the header lines', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a domain id (whole number)');
      return n;
    })
    .option('--system-map <file>', 'kernel symbols for images that carry none (needed by --view guest)')
    .action((file: string, o: { view: MfndumpView; domid?: number; systemMap?: string }) => {
      const img = openImage(file, symbolsOpt(o.systemMap));
      try {
        const pfnType = 'pageType' in img ? (pfn: number) => (img as unknown as { pageType(p: number): number | undefined }).pageType(pfn) : undefined;
        let buf: string[] = [];
        const flush = () => {
          process.stdout.write(buf.join(''));
          buf = [];
        };
        renderMfndump(img, o.view, (line) => {
          buf.push(line + '\n');
          if (buf.length >= 4096) flush();
        }, { domid: o.domid, pfnType });
        flush();
      } finally {
        img.close();
      }
    });

  program
    .command('restore-check <savefile>')
    .description('read an xl save file / migration stream as the restore side would and list every pfn the guest calls RAM that the stream does not carry (what this migration would lose)')
    .option('--json', 'JSON output (schema p2m-audit/restore-check@1)')
    .option('--system-map <file>', 'kernel symbols (default: SAVEFILE.map beside it)')
    .action((file: string, o: { json?: boolean; systemMap?: string }) => {
      const img = openImage(file, symbolsOpt(o.systemMap));
      try {
        if (img.format !== 'xl-save' && img.format !== 'libxc-stream') {
          throw new InputError(`${file}: is a ${img.format} image; restore-check reads xl save files and migration streams`);
        }
        const loss = restoreCheck(img);
        process.stdout.write(renderRestoreCheck(loss, !!o.json));
        process.exitCode = loss.exitCode;
      } finally {
        img.close();
      }
    });

  program
    .command('inspect <file>')
    .description('show what an image contains: format, frame space, shared_info arch fields, cr3, symbols, boot facts')
    .option('--json', 'JSON output')
    .option('--system-map <file>', 'kernel symbols for images that carry none')
    .action((file: string, o: { json?: boolean; systemMap?: string }) => {
      const img = openImage(file, symbolsOpt(o.systemMap));
      try {
        const info = inspectImage(img);
        process.stdout.write(o.json ? JSON.stringify(info, null, 2) + '\n' : renderInspect(info));
      } finally {
        img.close();
      }
    });

  program
    .command('scan <paths...>')
    .description('audit every image under the given files, directories and globs (detected by content; others are skipped), on one shared worker pool')
    .option('--json', 'JSON lines: one per file (schema p2m-audit/scan@1), then a summary line (docs/scan.md)')
    .option('--jobs <n>', 'worker threads shared by all files', parseJobs, Math.max(1, os.availableParallelism()))
    .option('--out <file>', 'append each result to this JSON-lines log as it completes (flushed per line)')
    .option('--resume', 'skip files already in the --out log (same path, size and mtime)')
    .option('--no-progress', 'no progress bar (it is only drawn when stderr is a terminal)')
    .action(async (paths: string[], o: { json?: boolean; jobs: number; out?: string; resume?: boolean; progress: boolean }) => {
      const { exitCode } = await runScan(paths, {
        jobs: o.jobs,
        json: Boolean(o.json),
        out: o.out,
        resume: Boolean(o.resume),
        progress: o.progress,
        write: (line) => process.stdout.write(line + '\n'),
      });
      process.exitCode = exitCode;
    });

  program
    .command('sweep')
    .description('emulate and audit every dom0_mem value × kernel profile on one host map; prints a matrix of verdicts and MiB at risk')
    .requiredOption('--e820 <file>', 'host memory map (same forms as emulate)')
    .requiredOption('--dom0-mem <range>', 'FROM..TO (doubling) or FROM..TO:STEP, e.g. 512m..64g or 1g..8g:512m')
    .option('--profile <ids>', 'comma-separated profiles', profileIds().join(','))
    .option('--no-max', 'sweep dom0_mem=SIZE instead of dom0_mem=SIZE,max:SIZE')
    .option('--kconfig <file>', "the kernel's .config for every profile")
    .option('--config <SYMBOL=VALUE>', 'one kernel config symbol (repeatable)', collectConfig, {})
    .option('--seed <n>', 'seed for machine-frame assignment', parseSeed, 1)
    .option('--jobs <n>', 'worker threads', parseJobs, Math.max(1, os.availableParallelism()))
    .option('--json', 'JSON output (schema p2m-audit/sweep@1)')
    .option('--csv', 'CSV output, one line per combination')
    .option('--svg <file>', 'also draw the matrix as an SVG picture')
    .action(async (o: { e820: string; dom0Mem: string; profile: string; max: boolean; kconfig?: string; config: Record<string, string>; seed: number; jobs: number; json?: boolean; csv?: boolean; svg?: string }) => {
      const hostE820 = parseE820(readText(o.e820, 'the e820 map'), o.e820);
      const m = await runSweep({
        hostE820,
        range: o.dom0Mem,
        profiles: o.profile.split(',').map((p) => p.trim()).filter(Boolean),
        withMax: o.max,
        jobs: o.jobs,
        kconfig: o.kconfig ? loadKconfig(o.kconfig) : null,
        config: o.config,
        seed: o.seed,
        onProgress: progress('sweep'),
      });
      process.stdout.write(o.json ? JSON.stringify(m, null, 2) + '\n' : o.csv ? renderSweepCsv(m) : renderSweepText(m));
      if (o.svg) writeSvgFile(o.svg, renderSweepSvg({ rows: m.rows, cols: m.cols, cells: m.cells.map((r) => r.map((c) => ({ verdict: c.verdict, uncoveredMib: c.uncoveredMib }))) }), [o.e820]);
      const cells = m.cells.flat();
      process.exitCode = cells.some((c) => c.error) ? EXIT_INPUT_ERROR : cells.some((c) => c.verdict === 'FATAL') ? 1 : cells.some((c) => c.verdict === 'WARN') ? 3 : 0;
    });

  program
    .command('profiles')
    .description('list the kernel profiles the emulator knows')
    .option('--json', 'JSON output')
    .action((o: { json?: boolean }) => {
      if (o.json) process.stdout.write(JSON.stringify(PROFILES.map((p) => ({ id: p.id, layout: p.layout, summary: p.summary, source: p.source, defaults: p.defaults })), null, 2) + '\n');
      else for (const p of PROFILES) process.stdout.write(`${p.id.padEnd(28)} ${p.summary}\n`);
    });
  return program;
}

/** A reader that closed our output (`p2m-audit p2m FILE | head`) ends the run quietly, never with a trace. */
function quietOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    process.stderr.write(`p2m-audit: cannot write output: ${e.message}\n`);
    process.exit(EXIT_INTERNAL);
  });
}

export async function main(argv: string[]): Promise<number> {
  quietOnClosedPipe(process.stdout);
  const program = build();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version are not errors; commander already printed its message
      return e.exitCode === 0 ? 0 : EXIT_INPUT_ERROR;
    }
    if (e instanceof InputError) {
      process.stderr.write(`p2m-audit: ${e.message}\n`);
      return EXIT_INPUT_ERROR;
    }
    process.stderr.write(`p2m-audit: internal error: ${(e as Error)?.message ?? String(e)}\n`);
    return EXIT_INTERNAL;
  }
}

const code = await main(process.argv.slice(2));
process.exitCode = code;
