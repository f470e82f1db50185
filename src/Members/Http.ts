import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../Http/Api.ts"
import { Members } from "./Members.ts"

export const MembersHttp = HttpApiBuilder.group(
  Api,
  "members",
  Effect.fn(function*(handlers) {
    const members = yield* Members
    return handlers.handleAll({
      add: ({ params, payload }) => members.add(params.projectId, payload),
      list: ({ params, query }) => members.list(params.projectId, query),
      get: ({ params }) => members.get(params.projectId, params.userId),
      update: ({ params, payload }) => members.update(params.projectId, params.userId, payload.role),
      remove: ({ params }) => members.remove(params.projectId, params.userId)
    })
  })
)
