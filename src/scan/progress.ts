// The scan's progress bar on stderr (cli-progress): files done / total, MiB done / total, percentage
// and ETA, both by bytes (a 2 GiB dump weighs what it costs, not one file's worth). Only drawn when
// stderr is a terminal; src/scan/scan.ts loads this module lazily, so a scan without a bar never loads
// the library. Result lines printed while the bar is up are written above it (the bar's line is
// cleared first and redrawn after).
import cliProgress from 'cli-progress';

const BYTES_PER_MIB = 1 << 20;
/** Redraws per second, and updates averaged for the ETA (a longer window gives a steadier ETA). */
const BAR_FPS = 10;
const ETA_WINDOW_UPDATES = 50;
/** ANSI: carriage return + erase the whole line; save the cursor position (DEC). */
const CLEAR_LINE = '\r\x1b[2K';
const SAVE_CURSOR = '\x1b7';

export interface ScanProgress {
  /** count done work: whole files and bytes (bytes may come in parts, per shard) */
  advance(files: number, bytes: number): void;
  /** run `print` (which writes a line to stdout) without tearing the bar */
  above(print: () => void): void;
  stop(): void;
}

export function startProgress(totalFiles: number, totalBytes: number, stream: NodeJS.WriteStream = process.stderr): ScanProgress {
  const mib = (b: number): string => (b / BYTES_PER_MIB).toFixed(1);
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: 'scan [{bar}] {files}/{nfiles} files | {doneMib}/{totalMib} MiB | {percentage}% | ETA {eta_formatted}',
      fps: BAR_FPS,
      etaBuffer: ETA_WINDOW_UPDATES,
      hideCursor: false,
      clearOnComplete: true,
      gracefulExit: false, // the scan handles SIGINT itself
      forceRedraw: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let files = 0;
  let bytes = 0;
  const payload = (): object => ({ files, nfiles: totalFiles, doneMib: mib(bytes), totalMib: mib(totalBytes) });
  // total 0 (only empty files) would divide by zero in the ETA: count one byte
  const total = Math.max(1, totalBytes);
  bar.start(total, 0, payload());
  const sameTerminal = stream.isTTY && process.stdout.isTTY;
  return {
    advance(f, b) {
      files += f;
      bytes += b;
      bar.update(Math.min(total, bytes), payload());
    },
    above(print) {
      if (!sameTerminal) {
        print();
        return;
      }
      stream.write(CLEAR_LINE);
      print();
      bar.render();
    },
    stop() {
      // cli-progress's stop() restores the cursor position saved at start(); lines printed above the bar
      // since then have scrolled the screen, so save the bar's current line first
      if (stream.isTTY) stream.write(CLEAR_LINE + SAVE_CURSOR);
      bar.stop();
    },
  };
}
