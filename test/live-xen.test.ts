// Issue 15 on real Xen: the live commands in the dom0 of a real Xen 4.17 host (../shared/xen-host: qemu TCG →
// Xen 4.17.7 → Debian dom0), against the real toolstack in the same pauses. Run by `npm run test:xen` (not by
// `npm test`: it boots a machine, ~6 minutes of qemu), which .ci/run calls after `npm test`.
//
// Expected values come from the real tools' own output, never from p2m-audit: `xen-mfndump dump-p2m` taken in
// the same pause (line-for-line equality; its P2M size and populated pfns give the audit's numbers), the pfns
// the real `xl dump-core` wrote into .xen_p2m (read by test/xen-payload/xen_p2m_pfns.py, not p2m-audit's
// reader), the real `xl save -c` failing, and the real error of `xen-mfndump dump-p2m 0`.
//
// P2M_AUDIT_XEN_OUT=DIR asserts on the files of an earlier run instead of booting the host again. A host that
// cannot boot (run.sh exit 124/125) fails the test with the serial console's last lines: it never skips.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const repo = path.resolve(__dirname, '..');
const harness = path.resolve(repo, '../shared/xen-host');
/** The run's time limit (TIMEOUT of run.sh) and the test's, in seconds. */
const PAYLOAD_TIMEOUT_S = 1500;
const TEST_TIMEOUT_MS = (PAYLOAD_TIMEOUT_S + 600) * 1000;
/** A real mfn: not INVALID_P2M_ENTRY (~0) and neither IDENTITY_FRAME_BIT (62) nor FOREIGN_FRAME_BIT (63). */
const FRAME_FLAGS = 0xc000000000000000n;

let out = '';

function runHost(): string {
  const work = process.env.XEN_HOST_WORK ?? path.join(os.tmpdir(), 'xen-host-work');
  execFileSync('bash', [path.join(harness, 'build.sh'), work], { stdio: 'inherit' });
  const payload = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-live-payload-'));
  execFileSync('bash', [path.join(repo, 'scripts/xen-payload.sh'), payload], { stdio: 'inherit', cwd: repo });
  const dir = path.join(work, 'out-live-xen');
  fs.rmSync(dir, { recursive: true, force: true });
  const r = spawnSync('nice', ['-n', '10', 'bash', path.join(harness, 'run.sh'), work, payload, dir], {
    stdio: 'inherit',
    env: { ...process.env, TIMEOUT: String(PAYLOAD_TIMEOUT_S) },
  });
  fs.rmSync(payload, { recursive: true, force: true });
  if (r.status !== 0) {
    const serial = path.join(dir, 'xen-host/serial.log');
    const tail = fs.existsSync(serial) ? fs.readFileSync(serial, 'utf8').split('\n').slice(-40).join('\n') : '(no serial log)';
    throw new Error(`the Xen host run failed with exit ${r.status} (124 = timeout, 125 = qemu/Xen/dom0 did not boot or crashed):\n${tail}`);
  }
  return dir;
}

const read = (name: string): string => fs.readFileSync(path.join(out, name), 'utf8');
const rc = (name: string): number => Number(read(`${name}.rc`).trim());
const lines = (name: string): string[] => read(name).split('\n').filter((l) => l !== '');

/** `  pfn=0x… ==> mfn=0x… (type …)` lines of a xen-mfndump dump-p2m output: pfn → mfn. */
function mfndumpEntries(name: string): { size: number; mfns: Map<number, bigint> } {
  const text = read(name);
  const size = Number(/P2M size: = (\d+)/.exec(text)![1]);
  const mfns = new Map<number, bigint>();
  for (const m of text.matchAll(/^ {2}pfn=(0x[0-9a-f]+) ==> mfn=(0x[0-9a-f]+)/gm)) mfns.set(Number(m[1]), BigInt(m[2]!));
  return { size, mfns };
}

function populated(mfns: Map<number, bigint>): number[] {
  return [...mfns].filter(([, m]) => (m & FRAME_FLAGS) === 0n).map(([p]) => p);
}

/** Inclusive runs [start, end] of sorted pfns. */
function runs(pfns: number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const p of pfns) {
    const last = out.at(-1);
    if (last && last[1] + 1 === p) last[1] = p;
    else out.push([p, p]);
  }
  return out;
}

interface AuditJson {
  file: string;
  format: string;
  verdict: string;
  exitCode: number;
  toolstack: { method: string; archMaxPfn: string; maxPfn: string | null };
  classes: Record<string, { pages: number }>;
  fatalPages: number;
  fatal: { class: string; start: string; end: string; pages: number; cause: { kind: string } }[];
  save: { outcome: string; failure: { message: string } | null } | null;
}
const auditJson = (name: string): AuditJson => JSON.parse(read(`${name}.out`)) as AuditJson;

describe('live commands on a real Xen 4.17 host', { timeout: TEST_TIMEOUT_MS }, () => {
  beforeAll(() => {
    out = process.env.P2M_AUDIT_XEN_OUT ?? runHost();
    expect(fs.existsSync(path.join(out, 'xl-info.txt'))).toBe(true);
  }, TEST_TIMEOUT_MS);

  it.each(['pvplain', 'pve820'])('%s: p2m --domain equals xen-mfndump dump-p2m line for line (same pause)', (g) => {
    const real = lines(`${g}.mfndump.out`);
    const ours = lines(`${g}.p2m.out`);
    expect(rc(`${g}.mfndump`)).toBe(0);
    expect(rc(`${g}.p2m`)).toBe(0);
    expect(real.length).toBeGreaterThan(0x6000);
    const firstDiff = real.findIndex((l, i) => ours[i] !== l);
    expect(firstDiff === -1 ? null : { line: firstDiff, real: real[firstDiff], ours: ours[firstDiff] }).toBeNull();
    expect(ours.length).toBe(real.length);
  });

  it.each(['pvplain', 'pve820'])('%s: audit --domain is CLEAN with the numbers of xen-mfndump', (g) => {
    const { size, mfns } = mfndumpEntries(`${g}.mfndump.out`);
    const a = auditJson(`${g}.audit`);
    expect(rc(`${g}.audit`)).toBe(0);
    expect(a).toMatchObject({ verdict: 'CLEAN', exitCode: 0, format: 'xen-live', fatalPages: 0 });
    expect(a.file).toBe(`domain ${read(`${g}.domid`).trim()} (${g})`);
    // xen-mfndump's P2M size is XENMEM_maximum_gpfn + 1 = arch.max_pfn of a PV guest; save covers pfns 0..size-1
    expect(Number(a.toolstack.archMaxPfn)).toBe(size);
    expect(Number(a.toolstack.maxPfn)).toBe(size - 1);
    expect(a.classes.ram!.pages).toBe(populated(mfns).length);
  });

  it('pve820: the populated pfns are memory = 384 MiB, and boot remapped some of them above 4 GiB (pfn ≥ 0x100000)', () => {
    const { mfns } = mfndumpEntries('pve820.mfndump.out');
    const pop = populated(mfns);
    expect(pop.length).toBe(384 * 256);
    expect(pop.filter((p) => p >= 0x100000).length).toBeGreaterThan(0);
  });

  it.each(['pvplain', 'pve820'])('%s: audit --domain unpaused and --pause agree; the guest is running afterwards', (g) => {
    expect([rc(`${g}.audit-running`), rc(`${g}.audit-pause`)]).toEqual([0, 0]);
    expect(read(`${g}.audit-running.out`)).toMatch(/^p2m-audit: CLEAN/);
    expect(read(`${g}.audit-pause.err`)).toMatch(/frames mapped in \d+ calls, 1 attempt\(s\), [\d.]+ ms \(paused\)/);
    expect(read(`${g}.state-after-pause`)).not.toContain('p');
  });

  it('SIGINT while audit --domain --pause holds the guest paused: exit 130, the guest unpaused', () => {
    expect(read('sigint.seen').trim()).toBe('paused'); // the signal was sent while `xl list` showed the pause
    expect(rc('sigint')).toBe(130);
    expect(read('sigint.err')).toMatch(/^p2m-audit: SIGINT: stopped; (domain unpaused|no domain is left paused)$/m);
    expect(read('sigint.state-after')).not.toContain('p');
  });

  it.each(['pvplain', 'pve820'])('%s: --system-map-dir picks the map whose version the guest banner names', (g) => {
    expect(rc(`${g}.audit-mapdir`)).toBe(0);
    expect(auditJson(`${g}.audit-mapdir`).verdict).toBe('CLEAN');
  });

  it('scan --domains all: one line per domain, dom0 skipped with the reason, both guests CLEAN', () => {
    expect(rc('scan-all')).toBe(0);
    const text = lines('scan-all.out');
    expect(text).toHaveLength(3);
    expect(text[0]).toMatch(/^SKIPPED +domain 0 \(Domain-0\) +\(this dom0: Xen refuses a domain mapping its own frames as foreign\)$/);
    expect(text.slice(1).map((l) => l.split(/ +/)[0])).toEqual(['CLEAN', 'CLEAN']);
    const json = lines('scan-all-json.out').map((l) => JSON.parse(l) as { status: string; verdict: string | null; format: string });
    expect(json.map((r) => r.status)).toEqual(['skipped', 'audited', 'audited']);
  });

  it.each([
    ['err-nosuch', /^p2m-audit: domain 4242: no such domain/],
    ['err-noname', /^p2m-audit: domain no-such-guest: no such domain/],
    ['err-dom0', /^p2m-audit: domain 0 \(Domain-0\): Xen refuses to map dom0's own shared_info frame/],
    ['err-noaddon', /^p2m-audit: live domains need the xenlive addon, which is not built/],
    ['err-notroot', /^p2m-audit: live domains: permission denied on \/dev\/xen\/privcmd/],
  ])('%s: one line, exit 2', (name, msg) => {
    expect(rc(name)).toBe(2);
    expect(lines(`${name}.err`)).toHaveLength(1);
    expect(read(`${name}.err`)).toMatch(msg);
  });

  it("dom0 itself: the real xen-mfndump dump-p2m 0 is refused the same way (ESRCH on dom0's shared_info)", () => {
    expect(rc('mfndump-dom0')).not.toBe(0);
    expect(read('mfndump-dom0.err')).toMatch(/Could not map the shared info frame .*No such process/);
  });

  it('a p2m that changes throughout: exit 3 unpaused, a verdict with --pause, the guest running afterwards', () => {
    expect(rc('churn-running')).toBe(3);
    expect(read('churn-running.err')).toMatch(/^p2m-audit: domain \d+ \(pve820\): could not get a consistent read in 3 attempts \(last: p2m_generation/);
    expect(rc('churn-pause')).toBe(0);
    expect(read('churn.state-after-pause')).not.toContain('p');
  });

  it('a guest destroyed during the read: one line, exit 2, nothing left behind', () => {
    expect(read('destroyed.seen').trim()).toBe('paused');
    expect(rc('destroyed')).toBe(2);
    const errs = lines('destroyed.err').filter((l) => !l.endsWith(': paused'));
    expect(errs).toHaveLength(1);
    expect(errs[0]).toMatch(/^p2m-audit: domain \d+ \(pve820\): /);
    expect(read('xl-list-end.txt')).not.toMatch(/pve820/);
  });

  describe('arch.max_pfn lowered to nr_pages (the seed bound) by a guest module', () => {
    it('p2m --domain still equals xen-mfndump, which stops at nr_pages', () => {
      expect(rc('low.cmp')).toBe(0);
      const { size } = mfndumpEntries('low.mfndump.out');
      expect(size).toBe(384 * 256); // nr_pages of memory = 384
    });

    it('audit --domain: FATAL, uncovered = exactly the remapped pfns the real xl dump-core left out', () => {
      const full = populated(mfndumpEntries('pve820.mfndump.out').mfns); // before the module: the guest's RAM
      const inCore = new Set<number>();
      for (const l of lines('low.core-pfns.txt').filter((x) => !x.startsWith('#'))) {
        const [a, b] = l.split('-').map(Number) as [number, number];
        for (let p = a; p <= b; p++) inCore.add(p);
      }
      const lost = runs(full.filter((p) => !inCore.has(p)));
      expect(rc('low.dump-core')).toBe(0);
      expect(lost.length).toBeGreaterThan(0);
      expect(lost.every(([a]) => a >= 0x100000)).toBe(true); // only RAM that boot moved above the 4 GiB hole
      const a = auditJson('low.audit');
      expect(rc('low.audit')).toBe(1);
      expect(a.verdict).toBe('FATAL');
      expect(Number(a.toolstack.archMaxPfn)).toBe(384 * 256);
      expect(a.fatal.map((f) => [Number(f.start), Number(f.end)])).toEqual(lost);
      expect(a.fatal.every((f) => f.class === 'uncovered' && f.cause.kind === 'beyond-bound')).toBe(true);
      expect(a.fatalPages).toBe(lost.reduce((n, [s, e]) => n + e - s + 1, 0));
    });

    it("the real xl save -c of that guest fails, with the error the audit predicted", () => {
      expect(rc('low.save')).not.toBe(0);
      const firstError = /^xc: error: (.*): Internal error$/m.exec(read('low.save.err'));
      expect(firstError).not.toBeNull(); // e.g. "Bad mfn for frame 0 of vcpu0's GDT"
      const a = auditJson('low.audit');
      expect(a.save?.outcome).toBe('fails');
      expect(a.save?.failure?.message).toBe(firstError![1]);
    });
  });
});
