import { assert, layer } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import { AppConfig } from "../../src/Config/AppConfig.ts"
import { QueueName } from "../../src/Domain/Ids.ts"
import { EngineRepo } from "../../src/Engine/EngineRepo.ts"
import { ClaimSql } from "../../src/Sql/Database.ts"
import { jobRequest, setupProject } from "../support/fixtures.ts"
import { testClaim } from "../support/engine.ts"
import { clientFor, TestApp } from "../support/TestApp.ts"

// docs/adr/0003-asynchronous-claim-commit.md: a claim commits without waiting for its WAL to be
// flushed; every other write still waits. Observed through the WAL fsyncs PostgreSQL counts per
// backend, on a pool of one connection so every statement below runs on the backend whose
// counters are read.
layer(TestApp(), { timeout: 60_000, excludeTestServices: true })("claim commit", (it) => {
  it.effect("a claim commits without flushing the WAL, and only the claim", () =>
    Effect.gen(function*() {
      const config = yield* AppConfig
      const url = Option.getOrUndefined(config.databaseUrl)
      if (url === undefined) return yield* Effect.die(new Error("the test app has a database URL"))
      const { projectId, tokens } = yield* setupProject("claim commit")
      const admin = yield* clientFor(tokens.admin)
      yield* admin.queues.create({ params: { projectId }, payload: { name: QueueName.make("commits") } })
      const producer = yield* clientFor(tokens.producer)
      // Its kind has no in-process handler, so only the claims below take it.
      const jobs = yield* Effect.forEach([1, 2, 3], () => producer.jobs.enqueue({ params: { projectId }, payload: jobRequest("commits") }))

      yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const engine = yield* EngineRepo
        const fsyncs = Effect.gen(function*() {
          // Backend statistics reach the shared view when the backend next goes idle.
          yield* sql`SELECT pg_stat_force_next_flush()`
          yield* sql`SELECT 1`
          const rows = yield* sql<{ readonly n: number }>`
            SELECT coalesce(sum(fsyncs), 0)::int AS n FROM pg_stat_get_backend_io(pg_backend_pid()) WHERE object = 'wal'`
          return rows[0]?.n ?? 0
        })
        const claim = engine.claim(testClaim(["email.send"], 1, { projectId, leaseMs: 30_000 }))

        // The control: this connection's synchronous commits show in the counter. Several, because a
        // commit whose WAL another backend happens to flush first (group commit) does no fsync of its own.
        const start = yield* fsyncs
        const ids = jobs.map((job) => job.id)
        for (let i = 0; i < 5; i++) yield* sql`UPDATE jobs SET updated_at = now() WHERE id IN ${sql.in(ids)}`
        const beforeClaims = yield* fsyncs
        assert.isAtLeast(beforeClaims - start, 1, "synchronous commits fsync the WAL")

        const claimed = [...(yield* claim), ...(yield* claim), ...(yield* claim)]
        const afterClaims = yield* fsyncs
        assert.sameMembers(claimed.map((job) => job.id), ids)
        assert.strictEqual(afterClaims - beforeClaims, 0, "three claims, no WAL fsync")
        // The setting was the claim transaction's own: the connection still commits synchronously.
        const [setting] = yield* sql<{ readonly value: string }>`SELECT current_setting('synchronous_commit') AS value`
        assert.strictEqual(setting?.value, "on")

        const done = yield* engine.complete(claimed.map((job) => ({ id: job.id, token: job.lease_token, result: null })), "test")
        assert.strictEqual(done.length, 3)
      }).pipe(
        // Fresh: the memoised EngineRepo.layer would be the app's own, on the app's pools. Here the
        // claim pool is the same one connection.
        Effect.provide(Layer.fresh(EngineRepo.layer).pipe(
          Layer.provideMerge(Layer.effect(ClaimSql, Effect.gen(function*() {
            return yield* SqlClient.SqlClient
          }))),
          Layer.provideMerge(PgClient.layer({ url, maxConnections: 1 }))
        )),
        Effect.orDie
      )

      const viewer = yield* clientFor(tokens.viewer)
      for (const job of jobs) {
        const stored = yield* viewer.jobs.get({ params: { projectId, jobId: job.id } })
        assert.strictEqual(stored.state, "succeeded")
        assert.strictEqual(stored.attempt, 1)
      }
    }))
})
