// A real `xl save -c` of a Linux 6.1 PV domU written by Xen 4.17.7 (corpora/real/pvplain.save.gz, from
// /work/shared/real-xen; README there). Expectations come from outside our code: xen-mfndump's dump of
// the toolstack's pfn→mfn (corpora/real/xen-mfndump-p2m.runs.txt, taken by `xen-mfndump dump-p2m`),
// the guest's dmesg facts in the README (P2M of 0x6000 entries, all populated) and Xen's own
// verify-stream-v2.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { auditImage } from '../src/audit/audit-image.js';
import type { SymbolTable } from '../src/formats/symbols.js';
import { openImage } from '../src/formats/open-image.js';
import { restoreCheck } from '../src/emulate/restore-check.js';
import { openStream, type StreamImage } from '../src/formats/save-stream.js';
import { mapP2m } from '../src/views/toolstack-view.js';
import { verifyStream } from './helpers/verify-stream.js';

const REAL = path.resolve(__dirname, '../corpora/real');
const SAVE_GZ = path.join(REAL, 'pvplain.save.gz');
const SYSTEM_MAP_GZ = path.join(REAL, 'System.map-6.1.0-56-amd64.gz');
const RUNS = path.join(REAL, 'xen-mfndump-p2m.runs.txt');
/** Size of the decompressed save file (README: 100,873,304 bytes raw). */
const SAVE_BYTES = 100_873_304;
const CACHE = path.join(os.tmpdir(), 'p2m-audit-real-cache');
const SAVE = path.join(CACHE, 'pvplain.save');
/** README: the guest's P2M has 0x6000 entries (pfn 0–0x5fff), all populated. */
const P2M_ENTRIES = 0x6000;

/** Decompress once per machine into os.tmpdir() (kept between runs, rebuilt if its size is wrong). */
async function savePath(): Promise<string> {
  if (fs.existsSync(SAVE) && fs.statSync(SAVE).size === SAVE_BYTES) return SAVE;
  fs.mkdirSync(CACHE, { recursive: true });
  const part = `${SAVE}.${process.pid}.part`;
  await pipeline(fs.createReadStream(SAVE_GZ), zlib.createGunzip(), fs.createWriteStream(part));
  fs.renameSync(part, SAVE);
  return SAVE;
}

/** System.map lines "ffffffff81000000 T _text" → name → VA. */
function readSystemMap(file: string): SymbolTable {
  const symbols: SymbolTable = new Map();
  for (const line of zlib.gunzipSync(fs.readFileSync(file)).toString('latin1').split('\n')) {
    const m = /^([0-9a-f]{16}) \S (\S+)$/.exec(line);
    if (m) symbols.set(m[2]!, BigInt(`0x${m[1]}`));
  }
  return symbols;
}

interface MfnDump {
  /** the header's "P2M size: = N" */
  size: number;
  width: number;
  /** pfn → mfn as printed (u64 words), and the printed type nibble */
  lo: Uint32Array;
  hi: Uint32Array;
  type: Uint8Array;
  seen: Uint8Array;
}

/**
 * The run-length form of `xen-mfndump dump-p2m` (see /work/shared/real-xen/p2m_runs.py): '#' lines are
 * the tool's own lines; others are "<first_pfn> <last_pfn> <count> <first_value> <step> <rest>", pfn
 * first+i printed as "pfn=.. ==> mfn=<first_value + step·i> <rest>", rest starting "(type 0x..)".
 */
function readMfnDump(file: string): MfnDump {
  const text = fs.readFileSync(file, 'utf8');
  const head = /Guest Width: (\d+), PT Levels: \d+ P2M size: = (\d+)/.exec(text);
  if (!head) throw new Error(`${file}: no xen-mfndump header line`);
  const size = Number(head[2]);
  const d: MfnDump = { size, width: Number(head[1]), lo: new Uint32Array(size), hi: new Uint32Array(size), type: new Uint8Array(size), seen: new Uint8Array(size) };
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(0x[0-9a-f]+) (0x[0-9a-f]+) (\d+) (0x[0-9a-f]+) ([01]) \(type (0x[0-9a-f]+)\)/.exec(line);
    if (!m) throw new Error(`${file}: unparsed line ${JSON.stringify(line)}`);
    const first = Number(m[1]);
    const last = Number(m[2]);
    if (last - first + 1 !== Number(m[3])) throw new Error(`${file}: count mismatch in ${line}`);
    const value = BigInt(m[4]!);
    const step = BigInt(m[5]!);
    for (let pfn = first; pfn <= last; pfn++) {
      const v = value + step * BigInt(pfn - first);
      d.lo[pfn] = Number(v & 0xffffffffn);
      d.hi[pfn] = Number(v >> 32n);
      d.type[pfn] = Number(m[6]);
      d.seen[pfn]++;
    }
  }
  return d;
}

describe('real xl save of a Linux 6.1 PV domU (Xen 4.17)', () => {
  let file: string;
  let img: StreamImage;
  let symbols: SymbolTable;
  let dump: MfnDump;

  beforeAll(async () => {
    file = await savePath();
    symbols = readSystemMap(SYSTEM_MAP_GZ);
    dump = readMfnDump(RUNS);
    img = openStream(file, { symbols });
  });

  it('is recognised as an xl save file (xl header, libxl v2, libxc stream v3 from Xen 4.17)', () => {
    const any = openImage(file);
    try {
      expect(any.format).toBe('xl-save');
    } finally {
      any.close();
    }
    expect(img.format).toBe('xl-save');
    expect(img.frameSpace).toBe('pfn');
    expect(img.guestWidth).toBe(dump.width);
    expect(img.facts).toMatchObject({ version: 3, xenMajor: 4, xenMinor: 17, ptLevels: 4, vcpus: [0], trailingBytes: 0 });
    // xl -vvv save log: "new xl format (info 0x3/0x0/904)" = mandatory flags / optional flags / optional data length
    expect(img.facts.xl).toMatchObject({ mandatoryFlags: 3, optionalFlags: 0, optionalDataLength: 904 });
  });

  it("Xen's verify-stream-v2 accepts it", () => {
    const v = verifyStream(file, 'xl');
    expect(v.ok, v.output).toBe(true);
  });

  it('the xen-mfndump file covers every pfn once (P2M size 24576)', () => {
    expect(dump.size).toBe(P2M_ENTRIES);
    expect(dump.seen.every((n) => n === 1)).toBe(true);
  });

  it("the toolstack view's pfn→mfn equals xen-mfndump's for every pfn", () => {
    const tool = mapP2m(img);
    expect(tool.failure).toBeNull();
    expect(tool.method).toBe('list'); // the guest publishes arch.p2m_cr3 (README; xl log "p2m list from …")
    expect(tool.maxPfn + 1).toBe(dump.size);
    expect(tool.leafFrames.length).toBe(48); // xl log: "max_pfn 0x5fff, p2m_frames 48"
    let differ = 0;
    const first: string[] = [];
    for (let pfn = 0; pfn < dump.size; pfn++) {
      const page = img.readFrame(tool.leafFrames[pfn >> 9]!);
      expect(page).not.toBeNull();
      const lo = page!.readUInt32LE((pfn & 511) * 8);
      const hi = page!.readUInt32LE((pfn & 511) * 8 + 4);
      if (lo !== dump.lo[pfn] || hi !== dump.hi[pfn]) {
        differ++;
        if (first.length < 5) first.push(`pfn 0x${pfn.toString(16)}: stream 0x${hi.toString(16)}_${lo.toString(16)}, xen-mfndump 0x${dump.hi[pfn]!.toString(16)}_${dump.lo[pfn]!.toString(16)}`);
      }
    }
    expect(first).toEqual([]);
    expect(differ).toBe(0);
  });

  it("every pfn's PAGE_DATA type equals xen-mfndump's type (pinned L4 for vcpu 0's cr3)", () => {
    let differ = 0;
    for (let pfn = 0; pfn < dump.size; pfn++) if (img.pageType(pfn) !== dump.type[pfn]) differ++;
    expect(differ).toBe(0);
    expect(img.pageType(Number(img.cr3 >> 12n))).toBe(0xc); // XEN_DOMCTL_PFINFO_L4TAB | LPINTAB
    expect(img.counts).toMatchObject({ pfns: P2M_ENTRIES, withData: P2M_ENTRIES, xtab: 0 });
  });

  it('audit: CLEAN, exit 0, every guest RAM page covered with the same mfn (worker pool, positional reads)', async () => {
    const out = await auditImage(img, { jobs: 2 });
    expect(out.report.verdict).toBe('CLEAN');
    expect(out.report.exitCode).toBe(0);
    expect(out.report.classes.ram.pages).toBe(P2M_ENTRIES);
    expect(out.report.fatalPages).toBe(0);
    expect(out.report.classes.unreadable.pages).toBe(0);
    expect(out.guest.layout).toBe('list');
  });

  it('restore check: nothing lost', () => {
    const loss = restoreCheck(img);
    expect(loss.guestRamPages).toBe(P2M_ENTRIES);
    expect(loss.carriedPages).toBe(P2M_ENTRIES);
    expect(loss.lost).toEqual([]);
    expect(loss.unchecked).toEqual([]);
    expect(loss.exitCode).toBe(0);
  });
});
