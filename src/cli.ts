#!/usr/bin/env node
// p2m-audit command line: wires options to the pipeline (ARCHITECTURE.md "CLI"). No logic lives here.
// Each command's module (src/commands/*) is imported only when that command runs, so `audit` does not pay
// for loading the emulator, the writers or the scanner.
import fs from 'node:fs';
import os from 'node:os';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { InputError } from './common/errors.js';
import { ioCause } from './formats/output-file.js';
import { PROFILES, profileIds } from './emulate/kernel/profiles.js';
import type { EmulateOpts } from './commands/emulate.js';
import type { AuditFileOptions } from './commands/audit.js';
import type { SweepOpts } from './commands/sweep.js';
import type { MfndumpView } from './report/mfndump.js';

/** Exit code for a bad option, input or output (audit/verdict.ts EXIT_INPUT_ERROR; repeated so --help loads nothing). */
const EXIT_INPUT_ERROR = 2;
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


/** package.json's version: dist/src/cli.js and src/cli.ts both find it by walking up from this file. */
function packageVersion(): string {
  for (const rel of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'p2m-audit' && pkg.version) return pkg.version;
    } catch {
      // not at this level
    }
  }
  return 'unknown';
}

function build(): Command {
  const program = new Command();
  program
    .name('p2m-audit')
    .version(packageVersion(), '-V, --version', 'print the version of p2m-audit and exit')
    .description(
      "Audits a Xen PV guest's pfn→mfn map (P2M) the way save/restore, migration, xl dump-core and crash see it, " +
        'and emulates dom0/domU boots of Linux kernel profiles to predict it without a Xen host.',
    )
    .addHelpText(
      'after',
      `
Exit codes: 0 clean (benign differences only), 1 fatal (RAM the toolstack would lose or misread),
            2 usage, input or output error, 3 warnings only, 4 internal error.

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
    .option('--force', 'replace an existing output file (and its FILE.map); never an input, a device or a FIFO')
    .option('--audit', 'audit the emulated guest at once (exit code as for audit)')
    .option('--json', 'JSON output')
    .option('--jobs <n>', 'worker threads for --audit', parseJobs, Math.max(1, os.availableParallelism()))
    .action(async (o: EmulateOpts) => {
      const { cmdEmulate } = await import('./commands/emulate.js');
      process.exitCode = await cmdEmulate(o);
    });

  program
    .command('audit <file>')
    .description('compare the toolstack view (as save/restore walks it) with the guest\'s own p2m, page by page, and classify every difference')
    .option('--json', 'JSON output (schema p2m-audit/audit@1, see docs/json-report.md)')
    .option('--jobs <n>', 'worker threads (guests up to 512 GiB are audited on the main thread: starting workers would cost more)', parseJobs, Math.max(1, os.availableParallelism()))
    .addOption(new Option('--method <m>', 'force the toolstack walk: tree (frame list, as crash and Xen < 4.7) or list (linear p2m)').choices(['tree', 'list']))
    .option('--system-map <file>', 'kernel symbols (System.map or /proc/kallsyms, plain or .gz) for images that carry none (default: FILE.map beside the image)')
    .option('--svg <file>', 'also draw the pfn space (e820 regions, guest classes, remapped holes, the toolstack bound, fatal ranges) as an SVG picture')
    .option('--force', 'replace an existing --svg file')
    .action(async (file: string, o: AuditFileOptions) => {
      const { auditFile } = await import('./commands/audit.js');
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
    .action(async (file: string, o: { view: MfndumpView; domid?: number; systemMap?: string }) => {
      const { cmdP2m } = await import('./commands/image.js');
      process.exitCode = cmdP2m(file, o);
    });

  program
    .command('restore-check <savefile>')
    .description('read an xl save file / migration stream as the restore side would and list every pfn the guest calls RAM that the stream does not carry (what this migration would lose)')
    .option('--json', 'JSON output (schema p2m-audit/restore-check@1)')
    .option('--system-map <file>', 'kernel symbols (default: SAVEFILE.map beside it)')
    .action(async (file: string, o: { json?: boolean; systemMap?: string }) => {
      const { cmdRestoreCheck } = await import('./commands/image.js');
      process.exitCode = cmdRestoreCheck(file, o);
    });

  program
    .command('inspect <file>')
    .description('show what an image contains: format, frame space, shared_info arch fields, cr3, symbols, boot facts')
    .option('--json', 'JSON output')
    .option('--system-map <file>', 'kernel symbols for images that carry none')
    .action(async (file: string, o: { json?: boolean; systemMap?: string }) => {
      const { cmdInspect } = await import('./commands/image.js');
      process.exitCode = cmdInspect(file, o);
    });

  program
    .command('scan <paths...>')
    .description('audit every image under the given files, directories and globs (detected by content; others are skipped), on one shared worker pool')
    .option('--json', 'JSON lines: one per file (schema p2m-audit/scan@1), then a summary line (docs/scan.md)')
    .option('--jobs <n>', 'worker threads shared by all files', parseJobs, Math.max(1, os.availableParallelism()))
    .option('--out <file>', 'append each result to this JSON-lines log as it completes (flushed per line); never one of the scanned files')
    .option('--resume', 'skip files already in the --out log (same path, size and mtime)')
    .option('--system-map <file>', 'kernel symbols (System.map or /proc/kallsyms, plain or .gz) for save and dump-core files that have no FILE.map beside them')
    .option('--no-progress', 'no progress bar (it is only drawn when stderr is a terminal)')
    .action(async (paths: string[], o: { json?: boolean; jobs: number; out?: string; resume?: boolean; systemMap?: string; progress: boolean }) => {
      const { runScan } = await import('./scan/scan.js');
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
    .option('--force', 'replace an existing --svg file')
    .action(async (o: SweepOpts) => {
      const { cmdSweep } = await import('./commands/sweep.js');
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
  return program;
}

/** A reader that closed our output (`p2m-audit p2m FILE | head`) ends the run quietly, never with a trace; any other write error exits 2. */
function quietOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    // a full disk or a failing device under stdout is an output error, not a bug in p2m-audit
    process.stderr.write(`p2m-audit: cannot write standard output (${ioCause(e)})\n`);
    process.exit(EXIT_INPUT_ERROR);
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
