// Fuzz reproducers (docs/fuzz.md): the mutant's bytes written under its sha256 with a .txt of how it failed
// and how to replay or regenerate it, and the replay of one file in a child under the same limits.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import type { Anatomy } from './anatomy.js';
import { ChildRunner } from './child-runner.js';
import { defaultWorkParent, gunzipTo, GZ } from './corpus.js';
import { DEFAULT_HANG_MS, DEFAULT_RSS_LIMIT, MiB } from './limits.js';
import { describeOutcome, type Outcome } from './outcome.js';
import { applyPatch, type Mutant } from './patch.js';

/** Reproducers above this size are written gzip-compressed (<hash>.<ext>.gz). */
const GZIP_REPRO_ABOVE = 16 * MiB;
/** Hex digits of the sha256 that name a reproducer. */
const HASH_DIGITS = 16;

export async function writeReproducer(
  dir: string,
  a: Anatomy,
  mutant: Mutant,
  outcome: Outcome,
  signature: string,
  seed: number,
  classes: string[] | undefined,
): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  const base = mutant.patch.replace ? Buffer.alloc(0) : fs.readFileSync(a.basePath);
  const content = applyPatch(base, mutant.patch);
  const hash = createHash('sha256').update(content).digest('hex').slice(0, HASH_DIGITS);
  let file = path.join(dir, `${hash}.${a.ext}`);
  if (content.length > GZIP_REPRO_ABOVE) {
    file += GZ;
    fs.writeFileSync(file, zlib.gzipSync(content));
  } else {
    fs.writeFileSync(file, content);
  }
  const rel = (p: string): string => {
    const r = path.relative(process.cwd(), p);
    return r && !r.startsWith('..') ? r : p;
  };
  const detail =
    outcome.status === 'error'
      ? outcome.stack
      : outcome.status === 'hang'
        ? outcome.stack ?? '(no stack captured)'
        : outcome.status === 'crash'
          ? outcome.stderr
          : describeOutcome(outcome);
  const lines = [
    'p2m-audit fuzz finding',
    `signature: ${signature}`,
    `kind: ${outcome.status}`,
    `corpus file: ${a.source} (format ${a.format}, ${a.size} bytes)`,
    `symbols: ${a.symbolsPath ?? '(none passed; the image carries its own or none)'}`,
    `seed: ${seed}  mutant id: ${mutant.id}  classes: ${mutant.classes.join(', ')}`,
    `mutation: ${mutant.description}`,
    `outcome: ${describeOutcome(outcome)}`,
    '',
    detail,
    '',
    `replay: node --enable-source-maps dist/src/fuzz/cli.js --replay ${rel(file)}${a.symbolsPath ? ` --symbols ${rel(a.symbolsPath)}` : ''}`,
    mutant.id < 0
      ? `regenerate: none needed (the unmodified corpus file ${rel(a.source)})`
      : `regenerate: node dist/src/fuzz/cli.js --corpus ${rel(a.source)} --seed ${seed}${classes ? ` --class ${classes.join(' ')}` : ''} --mutant ${mutant.id}`,
    '',
  ];
  fs.writeFileSync(path.join(dir, `${hash}.txt`), lines.join('\n'));
  return file;
}

/** Replay one file (a reproducer) in a child under the same limits; .gz files are decompressed first. */
export async function replayFile(
  file: string,
  opts: { symbolsPath?: string | null; hangMs?: number; rssLimitBytes?: number; workDir?: string; targetModule?: string } = {},
): Promise<Outcome> {
  const hangMs = opts.hangMs ?? DEFAULT_HANG_MS;
  const rssLimit = opts.rssLimitBytes ?? DEFAULT_RSS_LIMIT;
  const workDir = fs.mkdtempSync(path.join(opts.workDir ?? defaultWorkParent(), 'p2m-fuzz-replay-'));
  let c: ChildRunner | null = null;
  try {
    let target = path.resolve(file);
    if (file.endsWith(GZ)) {
      target = path.join(workDir, path.basename(file, GZ));
      await gunzipTo(file, target);
    }
    c = new ChildRunner({ type: 'init', entries: [], workDir, tag: 'replay', seed: 0, classes: null, rssLimit, hangMs, target: opts.targetModule ?? null }, hangMs, rssLimit);
    const end = await c.run([{ id: 0, entry: -1, kind: 'file', file: target, symbolsPath: opts.symbolsPath ?? null }], () => {});
    return end.results[0]?.outcome ?? end.aborted?.outcome ?? { status: 'crash', exit: 'no result', stderr: '' };
  } finally {
    await c?.end();
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

