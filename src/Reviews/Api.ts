import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { Authentication } from "../Auth/Api.ts"
import { Conflict, Forbidden, NotFound, ValidationError } from "../Domain/Errors.ts"
import { JobId, ProjectId, QueueName } from "../Domain/Ids.ts"
import { storableText } from "../Domain/Json.ts"
import { Page, PageQuery } from "../Domain/Pagination.ts"
import { OnDeadline, ReviewFeedback } from "../Domain/Review.ts"
import { Job, JobKind } from "../Jobs/Api.ts"

/** A result waiting for a reviewer: the job's work and what the decision is about. */
export const Review = Schema.Struct({
  job_id: JobId,
  project_id: ProjectId,
  queue: QueueName,
  kind: Schema.String,
  payload: Schema.Json,
  result: Schema.NullOr(Schema.Json),
  /** The attempt that produced the result. */
  attempt: Schema.Int,
  max_attempts: Schema.Int,
  /** The external worker that produced the result; `null` for in-process attempts. */
  worker_id: Schema.NullOr(Schema.String),
  requested_at: Schema.Date,
  /** `null` when the job has no review deadline. */
  due_at: Schema.NullOr(Schema.Date),
  overdue: Schema.Boolean,
  on_deadline: OnDeadline,
  /** When the deadline passed and the review was escalated; `null` until then. */
  escalated_at: Schema.NullOr(Schema.Date),
  /** The feedback of the previous rejection with retry, if any. */
  previous_feedback: Schema.NullOr(ReviewFeedback)
}).annotate({ identifier: "Review" })
export type Review = typeof Review.Type

const Comment = Schema.String.check(
  Schema.isMinLength(1),
  Schema.isMaxLength(10_000),
  Schema.makeFilter((text: string) => storableText(text))
)

export const ApproveReview = Schema.Struct({
  comment: Schema.optionalKey(Comment)
}).annotate({ identifier: "ApproveReview" })
export type ApproveReview = typeof ApproveReview.Type

export const RejectReview = Schema.Struct({
  comment: Comment,
  /**
   * `true`: the job runs again (the attempt stays counted) with the comment as
   * `review_feedback`; with no attempts left it goes to `dead`. `false` (the
   * default): the job ends `rejected`.
   */
  retry: Schema.optionalKey(Schema.Boolean)
}).annotate({ identifier: "RejectReview" })
export type RejectReview = typeof RejectReview.Type

/** The decision a review event or audit entry records. */
export type Decision = "approve" | "reject" | "retry"

const reviewsPath = "/v1/projects/:projectId/reviews"
const reviewParams = { projectId: ProjectId, jobId: JobId }

export class ReviewsApi extends HttpApiGroup.make("reviews")
  .add(
    HttpApiEndpoint.get("list", reviewsPath, {
      params: { projectId: ProjectId },
      query: {
        ...PageQuery,
        queue: Schema.optional(QueueName),
        kind: Schema.optional(JobKind),
        /** `true`: only reviews past their deadline; `false`: only those not past it (or without one). */
        overdue: Schema.optional(Schema.Boolean)
      },
      success: Page(Review),
      error: [NotFound, Forbidden, ValidationError]
    }),
    HttpApiEndpoint.post("approve", `${reviewsPath}/:jobId/approve`, {
      params: reviewParams,
      payload: ApproveReview,
      success: Job,
      error: [NotFound, Forbidden, Conflict]
    }),
    HttpApiEndpoint.post("reject", `${reviewsPath}/:jobId/reject`, {
      params: reviewParams,
      payload: RejectReview,
      success: Job,
      error: [NotFound, Forbidden, Conflict]
    })
  )
  .middleware(Authentication)
  .annotateMerge(OpenApi.annotations({
    title: "Reviews",
    description: "Results of jobs that require human review: list them, approve, or reject (final or with retry)."
  }))
{}
