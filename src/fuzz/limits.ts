// The limits that make a fuzz run a failure (docs/fuzz.md: hang 5 s, RSS 512 MiB) and how a hang is
// measured, shared by the child's watchdog (child.ts) and the parent's poll (child-runner.ts).
export const MiB = 1024 * 1024;
export const KiB = 1024;
export const MS_PER_S = 1000;
export const DEFAULT_HANG_MS = 5_000;
export const DEFAULT_RSS_LIMIT = 512 * MiB;
/**
 * A run is a hang when the child's main thread has spent hangMs of CPU time on it (contention-free:
 * other processes on the machine do not make a run look longer), or when it has been going for this many
 * times hangMs of wall time (a child blocked without using CPU). Without /proc, wall time alone decides.
 */
export const WALL_BACKSTOP_FACTOR = 6;
/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, fixed at 100 by the Linux ABI). */
export const USER_HZ = 100;
/** Fields of /proc/<pid>/task/<tid>/stat after the ")" that ends comm: utime and stime (fields 14, 15). */
export const STAT_UTIME_FIELD = 11;
export const STAT_STIME_FIELD = 12;
