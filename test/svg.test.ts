// The SVG memory map in a real headless Chromium: reports produced by the real pipeline (openImage →
// auditImage) on the corpus scenarios are rendered, parsed as strict XML in the browser, laid out
// (no script errors, non-zero size, no two text boxes overlapping, all text inside the picture) and
// screenshotted; the decoded PNG must be colourful, and show the fatal colour for a FATAL report and
// never for a CLEAN one. `UPDATE_DOCS=1 npx vitest run test/svg.test.ts` also writes docs/seed-map.png
// (the seed backport report's picture, as the browser draws it).
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { auditImage } from '../src/audit/audit-image.js';
import { openImage } from '../src/formats/open-image.js';
import type { AuditReport } from '../src/audit/verdict.js';
import { CLASS_COLOURS, FATAL_COLOUR, VERDICT_COLOURS, renderSvg, renderSweepSvg, type SweepMatrix } from '../src/report/svg.js';
import { colourHistogram, decodePng, dumpDom, ensureChromium, screenshot } from './helpers/chromium.js';

const repo = path.resolve(__dirname, '..');
const scenarioDir = path.join(repo, 'corpora/scenarios');
const INSTALL_TIMEOUT_MS = 20 * 60_000;
/** a real picture: text anti-aliasing alone gives dozens of shades */
const MIN_DISTINCT_COLOURS = 40;
/** pixels of one exact colour that count as "it is drawn", not stray anti-aliasing */
const MIN_DRAWN_PIXELS = 100;
const FATAL_CLASS_COLOURS = [CLASS_COLOURS.uncovered, CLASS_COLOURS.lost, CLASS_COLOURS.mismatch];

interface Probe {
  errors: string[];
  width: number;
  height: number;
  texts: string[];
  overlaps: string[];
  outside: string[];
  title: string;
}

/** A page that parses the SVG as strict XML, inserts it and measures it; results go into the DOM. */
function probePage(svg: string): string {
  const src = JSON.stringify(svg).replace(/</g, '\\u003c');
  return `<!doctype html><html><head><meta charset="utf-8"><title>pending</title>
<script>window.__errors = []; window.addEventListener('error', (e) => window.__errors.push(String(e.message)));</script>
</head><body style="margin:0"><pre id="result"></pre><script>
const res = { width: 0, height: 0, texts: [], overlaps: [], outside: [] };
try {
  const doc = new DOMParser().parseFromString(${src}, 'image/svg+xml');
  const bad = doc.querySelector('parsererror');
  if (bad) throw new Error('SVG is not well-formed XML: ' + bad.textContent);
  const svg = document.importNode(doc.documentElement, true);
  document.body.appendChild(svg);
  const box = svg.getBoundingClientRect();
  res.width = box.width; res.height = box.height;
  const texts = [...svg.querySelectorAll('text')].map((t) => ({ s: t.textContent, r: t.getBoundingClientRect() }));
  res.texts = texts.map((t) => t.s);
  const EPS = 0.5;
  for (let i = 0; i < texts.length; i++) {
    const a = texts[i].r;
    if (a.left < box.left - EPS || a.right > box.right + EPS || a.top < box.top - EPS || a.bottom > box.bottom + EPS) res.outside.push(texts[i].s);
    for (let j = i + 1; j < texts.length; j++) {
      const b = texts[j].r;
      if (Math.min(a.right, b.right) - Math.max(a.left, b.left) > EPS && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > EPS) {
        res.overlaps.push(texts[i].s + ' <-> ' + texts[j].s);
      }
    }
  }
} catch (e) { window.__errors.push(String(e && e.message || e)); }
res.errors = window.__errors;
document.getElementById('result').textContent = JSON.stringify(res);
document.title = 'ok:' + res.width;
</script></body></html>`;
}

function probe(svg: string): Probe {
  const dom = dumpDom(probePage(svg));
  const m = /<pre id="result">([\s\S]*?)<\/pre>/.exec(dom);
  if (!m) throw new Error(`the page did not report (DOM: ${dom.slice(0, 500)})`);
  const json = m[1].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
  const title = /<title>([^<]*)<\/title>/.exec(dom)?.[1] ?? '';
  return { ...(JSON.parse(json) as Omit<Probe, 'title'>), title };
}

function svgHeight(svg: string): number {
  const h = /<svg[^>]* height="(\d+)"/.exec(svg);
  if (!h) throw new Error('the SVG has no height');
  return Number(h[1]);
}

function shootPng(svg: string): Buffer {
  return screenshot(`<!doctype html><html><body style="margin:0;background:#ffffff">${svg}</body></html>`, 1200, svgHeight(svg));
}

function colours(png: Buffer): Map<string, number> {
  const img = decodePng(png);
  expect(img.width).toBe(1200);
  return colourHistogram(img);
}

/** Checks every rendering must pass in the browser. */
function expectSound(svg: string): Probe {
  const p = probe(svg);
  expect(p.errors).toEqual([]);
  expect(p.title).toBe(`ok:${p.width}`);
  expect(p.width).toBeGreaterThan(0);
  expect(p.height).toBeGreaterThan(0);
  expect(p.overlaps).toEqual([]);
  expect(p.outside).toEqual([]);
  return p;
}

async function reportOf(name: string): Promise<AuditReport> {
  const img = openImage(path.join(scenarioDir, name));
  try {
    return (await auditImage(img, { jobs: 0 })).report;
  } finally {
    img.close();
  }
}

let backport: AuditReport;
let fourX: AuditReport;

beforeAll(async () => {
  ensureChromium();
  backport = await reportOf('seed-backport.p2ms');
  fourX = await reportOf('seed-4x.p2ms');
}, INSTALL_TIMEOUT_MS);

describe('the browser checks themselves', () => {
  it('catch overlapping text, text outside the picture, malformed XML; the PNG decoder reads real pixels', () => {
    const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="60"><rect x="150" width="100" height="60" fill="#123456"/>' +
      '<text x="10" y="20" font-size="12">first label</text><text x="14" y="24" font-size="12">second label</text>' +
      '<text x="280" y="40" font-size="12">cut off</text></svg>';
    const p = probe(svg);
    expect(p.errors).toEqual([]);
    expect(p.width).toBe(300);
    expect(p.overlaps).toEqual(['first label <-> second label']);
    expect(p.outside).toEqual(['cut off']);
    expect(probe('<svg xmlns="http://www.w3.org/2000/svg"><text>a & b</text></svg>').errors.join()).toMatch(/not well-formed/);
    const img = decodePng(screenshot(`<!doctype html><html><body style="margin:0">${svg}</body></html>`, 300, 60));
    expect([img.width, img.height]).toEqual([300, 60]);
    // the rectangle (clear of the text) fills a third of the window exactly
    expect(colourHistogram(img).get('#123456')).toBe(100 * 60);
    expect(colourHistogram(img).size).toBeGreaterThan(3);
  });
});

describe('renderSvg on the seed reports', () => {
  it('draws the FATAL seed backport: lanes, markers, the remap and the fatal range, in red', () => {
    expect(backport.verdict).toBe('FATAL');
    const svg = renderSvg(backport);
    const p = expectSound(svg);
    expect(p.width).toBe(1200);
    const all = p.texts.join('\n');
    for (const lane of ['host e820', 'guest p2m', 'toolstack', 'boot remap']) expect(p.texts).toContain(lane);
    expect(all).toContain('arch.max_pfn = nr_pages 0x40000');
    expect(all).toContain('max_pfn 0x40061');
    expect(all).toContain('uncovered 97 pfns');
    expect(all).toContain('repopulated 97 pfns: hole 0x9f-0xff → 0x40000-0x40060');
    expect(p.texts[0]).toContain('seed-backport.p2ms');
    expect(p.texts[0]).toContain('FATAL');
    // both axes: hex pfns and GiB
    expect(p.texts).toContain('0x40000');
    expect(p.texts).toContain('1 GiB');
    expect(p.texts).toContain('0x100000');
    expect(p.texts).toContain('4 GiB');

    const png = shootPng(svg);
    const c = colours(png);
    expect(c.size).toBeGreaterThan(MIN_DISTINCT_COLOURS);
    expect(c.get(FATAL_COLOUR) ?? 0).toBeGreaterThan(MIN_DRAWN_PIXELS);
    expect(c.get(CLASS_COLOURS.ram) ?? 0).toBeGreaterThan(MIN_DRAWN_PIXELS);
    if (process.env.UPDATE_DOCS === '1') fs.writeFileSync(path.join(repo, 'docs/seed-map.png'), png);
  });

  it('draws the CLEAN seed 4.x with the 512 GiB identity tail compressed behind a labelled break, and no fatal colour', () => {
    expect(fourX.verdict).toBe('CLEAN');
    const svg = renderSvg(fourX);
    const p = expectSound(svg);
    const all = p.texts.join('\n');
    // the identity stretch from 6 GiB to 512 GiB is drawn compressed, labelled with its true size
    expect(all).toMatch(/break: 0x7e80000 pfns = 506\.0 GiB/);
    expect(p.texts).toContain('0x8000000');
    expect(p.texts).toContain('512 GiB');
    // the interesting first GiBs keep a readable scale: 1, 2, … GiB ticks are drawn
    expect(p.texts).toContain('1 GiB');
    expect(p.texts).toContain('2 GiB');
    expect(all).toContain('arch.max_pfn = max_pfn 0x40061');
    expect(all).toContain('remapped 97 pfns');

    const c = colours(shootPng(svg));
    expect(c.size).toBeGreaterThan(MIN_DISTINCT_COLOURS);
    for (const fatal of FATAL_CLASS_COLOURS) expect(c.get(fatal) ?? 0).toBe(0);
    expect(c.get(CLASS_COLOURS.identity) ?? 0).toBeGreaterThan(MIN_DRAWN_PIXELS);
    expect(c.get(CLASS_COLOURS.ram) ?? 0).toBeGreaterThan(MIN_DRAWN_PIXELS);
  });

  it('is self-contained and escapes text', () => {
    const title = `<script>alert("x")</script> & 'q'`;
    const svg = renderSvg(backport, { title });
    expect(svg).not.toContain('<script');
    expect(svg).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &apos;q&apos;');
    expect(svg.match(/https?:\/\/[^"]*/g)).toEqual(['http://www.w3.org/2000/svg']);
    expect(svg).not.toMatch(/url\((?!#)/);
    expect(svg).not.toMatch(/<(image|foreignObject|style)\b|@import|@font-face/);
    const p = expectSound(svg);
    expect(p.texts[0].startsWith(title)).toBe(true);
  });

  it('draws a report without boot facts (a real file) without the host and remap lanes', () => {
    const bare: AuditReport = { ...backport, boot: null };
    const p = expectSound(renderSvg(bare));
    expect(p.texts).toContain('guest p2m');
    expect(p.texts).toContain('toolstack');
    expect(p.texts).not.toContain('host e820');
    expect(p.texts).not.toContain('boot remap');
    expect(p.texts.join('\n')).toContain('uncovered 97 pfns');
  });

  it('draws a report whose toolstack walk failed: nothing saved, the failure spelled out', () => {
    const failed: AuditReport = {
      ...backport,
      verdict: 'ERROR',
      toolstack: { ...backport.toolstack, boundPfn: 0, maxPfn: -1, failure: 'frame list page 0 is absent' },
    };
    const p = expectSound(renderSvg(failed));
    expect(p.texts[0]).toContain('ERROR');
    expect(p.texts).toContain('tree walk failed: frame list page 0 is absent');
    expect(p.texts.join('\n')).toContain('toolstack walk failed 0x0');
  });
  it('stays fast and readable with thousands of ranges', () => {
    // 1500 small fatal ranges interleaved with 1500 identity ranges in the first GiB
    const RANGES = 3000;
    const fatal: AuditReport['fatal'] = [];
    const benign: AuditReport['benign'] = [];
    for (let i = 0; i < RANGES; i++) {
      const start = 0x100 + i * 64;
      const r = { start, end: start + 8, pages: 8, mib: 8 / 256 };
      if (i % 2) benign.push({ ...r, cls: 'identity' });
      else fatal.push({ ...backport.fatal[0], ...r, cls: i % 3 ? 'uncovered' : 'mismatch' });
    }
    const many: AuditReport = { ...backport, fatal: [...fatal, ...backport.fatal], benign: [...benign, ...backport.benign.filter((b) => b.start > 0x40000)] };
    const svg = renderSvg(many);
    // bounded by counts, not wall time: the drawing grows linearly, at most two shapes (fill, hatch) per added range
    const shapes = (s: string): number => (s.match(/<(rect|path|line|polygon)\b/g) ?? []).length;
    expect(shapes(svg)).toBeLessThanOrEqual(shapes(renderSvg(backport)) + 2 * RANGES);
    const p = expectSound(svg);
    expect(p.texts.join('\n')).toContain(`and ${RANGES / 2 + 1 - 4} more fatal ranges`);
    expect(p.texts.join('\n')).toContain('arch.max_pfn = nr_pages 0x40000');
  });
});

describe('renderSvg on every corpus scenario', () => {
  const files = fs.readdirSync(scenarioDir).filter((f) => f.endsWith('.p2ms')).sort();
  it('has scenarios to draw', () => expect(files.length).toBeGreaterThanOrEqual(2));
  for (const f of files) {
    it(`${f}: well-formed, laid out without overlapping text, fatal ranges labelled`, async () => {
      const report = await reportOf(f);
      const p = expectSound(renderSvg(report));
      expect(p.texts[0]).toContain(report.verdict);
      for (const r of report.fatal.slice(0, 3)) expect(p.texts.join('\n')).toContain(`${r.cls} ${r.pages} pfns`);
    });
  }
});

describe('renderSweepSvg', () => {
  it('draws a 3×2 matrix coloured by verdict with uncovered MiB', () => {
    const m: SweepMatrix = {
      rows: ['512m,max:512m', '1g,max:1g', '4g,max:4g'],
      cols: ['linux-3.8.13-backport', 'linux-4.x'],
      cells: [
        [{ verdict: 'FATAL', uncoveredMib: 0.37890625 }, { verdict: 'CLEAN', uncoveredMib: 0 }],
        [{ verdict: 'FATAL', uncoveredMib: 0.37890625 }, { verdict: 'CLEAN', uncoveredMib: 0 }],
        [{ verdict: 'FATAL', uncoveredMib: 1024.4 }, { verdict: 'WARN', uncoveredMib: 0 }],
      ],
    };
    const svg = renderSweepSvg(m);
    const p = expectSound(svg);
    for (const s of [...m.rows, ...m.cols]) expect(p.texts).toContain(s);
    expect(p.texts.filter((s) => s === 'FATAL').length).toBe(4); // three cells and the legend
    expect(p.texts).toContain('0.4 MiB uncovered');
    expect(p.texts).toContain('1024.4 MiB uncovered');
    const c = colours(shootPng(svg));
    expect(c.size).toBeGreaterThan(MIN_DISTINCT_COLOURS);
    for (const v of ['FATAL', 'CLEAN', 'WARN']) expect(c.get(VERDICT_COLOURS[v]) ?? 0).toBeGreaterThan(MIN_DRAWN_PIXELS);
  });
});
