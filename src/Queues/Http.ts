import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../Http/Api.ts"
import { Queues } from "./Queues.ts"

export const QueuesHttp = HttpApiBuilder.group(
  Api,
  "queues",
  Effect.fn(function*(handlers) {
    const queues = yield* Queues
    return handlers.handleAll({
      create: ({ params, payload }) => queues.create(params.projectId, payload),
      list: ({ params, query }) => queues.list(params.projectId, query),
      get: ({ params }) => queues.get(params.projectId, params.queueName),
      update: ({ params, payload }) => queues.update(params.projectId, params.queueName, payload)
    })
  })
)
