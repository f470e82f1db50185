import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../Http/Api.ts"
import { Audit } from "./Audit.ts"

export const AuditHttp = HttpApiBuilder.group(
  Api,
  "audit",
  Effect.fn(function*(handlers) {
    const audit = yield* Audit
    return handlers.handleAll({
      list: ({ params, query }) => audit.list(params.projectId, query),
      platform: ({ query }) => audit.platform(query)
    })
  })
)
