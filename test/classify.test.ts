// The classifier and reporters (src/report/): verdict and exit code per case, and the cause of a fatal
// range in numbers. The main case is the seed (linux-p2m.md §7 (b), 3.8.13 + the 2c185687 backport,
// dom0_mem=1g,max:1g): arch.max_pfn = nr_pages = xen_max_p2m_pfn = 0x40000, kernel max_pfn 0x40061,
// 97 pages released from the e820 hole 0x9f-0xff and repopulated at 0x40000-0x40060 — uncovered.
// Every expected number below is derived by hand from those facts.
import { describe, expect, it } from 'vitest';
import type { ClassRange, PfnClassName } from '../src/audit/pfn-class.js';
import type { GuestView, KernelVars, ToolstackView } from '../src/views/p2m-leaves.js';
import type { BootFacts } from '../src/inputs/boot-facts.js';
import type { GuestImage } from '../src/formats/guest-image.js';
import { buildReport, EXIT_CLEAN, EXIT_FATAL, EXIT_PARTIAL, EXIT_WARNINGS, formatMib } from '../src/audit/verdict.js';
import { JSON_SCHEMA, renderJson } from '../src/report/json.js';
import { renderText } from '../src/report/text.js';
import { E820_RAM, E820_RESERVED } from '../src/xen/abi.js';

function image(bootFacts: BootFacts | null = null): GuestImage {
  return {
    path: '/corpus/seed.p2ms',
    format: 'p2ms',
    frameSpace: 'mfn',
    guestWidth: 8,
    sharedInfo: null,
    arch: { maxPfn: 0n, pfnToMfnFrameListList: 0n, nmiReason: 0n, p2mCr3: 0n, p2mVaddr: 0n, p2mGeneration: 0n },
    cr3: 0n,
    symbols: new Map(),
    formatFacts: { kind: 'snapshot', boot: bootFacts },
    maxFrame: Infinity,
    readFrame: () => null,
    frameOffset: () => -1,
    frameCount: () => 0,
    close: () => {},
  };
}

function tool(over: Partial<ToolstackView> = {}): ToolstackView {
  return {
    method: 'tree',
    archMaxPfn: 0x40000n,
    maxPfn: 0x3ffff,
    leafFrames: new Float64Array(0x200),
    failure: null,
    untrimmedMaxPfn: null,
    structureFrames: new Set(),
    notes: [],
    ...over,
  };
}

function guest(vars: KernelVars = {}, over: Partial<GuestView> = {}): GuestView {
  return {
    layout: 'tree',
    limitPfn: 0x100000,
    beyond: 'missing',
    kinds: new Uint8Array(0),
    leafFrames: new Float64Array(0),
    missingFrame: -1,
    identityFrame: -1,
    vars,
    structureFrames: new Set(),
    notes: [],
    ...over,
  };
}

const R = (start: number, end: number, cls: PfnClassName): ClassRange => ({ start, end, cls });

/** Host e820 of the seed (QEMU-style dom0 host, 6 GiB). */
const SEED_E820 = [
  { addr: 0x0, size: 0x9fc00, type: E820_RAM },
  { addr: 0x9fc00, size: 0x400, type: E820_RESERVED },
  { addr: 0xf0000, size: 0x10000, type: E820_RESERVED },
  { addr: 0x100000, size: 0x7fedf000, type: E820_RAM },
  { addr: 0x7ffdf000, size: 0x21000, type: E820_RESERVED },
  { addr: 0x100000000, size: 0x80000000, type: E820_RAM },
];

const SEED_BOOT: BootFacts = {
  profile: 'linux-3.8.13-backport',
  role: 'dom0',
  hostE820: SEED_E820,
  kernelE820: SEED_E820,
  dom0Mem: '1g,max:1g',
  nrPages: 0x40000,
  maxPages: 0x40000,
  kernelMaxPfn: 0x40061,
  buildBound: 0x40000,
  xenMaxP2mPfnHistory: [{ value: 0x40000, by: 'xen_build_dynamic_phys_to_machine' }],
  identity: [{ start: 0x9f, end: 0x100 }],
  remapped: [{ from: { start: 0x9f, end: 0x100 }, to: { start: 0x40000, end: 0x40061 }, how: 'populate' }],
  released: 97,
  extraRegions: [],
  config: {},
  messages: [],
  seed: 1,
};

const SEED_VARS: KernelVars = { nrPages: 0x40000, maxPfn: 0x40061, xenMaxP2mPfn: 0x40000 };

const SEED_RANGES = [
  R(0x0, 0x9f, 'ram'),
  R(0x9f, 0x100, 'identity'),
  R(0x100, 0x40000, 'ram'),
  R(0x40000, 0x40061, 'uncovered'),
  R(0x40061, 0x7ffdf, 'missing'),
  R(0x7ffdf, 0x100000, 'identity'),
];

describe('buildReport verdicts and exit codes', () => {
  const cases: { name: string; ranges: ClassRange[]; tool?: Partial<ToolstackView>; verdict: string; exit: number }[] = [
    { name: 'benign only → CLEAN', ranges: [R(0, 0x9f, 'ram'), R(0x9f, 0x100, 'identity'), R(0x100, 0x200, 'foreign'), R(0x200, 0x400, 'missing')], verdict: 'CLEAN', exit: EXIT_CLEAN },
    { name: 'stale only → WARN', ranges: [R(0, 0x100, 'ram'), R(0x100, 0x101, 'stale')], verdict: 'WARN', exit: EXIT_WARNINGS },
    { name: 'uncovered → FATAL', ranges: SEED_RANGES, verdict: 'FATAL', exit: EXIT_FATAL },
    { name: 'lost → FATAL', ranges: [R(0, 0x10, 'ram'), R(0x10, 0x20, 'lost')], verdict: 'FATAL', exit: EXIT_FATAL },
    { name: 'mismatch → FATAL', ranges: [R(0, 0x10, 'ram'), R(0x10, 0x11, 'mismatch')], verdict: 'FATAL', exit: EXIT_FATAL },
    { name: 'fatal and stale → FATAL', ranges: [R(0, 0x10, 'lost'), R(0x10, 0x11, 'stale')], verdict: 'FATAL', exit: EXIT_FATAL },
    { name: 'fatal and unreadable → FATAL', ranges: [R(0, 0x10, 'lost'), R(0x200, 0x400, 'unreadable')], verdict: 'FATAL', exit: EXIT_FATAL },
    { name: 'unreadable only → ERROR, partial (a report with pages it could not check)', ranges: [R(0, 0x200, 'ram'), R(0x200, 0x400, 'unreadable'), R(0x400, 0x401, 'stale')], verdict: 'ERROR', exit: EXIT_PARTIAL },
    {
      name: 'toolstack walk failed → ERROR, fatal exit',
      ranges: [R(0, 0x40000, 'uncovered')],
      tool: { maxPfn: -1, leafFrames: new Float64Array(0), failure: 'pfn_to_mfn_frame_list_list is 0' },
      verdict: 'ERROR',
      exit: EXIT_FATAL,
    },
  ];
  it.each(cases)('$name', ({ ranges, tool: t, verdict, exit }) => {
    const report = buildReport({ img: image(), tool: tool(t), guest: guest(), ranges });
    expect(report.verdict).toBe(verdict);
    expect(report.exitCode).toBe(exit);
  });
});

describe('the seed: 97 repopulated pages past arch.max_pfn', () => {
  const report = buildReport({ img: image(SEED_BOOT), tool: tool(), guest: guest(SEED_VARS), ranges: SEED_RANGES });

  it('totals per class', () => {
    expect(report.classes.uncovered).toEqual({ pages: 97, mib: 97 / 256, ranges: 1 });
    // ram: 0x9f + (0x40000 - 0x100) = 159 + 261888
    expect(report.classes.ram.pages).toBe(262047);
    // identity: 0x61 + (0x100000 - 0x7ffdf) = 97 + 524321 (linux-p2m.md: "Set 524418 page(s) to 1-1")
    expect(report.classes.identity.pages).toBe(524418);
    expect(report.fatalPages).toBe(97);
    expect(report.auditedPfns).toBe(0x100000);
    expect(report.benign.map((r) => [r.cls, r.start, r.end])).toEqual([
      ['identity', 0x9f, 0x100],
      ['missing', 0x40061, 0x7ffdf],
      ['identity', 0x7ffdf, 0x100000],
    ]);
  });

  it('the cause in numbers', () => {
    expect(report.fatal).toHaveLength(1);
    const f = report.fatal[0]!;
    expect([f.cls, f.start, f.end, f.pages, f.mib]).toEqual(['uncovered', 0x40000, 0x40061, 97, 97 / 256]);
    expect(f.cause.kind).toBe('beyond-bound');
    expect(f.cause.toolstack).toEqual({ method: 'tree', archMaxPfn: 0x40000n, boundPfn: 0x40000, failure: null, trimmedFrom: null });
    expect(f.cause.boundEquals).toEqual(['nr_pages', 'xen_max_p2m_pfn', 'build_bound']);
    expect(f.cause.reachesRange).toEqual(['max_pfn']);
    expect(f.cause.boot).toEqual({ profile: 'linux-3.8.13-backport', nrPages: 0x40000, kernelMaxPfn: 0x40061, buildBound: 0x40000 });
    expect(f.cause.remapped).toEqual([
      {
        how: 'populate',
        from: { start: 0x9f, end: 0x100 },
        to: { start: 0x40000, end: 0x40061 },
        overlap: { start: 0x40000, end: 0x40061 },
        // the hole is bytes 0x9f000-0xfffff: the tail page of the first RAM entry, reserved, a gap, reserved
        e820: [
          { addr: 0x0, end: 0x9fc00, type: 'RAM' },
          { addr: 0x9fc00, end: 0xa0000, type: 'reserved' },
          { addr: 0xa0000, end: 0xf0000, type: 'gap' },
          { addr: 0xf0000, end: 0x100000, type: 'reserved' },
        ],
      },
    ]);
    // 0xffff880000000000 + 0x40000·0x1000 = 0xffff880040000000; end = + 0x40061·0x1000 − 1
    expect(f.cause.breaks).toEqual({
      effect: 'dropped',
      savePages: 97,
      saveMib: 97 / 256,
      vaStart: 0xffff880040000000n,
      vaEnd: 0xffff880040060fffn,
      // this hand-built image has no frame list (FLL 0) and a tree layout: crash has no p2m to follow
      crashSource: 'none',
      crashReadablePages: 0,
    });
  });

  it('the cause in words', () => {
    const f = report.fatal[0]!;
    expect(f.text).toContain('past the toolstack bound arch.max_pfn 0x40000 (tree walk covers pfns 0x0-0x3ffff)');
    expect(f.text).toContain('arch.max_pfn equals nr_pages 0x40000 and xen_max_p2m_pfn 0x40000');
    expect(f.text).toContain('xen_build_mfn_list_list ran with bound 0x40000 (profile linux-3.8.13-backport)');
    expect(f.text).toContain("but the kernel's max_pfn 0x40061 counts these pfns as its own");
    expect(f.text).toContain(
      'pfns 0x40000-0x40060 are RAM released and repopulated at boot out of the e820 hole 0x9f-0xff ' +
        '(RAM 0x0-0x9fbff, reserved 0x9fc00-0x9ffff, gap 0xa0000-0xeffff, reserved 0xf0000-0xfffff) to 0x40000-0x40060',
    );
    expect(f.breaksText).toBe(
      "save/migration drops 97 pages (0.4 MiB); crash reports 'read error: kernel virtual address' for 0xffff880040000000-0xffff880040060fff",
    );
  });

  it('renders text', () => {
    const text = renderText(report);
    const lines = text.split('\n');
    expect(lines[0]).toBe('p2m-audit: FATAL (exit 1) — 97 pages (0.4 MiB) of guest RAM are not saved correctly (uncovered 97)');
    expect(text).toContain('toolstack: tree walk, arch.max_pfn 0x40000 (covers pfns 0x0-0x3ffff) vs nr_pages 0x40000, max_pfn 0x40061, xen_max_p2m_pfn 0x40000');
    expect(text).toContain('  pfn 0x40000-0x40060 (97 pages, 0.4 MiB) uncovered: these pfns lie past the toolstack bound');
    expect(text).toContain("    breaks: save/migration drops 97 pages (0.4 MiB); crash reports 'read error: kernel virtual address' for 0xffff880040000000-0xffff880040060fff");
    // identity 524418 pages = 2048.5 MiB (524418 / 256 = 2048.507…); missing 0x7ffdf − 0x40061 = 262014 pages = 1023.5 MiB
    expect(text).toContain('benign: identity 524418 pages, 2048.5 MiB in 2 ranges; missing 262014 pages, 1023.5 MiB in 1 range');
  });

  it('renders JSON', () => {
    const j = JSON.parse(renderJson(report));
    expect(j.schema).toBe(JSON_SCHEMA);
    expect([j.file, j.format, j.verdict, j.exitCode]).toEqual(['/corpus/seed.p2ms', 'p2ms', 'FATAL', 1]);
    expect(j.toolstack).toEqual({ method: 'tree', archMaxPfn: '0x40000', maxPfn: '0x3ffff', boundPfn: '0x40000', failure: null, trimmedFrom: null, notes: [] });
    expect(j.guest.vars).toEqual({ nrPages: '0x40000', maxPfn: '0x40061', xenMaxP2mPfn: '0x40000', xenP2mSize: null, xenP2mLastPfn: null, pageOffset: null, p2mAddr: null });
    expect(j.guest.pageOffset).toBe('0xffff880000000000');
    expect(j.classes.uncovered).toEqual({ pages: 97, mib: 0.37890625, ranges: 1 });
    expect(Object.keys(j.classes)).toEqual(['ram', 'identity', 'missing', 'foreign', 'uncovered', 'lost', 'mismatch', 'stale', 'unreadable']);
    expect(j.fatal).toHaveLength(1);
    const f = j.fatal[0];
    expect([f.class, f.start, f.end, f.pages, f.mib]).toEqual(['uncovered', '0x40000', '0x40060', 97, 0.37890625]);
    expect(f.cause.kernel).toEqual([
      { name: 'nr_pages', value: '0x40000', source: 'symbol' },
      { name: 'max_pfn', value: '0x40061', source: 'symbol' },
      { name: 'xen_max_p2m_pfn', value: '0x40000', source: 'symbol' },
    ]);
    expect(f.cause.remapped[0].from).toEqual({ start: '0x9f', end: '0xff' });
    expect(f.cause.remapped[0].e820[2]).toEqual({ start: '0xa0000', end: '0xeffff', type: 'gap' });
    expect(f.cause.breaks).toEqual({ effect: 'dropped', savePages: 97, saveMib: 0.37890625, crashVa: { start: '0xffff880040000000', end: '0xffff880040060fff' }, crashSource: 'none', crashReadablePages: 0 });
    expect(j.benign[0]).toEqual({ class: 'identity', start: '0x9f', end: '0xff', pages: 97, mib: 97 / 256 });
    expect(j.boot.remapped).toEqual([{ how: 'populate', from: { start: '0x9f', end: '0xff' }, to: { start: '0x40000', end: '0x40060' } }]);
  });
});

describe('other causes', () => {
  it('boot facts only (no symbols): nr_pages and max_pfn come from the boot facts', () => {
    const r = buildReport({ img: image(SEED_BOOT), tool: tool(), guest: guest({}), ranges: SEED_RANGES });
    expect(r.fatal[0]!.cause.kernel).toEqual([
      { name: 'nr_pages', value: 0x40000, source: 'boot' },
      { name: 'max_pfn', value: 0x40061, source: 'boot' },
    ]);
    expect(r.fatal[0]!.text).toContain('arch.max_pfn equals nr_pages 0x40000');
  });

  it('an uncovered range straddling the bound is split: shared p2m_missing inside, beyond-bound outside', () => {
    const t = tool({ archMaxPfn: 0x80000n, maxPfn: 0x7ffff });
    const r = buildReport({ img: image(), tool: t, guest: guest(), ranges: [R(0, 0x7fe00, 'ram'), R(0x7fe00, 0x80200, 'uncovered')] });
    expect(r.fatal.map((f) => [f.start, f.end, f.pages, f.cause.kind])).toEqual([
      [0x7fe00, 0x80000, 0x200, 'shared-missing'],
      [0x80000, 0x80200, 0x200, 'beyond-bound'],
    ]);
    expect(r.fatal[0]!.text).toContain("leads to the guest's shared p2m_missing page");
    expect(r.classes.uncovered).toEqual({ pages: 0x400, mib: 4, ranges: 1 });
  });

  it('a failed walk: the failure text is the cause', () => {
    const t = tool({ maxPfn: -1, leafFrames: new Float64Array(0), failure: 'pfn_to_mfn_frame_list_list is 0' });
    const r = buildReport({ img: image(), tool: t, guest: guest(), ranges: [R(0, 0x40000, 'uncovered'), R(0x40000, 0x100000, 'missing')] });
    expect(r.fatal).toHaveLength(1);
    expect(r.fatal[0]!.cause.kind).toBe('walk-failed');
    expect(r.fatal[0]!.text).toBe("the toolstack's tree walk failed: pfn_to_mfn_frame_list_list is 0; save aborts, so none of the guest's RAM is saved");
    // 0x40000 pages = 1024 MiB
    expect(r.reason).toBe("the toolstack's tree walk failed (pfn_to_mfn_frame_list_list is 0): save aborts; 262144 pages (1024.0 MiB) of guest RAM are uncovered");
    const j = JSON.parse(renderJson(r));
    expect([j.verdict, j.exitCode, j.toolstack.maxPfn, j.toolstack.boundPfn]).toEqual(['ERROR', 1, null, '0x0']);
    expect(renderText(r)).toContain('toolstack: tree walk failed: pfn_to_mfn_frame_list_list is 0 (arch.max_pfn 0x40000)');
  });

  it('mismatch on a list guest: wrong data, VAs from the kernel page_offset_base, trimmed bound', () => {
    const t = tool({ method: 'list', archMaxPfn: 0x8000000n, maxPfn: 0x13ffff, untrimmedMaxPfn: 0x7ffffff });
    const g = guest({ pageOffset: 0xffff888000000000n, xenP2mSize: 0x8000000 }, { layout: 'list', beyond: 'identity' });
    const r = buildReport({ img: image(), tool: t, guest: g, ranges: [R(0, 0x100000, 'ram'), R(0x100000, 0x100002, 'mismatch')] });
    const f = r.fatal[0]!;
    expect(f.cause.kind).toBe('wrong-mfn');
    // 0xffff888000000000 + 0x100000·0x1000 = 0xffff888100000000; end + 2 pages − 1 = 0xffff888100001fff
    expect([f.cause.breaks.vaStart, f.cause.breaks.vaEnd]).toEqual([0xffff888100000000n, 0xffff888100001fffn]);
    expect(f.cause.breaks.effect).toBe('wrong-data');
    expect(f.text).toContain('covered by the toolstack (arch.max_pfn 0x8000000 (list walk covers pfns 0x0-0x13ffff, trimmed from max_pfn 0x7ffffff))');
    expect(f.breaksText).toBe(
      'save/migration copies the wrong machine frames for 2 pages (0.0078 MiB); crash reads wrong memory for kernel virtual addresses 0xffff888100000000-0xffff888100001fff',
    );
    expect(JSON.parse(renderJson(r)).toolstack.trimmedFrom).toBe('0x7ffffff');
  });

  it('remapped RAM (3.18+ remap) partly inside a lost range', () => {
    const boot: BootFacts = {
      ...SEED_BOOT,
      profile: 'linux-3.18',
      remapped: [{ from: { start: 0x7ffdf, end: 0x80000 }, to: { start: 0x100000, end: 0x100021 }, how: 'remap' }],
    };
    const t = tool({ archMaxPfn: 0x200000n, maxPfn: 0x1fffff });
    const r = buildReport({ img: image(boot), tool: t, guest: guest(), ranges: [R(0, 0x100010, 'ram'), R(0x100010, 0x100030, 'lost')] });
    const f = r.fatal[0]!;
    expect(f.cause.kind).toBe('invalid-entry');
    expect(f.cause.remapped[0]!.overlap).toEqual({ start: 0x100010, end: 0x100021 });
    expect(f.cause.remapped[0]!.e820).toEqual([{ addr: 0x7ffdf000, end: 0x80000000, type: 'reserved' }]);
    expect(f.text).toContain('pfns 0x100010-0x100020 are RAM remapped at boot out of the e820 hole 0x7ffdf-0x7ffff (reserved 0x7ffdf000-0x7fffffff) to 0x100000-0x100020');
  });

  it('warnings and errors carry their ranges', () => {
    const r = buildReport({ img: image(), tool: tool(), guest: guest(), ranges: [R(0, 0x10, 'ram'), R(0x10, 0x11, 'stale'), R(0x200, 0x400, 'unreadable')] });
    expect(r.warnings.map((w) => [w.cls, w.start, w.end])).toEqual([['stale', 0x10, 0x11]]);
    expect(r.errors.map((w) => [w.cls, w.start, w.end, w.pages])).toEqual([['unreadable', 0x200, 0x400, 0x200]]);
    const j = JSON.parse(renderJson(r));
    expect(j.warnings[0]).toMatchObject({ class: 'stale', start: '0x10', end: '0x10', pages: 1 });
    expect(j.errors[0]).toMatchObject({ class: 'unreadable', start: '0x200', end: '0x3ff', pages: 512, mib: 2 });
  });

  it('formatMib', () => {
    expect([formatMib(0), formatMib(1 / 256), formatMib(97 / 256), formatMib(2048.5)]).toEqual(['0', '0.0039', '0.4', '2048.5']);
  });
});
