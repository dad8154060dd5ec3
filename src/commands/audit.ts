// `p2m-audit audit FILE`: open the image, run the audit pipeline (src/audit/audit-image.ts), print the report.
import { auditImage } from '../audit/audit-image.js';
import { openImage } from '../formats/open-image.js';
import { SYMBOLS_BESIDE_SUFFIX } from '../formats/symbols.js';
import { renderJson } from '../report/json.js';
import { renderText } from '../report/text.js';
import { checkOutputs, progress, reportStream, symbolsOpt, writeTextOutput } from './common.js';

export interface AuditFileOptions {
  json?: boolean;
  jobs: number;
  method?: 'tree' | 'list';
  systemMap?: string;
  svg?: string;
  /** replace an existing --svg file */
  force?: boolean;
}

/** Audit one image file; returns the report's exit code. */
export async function auditFile(file: string, o: AuditFileOptions): Promise<number> {
  // the picture may not land on the image, its symbols or anything that is not a regular file
  const svgRules = { inputs: [file, o.systemMap, file + SYMBOLS_BESIDE_SUFFIX], force: o.force, stdout: 'text' as const };
  checkOutputs([o.svg], svgRules);
  const img = openImage(file, symbolsOpt(o.systemMap));
  try {
    const { report } = await auditImage(img, { jobs: o.jobs, method: o.method, onProgress: progress(`auditing ${file}`) });
    if (o.svg) {
      const { renderSvg } = await import('../report/svg.js');
      writeTextOutput(o.svg, renderSvg(report), svgRules);
    }
    // --svg -: the picture has standard output, the report goes to standard error
    reportStream(o.svg).write(o.json ? renderJson(report) : renderText(report));
    return report.exitCode;
  } finally {
    img.close();
  }
}

