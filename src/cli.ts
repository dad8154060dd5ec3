#!/usr/bin/env node
// p2m-audit's entry point (ARCHITECTURE.md "CLI"): `--version` and a cached `--help` are answered without
// loading the commander program (commands/cached-help.ts, docs/bench-notes.md "Cold start"); everything
// else runs the program (commands/program.ts).
import { fileURLToPath } from 'node:url';
import { packageVersion, quickAnswer, writeQuickAnswer } from './commands/cached-help.js';

const argv = process.argv.slice(2);
const quick = quickAnswer(argv, fileURLToPath(import.meta.url));
if (quick !== null) {
  process.exitCode = writeQuickAnswer(quick);
} else {
  const { main } = await import('./commands/program.js');
  process.exitCode = await main(argv, packageVersion);
}
