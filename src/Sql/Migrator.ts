import { Effect, Schema } from "effect"
import { SqlClient, SqlSchema } from "effect/sql"
import { readdir, readFile } from "node:fs/promises"
import path from "node:path"
import { appRoot } from "../Config/AppRoot.ts"
import { splitStatements } from "./SplitStatements.ts"

export const migrationsDir = path.join(appRoot, "migrations")

export interface MigrationFile {
  readonly version: number
  readonly name: string
  readonly up: string
  readonly down: string
}

// Any constant works; it only has to be the same in every instance so that two
// instances starting together apply migrations one after the other.
const migrationLockKey = 7_401_001

/** Reads `NNNN_name.up.sql` / `NNNN_name.down.sql` pairs; a missing down file is an error. */
export const loadMigrations = Effect.fn("Migrator.load")(function*(dir: string = migrationsDir) {
  const files = yield* Effect.promise(() => readdir(dir))
  const ups = files.filter((file) => /^\d{4}_[a-z0-9_]+\.up\.sql$/.test(file)).sort()
  return yield* Effect.forEach(ups, (file) =>
    Effect.promise(async (): Promise<MigrationFile> => {
      const base = file.slice(0, -".up.sql".length)
      const [version, ...rest] = base.split("_")
      return {
        version: Number(version),
        name: rest.join("_"),
        up: await readFile(path.join(dir, file), "utf8"),
        down: await readFile(path.join(dir, `${base}.down.sql`), "utf8")
      }
    }))
})

const AppliedRow = Schema.Struct({ version: Schema.Number, name: Schema.String })

// Under the migration lock: `CREATE TABLE IF NOT EXISTS` is not safe against a concurrent
// create (both see no table, one fails on the catalog's unique index), and instances of a
// deployment start at the same time.
const ensureTable = (sql: SqlClient.SqlClient) =>
  sql.withTransaction(Effect.gen(function*() {
    yield* sql`SELECT pg_advisory_xact_lock(${migrationLockKey})`
    yield* sql`CREATE TABLE IF NOT EXISTS foreman_schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`
  }))

const appliedVersions = (sql: SqlClient.SqlClient) =>
  SqlSchema.findAll({
    Request: Schema.Void,
    Result: AppliedRow,
    execute: () => sql`SELECT version, name FROM foreman_schema_migrations ORDER BY version`
  })(undefined)

const runScript = (sql: SqlClient.SqlClient, script: string) =>
  Effect.forEach(splitStatements(script), (statement) => sql.unsafe(statement), { discard: true })

/** Applies every pending migration, each in its own transaction, under an advisory lock. */
export const migrateUp = Effect.fn("Migrator.up")(function*(migrations: ReadonlyArray<MigrationFile>) {
  const sql = yield* SqlClient.SqlClient
  yield* ensureTable(sql)
  const applied: Array<MigrationFile> = []
  for (const migration of migrations) {
    const ran = yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`SELECT pg_advisory_xact_lock(${migrationLockKey})`
      const done = yield* sql`SELECT 1 FROM foreman_schema_migrations WHERE version = ${migration.version}`
      if (done.length > 0) return false
      yield* runScript(sql, migration.up)
      yield* sql`INSERT INTO foreman_schema_migrations (version, name) VALUES (${migration.version}, ${migration.name})`
      return true
    }))
    if (ran) {
      applied.push(migration)
      yield* Effect.logInfo("migration applied").pipe(
        Effect.annotateLogs({ version: migration.version, name: migration.name })
      )
    }
  }
  return applied
})

/** Reverts the most recently applied migration with its down file. */
export const migrateDown = Effect.fn("Migrator.down")(function*(migrations: ReadonlyArray<MigrationFile>) {
  const sql = yield* SqlClient.SqlClient
  yield* ensureTable(sql)
  return yield* sql.withTransaction(Effect.gen(function*() {
    yield* sql`SELECT pg_advisory_xact_lock(${migrationLockKey})`
    const applied = yield* appliedVersions(sql)
    const last = applied.at(-1)
    if (last === undefined) return undefined
    const migration = migrations.find((m) => m.version === last.version)
    if (migration === undefined) {
      return yield* Effect.die(new Error(`no down file for applied migration ${last.version}_${last.name}`))
    }
    yield* runScript(sql, migration.down)
    yield* sql`DELETE FROM foreman_schema_migrations WHERE version = ${migration.version}`
    return migration
  }))
})

/** The highest applied version, or 0 on an empty database. */
export const currentVersion = Effect.fn("Migrator.currentVersion")(function*() {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{ readonly version: number | null }>`
    SELECT max(version)::int AS version FROM foreman_schema_migrations`.pipe(
    Effect.catchTag("SqlError", () => Effect.succeed([{ version: 0 }]))
  )
  return rows[0]?.version ?? 0
})
