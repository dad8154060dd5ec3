// The commands that read one image and print what is in it: `p2m` (xen-mfndump's dump-p2m format),
// `restore-check` (what the restore side would lose) and `inspect` (format, arch fields, symbols, facts).
import { InputError } from '../common/errors.js';
import { openImage } from '../formats/open-image.js';
import { IMAGE_FORMAT_NAMES } from '../formats/guest-image.js';
import { renderRestoreCheck, restoreCheck } from '../emulate/restore-check.js';
import { renderMfndump, type MfndumpView } from '../report/mfndump.js';
import { inspectImage, renderInspect } from '../report/inspect.js';
import { withDom0SharedInfo } from '../views/dom0-kdump.js';
import { EXIT_CLEAN, EXIT_PARTIAL } from '../audit/verdict.js';
import { stdoutGone, symbolsOpt } from './common.js';

/** Lines buffered before a write: `p2m` prints one line per pfn. */
const LINES_PER_WRITE = 4096;
/** Thrown through the renderer to stop it once nobody reads standard output. */
const STDOUT_GONE = Symbol('stdout gone');

export function cmdP2m(file: string, o: { view: MfndumpView; domid?: number; systemMap?: string }): number {
  const img = openImage(file, symbolsOpt(o.systemMap));
  try {
    const pfnType = 'pageType' in img ? (pfn: number) => (img as unknown as { pageType(p: number): number | undefined }).pageType(pfn) : undefined;
    // the first lines stay buffered until LINES_PER_WRITE: a view that cannot be built prints nothing
    let buf: string[] = [];
    const flush = () => {
      if (stdoutGone()) throw STDOUT_GONE; // the reader went away (… | head): stop printing
      process.stdout.write(buf.join(''));
      buf = [];
    };
    let r;
    try {
      r = renderMfndump(img, o.view, (line) => {
        buf.push(line + '\n');
        if (buf.length >= LINES_PER_WRITE) flush();
      }, { domid: o.domid, pfnType });
      flush();
    } catch (e) {
      if (e === STDOUT_GONE) return EXIT_CLEAN;
      throw e;
    }
    if (r.notHeldPfns === 0) return EXIT_CLEAN;
    process.stderr.write(`p2m-audit: ${file}: ${r.notHeldPfns} pfns not printed: their p2m leaf pages are not in the image (the "not in the image" lines); the output is partial\n`);
    return EXIT_PARTIAL;
  } finally {
    img.close();
  }
}

export function cmdRestoreCheck(file: string, o: { json?: boolean; systemMap?: string }): number {
  const img = openImage(file, symbolsOpt(o.systemMap));
  try {
    if (img.format !== 'xl-save' && img.format !== 'libxc-stream') {
      throw new InputError(`${file}: is ${IMAGE_FORMAT_NAMES[img.format]}; restore-check reads xl save files and migration streams`);
    }
    const loss = restoreCheck(img);
    process.stdout.write(renderRestoreCheck(loss, !!o.json));
    return loss.exitCode;
  } finally {
    img.close();
  }
}

export function cmdInspect(file: string, o: { json?: boolean; systemMap?: string }): number {
  const img = openImage(file, symbolsOpt(o.systemMap));
  try {
    // a dom0 kdump carries no shared_info of its own: show dom0's, found through its symbols, when there
    const info = inspectImage(withDom0SharedInfo(img));
    process.stdout.write(o.json ? JSON.stringify(info, null, 2) + '\n' : renderInspect(info));
    return 0;
  } finally {
    img.close();
  }
}
