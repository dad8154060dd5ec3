// The fuzz harness over dom0 kdumps (docs/fuzz.md; src/fuzz/anatomy-kdump.ts): the anatomy of an emulated ELF
// vmcore and of makedumpfile's compressed dump names the length, offset and count fields their readers trust,
// at the offsets the System V gABI (Elf64_Ehdr / Elf64_Phdr / Elf64_Nhdr) and diskdump_mod.h
// (disk_dump_header, kdump_sub_header, page_desc) give; dom0's shared_info is found in the vmcore where
// start_info says; and a bounded run of mutants of both gives no failure (only reports and InputErrors).
// The dumps are of a small host (96 MiB of RAM): a 64 MiB sparse vmcore, a compressed dump of a few KiB.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emulate } from '../src/emulate/kernel/boot.js';
import { findProfile } from '../src/emulate/kernel/profiles.js';
import { writeKdumpCompressed } from '../src/emulate/kdump-compressed-writer.js';
import { writeVmcore } from '../src/emulate/vmcore-writer.js';
import type { MemoryImage } from '../src/formats/memory-image.js';
import { formatSystemMap } from '../src/formats/symbols.js';
import { analyze } from '../src/fuzz/analyze.js';
import type { Anatomy } from '../src/fuzz/anatomy.js';
import { runFuzz } from '../src/fuzz/harness.js';

const REPO = path.resolve(__dirname, '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fuzz-kdump-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const MiB = 2 ** 20;
/** Host RAM 0-0x9fbff and 1 MiB-96 MiB; dom0 of 48 MiB (nr_pages 0x3000), as dom0_mem=48m,max:48m gives. */
const HOST = [
  { addr: 0, size: 0x9fc00, type: 1 },
  { addr: MiB, size: 95 * MiB, type: 1 },
];
const PAGES = 0x3000;
const FUZZ_SEED = 20251203;
const FUZZ_MUTANTS = 160;
const FUZZ_TIMEOUT_MS = 300_000;

function dom0(profile: string): MemoryImage {
  return emulate({ profile: findProfile(profile)!, hostE820: HOST, nrPages: PAGES, maxPages: PAGES }).image;
}

/** Field name → file offset. */
const fieldsOf = (a: Anatomy): Map<string, number> => new Map(a.fields.map((f) => [f.name, f.offset]));

describe('fuzz anatomy of dom0 kdumps', () => {
  const vmcore = path.join(tmp, 'dom0.vmcore');
  const compressed = path.join(tmp, 'dom0-backport.kdump');
  let vm: ReturnType<typeof writeVmcore>;
  let kd: Awaited<ReturnType<typeof writeKdumpCompressed>>;
  let mem61: MemoryImage;
  beforeAll(async () => {
    mem61 = dom0('linux-6.1');
    vm = writeVmcore(mem61, vmcore);
    fs.writeFileSync(vmcore + '.map', formatSystemMap(mem61.symbols));
    const backport = dom0('linux-3.8.13-backport'); // FATAL for crash: the seed's 97 remapped pages
    kd = await writeKdumpCompressed(backport, compressed, { compression: 'zstd' });
    fs.writeFileSync(compressed + '.map', formatSystemMap(backport.symbols));
  });

  it('the ELF vmcore: e_phoff/e_phnum, every program header\'s p_offset/p_filesz/p_memsz/p_paddr, the notes\' sizes, the crash note\'s root', () => {
    const a = analyze(vmcore, vmcore, 'vmcore', 'vmcore', mem61.symbols, vmcore + '.map');
    const f = fieldsOf(a);
    // Elf64_Ehdr: e_phoff at 32, e_phnum at 56; Elf64_Phdr (56 bytes from 64): p_offset +8, p_paddr +24, p_filesz +32, p_memsz +40
    expect(f.get('e_phoff')).toBe(32);
    expect(f.get('e_phnum')).toBe(56);
    for (let i = 0; i < vm.phnum; i++) {
      expect([f.get(`segment ${i} p_offset`), f.get(`segment ${i} p_paddr`), f.get(`segment ${i} p_filesz`), f.get(`segment ${i} p_memsz`)]).toEqual([64 + 56 * i + 8, 64 + 56 * i + 24, 64 + 56 * i + 32, 64 + 56 * i + 40]);
    }
    // the notes at the page after the headers: per pCPU CORE (336) + Xen CRASH_REGS (32), CRASH_INFO (80) on pCPU 0, then VMCOREINFO_XEN
    expect(f.get(`note @${vm.noteOffset} descsz`)).toBe(vm.noteOffset + 4);
    const infoNote = vm.noteOffset + (12 + 8 + 336) + (12 + 4 + 32);
    expect(f.get(`note @${infoNote} descsz`)).toBe(infoNote + 4);
    expect(f.get('crash_xen_info_t dom0_pfn_to_mfn_frame_list_list')).toBe(infoNote + 12 + 4 + 80 - 8);
    // dom0's shared_info page lies in the file at its frame's offset (a PT_LOAD holds machine memory as is)
    const img = fs.openSync(vmcore, 'r');
    try {
      expect(a.sharedInfoOffsets).toHaveLength(1);
      const page = Buffer.alloc(4096);
      fs.readSync(img, page, 0, 4096, a.sharedInfoOffsets[0]!);
      expect(page.equals(mem61.sharedInfo!)).toBe(true);
    } finally {
      fs.closeSync(img);
    }
    expect(a.frameList?.fll.frame).toBe(Number(mem61.arch.pfnToMfnFrameListList));
  });

  it('the compressed dump: disk_dump_header and kdump_sub_header fields, the notes, page_desc entries', () => {
    const a = analyze(compressed, compressed, 'kdump', 'kdump-compressed', null, compressed + '.map');
    const f = fieldsOf(a);
    // disk_dump_header (x86_64): block_size at 428, sub_hdr_size 432, bitmap_blocks 436, max_mapnr 440; kdump_sub_header at block 1:
    // offset_note +48, size_note +56, max_mapnr_64 +96
    expect([f.get('block_size'), f.get('sub_hdr_size'), f.get('bitmap_blocks'), f.get('max_mapnr')]).toEqual([428, 432, 436, 440]);
    expect([f.get('offset_note'), f.get('size_note'), f.get('max_mapnr_64')]).toEqual([4096 + 48, 4096 + 56, 4096 + 96]);
    // the notes right after the 104-byte sub header; page_desc (24 bytes each) after the two bitmaps
    expect(f.get(`note @${4096 + 104} descsz`)).toBe(4096 + 104 + 4);
    expect(f.get('page_desc 0 size')).toBe(kd.descAt + 8);
    expect(f.get(`page_desc ${kd.frames - 1} offset`)).toBe(kd.descAt + (kd.frames - 1) * 24);
  });

  it(
    `${FUZZ_MUTANTS} mutants of both: no failure, the length fields inflated`,
    async () => {
      const s = await runFuzz({ corpus: [vmcore, compressed], seed: FUZZ_SEED, iterations: FUZZ_MUTANTS, jobs: 2, batch: 40, findingsDir: path.join(REPO, 'fuzz-findings') });
      expect(s.corpus.map((c) => c.format)).toEqual(['vmcore', 'kdump-compressed']);
      expect(s.baselines.map((b) => b.outcome.status)).toEqual(['ok', 'ok']);
      expect(s.mutants).toBe(FUZZ_MUTANTS);
      expect(s.byClass['field-inflate']?.run ?? 0).toBeGreaterThan(0);
      expect(s.findings.map((x) => `${x.count} × ${x.signature}: ${x.example.description} → ${x.reproducers.join(', ')}`)).toEqual([]);
    },
    FUZZ_TIMEOUT_MS,
  );
});
