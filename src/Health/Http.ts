import { Effect } from "effect"
import { HttpApi, HttpApiBuilder } from "effect/http-api"
import { Api } from "../Http/Api.ts"
import { HealthApi, NotReady } from "./Api.ts"
import { ReadinessProbe } from "./Readiness.ts"

const probes = Effect.gen(function*() {
  const probe = yield* ReadinessProbe
  return {
    healthz: () => Effect.succeed({ status: "ok" as const }),
    readyz: () =>
      Effect.flatMap(probe.check, (readiness) =>
        readiness.status === "ready"
          ? Effect.succeed(readiness)
          : Effect.fail(new NotReady({ message: "not ready", checks: readiness.checks })))
  }
})

export const HealthHttp = HttpApiBuilder.group(
  Api,
  "health",
  Effect.fn(function*(handlers) {
    return handlers.handleAll(yield* probes)
  })
)

/** What a `FOREMAN_ROLE=worker` instance serves: the probes and nothing else. */
export class ProbesApi extends HttpApi.make("foreman-probes").add(HealthApi) {}

export const ProbesHttp = HttpApiBuilder.group(
  ProbesApi,
  "health",
  Effect.fn(function*(handlers) {
    return handlers.handleAll(yield* probes)
  })
)
