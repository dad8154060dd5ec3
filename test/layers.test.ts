// The layer order of ARCHITECTURE.md and docs/architecture-notes.md, enforced: every import in src/ and
// workers/ points down (to a lower layer, or within its own folder), so there is no cycle between folders,
// and no file in src/ is longer than a reader takes in at once.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const repo = path.resolve(__dirname, '..');

/** Layers from the bottom up; folders on one rung may not import each other. */
export const LAYERS: readonly (readonly string[])[] = [
  ['src/common'], // InputError, PfnRange: the words every layer speaks
  ['src/xen'], // ABI constants and wire-format definitions (data, no I/O)
  ['src/inputs'], // host-side text: e820, dom0_mem, boot logs, kernel .config, xl configs; boot facts
  ['src/formats'], // readers: probe + frame source + metadata record
  ['src/translate'], // x86-64 page walks over a frame source
  ['src/views'], // leaf vocabulary, the toolstack walks, the guest view, the crash view
  ['src/audit'], // plan, shards, workers' reader, leaf comparison, verdicts
  ['src/report'], // renderers only
  ['src/emulate'], // boot emulator, emulated writers, restore emulation
  ['src/scan', 'src/sweep', 'src/fuzz', 'src/corpora', 'src/live'], // jobs over many images; live: a running domain read consistently (its reader is formats/live-domain.ts)
  ['src/fleet'], // scan's engine as queue jobs on many hosts (BullMQ): builds on scan, so above it
  ['src/commands'], // one module per command: options → layers
  ['src/cli.ts', 'workers'], // entry points
];

/** Longest file allowed in src/ (lines). */
const MAX_SRC_LINES = 700;

function unitOf(rel: string): string | null {
  for (const rung of LAYERS) for (const u of rung) if (rel === u || rel.startsWith(u + '/')) return u;
  return null;
}

function rankOf(unit: string): number {
  return LAYERS.findIndex((rung) => rung.includes(unit));
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(path.join(repo, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) {
      if (rel !== 'src/wasm') out.push(...tsFiles(rel)); // AssemblyScript, compiled on its own, imports nothing
    } else if (e.name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

/** Relative specifiers of static imports/re-exports and literal dynamic imports. */
export function importSpecifiers(source: string): string[] {
  const specs: string[] = [];
  const re = /(?:^|\n)\s*(?:import|export)\s[^;]*?\sfrom\s+'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/g;
  for (let m = re.exec(source); m; m = re.exec(source)) specs.push((m[1] ?? m[2])!);
  return specs;
}

interface Edge {
  from: string;
  to: string;
}

function edges(): Edge[] {
  const out: Edge[] = [];
  for (const file of [...tsFiles('src'), ...tsFiles('workers')]) {
    for (const spec of importSpecifiers(fs.readFileSync(path.join(repo, file), 'utf8'))) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, '.ts');
      out.push({ from: file, to: target });
    }
  }
  return out;
}

describe('layer order', () => {
  const all = edges();

  it('knows every folder of src/ and workers/', () => {
    const unplaced = [...tsFiles('src'), ...tsFiles('workers')].filter((f) => unitOf(f) === null);
    expect(unplaced).toEqual([]);
    expect(all.length).toBeGreaterThan(200); // the parser does find the imports
  });

  it('finds static, type-only, re-exported and dynamic imports', () => {
    const src = `import a from './a.js';\nimport type { B } from '../b.js';\nexport { c } from './c.js';\nimport {\n  d,\n} from './d.js';\nconst e = await import('./e.js');\nimport fs from 'node:fs';`;
    expect(importSpecifiers(src)).toEqual(['./a.js', '../b.js', './c.js', './d.js', './e.js']);
  });

  it('every import points down or stays in its folder', () => {
    const up = all
      .filter((e) => {
        const a = unitOf(e.from);
        const b = unitOf(e.to);
        if (a === null || b === null) return true; // an import leaving src/ and workers/ (or into src/wasm)
        return a !== b && rankOf(b) >= rankOf(a);
      })
      .map((e) => `${e.from} → ${e.to}`);
    expect(up).toEqual([]);
  });

  it('no file in src/ is longer than 700 lines', () => {
    const long = tsFiles('src')
      .map((f) => ({ f, lines: fs.readFileSync(path.join(repo, f), 'utf8').split('\n').length }))
      .filter((x) => x.lines > MAX_SRC_LINES)
      .map((x) => `${x.f}: ${x.lines}`);
    expect(long).toEqual([]);
  });
});
