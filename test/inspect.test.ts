// `inspect` on committed snapshots: what it reports must match the scenario's hand-derived facts.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const repo = path.resolve(__dirname, '..');
const cli = path.join(repo, 'dist/src/cli.js');
const snap = (n: string) => path.join(repo, 'corpora/scenarios', `${n}.p2ms`);

function inspect(file: string): Record<string, any> {
  const r = spawnSync(process.execPath, [cli, 'inspect', file, '--json'], { encoding: 'utf8' });
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as Record<string, any>;
}

describe('inspect', () => {
  it('tree guest (seed backport): frame list published, no p2m_cr3, tree symbols found', () => {
    const i = inspect(snap('seed-backport'));
    expect(i.format).toBe('p2ms');
    expect(i.frameSpace).toBe('mfn');
    expect(i.arch.max_pfn).toBe('0x40000');
    expect(i.arch.p2m_cr3).toBe('0x0');
    expect(i.arch.pfn_to_mfn_frame_list_list).not.toBe('0x0');
    expect(i.symbols.layout).toBe('tree');
    expect(i.symbols.missing).toEqual([]);
    expect(i.symbols.found).toEqual(expect.arrayContaining(['p2m_top', 'p2m_mid_missing', 'p2m_missing', 'p2m_identity', 'max_pfn']));
    expect(i.boot.profile).toBe('linux-3.8.13-backport');
    expect(i.boot.nrPages).toBe('0x40000');
    expect(i.boot.kernelMaxPfn).toBe('0x40061');
  });

  it('linear guest (seed 4.x): p2m_cr3 and p2m_vaddr published, list symbols found', () => {
    const i = inspect(snap('seed-4x'));
    expect(i.arch.max_pfn).toBe('0x40061');
    expect(i.arch.p2m_cr3).toBe(i.cr3); // xen_pfn_to_cr3(mfn(swapper_pg_dir)) = vcpu0's cr3
    expect(i.arch.p2m_vaddr).toBe('0xffffc90000000000');
    expect(i.symbols.layout).toBe('list');
    expect(i.symbols.missing).toEqual([]);
  });

  it('text form names the format and the layout', () => {
    const r = spawnSync(process.execPath, [cli, 'inspect', snap('small-clean-4x')], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('format: p2ms, frame space mfn');
    expect(r.stdout).toContain('p2m layout by symbols: list');
    expect(r.stdout).toContain('Remapped 97 page(s)');
  });
});
