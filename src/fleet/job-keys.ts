// The names the fleet gives things in Redis (docs/fleet.md "What is stored"). A file's job id is a hash
// of its identity — absolute path, size and mtime, scan's --resume key (src/scan/results.ts resumeKey) —
// so a resubmission of an unchanged file finds the job (and its result) already there, and a changed file
// gets a new one. BullMQ forbids ':' in custom job ids (Queue.add, "Custom Id cannot contain :"); hex
// digests have none. The fleet's own keys (one hash per corpus run, one hash naming a corpus's latest
// run) live beside BullMQ's under the same prefix and queue name.
import { createHash } from 'node:crypto';
import { resumeKey } from '../scan/results.js';

/** The BullMQ queue every fleet job goes to. */
export const QUEUE_NAME = 'audit';
/** Hex digits of the SHA-256 kept in a job id (128 bits: no collision in any corpus). */
const ID_HEX_DIGITS = 32;

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, ID_HEX_DIGITS);
}

/** Job id of a whole-file audit (and parent of its shard jobs, when split). */
export function fileJobId(resolved: string, size: number, mtimeMs: number): string {
  return `f-${digest(resumeKey(resolved, size, mtimeMs))}`;
}

/** Job id of shard `index` of a split file. */
export function shardJobId(fileId: string, index: number): string {
  return `${fileId}-s${index}`;
}

/** Job id of the parent job of run `run` of a corpus. */
export function corpusJobId(name: string, run: number): string {
  return `c-${digest(name)}-r${run}`;
}

/** The fleet's own keys (beside BullMQ's `<prefix>:<queue>:…`). */
export class FleetKeys {
  constructor(
    readonly prefix: string,
    readonly queue: string = QUEUE_NAME,
  ) {}

  private base(): string {
    return `${this.prefix}:${this.queue}:fleet`;
  }

  /** hash: run → latest run number, and meta of each run (see RunMeta) */
  corpus(name: string): string {
    return `${this.base()}:corpus:${digest(name)}`;
  }

  /** hash: file job id (or a listing problem's key) → the file's member record (see Member) */
  members(name: string, run: number): string {
    return `${this.base()}:run:${digest(name)}:${run}`;
  }

  /** a BullMQ job's hash (`<prefix>:<queue>:<id>`, BullMQ's QueueKeys) */
  job(id: string): string {
    return `${this.prefix}:${this.queue}:${id}`;
  }
}
