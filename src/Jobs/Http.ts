import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../Http/Api.ts"
import { Jobs } from "./Jobs.ts"

export const JobsHttp = HttpApiBuilder.group(
  Api,
  "jobs",
  Effect.fn(function*(handlers) {
    const jobs = yield* Jobs
    return handlers.handleAll({
      enqueue: ({ params, payload }) => jobs.enqueue(params.projectId, payload),
      enqueueBatch: ({ params, payload }) =>
        Effect.map(jobs.enqueueBatch(params.projectId, payload.jobs), (created) => ({ jobs: created })),
      list: ({ params, query }) => jobs.list(params.projectId, query),
      get: ({ params }) => jobs.get(params.projectId, params.jobId),
      cancel: ({ params }) => jobs.cancel(params.projectId, params.jobId),
      retry: ({ params }) => jobs.retry(params.projectId, params.jobId),
      events: ({ params, query }) => jobs.events(params.projectId, params.jobId, query)
    })
  })
)
