// Models the per-leaf fast path of src/audit/compare-leaf.ts in WebAssembly SIMD: Linux x86-64 p2m entries, INVALID_P2M_ENTRY and the IDENTITY/FOREIGN bits as in arch/x86/include/asm/xen/page.h.
//
// AssemblyScript source (not type-checked by the root tsconfig): `npm run build` compiles it with asc
// (SIMD, -O3, stub runtime, no bindings) to dist/wasm/page-flags.wasm, which src/audit/page-flags-loader.ts
// instantiates once per batch buffer. The module is a pure function over its own linear memory: the
// loader grows the memory once, places page-aligned batch buffers at `arenaBase()`, has the worker read
// leaf pages straight into them, and calls `pageFlags` once per batch.
//
// A leaf page holds 512 little-endian u64 entries, i.e. u32 words (lo, hi, lo, hi, …); one v128 holds
// two entries as i32x4 lanes (lo, hi, lo, hi). Per page the kernel ORs all vectors (any high-word bit
// set? — IDENTITY bit 62, FOREIGN bit 63, INVALID, or an mfn ≥ 2^32) and ANDs them (every bit set =
// every entry INVALID_P2M_ENTRY), eight vectors per step, and writes one flag byte.
//
// Constants mirror src/xen/abi.ts and src/audit/compare-leaf.ts under the same names (this compiler
// cannot import them); the loader checks the exported ones against its own before using the module.

/** src/xen/abi.ts PAGE_SIZE (x86, 4 KiB pages). */
export const PAGE_SIZE: i32 = 4096;
/** src/xen/abi.ts INVALID_P2M_ENTRY_WORD: INVALID_P2M_ENTRY = ~0UL, both words all ones. */
const INVALID_P2M_ENTRY_WORD: i32 = 0xffffffff;
/** src/audit/compare-leaf.ts PAGE_FLAG_HI_WORDS_ZERO: every entry's high word is 0 (plain RAM, mfn < 2^32). */
export const PAGE_FLAG_HI_WORDS_ZERO: u8 = 1;
/** src/audit/compare-leaf.ts PAGE_FLAG_ALL_INVALID: every entry is INVALID_P2M_ENTRY (every byte 0xff). */
export const PAGE_FLAG_ALL_INVALID: u8 = 2;

/** Bytes of one v128 (two p2m entries). */
const VEC_BYTES: i32 = 16;
/** Vectors per unrolled step (128 bytes, 16 entries) and bytes per step. */
const VECS_PER_STEP: i32 = 8;
const STEP_BYTES: i32 = VEC_BYTES * VECS_PER_STEP;
/** i32x4 lanes 1 and 3: the high words of the vector's two entries (little-endian: low word first). */
const HI_WORD_LANES: v128 = i32x4(0, -1, 0, -1);
const ALL_INVALID_WORDS: v128 = i32x4(INVALID_P2M_ENTRY_WORD, INVALID_P2M_ENTRY_WORD, INVALID_P2M_ENTRY_WORD, INVALID_P2M_ENTRY_WORD);

/** First page-aligned address past the module's static data: where the loader places its buffers. */
export function arenaBase(): usize {
  return (__heap_base + <usize>(PAGE_SIZE - 1)) & ~<usize>(PAGE_SIZE - 1);
}

/** The flag byte of the page at `p`. */
function flagsOfPage(p: usize): u8 {
  let any = i32x4.splat(0); // OR of every vector of the page
  let all = ALL_INVALID_WORDS; // AND of every vector of the page
  const end = p + <usize>PAGE_SIZE;
  for (let q = p; q < end; q += <usize>STEP_BYTES) {
    const v0 = v128.load(q, 0);
    const v1 = v128.load(q, VEC_BYTES);
    const v2 = v128.load(q, 2 * VEC_BYTES);
    const v3 = v128.load(q, 3 * VEC_BYTES);
    const v4 = v128.load(q, 4 * VEC_BYTES);
    const v5 = v128.load(q, 5 * VEC_BYTES);
    const v6 = v128.load(q, 6 * VEC_BYTES);
    const v7 = v128.load(q, 7 * VEC_BYTES);
    // pairwise trees: short dependency chains for the eight loads
    any = v128.or(any, v128.or(v128.or(v128.or(v0, v1), v128.or(v2, v3)), v128.or(v128.or(v4, v5), v128.or(v6, v7))));
    all = v128.and(all, v128.and(v128.and(v128.and(v0, v1), v128.and(v2, v3)), v128.and(v128.and(v4, v5), v128.and(v6, v7))));
  }
  let flags: u8 = 0;
  if (!v128.any_true(v128.and(any, HI_WORD_LANES))) flags |= PAGE_FLAG_HI_WORDS_ZERO;
  if (i32x4.all_true(i32x4.eq(all, ALL_INVALID_WORDS))) flags |= PAGE_FLAG_ALL_INVALID;
  return flags;
}

/** One flag byte per page for the `nPages` consecutive 4 KiB pages at `ptr`, written to `outPtr[0..nPages)`. */
export function pageFlags(ptr: usize, nPages: i32, outPtr: usize): void {
  for (let i = 0; i < nPages; i++) {
    store<u8>(outPtr + <usize>i, flagsOfPage(ptr + <usize>i * <usize>PAGE_SIZE));
  }
}
