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
      get: ({ params }) => workers.get(params.projectId, params.workerId),
      disable: ({ params }) => workers.disable(params.projectId, params.workerId),
      enable: ({ params }) => workers.enable(params.projectId, params.workerId),
      instances: ({ query }) => workers.instances(query),
      disableInstance: ({ params }) => workers.disableInstance(params.workerId),
      enableInstance: ({ params }) => workers.enableInstance(params.workerId),
      claim: ({ params, payload }) =>
        Effect.map(workers.claim(params.projectId, params.workerId, payload), (jobs) => ({ jobs })),
      tasks: ({ params, query }) => workers.tasks(params.projectId, query),
      assign: ({ params, payload }) => workers.assign(params.projectId, params.jobId, payload.assign),
      heartbeat: ({ params, payload }) => workers.heartbeat(params.projectId, params.jobId, payload),
      complete: ({ params, payload }) => workers.complete(params.projectId, params.jobId, payload),
      fail: ({ params, payload }) => workers.fail(params.projectId, params.jobId, payload)
    })
  })
)
