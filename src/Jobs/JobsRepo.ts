import { Context, Deferred, Effect, Exit, Layer, Option, Schema, Scope, type Tracer } from "effect"
import { SqlClient } from "effect/sql"
import type { JobId, ProjectId, QueueName } from "../Domain/Ids.ts"
import { JobId as JobIdSchema, ProjectId as ProjectIdSchema, QueueName as QueueNameSchema } from "../Domain/Ids.ts"
import { OnDeadline, ReviewFeedback, type ReviewPolicyPatch } from "../Domain/Review.ts"
import { RetryPolicy } from "../Queues/Api.ts"
import { Assignment } from "../Workers/Assignment.ts"
import { type ClaimedJob, effectiveRetryPolicy } from "../Engine/EngineRepo.ts"
import { currentTraceparent, requestTraceparent, traced } from "../Observability/Tracing.ts"
import { type Job, JobEvent, JobState, type Priority } from "./Api.ts"

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
  retry_policy: Schema.NullOr(RetryPolicy),
  progress: Schema.NullOr(Schema.Json),
  result: Schema.NullOr(Schema.Json),
  last_error: Schema.NullOr(Schema.Json),
  started_at: Schema.NullOr(Schema.Date),
  lease_expires_at: Schema.NullOr(Schema.Date),
  worker_id: Schema.NullOr(Schema.String),
  assign: Schema.NullOr(Assignment),
  review_required: Schema.Boolean,
  review_deadline_ms: Schema.NullOr(Schema.Int),
  review_on_deadline: OnDeadline,
  review_due_at: Schema.NullOr(Schema.Date),
  review_feedback: Schema.NullOr(ReviewFeedback),
  created_at: Schema.Date,
  updated_at: Schema.Date,
  finished_at: Schema.NullOr(Schema.Date)
})
type JobRow = typeof JobRow.Type
const decodeRows = Schema.decodeUnknownEffect(Schema.Array(JobRow))
const decodeEvents = Schema.decodeUnknownEffect(Schema.Array(JobEvent))

/**
 * What the insert returns: only what the database decides (the queue's defaults, the clock, an
 * eager claim). The rest of the job is what the caller sent, so a batch's payloads do not make the
 * round trip back; that and the narrower decode were about a fifth of a batch enqueue's server CPU.
 */
export const InsertedRow = Schema.Struct({
  id: JobIdSchema,
  state: JobState,
  attempt: Schema.Int,
  max_attempts: Schema.Int,
  timeout_ms: Schema.Int,
  run_at: Schema.Date,
  retry_policy: Schema.NullOr(RetryPolicy),
  review_required: Schema.Boolean,
  review_deadline_ms: Schema.NullOr(Schema.Int),
  review_on_deadline: OnDeadline,
  created_at: Schema.Date,
  started_at: Schema.NullOr(Schema.Date),
  lease_expires_at: Schema.NullOr(Schema.Date),
  worker_id: Schema.NullOr(Schema.String),
  lease_token: Schema.NullOr(Schema.String),
  effective_retry_policy: Schema.NullOr(RetryPolicy)
})
type InsertedRow = typeof InsertedRow.Type
const decodeInsertedRows = Schema.decodeUnknownEffect(Schema.Array(InsertedRow))

const isJobId = Schema.is(JobIdSchema)
const isJobState = Schema.is(JobState)
const isOnDeadline = Schema.is(OnDeadline)
const isInt = (u: unknown): u is number => Number.isSafeInteger(u)
const isDate = (u: unknown): u is Date => u instanceof Date && !Number.isNaN(u.getTime())
const isDateOrNull = (u: unknown): u is Date | null => u === null || isDate(u)
const isStringOrNull = (u: unknown): u is string | null => u === null || typeof u === "string"

/**
 * What `InsertedRow` accepts, checked field by field, for the rows that have no retry policy
 * object (the usual enqueue). Schema's decode of the 16 fields took about 1 µs a row, 6 % of
 * a batch enqueue's server CPU (docs/benchmarks.md); any other row goes through the schema,
 * which also words the defect. test/unit/insertedRow.test.ts holds the two in agreement.
 */
export const isPlainInsertedRow = (u: unknown): u is InsertedRow =>
  typeof u === "object" && u !== null &&
  "id" in u && isJobId(u.id) &&
  "state" in u && isJobState(u.state) &&
  "attempt" in u && isInt(u.attempt) &&
  "max_attempts" in u && isInt(u.max_attempts) &&
  "timeout_ms" in u && isInt(u.timeout_ms) &&
  "run_at" in u && isDate(u.run_at) &&
  "retry_policy" in u && u.retry_policy === null &&
  "review_required" in u && typeof u.review_required === "boolean" &&
  "review_deadline_ms" in u && (u.review_deadline_ms === null || isInt(u.review_deadline_ms)) &&
  "review_on_deadline" in u && isOnDeadline(u.review_on_deadline) &&
  "created_at" in u && isDate(u.created_at) &&
  "started_at" in u && isDateOrNull(u.started_at) &&
  "lease_expires_at" in u && isDateOrNull(u.lease_expires_at) &&
  "worker_id" in u && isStringOrNull(u.worker_id) &&
  "lease_token" in u && isStringOrNull(u.lease_token) &&
  "effective_retry_policy" in u && u.effective_retry_policy === null

export const decodeInserted = (rows: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<InsertedRow>, Schema.SchemaError> =>
  rows.every(isPlainInsertedRow) ? Effect.succeed(rows) : decodeInsertedRows(rows)
const decodeNames = Schema.decodeUnknownEffect(Schema.Array(Schema.Struct({ name: Schema.String })))

/** The engine instance that claims a job at insert time (eager dispatch), and its lease. */
export interface EagerClaim {
  readonly workerId: string
  readonly leaseMs: number
  /** The `started` event's actor. */
  readonly actor: string
}

/** An inserted job; `claimed` when it was inserted as `running` under an eager claim. */
export interface InsertedJob extends StoredJob {
  readonly claimed: ClaimedJob | undefined
}

/** A job as stored, plus the request hash that idempotent replays are compared against. */
export interface StoredJob {
  readonly job: Job
  readonly requestHash: string | null
}

// Field by field, not with rest patterns: a rest pattern with excluded keys copies the row through
// V8's slow path (6 % of a batch enqueue's CPU), and the literal gives the job exactly the keys of
// the Job schema, which the jobs endpoints rely on when they serialize it directly (Jobs/Http.ts).
const toJob = (row: JobRow): Job => ({
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
  retry_policy: row.retry_policy,
  progress: row.progress,
  result: row.result,
  last_error: row.last_error,
  started_at: row.started_at,
  lease_expires_at: row.lease_expires_at,
  worker_id: row.worker_id,
  assign: row.assign,
  review: { required: row.review_required, deadline_ms: row.review_deadline_ms, on_deadline: row.review_on_deadline },
  review_due_at: row.review_due_at,
  review_feedback: row.review_feedback,
  created_at: row.created_at,
  updated_at: row.updated_at,
  finished_at: row.finished_at
})

const toStored = (row: JobRow): StoredJob => ({
  job: toJob(row),
  requestHash: row.request_hash === null ? null : Buffer.from(row.request_hash).toString("hex")
})

/** The trace context stored with the rows of a statement: one for all, or one per row. */
type Traceparents = string | null | ReadonlyArray<string | null>

const traceparentAt = (traceparents: Traceparents, index: number): string | null =>
  typeof traceparents === "string" || traceparents === null ? traceparents : traceparents[index] ?? null

/**
 * The trace context sent once, as a parameter: the first row's, which every row that has the same
 * leaves out (a shared statement's rows come in runs, a batch's rows sharing their request's).
 * None when a row has no trace context, since a row without one reads the parameter's.
 */
const sharedTraceparent = (traceparents: Traceparents): string | null => {
  if (typeof traceparents === "string" || traceparents === null) return traceparents
  return traceparents.includes(null) ? null : traceparents[0] ?? null
}

const toInserted = (projectId: ProjectId, job: NewJob, traceparent: string | null, row: InsertedRow): InsertedJob => {
  const { lease_token, effective_retry_policy } = row
  const claimed = row.state === "running" && lease_token !== null && effective_retry_policy !== null &&
      row.lease_expires_at !== null && row.started_at !== null
    ? {
      id: row.id,
      project_id: projectId,
      queue: job.queue,
      kind: job.kind,
      payload: job.payload,
      priority: job.priority,
      attempt: row.attempt,
      max_attempts: row.max_attempts,
      timeout_ms: row.timeout_ms,
      lease_token,
      lease_expires_at: row.lease_expires_at,
      started_at: row.started_at,
      created_at: row.created_at,
      retry_policy: effective_retry_policy,
      traceparent,
      last_attempt_traceparent: null,
      review_feedback: null
    }
    : undefined
  return {
    // Field by field in the order of the Job schema, as toJob.
    job: {
      id: row.id,
      project_id: projectId,
      queue: job.queue,
      kind: job.kind,
      payload: job.payload,
      priority: priorities[job.priority] ?? "normal",
      state: row.state,
      attempt: row.attempt,
      max_attempts: row.max_attempts,
      timeout_ms: row.timeout_ms,
      run_at: row.run_at,
      idempotency_key: job.idempotency_key,
      retry_policy: row.retry_policy,
      progress: null,
      result: null,
      last_error: null,
      started_at: row.started_at,
      lease_expires_at: row.lease_expires_at,
      worker_id: row.worker_id,
      assign: job.assign,
      review: { required: row.review_required, deadline_ms: row.review_deadline_ms, on_deadline: row.review_on_deadline },
      review_due_at: null,
      review_feedback: null,
      // Both columns default to the transaction's now().
      created_at: row.created_at,
      updated_at: row.created_at,
      finished_at: null
    },
    requestHash: job.request_hash,
    claimed
  }
}

/** The fields of a new job that are often unset, and left out of the statement's parameter when they are. */
const optionalParams = [
  "run_at",
  "delay_ms",
  "max_attempts",
  "retry_policy",
  "timeout_ms",
  "idempotency_key",
  "request_hash",
  "assigned_worker_id",
  "assigned_label",
  "assigned_user_id",
  "review"
] as const satisfies ReadonlyArray<keyof NewJob>

/**
 * A job as the statement's `jsonb_to_recordset` reads it: only the fields that are set, since a
 * missing key reads as NULL and most are unset. `traceparent` only when it differs from `shared`,
 * the statement's parameter (see `sharedTraceparent`).
 */
const toParam = (job: NewJob, traceparent: string | null, shared: string | null): Record<string, unknown> => {
  const param: Record<string, unknown> = { id: job.id, queue: job.queue, kind: job.kind, payload: job.payload, priority: job.priority }
  for (const key of optionalParams) {
    if (job[key] !== null) param[key] = job[key]
  }
  if (traceparent !== shared) param.traceparent = traceparent
  return param
}

const columns = `id, project_id, queue, kind, payload, priority, state, attempt, max_attempts, timeout_ms, run_at,
  idempotency_key, request_hash, retry_policy, progress, result, last_error, started_at, lease_expires_at,
  worker_id::text AS worker_id,
  CASE WHEN assigned_worker_id IS NOT NULL THEN jsonb_build_object('worker_id', assigned_worker_id)
       WHEN assigned_label IS NOT NULL THEN jsonb_build_object('label', assigned_label)
       WHEN assigned_user_id IS NOT NULL THEN jsonb_build_object('user_id', assigned_user_id) END AS assign, review_required, review_deadline_ms, review_on_deadline, review_due_at, review_feedback,
  created_at, updated_at, finished_at`

/** At most this many enqueue requests share one statement... */
const coalesceLimit = 100
/** ...and at most this many rows: a batch that would go beyond it opens the next statement. */
const coalesceRows = 300

/** An enqueue waiting for the statement it shares with others (`insertCoalesced`, `insertBatchCoalesced`). */
interface Waiting {
  readonly rows: ReadonlyArray<NewJob>
  /** A batch: its rows go in all together or not at all. */
  readonly atomic: boolean
  readonly traceparent: string | null
  readonly result: Deferred.Deferred<ReadonlyArray<InsertedJob>>
  /** The caller's span, linked from the shared statement's span. */
  readonly span: Tracer.AnySpan | undefined
  /** Set when the caller is interrupted before the statement is sent: its rows are left out. */
  abandoned: boolean
}

interface Group {
  readonly waiting: Array<Waiting>
  rows: number
}

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
  /** A partial override merged over the queue's policy at insert time. */
  readonly retry_policy: Record<string, number> | null
  readonly timeout_ms: number | null
  readonly idempotency_key: string | null
  readonly request_hash: string | null
  /** The request's assignment, and its columns, of which at most one is set (src/Workers/Assignment.ts). */
  readonly assign: Assignment | null
  readonly assigned_worker_id: string | null
  readonly assigned_label: string | null
  readonly assigned_user_id: string | null
  /** A partial review policy merged over the queue's at insert time. */
  readonly review: ReviewPolicyPatch | null
}

export interface JobFilter {
  readonly queue?: QueueName | undefined
  readonly state?: JobState | undefined
  readonly kind?: string | undefined
  /** Only the jobs assigned to this user (their human tasks). */
  readonly assigned_user_id?: string | undefined
}

// A job awaiting review can be cancelled: its result is then discarded.
export const cancellableStates: ReadonlyArray<JobState> = ["scheduled", "available", "retrying", "running", "awaiting_review"]
export const retryableStates: ReadonlyArray<JobState> = ["dead", "cancelled", "retrying"]

export class JobsRepo extends Context.Service<JobsRepo, {
  /**
   * Inserts the jobs whose idempotency key is unused, in one statement that also
   * records their `enqueued` events, or none of them when one names a queue that
   * does not exist. Returns what was inserted, in the order of `jobs`; the caller
   * reconciles the rest.
   */
  insertMany(
    projectId: ProjectId,
    jobs: ReadonlyArray<NewJob>,
    actor: string,
    eager?: EagerClaim
  ): Effect.Effect<ReadonlyArray<InsertedJob>>
  /**
   * One job, inserted as `insertMany` would, in a statement shared with the other
   * single enqueues of the same project and actor waiting at that moment.
   * `undefined` when it was not inserted.
   */
  insertCoalesced(projectId: ProjectId, job: NewJob, actor: string): Effect.Effect<InsertedJob | undefined>
  /**
   * A batch without idempotency keys, all or nothing as `insertMany` inserts it, in a statement
   * shared with the other enqueues of the same project and actor waiting at that moment.
   * Empty when it was not inserted.
   */
  insertBatchCoalesced(projectId: ProjectId, jobs: ReadonlyArray<NewJob>, actor: string): Effect.Effect<ReadonlyArray<InsertedJob>>
  findByIdempotencyKeys(projectId: ProjectId, keys: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<StoredJob>>
  /** Which of these queue names have no queue in the project. */
  missingQueues(projectId: ProjectId, names: ReadonlyArray<string>): Effect.Effect<ReadonlySet<string>>
  find(projectId: ProjectId, id: JobId): Effect.Effect<Job | undefined>
  list(projectId: ProjectId, filter: JobFilter, after: string | undefined, limit: number): Effect.Effect<ReadonlyArray<Job>>
  /** Cancels a job in a cancellable state, revoking any lease. Returns the job and the state it left. */
  cancel(projectId: ProjectId, id: JobId, actor: string): Effect.Effect<{ readonly job: Job; readonly from: string } | undefined>
  /** Makes a dead, cancelled or retrying job available now; dead and cancelled jobs start over at attempt 0. */
  retry(projectId: ProjectId, id: JobId, actor: string): Effect.Effect<Job | undefined>
  events(projectId: ProjectId, id: JobId, after: string | undefined, limit: number): Effect.Effect<ReadonlyArray<JobEvent>>
}>()("foreman/JobsRepo") {
  static readonly layer = Layer.effect(
    JobsRepo,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const stored = (rows: ReadonlyArray<unknown>) => Effect.map(decodeRows(rows), (decoded) => decoded.map(toStored))
      const jobs = (rows: ReadonlyArray<unknown>) =>
        Effect.map(decodeRows(rows), (decoded) => decoded.map(toJob))

      // The enqueue request's span context is stored with each job as its `traceparent`.
      // With `eager`, a due, unassigned job of an unpaused, uncapped queue is inserted already
      // claimed by that engine instance (eager dispatch), with its `started` event after `enqueued`.
      const insertRows = (
        projectId: ProjectId,
        batch: ReadonlyArray<NewJob>,
        traceparents: Traceparents,
        actor: string,
        allOrNothing: boolean,
        eager?: EagerClaim
      ) => {
        // A batch's rows share their request's trace context: it goes once, as a parameter.
        const shared = sharedTraceparent(traceparents)
        const queues = allOrNothing ? [...new Set(batch.map((job) => job.queue))] : []
        return sql`
          WITH inserted AS (
            INSERT INTO jobs (assigned_worker_id, assigned_label, assigned_user_id, id, project_id, queue, kind, payload, priority, state, run_at, max_attempts, timeout_ms,
                              retry_policy, idempotency_key, request_hash, traceparent,
                              review_required, review_deadline_ms, review_on_deadline,
                              attempt, lease_token, lease_expires_at, started_at, worker_id)
            SELECT x.assigned_worker_id, x.assigned_label, x.assigned_user_id, x.id, q.project_id, q.name, x.kind, coalesce(x.payload, 'null'::jsonb), x.priority,
                   CASE WHEN e.eager THEN 'running' WHEN t.run_at <= now() THEN 'available' ELSE 'scheduled' END,
                   t.run_at, t.max_attempts, t.timeout_ms,
                   CASE WHEN x.retry_policy IS NULL THEN NULL ELSE jsonb_build_object(
                     'max_attempts', t.max_attempts,
                     'initial_delay_ms', coalesce((x.retry_policy->>'initial_delay_ms')::int, q.backoff_initial_ms),
                     'factor', coalesce((x.retry_policy->>'factor')::float8, q.backoff_factor),
                     'max_delay_ms', coalesce((x.retry_policy->>'max_delay_ms')::int, q.backoff_max_ms),
                     'jitter', coalesce((x.retry_policy->>'jitter')::float8, q.backoff_jitter)) END,
                   x.idempotency_key, decode(x.request_hash, 'hex'), coalesce(x.traceparent, ${shared}),
                   coalesce((x.review->>'required')::boolean, q.review_required),
                   CASE WHEN x.review ? 'deadline_ms' THEN (x.review->>'deadline_ms')::int ELSE q.review_deadline_ms END,
                   coalesce(x.review->>'on_deadline', q.review_on_deadline),
                   CASE WHEN e.eager THEN 1 ELSE 0 END,
                   CASE WHEN e.eager THEN gen_random_uuid() END,
                   CASE WHEN e.eager THEN least(now() + ${eager?.leaseMs ?? 0} * interval '1 millisecond',
                                                now() + t.timeout_ms * interval '1 millisecond') END,
                   CASE WHEN e.eager THEN now() END,
                   CASE WHEN e.eager THEN ${eager?.workerId ?? null}::uuid END
            FROM jsonb_to_recordset(${JSON.stringify(batch.map((job, index) => toParam(job, traceparentAt(traceparents, index), shared)))}::jsonb) AS x(
                   assigned_worker_id uuid, assigned_label text, assigned_user_id uuid,
                   id uuid, queue text, kind text, payload jsonb, priority smallint, run_at timestamptz,
                   delay_ms bigint, max_attempts integer, retry_policy jsonb, timeout_ms integer,
                   idempotency_key text, request_hash text, review jsonb, traceparent text)
            JOIN queues q ON q.project_id = ${projectId} AND q.name = x.queue
            CROSS JOIN LATERAL (
              SELECT coalesce(x.run_at, now() + coalesce(x.delay_ms, 0) * interval '1 millisecond') AS run_at,
                     coalesce(x.max_attempts, (x.retry_policy->>'max_attempts')::int, q.max_attempts) AS max_attempts,
                     coalesce(x.timeout_ms, q.timeout_ms) AS timeout_ms
            ) t
            CROSS JOIN LATERAL (
              SELECT ${eager === undefined ? sql`false` : sql`t.run_at <= now() AND NOT q.paused AND q.max_running IS NULL
                AND x.assigned_worker_id IS NULL AND x.assigned_label IS NULL AND x.assigned_user_id IS NULL
                -- As in the claim: a disabled instance takes nothing, and a concurrent disable waits for this.
                AND EXISTS (SELECT 1 FROM workers w WHERE w.id = ${eager.workerId} AND w.disabled_at IS NULL FOR KEY SHARE)`} AS eager
            ) e
            ${
          // Evaluated once: a row naming a missing queue keeps the whole statement out, so a
          // batch without idempotency keys needs no transaction to be all or nothing.
          // The names go as one JSON parameter, so the statement's text (and its prepared
          // statement) is the same whatever their number.
          queues.length === 0 ? sql`` : sql`WHERE (SELECT count(*) FROM queues c
            WHERE c.project_id = ${projectId}
              AND c.name IN (SELECT jsonb_array_elements_text(${JSON.stringify(queues)}::jsonb))) = ${queues.length}`}
            ON CONFLICT (project_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
            RETURNING id, project_id, queue, state, attempt, max_attempts, timeout_ms, run_at, retry_policy, review_required,
                      review_deadline_ms, review_on_deadline, created_at, started_at, lease_expires_at, worker_id, lease_token
          ),
          events AS (
            INSERT INTO job_events (job_id, project_id, type, from_state, to_state, attempt, actor, worker_id)
            ${
          eager === undefined
            // Without an eager claim every job has one event: nothing to order, nothing to add.
            ? sql`SELECT i.id, i.project_id, 'enqueued', NULL::text, i.state, 0, ${actor}::text, NULL::uuid FROM inserted i`
            // Ordered, so an eagerly dispatched job's history reads enqueued, then started.
            : sql`SELECT v.job_id, v.project_id, v.type, v.from_state, v.to_state, v.attempt, v.actor, v.worker_id
            FROM (
              SELECT i.id AS job_id, i.project_id, 'enqueued' AS type, NULL::text AS from_state,
                     CASE WHEN i.state = 'running' THEN 'available' ELSE i.state END AS to_state, 0 AS attempt,
                     ${actor}::text AS actor, NULL::uuid AS worker_id, 1 AS step
              FROM inserted i
              UNION ALL
              SELECT i.id, i.project_id, 'started', 'available', 'running', 1, ${eager.actor}::text, i.worker_id, 2
              FROM inserted i WHERE i.state = 'running'
            ) v
            ORDER BY v.step, v.job_id`}
          ),
          -- Delivered at commit, so idle workers wake as soon as the jobs are visible, with no
          -- round trip of its own. Jobs of a paused queue wake nobody: resuming it notifies.
          -- The project's unpaused queues are looked up once, not once per inserted row.
          notified AS (
            SELECT pg_notify('foreman', 'available:' || ${projectId})
            WHERE EXISTS (SELECT 1 FROM queues q WHERE q.project_id = ${projectId} AND NOT q.paused
                            AND q.name IN (SELECT i.queue FROM inserted i WHERE i.state = 'available'))
          )
          SELECT id, state, attempt, max_attempts, timeout_ms, run_at, retry_policy, review_required, review_deadline_ms,
                 review_on_deadline, created_at, started_at, lease_expires_at, worker_id::text AS worker_id,
                 lease_token::text AS lease_token,
                 CASE WHEN state = 'running' THEN (SELECT ${sql.literal(effectiveRetryPolicy("inserted"))} FROM queues q
                   WHERE q.project_id = inserted.project_id AND q.name = inserted.queue) END AS effective_retry_policy
          FROM inserted CROSS JOIN (SELECT count(*) FROM notified) AS n`.pipe(
          Effect.flatMap(decodeInserted),
          Effect.map((rows) => {
            // The rows come back in the batch's order, some perhaps left out; match by id otherwise.
            const inserted: Array<InsertedJob> = []
            for (const [index, job] of batch.entries()) {
              const row = rows[inserted.length]
              if (row?.id === job.id) inserted.push(toInserted(projectId, job, traceparentAt(traceparents, index), row))
            }
            if (inserted.length === rows.length) return inserted
            const byId = new Map<string, InsertedRow>(rows.map((row) => [row.id, row]))
            return batch.flatMap((job, index) => {
              const row = byId.get(job.id)
              return row === undefined ? [] : [toInserted(projectId, job, traceparentAt(traceparents, index), row)]
            })
          }),
          Effect.orDie,
          traced("JobsRepo.insertMany", { attributes: { "foreman.jobs.count": batch.length } })
        )
      }

      const insertMany = (projectId: ProjectId, batch: ReadonlyArray<NewJob>, actor: string, eager?: EagerClaim) =>
        Effect.flatMap(
          currentTraceparent,
          (traceparent) => insertRows(projectId, batch, traceparent, actor, true, eager)
        )

      // Enqueues of one project and actor that arrive together share one statement (see docs/adr/0007):
      // single jobs, and batches without idempotency keys. A shared statement that fails, or that a
      // batch's missing queue kept empty, is retried request by request, so one request's bad row
      // fails that request alone. Written by hand rather than with Effect's RequestResolver: its
      // batches are pooled and emptied with `Set.clear()`, which leaves every finished request
      // reachable from the pooled (old-generation) sets until the next full collection, so each
      // coalesced request's whole object graph was promoted: 50 MB/s under load, three full
      // collections a second, and most of the enqueue's p99 (docs/benchmarks.md).
      const scope = yield* Scope.Scope
      const open = new Map<string, Group>()

      const flush = (projectId: ProjectId, actor: string, group: Group) => {
        const live = group.waiting.filter((waiting) => !waiting.abandoned)
        const alone = (waiting: Waiting) =>
          Effect.flatMap(
            Effect.exit(insertRows(projectId, waiting.rows, waiting.traceparent, actor, waiting.atomic)),
            (exit) => Deferred.done(waiting.result, exit)
          )
        const [first] = live
        if (first === undefined) return Effect.void
        const atomic = live.some((waiting) => waiting.atomic)
        const written = live.length === 1 ? alone(first) : Effect.flatMap(
          // All or nothing when a batch is among them: a missing queue keeps the whole statement out.
          Effect.exit(insertRows(
            projectId,
            live.flatMap((waiting) => waiting.rows),
            live.flatMap((waiting) => waiting.rows.map(() => waiting.traceparent)),
            actor,
            atomic
          )),
          (exit) => {
            if (Exit.isFailure(exit) || (atomic && exit.value.length === 0)) {
              return Effect.forEach(live, alone, { discard: true })
            }
            // insertRows returns the rows in the order sent, some perhaps left out: each request's
            // rows are the next ones that match its own.
            const inserted = exit.value
            let next = 0
            return Effect.forEach(live, (waiting) => {
              const own: Array<InsertedJob> = []
              for (const row of waiting.rows) {
                const candidate = inserted[next]
                if (candidate?.job.id === row.id) {
                  own.push(candidate)
                  next++
                }
              }
              return Deferred.succeed(waiting.result, own)
            }, { discard: true })
          }
        )
        return traced("JobsRepo.insertCoalesced", {
          attributes: { batchSize: live.length },
          links: live.flatMap((waiting) => waiting.span === undefined ? [] : [{ span: waiting.span, attributes: {} }])
        })(written)
      }

      const coalesce = (projectId: ProjectId, rows: ReadonlyArray<NewJob>, atomic: boolean, actor: string) =>
        Effect.flatMap(
          Effect.option(Effect.currentParentSpan),
          (parent) =>
            Effect.suspend(() => {
              const key = `${projectId} ${actor}`
              const span = Option.getOrUndefined(parent)
              const waiting: Waiting = {
                rows,
                atomic,
                traceparent: span === undefined ? null : requestTraceparent(span),
                result: Deferred.makeUnsafe<ReadonlyArray<InsertedJob>>(),
                span,
                abandoned: false
              }
              let group = open.get(key)
              // A batch that would take the open statement beyond its rows opens the next one.
              if (group !== undefined && group.rows + rows.length > coalesceRows) group = undefined
              const opens = group === undefined
              if (group === undefined) {
                group = { waiting: [], rows: 0 }
                open.set(key, group)
              }
              group.waiting.push(waiting)
              group.rows += rows.length
              // A full group takes no more requests; the next enqueue opens another.
              if (group.waiting.length >= coalesceLimit || group.rows >= coalesceRows) open.delete(key)
              const taken = group
              // The group collects the enqueues that reach this point before the forked fiber first
              // runs, on the scheduler's next turn. Uninterruptible: once opened, the group is written
              // (and its callers answered) even if the scope closes meanwhile.
              const start = opens
                ? Effect.forkIn(
                  Effect.uninterruptible(Effect.suspend(() => {
                    if (open.get(key) === taken) open.delete(key)
                    return flush(projectId, actor, taken)
                  })).pipe(
                    // No caller may wait forever: whatever ends the writer ends the callers it has not answered.
                    Effect.onExit((exit) =>
                      Exit.isSuccess(exit) ? Effect.void : Effect.forEach(taken.waiting, (waiting) =>
                        Deferred.done(waiting.result, Exit.failCause(exit.cause)), { discard: true })
                    )
                  ),
                  scope
                )
                : Effect.void
              return Effect.andThen(
                start,
                Effect.onInterrupt(Deferred.await(waiting.result), () =>
                  Effect.sync(() => {
                    waiting.abandoned = true
                  }))
              )
            })
        )

      const insertCoalesced = (projectId: ProjectId, job: NewJob, actor: string) =>
        Effect.map(coalesce(projectId, [job], false, actor), (rows) => rows[0])

      const insertBatchCoalesced = (projectId: ProjectId, jobs: ReadonlyArray<NewJob>, actor: string) =>
        coalesce(projectId, jobs, true, actor)

      const findByIdempotencyKeys = (projectId: ProjectId, keys: ReadonlyArray<string>) =>
        sql`SELECT ${sql.literal(columns)} FROM jobs
            WHERE project_id = ${projectId} AND idempotency_key IN ${sql.in(keys)}`.pipe(
          Effect.flatMap(stored),
          Effect.orDie,
          traced("JobsRepo.findByIdempotencyKeys")
        )

      const missingQueues = (projectId: ProjectId, names: ReadonlyArray<string>) =>
        sql`SELECT name FROM queues WHERE project_id = ${projectId} AND name IN ${sql.in(names)}`.pipe(
          Effect.flatMap(decodeNames),
          Effect.map((rows) => {
            const found = new Set(rows.map((row) => row.name))
            return new Set(names.filter((name) => !found.has(name)))
          }),
          Effect.orDie,
          traced("JobsRepo.missingQueues")
        )

      const find = (projectId: ProjectId, id: JobId) =>
        sql`SELECT ${sql.literal(columns)} FROM jobs WHERE project_id = ${projectId} AND id = ${id}`.pipe(
          Effect.flatMap(jobs),
          Effect.map((found) => found[0]),
          Effect.orDie,
          traced("JobsRepo.find")
        )

      const list = (projectId: ProjectId, filter: JobFilter, after: string | undefined, limit: number) =>
        sql`SELECT ${sql.literal(columns)} FROM jobs
            WHERE project_id = ${projectId}
            ${filter.queue === undefined ? sql`` : sql`AND queue = ${filter.queue}`}
            ${filter.state === undefined ? sql`` : sql`AND state = ${filter.state}`}
            ${filter.kind === undefined ? sql`` : sql`AND kind = ${filter.kind}`}
            ${filter.assigned_user_id === undefined ? sql`` : sql`AND assigned_user_id = ${filter.assigned_user_id}`}
            ${after === undefined ? sql`` : sql`AND id < ${after}`}
            ORDER BY id DESC LIMIT ${limit}`.pipe(
          Effect.flatMap(jobs),
          Effect.orDie,
          traced("JobsRepo.list")
        )

      const cancel = (projectId: ProjectId, id: JobId, actor: string) =>
        sql`
          WITH target AS (
            SELECT id, state FROM jobs
            WHERE project_id = ${projectId} AND id = ${id} AND state IN ${sql.in(cancellableStates)}
            FOR UPDATE
          ),
          cancelled AS (
            UPDATE jobs j SET state = 'cancelled', finished_at = now(), updated_at = now(),
                              lease_token = NULL, lease_expires_at = NULL
            FROM target t WHERE j.id = t.id
            RETURNING j.*, t.state AS from_state
          ),
          events AS (
            INSERT INTO job_events (job_id, project_id, type, from_state, to_state, attempt, actor)
            SELECT c.id, c.project_id, 'cancelled', c.from_state, 'cancelled', c.attempt, ${actor} FROM cancelled c
          )
          SELECT ${sql.literal(columns)}, from_state FROM cancelled`.pipe(
          Effect.flatMap((rows) =>
            Effect.map(jobs(rows), (found) => {
              const first = rows[0]
              const job = found[0]
              const from = typeof first === "object" && first !== null && "from_state" in first ? String(first.from_state) : ""
              return job === undefined ? undefined : { job, from }
            })
          ),
          Effect.orDie,
          traced("JobsRepo.cancel")
        )

      const retry = (projectId: ProjectId, id: JobId, actor: string) =>
        sql`
          WITH target AS (
            SELECT id, state FROM jobs
            WHERE project_id = ${projectId} AND id = ${id} AND state IN ${sql.in(retryableStates)}
            FOR UPDATE
          ),
          retried AS (
            UPDATE jobs j
            SET state = 'available', run_at = now(), finished_at = NULL, updated_at = now(),
                attempt = CASE WHEN t.state = 'retrying' THEN j.attempt ELSE 0 END
            FROM target t WHERE j.id = t.id
            RETURNING j.*, t.state AS from_state
          ),
          events AS (
            INSERT INTO job_events (job_id, project_id, type, from_state, to_state, attempt, actor)
            SELECT r.id, r.project_id, 'retried', r.from_state, 'available', r.attempt, ${actor} FROM retried r
          ),
          notified AS (SELECT pg_notify('foreman', 'available:' || project_id) FROM retried)
          SELECT ${sql.literal(columns)}, (SELECT count(*) FROM notified) AS notified FROM retried`.pipe(
          Effect.flatMap(jobs),
          Effect.map((found) => found[0]),
          Effect.orDie,
          traced("JobsRepo.retry")
        )

      const events = (projectId: ProjectId, id: JobId, after: string | undefined, limit: number) =>
        sql`SELECT id::text AS id, job_id, at, type, from_state, to_state, attempt, actor, error, data, worker_id::text AS worker_id
            FROM job_events
            WHERE job_id = ${id} AND project_id = ${projectId}
            ${after === undefined ? sql`` : sql`AND job_events.id > ${after}`}
            ORDER BY job_events.id LIMIT ${limit}`.pipe(
          Effect.flatMap(decodeEvents),
          Effect.orDie,
          traced("JobsRepo.events")
        )

      return JobsRepo.of({ insertMany, insertCoalesced, insertBatchCoalesced, findByIdempotencyKeys, missingQueues, find, list, cancel, retry, events })
    })
  )
}
