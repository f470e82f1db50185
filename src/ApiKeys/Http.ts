import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../Http/Api.ts"
import { ApiKeys } from "./ApiKeys.ts"

export const ApiKeysHttp = HttpApiBuilder.group(
  Api,
  "apiKeys",
  Effect.fn(function*(handlers) {
    const keys = yield* ApiKeys
    return handlers.handleAll({
      create: ({ params, payload }) => keys.create(params.projectId, payload),
      list: ({ params, query }) => keys.list(params.projectId, query),
      revoke: ({ params }) => keys.revoke(params.projectId, params.keyId)
    })
  })
)
