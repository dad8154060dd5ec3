// How a mutant differs from its base file (docs/fuzz.md): either a list of byte edits plus an optional new
// length (applied in place to a working copy of the base file and undone afterwards, so a 100 MB dump costs
// a few KiB of I/O per mutant), or a whole new file (`replace`) for structure rewrites of small .p2ms
// snapshots (metadata values, frames dropped/added).
export interface Edit {
  offset: number;
  bytes: Buffer;
}

/** How a mutant differs from its base file. */
export interface Patch {
  /** whole new content (structure rewrites of small .p2ms files); null = the base file */
  replace: Buffer | null;
  /** byte edits, in order, applied before the length change; edits past the end are clipped */
  edits: Edit[];
  /** final length (truncation, or extension with `fill`), or null when unchanged */
  length: number | null;
  /** bytes appended when `length` exceeds the content length (exactly length − content length) */
  fill: Buffer | null;
}

export interface Mutant {
  /** mutant id (≥ 0), or a negative id for a baseline run of the unmodified file */
  id: number;
  /** mutation classes applied, in order */
  classes: string[];
  /** what was changed, precisely enough to redo it by hand */
  description: string;
  patch: Patch;
}

/** Apply a patch to the base content in memory (reproducers; small files). */
export function applyPatch(base: Buffer, patch: Patch): Buffer {
  let out = Buffer.from(patch.replace ?? base);
  for (const e of patch.edits) {
    if (e.offset >= out.length) continue;
    e.bytes.copy(out, e.offset, 0, Math.min(e.bytes.length, out.length - e.offset));
  }
  if (patch.length !== null && patch.length !== out.length) {
    if (patch.length < out.length) out = out.subarray(0, patch.length);
    else out = Buffer.concat([out, patch.fill ?? Buffer.alloc(patch.length - out.length)]).subarray(0, patch.length);
  }
  return out;
}
