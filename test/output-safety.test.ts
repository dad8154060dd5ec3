// Every output of every command follows one rule (src/formats/output-file.ts, README "Outputs"): never an
// input of the run (same path, symbolic link, hard link, a scanned file, emulate's FILE.map side file), never
// anything but a regular file (devices and FIFOs stay, even with --force), an existing file only with
// --force (scan's --out log is appended to), written atomically, checked before the work, and write errors
// are one-line output errors (exit 2) that leave nothing partial. Real files in a temp dir, the built CLI.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/common/errors.js';
import { writeOutput } from '../src/formats/output-file.js';

const repo = path.resolve(__dirname, '..');
const cli = path.join(repo, 'dist/src/cli.js');
const seedHost = path.join(repo, 'corpora/scenarios/hosts/seed-host.txt');
const snapshot = path.join(repo, 'corpora/scenarios/seed-backport.p2ms');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-outputs-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const at = (name: string) => path.join(tmp, name);

function run(args: string[], opts: { shell?: string } = {}): { code: number; stdout: string; stderr: string } {
  const r = opts.shell
    ? spawnSync('bash', ['-c', `${opts.shell}; exec "$0" "$@"`, process.execPath, cli, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 })
    : spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Names in the temp dir that look like a writer's temporary file. */
const temps = () => fs.readdirSync(tmp, { recursive: true }).map(String).filter((n) => n.endsWith('.tmp'));

function mkfifo(p: string): void {
  const r = spawnSync('mkfifo', [p]);
  if (r.status !== 0) throw new Error(`mkfifo ${p} failed: ${r.stderr}`);
}

// the inputs: a host map (with a symbolic and a hard link to it), an image, a directory to scan, FIFOs
beforeAll(() => {
  fs.copyFileSync(seedHost, at('host.txt'));
  fs.symlinkSync('host.txt', at('host-symlink.txt'));
  fs.linkSync(at('host.txt'), at('host-hardlink.txt'));
  fs.copyFileSync(seedHost, at('guest.save.map')); // an --e820 input named like emulate's side file
  fs.writeFileSync(at('kconfig.txt'), 'CONFIG_XEN=y\n');
  fs.copyFileSync(snapshot, at('image.p2ms'));
  fs.symlinkSync('image.p2ms', at('image-symlink.svg'));
  fs.copyFileSync(seedHost, at('image.p2ms.map.src'));
  fs.mkdirSync(at('scanned'));
  fs.copyFileSync(snapshot, at('scanned/a.p2ms'));
  fs.copyFileSync(snapshot, at('scanned/b.p2ms'));
  fs.symlinkSync('scanned/b.p2ms', at('scanned-b-link.jsonl'));
  mkfifo(at('fifo'));
  mkfifo(at('side.save.map'));
  fs.mkdirSync(at('a-directory'));
});

const emulate = (out: string, ...more: string[]) => ['emulate', '--profile', 'linux-4.x', '--e820', at('host.txt'), '--dom0-mem', '1g', '-o', out, ...more];

describe('an output that resolves to an input is refused (exit 2), the input left byte for byte', () => {
  it.each<[string, () => string[], string]>([
    ['emulate -o the --e820 file itself', () => emulate(at('host.txt'), '--force'), 'host.txt'],
    ['emulate -o a symbolic link to the --e820 file', () => emulate(at('host-symlink.txt'), '--force'), 'host.txt'],
    ['emulate -o a hard link to the --e820 file', () => emulate(at('host-hardlink.txt'), '--force'), 'host.txt'],
    ['emulate -o the --from-log file', () => ['emulate', '--profile', 'linux-4.x', '--from-log', at('host.txt'), '-o', at('host.txt'), '--force'], 'host.txt'],
    ['emulate -o the --kconfig file', () => emulate(at('kconfig.txt'), '--kconfig', at('kconfig.txt'), '--force'), 'kconfig.txt'],
    ['emulate -o the domU --xl-config file', () => ['emulate', '--role', 'domU', '--profile', 'linux-4.x', '--xl-config', at('host.txt'), '-o', at('host-symlink.txt'), '--force'], 'host.txt'],
    [
      "emulate's side file FILE.map landing on the --e820 input",
      () => ['emulate', '--profile', 'linux-4.x', '--e820', at('guest.save.map'), '--dom0-mem', '64m', '--format', 'xl-save', '-o', at('guest.save'), '--force'],
      'guest.save.map',
    ],
    ['audit --svg the image itself', () => ['audit', at('image.p2ms'), '--svg', at('image.p2ms'), '--force'], 'image.p2ms'],
    ['audit --svg a symbolic link to the image', () => ['audit', at('image.p2ms'), '--svg', at('image-symlink.svg'), '--force'], 'image.p2ms'],
    ['audit --svg the --system-map file', () => ['audit', at('image.p2ms'), '--system-map', at('image.p2ms.map.src'), '--svg', at('image.p2ms.map.src'), '--force'], 'image.p2ms.map.src'],
    ['sweep --svg a hard link to the --e820 file', () => ['sweep', '--e820', at('host.txt'), '--dom0-mem', '1g..1g', '--profile', 'linux-4.x', '--jobs', '1', '--svg', at('host-hardlink.txt'), '--force'], 'host.txt'],
    ['scan --out a file given to scan', () => ['scan', at('scanned/a.p2ms'), '--out', at('scanned/a.p2ms'), '--jobs', '1'], 'scanned/a.p2ms'],
    ['scan --out a file inside a scanned directory', () => ['scan', at('scanned'), '--out', at('scanned/b.p2ms'), '--jobs', '1'], 'scanned/b.p2ms'],
    ['scan --out a symbolic link to a scanned file', () => ['scan', at('scanned'), '--out', at('scanned-b-link.jsonl'), '--jobs', '1'], 'scanned/b.p2ms'],
  ])('%s', (_what, args, input) => {
    const before = fs.readFileSync(at(input));
    const a = args();
    const r = run(a);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^p2m-audit: \S+: is an input of this run.*; refusing to write over it\n$/);
    expect(fs.readFileSync(at(input)).equals(before)).toBe(true);
    expect(temps()).toEqual([]);
  });

  it('scan --out a new log inside a scanned directory is refused too (the next --resume would scan it)', () => {
    const r = run(['scan', at('scanned'), '--out', at('scanned/results.jsonl'), '--jobs', '1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/results\.jsonl: is inside the scanned directory .*scanned/);
    expect(fs.existsSync(at('scanned/results.jsonl'))).toBe(false);
  });
});

describe('outputs are regular files only: a device, FIFO or directory is refused even with --force and left as it was', () => {
  it.each<[string, () => string[], string]>([
    ['emulate -o /dev/null --force', () => emulate('/dev/null', '--force'), '/dev/null'],
    ['emulate -o a FIFO --force', () => emulate(at('fifo'), '--force'), at('fifo')],
    ["emulate's side file FILE.map on a FIFO", () => emulate(at('side.save'), '--format', 'xl-save', '--force'), at('side.save.map')],
    ['emulate -o a directory --force', () => emulate(at('a-directory'), '--force'), at('a-directory')],
    ['audit --svg a FIFO --force', () => ['audit', at('image.p2ms'), '--svg', at('fifo'), '--force'], at('fifo')],
    ['sweep --svg /dev/null --force', () => ['sweep', '--e820', at('host.txt'), '--dom0-mem', '1g..1g', '--profile', 'linux-4.x', '--jobs', '1', '--svg', '/dev/null', '--force'], '/dev/null'],
    ['scan --out a FIFO', () => ['scan', at('scanned'), '--out', at('fifo'), '--jobs', '1'], at('fifo')],
  ])('%s', (_what, args, node) => {
    const before = fs.statSync(node);
    const r = run(args());
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^p2m-audit: ${node.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: is a (character device|FIFO|directory); outputs are written only as regular files`));
    const after = fs.statSync(node);
    expect([after.mode, after.ino, after.rdev]).toEqual([before.mode, before.ino, before.rdev]);
    expect(fs.existsSync(at('side.save'))).toBe(false); // nothing written when the side file is refused
    expect(temps()).toEqual([]);
  });
});

describe('one rule for existing files: refused without --force, replaced with --force', () => {
  it.each<[string, string, (out: string) => string[], RegExp]>([
    ['emulate -o', 'exists.p2ms', (out) => emulate(out), /^P2MSNAP\0/],
    ["emulate's side file FILE.map", 'exists.save.map', (out) => ['emulate', '--profile', 'linux-4.x', '--e820', at('host.txt'), '--dom0-mem', '64m', '--format', 'xl-save', '-o', out.replace(/\.map$/, '')], /^[0-9a-f]{16} \S /],
    ['audit --svg', 'exists-audit.svg', (out) => ['audit', at('image.p2ms'), '--svg', out], /^<svg /],
    ['sweep --svg', 'exists-sweep.svg', (out) => ['sweep', '--e820', at('host.txt'), '--dom0-mem', '1g..1g', '--profile', 'linux-4.x', '--jobs', '1', '--svg', out], /^<svg /],
  ])('%s', (_what, name, args, written) => {
    const out = at(name);
    fs.writeFileSync(out, 'keep me');
    const refused = run(args(out));
    expect(refused.code).toBe(2);
    expect(refused.stdout).toBe(''); // refused before the work: no verdict thrown away, none printed
    expect(refused.stderr).toBe(`p2m-audit: ${out}: already exists (use --force to replace it)\n`);
    expect(fs.readFileSync(out, 'utf8')).toBe('keep me');
    const forced = run([...args(out), '--force']);
    expect([0, 1]).toContain(forced.code);
    expect(fs.readFileSync(out, 'latin1')).toMatch(written);
    expect(temps()).toEqual([]);
    fs.rmSync(out.replace(/\.map$/, ''), { force: true });
  });

  it('scan --out appends to an existing log (no --force needed), whole lines only', () => {
    const log = at('results.jsonl');
    fs.writeFileSync(log, '');
    for (let k = 1; k <= 2; k++) {
      const r = run(['scan', at('scanned'), '--out', log, '--jobs', '1', '--json']);
      expect(r.code).toBe(1);
      expect(fs.readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(2 * k);
    }
  });
});

describe('bad output paths are refused before the work starts', () => {
  const missing = path.join(tmp, 'no-such-dir');
  it.each<[string, string, (out: string) => string[]]>([
    ['audit --svg', 'x.svg', (out) => ['audit', snapshot, '--svg', out]],
    ['sweep --svg', 'x.svg', (out) => ['sweep', '--e820', seedHost, '--dom0-mem', '1g..1g', '--profile', 'linux-4.x', '--jobs', '1', '--svg', out]],
    ['emulate -o', 'x.p2ms', (out) => ['emulate', '--profile', 'linux-4.x', '--e820', seedHost, '--dom0-mem', '1g', '-o', out]],
    ['scan --out', 'x.jsonl', (out) => ['scan', snapshot, '--out', out]],
  ])('%s into a missing directory: exit 2, nothing on stdout (the audit never ran)', (_what, name, args) => {
    const out = path.join(missing, name);
    const r = run(args(out));
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`p2m-audit: ${out}: cannot be created: directory ${missing} does not exist\n`);
  });
});

describe('write errors are output errors: one line naming the path and the cause, exit 2, nothing partial', () => {
  // `ulimit -f` (1 KiB blocks) makes the kernel fail writes past the limit with EFBIG
  it.each<[string, string, string[]]>([
    ['emulate -o, xl-save format', 'big.save', ['emulate', '--profile', 'linux-4.x', '--e820', seedHost, '--dom0-mem', '64m', '--format', 'xl-save']],
    ['emulate -o, p2ms format', 'big.p2ms', ['emulate', '--profile', 'linux-4.x', '--e820', seedHost, '--dom0-mem', '1g']],
    ['audit --svg', 'big.svg', ['audit', snapshot, '--svg']],
  ])('%s past the file size limit', (_what, name, args) => {
    const out = at(name);
    const full = args[0] === 'audit' ? [...args, out] : [...args, '-o', out];
    const r = run(full, { shell: 'ulimit -f 4' });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`p2m-audit: ${out}: cannot write (EFBIG: file too large)\n`);
    expect(fs.existsSync(out)).toBe(false);
    expect(temps()).toEqual([]);
  });

  it('scan --out: the log keeps whole lines only when the disk is "full", exit 2', () => {
    fs.mkdirSync(at('many'));
    for (let k = 0; k < 5; k++) fs.copyFileSync(snapshot, at(`many/g${k}.p2ms`));
    const log = at('limited.jsonl');
    const r = run(['scan', at('many'), '--out', log, '--jobs', '1', '--no-progress'], { shell: 'ulimit -f 1' });
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`p2m-audit: ${log}: cannot append to the results log (EFBIG: file too large)\n`);
    const text = fs.readFileSync(log, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.length).toBeLessThan(5);
    for (const l of lines) expect(JSON.parse(l).schema).toBe('p2m-audit/scan@1');
    expect(r.stdout.trim().split('\n')).toHaveLength(lines.length); // printed exactly what was logged
  });

  it('a full standard output is exit 2 with one line, not an internal error', () => {
    const r = spawnSync('bash', ['-c', `"$0" "$1" profiles > /dev/full`, process.execPath, cli], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toBe('p2m-audit: cannot write standard output (ENOSPC: no space left on device)\n');
  });

  it('writeOutput: a failing writer leaves the old file and no temporary file', () => {
    const out = at('kept.txt');
    fs.writeFileSync(out, 'old');
    expect(() =>
      writeOutput(out, { force: true }, (fd) => {
        fs.writeSync(fd, 'half');
        throw new Error('writer failed');
      }),
    ).toThrow('writer failed');
    expect(fs.readFileSync(out, 'utf8')).toBe('old');
    expect(() => writeOutput(out, {}, () => 0)).toThrow(InputError);
    writeOutput(out, { force: true }, (fd) => fs.writeSync(fd, 'new'));
    expect(fs.readFileSync(out, 'utf8')).toBe('new');
    expect(temps()).toEqual([]);
  });
});
