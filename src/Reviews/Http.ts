import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../Http/Api.ts"
import { Reviews } from "./Reviews.ts"

export const ReviewsHttp = HttpApiBuilder.group(
  Api,
  "reviews",
  Effect.fn(function*(handlers) {
    const reviews = yield* Reviews
    return handlers.handleAll({
      list: ({ params, query }) => reviews.list(params.projectId, query),
      approve: ({ params, payload }) => reviews.approve(params.projectId, params.jobId, payload),
      reject: ({ params, payload }) => reviews.reject(params.projectId, params.jobId, payload)
    })
  })
)
