// SVG renderer: draws an AuditReport as a memory map of the guest's pfn space — lanes for the host e820
// map, the guest's pfn classes (fatal classes red and hatched) and RAM that boot remapped/repopulated out
// of e820 holes (connectors with arrows back to the source hole); vertical markers for the toolstack
// bound and the kernel's max_pfn / nr_pages; axes in hex pfns and GiB; a legend and the fatal findings.
// The pfn axis is to scale piecewise: tiny ranges get a minimum width, long identity/missing stretches
// are drawn compressed behind a zig-zag break labelled with their true size. renderSweepSvg draws a
// sweep matrix (dom0_mem × profile). Pure string building: self-contained SVG, all text escaped.
import type { PfnClassName } from '../audit/pfn-class.js';
import type { BootFacts, RemapRecord } from '../inputs/boot-facts.js';
import type { E820Entry } from '../inputs/e820.js';
import { GiB, KiB, MiB, PAGE_SIZE, hex } from '../xen/abi.js';
import { e820TypeName, formatMib, pfnSpan, type AuditReport, type CauseKind } from '../audit/verdict.js';

/** Sweep matrix: rows are dom0_mem values, columns profiles; cells[row][col]. */
export interface SweepMatrix {
  rows: string[];
  cols: string[];
  cells: { verdict: string; uncoveredMib: number }[][];
}

// ---- layout (px) -------------------------------------------------------------------------------
const SVG_WIDTH = 1200;
const MARGIN = 16;
const PLOT_LEFT = MARGIN + 112; // lane labels to the left
const PLOT_RIGHT = SVG_WIDTH - MARGIN - 24;
const FONT = "'DejaVu Sans Mono', Menlo, Consolas, monospace";
const FONT_PX = { title: 17, text: 12, small: 11 } as const;
/** monospace advance width and bbox ascent/descent, in em (DejaVu Sans Mono: 0.602, 0.93, 0.24) */
const EM = { char: 0.61, ascent: 0.93, descent: 0.24 } as const;
const LABEL_PAD = 4;
/** a faint column behind each fatal range, this much wider on each side */
const SPOT_PAD = 5;
const LINE_H = 18;
const ANNOT = { rowH: 16, maxRows: 6, maxFatal: 6 } as const;
const LANE_H = { host: 22, guest: 34, save: 16, remapBar: 8, remapLevel: 22, gap: 10 } as const;
/** minimum segment widths; identity/missing stretches ≥ 4 GiB of pfns are drawn BREAK_PX wide */
const SEG = { minPx: 8, fatalMinPx: 16, breakPx: 110, breakMinPfns: (4 * GiB) / PAGE_SIZE } as const;
const ZIGZAG = { width: 10, step: 6, amp: 2 } as const;
const TICK = { len: 5, minPx: 100, minPfns: MiB / PAGE_SIZE } as const;
const SWATCH = 12;
const LEGEND_GAP = 18;
const MAX_FINDINGS = 4;
const PFNS_PER_GIB = GiB / PAGE_SIZE;
const SWEEP = { rowH: 46, cellMaxW: 240, headH: 26 } as const;

// ---- colours -----------------------------------------------------------------------------------
export const FATAL_COLOUR = '#d62839';
const INK = '#222222';
const MUTED = '#666666';
export const CLASS_COLOURS: Record<PfnClassName, string> = {
  ram: '#4f9d69', identity: '#a9bdd6', missing: '#e2e2e2', foreign: '#c792d9',
  uncovered: FATAL_COLOUR, lost: '#9e1b32', mismatch: '#f0643a', stale: '#f0b429', unreadable: '#6d6d6d',
};
const FATAL_CLASSES: readonly PfnClassName[] = ['uncovered', 'lost', 'mismatch'];
const LIGHT_TEXT_ON: readonly PfnClassName[] = ['ram', 'uncovered', 'lost', 'mismatch', 'unreadable'];
const HOST_COLOURS: Record<string, string> = {
  RAM: '#a3d6b1', reserved: '#cdb89a', ACPI: '#f2d479', NVS: '#e0a96d', unusable: '#9a9a9a',
  PMEM: '#8ec1e0', PRAM: '#b3a6d9', gap: '#ffffff',
};
const OTHER_HOST_COLOUR = '#bbbbbb';
const SAVE_COLOUR = '#4a5568';
const REMAP_COLOURS: Record<RemapRecord['how'], string> = { remap: '#2b7bb9', populate: '#7b4fb0' };
export const VERDICT_COLOURS: Record<string, string> = { CLEAN: '#2e8b57', WARN: '#d08a00', ERROR: '#7a1fa2', FATAL: FATAL_COLOUR };
const UNKNOWN_VERDICT_COLOUR = '#888888';
type MarkerKind = 'bound' | 'max_pfn' | 'nr_pages';
const MARKER_STYLE: Record<MarkerKind, { colour: string; width: number; dash: string }> = {
  bound: { colour: '#111111', width: 2, dash: '' },
  max_pfn: { colour: '#d97706', width: 1.5, dash: '6 3' },
  nr_pages: { colour: '#2563eb', width: 1.5, dash: '2 3' },
};
const CAUSE_WORDS: Record<CauseKind, string> = {
  'walk-failed': 'the toolstack walk failed', 'beyond-bound': 'past the toolstack bound',
  'shared-missing': 'toolstack reads p2m_missing', 'invalid-entry': 'toolstack leaf INVALID', 'wrong-mfn': 'toolstack leaf has other mfns',
};

// ---- text and boxes ----------------------------------------------------------------------------
type Anchor = 'start' | 'middle' | 'end';
/** `thin`: a line, not a label; labels keep LABEL_PAD from labels only, and lines may cross lines */
interface Box { x0: number; x1: number; y0: number; y1: number; thin?: boolean }
interface TextStyle { size?: number; anchor?: Anchor; fill?: string; bold?: boolean; italic?: boolean }

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&${({ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": 'apos' } as Record<string, string>)[c]};`);
}
const n2 = (v: number): string => String(Math.round(v * 100) / 100);
const textW = (s: string, size: number): number => [...s].length * size * EM.char;
function clip(s: string, maxW: number, size: number): string {
  const max = Math.floor(maxW / (size * EM.char));
  return [...s].length <= max ? s : `${[...s].slice(0, Math.max(0, max - 1)).join('')}…`;
}
function textBox(x: number, y: number, s: string, size: number, anchor: Anchor): Box {
  const w = textW(s, size);
  const x0 = anchor === 'start' ? x : anchor === 'end' ? x - w : x - w / 2;
  return { x0, x1: x0 + w, y0: y - size * EM.ascent, y1: y + size * EM.descent };
}
function text(x: number, y: number, s: string, st: TextStyle = {}): string {
  const a = st.anchor ?? 'start';
  return `<text x="${n2(x)}" y="${n2(y)}" font-size="${st.size ?? FONT_PX.small}"${a === 'start' ? '' : ` text-anchor="${a}"`}` +
    ` fill="${st.fill ?? INK}"${st.bold ? ' font-weight="bold"' : ''}${st.italic ? ' font-style="italic"' : ''}>${escapeXml(s)}</text>`;
}
const rect = (x: number, y: number, w: number, h: number, fill: string, extra = ''): string =>
  `<rect x="${n2(x)}" y="${n2(y)}" width="${n2(Math.max(w, 0))}" height="${n2(h)}" fill="${fill}"${extra}/>`;
const line = (x1: number, y1: number, x2: number, y2: number, stroke: string, extra = ''): string =>
  `<line x1="${n2(x1)}" y1="${n2(y1)}" x2="${n2(x2)}" y2="${n2(y2)}" stroke="${stroke}"${extra}/>`;

/** Occupied areas: every label is placed where it hits nothing placed before. */
class Occupied {
  private boxes: Box[] = [];
  hits(b: Box): boolean {
    const pad = (o: Box): number => (b.thin || o.thin ? 1 : LABEL_PAD);
    return b.x0 < MARGIN || b.x1 > SVG_WIDTH - MARGIN ||
      this.boxes.some((o) => !(b.thin && o.thin) && b.x0 < o.x1 + pad(o) && o.x0 < b.x1 + pad(o) && b.y0 < o.y1 && o.y0 < b.y1);
  }
  add(b: Box): void { this.boxes.push(b); }
  /** place the first candidate that fits; returns its index or -1 */
  place(cands: Box[]): number {
    const i = cands.findIndex((b) => !this.hits(b));
    if (i >= 0) this.add(cands[i]);
    return i;
  }
}

function fmtSize(pages: number): string {
  const bytes = pages * PAGE_SIZE;
  if (bytes >= GiB) return `${(bytes / GiB).toFixed(1)} GiB`;
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(1)} MiB`;
  return `${Math.round(bytes / KiB)} KiB`;
}
const gibLabel = (pfn: number): string => `${Number((pfn / PFNS_PER_GIB).toFixed(2))} GiB`;

// ---- what is drawn -----------------------------------------------------------------------------
interface Band { start: number; end: number; key: string }
interface Marker { pfn: number; kind: MarkerKind; names: string[] }

/** The guest's class ranges; RAM is what no listed range covers in [0, auditedPfns). */
function guestBands(r: AuditReport): Band[] {
  const listed = [...r.fatal, ...r.benign, ...r.warnings, ...r.errors].map((x) => ({ start: x.start, end: x.end, key: x.cls as string })).sort((a, b) => a.start - b.start);
  const out: Band[] = [];
  let at = 0;
  for (const b of listed) {
    if (b.start > at) out.push({ start: at, end: b.start, key: 'ram' });
    out.push(b);
    at = Math.max(at, b.end);
  }
  if (at < r.auditedPfns) out.push({ start: at, end: r.auditedPfns, key: 'ram' });
  return out;
}

/** Host e820 entries and the gaps between them, in (fractional) pfns, clipped to [0, span). */
function hostBands(map: E820Entry[], span: number): Band[] {
  const out: Band[] = [];
  let at = 0;
  for (const e of [...map].sort((a, b) => a.addr - b.addr)) {
    const s = e.addr / PAGE_SIZE;
    const t = Math.min(span, (e.addr + e.size) / PAGE_SIZE);
    if (s >= span) break;
    if (s > at) out.push({ start: at, end: s, key: 'gap' });
    if (t > Math.max(s, at)) out.push({ start: Math.max(s, at), end: t, key: e820TypeName(e.type) });
    at = Math.max(at, t);
  }
  if (at < span) out.push({ start: at, end: span, key: 'gap' });
  return out;
}

function markersOf(r: AuditReport): Marker[] {
  const t = r.toolstack;
  const walkFailed = t.failure !== null || t.boundPfn === 0;
  const boundName = walkFailed ? 'toolstack walk failed' : BigInt(t.boundPfn) === t.archMaxPfn ? 'arch.max_pfn' : `toolstack bound (arch.max_pfn ${hex(t.archMaxPfn)})`;
  const raw = [
    { pfn: t.boundPfn, kind: 'bound' as const, name: boundName },
    { pfn: r.guest.vars.maxPfn ?? r.boot?.kernelMaxPfn, kind: 'max_pfn' as const, name: 'max_pfn' },
    { pfn: r.guest.vars.nrPages ?? r.boot?.nrPages, kind: 'nr_pages' as const, name: 'nr_pages' },
  ];
  const out: Marker[] = [];
  for (const m of raw) {
    if (m.pfn === undefined) continue;
    const same = out.find((o) => o.pfn === m.pfn);
    if (same) same.names.push(m.name);
    else out.push({ pfn: m.pfn, kind: m.kind, names: [m.name] });
  }
  return out;
}

// ---- the piecewise pfn scale -------------------------------------------------------------------
/** The last item (sorted by start) with start ≤ pfn, by binary search. */
function lastFrom<T extends { start: number }>(items: T[], pfn: number): T | undefined {
  let [lo, hi] = [0, items.length - 1];
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (items[mid].start <= pfn) lo = mid;
    else hi = mid - 1;
  }
  return items[lo] && items[lo].start <= pfn ? items[lo] : undefined;
}

interface Seg { start: number; end: number; x0: number; x1: number; broken: boolean; min: number }

class PfnScale {
  readonly segs: Seg[];
  /** px per pfn on the linear (not floored, not broken) parts */
  readonly k: number;
  /** some ranges were drawn at their minimum width, wider than the scale */
  readonly widened: boolean;
  /** `classAt`: the guest class at a pfn (undefined past the audited pfns) */
  constructor(span: number, cuts: number[], classAt: (pfn: number) => string | undefined) {
    const pts = [...new Set([0, span, ...cuts.map(Math.round).filter((c) => c > 0 && c < span)])].sort((a, b) => a - b);
    this.segs = pts.slice(1).map((end, i) => {
      const cls = classAt(pts[i]);
      const broken = end - pts[i] >= SEG.breakMinPfns && [undefined, 'identity', 'missing'].includes(cls);
      return { start: pts[i], end, x0: 0, x1: 0, broken, min: (FATAL_CLASSES as readonly (string | undefined)[]).includes(cls) ? SEG.fatalMinPx : SEG.minPx };
    });
    const linear = this.segs.filter((s) => !s.broken);
    const width = PLOT_RIGHT - PLOT_LEFT;
    const breakPx = linear.length > 0 ? SEG.breakPx : width / this.segs.length;
    const room = width - (this.segs.length - linear.length) * breakPx;
    // minimum widths may take at most half the room
    const shrink = Math.min(1, room / 2 / Math.max(1, linear.reduce((a, s) => a + s.min, 0)));
    for (const s of linear) s.min *= shrink;
    // floored segments take their minimum; the rest share what is left in proportion to their length
    let floored = new Set<Seg>();
    let k = 0;
    for (;;) {
      const pfns = linear.filter((s) => !floored.has(s)).reduce((a, s) => a + s.end - s.start, 0);
      k = pfns > 0 ? (room - [...floored].reduce((a, s) => a + s.min, 0)) / pfns : 0;
      const next = new Set(linear.filter((s) => (s.end - s.start) * k < s.min));
      if (next.size === floored.size) break;
      floored = next;
    }
    this.k = k;
    this.widened = floored.size > 0;
    let x = PLOT_LEFT;
    for (const s of this.segs) {
      s.x0 = x;
      x += s.broken ? breakPx : Math.max(s.min, (s.end - s.start) * k);
      s.x1 = x;
    }
  }
  x(pfn: number): number {
    const s = lastFrom(this.segs, pfn) ?? this.segs[0];
    const f = Math.min(1, Math.max(0, (pfn - s.start) / (s.end - s.start)));
    return s.x0 + f * (s.x1 - s.x0);
  }
}

/** A white band with zig-zag edges across the lanes at x: the break of a compressed stretch. */
function zigzag(x: number, y0: number, y1: number): string {
  const n = Math.floor((y1 - y0) / (ZIGZAG.step / 2));
  const edge = (dx: number): string[] => Array.from({ length: n + 1 }, (_, i) => `${n2(x + dx + (i % 2 ? ZIGZAG.amp : -ZIGZAG.amp))},${n2(y0 + (i * ZIGZAG.step) / 2)}`);
  const [left, right] = [edge(-ZIGZAG.width / 2), edge(ZIGZAG.width / 2)];
  return `<polygon points="${[...left, ...[...right].reverse()].join(' ')}" fill="#ffffff"/>` +
    [left, right].map((e) => `<polyline points="${e.join(' ')}" fill="none" stroke="${MUTED}"/>`).join('');
}

function defs(): string {
  const hatch = FATAL_CLASSES.map((c) =>
    `<pattern id="p2m-hatch-${c}" patternUnits="userSpaceOnUse" width="8" height="8" patternTransform="rotate(45)">` +
    `${rect(0, 0, 8, 8, CLASS_COLOURS[c])}${line(0, 0, 0, 8, '#ffffff', ' stroke-width="3" stroke-opacity="0.6"')}</pattern>`).join('');
  const arrow = '<marker id="p2m-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">' +
    `<path d="M0,0 L10,5 L0,10 z" fill="${INK}"/></marker>`;
  return `<defs>${hatch}${arrow}</defs>`;
}
const classFill = (key: string): string =>
  (FATAL_CLASSES as readonly string[]).includes(key) ? `url(#p2m-hatch-${key})` : CLASS_COLOURS[key as PfnClassName] ?? OTHER_HOST_COLOUR;
const hostFill = (key: string): string => HOST_COLOURS[key] ?? OTHER_HOST_COLOUR;
const className = (key: string): string => (key === 'ram' ? 'RAM' : key);

function svgDoc(height: number, body: string[]): string {
  const h = Math.ceil(height);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${SVG_WIDTH}" height="${h}" viewBox="0 0 ${SVG_WIDTH} ${h}" font-family="${escapeXml(FONT)}">` +
    `${defs()}${rect(0, 0, SVG_WIDTH, h, '#ffffff')}${body.join('')}</svg>\n`;
}

/** Legend rows: a heading then swatch + text items, wrapping at the plot's right edge. */
function legend(groups: { head: string; items: { swatch: Swatch; label: string }[] }[], y: number, out: string[]): number {
  for (const g of groups) {
    if (g.items.length === 0) continue;
    out.push(text(MARGIN, y, g.head, { size: FONT_PX.text, fill: MUTED }));
    let x = PLOT_LEFT;
    for (const it of g.items) {
      const w = SWATCH + 6 + textW(it.label, FONT_PX.text);
      if (x + w > SVG_WIDTH - MARGIN && x > PLOT_LEFT) { x = PLOT_LEFT; y += LINE_H; }
      out.push(it.swatch(x, y - SWATCH + 2), text(x + SWATCH + 6, y, it.label, { size: FONT_PX.text }));
      x += w + LEGEND_GAP;
    }
    y += LINE_H + 2;
  }
  return y;
}
type Swatch = (x: number, y: number) => string;
const swatchOf = (fill: string): Swatch => (x, y) => rect(x, y, SWATCH, SWATCH, fill, ' stroke="#999999" stroke-width="0.5"');
const markerSwatch = (k: MarkerKind): Swatch => (x, y) => line(x + SWATCH / 2, y - 1, x + SWATCH / 2, y + SWATCH + 1, MARKER_STYLE[k].colour, dashAttr(MARKER_STYLE[k]));
const dashAttr = (st: { width: number; dash: string }): string => ` stroke-width="${st.width}"${st.dash ? ` stroke-dasharray="${st.dash}"` : ''}`;

/** Render an audit report as a memory-map SVG (1200 px wide). */
export function renderSvg(report: AuditReport, opts: { title?: string } = {}): string {
  const boot: BootFacts | null = report.boot;
  const markers = markersOf(report);
  const remaps = boot?.remapped ?? [];
  const span = Math.max(1, report.auditedPfns, ...markers.map((m) => m.pfn), ...remaps.map((r) => r.to.end));
  const bands = guestBands(report);
  const host = boot ? hostBands(boot.hostE820, span) : [];
  const cuts = [...[...bands, ...host].flatMap((b) => [Math.floor(b.start), Math.ceil(b.end)]), ...markers.map((m) => m.pfn),
    ...remaps.flatMap((r) => [r.from.start, r.from.end, r.to.start, r.to.end])];
  const classAt = (pfn: number): string | undefined => {
    const b = lastFrom(bands, pfn);
    return b && pfn < b.end ? b.key : undefined;
  };
  const scale = new PfnScale(span, cuts, classAt);
  const X = (pfn: number): number => scale.x(pfn);
  const out: string[] = [];

  // header: title with the verdict in its colour, then the reason
  const name = opts.title ?? report.file.split('/').pop() ?? report.file;
  const head = clip([name, boot?.profile ?? report.format, ...(boot?.dom0Mem ? [`dom0_mem=${boot.dom0Mem}`] : []), ''].join(' · '),
    SVG_WIDTH - 2 * MARGIN - textW(report.verdict, FONT_PX.title), FONT_PX.title);
  const vColour = VERDICT_COLOURS[report.verdict] ?? UNKNOWN_VERDICT_COLOUR;
  out.push(`<text x="${MARGIN}" y="${MARGIN + FONT_PX.title}" font-size="${FONT_PX.title}" font-weight="bold" fill="${INK}">` +
    `${escapeXml(head)}<tspan fill="${vColour}">${escapeXml(report.verdict)}</tspan></text>`);
  out.push(text(MARGIN, MARGIN + FONT_PX.title + LINE_H, clip(report.reason, SVG_WIDTH - 2 * MARGIN, FONT_PX.text), { size: FONT_PX.text, fill: MUTED }));

  const notes = placeNotes(report, markers, X);
  const lanesTop = MARGIN + FONT_PX.title + 2 * LINE_H + notes.rows * ANNOT.rowH + LABEL_PAD;
  const broken = scale.segs.filter((s) => s.broken);
  const lineXs = [...notes.placed.map((p) => p.note.x), ...broken.map((s) => (s.x0 + s.x1) / 2)];

  // lanes; a band's label goes in its widest piece between marker lines, when it fits
  let y = lanesTop;
  const spotlight = out.push('') - 1; // filled once the lanes' height is known
  const laneLabel = (s: string, top: number, h: number): void => {
    out.push(text(PLOT_LEFT - 8, top + h / 2 + FONT_PX.small * 0.35, s, { anchor: 'end', fill: MUTED }));
  };
  const bandLabel = (x0: number, x1: number, top: number, h: number, label: string, fill: string, bg?: string): boolean => {
    const stops = [x0, ...lineXs.filter((x) => x > x0 && x < x1).sort((p, q) => p - q), x1];
    const [a, b] = stops.slice(1).map((e, i) => [stops[i], e]).sort((p, q) => q[1] - q[0] - (p[1] - p[0]))[0];
    const w = textW(label, FONT_PX.small);
    if (w + 3 * LABEL_PAD > b - a) return false;
    const ty = top + h / 2 + FONT_PX.small * 0.35;
    if (bg) out.push(rect((a + b - w) / 2 - LABEL_PAD, ty - FONT_PX.small, w + 2 * LABEL_PAD, FONT_PX.small + LABEL_PAD, bg, ' rx="2"'));
    out.push(text((a + b) / 2, ty, label, { anchor: 'middle', fill }));
    return true;
  };
  const lane = (label: string, h: number, items: Band[], fill: (k: string) => string, extra: (k: string) => string = () => ''): number => {
    laneLabel(label, y, h);
    for (const b of items) out.push(rect(X(b.start), y, X(b.end) - X(b.start), h, fill(b.key), extra(b.key)));
    y += h + LANE_H.gap;
    return y - h - LANE_H.gap;
  };
  if (boot) {
    const top = lane('host e820', LANE_H.host, host, hostFill, (k) => (k === 'gap' ? ' stroke="#bbbbbb" stroke-dasharray="3 2"' : ''));
    for (const b of host) bandLabel(X(b.start), X(b.end), top, LANE_H.host, b.key, INK);
  }
  const guestTop = lane('guest p2m', LANE_H.guest, bands, classFill);
  for (const b of bands) {
    const fatal = (FATAL_CLASSES as readonly string[]).includes(b.key);
    const fill = (LIGHT_TEXT_ON as readonly string[]).includes(b.key) ? '#ffffff' : INK;
    bandLabel(X(b.start), X(b.end), guestTop, LANE_H.guest, `${className(b.key)} ${fmtSize(b.end - b.start)}`, fill, fatal ? CLASS_COLOURS[b.key as PfnClassName] : undefined);
  }
  const t = report.toolstack;
  const saveTop = lane('toolstack', LANE_H.save, t.boundPfn > 0 ? [{ start: 0, end: t.boundPfn, key: 'saved' }] : [], () => SAVE_COLOUR);
  if (t.boundPfn === 0) out.push(text(PLOT_LEFT, saveTop + LANE_H.save - 4, `${t.method} walk failed: ${t.failure ?? 'no pfns covered'}`, { fill: FATAL_COLOUR }));
  for (const label of [`${t.method} walk saves ${pfnSpan(0, t.boundPfn)}`, `saves ${pfnSpan(0, t.boundPfn)}`]) {
    if (t.boundPfn === 0 || bandLabel(X(0), X(t.boundPfn), saveTop, LANE_H.save, label, '#ffffff')) break;
  }
  if (remaps.length > 0) y = remapLane(remaps, y, X, lineXs, out) + LANE_H.gap;
  const lanesBottom = y - LANE_H.gap / 2;
  const spots: [number, number][] = [];
  for (const f of [...report.fatal].sort((p, q) => p.start - q.start)) {
    const [a, b] = [X(f.start) - SPOT_PAD, X(f.end) + SPOT_PAD];
    const last = spots[spots.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else spots.push([a, b]);
  }
  out[spotlight] = spots.map(([a, b]) => rect(a, lanesTop - 2, b - a, lanesBottom - lanesTop + 2, FATAL_COLOUR, ' fill-opacity="0.15"')).join('');

  // marker lines and annotation labels, over the lanes
  for (const { note, row, anchor } of notes.placed) {
    const ty = lanesTop - row * ANNOT.rowH - 2 * LABEL_PAD;
    const st = note.marker ? MARKER_STYLE[note.marker.kind] : { colour: note.colour, width: 1.5, dash: '' };
    out.push(line(note.x, ty - FONT_PX.small, note.x, note.fatal ? guestTop : lanesBottom, st.colour, dashAttr(st)));
    out.push(text(note.x + (anchor === 'start' ? 3 : -3), ty, note.label, { anchor, fill: note.colour, bold: note.fatal }));
  }
  for (const m of markers.filter((m) => !notes.placed.some((p) => p.note.marker === m))) {
    out.push(line(X(m.pfn), lanesTop, X(m.pfn), lanesBottom, MARKER_STYLE[m.kind].colour, dashAttr(MARKER_STYLE[m.kind])));
  }
  y = axis(scale, span, lanesTop, lanesBottom + 2, out);

  // legend (only what the picture shows) and the fatal findings, one line each
  const classes = (Object.keys(CLASS_COLOURS) as PfnClassName[]).filter((c) => report.classes[c]?.pages > 0);
  const hows = [...new Set(remaps.map((r) => r.how))];
  y = legend([
    { head: 'guest p2m', items: classes.map((c) => ({ swatch: swatchOf(classFill(c)), label: `${className(c)} ${fmtSize(report.classes[c].pages)}` })) },
    { head: 'host e820', items: [...new Set(host.map((b) => b.key))].map((k) => ({ swatch: swatchOf(hostFill(k)), label: k })) },
    { head: 'boot', items: hows.map((h) => ({ swatch: swatchOf(REMAP_COLOURS[h]), label: h === 'remap' ? 'RAM remapped out of a hole' : 'RAM released and repopulated' })) },
    { head: 'markers', items: markers.map((m) => ({ swatch: markerSwatch(m.kind), label: `${m.names.join(' = ')} ${hex(m.pfn)}` })) },
  ], y, out);
  for (const f of report.fatal.slice(0, MAX_FINDINGS)) {
    const via = f.cause.remapped.map((m) => ` · RAM ${m.how === 'remap' ? 'remapped' : 'repopulated'} from hole ${pfnSpan(m.from.start, m.from.end)}`);
    const s = `✗ ${f.cls} ${pfnSpan(f.start, f.end)} · ${f.pages} pages (${formatMib(f.mib)} MiB) · ${CAUSE_WORDS[f.cause.kind]}${via.join('')}`;
    out.push(text(MARGIN, y, clip(s, SVG_WIDTH - 2 * MARGIN, FONT_PX.text), { size: FONT_PX.text, fill: CLASS_COLOURS[f.cls] }));
    y += LINE_H;
  }
  if (report.fatal.length > MAX_FINDINGS) {
    out.push(text(MARGIN, y, `… and ${report.fatal.length - MAX_FINDINGS} more fatal ranges (see --json)`, { size: FONT_PX.text, fill: MUTED }));
    y += LINE_H;
  }
  return svgDoc(y + MARGIN - LINE_H / 2, out);
}

interface Note { x: number; label: string; colour: string; fatal: boolean; marker?: Marker }

/**
 * Annotations (marker values, the largest fatal ranges) in rows counted up from the lanes. A label sits
 * right of its leader and labels are placed right to left, so a leader never crosses a label in a lower
 * row; notes too close to the right edge sit left of their leader and are placed first, left to right.
 */
function placeNotes(report: AuditReport, markers: Marker[], X: (pfn: number) => number): { rows: number; placed: { note: Note; row: number; anchor: Anchor }[] } {
  const notes: Note[] = markers.map((m) => ({ x: X(m.pfn), label: `${m.names.join(' = ')} ${hex(m.pfn)}`, colour: MARKER_STYLE[m.kind].colour, fatal: false, marker: m }));
  for (const f of [...report.fatal].sort((a, b) => b.pages - a.pages).slice(0, ANNOT.maxFatal)) {
    notes.push({ x: (X(f.start) + X(f.end)) / 2, label: `${f.cls} ${f.pages} pfns (${fmtSize(f.pages)})`, colour: CLASS_COLOURS[f.cls], fatal: true });
  }
  const leftOf = (n: Note): boolean => n.x + 3 + textW(n.label, FONT_PX.small) > SVG_WIDTH - MARGIN;
  const order = [...notes.filter(leftOf).sort((a, b) => a.x - b.x), ...notes.filter((n) => !leftOf(n)).sort((a, b) => b.x - a.x)];
  const occ = new Occupied();
  const placed: { note: Note; row: number; anchor: Anchor }[] = [];
  for (const note of order) {
    const anchor: Anchor = leftOf(note) ? 'end' : 'start';
    for (let row = 0; row < ANNOT.maxRows; row++) {
      const b = textBox(note.x + (anchor === 'start' ? 3 : -3), -row * ANNOT.rowH - LABEL_PAD, note.label, FONT_PX.small, anchor);
      const leader: Box = { x0: note.x - 1, x1: note.x + 1, y0: b.y0, y1: 0, thin: true };
      if (occ.hits(b) || occ.hits(leader)) continue;
      occ.add(b);
      occ.add(leader);
      placed.push({ note, row, anchor });
      break;
    }
  }
  return { rows: placed.reduce((a, p) => Math.max(a, p.row + 1), 0), placed };
}

/**
 * Remapped / repopulated RAM: destination bars, dashed source holes, connectors with arrows back to the
 * hole (the leftmost source gets the deepest connector); each label goes where it crosses no line.
 * Returns the lane's bottom.
 */
function remapLane(remaps: RemapRecord[], top: number, X: (pfn: number) => number, lineXs: number[], out: string[]): number {
  out.push(text(PLOT_LEFT - 8, top + LANE_H.remapBar + FONT_PX.small * 0.35, 'boot remap', { anchor: 'end', fill: MUTED }));
  const occ = new Occupied();
  const barBottom = top + LANE_H.remapBar;
  const far = top + (remaps.length + 4) * LANE_H.remapLevel;
  occ.add({ x0: 0, x1: PLOT_LEFT - LABEL_PAD, y0: top, y1: far });
  for (const x of lineXs) occ.add({ x0: x - 1, x1: x + 1, y0: top, y1: far, thin: true });
  const obstacles = [...lineXs, ...remaps.flatMap((r) => [X(r.from.start), X(r.from.end), X(r.to.start), X(r.to.end)])];
  const geo = [...remaps].sort((a, b) => b.from.start - a.from.start).map((r, i) => ({
    r, xs: (X(r.from.start) + X(r.from.end)) / 2, xd: (X(r.to.start) + X(r.to.end)) / 2, ly: barBottom + i * LANE_H.remapLevel + 2 * LABEL_PAD,
  }));
  for (const { r, xs, xd, ly } of geo) {
    const colour = REMAP_COLOURS[r.how];
    out.push(rect(X(r.from.start), top, X(r.from.end) - X(r.from.start), LANE_H.remapBar, '#ffffff', ` stroke="${colour}" stroke-dasharray="2 1"`));
    out.push(rect(X(r.to.start), top, X(r.to.end) - X(r.to.start), LANE_H.remapBar, colour));
    out.push(`<path d="M${n2(xd)},${barBottom} V${n2(ly)} H${n2(xs)} V${barBottom + 1}" fill="none" stroke="${colour}" stroke-width="1.5" marker-end="url(#p2m-arrow)"/>`);
    occ.add({ x0: Math.min(xs, xd) - 1, x1: Math.max(xs, xd) + 1, y0: ly - 1, y1: ly + 1, thin: true });
    for (const x of [xs, xd]) occ.add({ x0: x - 1, x1: x + 1, y0: top, y1: ly, thin: true });
  }
  let bottom = barBottom + geo.length * LANE_H.remapLevel;
  for (const { r, xs, xd, ly } of geo) {
    const label = `${r.how === 'remap' ? 'remapped' : 'repopulated'} ${r.to.end - r.to.start} pfns: hole ${pfnSpan(r.from.start, r.from.end)} → ${pfnSpan(r.to.start, r.to.end)}`;
    // centred under the connector, else beside the nearest vertical line that leaves room
    const mid = (xs + xd) / 2;
    const near = [...obstacles].sort((a, b) => Math.abs(a - mid) - Math.abs(b - mid));
    const cands = [0, 1, 2, 3].flatMap((row) => {
      const by = ly + LANE_H.remapLevel * row + FONT_PX.small + 2;
      const at = (x: number, anchor: Anchor): Box => textBox(x, by, label, FONT_PX.small, anchor);
      return [at(mid, 'middle'), ...near.flatMap((x) => [at(x + 3, 'start'), at(x - 3, 'end')])];
    });
    const k = occ.place(cands);
    if (k < 0) continue;
    out.push(text(cands[k].x0, cands[k].y0 + FONT_PX.small * EM.ascent, label, { fill: REMAP_COLOURS[r.how] }));
    bottom = Math.max(bottom, cands[k].y1);
  }
  return bottom;
}

/** The axis: ticks labelled in hex pfns and GiB; broken stretches get a zig-zag and their true size. Returns the next free y. */
function axis(scale: PfnScale, span: number, lanesTop: number, axisY: number, out: string[]): number {
  const hexY = axisY + TICK.len + FONT_PX.small + 2;
  const gibY = hexY + FONT_PX.small + 4;
  const breakY = gibY + LINE_H;
  const broken = scale.segs.filter((s) => s.broken);
  out.push(line(PLOT_LEFT, axisY, PLOT_RIGHT, axisY, MUTED));
  for (const s of broken) {
    const xc = (s.x0 + s.x1) / 2;
    const label = `break: ${hex(s.end - s.start)} pfns = ${fmtSize(s.end - s.start)}`;
    const b = textBox(xc, breakY, label, FONT_PX.small, 'middle');
    const shift = Math.min(0, SVG_WIDTH - MARGIN - b.x1) + Math.max(0, MARGIN - b.x0);
    out.push(zigzag(xc, lanesTop - 2, axisY + TICK.len), text(xc + shift, breakY, label, { anchor: 'middle', fill: MUTED, italic: true }));
  }
  const occ = new Occupied();
  const step = scale.k > 0 ? Math.max(TICK.minPfns, 2 ** Math.ceil(Math.log2(TICK.minPx / scale.k))) : span;
  const ticks = [0, span, ...broken.flatMap((s) => [s.start, s.end])];
  for (const s of scale.segs.filter((g) => !g.broken)) for (let p = Math.ceil(s.start / step) * step; p <= s.end; p += step) ticks.push(p);
  for (const p of new Set(ticks)) {
    const x = scale.x(p);
    const anchor: Anchor = x - PLOT_LEFT < TICK.minPx / 4 ? 'start' : PLOT_RIGHT - x < TICK.minPx / 4 ? 'end' : 'middle';
    const boxes = [textBox(x, hexY, hex(p), FONT_PX.small, anchor), textBox(x, gibY, gibLabel(p), FONT_PX.small, anchor)];
    if (boxes.some((b) => occ.hits(b))) continue;
    boxes.forEach((b) => occ.add(b));
    out.push(line(x, axisY, x, axisY + TICK.len, MUTED), text(x, hexY, hex(p), { anchor }), text(x, gibY, gibLabel(p), { anchor, fill: MUTED }));
  }
  out.push(text(MARGIN, hexY, 'pfn', { fill: MUTED }), text(MARGIN, gibY, 'address', { fill: MUTED }));
  const next = (broken.length > 0 ? breakY : gibY) + LINE_H;
  const note = axisNote(broken.length > 0, scale.widened);
  if (!note) return next + 3 * LABEL_PAD;
  out.push(text(MARGIN, next, clip(note, SVG_WIDTH - 2 * MARGIN, FONT_PX.small), { fill: MUTED, italic: true }));
  return next + LINE_H + 3 * LABEL_PAD;
}

/** What a piecewise axis does, said under it (nothing when the whole axis is one linear scale). */
export function axisNote(cut: boolean, widened: boolean): string | null {
  if (!cut && !widened) return null;
  const parts = ['pfn axis not linear: one scale inside drawn ranges'];
  if (widened) parts.push('short ranges widened to stay visible');
  if (cut) parts.push(`stretches of ${fmtSize(SEG.breakMinPfns)}+ without RAM cut at the zig-zags (true size below)`);
  return parts.join('; ');
}

/** Render a sweep matrix: one cell per (dom0_mem, profile), coloured by verdict, with uncovered MiB. */
export function renderSweepSvg(matrix: SweepMatrix, opts: { title?: string } = {}): string {
  const out: string[] = [];
  const title = clip(opts.title ?? 'p2m-audit sweep: dom0_mem × profile', SVG_WIDTH - 2 * MARGIN, FONT_PX.title);
  out.push(text(MARGIN, MARGIN + FONT_PX.title, title, { size: FONT_PX.title, bold: true }));
  const headW = Math.min(SVG_WIDTH / 4, Math.max(textW('dom0_mem', FONT_PX.text), ...matrix.rows.map((r) => textW(r, FONT_PX.text))) + 4 * LABEL_PAD);
  const cellW = Math.min(SWEEP.cellMaxW, (SVG_WIDTH - 2 * MARGIN - headW) / Math.max(1, matrix.cols.length));
  const x0 = MARGIN + headW;
  let y = MARGIN + FONT_PX.title + LINE_H;
  out.push(text(MARGIN, y + SWEEP.headH / 2, 'dom0_mem', { size: FONT_PX.text, fill: MUTED }));
  matrix.cols.forEach((c, j) => {
    out.push(text(x0 + (j + 0.5) * cellW, y + SWEEP.headH / 2, clip(c, cellW - 2 * LABEL_PAD, FONT_PX.text), { size: FONT_PX.text, anchor: 'middle', bold: true }));
  });
  y += SWEEP.headH;
  const seen = new Set<string>();
  matrix.rows.forEach((r, i) => {
    const top = y + i * SWEEP.rowH;
    out.push(text(MARGIN, top + SWEEP.rowH / 2 + FONT_PX.text * 0.35, clip(r, headW - LABEL_PAD, FONT_PX.text), { size: FONT_PX.text }));
    matrix.cols.forEach((_, j) => {
      const cell = matrix.cells[i]?.[j];
      const x = x0 + j * cellW;
      const verdict = cell?.verdict ?? 'n/a';
      seen.add(verdict);
      const fill = VERDICT_COLOURS[verdict] ?? UNKNOWN_VERDICT_COLOUR;
      out.push(rect(x + 1, top + 1, cellW - 2, SWEEP.rowH - 2, fill, ' rx="3"'));
      const mid = x + cellW / 2;
      out.push(text(mid, top + SWEEP.rowH / 2 - 3, verdict, { size: FONT_PX.text, anchor: 'middle', fill: '#ffffff', bold: true }));
      const sub = cell ? (cell.uncoveredMib > 0 ? `${formatMib(cell.uncoveredMib)} MiB uncovered` : 'nothing uncovered') : 'no result';
      out.push(text(mid, top + SWEEP.rowH / 2 + FONT_PX.small + 1, clip(sub, cellW - 2 * LABEL_PAD, FONT_PX.small), { anchor: 'middle', fill: '#ffffff' }));
    });
  });
  y += matrix.rows.length * SWEEP.rowH + LINE_H + LABEL_PAD;
  y = legend([{ head: 'verdict', items: [...seen].map((v) => ({ swatch: swatchOf(VERDICT_COLOURS[v] ?? UNKNOWN_VERDICT_COLOUR), label: v })) }], y, out);
  return svgDoc(y + MARGIN - LINE_H / 2, out);
}
