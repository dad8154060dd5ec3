// Regressions from the mutation harness (docs/fuzz.md): each mutant is rebuilt here by patching one kernel
// variable of a committed snapshot, located through its symbol and the image's page tables.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { auditImage } from '../src/audit/audit-image.js';
import { InputError } from '../src/common/errors.js';
import { openImage } from '../src/formats/open-image.js';
import { isWalkFailure, translate } from '../src/translate/page-walk.js';
import { readGuestView } from '../src/views/guest-view.js';
import { GuestLeaf } from '../src/views/p2m-leaves.js';

const dir = path.resolve(__dirname, '../corpora/scenarios');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fuzzreg-'));

/** Copy a snapshot with the u64 kernel variable `name` set to `value`. */
function patched(scenario: string, name: string, value: bigint): string {
  const src = path.join(dir, `${scenario}.p2ms`);
  const img = openImage(src);
  const va = img.symbols.get(name)!;
  const t = translate(img, Number(img.cr3 >> 12n), va);
  if (isWalkFailure(t)) throw new Error(t.error);
  const off = img.frameOffset(t.frame) + t.offset;
  img.close();
  const out = path.join(tmp, `${scenario}-${name}.p2ms`);
  const buf = fs.readFileSync(src);
  buf.writeBigUInt64LE(value, off);
  fs.writeFileSync(out, buf);
  return out;
}

describe('fuzz regressions', () => {
  it('p2m_identity pointing nowhere (3.18 tree): the shared identity page is recognised, the work stays that of the intact guest and still finds the 97 pages', async () => {
    // the work is bounded by counts, never by wall time: the leaves decoded one by one and the leaves of
    // each kind must be those of the unpatched snapshot (a second code path over the intact image)
    const intactImg = openImage(path.join(dir, 'seed-3.18.p2ms'));
    const intact = await auditImage(intactImg, { jobs: 0 });
    intactImg.close();
    const img = openImage(patched('seed-3.18', 'p2m_identity', 0xffffffffffffffffn));
    const { report, guest, audit } = await auditImage(img, { jobs: 0 });
    img.close();
    const kindCounts = (kinds: Uint8Array): number[] => [0, 1, 2].map((k) => kinds.filter((x) => x === k).length);
    expect(kindCounts(guest.kinds)).toEqual(kindCounts(intact.guest.kinds));
    expect(audit.leaves).toBe(intact.audit.leaves);
    expect(guest.notes.some((n) => /taken as the shared p2m_identity page/.test(n))).toBe(true);
    expect(report.verdict).toBe('FATAL');
    expect(report.fatal.map((f) => [f.start, f.end])).toEqual([[0x40000, 0x40061]]);
  });

  it.each(['seed-4x', 'seed-6.1', 'small-clean-4x'])(
    'p2m_identity pointing nowhere (%s, linear list): every leaf of the shared identity page is recognised, also in the GiBs the list maps through one shared PTE page',
    async (scenario) => {
      // expected: the intact snapshot's own view (a second code path: the identity leaves found by their symbol)
      const intactImg = openImage(path.join(dir, `${scenario}.p2ms`));
      const intact = readGuestView(intactImg);
      intactImg.close();
      const img = openImage(patched(scenario, 'p2m_identity', 0xffffffffffffffffn));
      const guest = readGuestView(img);
      img.close();
      expect(guest.layout).toBe('list');
      // the first leaf whose kind or frame differs (−1: none); a diff of two 262,144-leaf arrays would not print
      const firstDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
        for (let k = 0; k < Math.max(a.length, b.length); k++) if (a[k] !== b[k]) return k;
        return -1;
      };
      expect(guest.kinds.length).toBe(intact.kinds.length);
      expect(firstDiff(guest.kinds, intact.kinds)).toBe(-1);
      expect(firstDiff(guest.leafFrames, intact.leafFrames)).toBe(-1);
      const identityLeaves = intact.kinds.filter((k) => k === GuestLeaf.IDENTITY).length;
      if (identityLeaves > 1) expect(guest.notes.some((n) => new RegExp(`backs ${identityLeaves} leaves and reads all INVALID`).test(n))).toBe(true);
    },
  );

  it('an absurd xen_p2m_size is a one-line input error, not a RangeError', async () => {
    const img = openImage(patched('small-clean-4x', 'xen_p2m_size', 0x1fffffffffffffn));
    await expect(auditImage(img, { jobs: 0 })).rejects.toThrow(InputError);
    await expect(auditImage(img, { jobs: 0 })).rejects.toThrow(/xen_p2m_size 0x1fffffffffffff is not a plausible p2m size/);
    img.close();
  });
});
