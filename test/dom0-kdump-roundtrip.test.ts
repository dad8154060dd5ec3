// Round trip of every dom0 scenario in corpora/scenarios/*.json through the three files one emulated machine
// is written as: the .p2ms snapshot, the Xen kdump ELF vmcore and makedumpfile's compressed dump.
//
// The rule tested (issue 13 item 4, "audit(p2ms) == audit(vmcore) == audit(kdump-compressed)"):
// a .p2ms audit models Xen's save walk (map_p2m bounded by arch.max_pfn), a dom0 kdump's models crash's
// frame-list walk (no max_pfn bound, docs/spec-notes/dom0-kdump-views.md §1, §5). Those two can legitimately
// differ — 3.8.13 as released loses the remapped RAM for save while its mirror lets crash read it — so the
// test compares like with like:
//  1. save side: audit(p2ms) == audit(vmcore --method M) == audit(kdump-compressed --method M), M the method
//     map_p2m takes for the snapshot (list when arch.p2m_cr3 ≠ 0). The kdump is walked over dom0's shared_info
//     found in the dump through xen_start_info (dom0-kdump.ts), so this also checks that the writers put that
//     page where start_info says. Verdict, arch.max_pfn and the fatal ranges (class, first, last pfn) equal.
//  2. crash side: audit(vmcore) == audit(kdump-compressed) (method crash), and both equal the p2ms's crash-side
//     verdict: the save-fatal pfns crash cannot read either. Expected values from the scenario file's hand
//     derivation (expect.fatal, minus all of it when expect.crashReadable), cross-checked with the p2ms report's
//     own per-range crashReadablePages (leaf by leaf through the frame list at arch.pfn_to_mfn_frame_list_list,
//     views/crash-view.ts, a different code path from the kdump's map-crash-frame-list.ts). Verdict: FATAL when
//     that set is non-empty, else CLEAN.
// Cost: the vmcore is as large as the host's RAM (up to 7.7 GiB for the 8 GiB PCI-hole host) but sparse: only
// the ~1,100-4,000 frames the emulator holds are written (≤ 17 MiB on disk); the compressed dump is ≤ 3 MiB.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { auditImage } from '../src/audit/audit-image.js';
import type { AuditReport } from '../src/audit/verdict.js';
import { emulateScenario, listScenarios, scenarioHostPath } from '../src/corpora/scenario.js';
import { writeKdumpCompressed, type KdumpWriteCodec } from '../src/emulate/kdump-compressed-writer.js';
import { writeEmulatedP2ms } from '../src/emulate/snapshot.js';
import { vmcoreHead, vmcoreLayout, writeVmcore } from '../src/emulate/vmcore-writer.js';
import { KDUMP_SCENARIOS, writeScenarioKdumps } from '../src/corpora/scenario-kdumps.js';
import { openImage } from '../src/formats/open-image.js';
import type { SymbolTable } from '../src/formats/symbols.js';
import { elfNote } from './helpers/elf-note.js';

const repo = path.resolve(__dirname, '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dom0-kdump-rt-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Every scenario is a dom0 (the scenario format has no domU); a role field other than dom0 would be skipped by name. */
const scenarios = listScenarios(path.join(repo, 'corpora/scenarios')).filter((s) => ((s as { role?: string }).role ?? 'dom0') === 'dom0');
/** The compressed dump's codec, varied over the scenarios (makedumpfile -c, -z, -p). */
const CODECS: KdumpWriteCodec[] = ['zlib', 'zstd', 'snappy'];

interface Summary {
  verdict: string;
  method: string;
  archMaxPfn: string;
  fatal: [string, string, string][];
}

const hex = (n: number | bigint): string => '0x' + n.toString(16);

function summary(r: AuditReport): Summary {
  return { verdict: r.verdict, method: r.toolstack.method, archMaxPfn: hex(r.toolstack.archMaxPfn), fatal: r.fatal.map((f) => [f.cls, hex(f.start), hex(f.end - 1)]) };
}

async function audit(file: string, symbols: SymbolTable, method?: 'tree' | 'list'): Promise<AuditReport> {
  const img = openImage(file, { symbols });
  try {
    return (await auditImage(img, { jobs: 0, method })).report;
  } finally {
    img.close();
  }
}

describe('dom0 scenarios: .p2ms, ELF vmcore and kdump-compressed of one emulated machine audit alike', () => {
  it('covers every dom0 scenario of the corpus', () => {
    expect(scenarios.map((s) => s.name)).toEqual(expect.arrayContaining(['seed-backport', 'seed-3.8-unpatched', 'seed-4x', 'above-4g-backport', 'multi-hole-backport', 'small-clean-4x']));
  });

  it.each(scenarios.map((s, i) => [s.name, s, CODECS[i % CODECS.length]!] as const))('%s', async (_name, s, codec) => {
    const mem = emulateScenario(s).image;
    const base = path.join(tmp, s.name);
    writeEmulatedP2ms(mem, base + '.p2ms');
    writeVmcore(mem, base + '.vmcore');
    await writeKdumpCompressed(mem, base + '.kdump', { compression: codec });
    try {
      const p2ms = await audit(base + '.p2ms', mem.symbols);
      const method = p2ms.toolstack.method as 'tree' | 'list';
      // the snapshot itself gives the hand-derived result (as test/scenarios.test.ts checks through the CLI)
      const e = s.expect;
      expect(p2ms.verdict).toBe(e.verdict);
      expect(summary(p2ms).fatal).toEqual(e.fatal.map((f) => [f.cls, f.start, f.end]));
      // 1. save side: the kdumps walked as save would walk them, over dom0's shared_info found in the dump
      const save = summary(p2ms);
      expect(summary(await audit(base + '.vmcore', mem.symbols, method))).toEqual(save);
      expect(summary(await audit(base + '.kdump', mem.symbols, method))).toEqual(save);
      // 2. crash side: the save-fatal pfns crash cannot read either
      const crashFatal: [string, string, string][] = e.crashReadable ? [] : e.fatal.map((f) => [f.cls, f.start, f.end]);
      const unreadable = p2ms.fatal.reduce((n, f) => n + f.pages - f.cause.breaks.crashReadablePages, 0);
      expect(unreadable).toBe(crashFatal.reduce((n, [, a, b]) => n + Number(b) - Number(a) + 1, 0));
      const want = { verdict: crashFatal.length > 0 ? 'FATAL' : p2ms.verdict === 'FATAL' ? 'CLEAN' : p2ms.verdict, method: 'crash', archMaxPfn: save.archMaxPfn, fatal: crashFatal };
      const vmcore = await audit(base + '.vmcore', mem.symbols);
      expect(summary(vmcore)).toEqual(want);
      expect(summary(await audit(base + '.kdump', mem.symbols))).toEqual(want);
      // nothing saves a dom0: no save prediction on its kdump
      expect(vmcore.save).toBeUndefined();
      expect(vmcore.toolstack.crash?.maxPfnBound?.source).toMatch(/through xen_start_info → start_info\.shared_info/);
    } finally {
      for (const ext of ['.p2ms', '.vmcore', '.kdump']) fs.rmSync(base + ext, { force: true });
    }
  });
});

describe('emulate --audit audits the kdump it wrote', () => {
  const seed = scenarios.find((s) => s.name === 'seed-backport')!;
  it.each([
    ['vmcore', []],
    ['kdump-compressed', ['--compression', 'zstd']],
  ])('--format %s', (format, extra) => {
    const cli = path.join(repo, 'dist/src/cli.js');
    const args = ['emulate', '--profile', seed.profile, '--e820', scenarioHostPath(seed), '--dom0-mem', seed.dom0Mem, '--format', format, ...extra, '--audit', '--json'];
    const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(r.stderr).toBe('');
    const j = JSON.parse(r.stdout) as { format: string; verdict: string; toolstack: { method: string }; save: unknown; fatal: { class: string; start: string; end: string }[] };
    expect(r.status).toBe(1);
    expect(j.format).toBe(format);
    expect(j.toolstack.method).toBe('crash');
    expect(j.save).toBeNull();
    expect(j.fatal.map((f) => [f.class, f.start, f.end])).toEqual(seed.expect.fatal.map((f) => [f.cls, f.start, f.end]));
  });
});

describe('the bundled corpus holds the seed as a dom0 kdump, and scan recognises kdumps', () => {
  /** A native Linux vmcore (gABI notes: "CORE" NT_PRSTATUS, then Linux's "VMCOREINFO"), one small PT_LOAD. */
  function nativeVmcore(file: string): void {
    const note = elfNote;
    const notes = Buffer.concat([note('CORE', 1, Buffer.alloc(336)), note('VMCOREINFO', 0, Buffer.from('OSRELEASE=6.1.0\nPAGESIZE=4096\n'))]);
    const l = vmcoreLayout([{ start: 0x100000, size: 0x4000 }], notes.length);
    const b = Buffer.alloc(l.fileSize);
    vmcoreHead(l, notes).copy(b);
    fs.writeFileSync(file, b);
  }

  it('writeScenarioKdumps writes the seed as vmcore and kdump-compressed with .map; scan audits both and skips a native vmcore', async () => {
    const dir = path.join(tmp, 'corpus');
    const written = await writeScenarioKdumps(path.join(repo, 'corpora/scenarios'), dir);
    expect(written.map((k) => k.scenario)).toEqual([...KDUMP_SCENARIOS]);
    expect(KDUMP_SCENARIOS).toContain('seed-backport');
    nativeVmcore(path.join(dir, 'native.vmcore'));
    const r = spawnSync(process.execPath, [path.join(repo, 'dist/src/cli.js'), 'scan', dir, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { schema: string; file: string; status: string; format: string | null; verdict: string | null; fatalPages: number; reason: string });
    const byName = new Map(lines.filter((l) => l.schema === 'p2m-audit/scan@1').map((l) => [path.basename(l.file), l]));
    // the seed's hand derivation (corpora/scenarios/seed-backport.json): 97 pages crash cannot read
    const seed = scenarios.find((s) => s.name === 'seed-backport')!;
    for (const [name, format] of [['seed-backport.vmcore', 'vmcore'], ['seed-backport.kdump', 'kdump-compressed']]) {
      expect(byName.get(name)).toMatchObject({ status: 'audited', format, verdict: seed.expect.verdict, fatalPages: seed.expect.fatal[0]!.pages });
    }
    expect(byName.get('native.vmcore')).toMatchObject({ status: 'skipped', format: null });
    expect(byName.get('native.vmcore')!.reason).toMatch(/^a native Linux vmcore \(no Xen crash note\)/);
    expect(r.status).toBe(1);
  });
});
