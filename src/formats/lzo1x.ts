// LZO1X decompression (bitstream version 0, what liblzo's lzo1x_1_compress writes and makedumpfile -l stores per page), after Linux Documentation/staging/lzo.rst ("LZO stream format as understood by Linux's LZO decompressor", analysing lib/lzo/lzo1x_decompress_safe.c).
//
// No maintained LZO package on the npm registry decompresses offline in Node without a native build (lzo
// and lzo-decompress need node-gyp; lzo-wasm is a browser bundle whose wasm must be fetched), so the
// format is decoded here. Every read is checked against the input, every write against the output buffer
// and every back-reference against what was written ("safe" decompression): bad input ends in an LzoError,
// never in a read or write outside the buffers, and the work is bounded by the output size.
//
// The stream: a first byte > 17 copies (byte − 17) literals; then instructions whose top bits choose
//   0000LLLL (state 0)       literal run of 3 + L bytes (L = 0: 18 + 255·zero bytes + next byte)
//   0000DDSS (state 1..3)    copy 2 bytes from distance 1 + D + (H << 2)          (H = next byte)
//   0000DDSS (state 4)       copy 3 bytes from distance 2049 + D + (H << 2)
//   0001HLLL                 copy 2 + L bytes (L = 0: 9 + 255·zeros + byte) from 16384 + (H << 14) + (LE16 >> 2);
//                            a distance of exactly 16384 ends the stream (then the length must be 3)
//   001LLLLL                 copy 2 + L bytes (L = 0: 33 + …) from 1 + (LE16 >> 2)
//   01LDDDSS / 1LLDDDSS      copy 3 + L / 5 + L bytes from 1 + D + (H << 3)
// where SS (the low two bits of the instruction or of LE16) is the number of literals copied after the
// match, and "state" is how many literals the previous instruction copied (4 = four or more).

/** A stream that cannot be decoded into the output buffer: what went wrong, and at which input byte. */
export class LzoError extends Error {
  constructor(
    readonly what: string,
    readonly at: number,
  ) {
    super(`LZO1X stream ${what} at input byte ${at}`);
    this.name = 'LzoError';
  }
}

/** Shortest stream: one instruction plus the 3-byte end marker (lzo1x_decompress_safe: in_len < 3 is an overrun). */
const MIN_STREAM_BYTES = 3;
/** First-byte values above this copy (byte − FIRST_LITERAL_BIAS) literals. */
const FIRST_LITERAL_BIAS = 17;
/** Literals copied from which the state is "4 or more". */
const STATE_MANY = 4;
const M2_MAX_OFFSET = 0x800;
const M4_BASE = 0x4000;
const ZERO_RUN_STEP = 255;

/**
 * Decode an LZO1X stream into `out` (from byte 0); returns the number of bytes written. Throws an
 * LzoError when the stream is malformed, runs past its end, references bytes before the output's start,
 * does not fit in `out`, or leaves input after its end marker.
 */
export function lzo1xDecompress(src: Uint8Array, out: Uint8Array): number {
  const n = src.length;
  const cap = out.length;
  let ip = 0;
  let op = 0;
  let state = 0;
  if (n < MIN_STREAM_BYTES) throw new LzoError(`is ${n} bytes, shorter than the ${MIN_STREAM_BYTES}-byte minimum`, 0);

  /** A run length's extension: 255 per zero byte, plus the first non-zero byte. */
  const extension = (): number => {
    let sum = 0;
    while (ip < n && src[ip] === 0) {
      sum += ZERO_RUN_STEP;
      ip++;
    }
    if (ip >= n) throw new LzoError('ends inside a length', ip);
    return sum + src[ip++]!;
  };
  const literals = (count: number): void => {
    if (count > n - ip) throw new LzoError(`ends inside ${count} literals`, ip);
    if (count > cap - op) throw new LzoError(`overruns the ${cap}-byte output with ${count} literals`, ip);
    out.set(src.subarray(ip, ip + count), op);
    ip += count;
    op += count;
  };
  const byte = (): number => {
    if (ip >= n) throw new LzoError('ends inside an instruction', ip);
    return src[ip++]!;
  };

  if (src[0]! > FIRST_LITERAL_BIAS) {
    const t = src[ip++]! - FIRST_LITERAL_BIAS;
    literals(t);
    state = t < STATE_MANY ? t : STATE_MANY;
  }
  for (;;) {
    const at = ip;
    const t = byte();
    let length: number;
    let distance: number;
    let next: number;
    if (t < 16) {
      if (state === 0) {
        literals((t === 0 ? 15 + extension() : t) + 3);
        state = STATE_MANY;
        continue;
      }
      const h = byte();
      distance = (state === STATE_MANY ? 1 + M2_MAX_OFFSET : 1) + (t >> 2) + (h << 2);
      length = state === STATE_MANY ? 3 : 2;
      next = t & 3;
    } else if (t >= 64) {
      distance = 1 + ((t >> 2) & 7) + (byte() << 3);
      length = (t >> 5) + 1;
      next = t & 3;
    } else if (t >= 32) {
      length = (t & 31 || 31 + extension()) + 2;
      const le16 = byte() | (byte() << 8);
      distance = 1 + (le16 >> 2);
      next = le16 & 3;
    } else {
      length = (t & 7 || 7 + extension()) + 2;
      const le16 = byte() | (byte() << 8);
      const d = ((t & 8) << 11) + (le16 >> 2);
      if (d === 0) {
        if (length !== 3) throw new LzoError(`end marker with length ${length}, expected 3`, at);
        if (ip !== n) throw new LzoError(`has ${n - ip} bytes after its end marker`, ip);
        return op;
      }
      distance = d + M4_BASE;
      next = le16 & 3;
    }
    if (distance > op) throw new LzoError(`copies from ${distance} bytes back with only ${op} written`, at);
    if (length > cap - op) throw new LzoError(`overruns the ${cap}-byte output with a ${length}-byte copy`, at);
    // byte by byte: a copy may overlap what it writes (distance < length repeats a pattern)
    for (let from = op - distance, end = op + length; op < end; ) out[op++] = out[from++]!;
    if (next > 0) literals(next);
    state = next;
  }
}
