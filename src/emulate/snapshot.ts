// Writes an emulated guest as a .p2ms snapshot holding only the frames an audit reads: both toolstack
// walks' structure (tree and list), the guest view's page tables / tree pages / variable pages, and
// every leaf page either view points at.
import { readGuestView } from '../views/guest-view.js';
import { guestLeafCount } from '../views/p2m-leaves.js';
import type { GuestImage } from '../formats/guest-image.js';
import type { MemoryImage } from '../formats/memory-image.js';
import { writeP2ms } from './p2ms-writer.js';
import { crashView } from '../views/crash-view.js';
import { mapP2m } from '../views/toolstack-view.js';
import { bootFactsOf } from '../formats/guest-image.js';

/** The frames a later audit of this image (either --method) will read, ascending. */
export function framesNeeded(img: GuestImage & { hasFrame?(frame: number): boolean }): number[] {
  const need = new Set<number>();
  const guest = readGuestView(img);
  for (const f of guest.structureFrames) need.add(f);
  for (const f of guest.leafFrames) if (f >= 0) need.add(f);
  if (guest.tail && guest.tail.frame >= 0) need.add(guest.tail.frame);
  if (guest.missingFrame >= 0) need.add(guest.missingFrame);
  if (guest.identityFrame >= 0) need.add(guest.identityFrame);
  for (const method of ['tree', 'list'] as const) {
    const tool = mapP2m(img, { method });
    for (const f of tool.structureFrames) need.add(f);
    for (const f of tool.leafFrames) if (f >= 0) need.add(f);
  }
  // crash follows the frame list without the arch.max_pfn bound: keep every page it reads
  const cv = crashView(img, guest);
  if (cv.source === 'frame-list') {
    need.add(Number(img.arch.pfnToMfnFrameListList));
    for (const f of cv.structureFrames()) need.add(f);
    for (let k = 0, n = guestLeafCount(guest); k < n; k++) {
      const f = cv.leafFrame(k);
      if (f >= 0) need.add(f);
    }
  }
  const present = img.hasFrame ? (f: number) => img.hasFrame!(f) : (f: number) => img.readFrame(f) !== null;
  return [...need].filter(present).sort((a, b) => a - b);
}

export function writeEmulatedP2ms(img: MemoryImage, path: string, opts: { overwrite?: boolean } = {}): { frames: number } {
  const frames = framesNeeded(img);
  writeP2ms(
    path,
    {
      frameSpace: img.frameSpace,
      guestWidth: img.guestWidth,
      cr3: img.cr3,
      maxFrame: img.maxFrame,
      symbols: img.symbols,
      sharedInfo: img.sharedInfo,
      bootFacts: bootFactsOf(img),
    },
    frames,
    (f) => img.readFrame(f)!,
    opts,
  );
  return { frames: frames.length };
}
