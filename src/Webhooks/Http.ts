import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../Http/Api.ts"
import { Webhooks } from "./Webhooks.ts"

export const WebhooksHttp = HttpApiBuilder.group(
  Api,
  "webhooks",
  Effect.fn(function*(handlers) {
    const webhooks = yield* Webhooks
    return handlers.handleAll({
      create: ({ params, payload }) => webhooks.create(params.projectId, payload),
      list: ({ params, query }) => webhooks.list(params.projectId, query),
      get: ({ params }) => webhooks.get(params.projectId, params.webhookId),
      update: ({ params, payload }) => webhooks.update(params.projectId, params.webhookId, payload),
      delete: ({ params }) => webhooks.remove(params.projectId, params.webhookId),
      rotateSecret: ({ params }) => webhooks.rotateSecret(params.projectId, params.webhookId),
      deliveries: ({ params, query }) => webhooks.deliveries(params.projectId, params.webhookId, query),
      redeliver: ({ params }) => webhooks.redeliver(params.projectId, params.webhookId, params.deliveryId)
    })
  })
)
