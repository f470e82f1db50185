import { Effect, Option } from "effect"
import { HttpServerRequest } from "effect/http"
import { RateLimits } from "../Http/RateLimits.ts"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../Http/Api.ts"
import { UsersRepo } from "../Users/UsersRepo.ts"
import type { Me } from "./IdentityApi.ts"
import { CurrentPrincipal, isPlatformAdmin } from "./Principal.ts"
import { Sessions } from "./Sessions.ts"

export const AuthHttp = HttpApiBuilder.group(
  Api,
  "auth",
  Effect.fn(function*(handlers) {
    const sessions = yield* Sessions
    const limits = yield* RateLimits
    return handlers.handleAll({
      // Stricter than the general limit, per client address: against password guessing.
      login: Effect.fn("Auth.login")(function*({ payload }) {
        const request = yield* HttpServerRequest.HttpServerRequest
        yield* limits.check("login", Option.getOrElse(request.remoteAddress, () => "unknown"))
        return yield* sessions.login(payload.email, payload.password)
      }),
      refresh: ({ payload }) => sessions.refresh(payload.refresh_token),
      logout: ({ payload }) => sessions.logout(payload.refresh_token)
    })
  })
)

export const MeHttp = HttpApiBuilder.group(
  Api,
  "me",
  Effect.fn(function*(handlers) {
    const users = yield* UsersRepo
    return handlers.handleAll({
      me: Effect.fn("Me.get")(function*() {
        const principal = yield* CurrentPrincipal
        if (principal.kind === "api_key") {
          const me: Me = {
            kind: "api_key",
            id: principal.keyId,
            email: null,
            name: null,
            platform_admin: isPlatformAdmin(principal),
            roles: principal.projectId === null || principal.role === "platform_admin"
              ? []
              : [{ project_id: principal.projectId, role: principal.role }]
          }
          return me
        }
        const user = yield* users.findById(principal.userId)
        const me: Me = {
          kind: "user",
          id: principal.userId,
          email: principal.email,
          name: user?.name ?? null,
          platform_admin: false,
          roles: [...principal.memberships].map(([projectId, role]) => ({ project_id: projectId, role }))
        }
        return me
      })
    })
  })
)
