import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Option } from "effect"
import { AppConfig } from "../Config/AppConfig.ts"
import { startEmbeddedPostgres } from "./EmbeddedPostgres.ts"

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
      applicationName: "foreman"
    })
  })
)
