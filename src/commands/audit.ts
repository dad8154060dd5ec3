// `p2m-audit audit FILE`: open the image, run the audit pipeline (src/audit/audit-image.ts), print the report.
import { auditImage } from '../audit/audit-image.js';
import { openImage } from '../formats/open-image.js';
import { renderJson } from '../report/json.js';
import { renderText } from '../report/text.js';
import { progress, symbolsOpt, writeSvgFile } from './common.js';

export interface AuditFileOptions {
  json?: boolean;
  jobs: number;
  method?: 'tree' | 'list';
  systemMap?: string;
  svg?: string;
}

/** Audit one image file; returns the report's exit code. */
export async function auditFile(file: string, o: AuditFileOptions): Promise<number> {
  const img = openImage(file, symbolsOpt(o.systemMap));
  try {
    const { report } = await auditImage(img, { jobs: o.jobs, method: o.method, onProgress: progress(`auditing ${file}`) });
    if (o.svg) {
      const { renderSvg } = await import('../report/svg.js');
      writeSvgFile(o.svg, renderSvg(report), [file, o.systemMap ?? '']);
    }
    process.stdout.write(o.json ? renderJson(report) : renderText(report));
    return report.exitCode;
  } finally {
    img.close();
  }
}

