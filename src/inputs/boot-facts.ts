// What a boot knows of itself: the host map and dom0_mem= it was given and what xen_memory_setup did with
// them (linux-p2m.md §1–§3). The emulator produces it; a .p2ms snapshot carries it beside the image.
import type { PfnRange } from '../common/pfn-range.js';
import type { E820Entry } from './e820.js';

/** RAM that boot moved (3.18+ remap) or released and repopulated (3.8) out of an e820 hole. */
export interface RemapRecord {
  /** source pfns (inside a non-RAM run of the e820 map) */
  from: PfnRange;
  /** destination pfns (at/after nr_pages) */
  to: PfnRange;
  how: 'remap' | 'populate';
}

/**
 * What the source knows of the boot that produced this guest. Emulated guests know all of it;
 * real files know none of it (the views then rely on kernel variables read through symbols).
 */
export interface BootFacts {
  profile: string;
  role: 'dom0' | 'domU';
  hostE820: E820Entry[];
  /** the map the kernel ended with (after its own edits) */
  kernelE820: E820Entry[];
  dom0Mem?: string;
  nrPages: number;
  maxPages: number;
  /** the kernel's max_pfn after xen_memory_setup */
  kernelMaxPfn: number;
  /** xen_max_p2m_pfn at the moment xen_build_mfn_list_list ran (the bound it used) */
  buildBound: number;
  /** every value xen_max_p2m_pfn took, in order, with the step that set it */
  xenMaxP2mPfnHistory: { value: number; by: string }[];
  identity: PfnRange[];
  remapped: RemapRecord[];
  released: number;
  extraRegions: PfnRange[];
  config: Record<string, string>;
  /** predicted boot messages in the profile's own wording */
  messages: string[];
  seed: number;
}
