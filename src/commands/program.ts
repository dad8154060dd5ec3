// p2m-audit's commander program: wires options to the pipeline (ARCHITECTURE.md "CLI"). No logic lives here.
// Each command's module (src/commands/*) is imported only when that command runs, so `audit` does not pay
// for loading the emulator, the writers or the scanner. Loaded by the entry (src/cli.ts) only when the
// answer is not cached (`--version`, `--help`: commands/cached-help.ts).
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { InputError } from '../common/errors.js';
import { ioCause } from '../formats/output-file.js';
import { TEXT_INPUT_LIMITS, type TextInputKind } from '../inputs/text-input.js';
import { PROFILES, profileIds } from '../emulate/kernel/profiles.js';
import type { EmulateOpts } from './emulate.js';
import type { AuditFileOptions } from './audit.js';
import type { AuditDomainOptions } from './live.js';
import type { SweepOpts } from './sweep.js';
import type { MfndumpView } from '../report/mfndump.js';
import { addFleetCommand } from './fleet.js';
import { addCommandHelp, DOM0_MEM_DEFAULT_TEXT, jobsOption, JOBS_RANGE_TEXT, outputError, parseSeed, SEED_RANGE_TEXT } from './help-text.js';

/** Exit code for a bad option, input or output (audit/verdict.ts EXIT_INPUT_ERROR; repeated so --help loads nothing). */
const EXIT_INPUT_ERROR = 2;
/** Exit code for a bug in p2m-audit itself (never for bad input). */
const EXIT_INTERNAL = 4;

/** "'-' = standard input; at most 64 MiB": the rule every text input is read by (inputs/text-input.ts). */
function textCap(kind: TextInputKind): string {
  return `'-' = standard input; at most ${TEXT_INPUT_LIMITS[kind].maxBytes / MIB} MiB`;
}
const MIB = 1024 * 1024;

function parseCount(v: string): number {
  const n = /^0x[0-9a-f]+$/i.test(v) ? Number.parseInt(v.slice(2), 16) : /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('expected a page count (decimal or 0x-hex), > 0');
  return n;
}

function collectConfig(v: string, prev: Record<string, string>): Record<string, string> {
  const m = /^(?:CONFIG_)?([A-Z0-9_]+)=(.*)$/.exec(v);
  if (!m) throw new InvalidArgumentError('expected SYMBOL=VALUE, e.g. XEN_MEMORY_HOTPLUG_LIMIT=512');
  return { ...prev, [`CONFIG_${m[1]}`]: m[2]! };
}


/** The whole program, every command and its help (also what scripts/bundle.mjs renders the help cache from). */
export function build(version: string): Command {
  const program = new Command();
  program
    .name('p2m-audit')
    .version(version, '-V, --version', 'print the version of p2m-audit and exit')
    .description(
      "Audits a Xen PV guest's pfn→mfn map (P2M) the way save/restore, migration, xl dump-core and crash see it, " +
        'and emulates dom0/domU boots of Linux kernel profiles to predict it without a Xen host.',
    )
    .addHelpText(
      'after',
      `
Exit codes: 0 clean (benign differences only), 1 fatal (RAM the toolstack would lose or misread),
            2 usage, input or output error (nothing on stdout), 3 warnings only, 4 internal error,
            5 partial: a report was printed, but part of the input could not be read (docs/exit-codes.md).
            A closed stdout (… | head) does not change the code.

Example (the OVM/UEK 3.8.13 dom0 case):
  p2m-audit emulate --profile linux-3.8.13-backport --e820 host-e820.txt --dom0-mem 1g,max:1g -o dom0.p2ms
  p2m-audit audit dom0.p2ms`,
    )
    .showHelpAfterError('(run with --help for usage)')
    // commander's own errors in our style (one "p2m-audit: " line, exit 2); inherited by every command
    .configureOutput({ outputError })
    .exitOverride();

  program
    .command('emulate')
    .description('boot a PV guest of a kernel profile on a host e820 map and write the resulting guest (or audit it at once)')
    .option('--profile <id>', `kernel profile (${profileIds().join(', ')}; see "p2m-audit profiles"); default: from the log's Linux version`)
    .option('--e820 <file>', `host memory map: Xen's '(XEN) A - B (type)' or '[A, B] (type)' lines, Linux 'BIOS-e820:'/'Xen:' lines, or a JSON list (${textCap('e820')})`)
    .option('--from-log <file>', `a pasted xl dmesg / dom0 dmesg / serial console / mail-archive copy: host map, dom0_mem=, dom0 size (Phys-Mach map, Dom0 alloc.) and kernel version are read from it (${textCap('boot-log')})`)
    .addOption(new Option('--role <role>', 'dom0 (built by Xen from dom0_mem=) or domU (built by libxl from --xl-config)').choices(['dom0', 'domU']).default('dom0'))
    .option('--xl-config <file>', `domU: the guest's xl config (memory, maxmem, e820_host, pci); with e820_host also give the host map (--e820 or --from-log) (${textCap('xl-config')})`)
    .option('--compare', 'set every predicted boot message beside the same line of --from-log (exit 1 if any differs)')
    .option('--dom0-mem <spec>', `Xen's dom0_mem= value, e.g. 1g,max:1g, -512M, min:1g (no suffix = KiB; ${DOM0_MEM_DEFAULT_TEXT})`)
    .option('--nr-pages <n>', 'start_info.nr_pages directly (overrides --dom0-mem, the log and the xl config)', parseCount)
    .option('--max-pages <n>', "dom0's maximum reservation (d->max_pages) directly", parseCount)
    .option('--seed <n>', `seed for machine-frame assignment (${SEED_RANGE_TEXT})`, parseSeed, 1)
    .option('--kconfig <file>', `the kernel's .config (/boot/config-*, plain or .gz): its Xen p2m symbols replace the profile's defaults (${textCap('kconfig')})`)
    .addOption(new Option('--config <SYMBOL=VALUE>', 'one kernel config symbol (repeatable, applied last), e.g. XEN_MEMORY_HOTPLUG_LIMIT=0').argParser(collectConfig).default({}, 'none'))
    .option('-o, --output <file>', "write the emulated guest here (a file: images are binary, so '-' is refused)")
    .addOption(
      new Option('--format <fmt>', 'output format: p2ms (snapshot), xl-save (what `xl save` writes), libxc-stream (bare migration stream), xc-core (what `xl dump-core` writes), vmcore (a dom0 crash dump as the Xen kexec path and kdump write it), kdump-compressed (the same crash as makedumpfile -d 31 compresses it); all but p2ms get FILE.map beside them')
        .choices(['p2ms', 'xl-save', 'libxc-stream', 'xc-core', 'vmcore', 'kdump-compressed'])
        .default('p2ms'),
    )
    .addOption(new Option('--compression <codec>', 'kdump-compressed: page codec (zlib as makedumpfile -c, zstd as -z, snappy as -p, none)').choices(['zlib', 'zstd', 'snappy', 'none']).default('zlib'))
    .option('--force', 'replace an existing output file (and its FILE.map); never an input, a device or a FIFO')
    .option('--audit', 'audit the emulated guest at once (exit code as for audit)')
    .option('--json', 'JSON output')
    .addOption(jobsOption(`worker threads for --audit (${JOBS_RANGE_TEXT})`))
    .action(async (o: EmulateOpts) => {
      const { cmdEmulate } = await import('./emulate.js');
      process.exitCode = await cmdEmulate(o);
    });

  program
    .command('audit [file]')
    .description('compare the toolstack view (as save/restore walks it) with the guest\'s own p2m, page by page, and classify every difference')
    .option('--json', 'JSON output (schema p2m-audit/audit@1, see docs/json-report.md)')
    .addOption(jobsOption(`worker threads, ${JOBS_RANGE_TEXT} (guests up to 512 GiB are audited on the main thread: starting workers would cost more)`))
    .addOption(new Option('--method <m>', 'force the toolstack walk: tree (frame list, as crash and Xen < 4.7) or list (linear p2m)').choices(['tree', 'list']))
    .option('--system-map <file>', `kernel symbols (System.map or /proc/kallsyms, plain or .gz) for images that carry none (default: FILE.map beside the image; ${textCap('system-map')})`)
    .option('--svg <file>', "also draw the pfn space (e820 regions, guest classes, remapped holes, the toolstack bound, fatal ranges) as an SVG picture ('-': the picture on stdout, the report on stderr)")
    .option('--force', 'replace an existing --svg file')
    .option('--domain <id|name>', 'audit a running PV domain instead of a file (in dom0, as root; needs the xenlive addon: npm run build:live)')
    .option('--pause', '--domain: pause the guest for the read (always unpaused afterwards, also on errors and Ctrl-C)')
    .option('--attempts <n>', '--domain: reads tried before "could not get a consistent read" (exit 3)', parseCount)
    .option('--system-map-dir <dir>', '--domain: System.map-VERSION files; the one the guest\'s linux_banner names is used')
    .option('--stats', '--domain: print frames mapped, map calls, attempts and time on stderr')
    .action(async (file: string | undefined, o: AuditFileOptions & AuditDomainOptions & { domain?: string }) => {
      if (o.domain !== undefined) {
        if (file !== undefined) throw new InputError('give a FILE or --domain, not both');
        const { cmdAuditDomain } = await import('./live.js');
        process.exitCode = await cmdAuditDomain(o.domain, o);
        return;
      }
      if (file === undefined) throw new InputError('audit: give an image FILE, or --domain ID|NAME for a running domain');
      const { auditFile } = await import('./audit.js');
      process.exitCode = await auditFile(file, o);
    });

  program
    .command('p2m [file]')
    .description("print a p2m pfn by pfn in xen-mfndump dump-p2m's format: the toolstack view (what save/restore uses), the guest's own view, or the pages a dump holds")
    .addOption(new Option('--view <v>', "which p2m (crash: the frame list crash reads, a dom0 kdump's from its crash note)").choices(['toolstack', 'guest', 'dump', 'crash']).default('toolstack'))
    .option('--domid <n>', 'domain id to print in the header lines', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a domain id (whole number)');
      return n;
    })
    .option('--system-map <file>', `kernel symbols for images that carry none (needed by --view guest; ${textCap('system-map')})`)
    .option('--domain <id|name>', "a running PV domain's toolstack p2m with page types, as `xen-mfndump dump-p2m` prints it (in dom0, as root)")
    .option('--pause', '--domain: pause the guest while it is read (always unpaused afterwards)')
    .option('--stats', '--domain: print frames mapped, map calls and time on stderr')
    .action(async (file: string | undefined, o: { view: MfndumpView; domid?: number; systemMap?: string; domain?: string; pause?: boolean; stats?: boolean }) => {
      if (o.domain !== undefined) {
        if (file !== undefined || o.view !== 'toolstack') throw new InputError('p2m --domain prints the toolstack view of a running domain: give no FILE and no --view');
        const { cmdP2mDomain } = await import('./live.js');
        process.exitCode = cmdP2mDomain(o.domain, o);
        return;
      }
      if (file === undefined) throw new InputError('p2m: give an image FILE, or --domain ID|NAME for a running domain');
      const { cmdP2m } = await import('./image.js');
      process.exitCode = cmdP2m(file, o);
    });

  program
    .command('restore-check <savefile>')
    .description('read an xl save file / migration stream as the restore side would and list every pfn the guest calls RAM that the stream does not carry (what this migration would lose)')
    .option('--json', 'JSON output (schema p2m-audit/restore-check@1)')
    .option('--system-map <file>', `kernel symbols (default: SAVEFILE.map beside it; ${textCap('system-map')})`)
    .action(async (file: string, o: { json?: boolean; systemMap?: string }) => {
      const { cmdRestoreCheck } = await import('./image.js');
      process.exitCode = cmdRestoreCheck(file, o);
    });

  program
    .command('inspect <file>')
    .description('show what an image contains: format, frame space, shared_info arch fields, cr3, symbols, boot facts')
    .option('--json', 'JSON output')
    .option('--system-map <file>', `kernel symbols for images that carry none (${textCap('system-map')})`)
    .action(async (file: string, o: { json?: boolean; systemMap?: string }) => {
      const { cmdInspect } = await import('./image.js');
      process.exitCode = cmdInspect(file, o);
    });

  program
    .command('scan [paths...]')
    .description('audit every image under the given files, directories and globs (detected by content; others are skipped), on one shared worker pool')
    .option('--json', 'JSON lines: one per file (schema p2m-audit/scan@1), then a summary line (docs/scan.md)')
    .addOption(jobsOption(`worker threads shared by all files (${JOBS_RANGE_TEXT})`))
    .option('--out <file>', "append each result to this JSON-lines log as it completes (flushed per line); never one of the scanned files, never '-' (use --json)")
    .option('--resume', 'skip files already in the --out log (same path, size and mtime)')
    .option('--system-map <file>', `kernel symbols (System.map or /proc/kallsyms, plain or .gz) for save and dump-core files that have no FILE.map beside them (a file, read by every worker: not '-'; at most ${TEXT_INPUT_LIMITS['system-map'].maxBytes / MIB} MiB)`)
    .option('--no-progress', 'no progress bar (it is only drawn when stderr is a terminal)')
    .option('--domains <all|ids,names>', 'audit running domains instead of files: every PV domain of this host (HVM/PVH listed as skipped), or the ones named (in dom0, as root)')
    .option('--system-map-dir <dir>', '--domains: System.map-VERSION files; the one each guest\'s linux_banner names is used')
    .option('--pause', '--domains: pause each guest while it is read')
    .action(async (paths: string[], o: { json?: boolean; jobs: number; out?: string; resume?: boolean; systemMap?: string; progress: boolean; domains?: string; systemMapDir?: string; pause?: boolean }) => {
      if (o.domains !== undefined) {
        if (paths.length > 0) throw new InputError('give PATHs or --domains, not both');
        const { cmdScanDomains } = await import('./live.js');
        process.exitCode = await cmdScanDomains(o.domains, { ...o, write: (line) => process.stdout.write(line + '\n') });
        return;
      }
      if (paths.length === 0) throw new InputError('scan: give files, directories or globs, or --domains all');
      const { runScan } = await import('../scan/scan.js');
      const { exitCode } = await runScan(paths, {
        jobs: o.jobs,
        json: Boolean(o.json),
        out: o.out,
        resume: Boolean(o.resume),
        systemMap: o.systemMap,
        progress: o.progress,
        write: (line) => process.stdout.write(line + '\n'),
      });
      process.exitCode = exitCode;
    });

  program
    .command('sweep')
    .description('emulate and audit every dom0_mem value × kernel profile on one host map; prints a matrix of verdicts and MiB at risk')
    .requiredOption('--e820 <file>', `host memory map (same forms as emulate; ${textCap('e820')})`)
    .requiredOption('--dom0-mem <range>', 'FROM..TO (doubling) or FROM..TO:STEP, e.g. 512m..64g or 1g..8g:512m')
    .option('--profile <ids>', 'comma-separated profiles', profileIds().join(','))
    .option('--no-max', 'sweep dom0_mem=SIZE instead of dom0_mem=SIZE,max:SIZE')
    .option('--kconfig <file>', `the kernel's .config for every profile (${textCap('kconfig')})`)
    .addOption(new Option('--config <SYMBOL=VALUE>', 'one kernel config symbol (repeatable)').argParser(collectConfig).default({}, 'none'))
    .option('--seed <n>', `seed for machine-frame assignment (${SEED_RANGE_TEXT})`, parseSeed, 1)
    .addOption(jobsOption(`worker threads (${JOBS_RANGE_TEXT})`))
    .option('--json', 'JSON output (schema p2m-audit/sweep@1)')
    .option('--csv', 'CSV output, one line per combination')
    .option('--svg <file>', "also draw the matrix as an SVG picture ('-': the picture on stdout, the matrix on stderr)")
    .option('--force', 'replace an existing --svg file')
    .action(async (o: SweepOpts) => {
      const { cmdSweep } = await import('./sweep.js');
      process.exitCode = await cmdSweep(o);
    });

  program
    .command('profiles')
    .description('list the kernel profiles the emulator knows')
    .option('--json', 'JSON output')
    .action((o: { json?: boolean }) => {
      if (o.json) process.stdout.write(JSON.stringify(PROFILES.map((p) => ({ id: p.id, layout: p.layout, summary: p.summary, source: p.source, defaults: p.defaults })), null, 2) + '\n');
      else for (const p of PROFILES) process.stdout.write(`${p.id.padEnd(28)} ${p.summary}\n`);
    });
  addFleetCommand(program);
  addCommandHelp(program);
  return program;
}

/**
 * Standard output and error, handled once for every command. After a write fails, later writes are dropped
 * (Node would otherwise buffer them for as long as a synchronous loop runs). A reader that went away
 * (`p2m-audit scan … | head -1`, EPIPE) is not an error: the command runs to its end, so the exit code is
 * still its verdict (docs/exit-codes.md). Any other error on stdout (a full disk under a redirection) is an
 * output error: one line, exit 2. stderr failing has nowhere to be reported and ends nothing.
 */
function guardStdio(stream: NodeJS.WriteStream, isStdout: boolean): void {
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  stream.write = ((...args: unknown[]) => (stream.errored ? true : write(...args))) as typeof stream.write;
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (!isStdout || e.code === 'EPIPE') return;
    // a full disk or a failing device under stdout is an output error, not a bug in p2m-audit
    process.stderr.write(`p2m-audit: cannot write standard output (${ioCause(e)})\n`);
    process.exit(EXIT_INPUT_ERROR);
  });
}

/** Run the program on `argv`; `version` is package.json's (the entry finds it: commands/cached-help.ts packageVersion). */
export async function main(argv: string[], version: () => string): Promise<number> {
  guardStdio(process.stdout, true);
  guardStdio(process.stderr, false);
  const program = build(version());
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
