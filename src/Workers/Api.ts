import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { Authentication } from "../Auth/Api.ts"
import { Forbidden, NotFound, ValidationError } from "../Domain/Errors.ts"
import { JobId, ProjectId, QueueName, WorkerId } from "../Domain/Ids.ts"
import { ShortText, StorableJson, storableText } from "../Domain/Json.ts"
import { Page, PageQuery } from "../Domain/Pagination.ts"
import { Job, JobKind } from "../Jobs/Api.ts"

export const Worker = Schema.Struct({
  id: WorkerId,
  project_id: ProjectId,
  name: Schema.String,
  kinds: Schema.Array(Schema.String),
  created_at: Schema.Date,
  last_seen_at: Schema.Date
}).annotate({ identifier: "Worker" })
export type Worker = typeof Worker.Type

export const RegisterWorker = Schema.Struct({
  name: ShortText,
  kinds: Schema.Array(JobKind).check(Schema.isMinLength(1), Schema.isMaxLength(100))
}).annotate({ identifier: "RegisterWorker" })

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
  traceparent: Schema.NullOr(Schema.String)
}).annotate({ identifier: "LeasedJob" })

const LeaseToken = Schema.String.check(Schema.isUUID(undefined, { message: "must be a lease token" }))

export const Heartbeat = Schema.Struct({
  lease_token: LeaseToken,
  lease_ms: Schema.optionalKey(LeaseMs),
  progress: Schema.optionalKey(StorableJson)
}).annotate({ identifier: "Heartbeat" })

export const Complete = Schema.Struct({
  lease_token: LeaseToken,
  result: Schema.optionalKey(StorableJson)
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
  retry_after_ms: Schema.optionalKey(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 86_400_000 })))
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
    HttpApiEndpoint.post("claim", "/v1/projects/:projectId/workers/:workerId/claim", {
      params: { projectId: ProjectId, workerId: WorkerId },
      payload: ClaimRequest,
      success: Schema.Struct({ jobs: Schema.Array(LeasedJob) }),
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
    description: "External workers in any language: register, claim under a lease, heartbeat, complete or fail."
  }))
{}
