import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { Authentication } from "../Auth/Api.ts"
import { Conflict, Forbidden, NotFound, Unprocessable, ValidationError } from "../Domain/Errors.ts"
import { JobId, ProjectId, QueueName, UserId, WorkerId } from "../Domain/Ids.ts"
import { ShortText, StorableJson, storableText } from "../Domain/Json.ts"
import { Page, PageQuery } from "../Domain/Pagination.ts"
import { ReviewFeedback } from "../Domain/Review.ts"
import { Job, JobKind, JobState } from "../Jobs/Api.ts"
import { Traceparent } from "../Observability/Tracing.ts"
import { Assignment, WorkerLabel } from "./Assignment.ts"

/**
 * Derived at read time from `last_seen_at` and the leases held: `active` holds
 * leases or was seen within FOREMAN_WORKER_ACTIVE_SECONDS, `gone` was not seen
 * for FOREMAN_WORKER_GONE_SECONDS, `idle` is in between.
 */
export const WorkerStatus = Schema.Literals(["active", "idle", "gone"])
export type WorkerStatus = typeof WorkerStatus.Type

export const WorkerCounters = Schema.Struct({
  succeeded: Schema.Int,
  failed: Schema.Int,
  lease_expired: Schema.Int,
  approved: Schema.Int,
  rejected: Schema.Int
}).annotate({ identifier: "WorkerCounters" })

export const Worker = Schema.Struct({
  id: WorkerId,
  /** `null` for Foreman's own engine instances, which run every project's jobs. */
  project_id: Schema.NullOr(ProjectId),
  name: Schema.String,
  kinds: Schema.Array(Schema.String),
  version: Schema.NullOr(Schema.String),
  labels: Schema.Array(Schema.String),
  /** The user a human worker is bound to: only that user claims through it. */
  user_id: Schema.NullOr(UserId),
  status: WorkerStatus,
  /** When an operator disabled the worker; `null` while enabled. */
  disabled_at: Schema.NullOr(Schema.Date),
  /** Jobs the worker holds a lease on now. */
  leases: Schema.Int,
  counters: WorkerCounters,
  /** 0..1, from the counters (docs/worker-flow.md, "Reputation"); 0.5 for a new worker. */
  reputation: Schema.Number,
  created_at: Schema.Date,
  last_seen_at: Schema.Date
}).annotate({ identifier: "Worker" })
export type Worker = typeof Worker.Type

/** A lease a worker holds. */
export const WorkerLease = Schema.Struct({
  job_id: JobId,
  queue: QueueName,
  kind: Schema.String,
  attempt: Schema.Int,
  started_at: Schema.Date,
  lease_expires_at: Schema.Date
}).annotate({ identifier: "WorkerLease" })
export type WorkerLease = typeof WorkerLease.Type

export const WorkerDetail = Schema.Struct({
  ...Worker.fields,
  /** The leases held now, oldest first (at most 1000). */
  held: Schema.Array(WorkerLease)
}).annotate({ identifier: "WorkerDetail" })
export type WorkerDetail = typeof WorkerDetail.Type

export const RegisterWorker = Schema.Struct({
  name: ShortText,
  kinds: Schema.Array(JobKind).check(Schema.isMinLength(1), Schema.isMaxLength(100)),
  version: Schema.optionalKey(ShortText),
  labels: Schema.optionalKey(Schema.Array(WorkerLabel).check(Schema.isMaxLength(50)))
}).annotate({ identifier: "RegisterWorker" })
export type RegisterWorker = typeof RegisterWorker.Type

/** `assign: null` removes the assignment: the job goes to any worker of its kind. */
export const AssignJob = Schema.Struct({
  assign: Schema.NullOr(Assignment)
}).annotate({ identifier: "AssignJob" })

/** The worker was disabled by an operator: it may not claim until it is enabled again. */
export class WorkerDisabled extends Schema.TaggedError<WorkerDisabled>()("WorkerDisabled", {
  message: Schema.String
}, { httpApiStatus: 409 }) {}

export const LeaseMs = Schema.Int.check(Schema.isBetween({ minimum: 1000, maximum: 600_000 }))

export const ClaimRequest = Schema.Struct({
  limit: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 100 }))),
  /** Long poll: wait up to this long for a job when none is ready. */
  wait_ms: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 30_000 }))),
  lease_ms: Schema.optionalKey(LeaseMs)
}).annotate({ identifier: "ClaimRequest" })

/** A claimed job: present `lease_token` on every heartbeat, completion and failure. */
export const LeasedJob = Schema.Struct({
  id: JobId,
  project_id: ProjectId,
  queue: QueueName,
  kind: Schema.String,
  payload: Schema.Json,
  attempt: Schema.Int,
  max_attempts: Schema.Int,
  timeout_ms: Schema.Int,
  lease_token: Schema.String,
  lease_expires_at: Schema.Date,
  /** The W3C `traceparent` of the request that enqueued the job, to continue its trace; `null` when none. */
  traceparent: Schema.NullOr(Schema.String),
  /** The trace context of the job's previous attempt, to link this attempt's span to; `null` when none. */
  last_attempt_traceparent: Schema.NullOr(Schema.String),
  /** A reviewer's reason for sending the previous result back (rejected with retry); `null` when none. */
  review_feedback: Schema.NullOr(ReviewFeedback)
}).annotate({ identifier: "LeasedJob" })

const LeaseToken = Schema.String.check(Schema.isUUID(undefined, { message: "must be a lease token" }))

export const Heartbeat = Schema.Struct({
  lease_token: LeaseToken,
  lease_ms: Schema.optionalKey(LeaseMs),
  progress: Schema.optionalKey(StorableJson)
}).annotate({ identifier: "Heartbeat" })

export const Complete = Schema.Struct({
  lease_token: LeaseToken,
  result: Schema.optionalKey(StorableJson),
  /** The worker's span for this attempt (W3C `traceparent`): the next attempt links to it. */
  traceparent: Schema.optionalKey(Traceparent)
}).annotate({ identifier: "Complete" })

export const Fail = Schema.Struct({
  lease_token: LeaseToken,
  error: Schema.Struct({
    message: Schema.String.check(Schema.isMaxLength(10_000), Schema.makeFilter((text) => storableText(text))),
    details: Schema.optionalKey(StorableJson)
  }),
  /** `false` sends the job straight to `dead`. */
  retryable: Schema.optionalKey(Schema.Boolean),
  /** Overrides the policy's backoff for this attempt. */
  retry_after_ms: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 86_400_000 }))),
  /** The worker's span for this attempt (W3C `traceparent`): the next attempt links to it. */
  traceparent: Schema.optionalKey(Traceparent)
}).annotate({ identifier: "Fail" })

/**
 * The caller no longer holds the job: its lease expired and was reclaimed, the
 * job was cancelled, or another attempt now owns it. Nothing was changed.
 */
export class LeaseLost extends Schema.TaggedError<LeaseLost>()("LeaseLost", {
  message: Schema.String,
  state: Schema.String
}, { httpApiStatus: 409 }) {}

const projectParams = { projectId: ProjectId }
const jobParams = { projectId: ProjectId, jobId: JobId }
const workerParams = { projectId: ProjectId, workerId: WorkerId }

export class WorkersApi extends HttpApiGroup.make("workers")
  .add(
    HttpApiEndpoint.post("register", "/v1/projects/:projectId/workers", {
      params: projectParams,
      payload: RegisterWorker,
      success: Worker.pipe(Schema.annotate({ httpApiStatus: 201 })),
      error: [NotFound, Forbidden]
    }),
    HttpApiEndpoint.get("list", "/v1/projects/:projectId/workers", {
      params: projectParams,
      query: PageQuery,
      success: Page(Worker),
      error: [NotFound, Forbidden, ValidationError]
    }),
    HttpApiEndpoint.get("get", "/v1/projects/:projectId/workers/:workerId", {
      params: workerParams,
      success: WorkerDetail,
      error: [NotFound, Forbidden]
    }),
    HttpApiEndpoint.post("disable", "/v1/projects/:projectId/workers/:workerId/disable", {
      params: workerParams,
      success: Worker,
      error: [NotFound, Forbidden]
    }),
    HttpApiEndpoint.post("enable", "/v1/projects/:projectId/workers/:workerId/enable", {
      params: workerParams,
      success: Worker,
      error: [NotFound, Forbidden]
    }),
    HttpApiEndpoint.post("claim", "/v1/projects/:projectId/workers/:workerId/claim", {
      params: workerParams,
      payload: ClaimRequest,
      success: Schema.Struct({ jobs: Schema.Array(LeasedJob) }),
      error: [NotFound, Forbidden, WorkerDisabled]
    }),
    HttpApiEndpoint.get("tasks", "/v1/projects/:projectId/tasks", {
      params: projectParams,
      query: { ...PageQuery, state: Schema.optional(JobState) },
      success: Page(Job),
      error: [NotFound, Forbidden, ValidationError]
    }),
    HttpApiEndpoint.post("assign", "/v1/projects/:projectId/jobs/:jobId/assign", {
      params: jobParams,
      payload: AssignJob,
      success: Job,
      error: [NotFound, Forbidden, Conflict, Unprocessable]
    }),
    HttpApiEndpoint.get("instances", "/v1/workers", {
      query: PageQuery,
      success: Page(Worker),
      error: [Forbidden, ValidationError]
    }),
    HttpApiEndpoint.post("disableInstance", "/v1/workers/:workerId/disable", {
      params: { workerId: WorkerId },
      success: Worker,
      error: [NotFound, Forbidden]
    }),
    HttpApiEndpoint.post("enableInstance", "/v1/workers/:workerId/enable", {
      params: { workerId: WorkerId },
      success: Worker,
      error: [NotFound, Forbidden]
    }),
    HttpApiEndpoint.post("heartbeat", "/v1/projects/:projectId/jobs/:jobId/heartbeat", {
      params: jobParams,
      payload: Heartbeat,
      success: Schema.Struct({ lease_expires_at: Schema.Date }),
      error: [NotFound, Forbidden, LeaseLost]
    }),
    HttpApiEndpoint.post("complete", "/v1/projects/:projectId/jobs/:jobId/complete", {
      params: jobParams,
      payload: Complete,
      success: Job,
      error: [NotFound, Forbidden, LeaseLost]
    }),
    HttpApiEndpoint.post("fail", "/v1/projects/:projectId/jobs/:jobId/fail", {
      params: jobParams,
      payload: Fail,
      success: Job,
      error: [NotFound, Forbidden, LeaseLost]
    })
  )
  .middleware(Authentication)
  .annotateMerge(OpenApi.annotations({
    title: "Workers",
    description: "Workers in any language (and users, for human tasks): register, claim under a lease, heartbeat, " +
      "complete or fail; the operator registry (status, leases, counters, reputation, disable) and job assignment."
  }))
{}
