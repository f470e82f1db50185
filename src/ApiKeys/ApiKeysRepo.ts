import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient, SqlSchema } from "effect/sql"
import { ApiKeyId, ProjectId } from "../Domain/Ids.ts"
import { KeyRole } from "../Domain/Role.ts"
import { traced } from "../Observability/Tracing.ts"

export const ApiKeyRow = Schema.Struct({
  id: ApiKeyId,
  project_id: Schema.NullOr(ProjectId),
  name: Schema.String,
  role: KeyRole,
  prefix: Schema.String,
  secret_hash: Schema.instanceOf(Uint8Array),
  created_at: Schema.Date,
  revoked_at: Schema.NullOr(Schema.Date)
})
export type ApiKeyRow = typeof ApiKeyRow.Type

export const NewApiKey = Schema.Struct({
  id: ApiKeyId,
  project_id: Schema.NullOr(ProjectId),
  name: Schema.String,
  role: KeyRole,
  prefix: Schema.String,
  secret_hash: Schema.instanceOf(Uint8Array)
})
export type NewApiKey = typeof NewApiKey.Type

const columns = "id, project_id, name, role, prefix, secret_hash, created_at, revoked_at"

export class ApiKeysRepo extends Context.Service<ApiKeysRepo, {
  insert(key: NewApiKey): Effect.Effect<ApiKeyRow>
  findByPrefix(prefix: string): Effect.Effect<ApiKeyRow | undefined>
  list(projectId: ProjectId, after: string | undefined, limit: number): Effect.Effect<ReadonlyArray<ApiKeyRow>>
  revoke(projectId: ProjectId, id: ApiKeyId): Effect.Effect<ApiKeyRow | undefined>
  countAll: Effect.Effect<number>
}>()("foreman/ApiKeysRepo") {
  static readonly layer = Layer.effect(
    ApiKeysRepo,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient

      const insert = SqlSchema.findOne({
        Request: NewApiKey,
        Result: ApiKeyRow,
        execute: (key) =>
          sql`INSERT INTO api_keys ${sql.insert(key)} RETURNING ${sql.literal(columns)}`
      })

      const findByPrefix = SqlSchema.findOneOption({
        Request: Schema.String,
        Result: ApiKeyRow,
        execute: (prefix) => sql`SELECT ${sql.literal(columns)} FROM api_keys WHERE prefix = ${prefix}`
      })

      const list = SqlSchema.findAll({
        Request: Schema.Struct({ projectId: ProjectId, after: Schema.NullOr(Schema.String), limit: Schema.Number }),
        Result: ApiKeyRow,
        execute: ({ after, limit, projectId }) =>
          sql`SELECT ${sql.literal(columns)} FROM api_keys
              WHERE project_id = ${projectId} ${after === null ? sql`` : sql`AND id < ${after}`}
              ORDER BY id DESC LIMIT ${limit}`
      })

      const revoke = SqlSchema.findOneOption({
        Request: Schema.Struct({ projectId: ProjectId, id: ApiKeyId }),
        Result: ApiKeyRow,
        execute: ({ id, projectId }) =>
          // Instances that trust the key from memory forget it when this commits.
          sql`WITH revoked AS (
                UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
                WHERE id = ${id} AND project_id = ${projectId}
                RETURNING ${sql.literal(columns)}
              ),
              notified AS (SELECT pg_notify('foreman', 'key_revoked:' || prefix) FROM revoked)
              SELECT ${sql.literal(columns)} FROM revoked CROSS JOIN (SELECT count(*) FROM notified) AS n`
      })

      return ApiKeysRepo.of({
        insert: (key) => insert(key).pipe(Effect.orDie, traced("ApiKeysRepo.insert")),
        findByPrefix: (prefix) =>
          findByPrefix(prefix).pipe(
            Effect.map((row) => row._tag === "Some" ? row.value : undefined),
            Effect.orDie,
            traced("ApiKeysRepo.findByPrefix")
          ),
        list: (projectId, after, limit) =>
          list({ projectId, after: after ?? null, limit }).pipe(Effect.orDie, traced("ApiKeysRepo.list")),
        revoke: (projectId, id) =>
          revoke({ projectId, id }).pipe(
            Effect.map((row) => row._tag === "Some" ? row.value : undefined),
            Effect.orDie,
            traced("ApiKeysRepo.revoke")
          ),
        countAll: sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM api_keys`.pipe(
          Effect.map((rows) => rows[0]?.n ?? 0),
          Effect.orDie,
          traced("ApiKeysRepo.countAll")
        )
      })
    })
  )
}
