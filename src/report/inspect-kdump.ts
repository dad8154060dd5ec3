// `inspect` of a dom0 kdump (vmcore or kdump-compressed): the notes found, the hypervisor's version from crash_xen_info_t (its strings read from Xen's image in the dump when the pages are there), xen_phys_start, the frame-list root, the dumped machine ranges and the page compression (xen/include/xen/elfcore.h, xen/common/kexec.c kexec_crash_save_info).
import { dom0KdumpOf, type GuestImage } from '../formats/guest-image.js';
import { PAGE_SIZE, hex } from '../xen/abi.js';
import { crashInfoFieldNames, kdumpNoteTypeName } from '../xen/kdump-format.js';

/** Longest string read from the dump for the version fields. */
const MAX_STRING = 80;
/** crash_xen_info_t words that are machine addresses of strings in Xen's image. */
const STRING_FIELDS = ['xen_extra_version', 'xen_changeset', 'xen_compiler', 'xen_compile_date', 'xen_compile_time'];

export interface KdumpInspect {
  notes: { name: string; type: string; descSize: number; descOffset: number }[];
  /** "4.17" plus the extra version string when Xen's image is in the dump */
  xenVersion: string;
  /** every crash_xen_info_t word by name (hex), and the strings it points at that the dump holds */
  crashInfo: Record<string, string>;
  strings: Record<string, string>;
  xenPhysStart: string | null;
  /** dom0's pfn_to_mfn_frame_list_list from the note (hex), or "none (…)" */
  frameListRoot: string;
  segments: { maddr: string; size: string; fileOffset: number }[];
  compression: string;
  vmcoreInfoXenLines: number;
}

/** The NUL-terminated string at a machine address, when its page is in the dump (cut at the page end). */
function stringAt(img: GuestImage, maddr: bigint): string | null {
  if (maddr === 0n || maddr >= BigInt(Number.MAX_SAFE_INTEGER)) return null;
  const m = Number(maddr);
  const page = img.readFrame(Math.floor(m / PAGE_SIZE));
  if (!page) return null;
  const from = m % PAGE_SIZE;
  const bytes = page.subarray(from, Math.min(PAGE_SIZE, from + MAX_STRING));
  const nul = bytes.indexOf(0);
  return bytes.subarray(0, nul < 0 ? bytes.length : nul).toString('latin1');
}

export function inspectKdump(img: GuestImage): KdumpInspect | null {
  const k = dom0KdumpOf(img);
  if (!k) return null;
  const ci = k.crashInfo;
  const names = crashInfoFieldNames(ci.descSize);
  const crashInfo: Record<string, string> = {};
  const strings: Record<string, string> = {};
  ci.words.forEach((w, i) => {
    const name = names[i] ?? `word${i}`;
    crashInfo[name] = hex(w);
    const s = STRING_FIELDS.includes(name) ? stringAt(img, w) : null;
    if (s !== null) strings[name] = s;
  });
  const last = ci.words[ci.words.length - 1]!;
  return {
    notes: k.notes.map((n) => ({ name: n.name, type: kdumpNoteTypeName(n.name, n.type), descSize: n.descSize, descOffset: n.descOffset })),
    xenVersion: `${ci.xenMajor}.${ci.xenMinor}${strings['xen_extra_version'] ?? ''}`,
    crashInfo,
    strings,
    xenPhysStart: ci.xenPhysStart === null ? null : hex(ci.xenPhysStart),
    frameListRoot: ci.frameListListMfn >= 0 ? hex(ci.frameListListMfn) : `none (${hex(last)})`,
    segments: k.segments.map((s) => ({ maddr: `${hex(s.maddr)}-${hex(s.maddr + s.size - 1)}`, size: hex(s.size), fileOffset: s.fileOffset })),
    compression: k.compression ?? 'none (ELF)',
    vmcoreInfoXenLines: k.vmcoreInfoXen === null ? 0 : k.vmcoreInfoXen.split('\n').filter((l) => l !== '').length,
  };
}

export function renderKdump(k: KdumpInspect): string[] {
  const lines = [
    `dom0 kdump: Xen ${k.xenVersion}, xen_phys_start ${k.xenPhysStart ?? 'not in this layout'}, dom0 frame-list root (pfn_to_mfn_frame_list_list) ${k.frameListRoot}, compression ${k.compression}`,
    `  crash_xen_info_t: ${Object.entries(k.crashInfo).map(([n, v]) => `${n}=${v}`).join(' ')}`,
    ...Object.entries(k.strings).map(([n, s]) => `    ${n}: ${JSON.stringify(s)}`),
    `  notes (${k.notes.length}): ${k.notes.map((n) => `${n.name}/${n.type} ${n.descSize} bytes @${hex(n.descOffset)}`).join(', ')}; VMCOREINFO_XEN ${k.vmcoreInfoXenLines} lines`,
    `  machine memory in the dump (${k.segments.length} ranges):`,
    ...k.segments.map((s) => `    ${s.maddr} (${s.size} bytes) ${s.fileOffset < 0 ? 'in compressed pages' : `at file offset ${hex(s.fileOffset)}`}`),
  ];
  return lines;
}
