// Messages between the fuzz parent and its child processes (docs/fuzz.md), and the markers on the child's
// command line and stderr.
import type { Anatomy } from './anatomy.js';
import type { Outcome } from './outcome.js';

/** Flag that makes cli.ts run as a fuzz child. */
export const CHILD_FLAG = '--fuzz-child';
/** Marker of the watchdog's stack line on a child's stderr. */
export const STACK_MARKER = '@@p2m-fuzz-stack ';

export interface Job {
  id: number;
  /** corpus entry index, or −1 for a file replay */
  entry: number;
  kind: 'mutant' | 'baseline' | 'file';
  /** replay: the file to run and its symbols */
  file?: string;
  symbolsPath?: string | null;
}

export type ToChild =
  | { type: 'init'; entries: Anatomy[]; workDir: string; tag: string; seed: number; classes: string[] | null; rssLimit: number; hangMs: number; target: string | null }
  | { type: 'batch'; jobs: Job[] }
  | { type: 'stop' };

export interface ResultMsg {
  type: 'result';
  id: number;
  outcome: Outcome;
  ms: number;
  classes: string[];
  description: string;
  /** the child exits after this result (its RSS high-water mark passed the limit) */
  retiring?: boolean;
}

export type FromChild =
  | { type: 'ready' }
  | { type: 'start'; id: number }
  | ResultMsg
  | { type: 'batch-done' }
  | { type: 'fatal'; id: number | null; name: string; message: string; stack: string };
