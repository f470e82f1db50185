import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { ClaimSql } from "../Sql/Database.ts"
import { JobId, ProjectId, QueueName } from "../Domain/Ids.ts"
import { ReviewFeedback } from "../Domain/Review.ts"
import { RetryPolicy } from "../Queues/Api.ts"
import { traced } from "../Observability/Tracing.ts"

/** A job handed to a worker: everything it needs to run one attempt, and to fail it correctly. */
export const ClaimedJob = Schema.Struct({
  id: JobId,
  project_id: ProjectId,
  queue: QueueName,
  kind: Schema.String,
  payload: Schema.Json,
  priority: Schema.Int,
  attempt: Schema.Int,
  max_attempts: Schema.Int,
  timeout_ms: Schema.Int,
  lease_token: Schema.String,
  lease_expires_at: Schema.Date,
  started_at: Schema.Date,
  created_at: Schema.Date,
  retry_policy: RetryPolicy,
  /** The W3C trace context of the request that enqueued the job; `null` when there was none. */
  traceparent: Schema.NullOr(Schema.String),
  /** The trace context of the job's previous attempt; `null` on the first attempt or when it reported none. */
  last_attempt_traceparent: Schema.NullOr(Schema.String),
  /** Why a reviewer sent the previous result back (rejected with retry); `null` when none was. */
  review_feedback: Schema.NullOr(ReviewFeedback)
})
export type ClaimedJob = typeof ClaimedJob.Type

/**
 * A claimed row as the claim returns it: the job's own retry policy (`null`
 * unless it overrides its queue's) beside the queue's backoff settings, which
 * the claim returns as columns and `claimedJob` turns into the effective
 * policy. Building that policy as `jsonb` in the claim, then parsing and
 * checking it again here, cost both processes about a tenth of a claim.
 */
const ClaimedRow = Schema.Struct({
  ...ClaimedJob.fields,
  retry_policy: Schema.NullOr(RetryPolicy),
  backoff_initial_ms: Schema.Int,
  backoff_factor: Schema.Number,
  backoff_max_ms: Schema.Int,
  backoff_jitter: Schema.Number
})
const decodeClaimed = Schema.decodeUnknownEffect(Schema.Array(ClaimedRow))

// Spelled out: a rest pattern (`{ a, ...job } = row`) copies through V8's slow generic path,
// which took a tenth of the engine's CPU in the drain benchmark.
const claimedJob = (row: typeof ClaimedRow.Type): ClaimedJob => ({
  id: row.id,
  project_id: row.project_id,
  queue: row.queue,
  kind: row.kind,
  payload: row.payload,
  priority: row.priority,
  attempt: row.attempt,
  max_attempts: row.max_attempts,
  timeout_ms: row.timeout_ms,
  lease_token: row.lease_token,
  lease_expires_at: row.lease_expires_at,
  started_at: row.started_at,
  created_at: row.created_at,
  retry_policy: row.retry_policy ?? {
    max_attempts: row.max_attempts,
    initial_delay_ms: row.backoff_initial_ms,
    factor: row.backoff_factor,
    max_delay_ms: row.backoff_max_ms,
    jitter: row.backoff_jitter
  },
  traceparent: row.traceparent,
  last_attempt_traceparent: row.last_attempt_traceparent,
  review_feedback: row.review_feedback
})

export interface ClaimRequest {
  readonly limit: number
  /** Only these kinds; `null` for any kind. */
  readonly kinds: ReadonlyArray<string> | null
  /** Only this project; `null` for every project (the in-process engine). */
  readonly projectId: ProjectId | null
  readonly workerId: string | null
  /** Also jobs assigned to one of these labels (and to `workerId`, and to `userId`); unassigned jobs always. */
  readonly labels: ReadonlyArray<string>
  readonly userId: string | null
  readonly leaseMs: number
  readonly actor: string
  /**
   * Whether queues with `max_running` are claimed from. They need a transaction
   * and a per-queue lock; without them the claim is a single statement that
   * skips capped queues.
   */
  readonly includeCapped: boolean
  /** Whether jobs of the service's own queues (names starting with `_`) may be claimed: engine instances only. */
  readonly systemQueues: boolean
}

export interface Completion {
  readonly id: string
  readonly token: string
  readonly result: unknown
  /** The attempt's trace context: stored as the job's `last_attempt_traceparent` and in the event's `data`. */
  readonly traceparent?: string | null | undefined
}

/** A failed attempt. `delay_ms` is the backoff before the next attempt, or `null` when the job is dead. */
export interface Failure {
  readonly id: string
  readonly token: string
  readonly error: unknown
  readonly delay_ms: number | null
  /** The attempt's trace context: stored as the job's `last_attempt_traceparent` and in the event's `data`. */
  readonly traceparent?: string | null | undefined
}

/**
 * What recording an outcome returns for each job it moved. The trace contexts
 * its attempt span links to are `null` unless `attemptContexts` was asked for.
 */
export const RecordedAttempt = Schema.Struct({
  id: JobId,
  /** The trace context of the request that enqueued the job. */
  enqueue_traceparent: Schema.NullOr(Schema.String),
  /** The previous attempt's context, as it was before this outcome replaced it. */
  previous_traceparent: Schema.NullOr(Schema.String)
})
export type RecordedAttempt = typeof RecordedAttempt.Type

export interface RecordOptions {
  /**
   * Also return each job's trace contexts (one primary-key probe per job for the
   * previous attempt's): for callers that write an attempt span after the fact,
   * i.e. for external workers. The in-process engine has them from the claim.
   */
  readonly attemptContexts?: boolean | undefined
}

export interface Held {
  readonly id: string
  readonly token: string
}

/** An expired lease, with what is needed to decide between retry and dead. */
export const ExpiredLease = Schema.Struct({
  id: JobId,
  lease_token: Schema.String,
  attempt: Schema.Int,
  max_attempts: Schema.Int,
  timed_out: Schema.Boolean,
  retry_policy: RetryPolicy,
  /** For the lost attempt's span. */
  queue: QueueName,
  kind: Schema.String,
  started_at: Schema.Date,
  traceparent: Schema.NullOr(Schema.String),
  last_attempt_traceparent: Schema.NullOr(Schema.String)
})
export type ExpiredLease = typeof ExpiredLease.Type
const decodeExpired = Schema.decodeUnknownEffect(Schema.Array(ExpiredLease))

const FailedRow = Schema.Struct({ ...RecordedAttempt.fields, state: Schema.String })
const decodeFailed = Schema.decodeUnknownEffect(Schema.Array(FailedRow))

/** A job's effective retry policy: its own override, else its queue's (`q`), with the job's max_attempts. */
export const effectiveRetryPolicy = (job: string) =>
  `coalesce(${job}.retry_policy, jsonb_build_object(
    'max_attempts', ${job}.max_attempts, 'initial_delay_ms', q.backoff_initial_ms, 'factor', q.backoff_factor,
    'max_delay_ms', q.backoff_max_ms, 'jitter', q.backoff_jitter))`
const effectivePolicy = (job: string) => `${effectiveRetryPolicy(job)} AS retry_policy`

const claimedColumns = `c.id, c.project_id, c.queue, c.kind, c.payload, c.priority, c.attempt, c.max_attempts,
  c.timeout_ms, c.lease_token::text AS lease_token, c.lease_expires_at, c.started_at, c.created_at, c.traceparent,
  c.last_attempt_traceparent, c.review_feedback, c.retry_policy, q.backoff_initial_ms, q.backoff_factor,
  q.backoff_max_ms, q.backoff_jitter`

// Key space for the per-queue advisory locks that serialise claims on queues with a concurrency cap.
const queueLockSpace = 7_401_003

/**
 * The engine's SQL, one statement per transition. Every statement that moves
 * a job also appends its `job_events` rows in the same statement, and every
 * statement that acts for a lease holder checks the lease token (fencing).
 * A token exists only while its job runs (constraint `jobs_lease_only_running`),
 * so those statements match the token alone: a `state = 'running'` condition
 * lets the planner walk every running job's index entry instead of probing the
 * primary key when its statistics saw few running jobs.
 */
export class EngineRepo extends Context.Service<EngineRepo, {
  claim(request: ClaimRequest): Effect.Effect<ReadonlyArray<ClaimedJob>>
  complete(batch: ReadonlyArray<Completion>, actor: string, options?: RecordOptions): Effect.Effect<ReadonlyArray<RecordedAttempt>>
  fail(
    batch: ReadonlyArray<Failure>,
    actor: string,
    type: string,
    options?: RecordOptions
  ): Effect.Effect<ReadonlyArray<typeof FailedRow.Type>>
  /** Extends the leases still held; returns the ids that were extended. */
  heartbeat(held: ReadonlyArray<Held>, leaseMs: number, progress: unknown): Effect.Effect<ReadonlyArray<{ readonly id: string; readonly lease_expires_at: Date }>>
  /** Hands running jobs back untouched (the attempt is not counted): used on shutdown. */
  release(held: ReadonlyArray<Held>, actor: string): Effect.Effect<number>
  expiredLeases(limit: number): Effect.Effect<ReadonlyArray<ExpiredLease>>
  promoteDue(limit: number): Effect.Effect<number>
  pruneFinished(limit: number): Effect.Effect<number>
  /** Whether any unpaused queue has a `max_running` cap (cheap; polled by the engine). */
  readonly hasCappedQueues: Effect.Effect<boolean>
  notifyAvailable(projectIds: ReadonlyArray<string>): Effect.Effect<void>
  notifyCancelled(jobId: string): Effect.Effect<void>
}>()("foreman/EngineRepo") {
  static readonly layer = Layer.effect(
    EngineRepo,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const claimSql = yield* ClaimSql

      // Capped queues are locked in a statement of their own, before the claim. A statement's
      // snapshot is taken when it starts, so a lock taken inside the claim statement could be
      // granted after another claimer committed and released it, with a snapshot that misses
      // the jobs that claimer just started: both would see room for the same slot.
      // The claim then uses statement_timestamp(), not now() (the transaction's start, before
      // the lock was taken), so its times agree with what its snapshot saw.
      const lockCappedQueues = (projectId: ProjectId | null) =>
        claimSql<{ readonly id: string }>`
          SELECT q.id::text AS id FROM queues q
          WHERE q.max_running IS NOT NULL AND NOT q.paused
            ${projectId === null ? claimSql`` : claimSql`AND q.project_id = ${projectId}`}
            AND pg_try_advisory_xact_lock(${queueLockSpace}, hashtext(q.id::text))`.pipe(
          Effect.map((rows) => rows.map((row) => row.id))
        )

      // A worker's outcome counter, bumped once per worker in the batch (one aggregated
      // update per statement, never per job). Rows without a worker count for nobody.
      const workerCounter = (column: "succeeded_count" | "failed_count" | "lease_expired_count" | null, rows: string) =>
        column === null ? sql`counted AS (SELECT 0)` : sql`counted AS (
            UPDATE workers w SET ${sql.literal(column)} = w.${sql.literal(column)} + c.n
            FROM (SELECT worker_id, count(*) AS n FROM ${sql.literal(rows)} WHERE worker_id IS NOT NULL GROUP BY worker_id) c
            WHERE w.id = c.worker_id
          )`

      // For RETURNING. Its sub-select still sees the row as it was before this statement updated it.
      const attemptContexts = (options: RecordOptions | undefined) =>
        options?.attemptContexts === true
          ? sql`j.traceparent AS enqueue_traceparent,
                (SELECT o.last_attempt_traceparent FROM jobs o WHERE o.id = j.id) AS previous_traceparent`
          : sql`NULL::text AS enqueue_traceparent, NULL::text AS previous_traceparent`

      /** `locked`: the capped queues this transaction holds; `null` on the fast path, which skips capped queues. */
      const claimStatement = (request: ClaimRequest, locked: ReadonlyArray<string> | null) => {
        // The fast path plans and runs without the room computation and the per-queue ranking
        // (about a fifth of a one-job claim's time): capped queues are simply left out.
        const capped = locked !== null && locked.length > 0
        return claimSql`
          WITH ${capped ? claimSql`limited AS (
            SELECT q.project_id, q.name,
                   q.max_running - (SELECT count(*) FROM jobs r
                                    WHERE r.project_id = q.project_id AND r.queue = q.name AND r.state = 'running') AS room
            FROM queues q
            WHERE q.id IN ${claimSql.in(locked)}
          ),` : claimSql``}
          candidates AS (
            -- No join with queues here: a join makes the planner scan and sort every runnable
            -- job instead of walking jobs_claim in order and stopping at the limit. Paused
            -- queues and capped queues without room are excluded by a hashed NOT IN filter.
            SELECT j.id, j.project_id, j.queue, j.priority, j.run_at, j.state
            FROM jobs j
            WHERE j.state IN ('available', 'scheduled', 'retrying') AND j.run_at <= statement_timestamp()
              -- The claim commits without waiting for its WAL to reach disk (docs/adr/0003). Uncorrelated,
              -- so set once per statement, for this transaction only.
              AND (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL
              ${request.kinds === null ? claimSql`` : claimSql`AND j.kind IN ${claimSql.in(request.kinds)}`}
              ${request.projectId === null ? claimSql`` : claimSql`AND j.project_id = ANY(ARRAY[${request.projectId}]::uuid[])`}
              ${request.systemQueues ? claimSql`` : claimSql`AND NOT starts_with(j.queue, '_')`}
              -- A disabled worker claims nothing. Uncorrelated, so evaluated once per statement; the key-share
              -- lock makes a concurrent disable wait for this claim and then release what it took.
              ${request.workerId === null ? claimSql`` : claimSql`AND EXISTS (SELECT 1 FROM workers w
                WHERE w.id = ${request.workerId} AND w.disabled_at IS NULL FOR KEY SHARE)`}
              AND (j.assigned_worker_id IS NULL AND j.assigned_label IS NULL AND j.assigned_user_id IS NULL
                ${request.workerId === null ? claimSql`` : claimSql`OR j.assigned_worker_id = ${request.workerId}`}
                ${request.labels.length === 0 ? claimSql`` : claimSql`OR j.assigned_label IN ${claimSql.in(request.labels)}`}
                ${request.userId === null ? claimSql`` : claimSql`OR j.assigned_user_id = ${request.userId}`})
              AND (j.project_id, j.queue) NOT IN (
                SELECT q.project_id, q.name FROM queues q
                WHERE q.paused OR (q.max_running IS NOT NULL ${capped ? claimSql`AND NOT EXISTS (
                  SELECT 1 FROM limited l WHERE l.project_id = q.project_id AND l.name = q.name AND l.room > 0)` : claimSql``}))
            -- Within one project (an external worker's claim) the same order, led by the project. Written
            -- as = ANY(ARRAY[...]), the project is not a constant to the planner, so the order is one only
            -- jobs_claim_project gives without a sort: the planner, which cannot know that another
            -- tenant's backlog sits at the head of jobs_claim, never walks it (test/regression/project-claim).
            ORDER BY ${request.projectId === null ? claimSql`` : claimSql`j.project_id, `}j.priority, j.run_at, j.id
            LIMIT ${request.limit}
            FOR UPDATE OF j SKIP LOCKED
          ),
          allowed AS (${capped ? claimSql`
            SELECT c.id, c.state
            FROM (SELECT c.*, row_number() OVER (PARTITION BY c.project_id, c.queue ORDER BY c.priority, c.run_at, c.id) AS rn
                  FROM candidates c) c
            LEFT JOIN limited l ON l.project_id = c.project_id AND l.name = c.queue
            WHERE l.room IS NULL OR c.rn <= l.room` : claimSql`
            SELECT c.id, c.state FROM candidates c`}
          ),
          claimed AS (
            -- ANY(ARRAY(...)) keeps the update on the primary-key index; a join here lets the
            -- planner pick a sequential scan of the whole table.
            UPDATE jobs j
            SET state = 'running', attempt = j.attempt + 1, lease_token = gen_random_uuid(),
                lease_expires_at = least(statement_timestamp() + ${request.leaseMs} * interval '1 millisecond',
                                         statement_timestamp() + j.timeout_ms * interval '1 millisecond'),
                started_at = statement_timestamp(), worker_id = ${request.workerId}, progress = NULL, updated_at = statement_timestamp()
            WHERE j.id = ANY(ARRAY(SELECT a.id FROM allowed a))
            RETURNING j.id, j.project_id, j.queue, j.kind, j.payload, j.priority, j.run_at, j.attempt, j.max_attempts,
                      j.timeout_ms, j.lease_token, j.lease_expires_at, j.started_at, j.created_at, j.traceparent,
                      j.last_attempt_traceparent, j.review_feedback, j.retry_policy, j.worker_id
          ),
          events AS (
            INSERT INTO job_events (job_id, project_id, type, from_state, to_state, attempt, actor, at, worker_id)
            SELECT c.id, c.project_id, 'started', a.state, 'running', c.attempt, ${request.actor}, statement_timestamp(), c.worker_id
            FROM claimed c JOIN allowed a ON a.id = c.id
          )
          SELECT ${claimSql.literal(claimedColumns)}
          FROM claimed c JOIN queues q ON q.project_id = c.project_id AND q.name = c.queue
          ORDER BY c.priority, c.run_at, c.id`
      }

      const claim = (request: ClaimRequest): Effect.Effect<ReadonlyArray<ClaimedJob>> =>
        request.limit <= 0 || (request.kinds !== null && request.kinds.length === 0) ? Effect.succeed([]) : (
          request.includeCapped
            ? claimSql.withTransaction(Effect.flatMap(lockCappedQueues(request.projectId), (locked) => claimStatement(request, locked)))
            // No capped queue in scope: one autocommit statement, where statement_timestamp() is now().
            : claimStatement(request, null)
        ).pipe(
          Effect.flatMap(decodeClaimed),
          Effect.map((rows) => rows.map(claimedJob)),
          Effect.orDie,
          traced("EngineRepo.claim", { attributes: { "foreman.claim.limit": request.limit } })
        )

      const complete = (batch: ReadonlyArray<Completion>, actor: string, options?: RecordOptions) =>
        batch.length === 0 ? Effect.succeed([]) : sql<RecordedAttempt>`
          WITH input AS (
            SELECT * FROM jsonb_to_recordset(${JSON.stringify(batch)}::jsonb) AS x(id uuid, token uuid, result jsonb, traceparent text)
          ),
          done AS (
            -- A job whose review policy requires it waits for a reviewer instead of succeeding.
            UPDATE jobs j
            SET state = CASE WHEN j.review_required THEN 'awaiting_review' ELSE 'succeeded' END,
                result = i.result, finished_at = CASE WHEN j.review_required THEN NULL ELSE now() END,
                review_requested_at = CASE WHEN j.review_required THEN now() ELSE j.review_requested_at END,
                review_due_at = CASE WHEN j.review_required
                                     THEN now() + j.review_deadline_ms * interval '1 millisecond' ELSE j.review_due_at END,
                review_escalated_at = CASE WHEN j.review_required THEN NULL ELSE j.review_escalated_at END,
                updated_at = now(), lease_token = NULL, lease_expires_at = NULL,
                last_attempt_traceparent = i.traceparent
            FROM input i
            WHERE j.id = ANY(ARRAY(SELECT id FROM input)) AND j.id = i.id AND j.lease_token = i.token
            RETURNING j.id, j.project_id, j.attempt, j.state, i.traceparent, j.worker_id,
                      ${attemptContexts(options)}
          ),
          events AS (
            INSERT INTO job_events (job_id, project_id, type, from_state, to_state, attempt, actor, data, worker_id)
            SELECT d.id, d.project_id, d.state, 'running', d.state, d.attempt, ${actor},
                   CASE WHEN d.traceparent IS NOT NULL THEN jsonb_build_object('traceparent', d.traceparent) END, d.worker_id
            FROM done d
          ),
          ${workerCounter("succeeded_count", "done")}
          SELECT id::text AS id, enqueue_traceparent, previous_traceparent FROM done`.pipe(
          Effect.orDie,
          traced("EngineRepo.complete", { attributes: { "foreman.jobs.count": batch.length } })
        )

      const fail = (batch: ReadonlyArray<Failure>, actor: string, type: string, options?: RecordOptions) =>
        batch.length === 0 ? Effect.succeed([]) : sql`
          WITH input AS (
            SELECT * FROM jsonb_to_recordset(${JSON.stringify(batch)}::jsonb)
              AS x(id uuid, token uuid, error jsonb, delay_ms bigint, traceparent text)
          ),
          failed AS (
            UPDATE jobs j
            SET state = CASE WHEN i.delay_ms IS NULL THEN 'dead' ELSE 'retrying' END,
                run_at = CASE WHEN i.delay_ms IS NULL THEN j.run_at ELSE now() + i.delay_ms * interval '1 millisecond' END,
                finished_at = CASE WHEN i.delay_ms IS NULL THEN now() ELSE NULL END,
                last_error = i.error, lease_token = NULL, lease_expires_at = NULL, updated_at = now(),
                last_attempt_traceparent = i.traceparent
            FROM input i
            WHERE j.id = ANY(ARRAY(SELECT id FROM input)) AND j.id = i.id AND j.lease_token = i.token
            RETURNING j.id, j.project_id, j.attempt, j.state, j.run_at, i.error, i.traceparent, j.worker_id,
                      ${attemptContexts(options)}
          ),
          events AS (
            INSERT INTO job_events (job_id, project_id, type, from_state, to_state, attempt, actor, error, data, worker_id)
            SELECT f.id, f.project_id, ${type}, 'running', f.state, f.attempt, ${actor}, f.error,
                   nullif(jsonb_strip_nulls(jsonb_build_object(
                     'retry_at', CASE WHEN f.state = 'retrying' THEN f.run_at END, 'traceparent', f.traceparent)), '{}'),
                   f.worker_id
            FROM failed f
          ),
          ${workerCounter(type === "lease_expired" ? "lease_expired_count" : type === "failed" ? "failed_count" : null, "failed")}
          SELECT id, state, enqueue_traceparent, previous_traceparent FROM failed`.pipe(
          Effect.flatMap(decodeFailed),
          Effect.orDie,
          traced("EngineRepo.fail", { attributes: { "foreman.jobs.count": batch.length, "foreman.fail.type": type } })
        )

      const heartbeat = (held: ReadonlyArray<Held>, leaseMs: number, progress: unknown) =>
        held.length === 0 ? Effect.succeed([]) : sql<{ readonly id: string; readonly lease_expires_at: Date }>`
          WITH input AS (SELECT * FROM jsonb_to_recordset(${JSON.stringify(held)}::jsonb) AS x(id uuid, token uuid)),
          extended AS (
            UPDATE jobs j
            SET lease_expires_at = least(now() + ${leaseMs} * interval '1 millisecond',
                                         j.started_at + j.timeout_ms * interval '1 millisecond'),
                progress = coalesce(${progress === undefined ? null : JSON.stringify(progress)}::jsonb, j.progress)
            FROM input i
            WHERE j.id = ANY(ARRAY(SELECT id FROM input)) AND j.id = i.id AND j.lease_token = i.token
              AND j.lease_expires_at > now()
            RETURNING j.id, j.lease_expires_at, j.worker_id
          ),
          -- A heartbeat is a sign of life: one row per worker in the batch (usually one).
          seen AS (
            UPDATE workers w SET last_seen_at = now()
            WHERE w.id IN (SELECT DISTINCT worker_id FROM extended WHERE worker_id IS NOT NULL)
          )
          SELECT id::text AS id, lease_expires_at FROM extended`.pipe(
          Effect.orDie,
          traced("EngineRepo.heartbeat", { attributes: { "foreman.jobs.count": held.length } })
        )

      const release = (held: ReadonlyArray<Held>, actor: string) =>
        held.length === 0 ? Effect.succeed(0) : sql<{ readonly id: string }>`
          WITH input AS (SELECT * FROM jsonb_to_recordset(${JSON.stringify(held)}::jsonb) AS x(id uuid, token uuid)),
          released AS (
            UPDATE jobs j
            SET state = 'available', attempt = j.attempt - 1, run_at = now(), lease_token = NULL,
                lease_expires_at = NULL, updated_at = now()
            FROM input i
            WHERE j.id = ANY(ARRAY(SELECT id FROM input)) AND j.id = i.id AND j.lease_token = i.token
            RETURNING j.id, j.project_id, j.attempt
          ),
          events AS (
            INSERT INTO job_events (job_id, project_id, type, from_state, to_state, attempt, actor)
            SELECT r.id, r.project_id, 'released', 'running', 'available', r.attempt + 1, ${actor} FROM released r
          )
          SELECT id::text AS id FROM released`.pipe(
          Effect.map((rows) => rows.length),
          Effect.orDie,
          traced("EngineRepo.release")
        )

      const expiredLeases = (limit: number) =>
        sql`
          SELECT j.id, j.lease_token::text AS lease_token, j.attempt, j.max_attempts,
                 (j.started_at + j.timeout_ms * interval '1 millisecond' <= now()) AS timed_out,
                 ${sql.literal(effectivePolicy("j"))}, j.queue, j.kind, j.started_at, j.traceparent, j.last_attempt_traceparent
          FROM jobs j JOIN queues q ON q.project_id = j.project_id AND q.name = j.queue
          WHERE j.state = 'running' AND j.lease_expires_at <= now()
          ORDER BY j.lease_expires_at
          LIMIT ${limit}
          FOR UPDATE OF j SKIP LOCKED`.pipe(
          Effect.flatMap(decodeExpired),
          Effect.orDie,
          traced("EngineRepo.expiredLeases")
        )

      const promoteDue = (limit: number) =>
        sql<{ readonly n: number }>`
          WITH due AS (
            SELECT id, state FROM jobs
            WHERE state IN ('scheduled', 'retrying') AND run_at <= now()
            ORDER BY run_at LIMIT ${limit}
            FOR UPDATE SKIP LOCKED
          ),
          promoted AS (
            UPDATE jobs j SET state = 'available', updated_at = now()
            FROM due d WHERE j.id = d.id
            RETURNING j.id, j.project_id, j.attempt, d.state AS from_state
          ),
          events AS (
            INSERT INTO job_events (job_id, project_id, type, from_state, to_state, attempt, actor)
            SELECT p.id, p.project_id, 'available', p.from_state, 'available', p.attempt, 'system' FROM promoted p
          ),
          notified AS (
            SELECT pg_notify('foreman', 'available:' || project_id) FROM (SELECT DISTINCT project_id FROM promoted) p
          )
          SELECT (SELECT count(*) FROM promoted)::int AS n, (SELECT count(*) FROM notified)::int AS notified`.pipe(
          Effect.map((rows) => rows[0]?.n ?? 0),
          Effect.orDie,
          traced("EngineRepo.promoteDue")
        )

      const pruneFinished = (limit: number) =>
        sql<{ readonly n: number }>`
          WITH doomed AS (
            -- Queue by queue, oldest first along jobs_finished, so the scan stops at the queue's
            -- cutoff. Joined without that order, the planner expected plenty of due rows and read
            -- the whole table every maintenance round: a second of CPU each time with 1,000,000
            -- finished jobs retained, none of them due.
            SELECT d.id FROM queues q CROSS JOIN LATERAL (
              SELECT j.id FROM jobs j
              WHERE j.project_id = q.project_id AND j.queue = q.name AND j.finished_at IS NOT NULL
                AND j.finished_at < now() - q.retention_seconds * interval '1 second'
                AND j.state IN ('succeeded', 'dead', 'cancelled', 'rejected')
              ORDER BY j.finished_at
              LIMIT ${limit}
              FOR UPDATE OF j SKIP LOCKED
            ) d
            LIMIT ${limit}
          ),
          deleted AS (DELETE FROM jobs j USING doomed d WHERE j.id = d.id RETURNING j.id),
          -- ANY(ARRAY(...)) keeps this on job_events_job; IN (SELECT ...) let the planner hash-join a scan of every event.
          events AS (DELETE FROM job_events e WHERE e.job_id = ANY(ARRAY(SELECT id FROM deleted)))
          SELECT count(*)::int AS n FROM deleted`.pipe(
          Effect.map((rows) => rows[0]?.n ?? 0),
          Effect.orDie,
          traced("EngineRepo.pruneFinished")
        )

      const notifyAvailable = (projectIds: ReadonlyArray<string>) =>
        Effect.forEach(new Set(projectIds), (projectId) => sql`SELECT pg_notify('foreman', ${`available:${projectId}`})`, {
          discard: true
        }).pipe(Effect.orDie)

      const notifyCancelled = (jobId: string) =>
        sql`SELECT pg_notify('foreman', ${`cancelled:${jobId}`})`.pipe(Effect.asVoid, Effect.orDie)

      const hasCappedQueues = sql<{ readonly capped: boolean }>`
        SELECT EXISTS (SELECT 1 FROM queues WHERE max_running IS NOT NULL AND NOT paused) AS capped`.pipe(
        Effect.map((rows) => rows[0]?.capped === true),
        Effect.orDie
      )

      return EngineRepo.of({
        hasCappedQueues,
        claim,
        complete,
        fail,
        heartbeat,
        release,
        expiredLeases,
        promoteDue,
        pruneFinished,
        notifyAvailable,
        notifyCancelled
      })
    })
  )
}
