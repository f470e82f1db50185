import { Context, Duration, Effect, Layer } from "effect"
import { RateLimiter } from "effect/persistence"
import { AppConfig } from "../Config/AppConfig.ts"
import { RateLimited } from "../Domain/Errors.ts"

export type LimitKind = "address" | "principal" | "login"

/**
 * Token buckets per client address, per principal, and (stricter) per address
 * for logins, over one-minute windows, from Effect's `RateLimiter` with its
 * in-memory store: each instance counts on its own, so N instances admit up to
 * N times the configured rate (docs/security.md).
 */
export class RateLimits extends Context.Service<RateLimits, {
  check(kind: LimitKind, key: string): Effect.Effect<void, RateLimited>
}>()("foreman/RateLimits") {
  static readonly layer = Layer.effect(
    RateLimits,
    Effect.gen(function*() {
      const config = yield* AppConfig
      const limiter = yield* RateLimiter.RateLimiter
      const limits: Record<LimitKind, number> = {
        address: config.rateLimitPerAddress,
        principal: config.rateLimitPerPrincipal,
        login: config.rateLimitLogin
      }
      return RateLimits.of({
        check: (kind, key) =>
          limiter.consume({
            algorithm: "token-bucket",
            onExceeded: "fail",
            window: "1 minute",
            limit: limits[kind],
            key: `${kind}:${key}`
          }).pipe(
            Effect.asVoid,
            Effect.catch((error) => {
              const reason = error.reason
              const retryAfter = reason._tag === "RateLimitExceeded" ? Duration.toSeconds(reason.retryAfter) : 1
              return reason._tag === "RateLimitExceeded"
                ? Effect.fail(
                  new RateLimited({
                    message: `rate limit exceeded (${limits[kind]} requests per minute per ${kind})`,
                    retry_after_seconds: Math.max(1, Math.ceil(retryAfter))
                  })
                )
                // A store failure must not lock everyone out: admit the request.
                : Effect.logWarning("rate limiter store failed; request admitted", error)
            })
          )
      })
    })
  ).pipe(Layer.provide(RateLimiter.layer.pipe(Layer.provide(RateLimiter.layerStoreMemory))))
}
