import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import type { JobId, ProjectId, QueueName } from "../Domain/Ids.ts"
import { JobId as JobIdSchema, ProjectId as ProjectIdSchema } from "../Domain/Ids.ts"
import { OnDeadline } from "../Domain/Review.ts"
import { JobState } from "../Jobs/Api.ts"
import { type Decision, Review } from "./Api.ts"
import { traced } from "../Observability/Tracing.ts"

const decodeReviews = Schema.decodeUnknownEffect(Schema.Array(Review))

/** A job a decision or the deadline sweep moved: where it went and who produced its result. */
export const Decided = Schema.Struct({
  id: JobIdSchema,
  project_id: ProjectIdSchema,
  state: JobState,
  attempt: Schema.Int,
  worker_id: Schema.NullOr(Schema.String),
  outcome: OnDeadline
})
export type Decided = typeof Decided.Type
const decodeDecided = Schema.decodeUnknownEffect(Schema.Array(Decided))

export interface ReviewFilter {
  readonly queue?: QueueName | undefined
  readonly kind?: string | undefined
  readonly overdue?: boolean | undefined
}

export interface DecisionInput {
  readonly decision: Decision
  readonly comment: string | null
  readonly actor: string
  readonly requestId: string | null
}

const eventType: Record<Decision, string> = {
  approve: "review.approved",
  reject: "review.rejected",
  retry: "review.rejected"
}

export class ReviewsRepo extends Context.Service<ReviewsRepo, {
  list(projectId: ProjectId, filter: ReviewFilter, after: string | undefined, limit: number): Effect.Effect<ReadonlyArray<Review>>
  /**
   * Applies a reviewer's decision to a job awaiting review, with its event and the
   * producing worker's counter, in one statement. `undefined` when the job is not
   * (or no longer) awaiting review.
   */
  decide(projectId: ProjectId, id: JobId, input: DecisionInput): Effect.Effect<Decided | undefined>
  /**
   * Applies the configured outcome to up to `limit` reviews whose deadline is at or
   * before `now`: approve, reject (final), or escalate (an event, once; the job keeps
   * waiting).
   */
  sweepDeadlines(now: Date, limit: number): Effect.Effect<ReadonlyArray<Decided>>
}>()("foreman/ReviewsRepo") {
  static readonly layer = Layer.effect(
    ReviewsRepo,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient

      const list = (projectId: ProjectId, filter: ReviewFilter, after: string | undefined, limit: number) =>
        sql`SELECT id AS job_id, project_id, queue, kind, payload, result, attempt, max_attempts,
                   worker_id::text AS worker_id, review_requested_at AS requested_at, review_due_at AS due_at,
                   coalesce(review_due_at <= now(), false) AS overdue, review_on_deadline AS on_deadline,
                   review_escalated_at AS escalated_at, review_feedback AS previous_feedback
            FROM jobs
            WHERE project_id = ${projectId} AND state = 'awaiting_review'
            ${filter.queue === undefined ? sql`` : sql`AND queue = ${filter.queue}`}
            ${filter.kind === undefined ? sql`` : sql`AND kind = ${filter.kind}`}
            ${
          filter.overdue === undefined
            ? sql``
            : filter.overdue
            ? sql`AND review_due_at <= now()`
            : sql`AND (review_due_at IS NULL OR review_due_at > now())`
        }
            ${after === undefined ? sql`` : sql`AND id > ${after}`}
            ORDER BY id LIMIT ${limit}`.pipe(
          Effect.flatMap(decodeReviews),
          Effect.orDie,
          traced("ReviewsRepo.list")
        )

      const decide = (projectId: ProjectId, id: JobId, input: DecisionInput) => {
        const retry = input.decision === "retry"
        const newState = input.decision === "approve"
          ? sql`'succeeded'`
          : input.decision === "reject"
          ? sql`'rejected'`
          : sql`CASE WHEN t.attempt >= t.max_attempts THEN 'dead' ELSE 'available' END`
        const data = JSON.stringify({ decision: input.decision, comment: input.comment, request_id: input.requestId })
        return sql`
          WITH target AS (
            SELECT id, attempt, max_attempts FROM jobs
            WHERE project_id = ${projectId} AND id = ${id} AND state = 'awaiting_review'
            FOR UPDATE
          ),
          decided AS (
            UPDATE jobs j
            SET state = ${newState},
                finished_at = CASE WHEN ${newState} = 'available' THEN NULL ELSE now() END,
                run_at = CASE WHEN ${newState} = 'available' THEN now() ELSE j.run_at END,
                review_feedback = ${
          retry
            ? sql`jsonb_build_object('comment', ${input.comment}::text, 'attempt', j.attempt, 'decided_at', now())`
            : sql`j.review_feedback`
        },
                last_error = CASE WHEN ${newState} = 'dead' THEN jsonb_build_object(
                  'message', 'rejected in review with no attempts left', 'retryable', false,
                  'details', jsonb_build_object('comment', ${input.comment}::text)) ELSE j.last_error END,
                updated_at = now()
            FROM target t WHERE j.id = t.id
            RETURNING j.id, j.project_id, j.attempt, j.state, j.worker_id
          ),
          events AS (
            INSERT INTO job_events (job_id, project_id, type, from_state, to_state, attempt, actor, data, worker_id)
            SELECT d.id, d.project_id, ${eventType[input.decision]}, 'awaiting_review', d.state, d.attempt, ${input.actor},
                   ${data}::jsonb, d.worker_id
            FROM decided d
          ),
          reputation AS (
            UPDATE workers w
            SET ${input.decision === "approve" ? sql`approved_count = w.approved_count + 1` : sql`rejected_count = w.rejected_count + 1`}
            FROM decided d WHERE w.id = d.worker_id
          ),
          notified AS (SELECT pg_notify('foreman', 'available:' || project_id) FROM decided WHERE state = 'available')
          SELECT d.id, d.project_id, d.state, d.attempt, d.worker_id::text AS worker_id,
                 ${input.decision === "approve" ? "approve" : "reject"} AS outcome,
                 (SELECT count(*) FROM notified) AS notified
          FROM decided d`.pipe(
          Effect.flatMap(decodeDecided),
          Effect.map((rows) => rows[0]),
          Effect.orDie,
          traced("ReviewsRepo.decide", { attributes: { "foreman.review.decision": input.decision } })
        )
      }

      // Automatic decisions leave the workers' approved/rejected counters alone: a lapsed
      // deadline says nothing about the quality of the result.
      const sweepDeadlines = (now: Date, limit: number) =>
        sql`
          WITH due AS (
            SELECT id, review_on_deadline AS outcome, review_due_at FROM jobs
            WHERE state = 'awaiting_review' AND review_due_at IS NOT NULL AND review_escalated_at IS NULL
              AND review_due_at <= ${now.toISOString()}::timestamptz
            ORDER BY review_due_at
            LIMIT ${limit}
            FOR UPDATE SKIP LOCKED
          ),
          changed AS (
            UPDATE jobs j
            SET state = CASE d.outcome WHEN 'approve' THEN 'succeeded' WHEN 'reject' THEN 'rejected' ELSE j.state END,
                finished_at = CASE WHEN d.outcome = 'escalate' THEN j.finished_at ELSE now() END,
                review_escalated_at = CASE WHEN d.outcome = 'escalate' THEN now() ELSE j.review_escalated_at END,
                updated_at = now()
            FROM due d WHERE j.id = d.id
            RETURNING j.id, j.project_id, j.attempt, j.state, j.worker_id, d.outcome, d.review_due_at
          ),
          events AS (
            INSERT INTO job_events (job_id, project_id, type, from_state, to_state, attempt, actor, data, worker_id)
            SELECT c.id, c.project_id,
                   CASE c.outcome WHEN 'approve' THEN 'review.approved' WHEN 'reject' THEN 'review.rejected'
                                  ELSE 'review.escalated' END,
                   'awaiting_review', c.state, c.attempt, 'system',
                   jsonb_build_object('decision', c.outcome, 'comment', NULL, 'request_id', NULL,
                                      'reason', 'deadline', 'due_at', c.review_due_at),
                   c.worker_id
            FROM changed c
          )
          SELECT c.id, c.project_id, c.state, c.attempt, c.worker_id::text AS worker_id, c.outcome FROM changed c`.pipe(
          Effect.flatMap(decodeDecided),
          Effect.orDie,
          traced("ReviewsRepo.sweepDeadlines")
        )

      return ReviewsRepo.of({ list, decide, sweepDeadlines })
    })
  )
}
