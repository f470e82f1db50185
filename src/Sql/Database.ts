import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Option } from "effect"
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
 * The PostgreSQL client: `DATABASE_URL` when set, otherwise an embedded
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
    return PgClient.layer({
      url,
      maxConnections: config.databasePoolSize,
      applicationName: applicationName(config.instanceId)
    })
  })
)
