import { Context, Deferred, Duration, Effect, Layer, Ref } from "effect"
import { SqlClient } from "effect/sql"
import { currentVersion, loadMigrations } from "../Sql/Migrator.ts"
import type { Readiness } from "./Api.ts"
import { Notifier } from "../Engine/Notifier.ts"
import { traced } from "../Observability/Tracing.ts"

/**
 * What `/readyz` reports. `draining` flips when the service begins shutting
 * down, so load balancers stop sending traffic before listeners close.
 */
export class ReadinessProbe extends Context.Service<ReadinessProbe, {
  readonly check: Effect.Effect<Readiness>
  readonly beginDrain: Effect.Effect<void>
  /** Completes when shutdown begins: long-lived responses (event streams) end so the listener can close. */
  readonly drainStarted: Effect.Effect<void>
}>()("foreman/ReadinessProbe") {
  static readonly layer = Layer.effect(
    ReadinessProbe,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const notifier = yield* Notifier
      const expected = (yield* loadMigrations()).reduce((max, m) => Math.max(max, m.version), 0)
      const draining = yield* Ref.make(false)
      const drainSignal = yield* Deferred.make<void>()
      const beginDrain = Ref.set(draining, true).pipe(Effect.andThen(Deferred.succeed(drainSignal, undefined)), Effect.asVoid)
      yield* Effect.addFinalizer(() => beginDrain)

      const database = sql`SELECT 1`.pipe(
        Effect.timeout(Duration.seconds(2)),
        Effect.as("ok" as const),
        Effect.orElseSucceed(() => "failing" as const)
      )
      const migrations = currentVersion().pipe(
        Effect.provideService(SqlClient.SqlClient, sql),
        Effect.timeout(Duration.seconds(2)),
        // Ahead is fine: during a rolling deploy the new version migrates first, and migrations
        // stay compatible with the version before them. Behind means this schema is too old.
        Effect.map((version) => version >= expected ? "ok" as const : "failing" as const),
        Effect.orElseSucceed(() => "failing" as const)
      )

      const check = Effect.gen(function*() {
        const [db, mig, drain, listening] = yield* Effect.all(
          [database, migrations, Ref.get(draining), notifier.listening],
          { concurrency: "unbounded" }
        )
        const checks = {
          database: db,
          migrations: mig,
          listener: listening ? "ok" as const : "failing" as const,
          shutdown: drain ? "failing" as const : "ok" as const
        }
        const ready = Object.values(checks).every((status) => status === "ok")
        return { status: ready ? "ready" as const : "not_ready" as const, checks }
      }).pipe(traced("Readiness.check"))

      return ReadinessProbe.of({ check, beginDrain, drainStarted: Deferred.await(drainSignal) })
    })
  )
}
