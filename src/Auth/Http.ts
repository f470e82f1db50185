import { Effect, Layer, Redacted } from "effect"
import { ApiKeys } from "../ApiKeys/ApiKeys.ts"
import { Authentication } from "./Api.ts"
import { looksLikeJwt } from "./Jwt.ts"
import { RateLimits } from "../Http/RateLimits.ts"
import { actorName, CurrentPrincipal } from "./Principal.ts"
import { Sessions } from "./Sessions.ts"

export const AuthenticationLive = Layer.effect(
  Authentication,
  Effect.gen(function*() {
    const keys = yield* ApiKeys
    const sessions = yield* Sessions
    const limits = yield* RateLimits
    return Authentication.of({
      // Untraced: the credential check has its own span (ApiKeys.authenticate, Sessions.authenticate),
      // and this wraps the whole request, whose server span already covers it.
      bearer: Effect.fnUntraced(function*(httpEffect, { credential }) {
        const token = Redacted.value(credential)
        // A compact JWS (`eyJ….….…`) is a user's access token; anything else is an API key.
        const principal = looksLikeJwt(token) ? yield* sessions.authenticate(token) : yield* keys.authenticate(token)
        yield* limits.check("principal", actorName(principal))
        return yield* Effect.provideService(httpEffect, CurrentPrincipal, principal)
      })
    })
  })
)
