import { Effect } from "effect"
import { SqlClient } from "effect/sql"

/** Entries of `index` read so far, as the statistics views show them (a fresh snapshot each time). */
export const indexReads = (index: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`SELECT pg_stat_clear_snapshot()`
    const [row] = yield* sql<{ readonly n: string }>`
      SELECT idx_tup_read::text AS n FROM pg_stat_user_indexes WHERE indexrelname = ${index}`
    return BigInt(row?.n ?? "0")
  }).pipe(Effect.orDie)

/**
 * Runs `statement` pinned to one connection of `client` that reports its statistics as soon as it
 * is idle, and returns its result with how many entries of `index` (of all of them, for a list)
 * were read meanwhile.
 */
export const readsOfIndex = <A>(index: string | ReadonlyArray<string>, client: SqlClient.SqlClient, statement: Effect.Effect<A>) =>
  Effect.gen(function*() {
    const indexes = typeof index === "string" ? [index] : index
    const total = Effect.map(Effect.forEach(indexes, indexReads), (reads) => reads.reduce((sum, n) => sum + n, 0n))
    const before = yield* total
    const result = yield* client.withTransaction(Effect.tap(statement, () => client`SELECT pg_stat_force_next_flush()`))
    yield* Effect.sleep("200 millis")
    return { result, read: (yield* total) - before }
  }).pipe(Effect.orDie)

/**
 * Inserts `count` succeeded jobs straight into `jobs` (no events), finished one second apart
 * going back from now: the history the regression tests build before running ANALYZE.
 */
export const insertSucceededJobs = (projectId: string, queue: string, kind: string, count: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      INSERT INTO jobs (id, project_id, queue, kind, payload, priority, state, run_at, attempt, max_attempts,
                        timeout_ms, created_at, updated_at, started_at, finished_at, result)
      SELECT gen_random_uuid(), ${projectId}, ${queue}, ${kind}, '{}', 2, 'succeeded', now(), 1, 1,
             60000, now(), now(), now(), now() - g * interval '1 second', 'null'::jsonb
      FROM generate_series(1, ${count}) AS g`
  }).pipe(Effect.orDie)
