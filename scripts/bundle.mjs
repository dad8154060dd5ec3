// The last step of `npm run build` (docs/bench-notes.md "Cold start"): one esbuild bundle per entry point —
// the CLI and each piscina worker — written over tsc's output of that entry (dist/src/cli.js,
// dist/workers/*.js), so every path that spawns or loads them (tests, bin, npm start, the pools) gets the
// bundle with nothing else changed; `npx tsc` alone puts the unbundled entries back, and both work.
// A cold `node dist/src/cli.js …` then reads and compiles one file instead of resolving ~120 modules.
//
// import.meta.url: inside a bundle every module would see the bundle's URL, but modules find their
// neighbours by it (the worker files, dist/wasm/page-flags.wasm, native/, package.json). Each project
// module's `import.meta.url` is therefore rewritten to the URL its tsc output has in dist/, computed from
// the bundle's own URL, so those lookups resolve exactly as in the unbundled build.
// Packages that find files beside their own code (piscina's worker script, bullmq's sandbox, zstd-wasm's
// .wasm, msgpackr's optional native extractor) stay external and load from node_modules as before.
// Source maps (FILE.js.map, sources = the TypeScript files) are kept: `node --enable-source-maps` names
// the .ts files in stack traces.
//
// Then the startup snapshot (docs/bench-notes.md "Session 6", docs/spec-notes/node-startup-snapshot.md): the CLI
// once more as ONE CommonJS file, dist/src/cli.cjs (scripts/cli-snapshot.mjs), and node's snapshot of it after
// loading, dist/src/cli.blob, which the package's command bin/p2m-audit starts from when node accepts it.
//
// Last, the help cache (src/commands/cached-help.ts): what the bundled CLI's commander prints for `--help` and
// `COMMAND --help` at 80 columns, keyed by the entry file it belongs to, so that `--help` needs no program.
//
// usage: node scripts/bundle.mjs [DIST]   (DIST defaults to <repo>/dist; tsc must have run into it)
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.resolve(process.argv[2] ?? path.join(ROOT, 'dist'));

/** Loaded at run time from node_modules, never bundled (see the header). */
const EXTERNAL = ['piscina', 'bullmq', 'ioredis', '@bokuweb/zstd-wasm', 'msgpackr-extract'];
/**
 * msgpackr's Node entry loads an optional native string extractor (a .node addon found through
 * detect-libc and node-gyp-build: ~18 ms of a cold start); the .p2ms reader unpacks a few KiB of
 * metadata, which the plain JavaScript decoder (unpack.js, a third of the package) decodes identically.
 * The emulator's writer gets the plain JavaScript entry (index.js: pack and unpack).
 */
const MSGPACKR_DIR = path.join(ROOT, 'node_modules', 'msgpackr');
const MSGPACKR_UNPACK_ONLY = new Set([path.join(ROOT, 'src', 'formats', 'p2ms.ts')]);

/** Entry points: source → the tsc output path the bundle replaces. */
const ENTRIES = [
  { src: 'src/cli.ts', out: 'src/cli.js' },
  ...fs
    .readdirSync(path.join(ROOT, 'workers'))
    .filter((f) => f.endsWith('.ts'))
    .sort()
    .map((f) => ({ src: `workers/${f}`, out: `workers/${f.replace(/\.ts$/, '.js')}` })),
];

/** CommonJS packages inside an ESM bundle call require() for Node built-ins: give them a real one. */
const BANNER = "import { createRequire as __p2mCreateRequire } from 'node:module'; const require = __p2mCreateRequire(import.meta.url);";

const IMPORT_META_URL = /\bimport\.meta\.url\b/g;

/**
 * Where the bundles' shared chunks go. Entries (dist/src/cli.js, dist/workers/*.js) and chunks all sit one
 * directory below DIST, so one relative path from any of them reaches a module's tsc output.
 */
const CHUNK_DIR = 'bundle';

/**
 * Rewrites each project module's import.meta.url to its tsc output's URL (see the header), relative to `base` (an
 * expression: the bundle's own URL); picks msgpackr's entry. With `lateExternals` (the snapshot's CommonJS bundle,
 * scripts/cli-snapshot.mjs), the external packages are required at run time through globalThis.__p2mRequire.
 */
const moduleUrlPlugin = (base, lateExternals = false) => ({
  name: 'p2m-module-url',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (args) => {
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
      const text = fs.readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return { contents: text, loader: 'ts' };
      const rel = `../${path.relative(ROOT, args.path).replace(/\.ts$/, '.js').split(path.sep).join('/')}`;
      return { contents: text.replace(IMPORT_META_URL, `new URL(${JSON.stringify(rel)}, ${base}).href`), loader: 'ts' };
    });
    b.onResolve({ filter: /^msgpackr$/ }, (args) => ({
      path: path.join(MSGPACKR_DIR, MSGPACKR_UNPACK_ONLY.has(args.importer) ? 'unpack.js' : 'index.js'),
    }));
    if (!lateExternals) return;
    b.onResolve({ filter: new RegExp(`^(${EXTERNAL.map((e) => e.replace(/[/.]/g, '\\$&')).join('|')})$`) }, (args) => ({ path: args.path, namespace: 'p2m-late' }));
    b.onLoad({ filter: /.*/, namespace: 'p2m-late' }, (args) => ({ contents: `module.exports = globalThis.__p2mRequire(${JSON.stringify(args.path)});`, loader: 'js' }));
  },
});

/** What every bundle here shares. */
const COMMON = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  // whitespace and syntax only: names stay as written (profiles, and stack traces without source maps)
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  sourcesContent: false,
  logLevel: 'warning',
  allowOverwrite: true,
};

for (const e of ENTRIES) {
  if (!fs.existsSync(path.join(DIST, e.out))) throw new Error(`${path.join(DIST, e.out)} is missing: run tsc -p tsconfig.json first`);
}
fs.rmSync(path.join(DIST, CHUNK_DIR), { recursive: true, force: true });
// Two builds with code splitting, the CLI's and the workers': a command's modules (and the packages only it
// uses) load when it runs, and chunks are split only where the CLI's own dynamic imports (the program, each
// command) or the workers' shared code need it — one build for all entries cut the audit's modules into 29
// chunks shared with the workers (docs/bench-notes.md "Cold start").
for (const group of [ENTRIES.filter((e) => e.src === 'src/cli.ts'), ENTRIES.filter((e) => e.src !== 'src/cli.ts')]) {
  await build({
    entryPoints: group.map((e) => path.join(ROOT, e.src)),
    outbase: ROOT,
    outdir: DIST,
    entryNames: '[dir]/[name]',
    chunkNames: `${CHUNK_DIR}/[name]-[hash]`,
    ...COMMON,
    splitting: true,
    format: 'esm',
    external: EXTERNAL,
    banner: { js: BANNER },
    plugins: [moduleUrlPlugin('import.meta.url')],
  });
}

// The startup snapshot (docs/bench-notes.md "Session 6"): the CLI as ONE CommonJS file, dist/src/cli.cjs (Node 20
// builds a snapshot from a single script that requires only built-ins), and the blob node builds from it,
// dist/src/cli.blob, which bin/p2m-audit starts from. cli.blob.node records the node binary it belongs to (node
// refuses a blob of another binary or other V8 flags): the launcher uses the blob only with that binary, unchanged.
// Built with the V8 flags the launcher runs with (none: NODE_OPTIONS cleared); node's warnings that node:module
// and node:child_process are "not yet fully verified" in snapshots are expected (both are required at run time).
const SNAPSHOT_CJS = path.join(DIST, 'src/cli.cjs');
const SNAPSHOT_BLOB = path.join(DIST, 'src/cli.blob');
fs.rmSync(SNAPSHOT_BLOB, { force: true });
fs.rmSync(`${SNAPSHOT_BLOB}.node`, { force: true });
await build({
  entryPoints: [path.join(ROOT, 'scripts/cli-snapshot.mjs')],
  outfile: SNAPSHOT_CJS,
  ...COMMON,
  format: 'cjs',
  plugins: [moduleUrlPlugin('globalThis.__p2mBase', true)],
});
{
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const r = spawnSync(process.execPath, ['--snapshot-blob', SNAPSHOT_BLOB, '--build-snapshot', SNAPSHOT_CJS], { env, encoding: 'utf8' });
  // without a blob (a node that cannot build one) bin/p2m-audit runs dist/src/cli.js: a warning, not a failed build
  if (r.status === 0) fs.writeFileSync(`${SNAPSHOT_BLOB}.node`, `${fs.realpathSync(process.execPath)}\n`);
  else process.stderr.write(`bundle: no startup snapshot (node --build-snapshot exited ${r.status}: ${(r.stderr ?? '').trim().split('\n')[0]}); bin/p2m-audit will run dist/src/cli.js\n`);
}

// The help cache: commander's own output (the cache off), program and every command, at 80 columns (stdout is a
// pipe here); keyed by the text of dist/src/cli.js as just written, so a later tsc run (which rewrites it) retires it.
const { entryKey, HELP_CACHE_FILE, HELP_CACHE_ENV, CACHED_HELP_WIDTH } = await import(pathToFileURL(path.join(DIST, 'src/commands/cached-help.js')).href);
const cli = path.join(DIST, 'src/cli.js');
const helpOf = (args) => {
  const r = spawnSync(process.execPath, [cli, ...args, '--help'], { env: { ...process.env, [HELP_CACHE_ENV]: '0' }, encoding: 'utf8' });
  if (r.status !== 0 || r.stderr !== '' || r.stdout === '') throw new Error(`help cache: p2m-audit ${[...args, '--help'].join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
};
const help = { '': helpOf([]) };
const commandsPart = help[''].split(/\nCommands:\n/)[1] ?? '';
for (const line of commandsPart.split('\n')) {
  if (line.trim() === '') break;
  const name = /^ {2}([a-z][a-z0-9-]*)\b/.exec(line)?.[1];
  if (name && name !== 'help') help[name] = helpOf([name]);
}
const cacheFile = path.join(DIST, 'src/commands', HELP_CACHE_FILE);
fs.writeFileSync(`${cacheFile}.tmp`, JSON.stringify({ entry: entryKey(cli), width: CACHED_HELP_WIDTH, help }));
fs.renameSync(`${cacheFile}.tmp`, cacheFile);
