#!/usr/bin/env node
// `npm start` (after `npm run build`): the corpus tour. The real files of corpora/real/ are stored compressed
// (gzip, zstd: recognised by their magic bytes, not their names); they are decompressed once into
// node_modules/.cache/p2m-audit/real/ (never over the inputs; a copy newer than its source is reused); the seed
// scenario's dom0 kdumps (ELF vmcore, makedumpfile's compressed form) are written into
// node_modules/.cache/p2m-audit/scenarios/ (src/corpora/scenario-kdumps.ts, about a second); then the
// scenarios, the real files, those copies and the kdumps are audited by one `scan` (the engine of `p2m-audit scan`).
// Audited files get a line each; the files scan skips (scenario descriptions, host maps, symbol tables) one
// summary line; then the scan summary and where to go next. Exit 0 whatever the verdicts; 2 or 4 only when
// the scan itself fails (as `p2m-audit scan` would).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const realDir = path.join(repo, 'corpora/real');
const cacheDir = path.join(repo, 'node_modules/.cache/p2m-audit/real');
const rel = (p) => path.relative(process.cwd(), p) || '.';
/** Free space asked for before a zstd file is expanded (the real dom0 vmcore is 1.8 GB). */
const ZSTD_FREE_BYTES = 4 * 2 ** 30;

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

function head(file) {
  const fd = fs.openSync(file, 'r');
  try {
    const b = Buffer.alloc(4);
    const n = fs.readSync(fd, b, 0, 4, 0);
    return b.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

function codecOf(file) {
  const h = head(file);
  if (h.subarray(0, 2).equals(GZIP_MAGIC)) return 'gzip';
  if (h.equals(ZSTD_MAGIC)) return 'zstd';
  return null;
}

/** The copy's name: the source's without its .gz / .zst ending (a name without one gets ".raw"). */
function copyName(file, codec) {
  const base = path.basename(file);
  const ext = codec === 'gzip' ? /\.gz$/i : /\.zst$/i;
  return ext.test(base) ? base.replace(ext, '') : `${base}.raw`;
}

function hasZstdCli() {
  return spawnSync('zstd', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** Decompress `file` to `out` through a temporary file beside it (renamed when complete). */
async function expand(file, codec, out) {
  const tmp = `${out}.tmp-${process.pid}`;
  try {
    if (codec === 'gzip') {
      await pipeline(fs.createReadStream(file), zlib.createGunzip(), fs.createWriteStream(tmp));
    } else if (typeof zlib.createZstdDecompress === 'function') {
      await pipeline(fs.createReadStream(file), zlib.createZstdDecompress(), fs.createWriteStream(tmp));
    } else {
      const r = spawnSync('zstd', ['-d', '-q', '-f', file, '-o', tmp], { stdio: ['ignore', 'ignore', 'pipe'] });
      if (r.status !== 0) throw new Error(`zstd -d failed: ${String(r.stderr).trim()}`);
    }
    fs.renameSync(tmp, out);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Decompressed copies of the compressed real files (made now or reused), and one note per file left out. */
async function realCopies() {
  const copies = [];
  const plain = [];
  const notes = [];
  if (!fs.existsSync(realDir)) return { copies, plain, notes };
  fs.mkdirSync(cacheDir, { recursive: true });
  let zstdOk = null;
  for (const name of fs.readdirSync(realDir).sort()) {
    const file = path.join(realDir, name);
    if (!fs.statSync(file).isFile()) continue;
    const codec = codecOf(file);
    if (!codec) {
      plain.push(file);
      continue;
    }
    const out = path.join(cacheDir, copyName(file, codec));
    const fresh = fs.existsSync(out) && fs.statSync(out).mtimeMs >= fs.statSync(file).mtimeMs;
    if (!fresh) {
      if (codec === 'zstd') {
        zstdOk ??= typeof zlib.createZstdDecompress === 'function' || hasZstdCli();
        if (!zstdOk) {
          notes.push(`${rel(file)} left out: zstd data needs the zstd command (apt install zstd) or Node.js >= 22.15`);
          continue;
        }
        const free = fs.statfsSync(cacheDir);
        if (free.bavail * free.bsize < ZSTD_FREE_BYTES) {
          notes.push(`${rel(file)} left out: less than 4 GiB free in ${rel(cacheDir)} to expand it`);
          continue;
        }
      }
      process.stderr.write(`decompressing ${rel(file)} -> ${rel(out)} (once)\n`);
      await expand(file, codec, out);
    }
    copies.push(out);
  }
  return { copies, plain, notes };
}

function dist(p) {
  return import(path.join(repo, 'dist/src', p));
}

async function main() {
  const { runScan } = await dist('scan/scan.js');
  const { resultText } = await dist('scan/results.js');
  const { renderSummary } = await dist('scan/summary.js');
  const { writeScenarioKdumps, KDUMP_CACHE } = await dist('corpora/scenario-kdumps.js');
  const { copies, plain, notes } = await realCopies();
  const kdumps = await writeScenarioKdumps(path.join(repo, 'corpora/scenarios'), path.join(repo, KDUMP_CACHE));
  const systemMap = copies.find((f) => /^System\.map-/.test(path.basename(f)));
  const paths = [path.join(repo, 'corpora/scenarios'), ...plain, ...copies, ...kdumps.flatMap((k) => [k.vmcore, k.compressed])].filter((p) => fs.existsSync(p)).map(rel);
  const skipped = new Map();
  const outcome = await runScan(paths, {
    jobs: 2,
    json: true,
    progress: false,
    systemMap: systemMap ? rel(systemMap) : undefined,
    write: (line) => {
      const r = JSON.parse(line);
      if (r.schema !== 'p2m-audit/scan@1') return; // the summary is rendered below
      if (r.status === 'skipped') {
        const why = String(r.reason ?? 'unrecognised').replace(/\s*\(.*$/, '');
        skipped.set(why, (skipped.get(why) ?? 0) + 1);
        return;
      }
      process.stdout.write(resultText(r) + '\n');
    },
  });
  const nSkipped = [...skipped.values()].reduce((a, b) => a + b, 0);
  if (nSkipped) {
    const kinds = [...skipped].map(([why, n]) => (skipped.size === 1 ? why : `${why}: ${n}`)).join(', ');
    process.stdout.write(`skipped ${nSkipped} files that are not images (${kinds}): scenario descriptions, host maps, symbol tables\n`);
  }
  for (const n of notes) process.stdout.write(`note: ${n}\n`);
  for (const line of renderSummary(outcome.summary)) process.stdout.write(line + '\n');
  const worst = outcome.summary.worst[0]?.file ?? 'corpora/scenarios/seed-backport.p2ms';
  const save = copies.find((f) => path.basename(f) === 'pvplain.save');
  const next = [
    '',
    'next (npx runs the CLI of this checkout; `npm link` puts p2m-audit on your PATH):',
    `  npx p2m-audit audit ${worst}            # the worst file: every fatal range, its cause and what breaks`,
    ...kdumps.map((k) => `  npx p2m-audit audit ${rel(k.vmcore)}   # the seed as a dom0 crash dump: the verdict in crash's terms`),
    ...(save && systemMap ? [`  npx p2m-audit restore-check ${rel(save)} --system-map ${rel(systemMap)}   # a real xl save, read as restore would`] : []),
    '  npx p2m-audit emulate --from-log test/fixtures/logs/efi-xen4.18-linux6.8.txt --compare   # predict a real boot from its log',
    '  npx p2m-audit sweep --e820 corpora/scenarios/hosts/seed-host.txt --dom0-mem 512m..4g:512m   # which dom0_mem values lose memory',
    '  README.md: the seed case, real files, kernel auditing; docs/scan.md for scanning your own files',
  ];
  process.stdout.write(next.join('\n') + '\n');
  return [0, 1, 3].includes(outcome.exitCode) ? 0 : outcome.exitCode;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`npm start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = err?.constructor?.name === 'InputError' ? 2 : 4;
  },
);
