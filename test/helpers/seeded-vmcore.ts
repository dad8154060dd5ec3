// A broken variant of the real dom0 vmcore for tests without a Xen host: a sparse copy of the clean dump
// (never the input itself) whose frame list is rewritten the way ../shared/real-dom0-kdump/p2mseed/p2mseed.c
// rewrites a running dom0's (loaded by scripts/dom0-init.sh with apply=1 set_max_pfn=1):
//   * every top slot t whose first pfn t·512² is ≥ nr_pages and does not already name the missing mid page
//     is set to it (p2m_mid_missing_mfn's mfn);
//   * in a top slot straddling nr_pages, every mid slot whose first pfn is ≥ nr_pages and does not already
//     name the p2m_missing leaf is set to it (the missing mid page's slot 0);
//   * shared_info.arch.max_pfn := nr_pages.
// The dump is read here with its own minimal ELF64 program-header parse, independently of src/.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** README: start_info.nr_pages 0x40000; the missing mid page mfn 0x13513d; dom0's shared_info at machine 0x1ffd6000. */
export const SEED = { nrPages: 0x40000, missingMid: 0x13513d, sharedInfoMaddr: 0x1ffd6000, rootMfn: 0x13513b } as const;
const ARCH_MAX_PFN = 0xc10;
const PAGE = 4096;
const PER_PAGE = 512;

export interface SeedChange {
  what: string;
  maddr: number;
  from: bigint;
  to: bigint;
}

/** PT_LOAD segments of an ELF64 little-endian file: [paddr, paddr + filesz) at offset. */
export function loadSegments(fd: number): { paddr: number; size: number; offset: number }[] {
  const eh = Buffer.alloc(64);
  fs.readSync(fd, eh, 0, 64, 0);
  const phoff = Number(eh.readBigUInt64LE(0x20));
  const phentsize = eh.readUInt16LE(0x36);
  const phnum = eh.readUInt16LE(0x38);
  const ph = Buffer.alloc(phentsize * phnum);
  fs.readSync(fd, ph, 0, ph.length, phoff);
  const out: { paddr: number; size: number; offset: number }[] = [];
  for (let i = 0; i < phnum; i++) {
    const o = i * phentsize;
    if (ph.readUInt32LE(o) !== 1) continue; // PT_LOAD
    out.push({ offset: Number(ph.readBigUInt64LE(o + 8)), paddr: Number(ph.readBigUInt64LE(o + 24)), size: Number(ph.readBigUInt64LE(o + 32)) });
  }
  return out;
}

/** A raw machine-address reader/writer over a vmcore file. */
export class RawDump {
  readonly segs: { paddr: number; size: number; offset: number }[];
  constructor(readonly fd: number) {
    this.segs = loadSegments(fd);
  }

  offsetOf(maddr: number): number {
    const s = this.segs.find((x) => maddr >= x.paddr && maddr + 8 <= x.paddr + x.size);
    if (!s) throw new Error(`machine ${maddr.toString(16)} is not in the dump`);
    return s.offset + (maddr - s.paddr);
  }

  u64(maddr: number): bigint {
    const b = Buffer.alloc(8);
    fs.readSync(this.fd, b, 0, 8, this.offsetOf(maddr));
    return b.readBigUInt64LE(0);
  }

  page(mfn: number): Buffer {
    const b = Buffer.alloc(PAGE);
    fs.readSync(this.fd, b, 0, PAGE, this.offsetOf(mfn * PAGE));
    return b;
  }

  set(maddr: number, v: bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    fs.writeSync(this.fd, b, 0, 8, this.offsetOf(maddr));
  }
}

/** p2mseed's rewrite of a dump opened read-write; returns the changes made. */
export function applyP2mseed(dump: RawDump): SeedChange[] {
  const changes: SeedChange[] = [];
  const change = (what: string, maddr: number, to: bigint): void => {
    const from = dump.u64(maddr);
    if (from === to) return;
    dump.set(maddr, to);
    changes.push({ what, maddr, from, to });
  };
  const missMid = BigInt(SEED.missingMid);
  const missLeaf = dump.u64(SEED.missingMid * PAGE); // midmiss[0]
  const top = dump.page(SEED.rootMfn);
  const span = PER_PAGE * PER_PAGE;
  for (let t = 0; t < PER_PAGE; t++) {
    const first = t * span;
    const mid = top.readBigUInt64LE(t * 8);
    if (first >= SEED.nrPages) {
      change(`top[${t}]`, SEED.rootMfn * PAGE + t * 8, missMid);
      continue;
    }
    if (first + span <= SEED.nrPages || mid === missMid) continue;
    for (let m = 0; m < PER_PAGE; m++) {
      if (first + m * PER_PAGE < SEED.nrPages) continue;
      change(`mid[${t}][${m}]`, Number(mid) * PAGE + m * 8, missLeaf);
    }
  }
  change('shared_info.arch.max_pfn', SEED.sharedInfoMaddr + ARCH_MAX_PFN, BigInt(SEED.nrPages));
  return changes;
}

/** A sparse copy of `clean` beside it, rewritten by applyP2mseed (made once, then reused). */
export function seededVmcore(clean: string): { path: string; changes: SeedChange[] } {
  const out = path.join(path.dirname(clean), `${path.basename(clean, '.vmcore')}-p2mseed.vmcore`);
  const done = `${out}.changes.json`;
  if (fs.existsSync(out) && fs.existsSync(done) && fs.statSync(out).size === fs.statSync(clean).size) {
    const changes = (JSON.parse(fs.readFileSync(done, 'utf8')) as { what: string; maddr: number; from: string; to: string }[]).map((c) => ({ ...c, from: BigInt(c.from), to: BigInt(c.to) }));
    return { path: out, changes };
  }
  const tmp = `${out}.${process.pid}.tmp`;
  const cp = spawnSync('cp', ['--sparse=always', clean, tmp], { encoding: 'utf8' });
  if (cp.status !== 0) throw new Error(`cp --sparse=always ${clean}: ${cp.stderr || cp.error?.message}`);
  fs.chmodSync(tmp, 0o644);
  const fd = fs.openSync(tmp, 'r+');
  let changes: SeedChange[];
  try {
    changes = applyP2mseed(new RawDump(fd));
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, out);
  fs.writeFileSync(done, JSON.stringify(changes.map((c) => ({ ...c, from: c.from.toString(), to: c.to.toString() }))));
  return { path: out, changes };
}
