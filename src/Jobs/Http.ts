import { Effect } from "effect"
import { HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../Http/Api.ts"
import { isoString, isoStringOrNull, serialized } from "../Http/Serialized.ts"
import type { Job } from "./Api.ts"
import { readBatch } from "./BatchBody.ts"
import { Jobs } from "./Jobs.ts"

/** A job as its schema's JSON codec writes it: the dates as ISO strings. */
type JobJson = {
  readonly [K in keyof Job]: Job[K] extends Date ? string : Job[K] extends Date | null ? string | null : Job[K]
}

// Field by field in the order of the Job schema, so every job body has one shape.
const jobJson = (job: Job): JobJson => ({
  id: job.id,
  project_id: job.project_id,
  queue: job.queue,
  kind: job.kind,
  payload: job.payload,
  priority: job.priority,
  state: job.state,
  attempt: job.attempt,
  max_attempts: job.max_attempts,
  timeout_ms: job.timeout_ms,
  run_at: isoString(job.run_at),
  idempotency_key: job.idempotency_key,
  retry_policy: job.retry_policy,
  progress: job.progress,
  result: job.result,
  last_error: job.last_error,
  started_at: isoStringOrNull(job.started_at),
  lease_expires_at: isoStringOrNull(job.lease_expires_at),
  worker_id: job.worker_id,
  assign: job.assign,
  review: job.review,
  review_due_at: isoStringOrNull(job.review_due_at),
  review_feedback: job.review_feedback,
  created_at: isoString(job.created_at),
  updated_at: isoString(job.updated_at),
  finished_at: isoStringOrNull(job.finished_at)
})

const created = serialized(201)
const ok = serialized(200)

export const JobsHttp = HttpApiBuilder.group(
  Api,
  "jobs",
  Effect.fn(function*(handlers) {
    const jobs = yield* Jobs
    return handlers.handleRaw("enqueueBatch", ({ params, request }) =>
      Effect.flatMap(readBatch(request), (batch) =>
        HttpServerResponse.isHttpServerResponse(batch)
          ? Effect.succeed(batch)
          : Effect.map(jobs.enqueueBatch(params.projectId, batch.jobs), (inserted) => created({ jobs: inserted.map(jobJson) })))
    ).handleAll({
      enqueue: ({ params, payload }) => Effect.map(jobs.enqueue(params.projectId, payload), (job) => created(jobJson(job))),
      list: ({ params, query }) =>
        Effect.map(jobs.list(params.projectId, query), (page) => ok({ items: page.items.map(jobJson), next_cursor: page.next_cursor })),
      get: ({ params }) => Effect.map(jobs.get(params.projectId, params.jobId), (job) => ok(jobJson(job))),
      cancel: ({ params }) => Effect.map(jobs.cancel(params.projectId, params.jobId), (job) => ok(jobJson(job))),
      retry: ({ params }) => Effect.map(jobs.retry(params.projectId, params.jobId), (job) => ok(jobJson(job))),
      events: ({ params, query }) => jobs.events(params.projectId, params.jobId, query)
    })
  })
)
