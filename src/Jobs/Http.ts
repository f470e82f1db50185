import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../Http/Api.ts"
import { serialized } from "../Http/Serialized.ts"
import { Jobs } from "./Jobs.ts"

const created = serialized(201)
const ok = serialized(200)

export const JobsHttp = HttpApiBuilder.group(
  Api,
  "jobs",
  Effect.fn(function*(handlers) {
    const jobs = yield* Jobs
    return handlers.handleAll({
      enqueue: ({ params, payload }) => Effect.map(jobs.enqueue(params.projectId, payload), created),
      enqueueBatch: ({ params, payload }) =>
        Effect.map(jobs.enqueueBatch(params.projectId, payload.jobs), (inserted) => created({ jobs: inserted })),
      list: ({ params, query }) => Effect.map(jobs.list(params.projectId, query), ok),
      get: ({ params }) => Effect.map(jobs.get(params.projectId, params.jobId), ok),
      cancel: ({ params }) => Effect.map(jobs.cancel(params.projectId, params.jobId), ok),
      retry: ({ params }) => Effect.map(jobs.retry(params.projectId, params.jobId), ok),
      events: ({ params, query }) => jobs.events(params.projectId, params.jobId, query)
    })
  })
)
