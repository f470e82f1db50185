import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { QueueName } from "../../src/Domain/Ids.ts"
import { EngineRepo } from "../../src/Engine/EngineRepo.ts"
import { setupProject } from "../support/fixtures.ts"
import { testClaim } from "../support/engine.ts"
import { insertSucceededJobs, readsOfIndex } from "../support/stats.ts"
import { clientFor, TestApp } from "../support/TestApp.ts"

// Found by the retained-history benchmark (issue #6): once ANALYZE had seen a table of finished
// jobs and no running one, the planner estimated one running job and found the jobs of a
// completion batch by walking the whole `jobs_running_lease` index (every running job, plus the
// dead entries of earlier versions) instead of probing `jobs_pkey`: 16 ms per batch of 1,000 at
// 1,000 running jobs, and the drain fell to 0.6x of its empty-table rate. The statements that act
// for a lease holder (complete, fail, heartbeat, release) now match the lease token alone, which
// migration 0012 ties to the running state, so that index does not apply to them.
const running = 2000

layer(TestApp({ maintenanceIntervalMs: 3_600_000 }), { timeout: 120_000, excludeTestServices: true })(
  "regression: lease holders' statements walk every running job",
  (it) => {
    it.effect("with statistics that saw no running job, each statement reads its jobs by primary key", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const engine = yield* EngineRepo
        const { projectId, tokens } = yield* setupProject("running index")
        const admin = yield* clientFor(tokens.admin)
        yield* admin.queues.create({ params: { projectId }, payload: { name: QueueName.make("hot") } })
        yield* insertSucceededJobs(projectId, "hot", "ext.history", 20_000)
        yield* sql`
          INSERT INTO jobs (id, project_id, queue, kind, payload, priority, state, run_at, max_attempts, timeout_ms)
          SELECT gen_random_uuid(), ${projectId}, 'hot', 'ext.stats', '{}', 2, 'available', now(), 3, 60000
          FROM generate_series(1, ${running})`
        yield* sql.unsafe("ANALYZE jobs")
        // No handler runs `ext.stats`, so these stay running under the leases taken here.
        const claimed = yield* engine.claim(testClaim(["ext.stats"], running))
        assert.lengthOf(claimed, running)
        const [done, failed, extended, released] = claimed.map((job) => ({ id: job.id, token: job.lease_token }))
        if (done === undefined || failed === undefined || extended === undefined || released === undefined) {
          return assert.fail("claim returned too few jobs")
        }

        const measure = <A>(statement: Effect.Effect<A>) => readsOfIndex("jobs_running_lease", sql, statement)

        const outcomes = {
          complete: yield* measure(engine.complete([{ ...done, result: { ok: true } }], "test")),
          fail: yield* measure(engine.fail([{ ...failed, error: { message: "boom" }, delay_ms: 1000 }], "test", "failed")),
          heartbeat: yield* measure(engine.heartbeat([extended], 60_000, undefined)),
          release: yield* measure(engine.release([released], "test"))
        }
        for (const [name, { read }] of Object.entries(outcomes)) {
          assert.isTrue(read < 100n, `${name} read ${read} entries of jobs_running_lease for one job`)
        }
        assert.lengthOf(outcomes.complete.result, 1)
        assert.lengthOf(outcomes.fail.result, 1)
        assert.lengthOf(outcomes.heartbeat.result, 1)
        assert.strictEqual(outcomes.release.result, 1)

        const states = yield* sql<{ readonly id: string; readonly state: string }>`
          SELECT id::text AS id, state FROM jobs WHERE id IN (${done.id}, ${failed.id}, ${extended.id}, ${released.id})`
        const stateOf = new Map(states.map((row) => [row.id, row.state]))
        assert.strictEqual(stateOf.get(done.id), "succeeded")
        assert.strictEqual(stateOf.get(failed.id), "retrying")
        assert.strictEqual(stateOf.get(extended.id), "running")
        assert.strictEqual(stateOf.get(released.id), "available")

        // A stale token still moves nothing: the lease check is all that guards these statements.
        const again = yield* engine.complete([{ ...done, result: null }], "test")
        assert.lengthOf(again, 0)
      }))
  }
)
