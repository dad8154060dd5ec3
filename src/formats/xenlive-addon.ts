// Loader of the optional Node-API addon native/xenlive (libxenctrl + libxenforeignmemory + libxenstore, as
// xen-project/xen tools/misc/xen-mfndump.c uses them). It is built only by `npm run build:live` on a machine
// with Xen's headers (Debian libxen-dev); everywhere else every other command works and `--domain` says in
// one line what is missing. Errors from the addon carry the C errno; `liveError` turns them into one-line
// InputErrors (no permission, no /dev/xen/privcmd, no such domain).
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { InputError } from '../common/errors.js';

/** What xc_domain_getinfo says of one domain (xc_dominfo_t, the fields p2m-audit reads). */
export interface XenDomainInfo {
  domid: number;
  dying: boolean;
  crashed: boolean;
  shutdown: boolean;
  paused: boolean;
  hvm: boolean;
  nrPages: number;
  maxMemKb: number;
  sharedInfoFrame: number;
  nrOnlineVcpus: number;
  maxVcpuId: number;
  /** arch_config.emulation_flags (XEN_X86_EMU_*) */
  emulationFlags: number;
}

/** vCPU context (vcpu_guest_context_x86_64_t): raw ctrlreg[3], the GDT's machine frames, and all 5168 bytes. */
export interface XenVcpuContext {
  cr3: bigint;
  gdtEnts: number;
  gdtFrames: number[];
  flags: number;
  raw: Buffer;
}

/** An open pair of xenctrl + foreign-memory handles (an External for the addon). */
export type XenHandle = { readonly __xenHandle: unique symbol };

/** The addon's functions (native/xenlive/xenlive.c). */
export interface XenLiveAddon {
  open(): XenHandle;
  close(h: XenHandle): void;
  domainInfo(h: XenHandle, domid: number): XenDomainInfo;
  listDomains(h: XenHandle): XenDomainInfo[];
  guestWidth(h: XenHandle, domid: number): number;
  vcpuContext(h: XenHandle, domid: number, vcpu: number): XenVcpuContext;
  maxMfn(h: XenHandle): number;
  pause(h: XenHandle, domid: number): void;
  unpause(h: XenHandle, domid: number): void;
  /** map frames read-only, copy them into out (4096 bytes each), unmap; errs[i] = 0 or errno; returns frames read */
  mapFrames(h: XenHandle, domid: number, frames: Float64Array, out: Buffer, errs: Int32Array): number;
  /** XEN_DOMCTL_getpageframeinfo3 type nibbles of raw p2m entries (as xc_map_domain_meminfo passes them) */
  pfnTypes(h: XenHandle, domid: number, entries: BigUint64Array, out: Uint8Array): void;
  xsRead(h: XenHandle, path: string): string | null;
}

/** The device node through which dom0's tools reach the hypervisor (Linux drivers/xen/privcmd.c). */
export const PRIVCMD_DEVICE = '/dev/xen/privcmd';

/** errno values (Linux asm-generic/errno-base.h) the messages tell apart. */
const EPERM = 1;
const ENOENT = 2;
const ESRCH = 3;
const EACCES = 13;
const EINVAL = 22;

/** dist/src/formats/x.js → <root>/native/…; src/formats/x.ts (vitest) → <root>/native/…. */
export function addonPath(): string {
  const here = import.meta.url;
  const rel = here.includes('/dist/src/') ? '../../../native/xenlive/build/Release/xenlive.node' : '../../native/xenlive/build/Release/xenlive.node';
  return fileURLToPath(new URL(rel, here));
}

let loaded: XenLiveAddon | undefined;

/** Load the addon, or throw a one-line InputError saying what is missing. */
export function loadXenLive(path = process.env.P2M_AUDIT_XENLIVE ?? addonPath()): XenLiveAddon {
  if (loaded) return loaded;
  if (!fs.existsSync(path)) {
    throw new InputError(`live domains need the xenlive addon, which is not built (${path} is missing): on a Xen dom0 run apt-get install libxen-dev, then npm run build:live`);
  }
  try {
    loaded = createRequire(import.meta.url)(path) as XenLiveAddon;
  } catch (e) {
    const why = ((e as Error).message ?? String(e)).split('\n')[0];
    throw new InputError(`live domains: the xenlive addon ${path} cannot be loaded (${why}); are Xen's runtime libraries (libxenctrl, libxenforeignmemory, libxenstore) installed?`);
  }
  return loaded;
}

/** errno of an addon error, or undefined. */
export function errnoOf(e: unknown): number | undefined {
  const n = (e as { errno?: unknown })?.errno;
  return typeof n === 'number' ? n : undefined;
}

/** Open the hypervisor handles, turning the usual failures into one-line InputErrors. */
export function openXenHandle(addon: XenLiveAddon): XenHandle {
  if (!fs.existsSync(PRIVCMD_DEVICE)) {
    throw new InputError(`live domains: ${PRIVCMD_DEVICE} does not exist: this is not a Xen dom0 (or the xen-privcmd driver is not loaded)`);
  }
  try {
    return addon.open();
  } catch (e) {
    const n = errnoOf(e);
    if (n === EACCES || n === EPERM) throw new InputError(`live domains: permission denied on ${PRIVCMD_DEVICE} (run as root in dom0)`);
    throw new InputError(`live domains: cannot open the hypervisor interface (${(e as Error).message})`);
  }
}

/** A one-line InputError for an addon failure on domain `label` (`reading`: the domain existed when the read began). */
export function liveError(label: string, e: unknown, reading = false): InputError {
  if (e instanceof InputError) return e;
  const n = errnoOf(e);
  const msg = (e as Error)?.message ?? String(e);
  if (n === undefined) return new InputError(`${label}: ${msg}`);
  if (n === ESRCH || n === ENOENT) return new InputError(reading ? `${label}: the domain went away during the read (${msg})` : `${label}: no such domain (${msg})`);
  if (n === EACCES || n === EPERM) return new InputError(`${label}: permission denied (${msg}); run as root in dom0`);
  if (n === EINVAL) return new InputError(`${label}: Xen refused the request (${msg})`);
  return new InputError(`${label}: ${msg}`);
}
