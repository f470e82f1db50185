import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../Http/Api.ts"
import { Users } from "./Users.ts"

export const UsersHttp = HttpApiBuilder.group(
  Api,
  "users",
  Effect.fn(function*(handlers) {
    const users = yield* Users
    return handlers.handleAll({
      create: ({ payload }) => users.create(payload),
      list: ({ query }) => users.list(query)
    })
  })
)
