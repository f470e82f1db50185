import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { Authentication } from "../Auth/Api.ts"
import { Conflict, Forbidden, NotFound, ValidationError } from "../Domain/Errors.ts"
import { ProjectId, QueueId, QueueName, UserQueueName } from "../Domain/Ids.ts"
import { Page, PageQuery } from "../Domain/Pagination.ts"
import { ReviewPolicy, ReviewPolicyPatch } from "../Domain/Review.ts"

const between = (minimum: number, maximum: number) => Schema.Int.check(Schema.isBetween({ minimum, maximum }))

export const MaxAttempts = between(1, 1000)
export const TimeoutMs = between(1000, 86_400_000)

/** Exponential backoff: delay(n) = min(max_delay_ms, initial_delay_ms * factor^(n-1)), ± jitter. */
export const RetryPolicy = Schema.Struct({
  max_attempts: MaxAttempts,
  initial_delay_ms: between(0, 86_400_000),
  factor: Schema.Finite.check(Schema.isBetween({ minimum: 1, maximum: 10 })),
  max_delay_ms: between(0, 604_800_000),
  jitter: Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 }))
}).annotate({ identifier: "RetryPolicy" })
export type RetryPolicy = typeof RetryPolicy.Type

export const RetryPolicyPatch = Schema.Struct({
  max_attempts: Schema.optionalKey(RetryPolicy.fields.max_attempts),
  initial_delay_ms: Schema.optionalKey(RetryPolicy.fields.initial_delay_ms),
  factor: Schema.optionalKey(RetryPolicy.fields.factor),
  max_delay_ms: Schema.optionalKey(RetryPolicy.fields.max_delay_ms),
  jitter: Schema.optionalKey(RetryPolicy.fields.jitter)
}).annotate({ identifier: "RetryPolicyPatch" })
export type RetryPolicyPatch = typeof RetryPolicyPatch.Type

export const RetentionSeconds = between(60, 31_536_000)
export const MaxRunning = between(1, 100_000)

export const Queue = Schema.Struct({
  id: QueueId,
  project_id: ProjectId,
  name: QueueName,
  paused: Schema.Boolean,
  retry_policy: RetryPolicy,
  timeout_ms: Schema.Int,
  retention_seconds: Schema.Int,
  /** At most this many jobs of the queue run at once, across every instance; `null` for no limit. */
  max_running: Schema.NullOr(Schema.Int),
  /** The review policy its jobs inherit (a job may override it at enqueue). */
  review: ReviewPolicy,
  created_at: Schema.Date,
  updated_at: Schema.Date
}).annotate({ identifier: "Queue" })
export type Queue = typeof Queue.Type

export const CreateQueue = Schema.Struct({
  name: UserQueueName,
  paused: Schema.optionalKey(Schema.Boolean),
  retry_policy: Schema.optionalKey(RetryPolicyPatch),
  timeout_ms: Schema.optionalKey(TimeoutMs),
  retention_seconds: Schema.optionalKey(RetentionSeconds),
  max_running: Schema.optionalKey(Schema.NullOr(MaxRunning)),
  review: Schema.optionalKey(ReviewPolicyPatch)
}).annotate({ identifier: "CreateQueue" })
export type CreateQueue = typeof CreateQueue.Type

export const UpdateQueue = Schema.Struct({
  paused: Schema.optionalKey(Schema.Boolean),
  retry_policy: Schema.optionalKey(RetryPolicyPatch),
  timeout_ms: Schema.optionalKey(TimeoutMs),
  retention_seconds: Schema.optionalKey(RetentionSeconds),
  max_running: Schema.optionalKey(Schema.NullOr(MaxRunning)),
  review: Schema.optionalKey(ReviewPolicyPatch)
}).annotate({ identifier: "UpdateQueue" })
export type UpdateQueue = typeof UpdateQueue.Type

const queuePath = "/v1/projects/:projectId/queues"
const projectParams = { projectId: ProjectId }
const queueParams = { projectId: ProjectId, queueName: QueueName }

export class QueuesApi extends HttpApiGroup.make("queues")
  .add(
    HttpApiEndpoint.post("create", queuePath, {
      params: projectParams,
      payload: CreateQueue,
      success: Queue.pipe(Schema.annotate({ httpApiStatus: 201 })),
      error: [NotFound, Forbidden, Conflict]
    }),
    HttpApiEndpoint.get("list", queuePath, {
      params: projectParams,
      query: PageQuery,
      success: Page(Queue),
      error: [NotFound, Forbidden, ValidationError]
    }),
    HttpApiEndpoint.get("get", `${queuePath}/:queueName`, {
      params: queueParams,
      success: Queue,
      error: [NotFound, Forbidden]
    }),
    HttpApiEndpoint.patch("update", `${queuePath}/:queueName`, {
      params: queueParams,
      payload: UpdateQueue,
      success: Queue,
      error: [NotFound, Forbidden]
    })
  )
  .middleware(Authentication)
  .annotateMerge(OpenApi.annotations({
    title: "Queues",
    description: "Queues hold jobs and the defaults (retry policy, timeout, retention) their jobs inherit."
  }))
{}
