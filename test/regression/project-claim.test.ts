import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { QueueName } from "../../src/Domain/Ids.ts"
import { EngineRepo } from "../../src/Engine/EngineRepo.ts"
import { ClaimSql } from "../../src/Sql/Database.ts"
import { setupProject } from "../support/fixtures.ts"
import { testClaim } from "../support/engine.ts"
import { insertSucceededJobs, readsOfIndex } from "../support/stats.ts"
import { clientFor, TestApp } from "../support/TestApp.ts"

// External workers claim within their project. No index ordered one project's runnable jobs:
// the claim walked either `jobs_claim`, which orders every project's runnable jobs together (so
// another tenant's older backlog was read entry by entry before the worker's own jobs), or the
// project's every job, its history included, and sorted the runnable ones.
// Project-scoped claims now walk `jobs_claim_project` (migration 0014).
const backlog = 20_000

// `api`: no engine of this instance claims, so the index statistics show the test's claim alone.
layer(TestApp({ role: "api" }), { timeout: 120_000, excludeTestServices: true })("regression: project-scoped claims", (it) => {
  it.effect("a claim within one project reads its own jobs, not another project's older backlog", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const claimSql = yield* ClaimSql
      const engine = yield* EngineRepo
      const quiet = yield* setupProject("quiet tenant")
      const noisy = yield* setupProject("noisy tenant")
      for (const project of [quiet, noisy]) {
        const admin = yield* clientFor(project.tokens.admin)
        yield* admin.queues.create({ params: { projectId: project.projectId }, payload: { name: QueueName.make("work") } })
      }
      // The noisy tenant's backlog is older and of the same kind and priority: first in jobs_claim's order.
      yield* sql`
        INSERT INTO jobs (id, project_id, queue, kind, payload, priority, state, run_at, max_attempts, timeout_ms)
        SELECT gen_random_uuid(), ${noisy.projectId}, 'work', 'ext.shared', '{}', 2, 'available',
               now() - interval '1 hour' - g * interval '1 ms', 3, 60000
        FROM generate_series(1, ${backlog}) AS g`
      yield* sql`
        INSERT INTO jobs (id, project_id, queue, kind, payload, priority, state, run_at, max_attempts, timeout_ms)
        SELECT gen_random_uuid(), ${quiet.projectId}, 'work', 'ext.shared', '{}', 2, 'available',
               now() - g * interval '1 ms', 3, 60000
        FROM generate_series(1, 5) AS g`
      // And the quiet tenant has a history: walking its jobs by project reads all of them.
      yield* insertSucceededJobs(quiet.projectId, "work", "ext.shared", backlog)
      yield* sql.unsafe("ANALYZE jobs")

      // Every index of jobs the claim could walk; the primary key's probes by the update are the claimed jobs.
      const indexes = ["jobs_claim", "jobs_claim_project", "jobs_project_list", "jobs_project_attention", "jobs_finished"]
      const { result: claimed, read } = yield* readsOfIndex(
        indexes,
        claimSql,
        engine.claim(testClaim(["ext.shared"], 5, { projectId: quiet.projectId }))
      )

      assert.lengthOf(claimed, 5)
      assert.isTrue(claimed.every((job) => job.project_id === quiet.projectId), "only the quiet tenant's jobs")
      assert.isTrue(read > 0n, "the claim's index reads were reported")
      assert.isTrue(read < 1000n, `a claim of 5 in one project read ${read} index entries beside a backlog of ${backlog}`)
    }).pipe(Effect.orDie))
})
