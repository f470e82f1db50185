import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { QueueName } from "../../src/Domain/Ids.ts"
import { EngineRepo } from "../../src/Engine/EngineRepo.ts"
import { ClaimSql } from "../../src/Sql/Database.ts"
import { setupProject } from "../support/fixtures.ts"
import { testClaim } from "../support/engine.ts"
import { readsOfIndex } from "../support/stats.ts"
import { clientFor, TestApp } from "../support/TestApp.ts"

// Found by the drain benchmark (issue #6): when the statistics expect few claimable jobs (here:
// ANALYZE ran on an empty table, then a backlog arrived), the planner chose a bitmap scan of every
// runnable job and a sort over walking `jobs_claim` in order, so each claim of 500 among 50,000
// took about 12 ms instead of under 1, and the drain ran at two thirds of its rate. Claims now run
// on a pool whose sessions plan without bitmap scans (ClaimSql, docs/adr/0004).
const backlog = 20_000

// `api`: no engine of this instance claims, so the index statistics show the test's claim alone.
layer(TestApp({ role: "api" }), { timeout: 120_000, excludeTestServices: true })("regression: claim plan on stale statistics", (it) => {
  it.effect("a claim of 10 from a backlog the statistics have not seen reads about 10 index entries, not the backlog", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const claimSql = yield* ClaimSql
      const engine = yield* EngineRepo
      const { projectId, tokens } = yield* setupProject("claim plan")
      const admin = yield* clientFor(tokens.admin)
      yield* admin.queues.create({ params: { projectId }, payload: { name: QueueName.make("backlog") } })
      yield* sql.unsafe("ANALYZE jobs")
      yield* sql`
        INSERT INTO jobs (id, project_id, queue, kind, payload, priority, state, run_at, max_attempts, timeout_ms)
        SELECT gen_random_uuid(), ${projectId}, 'backlog', 'ext.backlog', '{}', 2, 'available', now() - g * interval '1 ms', 3, 60000
        FROM generate_series(1, ${backlog}) AS g`

      const [setting] = yield* claimSql<{ readonly value: string }>`SELECT current_setting('enable_bitmapscan') AS value`
      assert.strictEqual(setting?.value, "off")
      const [general] = yield* sql<{ readonly value: string }>`SELECT current_setting('enable_bitmapscan') AS value`
      assert.strictEqual(general?.value, "on", "only the claim pool plans without bitmap scans")

      // On one claim-pool connection.
      const { result: claimed, read } = yield* readsOfIndex("jobs_claim", claimSql, engine.claim(testClaim(["ext.backlog"], 10)))
      assert.lengthOf(claimed, 10)
      // The oldest run_at first: the claim still takes the jobs in order.
      const [oldest] = yield* sql<{ readonly id: string }>`
        SELECT id::text AS id FROM jobs WHERE kind = 'ext.backlog' ORDER BY run_at, id LIMIT 1`
      assert.strictEqual(claimed[0]?.id, oldest?.id)
      assert.isTrue(read > 0n, "the claim's reads of jobs_claim were reported")
      assert.isTrue(read < 1000n, `a claim of 10 read ${read} entries of jobs_claim`)
    }))
})
