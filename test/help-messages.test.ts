// Help and messages (issue 14 item 11): each rule checked by running the CLI (dist/src/cli.js) or the function
// that renders it, against values derived elsewhere: the validators' constants, docs/exit-codes.md's table,
// audit/verdict.ts's EXIT_* constants, the --json report, the SVG's own break labels.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMAND_HELP, JOBS_MAX, JOBS_MIN, JOBS_RANGE_TEXT, SEED_RANGE_TEXT, parseJobs } from '../src/commands/help-text.js';
import { EXIT_CLEAN, EXIT_FATAL, EXIT_INPUT_ERROR, EXIT_PARTIAL, EXIT_WARNINGS } from '../src/audit/verdict.js';
import { writeOutput } from '../src/formats/output-file.js';
import { axisNote } from '../src/report/svg.js';

const repo = path.resolve(__dirname, '..');
const cli = path.join(repo, 'dist/src/cli.js');
const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd: repo });
const CLEAN = 'corpora/scenarios/small-clean-4x.p2ms';
const SMALL_HOST = 'corpora/scenarios/hosts/small-host.json';

/** The lines of one option in a command's --help: from its flags to the next option. */
function optionHelp(help: string, flag: string): string {
  const lines = help.split('\n');
  const at = lines.findIndex((l) => l.trimStart().startsWith(flag));
  expect(at, `${flag} in help`).toBeGreaterThanOrEqual(0);
  const end = lines.findIndex((l, i) => i > at && /^ {2}-/.test(l));
  return lines.slice(at, end < 0 ? undefined : end).join(' ').replace(/\s+/g, ' ');
}

/** Codes in the first table of docs/exit-codes.md ("| 0 | …"), plus fleet worker's 143 (docs/fleet.md). */
function documentedCodes(): Set<number> {
  const doc = fs.readFileSync(path.join(repo, 'docs/exit-codes.md'), 'utf8');
  const codes = [...doc.split('\n## ')[0]!.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1]));
  const fleet = fs.readFileSync(path.join(repo, 'docs/fleet.md'), 'utf8');
  if (/exits at once \(143\)/.test(fleet)) codes.push(143);
  return new Set(codes);
}

let tmp = '';
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-help-'));
  for (const f of ['xc-core', 'xl-save']) {
    const r = run(['emulate', '--profile', 'linux-4.x', '--e820', SMALL_HOST, '--dom0-mem', '64m,max:64m', '--format', f, '-o', path.join(tmp, `g.${f}`)]);
    expect(r.status, r.stderr).toBe(0);
  }
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('option help states ranges and defaults', () => {
  it.each([
    ['emulate', '--jobs', JOBS_RANGE_TEXT],
    ['audit', '--jobs', JOBS_RANGE_TEXT],
    ['scan', '--jobs', JOBS_RANGE_TEXT],
    ['sweep', '--jobs', JOBS_RANGE_TEXT],
    ['emulate', '--seed', SEED_RANGE_TEXT],
    ['sweep', '--seed', SEED_RANGE_TEXT],
    ['emulate', '--dom0-mem', "default: the log's dom0_mem=, else Xen's own"],
  ])('%s %s help says %s', (cmd, flag, text) => {
    expect(optionHelp(run([cmd, '--help']).stdout, flag)).toContain(text);
  });

  it('the --jobs range in the help is the one the validator enforces', () => {
    expect(JOBS_RANGE_TEXT).toBe(`${JOBS_MIN}–${JOBS_MAX}`);
    expect(parseJobs(String(JOBS_MAX))).toBe(JOBS_MAX);
    expect(() => parseJobs(String(JOBS_MAX + 1))).toThrow();
    expect(() => parseJobs(String(JOBS_MIN - 1))).toThrow();
  });

  it.each([['emulate'], ['sweep']])('%s --help shows no JavaScript object as a default', (cmd) => {
    const help = run([cmd, '--help']).stdout;
    expect(help).not.toMatch(/default: [{[]/);
    expect(optionHelp(help, '--config')).toContain('(default: none)');
  });
});

describe('every command has examples and exit codes', () => {
  const commands = Object.keys(COMMAND_HELP);
  it('every top-level command has an entry', () => {
    const listed = [...run(['--help']).stdout.split('Commands:\n')[1]!.split('\n\n')[0]!.matchAll(/^ {2}([a-z0-9-]+)/gm)].map((m) => m[1]).filter((c) => c !== 'help');
    expect(listed.sort()).toEqual([...commands].sort());
  });
  it.each(commands.map((c) => [c]))('%s --help: examples run that command; every code is documented', (cmd) => {
    const r = run([cmd, '--help']);
    expect(r.status).toBe(0);
    const examples = r.stdout.split('\nExamples:\n')[1]!.split('\n\n')[0]!.split('\n');
    expect(examples.length).toBeGreaterThan(0);
    for (const e of examples) expect(e.trim().startsWith(`p2m-audit ${cmd}`), e).toBe(true);
    const codes = [...r.stdout.split('\nExit codes')[1]!.matchAll(/^ {2}(\d+) /gm)].map((m) => Number(m[1]));
    const documented = documentedCodes();
    for (const c of codes) expect(documented.has(c), `exit ${c}`).toBe(true);
    expect(codes).toContain(EXIT_INPUT_ERROR);
  });
  it('the verdict codes in the help are audit/verdict.ts\'s', () => {
    const text = run(['audit', '--help']).stdout.split('\nExit codes')[1]!;
    for (const [code, word] of [[EXIT_CLEAN, 'clean'], [EXIT_FATAL, 'fatal'], [EXIT_WARNINGS, 'warnings'], [EXIT_PARTIAL, 'partial']] as const) {
      expect(text).toMatch(new RegExp(`^ {2}${code} {2}${word}`, 'm'));
    }
  });
});

describe('one error style', () => {
  it.each([
    [['--bogus']],
    [['audit', '--jobs', '0', 'x.p2ms']],
    [['scan', '--jobs', String(JOBS_MAX + 1), 'x']],
    [['emulate', '--format', 'nope']],
    [['sweep', '--e820', SMALL_HOST]],
    [['audit', 'no-such-file.p2ms']],
  ])('p2m-audit %j: "p2m-audit: " line, exit 2, nothing on stdout', (args) => {
    const r = run(args);
    expect(r.status).toBe(EXIT_INPUT_ERROR);
    expect(r.stdout).toBe('');
    expect(r.stderr.startsWith('p2m-audit: ')).toBe(true);
    expect(r.stderr).not.toMatch(/^error:/m);
  });
});

describe('no temporary names in output errors', () => {
  it('a write that fails names the output, not its temporary file', () => {
    const out = path.join(tmp, 'x.p2ms');
    let message = '';
    try {
      writeOutput(out, {}, () => {
        // what fs.writeSync throws on a full disk: the path it was writing (the temporary file) in the message
        const tmpName = fs.readdirSync(tmp).find((n) => n.endsWith('.tmp'))!;
        throw Object.assign(new Error(`ENOSPC: no space left on device, write '${path.join(tmp, tmpName)}'`), { code: 'ENOSPC', syscall: 'write' });
      });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toBe(`${out}: cannot write (ENOSPC: no space left on device)`);
    expect(fs.readdirSync(tmp).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
  it('an --svg into a missing directory names that path', () => {
    const r = run(['audit', CLEAN, '--svg', path.join(tmp, 'none', 'x.svg')]);
    expect(r.status).toBe(EXIT_INPUT_ERROR);
    expect(r.stderr).not.toContain('.tmp');
  });
});

describe('report wording', () => {
  it('a dump-core is "an xl dump-core (xc_core) image"', () => {
    const r = run(['restore-check', path.join(tmp, 'g.xc-core')]);
    expect(r.status).toBe(EXIT_INPUT_ERROR);
    expect(r.stderr).toContain('is an xl dump-core (xc_core) image');
    expect(r.stderr).not.toMatch(/\ba xc/);
  });

  it.each([
    ['without symbols: hint', [], true],
    ['with --system-map: none missing, no hint', ['--system-map', 'corpora/real/System.map-6.1.0-56-amd64.gz'], false],
  ])('inspect %s', (_name, extra, hinted) => {
    const core = path.join(tmp, 'g.xc-core');
    const beside = `${core}.map`;
    const map = fs.readFileSync(beside);
    fs.rmSync(beside); // an image with no symbols of its own
    try {
      const r = run(['inspect', core, ...extra]);
      expect(r.status).toBe(0);
      expect(r.stdout.includes('pass --system-map FILE')).toBe(hinted);
    } finally {
      fs.writeFileSync(beside, map);
    }
  });

  it("a CLEAN report says its last benign range is the p2m's unused end (the --json report's last range)", () => {
    const json = JSON.parse(run(['audit', CLEAN, '--json']).stdout) as { verdict: string; auditedPfns: string; benign: { class: string; start: string; end: string }[] };
    expect(json.verdict).toBe('CLEAN');
    const last = json.benign[json.benign.length - 1]!;
    // the JSON prints ends inclusive: the range runs to the last audited pfn
    expect(Number(last.end) + 1).toBe(Number(json.auditedPfns));
    const text = run(['audit', CLEAN]).stdout;
    expect(text).toContain(`(${last.class} ${last.start}-${last.end} is the p2m's unused end`);
  });

  it('the SVG says its pfn axis is not linear exactly when it cuts or widens', () => {
    expect(axisNote(false, false)).toBeNull();
    expect(axisNote(true, false)).toMatch(/not linear.*cut at the zig-zags/);
    expect(axisNote(false, true)).toMatch(/not linear.*widened/);
    const svg = run(['audit', CLEAN, '--svg', '-']).stdout;
    expect(svg).toContain('break: '); // the picture has a cut stretch
    expect(svg).toMatch(/pfn axis not linear[^<]*cut at the zig-zags/);
  });

  it.each([
    ['xl-save', true],
    ['xc-core', false],
  ])('p2m of an %s: the " (type …)" suffix only where the image records page types', (fmt, typed) => {
    const r = run(['p2m', path.join(tmp, `g.${fmt}`)]);
    expect(r.status).toBe(0);
    const first = r.stdout.split('\n').find((l) => l.startsWith('  pfn='))!;
    expect(first.includes('(type ')).toBe(typed);
  });
  it('p2m --help says why a dump-core has no page types', () => {
    expect(run(['p2m', '--help']).stdout).toMatch(/xl dump-core \(xc_core\) file\s+records no page types/);
  });
});
