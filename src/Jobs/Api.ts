import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { Authentication } from "../Auth/Api.ts"
import { Conflict, Forbidden, NotFound, PayloadTooLarge, Unprocessable, ValidationError } from "../Domain/Errors.ts"
import { JobId, ProjectId, QueueName, UserQueueName } from "../Domain/Ids.ts"
import { ShortText, StorableJson } from "../Domain/Json.ts"
import { Page, PageQuery } from "../Domain/Pagination.ts"
import { ReviewFeedback, ReviewPolicy, ReviewPolicyPatch } from "../Domain/Review.ts"
import { MaxAttempts, RetryPolicy, RetryPolicyPatch, TimeoutMs } from "../Queues/Api.ts"
import { Assignment } from "../Workers/Assignment.ts"

export const priorities = ["critical", "high", "normal", "low"] as const
export const Priority = Schema.Literals(priorities)
export type Priority = typeof Priority.Type

export const JobState = Schema.Literals([
  "scheduled",
  "available",
  "running",
  "retrying",
  "succeeded",
  "dead",
  "cancelled",
  /** A successful attempt's result waits for a reviewer's decision. */
  "awaiting_review",
  /** A reviewer (or the review deadline) rejected the result for good. */
  "rejected"
])
export type JobState = typeof JobState.Type

export const jobKindPattern = /^[A-Za-z0-9_.:-]{1,100}$/

export const JobKind = Schema.String.check(
  Schema.isPattern(jobKindPattern, { message: "must be 1-100 characters of A-Z, a-z, 0-9, '_', '.', ':', '-'" })
)

export const Job = Schema.Struct({
  id: JobId,
  project_id: ProjectId,
  queue: QueueName,
  kind: Schema.String,
  payload: Schema.Json,
  priority: Priority,
  state: JobState,
  attempt: Schema.Int,
  max_attempts: Schema.Int,
  timeout_ms: Schema.Int,
  run_at: Schema.Date,
  idempotency_key: Schema.NullOr(Schema.String),
  retry_policy: Schema.NullOr(RetryPolicy),
  progress: Schema.NullOr(Schema.Json),
  result: Schema.NullOr(Schema.Json),
  last_error: Schema.NullOr(Schema.Json),
  started_at: Schema.NullOr(Schema.Date),
  lease_expires_at: Schema.NullOr(Schema.Date),
  worker_id: Schema.NullOr(Schema.String),
  /** Who may claim the job: a worker, a label, or a user (a human task); `null` for any worker of its kind. */
  assign: Schema.NullOr(Assignment),
  /** The review policy resolved at enqueue (the queue's, with the job's overrides). */
  review: ReviewPolicy,
  /** When an `awaiting_review` job's deadline passes; `null` without a deadline or review. */
  review_due_at: Schema.NullOr(Schema.Date),
  /** The latest rejection with retry, handed to the next attempts. */
  review_feedback: Schema.NullOr(ReviewFeedback),
  created_at: Schema.Date,
  updated_at: Schema.Date,
  finished_at: Schema.NullOr(Schema.Date)
}).annotate({ identifier: "Job" })
export type Job = typeof Job.Type

/** Delays and run-at times beyond a year are refused. */
export const maxScheduleAheadMs = 365 * 24 * 3600 * 1000

export const EnqueueJob = Schema.Struct({
  queue: UserQueueName,
  kind: JobKind,
  payload: StorableJson,
  priority: Schema.optionalKey(Priority),
  run_at: Schema.optionalKey(Schema.Date),
  delay_ms: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: maxScheduleAheadMs }))),
  max_attempts: Schema.optionalKey(MaxAttempts),
  /** Overrides the queue's policy for this job; fields left out come from the queue. */
  retry_policy: Schema.optionalKey(RetryPolicyPatch),
  timeout_ms: Schema.optionalKey(TimeoutMs),
  /** Only this worker, workers with this label, or this user (a human task) may claim the job. */
  assign: Schema.optionalKey(Assignment),
  idempotency_key: Schema.optionalKey(ShortText),
  /** Overrides the queue's review policy for this job; fields left out come from the queue. */
  review: Schema.optionalKey(ReviewPolicyPatch)
}).annotate({ identifier: "EnqueueJob" })
export type EnqueueJob = typeof EnqueueJob.Type

export const maxBatchJobs = 1000

export const EnqueueBatch = Schema.Struct({
  jobs: Schema.Array(EnqueueJob).check(Schema.isMinLength(1), Schema.isMaxLength(maxBatchJobs))
}).annotate({ identifier: "EnqueueBatch" })
export type EnqueueBatch = typeof EnqueueBatch.Type

export const JobList = Page(Job)

/** One transition in a job's life. `at` is the database clock. */
export const JobEvent = Schema.Struct({
  id: Schema.String,
  job_id: JobId,
  at: Schema.Date,
  type: Schema.String,
  from_state: Schema.NullOr(Schema.String),
  to_state: JobState,
  attempt: Schema.Int,
  actor: Schema.String,
  error: Schema.NullOr(Schema.Json),
  data: Schema.NullOr(Schema.Json),
  /** The worker involved (the one that claimed, completed or failed the attempt, or the new assignee); `null` for none. */
  worker_id: Schema.NullOr(Schema.String)
}).annotate({ identifier: "JobEvent" })
export type JobEvent = typeof JobEvent.Type

const jobsPath = "/v1/projects/:projectId/jobs"
const projectParams = { projectId: ProjectId }
const jobParams = { projectId: ProjectId, jobId: JobId }
const enqueueErrors = [NotFound, Forbidden, Conflict, PayloadTooLarge, Unprocessable, ValidationError] as const

export class JobsApi extends HttpApiGroup.make("jobs")
  .add(
    HttpApiEndpoint.post("enqueue", jobsPath, {
      params: projectParams,
      payload: EnqueueJob,
      success: Job.pipe(Schema.annotate({ httpApiStatus: 201 })),
      error: enqueueErrors
    }),
    HttpApiEndpoint.post("enqueueBatch", `${jobsPath}/batch`, {
      params: projectParams,
      payload: EnqueueBatch,
      success: Schema.Struct({ jobs: Schema.Array(Job) }).pipe(Schema.annotate({ httpApiStatus: 201 })),
      error: enqueueErrors
    }),
    HttpApiEndpoint.get("list", jobsPath, {
      params: projectParams,
      query: {
        ...PageQuery,
        queue: Schema.optional(QueueName),
        state: Schema.optional(JobState),
        kind: Schema.optional(JobKind)
      },
      success: JobList,
      error: [NotFound, Forbidden, ValidationError]
    }),
    HttpApiEndpoint.get("get", `${jobsPath}/:jobId`, {
      params: jobParams,
      success: Job,
      error: [NotFound, Forbidden]
    }),
    HttpApiEndpoint.post("cancel", `${jobsPath}/:jobId/cancel`, {
      params: jobParams,
      success: Job,
      error: [NotFound, Forbidden, Conflict]
    }),
    HttpApiEndpoint.post("retry", `${jobsPath}/:jobId/retry`, {
      params: jobParams,
      success: Job,
      error: [NotFound, Forbidden, Conflict]
    }),
    HttpApiEndpoint.get("events", `${jobsPath}/:jobId/events`, {
      params: jobParams,
      query: PageQuery,
      success: Page(JobEvent),
      error: [NotFound, Forbidden, ValidationError]
    })
  )
  .middleware(Authentication)
  .annotateMerge(OpenApi.annotations({
    title: "Jobs",
    description: "Enqueue, inspect and cancel jobs."
  }))
{}
