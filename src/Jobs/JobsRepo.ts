import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import type { JobId, ProjectId, QueueName } from "../Domain/Ids.ts"
import { JobId as JobIdSchema, ProjectId as ProjectIdSchema, QueueName as QueueNameSchema } from "../Domain/Ids.ts"
import { type Job, JobState, type Priority } from "./Api.ts"

export const priorities: ReadonlyArray<Priority> = ["critical", "high", "normal", "low"]
export const priorityRank = (priority: Priority): number => priorities.indexOf(priority)

const JobRow = Schema.Struct({
  id: JobIdSchema,
  project_id: ProjectIdSchema,
  queue: QueueNameSchema,
  kind: Schema.String,
  payload: Schema.Json,
  priority: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 3 })),
  state: JobState,
  attempt: Schema.Int,
  max_attempts: Schema.Int,
  timeout_ms: Schema.Int,
  run_at: Schema.Date,
  idempotency_key: Schema.NullOr(Schema.String),
  request_hash: Schema.NullOr(Schema.instanceOf(Uint8Array)),
  created_at: Schema.Date,
  updated_at: Schema.Date,
  finished_at: Schema.NullOr(Schema.Date)
})
type JobRow = typeof JobRow.Type
const decodeRows = Schema.decodeUnknownEffect(Schema.Array(JobRow))

/** A job as stored, plus the request hash that idempotent replays are compared against. */
export interface StoredJob {
  readonly job: Job
  readonly requestHash: string | null
}

const toStored = (row: JobRow): StoredJob => ({
  job: {
    id: row.id,
    project_id: row.project_id,
    queue: row.queue,
    kind: row.kind,
    payload: row.payload,
    priority: priorities[row.priority] ?? "normal",
    state: row.state,
    attempt: row.attempt,
    max_attempts: row.max_attempts,
    timeout_ms: row.timeout_ms,
    run_at: row.run_at,
    idempotency_key: row.idempotency_key,
    created_at: row.created_at,
    updated_at: row.updated_at,
    finished_at: row.finished_at
  },
  requestHash: row.request_hash === null ? null : Buffer.from(row.request_hash).toString("hex")
})

const columns =
  "id, project_id, queue, kind, payload, priority, state, attempt, max_attempts, timeout_ms, run_at, idempotency_key, request_hash, created_at, updated_at, finished_at"

/** One job to insert; `null` fields fall back to the queue's defaults or to now. */
export interface NewJob {
  readonly id: string
  readonly queue: QueueName
  readonly kind: string
  readonly payload: typeof Schema.Json.Type
  readonly priority: number
  readonly run_at: string | null
  readonly delay_ms: number | null
  readonly max_attempts: number | null
  readonly timeout_ms: number | null
  readonly idempotency_key: string | null
  readonly request_hash: string | null
}

export interface JobFilter {
  readonly queue?: QueueName | undefined
  readonly state?: JobState | undefined
  readonly kind?: string | undefined
}

export const cancellableStates: ReadonlyArray<JobState> = ["scheduled", "available", "retrying"]

export class JobsRepo extends Context.Service<JobsRepo, {
  /**
   * Inserts the jobs whose queue exists and whose idempotency key is unused,
   * in one statement. Returns what was inserted; the caller reconciles the rest.
   */
  insertMany(projectId: ProjectId, jobs: ReadonlyArray<NewJob>): Effect.Effect<ReadonlyArray<StoredJob>>
  findByIdempotencyKeys(projectId: ProjectId, keys: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<StoredJob>>
  find(projectId: ProjectId, id: JobId): Effect.Effect<Job | undefined>
  list(projectId: ProjectId, filter: JobFilter, after: string | undefined, limit: number): Effect.Effect<ReadonlyArray<Job>>
  cancel(projectId: ProjectId, id: JobId): Effect.Effect<Job | undefined>
}>()("foreman/JobsRepo") {
  static readonly layer = Layer.effect(
    JobsRepo,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const stored = (rows: ReadonlyArray<unknown>) => Effect.map(decodeRows(rows), (decoded) => decoded.map(toStored))
      const jobs = (rows: ReadonlyArray<unknown>) =>
        Effect.map(decodeRows(rows), (decoded) => decoded.map((row) => toStored(row).job))

      const insertMany = (projectId: ProjectId, batch: ReadonlyArray<NewJob>) =>
        sql`
          INSERT INTO jobs (id, project_id, queue, kind, payload, priority, state, run_at, max_attempts, timeout_ms,
                            idempotency_key, request_hash)
          SELECT x.id, q.project_id, q.name, x.kind, x.payload, x.priority,
                 CASE WHEN t.run_at <= now() THEN 'available' ELSE 'scheduled' END,
                 t.run_at, coalesce(x.max_attempts, q.max_attempts), coalesce(x.timeout_ms, q.timeout_ms),
                 x.idempotency_key, decode(x.request_hash, 'hex')
          FROM jsonb_to_recordset(${JSON.stringify(batch)}::jsonb) AS x(
                 id uuid, queue text, kind text, payload jsonb, priority smallint, run_at timestamptz,
                 delay_ms bigint, max_attempts integer, timeout_ms integer, idempotency_key text, request_hash text)
          JOIN queues q ON q.project_id = ${projectId} AND q.name = x.queue
          CROSS JOIN LATERAL (
            SELECT coalesce(x.run_at, now() + coalesce(x.delay_ms, 0) * interval '1 millisecond') AS run_at
          ) t
          ON CONFLICT (project_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
          RETURNING ${sql.literal(columns)}`.pipe(
          Effect.flatMap(stored),
          Effect.orDie,
          Effect.withSpan("JobsRepo.insertMany", { attributes: { "foreman.jobs.count": batch.length } })
        )

      const findByIdempotencyKeys = (projectId: ProjectId, keys: ReadonlyArray<string>) =>
        sql`SELECT ${sql.literal(columns)} FROM jobs
            WHERE project_id = ${projectId} AND idempotency_key IN ${sql.in(keys)}`.pipe(
          Effect.flatMap(stored),
          Effect.orDie,
          Effect.withSpan("JobsRepo.findByIdempotencyKeys")
        )

      const find = (projectId: ProjectId, id: JobId) =>
        sql`SELECT ${sql.literal(columns)} FROM jobs WHERE project_id = ${projectId} AND id = ${id}`.pipe(
          Effect.flatMap(jobs),
          Effect.map((found) => found[0]),
          Effect.orDie,
          Effect.withSpan("JobsRepo.find")
        )

      const list = (projectId: ProjectId, filter: JobFilter, after: string | undefined, limit: number) =>
        sql`SELECT ${sql.literal(columns)} FROM jobs
            WHERE project_id = ${projectId}
            ${filter.queue === undefined ? sql`` : sql`AND queue = ${filter.queue}`}
            ${filter.state === undefined ? sql`` : sql`AND state = ${filter.state}`}
            ${filter.kind === undefined ? sql`` : sql`AND kind = ${filter.kind}`}
            ${after === undefined ? sql`` : sql`AND id < ${after}`}
            ORDER BY id DESC LIMIT ${limit}`.pipe(
          Effect.flatMap(jobs),
          Effect.orDie,
          Effect.withSpan("JobsRepo.list")
        )

      const cancel = (projectId: ProjectId, id: JobId) =>
        sql`UPDATE jobs SET state = 'cancelled', finished_at = now(), updated_at = now()
            WHERE project_id = ${projectId} AND id = ${id} AND state IN ${sql.in(cancellableStates)}
            RETURNING ${sql.literal(columns)}`.pipe(
          Effect.flatMap(jobs),
          Effect.map((found) => found[0]),
          Effect.orDie,
          Effect.withSpan("JobsRepo.cancel")
        )

      return JobsRepo.of({ insertMany, findByIdempotencyKeys, find, list, cancel })
    })
  )
}
