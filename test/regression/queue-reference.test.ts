import { assert, layer } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { SqlClient, SqlError } from "effect/sql"
import type { ProjectId } from "../../src/Domain/Ids.ts"
import { createQueue, jobRequest, setupProject } from "../support/fixtures.ts"
import { clientFor, TestApp } from "../support/TestApp.ts"

// Migration 0013 replaced the jobs -> queues foreign key, whose per-row check was about a tenth
// of the enqueue statement's PostgreSQL CPU (issue #6), with triggers that check once per
// statement. The database must still guarantee everything the key did, whatever the code does.
const insert = (sql: SqlClient.SqlClient, rows: ReadonlyArray<{ readonly project: ProjectId; readonly queue: string }>) =>
  sql`
    INSERT INTO jobs (id, project_id, queue, kind, payload, priority, state, run_at, max_attempts, timeout_ms)
    SELECT gen_random_uuid(), r.project_id, r.queue, 'ext.reference', '{}', 2, 'available', now(), 3, 60000
    FROM jsonb_to_recordset(${JSON.stringify(rows.map((row) => ({ project_id: row.project, queue: row.queue })))}::jsonb)
      AS r(project_id uuid, queue text)`

// The reason's tag, and the message PostgreSQL gave.
const failure = (effect: Effect.Effect<unknown, SqlError.SqlError>) =>
  Effect.map(Effect.flip(effect), (error) => ({
    tag: error.reason._tag,
    message: error.reason.cause instanceof Error ? error.reason.cause.message : String(error.reason.cause)
  }))

const jobsIn = (sql: SqlClient.SqlClient, project: ProjectId, queue?: string) =>
  Effect.map(
    sql<{ readonly n: number }>`
      SELECT count(*)::int AS n FROM jobs
      WHERE project_id = ${project} ${queue === undefined ? sql`` : sql`AND queue = ${queue}`}`,
    (rows) => rows[0]?.n ?? -1
  )

layer(TestApp({ maintenanceIntervalMs: 3_600_000 }), { timeout: 120_000, excludeTestServices: true })(
  "regression: a job's queue reference, checked per statement",
  (it) => {
    it.effect("refuses jobs naming another project's queue or none, and never half-inserts a statement", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const a = yield* setupProject("reference a")
        const b = yield* setupProject("reference b")
        yield* createQueue(a.projectId, "mine")
        yield* createQueue(b.projectId, "theirs")

        yield* insert(sql, [{ project: a.projectId, queue: "mine" }, { project: a.projectId, queue: "mine" }])
        assert.strictEqual(yield* jobsIn(sql, a.projectId), 2)

        const foreign = yield* failure(insert(sql, [{ project: a.projectId, queue: "theirs" }]))
        assert.strictEqual(foreign.tag, "ConstraintError")
        assert.match(foreign.message, /a job must reference a queue of its own project/)

        const mixed = yield* failure(insert(sql, [
          { project: a.projectId, queue: "mine" },
          { project: a.projectId, queue: "missing" },
          { project: a.projectId, queue: "mine" }
        ]))
        assert.strictEqual(mixed.tag, "ConstraintError")
        assert.strictEqual(yield* jobsIn(sql, a.projectId), 2)

        const moved = yield* failure(sql`UPDATE jobs SET queue = 'theirs', project_id = ${b.projectId} WHERE project_id = ${a.projectId}`)
        assert.match(moved.message, /a job's project and queue never change/)
        const renamed = yield* failure(sql`UPDATE queues SET name = 'renamed' WHERE project_id = ${a.projectId}`)
        assert.match(renamed.message, /never change/)
        assert.strictEqual(yield* jobsIn(sql, a.projectId, "mine"), 2)
      }))

    it.effect("deleting a queue deletes its jobs; an uncommitted job's queue cannot be deleted meanwhile", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const { projectId, tokens } = yield* setupProject("reference delete")
        yield* createQueue(projectId, "gone")
        yield* createQueue(projectId, "kept")
        const producer = yield* clientFor(tokens.producer)
        yield* producer.jobs.enqueueBatch({
          params: { projectId },
          payload: { jobs: [jobRequest("gone"), jobRequest("gone"), jobRequest("kept")] }
        })

        // The inserting transaction holds its queue until it ends, as the foreign key's lock did.
        const holding = yield* Effect.forkChild(sql.withTransaction(Effect.andThen(
          insert(sql, [{ project: projectId, queue: "gone" }]),
          Effect.sleep("1 second")
        )))
        yield* Effect.sleep("200 millis")
        const blocked = yield* failure(sql.withTransaction(Effect.andThen(
          sql`SET LOCAL lock_timeout = '100ms'`,
          sql`DELETE FROM queues WHERE project_id = ${projectId} AND name = 'gone'`
        )))
        assert.strictEqual(blocked.tag, "LockTimeoutError")
        yield* Fiber.join(holding)
        assert.strictEqual(yield* jobsIn(sql, projectId, "gone"), 3)

        yield* sql`DELETE FROM queues WHERE project_id = ${projectId} AND name = 'gone'`
        assert.strictEqual(yield* jobsIn(sql, projectId, "gone"), 0)
        assert.strictEqual(yield* jobsIn(sql, projectId, "kept"), 1)

        // A project's deletion cascades to its queues, and from them to the jobs.
        yield* sql`DELETE FROM projects WHERE id = ${projectId}`
        assert.strictEqual(yield* jobsIn(sql, projectId), 0)
      }))
  }
)
