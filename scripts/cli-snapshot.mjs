// The entry of p2m-audit's user-land startup snapshot (Node's `--build-snapshot`, doc/api/cli.md, and
// lib/internal/v8/startup_snapshot.js: setDeserializeMainFunction; docs/bench-notes.md "Session 6").
// scripts/bundle.mjs bundles this file and the program into ONE CommonJS file, dist/src/cli.cjs, and runs
// `node --snapshot-blob dist/src/cli.blob --build-snapshot dist/src/cli.cjs`: the program (commander and every
// option) and the audit command are loaded and initialised then, so bin/p2m-audit, which starts node from the
// blob, begins with them in the heap. `node dist/src/cli.js` (tests, bench, README) is untouched.
//
// While the snapshot is built only node's built-in modules can be required, and nothing may run that needs the
// install's location: every module's import.meta.url is rewritten (by the bundler) to a URL relative to
// globalThis.__p2mBase, and the external packages (piscina, bullmq, ioredis, zstd-wasm) are required through
// globalThis.__p2mRequire; both are set here when the program starts, from where the blob (or this file) lies.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import { packageVersion, quickAnswer, writeQuickAnswer } from '../src/commands/cached-help.js';
import { main } from '../src/commands/program.js';
import '../src/commands/audit.js';

/** Run the program on `args` as the bundle at `cjsPath` (dist/src/cli.cjs: beside tsc's dist/src/cli.js). */
function run(cjsPath, args) {
  globalThis.__p2mBase = pathToFileURL(cjsPath).href;
  globalThis.__p2mRequire = createRequire(cjsPath);
  // `--version`, and `--help` from the help cache of the build beside it (keyed by dist/src/cli.js), as src/cli.ts
  const quick = quickAnswer(args, path.join(path.dirname(cjsPath), 'cli.js'));
  if (quick !== null) {
    process.exitCode = writeQuickAnswer(quick);
    return;
  }
  main(args, packageVersion).then((code) => {
    process.exitCode = code;
  });
}

/** The blob this process started from: `--snapshot-blob FILE` or `--snapshot-blob=FILE` in node's own options. */
function blobPath() {
  const a = process.execArgv;
  const i = a.indexOf('--snapshot-blob');
  if (i >= 0 && i + 1 < a.length) return path.resolve(a[i + 1]);
  const eq = a.find((x) => x.startsWith('--snapshot-blob='));
  if (eq) return path.resolve(eq.slice('--snapshot-blob='.length));
  throw new Error('started from a snapshot without --snapshot-blob');
}

if (v8.startupSnapshot.isBuildingSnapshot()) {
  v8.startupSnapshot.setDeserializeMainFunction(() => {
    // the real path, as node gives an entry script (module lookups resolve from where the files really are)
    const cjsPath = fs.realpathSync(path.join(path.dirname(blobPath()), 'cli.cjs'));
    // Node 20 hands the main function [node, ...args]; later versions insert node's path again as argv[1]
    const args = process.argv.slice(process.argv[1] === process.execPath ? 2 : 1);
    process.argv.splice(1, process.argv.length - 1, cjsPath, ...args);
    run(cjsPath, args);
  });
} else {
  run(__filename, process.argv.slice(2));
}
