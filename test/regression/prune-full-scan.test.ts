import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { QueueName } from "../../src/Domain/Ids.ts"
import { EngineRepo } from "../../src/Engine/EngineRepo.ts"
import { setupProject } from "../support/fixtures.ts"
import { insertSucceededJobs } from "../support/stats.ts"
import { clientFor, TestApp } from "../support/TestApp.ts"

// Found by the retained-history benchmark (issue #6): with 1,000,000 finished jobs kept and none
// past their queue's retention, the maintenance loop's pruning statement read the whole `jobs`
// table (a sequential scan, about a second of CPU) every round, and the engine drained at half
// its empty-table rate. Fixed in EngineRepo.pruneFinished: queue by queue, oldest first, along
// the `jobs_finished` index, so a round with nothing due reads next to nothing.
layer(TestApp({ maintenanceIntervalMs: 3_600_000 }), { timeout: 120_000, excludeTestServices: true })(
  "regression: pruning finished jobs scans the table",
  (it) => {
    it.effect("with 50,000 finished jobs inside retention, a pruning round deletes nothing and reads neither jobs nor events sequentially", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const engine = yield* EngineRepo
        const { projectId, tokens } = yield* setupProject("prune scan")
        const admin = yield* clientFor(tokens.admin)
        yield* admin.queues.create({ params: { projectId }, payload: { name: QueueName.make("kept"), retention_seconds: 86_400 } })
        yield* insertSucceededJobs(projectId, "kept", "noop", 50_000)
        yield* sql.unsafe("ANALYZE jobs")
        // Rows read by sequential scans of jobs and job_events, as the statistics views show them.
        const seqRead = sql<{ readonly relname: string; readonly n: string }>`
          SELECT relname, seq_tup_read::text AS n FROM pg_stat_user_tables WHERE relname IN ('jobs', 'job_events')`.pipe(
          Effect.map((rows) => new Map(rows.map((row) => [row.relname, BigInt(row.n)])))
        )
        yield* sql`SELECT pg_stat_clear_snapshot()`
        const before = yield* seqRead
        // Pinned to one connection that reports its statistics as soon as it is idle.
        const pruned = yield* sql.withTransaction(Effect.gen(function*() {
          const n = yield* engine.pruneFinished(1000)
          yield* sql`SELECT pg_stat_force_next_flush()`
          return n
        }))
        assert.strictEqual(pruned, 0)
        const after = yield* Effect.gen(function*() {
          yield* Effect.sleep("200 millis")
          yield* sql`SELECT pg_stat_clear_snapshot()`
          return yield* seqRead
        })
        for (const table of ["jobs", "job_events"]) {
          const read = (after.get(table) ?? 0n) - (before.get(table) ?? 0n)
          assert.isTrue(read < 1000n, `pruning read ${read} rows of ${table} sequentially`)
        }
        const [kept] = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM jobs WHERE queue = 'kept' AND project_id = ${projectId}`
        assert.strictEqual(kept?.n, 50000)
      }))
  }
)
