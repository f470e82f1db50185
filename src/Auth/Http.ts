import { Effect, Layer, Redacted } from "effect"
import { ApiKeys } from "../ApiKeys/ApiKeys.ts"
import { Authentication } from "./Api.ts"
import { CurrentPrincipal } from "./Principal.ts"

export const AuthenticationLive = Layer.effect(
  Authentication,
  Effect.gen(function*() {
    const keys = yield* ApiKeys
    return Authentication.of({
      bearer: Effect.fn("Authentication.bearer")(function*(httpEffect, { credential }) {
        const principal = yield* keys.authenticate(Redacted.value(credential))
        return yield* Effect.provideService(httpEffect, CurrentPrincipal, principal)
      })
    })
  })
)
