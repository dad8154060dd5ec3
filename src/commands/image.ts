// The commands that read one image and print what is in it: `p2m` (xen-mfndump's dump-p2m format),
// `restore-check` (what the restore side would lose) and `inspect` (format, arch fields, symbols, facts).
import { InputError } from '../common/errors.js';
import { openImage } from '../formats/open-image.js';
import { renderRestoreCheck, restoreCheck } from '../emulate/restore-check.js';
import { renderMfndump, type MfndumpView } from '../report/mfndump.js';
import { inspectImage, renderInspect } from '../report/inspect.js';
import { symbolsOpt } from './common.js';

/** Lines buffered before a write: `p2m` prints one line per pfn. */
const LINES_PER_WRITE = 4096;

export function cmdP2m(file: string, o: { view: MfndumpView; domid?: number; systemMap?: string }): number {
  const img = openImage(file, symbolsOpt(o.systemMap));
  try {
    const pfnType = 'pageType' in img ? (pfn: number) => (img as unknown as { pageType(p: number): number | undefined }).pageType(pfn) : undefined;
    let buf: string[] = [];
    const flush = () => {
      process.stdout.write(buf.join(''));
      buf = [];
    };
    renderMfndump(img, o.view, (line) => {
      buf.push(line + '\n');
      if (buf.length >= LINES_PER_WRITE) flush();
    }, { domid: o.domid, pfnType });
    flush();
    return 0;
  } finally {
    img.close();
  }
}

export function cmdRestoreCheck(file: string, o: { json?: boolean; systemMap?: string }): number {
  const img = openImage(file, symbolsOpt(o.systemMap));
  try {
    if (img.format !== 'xl-save' && img.format !== 'libxc-stream') {
      throw new InputError(`${file}: is a ${img.format} image; restore-check reads xl save files and migration streams`);
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
    const info = inspectImage(img);
    process.stdout.write(o.json ? JSON.stringify(info, null, 2) + '\n' : renderInspect(info));
    return 0;
  } finally {
    img.close();
  }
}
