// Save-stream floods (docs/fuzz.md, issue 12 item 8): a run of empty optional records before the libxc END
// record. The stream spec bounds each record's length (REC_LENGTH_MAX), not how many there are, and every
// Xen restore skips an optional record it does not know (xg_sr_restore.c process_record), so two million
// 8-byte records are a valid stream that must cost a reader tens of nanoseconds each.
import { REC_TYPE_END, REC_TYPE_OPTIONAL, RHDR_SIZE } from '../xen/stream-format.js';
import type { Change, GenContext } from './mutation-context.js';
import type { Rng } from './rng.js';

/** How many records a flood inserts (the campaign's case is 2·10⁶: 16 MB of headers). */
const FLOOD_SIZES = [1_000, 100_000, 2_000_000];
/** Record headers named by the anatomy (anatomy-layouts.ts streamLayout). */
const LIBXC_HEADER = /^libxc record header @(\d+)$/;

/** The offset of the libxc END record, or −1 (not a stream, or a stream without END). */
function libxcEnd(ctx: GenContext): number {
  let end = -1;
  for (const g of ctx.anatomy.regions) {
    const m = LIBXC_HEADER.exec(g.name);
    if (!m) continue;
    const at = Number(m[1]);
    const h = ctx.base.read(at, RHDR_SIZE);
    if (h.length === RHDR_SIZE && h.readUInt32LE(0) === REC_TYPE_END && h.readUInt32LE(4) === 0) end = at;
  }
  return end;
}

/**
 * With probability `share` on a stream with an END record: N empty optional records of one type, then the
 * stream's own tail from its END record on. Other files draw nothing from `rng` (their mutants stay as they were).
 */
export function recordFlood(ctx: GenContext, rng: Rng, share: number): Change | null {
  if (ctx.anatomy.format !== 'xl-save' && ctx.anatomy.format !== 'libxc-stream') return null;
  const at = libxcEnd(ctx);
  if (at < 0 || !rng.chance(share)) return null;
  const n = rng.pick(FLOOD_SIZES);
  const type = (REC_TYPE_OPTIONAL | rng.range(0x20, 0xffff)) >>> 0;
  const flood = Buffer.alloc(n * RHDR_SIZE);
  for (let i = 0; i < n; i++) flood.writeUInt32LE(type, i * RHDR_SIZE); // length 0: no body, no padding
  const tail = Buffer.concat([flood, ctx.base.read(at, ctx.anatomy.size - at)]);
  const inPlace = ctx.anatomy.size - at;
  return {
    desc: `${n} empty optional records of type 0x${type.toString(16)} before the libxc END record @${at}`,
    edits: [{ offset: at, bytes: tail.subarray(0, inPlace) }],
    length: at + tail.length,
    fill: tail.subarray(inPlace),
  };
}
