// bin/p2m-audit, the package's command: starts node from the startup snapshot dist/src/cli.blob (scripts/bundle.mjs,
// scripts/cli-snapshot.mjs) when node would accept the blob, else runs dist/src/cli.js. What it prints and its exit
// code must be exactly those of `node dist/src/cli.js` (the second code path) for every kind of answer; which of the
// two it started is read from the shell's own trace (`sh -x`: the command it execs), not from the output.
// P2M_AUDIT_PKG_ROOT names another built package (bin/, dist/, node_modules/) to test; default: this checkout.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = process.env.P2M_AUDIT_PKG_ROOT ?? path.resolve(__dirname, '..');
const launcher = path.join(root, 'bin/p2m-audit');
const cli = path.join(root, 'dist/src/cli.js');
const scenarios = path.resolve(__dirname, '../corpora/scenarios');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-launcher-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The environment the launcher is meant for: no NODE_OPTIONS (vitest's runner may set it), plus `extra`. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, ...extra };
  if (!('NODE_OPTIONS' in extra)) delete e.NODE_OPTIONS;
  return e;
}

/** The launcher traced by `sh -x`: the program's output, and the node command line it exec'd (the trace's last `exec`). */
function viaLauncher(args: string[], extra: Record<string, string> = {}, bin = launcher) {
  const r = spawnSync('sh', ['-x', bin, ...args], { encoding: 'utf8', env: env(extra) });
  const trace = r.stderr.split('\n').filter((l) => l.startsWith('+ '));
  const exec = trace.filter((l) => l.startsWith('+ exec ')).at(-1) ?? '';
  const stderr = r.stderr.split('\n').filter((l) => !l.startsWith('+ ')).join('\n');
  return { status: r.status, stdout: r.stdout, stderr, exec };
}

function viaNode(args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: env() });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** scan's lines carry the time each file took and when: everything else must match. */
const stable = (stdout: string): string => stdout.replace(/"(ms|at|elapsedMs|filesPerSecond)":[^,}]+/g, '"$1":0');

const fromBlob = /--snapshot-blob \S*\/dist\/src\/cli\.blob -- /;
const fromCliJs = /exec node \S*\/dist\/src\/cli\.js/;

describe('bin/p2m-audit from the startup snapshot', () => {
  it.each([
    ['--version', ['--version']],
    ['-V', ['-V']],
    ['program help', ['--help']],
    ['audit help', ['audit', '--help']],
    ['unknown option', ['audit', '--no-such-option']],
    ['missing file (exit 2)', ['audit', path.join(tmp, 'missing.p2ms')]],
    ['FATAL scenario (exit 1)', ['audit', path.join(scenarios, 'seed-backport.p2ms'), '--json']],
    ['CLEAN scenario, text report', ['audit', path.join(scenarios, 'seed-6.1.p2ms')]],
    ['inspect', ['inspect', path.join(scenarios, 'seed-backport.p2ms')]],
    ['profiles', ['profiles']],
  ])('%s: same stdout, stderr and exit code as node dist/src/cli.js', (_name, args) => {
    const a = viaLauncher(args);
    const b = viaNode(args);
    expect(a.exec).toMatch(fromBlob);
    expect(a.status).toBe(b.status);
    expect(a.stdout).toBe(b.stdout);
    expect(a.stderr).toBe(b.stderr);
  });

  it('scan (worker pool, external packages required at run time): same lines as node dist/src/cli.js', () => {
    const a = viaLauncher(['scan', scenarios, '--json', '--jobs', '2']);
    const b = viaNode(['scan', scenarios, '--json', '--jobs', '2']);
    expect(a.exec).toMatch(fromBlob);
    expect(a.status).toBe(b.status);
    expect(stable(a.stdout).split('\n').sort()).toEqual(stable(b.stdout).split('\n').sort());
    expect(a.stdout.split('\n').length).toBeGreaterThan(10);
  });
});

describe('bin/p2m-audit falls back to dist/src/cli.js', () => {
  // a copy of the package whose blob belongs to another node binary, or is older than this one
  const copy = (name: string, edit: (dist: string) => void): string => {
    const dir = path.join(tmp, name);
    fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
    fs.copyFileSync(launcher, path.join(dir, 'bin/p2m-audit'));
    fs.cpSync(path.join(root, 'dist'), path.join(dir, 'dist'), { recursive: true, dereference: true });
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
    fs.copyFileSync(path.join(root, 'package.json'), path.join(dir, 'package.json'));
    edit(path.join(dir, 'dist/src'));
    return path.join(dir, 'bin/p2m-audit');
  };
  const otherNode = copy('other-node', (d) => fs.writeFileSync(path.join(d, 'cli.blob.node'), '/opt/another/node\n'));
  const olderBlob = copy('older-blob', (d) => fs.utimesSync(path.join(d, 'cli.blob'), new Date(0), new Date(0)));
  const noBlob = copy('no-blob', (d) => fs.rmSync(path.join(d, 'cli.blob.node')));
  // cli.js a minute newer than the blob, from the blob's own time (no clock read)
  const tscAfter = copy('tsc-after', (d) => {
    const blob = fs.statSync(path.join(d, 'cli.blob'));
    fs.utimesSync(path.join(d, 'cli.js'), blob.atime, new Date(blob.mtimeMs + 60_000));
  });

  it.each([
    ['NODE_OPTIONS set (V8 flags change the blob; source maps)', launcher, { NODE_OPTIONS: '--enable-source-maps' }],
    ['P2M_AUDIT_SNAPSHOT=0', launcher, { P2M_AUDIT_SNAPSHOT: '0' }],
    ['blob built by another node binary', otherNode, {}],
    ['node binary newer than the blob', olderBlob, {}],
    ['no blob', noBlob, {}],
    ['dist/src/cli.js written after the blob (npx tsc)', tscAfter, {}],
  ] as [string, string, Record<string, string>][])('%s: runs dist/src/cli.js, same answer', (_name, bin, extra) => {
    const args = ['audit', path.join(scenarios, 'seed-backport.p2ms'), '--json'];
    const a = viaLauncher(args, extra, bin);
    const b = viaNode(args);
    expect(a.exec).toMatch(fromCliJs);
    expect(a.status).toBe(1);
    expect(a.stdout).toBe(b.stdout);
  });
});
