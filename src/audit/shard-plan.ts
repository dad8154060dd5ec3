// Shard planner (ARCHITECTURE.md "Shard planner + workers"): cuts the audited leaf range [0, nLeaves)
// into contiguous shards of whole leaf pages (512 pfns each) for a pool of `jobs` workers. Aim: about
// SHARDS_PER_WORKER shards per worker so a slow shard does not idle the others, but never shards smaller
// than MIN_SHARD_LEAVES leaves (a shard costs a task message, a file open and a result message). Shards
// are as even as possible: sizes differ by at most one leaf. Pure.

/** Target number of shards per worker thread. */
export const SHARDS_PER_WORKER = 4;
/** Smallest shard, in leaves (64 leaves = 32768 pfns = 128 MiB of guest memory). */
export const MIN_SHARD_LEAVES = 64;

/** Leaves [firstLeaf, endLeaf) of shard `index`. */
export interface Shard {
  index: number;
  firstLeaf: number;
  endLeaf: number;
}

export function planShards(nLeaves: number, jobs: number): Shard[] {
  if (!Number.isInteger(nLeaves) || nLeaves < 0) throw new RangeError(`planShards: nLeaves must be a count, got ${nLeaves}`);
  if (!Number.isInteger(jobs) || jobs < 1) throw new RangeError(`planShards: jobs must be an integer ≥ 1, got ${jobs}`);
  if (nLeaves === 0) return [];
  const count = Math.max(1, Math.min(jobs * SHARDS_PER_WORKER, Math.floor(nLeaves / MIN_SHARD_LEAVES)));
  const base = Math.floor(nLeaves / count);
  const extra = nLeaves % count; // the first `extra` shards get one more leaf
  const shards: Shard[] = [];
  let first = 0;
  for (let index = 0; index < count; index++) {
    const size = base + (index < extra ? 1 : 0);
    shards.push({ index, firstLeaf: first, endLeaf: first + size });
    first += size;
  }
  return shards;
}
