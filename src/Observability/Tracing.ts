import { ConfigProvider, Effect, Layer, Option, Tracer } from "effect"
import { FetchHttpClient } from "effect/http"
import { OtlpSerialization, OtlpTracer } from "effect/observability"

/**
 * Span export over OTLP/HTTP (JSON), configured by the standard `OTEL_*`
 * variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`),
 * `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_COMPRESSION`, `OTEL_BSP_*`,
 * `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SDK_DISABLED`. `service.name` is `foreman`
 * unless `OTEL_SERVICE_NAME` says otherwise. With no endpoint set nothing is
 * installed: no exporter, no HTTP client, no batching fiber.
 */
export const TracingLive = Layer.unwrap(Effect.sync(() => {
  const env = process.env
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? env.OTEL_EXPORTER_OTLP_ENDPOINT
  if (endpoint === undefined || endpoint.trim() === "") return Layer.empty
  const exporter = OtlpTracer.layerFromConfig({
    resource: { serviceName: env.OTEL_SERVICE_NAME?.trim() || "foreman" }
  }).pipe(
    Layer.provide(OtlpSerialization.layerJson),
    Layer.provide(FetchHttpClient.layer)
  )
  // Effect exports only when `OTEL_TRACES_EXPORTER` names `otlp`; unset, it means `otlp` (the OpenTelemetry default).
  return env.OTEL_TRACES_EXPORTER === undefined
    ? exporter.pipe(Layer.provide(ConfigProvider.layerAdd(ConfigProvider.fromEnvRecord({ OTEL_TRACES_EXPORTER: "otlp" }))))
    : exporter
}))

const traceparentPattern = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

/** The W3C `traceparent` of a span: `00-<traceId>-<spanId>-<flags>`; `null` when its ids are not W3C ids. */
export const formatTraceparent = (span: Tracer.AnySpan): string | null => {
  const value = `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`
  return traceparentPattern.test(value) ? value : null
}

/** The innermost server span (the HTTP request's) around `span`, else `span` itself. */
const requestSpan = (span: Tracer.AnySpan): Tracer.AnySpan => {
  for (let current: Tracer.AnySpan = span; current._tag === "Span";) {
    if (current.kind === "server") return current
    if (Option.isNone(current.parent)) break
    current = current.parent.value
  }
  return span
}

/**
 * The `traceparent` of the request being served: its HTTP server span when there
 * is one (an enqueue through the API), else the current span; `null` outside any span.
 */
export const currentTraceparent: Effect.Effect<string | null> = Effect.map(
  Effect.option(Effect.currentParentSpan),
  (span) => Option.isSome(span) ? formatTraceparent(requestSpan(span.value)) : null
)

/** A stored `traceparent` as an external span (to link to or to parent on); `undefined` when malformed. */
export const parseTraceparent = (traceparent: string | null | undefined): Tracer.ExternalSpan | undefined => {
  if (traceparent === null || traceparent === undefined) return undefined
  const [, traceId, spanId, flags] = traceparentPattern.exec(traceparent.trim().toLowerCase()) ?? []
  if (traceId === undefined || spanId === undefined || flags === undefined) return undefined
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined
  return Tracer.externalSpan({ traceId, spanId, sampled: (Number.parseInt(flags, 16) & 1) === 1 })
}
