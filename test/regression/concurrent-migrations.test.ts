import { assert, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { loadMigrations, migrateUp } from "../../src/Sql/Migrator.ts"
import { createTestDatabase } from "../support/TestApp.ts"

// Found by the fresh-clone CI run (multiprocess.test.ts): three instances started at once on
// an empty database, and one exited before it was ready with `duplicate key value violates
// unique constraint "pg_type_typname_nsp_index"`. The migrator created its bookkeeping table
// with `CREATE TABLE IF NOT EXISTS` before taking the migration lock, and that statement is
// not safe against a concurrent create. Fixed in src/Sql/Migrator.ts (ensureTable takes the lock).
it.effect("instances migrating an empty database at the same time all succeed, and each migration runs once", () =>
  Effect.gen(function*() {
    const migrations = yield* loadMigrations()
    for (let round = 0; round < 5; round++) {
      const url = yield* createTestDatabase
      const instance = migrateUp(migrations).pipe(
        Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 }))
      )
      const results = yield* Effect.all(Array.from({ length: 6 }, () => instance), { concurrency: "unbounded" })
      const applied = results.reduce((total, ran) => total + ran.length, 0)
      assert.strictEqual(applied, migrations.length, `round ${round}: every migration applied exactly once`)
      const rows = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        return yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM foreman_schema_migrations`
      }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })))
      assert.strictEqual(rows[0]?.n, migrations.length)
    }
  }), { timeout: 120_000 })
