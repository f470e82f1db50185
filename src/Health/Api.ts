import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"

export const CheckStatus = Schema.Literals(["ok", "failing"])

export const Readiness = Schema.Struct({
  status: Schema.Literals(["ready", "not_ready"]),
  checks: Schema.Struct({
    database: CheckStatus,
    migrations: CheckStatus,
    listener: CheckStatus,
    shutdown: CheckStatus
  })
}).annotate({ identifier: "Readiness" })
export type Readiness = typeof Readiness.Type

export class NotReady extends Schema.TaggedError<NotReady>()("NotReady", {
  message: Schema.String,
  checks: Readiness.fields.checks
}, { httpApiStatus: 503 }) {}

export class HealthApi extends HttpApiGroup.make("health", { topLevel: true })
  .add(
    HttpApiEndpoint.get("healthz", "/healthz", {
      success: Schema.Struct({ status: Schema.Literal("ok") })
    }),
    HttpApiEndpoint.get("readyz", "/readyz", {
      success: Readiness,
      error: NotReady
    })
  )
  .annotateMerge(OpenApi.annotations({
    title: "Health",
    description: "Liveness and readiness probes; no authentication."
  }))
{}
