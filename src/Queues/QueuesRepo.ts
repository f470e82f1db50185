import { Context, Effect, Layer, Option, Schema } from "effect"
import { SqlClient, SqlSchema } from "effect/sql"
import { ProjectId, QueueId, QueueName } from "../Domain/Ids.ts"
import { OnDeadline, type ReviewPolicy } from "../Domain/Review.ts"
import type { Queue, RetryPolicy } from "./Api.ts"
import { traced } from "../Observability/Tracing.ts"

const QueueRow = Schema.Struct({
  id: QueueId,
  project_id: ProjectId,
  name: QueueName,
  paused: Schema.Boolean,
  max_attempts: Schema.Number,
  backoff_initial_ms: Schema.Number,
  backoff_factor: Schema.Number,
  backoff_max_ms: Schema.Number,
  backoff_jitter: Schema.Number,
  timeout_ms: Schema.Number,
  retention_seconds: Schema.Number,
  max_running: Schema.NullOr(Schema.Number),
  review_required: Schema.Boolean,
  review_deadline_ms: Schema.NullOr(Schema.Number),
  review_on_deadline: OnDeadline,
  created_at: Schema.Date,
  updated_at: Schema.Date
})
type QueueRow = typeof QueueRow.Type

const toQueue = (row: QueueRow): Queue => ({
  id: row.id,
  project_id: row.project_id,
  name: row.name,
  paused: row.paused,
  retry_policy: {
    max_attempts: row.max_attempts,
    initial_delay_ms: row.backoff_initial_ms,
    factor: row.backoff_factor,
    max_delay_ms: row.backoff_max_ms,
    jitter: row.backoff_jitter
  },
  timeout_ms: row.timeout_ms,
  retention_seconds: row.retention_seconds,
  max_running: row.max_running,
  review: { required: row.review_required, deadline_ms: row.review_deadline_ms, on_deadline: row.review_on_deadline },
  created_at: row.created_at,
  updated_at: row.updated_at
})

/** The full settings of a queue, as stored. */
export interface QueueSettings {
  readonly paused: boolean
  readonly retry_policy: RetryPolicy
  readonly timeout_ms: number
  readonly retention_seconds: number
  readonly max_running: number | null
  readonly review: ReviewPolicy
}

const columns =
  "id, project_id, name, paused, max_attempts, backoff_initial_ms, backoff_factor, backoff_max_ms, backoff_jitter, timeout_ms, retention_seconds, max_running, review_required, review_deadline_ms, review_on_deadline, created_at, updated_at"

const settingsColumns = (settings: QueueSettings) => ({
  paused: settings.paused,
  max_attempts: settings.retry_policy.max_attempts,
  backoff_initial_ms: settings.retry_policy.initial_delay_ms,
  backoff_factor: settings.retry_policy.factor,
  backoff_max_ms: settings.retry_policy.max_delay_ms,
  backoff_jitter: settings.retry_policy.jitter,
  timeout_ms: settings.timeout_ms,
  retention_seconds: settings.retention_seconds,
  max_running: settings.max_running,
  review_required: settings.review.required,
  review_deadline_ms: settings.review.deadline_ms,
  review_on_deadline: settings.review.on_deadline
})

export class QueuesRepo extends Context.Service<QueuesRepo, {
  /** `undefined` when a queue of that name already exists in the project. */
  insert(projectId: ProjectId, id: QueueId, name: QueueName, settings: QueueSettings): Effect.Effect<Queue | undefined>
  /** With `forUpdate`, locks the row until the surrounding transaction ends. */
  find(projectId: ProjectId, name: QueueName, forUpdate?: boolean): Effect.Effect<Queue | undefined>
  list(projectId: ProjectId, after: string | undefined, limit: number): Effect.Effect<ReadonlyArray<Queue>>
  update(projectId: ProjectId, name: QueueName, settings: QueueSettings): Effect.Effect<Queue | undefined>
}>()("foreman/QueuesRepo") {
  static readonly layer = Layer.effect(
    QueuesRepo,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient

      const find = SqlSchema.findOneOption({
        Request: Schema.Struct({ projectId: ProjectId, name: QueueName, forUpdate: Schema.Boolean }),
        Result: QueueRow,
        execute: ({ forUpdate, name, projectId }) =>
          sql`SELECT ${sql.literal(columns)} FROM queues WHERE project_id = ${projectId} AND name = ${name}
              ${forUpdate ? sql`FOR UPDATE` : sql``}`
      })
      const list = SqlSchema.findAll({
        Request: Schema.Struct({ projectId: ProjectId, after: Schema.NullOr(Schema.String), limit: Schema.Number }),
        Result: QueueRow,
        execute: ({ after, limit, projectId }) =>
          sql`SELECT ${sql.literal(columns)} FROM queues WHERE project_id = ${projectId}
              ${after === null ? sql`` : sql`AND id < ${after}`}
              ORDER BY id DESC LIMIT ${limit}`
      })
      const decodeRows = Schema.decodeUnknownEffect(Schema.Array(QueueRow))
      const firstQueue = (rows: ReadonlyArray<unknown>) =>
        decodeRows(rows).pipe(Effect.map((decoded) => decoded[0] === undefined ? undefined : toQueue(decoded[0])))

      return QueuesRepo.of({
        insert: (projectId, id, name, settings) =>
          sql`INSERT INTO queues ${sql.insert({ project_id: projectId, id, name, ...settingsColumns(settings) })}
              ON CONFLICT (project_id, name) DO NOTHING
              RETURNING ${sql.literal(columns)}`.pipe(
            Effect.flatMap(firstQueue),
            Effect.orDie,
            traced("QueuesRepo.insert")
          ),
        find: (projectId, name, forUpdate = false) =>
          find({ projectId, name, forUpdate }).pipe(
            Effect.map((row) => Option.getOrUndefined(Option.map(row, toQueue))),
            Effect.orDie,
            traced("QueuesRepo.find")
          ),
        list: (projectId, after, limit) =>
          list({ projectId, after: after ?? null, limit }).pipe(
            Effect.map((rows) => rows.map(toQueue)),
            Effect.orDie,
            traced("QueuesRepo.list")
          ),
        update: (projectId, name, settings) =>
          sql`UPDATE queues SET ${sql.update(settingsColumns(settings))}, updated_at = now()
              WHERE project_id = ${projectId} AND name = ${name}
              RETURNING ${sql.literal(columns)}`.pipe(
            Effect.flatMap(firstQueue),
            Effect.orDie,
            traced("QueuesRepo.update")
          )
      })
    })
  )
}
