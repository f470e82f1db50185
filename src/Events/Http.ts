import { Effect } from "effect"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../Http/Api.ts"
import { Events } from "./Events.ts"

export const EventsHttp = HttpApiBuilder.group(
  Api,
  "events",
  Effect.fn(function*(handlers) {
    const events = yield* Events
    return handlers.handleAll({
      list: ({ params, query }) => events.list(params.projectId, query),
      stream: ({ params, query }) =>
        Effect.gen(function*() {
          const request = yield* HttpServerRequest.HttpServerRequest
          const body = yield* events.stream(params.projectId, { ...query, lastEventId: request.headers["last-event-id"] })
          return HttpServerResponse.stream(body, {
            contentType: "text/event-stream",
            headers: { "cache-control": "no-store", "x-accel-buffering": "no" }
          })
        })
    })
  })
)
