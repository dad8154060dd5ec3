// Save streams without their END record (what a failed `xl save` leaves: xg_sr_save.c writes END last) and
// streams padded with empty optional records. Expectations come from the hand-built parts themselves
// (test/helpers/stream-parts.ts: which records precede each cut, where each part starts) and from the stream
// spec (an empty record is its 8-byte header; a 64 KiB read-ahead window holds 8192 of them), never from
// what the reader printed.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/common/errors.js';
import { openStream } from '../src/formats/save-stream.js';
import { READ_WINDOW_BYTES } from '../src/formats/read-window.js';
import { streamStopOf } from '../src/formats/guest-image.js';
import { restoreFailure } from '../src/emulate/restore-check.js';
import { streamStopLine } from '../src/report/save-report.js';
import { analyze } from '../src/fuzz/analyze.js';
import { fileReader } from '../src/fuzz/anatomy.js';
import { genContext } from '../src/fuzz/mutation-context.js';
import { recordFlood } from '../src/fuzz/mutations-stream.js';
import { applyPatch } from '../src/fuzz/patch.js';
import { Rng } from '../src/fuzz/rng.js';
import { offsetOf, parts, xlWrap } from './helpers/stream-parts.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'p2m-incomplete-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
function put(buf: Buffer): string {
  const f = path.join(tmp, `s-${n++}.bin`);
  fs.writeFileSync(f, buf);
  return f;
}

const whole = (): Buffer => Buffer.concat(parts().map((p) => p.buf));
const at = (name: string): number => offsetOf(parts(), name);
/** The libxc record names of the parts before `name`, in stream order (parts(): ihdr, dhdr, then records). */
const NAMES: Record<string, string> = { pvinfo: 'X86_PV_INFO', sde: 'STATIC_DATA_END', p2m: 'X86_PV_P2M_FRAMES', pages: 'PAGE_DATA', shinfo: 'SHARED_INFO', vcpu: 'X86_PV_VCPU_BASIC', end: 'END' };
function recordsBefore(name: string): { name: string; count: number }[] {
  const out: { name: string; count: number }[] = [];
  for (const p of parts()) {
    if (p.name === name) break;
    if (NAMES[p.name]) out.push({ name: NAMES[p.name]!, count: 1 });
  }
  return out;
}

describe('a stream without END is described, not refused', () => {
  type Cut = { name: string; cut: () => number; stop: () => number; after: string; lastPart: string; torn: string | null; vcpus: number[]; failedSave: boolean };
  const cuts: Cut[] = [
    // the real failed save: everything up to SHARED_INFO, then nothing
    { name: 'after SHARED_INFO (a failed save)', cut: () => at('vcpu'), stop: () => at('vcpu'), after: 'SHARED_INFO', lastPart: 'vcpu', torn: null, vcpus: [], failedSave: true },
    { name: 'inside the vCPU record', cut: () => at('vcpu') + 100, stop: () => at('vcpu'), after: 'SHARED_INFO', lastPart: 'vcpu', torn: 'X86_PV_VCPU_BASIC', vcpus: [], failedSave: false },
    { name: 'inside the END header', cut: () => at('end') + 4, stop: () => at('end'), after: 'X86_PV_VCPU_BASIC', lastPart: 'end', torn: 'record header', vcpus: [0], failedSave: false },
    { name: 'just before END', cut: () => at('end'), stop: () => at('end'), after: 'X86_PV_VCPU_BASIC', lastPart: 'end', torn: null, vcpus: [0], failedSave: false },
  ];
  it.each(cuts)('$name', (c) => {
    const img = openStream(put(whole().subarray(0, c.cut())));
    try {
      const stop = streamStopOf(img)!;
      expect(stop).toEqual({
        offset: c.stop(),
        afterRecord: c.after,
        afterRecordOffset: offsetOf(parts(), Object.keys(NAMES).find((k) => NAMES[k] === c.after)!),
        tornRecord: c.torn,
        records: recordsBefore(c.lastPart),
        vcpuRecords: c.vcpus,
      });
      expect(img.facts.incomplete).toEqual(stop);
      const line = streamStopLine(stop);
      expect(line.startsWith(`stream incomplete: stops at offset ${c.stop()} after ${c.after}`)).toBe(true);
      expect(line.endsWith('this is what a failed save leaves')).toBe(c.failedSave);
      // restore reads record headers until END (xg_sr_restore.c restore → read_record)
      const why = restoreFailure(stop);
      expect(why).toMatch(c.torn === 'X86_PV_VCPU_BASIC' ? /Failed to read … bytes of data for record/ : /"Failed to read Record Header from stream"/);
      // the audit needs P2M_FRAMES and SHARED_INFO, which every cut here keeps
      expect(img.savedP2m).not.toBeNull();
      expect(img.sharedInfo).not.toBeNull();
      expect(img.cr3).toBe(c.vcpus.length > 0 ? 3n << 12n : 0n);
    } finally {
      img.close();
    }
  });

  it('an xl file whose libxc stream is whole but which ends before libxl END: cut after the libxc END', () => {
    const xl = xlWrap(whole());
    const img = openStream(put(xl.subarray(0, xl.length - 8)));
    try {
      expect(streamStopOf(img)).toMatchObject({ offset: xl.length - 8, afterRecord: 'END', tornRecord: null, vcpuRecords: [0] });
    } finally {
      img.close();
    }
  });

  it.each([
    ['after X86_PV_P2M_FRAMES', 'pages', 'SHARED_INFO'],
    ['after STATIC_DATA_END', 'p2m', 'X86_PV_P2M_FRAMES and SHARED_INFO'],
  ])('a stream that stops %s cannot be audited: one-line InputError naming the offset and the missing records', (_what, part, missing) => {
    const file = put(whole().subarray(0, at(part)));
    expect(() => openStream(file)).toThrow(InputError);
    expect(() => openStream(file)).toThrow(new RegExp(`^${file}: offset ${at(part)}: the stream has no END record and stops after \\S+, before any ${missing} record: nothing to audit`));
  });
});

describe('empty optional records cost a window read per 8192, not a system call each', () => {
  /** The minimal stream with `count` empty optional records before END. */
  function padded(count: number): Buffer {
    const flood = Buffer.alloc(count * 8);
    for (let i = 0; i < count; i++) flood.writeUInt32LE(0x80000013, i * 8);
    return Buffer.concat(parts().map((p) => (p.name === 'end' ? Buffer.concat([flood, p.buf]) : p.buf)));
  }
  const COUNT = 200_000;

  it(`${COUNT} records: all counted, one type listed, reads bounded by the window`, () => {
    const base = openStream(put(padded(0)));
    const img = openStream(put(padded(COUNT)));
    try {
      expect(img.counts.optionalRecords).toBe(COUNT);
      expect(img.counts.records).toBe(base.counts.records + COUNT);
      expect(img.facts.skippedOptional).toEqual([0x80000013]);
      // the flood is COUNT·8 bytes of headers: a window refill per READ_WINDOW_BYTES of them (+1 for the edge)
      const windowReads = Math.ceil((COUNT * 8) / READ_WINDOW_BYTES) + 1;
      expect(img.counts.fileReads).toBeLessThanOrEqual(base.counts.fileReads + windowReads);
    } finally {
      base.close();
      img.close();
    }
  });

  it('the fuzz flood (extend on a stream) inserts its records before END and the stream still reads whole', () => {
    const file = put(xlWrap(whole()));
    const anatomy = analyze(file, file, 'save', 'xl-save', null, null);
    const fd = fs.openSync(file, 'r');
    try {
      const ctx = genContext(anatomy, fileReader(fd, anatomy.size));
      let change = null;
      for (let id = 0; !change && id < 100; id++) change = recordFlood(ctx, new Rng(1, id), 1);
      expect(change).not.toBeNull();
      const inserted = Number(/^(\d+) empty optional records/.exec(change!.desc)![1]);
      const bytes = applyPatch(fs.readFileSync(file), { replace: null, edits: change!.edits ?? [], length: change!.length ?? null, fill: change!.fill ?? null });
      expect(bytes.length).toBe(anatomy.size + inserted * 8);
      const img = openStream(put(bytes));
      try {
        expect(img.counts.optionalRecords).toBe(inserted);
        expect(streamStopOf(img)).toBeNull(); // END and libxl END follow the flood
        expect(img.counts.fileReads).toBeLessThan(Math.ceil((inserted * 8) / READ_WINDOW_BYTES) + 64);
      } finally {
        img.close();
      }
    } finally {
      fs.closeSync(fd);
    }
  });
});
