import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Option, type Redacted } from "effect"
import * as Reactivity from "effect/reactivity/Reactivity"
import type { SqlClient } from "effect/sql"
import { AppConfig } from "../Config/AppConfig.ts"
import { startEmbeddedPostgres } from "./EmbeddedPostgres.ts"

/**
 * The `application_name` of this instance's connections: `foreman <instance id>`,
 * as PostgreSQL stores it (printable ASCII, at most 63 bytes). The pool metrics
 * find the instance's connections in `pg_stat_activity` by it.
 */
export const applicationName = (instanceId: string): string =>
  `foreman ${instanceId}`.replace(/[^\x20-\x7e]/g, "?").slice(0, 63)

/**
 * The pool that claims run on (`FOREMAN_CLAIM_POOL_SIZE` connections, opened on
 * demand), whose sessions plan without bitmap scans. A claim walks the
 * `jobs_claim` index in order and stops at its limit. When the statistics
 * expect few claimable jobs (a backlog enqueued since the last ANALYZE, on a
 * new table or one whose history is all finished jobs), the planner otherwise
 * prefers a bitmap scan of every runnable job followed by a sort: each claim
 * then costs time in proportion to the whole backlog (docs/adr/0004).
 */
export class ClaimSql extends Context.Service<ClaimSql, SqlClient.SqlClient>()("foreman/ClaimSql") {}

const claimPool = (url: Redacted.Redacted, maxConnections: number, name: string) =>
  Layer.effect(
    ClaimSql,
    PgClient.make({
      url,
      maxConnections,
      applicationName: name,
      startupParameters: { enable_bitmapscan: "off" }
    })
  ).pipe(Layer.provide(Reactivity.layer))

/**
 * The PostgreSQL clients: `DATABASE_URL` when set, otherwise an embedded
 * server whose data lives under `FOREMAN_EMBEDDED_PG_DIR` and survives restarts.
 */
export const DatabaseLive = Layer.unwrap(
  Effect.gen(function*() {
    const config = yield* AppConfig
    const url = Option.isSome(config.databaseUrl)
      ? config.databaseUrl.value
      : yield* startEmbeddedPostgres({
        dataDir: config.embeddedDataDir,
        port: config.embeddedPort,
        persistent: true
      })
    const name = applicationName(config.instanceId)
    return Layer.merge(
      // Up to four statements of different fibers share a connection's round trip (pipelining,
      // docs/adr/0005); transactions and LISTEN still take a connection of their own.
      PgClient.layer({ url, maxConnections: config.databasePoolSize, applicationName: name, multiplex: true, multiplexConcurrency: 4 }),
      claimPool(url, config.claimPoolSize, name)
    )
  })
)
