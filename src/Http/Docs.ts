import { Effect, Scope } from "effect"
import { HttpRouter } from "effect/http"
import { HttpApiScalar } from "effect/http-api"
import { Api } from "./Api.ts"

/**
 * GET /docs: Scalar's API reference page, set up at its first request.
 * `HttpApiScalar.layer` loads Scalar's bundled script when it is built, a 6 MB
 * string (two bytes per character) that a server would otherwise hold from
 * startup whether or not anyone opens the page. Here its router is built once,
 * in the server's scope, when the page is first asked for.
 */
export const DocsLive = HttpRouter.use(Effect.fnUntraced(function*(router) {
  const scope = yield* Scope.Scope
  const docs = yield* Effect.cached(
    HttpRouter.toHttpEffect(HttpApiScalar.layer(Api, { path: "/docs" })).pipe(Effect.provideService(Scope.Scope, scope))
  )
  yield* router.add("GET", "/docs", Effect.flatten(docs))
}))
