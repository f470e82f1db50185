import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../Http/Api.ts"
import { Workers } from "./Workers.ts"

export const WorkersHttp = HttpApiBuilder.group(
  Api,
  "workers",
  Effect.fn(function*(handlers) {
    const workers = yield* Workers
    return handlers.handleAll({
      register: ({ params, payload }) => workers.register(params.projectId, payload),
      list: ({ params, query }) => workers.list(params.projectId, query),
      claim: ({ params, payload }) =>
        Effect.map(workers.claim(params.projectId, params.workerId, payload), (jobs) => ({ jobs })),
      heartbeat: ({ params, payload }) => workers.heartbeat(params.projectId, params.jobId, payload),
      complete: ({ params, payload }) => workers.complete(params.projectId, params.jobId, payload),
      fail: ({ params, payload }) => workers.fail(params.projectId, params.jobId, payload)
    })
  })
)
