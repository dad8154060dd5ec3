// Loader of the WebAssembly leaf kernel (src/wasm/page-flags.ts, built to dist/wasm/page-flags.wasm by
// `npm run build`): models the audit worker's batch buffers living inside the kernel's linear memory, so
// the worker's positional read writes leaf pages straight into wasm memory and one `pageFlags` call per
// batch gives every page's PAGE_FLAG_* bits (compare-leaf.ts) for classifyLeaf's fast path.
//
// Synchronous (compile + instantiate with `new WebAssembly.Module/Instance`, once per thread, on first
// use). When the .wasm file is missing, does not instantiate, or its exported constants differ from
// ours, every LeafScanBatch takes the JS path: a plain Buffer, no flags (PAGE_FLAGS_UNKNOWN), so
// classifyLeaf scans the pages itself. `leafScanStatus()` is the one place that says which path is active.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PAGE_SIZE } from '../xen/abi.js';
import { PAGE_FLAG_ALL_INVALID, PAGE_FLAG_HI_WORDS_ZERO, PAGE_FLAGS_UNKNOWN } from './compare-leaf.js';

/** Size of a WebAssembly memory page (the unit of Memory.grow). */
const WASM_PAGE_SIZE = 64 * 1024;

/** The WebAssembly JS API members used here (lib ES2022 with @types/node 20 does not declare the namespace). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

interface WasmGlobal {
  value: number;
}

/** The kernel's raw exports (no bindings): see src/wasm/page-flags.ts. */
interface KernelExports {
  memory: { buffer: ArrayBuffer; grow(deltaPages: number): number };
  arenaBase(): number;
  pageFlags(ptr: number, nPages: number, outPtr: number): void;
  PAGE_SIZE: WasmGlobal;
  PAGE_FLAG_HI_WORDS_ZERO: WasmGlobal;
  PAGE_FLAG_ALL_INVALID: WasmGlobal;
}

/** Constants the kernel mirrors, by export name, with the values it must have. */
const MIRRORED: [name: keyof KernelExports, want: number][] = [
  ['PAGE_SIZE', PAGE_SIZE],
  ['PAGE_FLAG_HI_WORDS_ZERO', PAGE_FLAG_HI_WORDS_ZERO],
  ['PAGE_FLAG_ALL_INVALID', PAGE_FLAG_ALL_INVALID],
];

export interface LeafScanStatus {
  backend: 'wasm' | 'js';
  /** the .wasm file looked for */
  wasmPath: string;
  /** why the JS path is used; null on the wasm path */
  reason: string | null;
}

/** Compiled layout: dist/src/audit/page-flags-loader.js → dist/wasm/page-flags.wasm; from TS source → <repo>/dist/wasm/…. */
export function leafScanWasmPath(): string {
  const here = import.meta.url;
  const rel = here.endsWith('.ts') ? '../../dist/wasm/page-flags.wasm' : '../../wasm/page-flags.wasm';
  return fileURLToPath(new URL(rel, here));
}

function instantiate(module: object): KernelExports {
  return new wasmApi.Instance(module, {}).exports as unknown as KernelExports;
}

/** Why the kernel's exports cannot be used, or null when they fit. */
function checkExports(x: KernelExports): string | null {
  if (typeof x.pageFlags !== 'function' || typeof x.arenaBase !== 'function' || typeof x.memory?.grow !== 'function') {
    return 'exports pageFlags, arenaBase or memory are missing';
  }
  for (const [name, want] of MIRRORED) {
    const got = (x[name] as WasmGlobal | undefined)?.value;
    if (got !== want) return `exported ${name} is ${got}, expected ${want}`;
  }
  return null;
}

/** Compile `file` and check one instance; a string says why it cannot be used. */
export function compileLeafScan(file: string): object | string {
  try {
    const module = new wasmApi.Module(fs.readFileSync(file));
    return checkExports(instantiate(module)) ?? module;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

let compiled: { module: object | null; status: LeafScanStatus } | null = null;

function kernel(): { module: object | null; status: LeafScanStatus } {
  if (compiled === null) {
    const wasmPath = leafScanWasmPath();
    const m = compileLeafScan(wasmPath);
    compiled =
      typeof m === 'string'
        ? { module: null, status: { backend: 'js', wasmPath, reason: m } }
        : { module: m, status: { backend: 'wasm', wasmPath, reason: null } };
  }
  return compiled;
}

/** Which path LeafScanBatch takes in this thread (compiles the kernel on first call). */
export function leafScanStatus(): LeafScanStatus {
  return { ...kernel().status };
}

/**
 * A batch buffer of `pageCount` page-aligned 4 KiB pages plus their flags. On the wasm path both live in
 * a kernel instance of its own (its memory grown once here, never again, so the views stay valid);
 * `scan(n)` computes the flags of pages [0, n) in one call. On the JS path `buf` is a plain Buffer and
 * `flags` is always PAGE_FLAGS_UNKNOWN.
 */
export class LeafScanBatch {
  readonly buf: Buffer;
  private readonly kernel: KernelExports | null = null;
  private readonly flagBytes: Uint8Array | null = null;
  private readonly bufPtr: number = 0;
  private readonly flagsPtr: number = 0;

  /** `module`: the compiled kernel (default: this thread's, or null when it is unusable); null = the JS path. */
  constructor(readonly pageCount: number, module: object | null = kernel().module) {
    if (module === null) {
      this.buf = Buffer.alloc(pageCount * PAGE_SIZE);
      return;
    }
    const k = instantiate(module);
    this.bufPtr = k.arenaBase();
    this.flagsPtr = this.bufPtr + pageCount * PAGE_SIZE;
    const needed = this.flagsPtr + pageCount;
    const have = k.memory.buffer.byteLength;
    if (needed > have) k.memory.grow(Math.ceil((needed - have) / WASM_PAGE_SIZE));
    this.kernel = k;
    this.buf = Buffer.from(k.memory.buffer, this.bufPtr, pageCount * PAGE_SIZE);
    this.flagBytes = new Uint8Array(k.memory.buffer, this.flagsPtr, pageCount);
  }

  /** Compute the flags of pages [0, n) of `buf` (a no-op on the JS path). */
  scan(n: number): void {
    if (this.kernel !== null && n > 0) this.kernel.pageFlags(this.bufPtr, Math.min(n, this.pageCount), this.flagsPtr);
  }

  /** PAGE_FLAG_* bits of page `p` as of the last scan, or PAGE_FLAGS_UNKNOWN on the JS path. */
  flags(p: number): number {
    return this.flagBytes !== null ? this.flagBytes[p]! : PAGE_FLAGS_UNKNOWN;
  }
}
