import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import { queueName, setupProject } from "../support/fixtures.ts"
import { clientFor, raw, TestApp } from "../support/TestApp.ts"
import { waitFor } from "../support/waitFor.ts"

// Polling is set to a minute, so a job that starts within a second was woken by
// LISTEN/NOTIFY (or by the re-listen after a reconnect), never by a poll.
layer(
  TestApp({ handlerModules: ["./test/support/handlers.ts"], pollIntervalMs: 60_000, maintenanceIntervalMs: 60_000 }),
  { excludeTestServices: true }
)("LISTEN/NOTIFY wake-ups", (it) => {
  it.effect("wake idle workers, and keep working after the listening connection is killed", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("notify")
      const admin = yield* clientFor(project.tokens.admin)
      const queue = yield* admin.queues.create({ params: { projectId: project.projectId }, payload: { name: queueName("q") } })
      const run = Effect.gen(function*() {
        const job = yield* admin.jobs.enqueue({
          params: { projectId: project.projectId },
          payload: { queue: queue.name, kind: "noop", payload: {} }
        })
        const started = Date.now()
        yield* waitFor(
          admin.jobs.get({ params: { projectId: project.projectId, jobId: job.id } }),
          (current) => current.state === "succeeded",
          { timeoutMs: 10_000, label: "job succeeded" }
        )
        return Date.now() - started
      })

      assert.isBelow(yield* run, 1000, "woken by NOTIFY")

      const sql = yield* SqlClient.SqlClient
      const killed = yield* sql<{ readonly pid: number }>`
        SELECT pid FROM pg_stat_activity
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE 'LISTEN%'`
      assert.isAtLeast(killed.length, 1, "the listening connection is visible")
      yield* sql`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE 'LISTEN%'`

      // Enqueued while the listener is down: picked up once it reconnects (about a second).
      assert.isBelow(yield* run, 5000, "picked up after the reconnect")
      // /readyz names the listener; ok once it has reconnected.
      const readiness = yield* waitFor(
        raw("GET", "/readyz"),
        (response) => response.status === 200,
        { timeoutMs: 5000, label: "ready again after the reconnect" }
      )
      assert.deepInclude(readiness.body, { status: "ready" })
      assert.include(readiness.text, '"listener":"ok"')

      yield* waitFor(
        sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
                                    WHERE datname = current_database() AND query ILIKE 'LISTEN%'`,
        (rows) => (rows[0]?.n ?? 0) > 0,
        { timeoutMs: 5000, label: "listening again" }
      )
      // And notifications flow again.
      assert.isBelow(yield* run, 1000, "woken by NOTIFY after the reconnect")
    }))
})

layer(
  TestApp({ handlerModules: ["./test/support/handlers.ts"], pollIntervalMs: 60_000, maintenanceIntervalMs: 60_000 }),
  { excludeTestServices: true }
)("LISTEN/NOTIFY and paused queues", (it) => {
  it.effect("an enqueue into a paused queue wakes nobody; resuming it wakes the engine", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("notify-paused")
      const admin = yield* clientFor(project.tokens.admin)
      const projectId = project.projectId
      const queue = yield* admin.queues.create({ params: { projectId }, payload: { name: queueName("p"), paused: true } })
      const job = yield* admin.jobs.enqueue({ params: { projectId }, payload: { queue: queue.name, kind: "noop", payload: {} } })
      const sql = yield* SqlClient.SqlClient
      yield* Effect.sleep("300 millis")
      const [waiting] = yield* sql<{ readonly state: string }>`SELECT state FROM jobs WHERE id = ${job.id}`
      assert.strictEqual(waiting?.state, "available")

      const resumed = Date.now()
      yield* admin.queues.update({ params: { projectId, queueName: queue.name }, payload: { paused: false } })
      yield* waitFor(
        admin.jobs.get({ params: { projectId, jobId: job.id } }),
        (current) => current.state === "succeeded",
        { timeoutMs: 10_000, label: "job succeeded after resume" }
      )
      // Polling is a minute: only the resume's NOTIFY can have started it this soon.
      assert.isBelow(Date.now() - resumed, 1000, "woken by the resume")
    }))
})
