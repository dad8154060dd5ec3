// Issue 14.2: the frame list (pfn_to_mfn_frame_list_list) the emulator builds for the real Xen 4.17 / Linux 6.1
// kdump dom0, emulated from that dom0's own boot logs (test/fixtures/logs/real-dom0-kdump-xen4.17-linux6.1.txt),
// against what ../shared/real-dom0-kdump/README.md reports of the real vmcore: arch.max_pfn = 0x120087 =
// xen_p2m_last_pfn, absent top and mid slots filled with the missing mid page and the p2m_missing leaf (crash
// counts 512 × 512 non-zero slots, "p2m_frames: 262144"), and the README's run-length table of what the frame
// list yields per pfn (clean/frame-list-walk.txt). The machine frames differ (the emulator's are seeded), the
// shape must not.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { emulate } from '../src/emulate/kernel/boot.js';
import { findProfile } from '../src/emulate/kernel/profiles.js';
import { dom0PagesFromLog, parseBootLog } from '../src/inputs/boot-log.js';
import { computeDom0Pages, parseDom0Mem } from '../src/inputs/dom0-mem.js';
import { readGuestView } from '../src/views/guest-view.js';

const logFile = path.resolve(__dirname, 'fixtures/logs/real-dom0-kdump-xen4.17-linux6.1.txt');
const ENTRIES = 512;
const INVALID = 0xffffffffffffffffn;
const IDENTITY_BIT = 1n << 62n;

function boot(profileId: string) {
  const log = parseBootLog(fs.readFileSync(logFile, 'utf8'), logFile);
  const nr = dom0PagesFromLog(log).nrPages!.value;
  const pages = computeDom0Pages(parseDom0Mem(log.dom0Mem!.value), log.hostE820!.value);
  return emulate({ profile: findProfile(profileId)!, hostE820: log.hostE820!.value, nrPages: nr, maxPages: pages.maxPages });
}

function words(img: ReturnType<typeof boot>['image'], mfn: bigint): bigint[] {
  const page = img.readFrame(Number(mfn));
  if (!page) throw new Error(`frame ${mfn.toString(16)} absent`);
  return Array.from({ length: ENTRIES }, (_, i) => page.readBigUInt64LE(i * 8));
}

/** Run-length classes of the pfns [0, end) as the frame list yields them (valid mfn / identity / ~0). */
function runs(img: ReturnType<typeof boot>['image'], top: bigint[], end: number): [number, number, string][] {
  const out: [number, number, string][] = [];
  for (let leafBase = 0; leafBase < end; leafBase += ENTRIES) {
    const mid = words(img, top[Math.floor(leafBase / (ENTRIES * ENTRIES))]!);
    const leaf = words(img, mid[Math.floor(leafBase / ENTRIES) % ENTRIES]!);
    leaf.forEach((v, i) => {
      const cls = v === INVALID ? '~0' : (v & IDENTITY_BIT) !== 0n ? 'identity' : 'valid';
      const last = out[out.length - 1];
      if (last && last[2] === cls) last[1] = leafBase + i;
      else out.push([leafBase + i, leafBase + i, cls]);
    });
  }
  return out;
}

describe.each(['linux-6.1', 'linux-4.x'])('the real kdump dom0 emulated with %s', (profileId) => {
  const g = boot(profileId);
  const img = g.image;
  const top = words(img, img.arch.pfnToMfnFrameListList);

  it('arch.max_pfn = 0x120087 = xen_p2m_last_pfn = last_pfn (README: shared_info at machine 0x1ffd6000 + 0xc10)', () => {
    expect(img.arch.maxPfn).toBe(0x120087n);
    expect(g.facts.kernelMaxPfn).toBe(0x120087);
    expect(readGuestView(img).vars.xenP2mLastPfn).toBe(0x120087);
  });

  it('top[0] and top[4] are mid pages of their own, top[1..3] and top[5..511] the shared missing mid page', () => {
    const missingMid = top[1]!;
    expect(top[0]).not.toBe(missingMid);
    expect(top[4]).not.toBe(missingMid);
    expect(top[0]).not.toBe(top[4]);
    expect(top.filter((t) => t === missingMid)).toHaveLength(ENTRIES - 2);
  });

  it('the missing mid page holds 512 × the p2m_missing leaf, all ~0: 512 × 512 non-zero frame-list slots (crash p2m_frames 262144)', () => {
    const missingMid = words(img, top[1]!);
    expect(new Set(missingMid).size).toBe(1);
    expect(words(img, missingMid[0]!).every((v) => v === INVALID)).toBe(true);
    let nonZero = 0;
    for (const t of top) nonZero += words(img, t).filter((v) => v !== 0n).length;
    expect(nonZero).toBe(ENTRIES * ENTRIES);
  });

  it("every pfn below 0x140000 through the frame list, as the README's run table of the real dump", () => {
    expect(runs(img, top, 0x140000)).toEqual([
      [0x0, 0x9e, 'valid'],
      [0x9f, 0xff, 'identity'],
      [0x100, 0x1ffd9, 'valid'],
      [0x1ffda, 0x1ffff, 'identity'],
      [0x20000, 0xfffff, '~0'], // 0x20000-0x3ffff (not RAM in dom0's e820) and the missing mids top[1..3]
      [0x100000, 0x120086, 'valid'], // 131207 remapped pages above nr_pages
      [0x120087, 0x1201ff, 'identity'],
      [0x120200, 0x13ffff, '~0'],
    ]);
    // 159 + 130778 + 131207 = 262144 = nr_pages valid entries
    expect(0x9f + (0x1ffda - 0x100) + (0x120087 - 0x100000)).toBe(0x40000);
  });
});
