import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../Http/Api.ts"
import { NotReady } from "./Api.ts"
import { ReadinessProbe } from "./Readiness.ts"

export const HealthHttp = HttpApiBuilder.group(
  Api,
  "health",
  Effect.fn(function*(handlers) {
    const probe = yield* ReadinessProbe
    return handlers.handleAll({
      healthz: () => Effect.succeed({ status: "ok" as const }),
      readyz: () =>
        Effect.flatMap(probe.check, (readiness) =>
          readiness.status === "ready"
            ? Effect.succeed(readiness)
            : Effect.fail(new NotReady({ message: "not ready", checks: readiness.checks })))
    })
  })
)
