// Piscina worker entry for the audit pool (ARCHITECTURE.md "Shard planner + workers"): models one
// worker thread auditing one shard of leaf pages (src/audit/shard-reader.ts readShard) and returning the
// run-length ranges as a Float64Array (copied, not transferred: see run-audit.ts runShard).
import { readShard, type AuditTask } from '../src/audit/shard-reader.js';

export type { AuditTask } from '../src/audit/shard-reader.js';

export default async function auditShard(task: AuditTask): Promise<Float64Array> {
  return readShard(task);
}
