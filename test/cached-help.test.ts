// The help cache (src/commands/cached-help.ts, written by scripts/bundle.mjs): `--help` answered without the
// commander program must print exactly what commander prints (the second code path: the same CLI with the
// cache off), and the cache must be what answers — and only for the build it was rendered from.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HELP_CACHE_ENV, HELP_CACHE_FILE, helpRequest, type HelpCache } from '../src/commands/cached-help.js';

const repo = path.resolve(__dirname, '..');
const cli = path.join(repo, 'dist/src/cli.js');
const cacheFile = path.join(repo, 'dist/src/commands', HELP_CACHE_FILE);
const run = (entry: string, args: string[], cache: boolean) =>
  spawnSync(process.execPath, [entry, ...args], { encoding: 'utf8', env: { ...process.env, [HELP_CACHE_ENV]: cache ? '1' : '0' } });

/** The commands commander lists in the program's help (its "Commands:" block), `help` aside. */
function listedCommands(programHelp: string): string[] {
  const block = programHelp.split('\nCommands:\n')[1] ?? '';
  const names: string[] = [];
  for (const line of block.split('\n')) {
    if (line.trim() === '') break;
    const m = /^ {2}([a-z][a-z0-9-]*)/.exec(line);
    if (m && m[1] !== 'help') names.push(m[1]!);
  }
  return names;
}

describe('help cache', () => {
  const programHelp = run(cli, ['--help'], false).stdout;
  const commands = listedCommands(programHelp);

  it('the build rendered the program and every command commander lists', () => {
    const cache = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as HelpCache;
    expect(commands.length).toBeGreaterThanOrEqual(9);
    expect(Object.keys(cache.help).sort()).toEqual(['', ...commands].sort());
    expect(cache.width).toBe(80);
  });

  it.each([['--help'], ['-h'], ...['audit', 'scan', 'emulate', 'p2m', 'inspect', 'restore-check', 'sweep', 'profiles', 'fleet'].flatMap((c) => [[c, '--help'], [c, '-h']])])(
    'p2m-audit %s %s prints what commander prints, exit 0',
    (...args: string[]) => {
      const fast = run(cli, args, true);
      const slow = run(cli, args, false);
      expect(slow.status).toBe(0);
      expect(fast.status).toBe(0);
      expect(fast.stderr).toBe('');
      expect(fast.stdout).toBe(slow.stdout);
    },
  );

  it.each([
    [['--help'], ''],
    [['-h'], ''],
    [['audit', '--help'], 'audit'],
    [['audit', '-h'], 'audit'],
    [['audit', 'x.p2ms', '--help'], null],
    [['--help', 'audit'], null],
    [['help', 'audit'], null],
    [['AUDIT', '--help'], null],
    [[], null],
    [['--version'], null],
  ])('helpRequest(%j) = %j', (argv, want) => {
    expect(helpRequest(argv)).toBe(want);
  });

  describe('on a copy of the build', () => {
    let tmp = '';
    let entry = '';
    let copyCache = '';
    beforeAll(() => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-help-cache-'));
      fs.cpSync(path.join(repo, 'dist'), path.join(tmp, 'dist'), { recursive: true, preserveTimestamps: true });
      fs.copyFileSync(path.join(repo, 'package.json'), path.join(tmp, 'package.json'));
      fs.symlinkSync(path.join(repo, 'node_modules'), path.join(tmp, 'node_modules'));
      entry = path.join(tmp, 'dist/src/cli.js');
      copyCache = path.join(tmp, 'dist/src/commands', HELP_CACHE_FILE);
      const cache = JSON.parse(fs.readFileSync(copyCache, 'utf8')) as HelpCache;
      cache.help['scan'] = 'MARKED scan help\n';
      fs.writeFileSync(copyCache, JSON.stringify(cache));
    });
    afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

    it('the cached text is what answers (a marked entry comes out as marked)', () => {
      expect(run(entry, ['scan', '--help'], true).stdout).toBe('MARKED scan help\n');
      expect(run(entry, ['scan', '--help'], false).stdout).toBe(run(cli, ['scan', '--help'], false).stdout);
    });

    it('another build of the entry (other text) retires the cache: commander answers', () => {
      fs.appendFileSync(entry, '\n// rebuilt\n');
      const r = run(entry, ['scan', '--help'], true);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(run(cli, ['scan', '--help'], false).stdout);
    });

    it('no cache file: commander answers', () => {
      fs.rmSync(copyCache);
      expect(run(entry, ['--help'], true).stdout).toBe(programHelp);
    });
  });
});
