// The live reader and the live commands' logic against a fake hypervisor: a XenLiveAddon that serves the frames
// of an emulated guest (the seed case, linux-p2m.md §7) the way xenforeignmemory_map would. Expected values come
// from the file path (auditImage / renderMfndump over the same frames) and from the seed case's hand derivation
// (97 pages, pfn 0x40000-0x40060, uncovered); the real thing runs in test/live-xen.test.ts on real Xen.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseE820 } from '../src/inputs/e820.js';
import { emulate } from '../src/emulate/kernel/boot.js';
import { findProfile } from '../src/emulate/kernel/profiles.js';
import type { MemoryImage } from '../src/formats/memory-image.js';
import { auditImage } from '../src/audit/audit-image.js';
import { renderMfndump } from '../src/report/mfndump.js';
import { mapP2m } from '../src/views/toolstack-view.js';
import { BATCH_FRAMES, guestType, openDomain } from '../src/formats/live-domain.js';
import type { XenDomainInfo, XenHandle, XenLiveAddon } from '../src/formats/xenlive-addon.js';
import { InputError } from '../src/common/errors.js';
import { auditLiveDomain, leafReadOrder } from '../src/live/live-audit.js';
import { InconsistentReadError, archChange, readConsistently, withPause } from '../src/live/consistent-read.js';
import { renderLiveP2m, toolstackPageTypes } from '../src/live/live-p2m.js';
import { bannerVersion } from '../src/live/kernel-version.js';
import { DomainSession, skipReason } from '../src/live/domain-session.js';
import { planLeaves } from '../src/audit/run-audit.js';
import { readGuestView } from '../src/views/guest-view.js';
import { GuestLeaf } from '../src/views/p2m-leaves.js';
import { SEARCHED_MFNS, pfnsOfMfns } from '../src/audit/normalise-tables.js';
import type { GuestImage } from '../src/formats/guest-image.js';
import { ARCH_P2M_GENERATION_OFFSET, PAGE_SIZE, SIZEOF_VCPU_GUEST_CONTEXT_64, VCPU_CTRLREG3_OFFSET_64 } from '../src/xen/abi.js';
import { XEN_X86_EMU_LAPIC } from '../src/xen/domctl.js';

const seedHost = parseE820(fs.readFileSync(path.resolve(__dirname, '../corpora/scenarios/hosts/seed-host.txt'), 'utf8'), 'seed');
const SHARED_INFO_FRAME = 0xffffff0;
const MAX_MFN = 0xfffffff;
const ESRCH = 3;
const EFAULT = 14;
/** XEN_X86_EMU_ALL minus VPCI, what libxl gives an HVM guest */
const HVM_EMU = 0x3ff;

/** A fake hypervisor with one PV guest (domid 7, "web01") made of an emulated guest's frames. */
class FakeXen implements XenLiveAddon {
  mapCalls = 0;
  pauses = 0;
  unpauses = 0;
  /** called after every mapFrames call (to change the guest while it is read) */
  onMap: (() => void) | null = null;
  domains: XenDomainInfo[];
  readonly handle = {} as XenHandle;
  constructor(
    readonly img: MemoryImage,
    readonly sharedInfo: Buffer = Buffer.from(img.sharedInfo!),
  ) {
    const base = { dying: false, crashed: false, shutdown: false, paused: false, nrPages: 0x40000, maxMemKb: 0x100000, sharedInfoFrame: SHARED_INFO_FRAME, nrOnlineVcpus: 1, maxVcpuId: 0 };
    this.domains = [
      { ...base, domid: 0, hvm: false, emulationFlags: 0 },
      { ...base, domid: 7, hvm: false, emulationFlags: 0 },
      { ...base, domid: 8, hvm: true, emulationFlags: HVM_EMU },
      { ...base, domid: 9, hvm: true, emulationFlags: XEN_X86_EMU_LAPIC },
    ];
  }
  open(): XenHandle {
    return this.handle;
  }
  close(): void {}
  domainInfo(_h: XenHandle, domid: number): XenDomainInfo {
    const d = this.domains.find((x) => x.domid === domid);
    if (!d) throw Object.assign(new Error('xc_domain_getinfo: No such process'), { errno: ESRCH });
    return d;
  }
  listDomains(): XenDomainInfo[] {
    return this.domains;
  }
  guestWidth(): number {
    return 8;
  }
  vcpuContext() {
    const raw = Buffer.alloc(SIZEOF_VCPU_GUEST_CONTEXT_64);
    raw.writeBigUInt64LE(this.img.cr3, VCPU_CTRLREG3_OFFSET_64);
    return { cr3: this.img.cr3, gdtEnts: 0, gdtFrames: [], flags: 0, raw };
  }
  maxMfn(): number {
    return MAX_MFN;
  }
  pause(): void {
    this.pauses++;
  }
  unpause(): void {
    this.unpauses++;
  }
  mapFrames(_h: XenHandle, domid: number, frames: Float64Array, out: Buffer, errs: Int32Array): number {
    this.mapCalls++;
    let got = 0;
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      if (domid === 0) {
        errs[i] = ESRCH; // get_pg_owner: "Cannot specify itself as foreign domain"
        continue;
      }
      const page = f === SHARED_INFO_FRAME ? this.sharedInfo : this.img.readFrame(f);
      errs[i] = page ? 0 : EFAULT;
      if (page) {
        page.copy(out, i * PAGE_SIZE);
        got++;
      }
    }
    this.onMap?.();
    return got;
  }
  pfnTypes(_h: XenHandle, _d: number, entries: BigUint64Array, out: Uint8Array): void {
    // a stand-in for getpageframeinfo3: XTAB for entries with bits above the 40-bit mfn field, else NOTAB
    for (let i = 0; i < entries.length; i++) out[i] = entries[i]! >> 40n ? 0xf : 0;
  }
  xsRead(_h: XenHandle, p: string): string | null {
    return p === '/local/domain/7/name' ? 'web01' : null;
  }
}

function seedGuest(profile: string) {
  return emulate({ profile: findProfile(profile)!, hostE820: seedHost, nrPages: 0x40000, maxPages: 0x40000 });
}

describe('live domain reader (fake hypervisor, seed case)', () => {
  const g = seedGuest('linux-3.8.13-backport');

  it('audits as the file path does: FATAL, 97 pages uncovered at pfn 0x40000-0x40060', async () => {
    const xen = new FakeXen(g.image);
    const img = openDomain(xen, xen.handle, 7, { name: 'web01', symbols: g.image.symbols });
    const live = auditLiveDomain(img);
    const file = await auditImage(g.image, { jobs: 0 });
    expect(live.report.file).toBe('domain 7 (web01)');
    expect(live.report.verdict).toBe('FATAL');
    expect(live.report.fatalPages).toBe(97);
    expect(live.report.fatal.map((r) => [r.start, r.end])).toEqual([[0x40000, 0x40061]]);
    expect(live.report.classes).toEqual(file.report.classes);
    expect(live.audit.ranges).toEqual(file.audit.ranges);
    // vCPU 0's cr3 lies below the bound: the save completes but drops the 97 pages (README's seed case)
    expect(img.vcpus.map((v) => v.cr3Frame)).toEqual([Number(g.image.cr3 >> 12n)]);
    expect(live.report.save?.outcome).toBe('drops');
  });

  it('maps the leaf pages in batches of BATCH_FRAMES: map calls stay near leaves / 1024, not one per leaf', () => {
    const xen = new FakeXen(g.image);
    const img = openDomain(xen, xen.handle, 7, { symbols: g.image.symbols });
    const before = xen.mapCalls;
    const tool = mapP2m(img);
    const guest = readGuestView(img);
    const order = leafReadOrder(planLeaves(tool, guest));
    xen.mapCalls = 0;
    auditLiveDomain(openDomain(xen, xen.handle, 7, { symbols: g.image.symbols }));
    const distinctLeaves = new Set(order).size;
    // the walks' own frames (tables, variables) are read one at a time; the leaves in ceil(n / 1024) calls
    const walkFrames = guest.structureFrames.size + 16;
    expect(before).toBe(1); // shared_info at open
    expect(distinctLeaves).toBeGreaterThan(500);
    expect(xen.mapCalls).toBeLessThanOrEqual(1 + Math.ceil(distinctLeaves / BATCH_FRAMES) + 2 * walkFrames);
    expect(xen.mapCalls).toBeLessThan(distinctLeaves / 4);
  });

  // The save prediction's m2p (normalise-tables.ts pfnsOfMfns: the guest's p2m inverted) reads every guest leaf
  // page again after the audit. Without announcing them, every leaf outside the last batch was its own map call
  // (a 4 GiB guest on the real host: 1,024 of its 1,052 calls). Bounds from the structure: L leaf pages read in
  // order cost ceil(L / B) calls with B frames per call; the walks' own frames are read one at a time.
  it.each([64, 256, BATCH_FRAMES])('the whole audit and the save prediction map the leaves in batches of %i frames', (batch) => {
    const xen = new FakeXen(g.image);
    const img = openDomain(xen, xen.handle, 7, { symbols: g.image.symbols, batchFrames: batch });
    const tool = mapP2m(img);
    const guest = readGuestView(img);
    const distinctLeaves = new Set(leafReadOrder(planLeaves(tool, guest))).size;
    const guestLeaves = guest.leafFrames.filter((f, k) => guest.kinds[k] === GuestLeaf.PAGE && f >= 0).length;
    const walkFrames = guest.structureFrames.size + 16;
    xen.mapCalls = 0;
    const live = auditLiveDomain(openDomain(xen, xen.handle, 7, { symbols: g.image.symbols, batchFrames: batch }));
    expect(live.report.save?.outcome).toBe('drops');
    expect(xen.mapCalls).toBeLessThanOrEqual(1 + Math.ceil(distinctLeaves / batch) + Math.ceil(guestLeaves / batch) + 2 * walkFrames);
  });

  it.each([64, 256])('the m2p pass over %i-frame batches: ceil(leaves / batch) map calls announced, one per leaf without', (batch) => {
    const xen = new FakeXen(g.image);
    const img = openDomain(xen, xen.handle, 7, { symbols: g.image.symbols, batchFrames: batch });
    const guest = readGuestView(img);
    const leaves = guest.leafFrames.filter((f, k) => guest.kinds[k] === GuestLeaf.PAGE && f >= 0);
    expect(new Set(leaves).size).toBe(leaves.length);
    expect(leaves.length).toBeGreaterThan(2 * batch);
    // an mfn no pfn maps: the pass reads every leaf (it stops early only once every wanted mfn is found)
    xen.mapCalls = 0;
    expect(pfnsOfMfns(img, guest.kinds, guest.leafFrames, [MAX_MFN]).size).toBe(0);
    expect(xen.mapCalls).toBe(Math.ceil(leaves.length / batch));
    // the same pass over a frame source that cannot be told what comes next (no readAhead): one call per leaf
    // outside the batch the image still holds
    const plain: GuestImage = Object.assign(Object.create(img) as GuestImage, { readAhead: undefined });
    xen.mapCalls = 0;
    pfnsOfMfns(plain, guest.kinds, guest.leafFrames, [MAX_MFN]);
    expect(xen.mapCalls).toBeGreaterThanOrEqual(leaves.length - batch);
  });

  it('the m2p pass stops at the last wanted mfn: it reads the leaves up to that pfn only', () => {
    const xen = new FakeXen(g.image);
    const img = openDomain(xen, xen.handle, 7, { symbols: g.image.symbols, batchFrames: 1 });
    const guest = readGuestView(img);
    const k = 3; // an mfn that guest leaf 3 maps (first pfn 3·512): leaves 0–3 are read, one frame per call
    const page = g.image.readFrame(guest.leafFrames[k]!)!;
    const mfn = Number(page.readBigUInt64LE(0));
    expect([0, 1, 2, 3].every((j) => guest.kinds[j] === GuestLeaf.PAGE)).toBe(true);
    xen.mapCalls = 0;
    expect(pfnsOfMfns(img, guest.kinds, guest.leafFrames, [mfn, mfn])).toEqual(new Map([[mfn, k * 512]]));
    expect(xen.mapCalls).toBe(k + 1);
  });

  // Two code paths find the pfns: a byte search per leaf page for up to SEARCHED_MFNS mfns, a bitmap test of
  // every entry for more. Expected: the pfn each mfn was read at (leaf k, entry i → pfn 512·k + i; the
  // emulated guest maps every RAM mfn once), the same from both paths, and nothing outside [fromPfn, toPfn].
  it.each([1, SEARCHED_MFNS, SEARCHED_MFNS + 4])('pfnsOfMfns of %i mfns read from the guest leaves gives the pfns they were read at', (count) => {
    const img = g.image;
    const guest = readGuestView(img);
    const leaves = [...guest.leafFrames.keys()].filter((k) => guest.kinds[k] === GuestLeaf.PAGE && guest.leafFrames[k]! >= 0);
    const expected = new Map<number, number>();
    for (let j = 0; j < count; j++) {
      const k = leaves[(j * 13) % leaves.length]!;
      const i = (j * 37 + 5) % 512;
      expected.set(Number(img.readFrame(guest.leafFrames[k]!)!.readBigUInt64LE(i * 8)), k * 512 + i);
    }
    expect(expected.size).toBe(count);
    const wanted = [...expected.keys(), MAX_MFN, -1];
    expect(pfnsOfMfns(img, guest.kinds, guest.leafFrames, wanted)).toEqual(expected);
    const [firstMfn, firstPfn] = [...expected][0]!;
    const later = pfnsOfMfns(img, guest.kinds, guest.leafFrames, wanted, firstPfn + 1);
    expect(later.has(firstMfn)).toBe(false);
    expect(pfnsOfMfns(img, guest.kinds, guest.leafFrames, wanted, 0, firstPfn).get(firstMfn)).toBe(firstPfn);
  });

  it('p2m --domain prints every pfn 0..max_pfn as renderMfndump prints the same entries, the page type appended', () => {
    const xen = new FakeXen(g.image);
    const img = openDomain(xen, xen.handle, 7, { symbols: g.image.symbols });
    const types = toolstackPageTypes(img);
    const live: string[] = [];
    const size = renderLiveP2m(img, types, (l) => live.push(l));
    const file: string[] = [];
    renderMfndump(g.image, 'toolstack', (l) => file.push(l), { domid: 7 });
    expect(size).toBe(mapP2m(g.image).maxPfn + 1);
    expect(live).toHaveLength(size + 3); // xen-mfndump: two header lines, one line per pfn, the end line
    expect(live.slice(0, 2)).toEqual(file.slice(0, 2));
    expect(live.at(-1)).toBe(file.at(-1));
    // the file printer may fold long runs without RAM into one line; every line it prints per pfn is ours too
    const ours = new Map(live.slice(2, -1).map((l) => [/pfn=(0x[0-9a-f]+) /.exec(l)![1], l]));
    const single = file.filter((l) => /^ {2}pfn=0x[0-9a-f]+ ==>/.test(l));
    expect(single.length).toBeGreaterThan(0x10000);
    // the fake's types: XTAB (printed " (type 0xf) invalid") for entries above the 40-bit mfn field, else NOTAB
    const suffix = (l: string): string => (BigInt(/mfn=(0x[0-9a-f]+)/.exec(l)![1]!) >> 40n ? ' (type 0xf) invalid' : ' (type 0x0)');
    for (const l of single) expect(ours.get(/pfn=(0x[0-9a-f]+) /.exec(l)![1])).toBe(l + suffix(l));
  });
});

describe('consistency: arch.p2m_generation and the arch words', () => {
  const g = seedGuest('linux-4.x');
  const genAt = SHARED_INFO_FRAME;

  it.each([
    ['odd generation', { p2mGeneration: 3n }, /odd/],
    ['generation changed', { p2mGeneration: 4n }, /p2m_generation changed from 2 to 4/],
    ['max_pfn changed', { maxPfn: 0x50000n }, /arch\.max_pfn changed/],
  ])('%s', (_name, change, why) => {
    const before = { maxPfn: 0x40000n, pfnToMfnFrameListList: 5n, nmiReason: 0n, p2mCr3: 0x1000n, p2mVaddr: 0xffffc90000000000n, p2mGeneration: 2n };
    expect(archChange(before, before)).toBeNull();
    expect(archChange(before, { ...before, ...change })).toMatch(why);
  });

  it('a p2m that changes during every read gives InconsistentReadError after N attempts; a stable one reads at once', () => {
    const xen = new FakeXen(g.image);
    let gen = 0n;
    xen.onMap = () => {
      gen += 2n; // the guest replaces a p2m page (Linux: ++generation twice) while it is read
      xen.sharedInfo.writeBigUInt64LE(gen, ARCH_P2M_GENERATION_OFFSET);
    };
    expect(genAt).toBe(SHARED_INFO_FRAME);
    expect(() => readConsistently(() => openDomain(xen, xen.handle, 7, { symbols: g.image.symbols }), (img) => auditLiveDomain(img), { attempts: 3 })).toThrow(InconsistentReadError);
    xen.onMap = null;
    const ok = readConsistently(() => openDomain(xen, xen.handle, 7, { symbols: g.image.symbols }), (img) => auditLiveDomain(img).report.verdict, { attempts: 3 });
    expect(ok).toMatchObject({ value: 'CLEAN', attempts: 1 });
  });

  it('--pause unpauses exactly once, also when the read throws', () => {
    const xen = new FakeXen(g.image);
    const p = { pause: () => xen.pause(), unpause: () => xen.unpause() };
    expect(withPause(p, () => 42)).toBe(42);
    expect(() =>
      withPause(p, () => {
        throw new InputError('domain 7: gone');
      }),
    ).toThrow('gone');
    expect([xen.pauses, xen.unpauses]).toEqual([2, 2]);
  });
});

describe('domains that cannot be read: one-line InputErrors', () => {
  const g = seedGuest('linux-4.x');
  const xen = new FakeXen(g.image);
  it.each([
    [42, /domain 42: no such domain/],
    [8, /domain 8: is an HVM guest/],
    [9, /domain 9: is a PVH guest/],
    [0, /Xen refuses to map dom0's own shared_info/],
  ])('domain %i', (domid, msg) => {
    let err: unknown;
    try {
      openDomain(xen, xen.handle, domid);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(msg);
    expect((err as Error).message).not.toContain('\n');
  });

  it('scan --domains all: HVM and PVH skipped with the reason, dom0 skipped, PV audited', () => {
    expect(xen.domains.map((d) => guestType(d))).toEqual(['PV', 'PV', 'HVM', 'PVH']);
    expect(xen.domains.map((d) => skipReason({ domid: d.domid, name: null, info: d }))).toEqual([
      "this dom0: Xen refuses a domain mapping its own frames as foreign",
      null,
      'HVM guest: no PV p2m',
      'PVH guest: no PV p2m',
    ]);
  });

  it('names resolve through xenstore; an unknown name is one line', () => {
    const s = Reflect.construct(DomainSession as unknown as new (a: XenLiveAddon, h: XenHandle) => DomainSession, [xen, xen.handle]);
    expect(s.resolve('web01').domid).toBe(7);
    expect(s.resolve('7').name).toBe('web01');
    expect(() => s.resolve('db02')).toThrow(/domain db02: no such domain/);
  });

  it('reads the version from a linux_banner text', () => {
    expect(bannerVersion('Linux version 6.1.0-56-amd64 (debian-kernel@lists.debian.org) (gcc-12 …')).toBe('6.1.0-56-amd64');
    expect(bannerVersion('not a banner')).toBeNull();
  });
});
