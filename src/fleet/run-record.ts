// What the fleet keeps about a submission besides BullMQ's jobs (docs/fleet.md "What is stored"): per
// corpus name, the number of its latest run and each run's meta (when, how many files and bytes, how many
// queued and already known); per run, one member record per file found — its identity, the job that
// holds (or will hold) its result, or the result itself when no worker was needed (skipped, unreadable).
// Never any file content. Records are small JSON strings in Redis hashes; both expire with the jobs.
import type { Redis } from 'ioredis';
import { InputError } from '../common/errors.js';
import type { ScanResult } from '../scan/results.js';
import type { FleetKeys } from './job-keys.js';

/** One file of a run. */
export interface Member {
  /** the path as given to submit */
  file: string;
  resolved: string;
  size: number;
  mtimeMs: number;
  /** detected format, null when no worker was needed */
  format: string | null;
  /** the BullMQ job holding the result (queued by this run or an earlier one), or null */
  job: string | null;
  /** true when the job was already there at submission (an unchanged file: not audited again) */
  known: boolean;
  /** a result settled at submission (skipped, unreadable, a listing problem), or null */
  result: ScanResult | null;
}

export interface RunMeta {
  name: string;
  run: number;
  /** ms since the epoch */
  submittedAt: number;
  files: number;
  bytes: number;
  /** new file jobs queued by this run, and the shard jobs under them */
  queued: number;
  shardJobs: number;
  /** files whose job an earlier submission made (not audited again) */
  known: number;
  /** results settled at submission: skipped, unreadable, listing problems */
  settled: number;
  /** the run's parent job (BullMQ FlowProducer) */
  parentJob: string;
}

const META_FIELD = (run: number): string => `meta:${run}`;
const LATEST_FIELD = 'latest';
/** Fields per HSET / HSCAN call. */
const BATCH = 1000;

/** The next run number of a corpus (atomic: two submitters never share one). */
export async function nextRun(redis: Redis, keys: FleetKeys, name: string): Promise<number> {
  return redis.hincrby(keys.corpus(name), 'runs', 1);
}

/** Store a run's members, then its meta and make it the corpus's latest; both expire after keepSeconds. */
export async function saveRun(redis: Redis, keys: FleetKeys, meta: RunMeta, members: readonly Member[], keepSeconds: number): Promise<void> {
  const mkey = keys.members(meta.name, meta.run);
  let batch: string[] = [];
  const flush = async (): Promise<void> => {
    if (batch.length) await redis.hset(mkey, ...batch);
    batch = [];
  };
  for (let i = 0; i < members.length; i++) {
    batch.push(String(i), JSON.stringify(members[i]));
    if (batch.length >= 2 * BATCH) await flush();
  }
  await flush();
  const ckey = keys.corpus(meta.name);
  await redis
    .multi()
    .hset(ckey, META_FIELD(meta.run), JSON.stringify(meta), LATEST_FIELD, String(meta.run))
    .expire(ckey, keepSeconds)
    .expire(mkey, keepSeconds)
    .exec();
}

/** The meta of a run (the latest when `run` is undefined); InputError when the corpus has none. */
export async function loadMeta(redis: Redis, keys: FleetKeys, name: string, run?: number): Promise<RunMeta> {
  const ckey = keys.corpus(name);
  const r = run ?? Number(await redis.hget(ckey, LATEST_FIELD));
  const raw = r > 0 ? await redis.hget(ckey, META_FIELD(r)) : null;
  if (raw === null) throw new InputError(`fleet: no corpus named ${JSON.stringify(name)}${run ? ` with a run ${run}` : ''} in this queue (submitted under another --prefix, or expired?)`);
  return JSON.parse(raw) as RunMeta;
}

/** Every member of a run, in submission order (the member fields are their ordinals). */
export async function loadMembers(redis: Redis, keys: FleetKeys, meta: RunMeta): Promise<Member[]> {
  const mkey = keys.members(meta.name, meta.run);
  const byAt = new Map<number, Member>(); // HSCAN may return a field twice: keyed, each member once
  let cursor = '0';
  do {
    const [next, flat] = await redis.hscan(mkey, cursor, 'COUNT', BATCH);
    cursor = next;
    for (let i = 0; i + 1 < flat.length; i += 2) byAt.set(Number(flat[i]), JSON.parse(flat[i + 1]!) as Member);
  } while (cursor !== '0');
  return [...byAt.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
}
