import { ConfigProvider, Effect, Layer, Option, Schema, Tracer } from "effect"
import { FetchHttpClient, FindMyWay, HttpMiddleware } from "effect/http"
import { HttpApi, type HttpApiGroup } from "effect/http-api"
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
  (span) => Option.isSome(span) ? requestTraceparent(span.value) : null
)

/** The `traceparent` of the request `span` runs in (see `currentTraceparent`), for a caller that already holds the span. */
export const requestTraceparent = (span: Tracer.AnySpan): string | null => formatTraceparent(requestSpan(span))

/** A stored `traceparent` as an external span (to link to or to parent on); `undefined` when malformed. */
export const parseTraceparent = (traceparent: string | null | undefined): Tracer.ExternalSpan | undefined => {
  if (traceparent === null || traceparent === undefined) return undefined
  const [, traceId, spanId, flags] = traceparentPattern.exec(traceparent.trim().toLowerCase()) ?? []
  if (traceId === undefined || spanId === undefined || flags === undefined) return undefined
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined
  return Tracer.externalSpan({ traceId, spanId, sampled: (Number.parseInt(flags, 16) & 1) === 1 })
}

/** A W3C `traceparent` sent by a client: version `00`, lowercase hex, non-zero trace and span ids. */
export const Traceparent = Schema.String.check(Schema.makeFilter(
  (value) => traceparentPattern.test(value) && parseTraceparent(value) !== undefined,
  { message: "must be a W3C traceparent (00-<32 hex trace id>-<16 hex span id>-<2 hex flags>)" }
)).annotate({ examples: ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"] })

/** The `traceparent` of the current span (not of its request); `null` outside any span. */
export const currentSpanTraceparent: Effect.Effect<string | null> = Effect.map(
  Effect.option(Effect.currentParentSpan),
  (span) => Option.isSome(span) ? formatTraceparent(span.value) : null
)

/** What an attempt span links to: the job's enqueue and its previous attempt, from their stored contexts. */
export const attemptLinks = (job: {
  readonly traceparent: string | null
  readonly last_attempt_traceparent: string | null
}): Array<Tracer.SpanLink> => {
  const links: Array<Tracer.SpanLink> = []
  const enqueue = parseTraceparent(job.traceparent)
  if (enqueue !== undefined) links.push({ span: enqueue, attributes: { "foreman.link": "enqueue" } })
  const previous = parseTraceparent(job.last_attempt_traceparent)
  if (previous !== undefined) links.push({ span: previous, attributes: { "foreman.link": "previous_attempt" } })
  return links
}

/** `/v1/projects/:projectId/jobs` as the OpenAPI document writes it: `/v1/projects/{projectId}/jobs`. */
const openApiPath = (path: string): string => path.replace(/:([A-Za-z0-9_]+)\??/g, "{$1}")

/**
 * Names each HTTP server span `<METHOD> <route template>` (e.g.
 * `POST /v1/projects/{projectId}/jobs`), never by its raw URL; a request that
 * matches no route is named by its method alone. Effect names the server span
 * (`HttpMiddleware.SpanNameGenerator`) before routing, so the templates are
 * matched here with the router's own matcher (`FindMyWay`) over the same
 * routes (see `apiRoutes`). The router itself sets `http.route` on the span.
 */
export const routeSpanNames = (routes: ReadonlyArray<readonly [method: string, path: `/${string}`]>): Layer.Layer<never> => {
  const matcher = FindMyWay.make<string>()
  for (const [method, path] of routes) matcher.on(method, path, openApiPath(path))
  return Layer.succeed(HttpMiddleware.SpanNameGenerator)((request) => {
    const found = matcher.find(request.method, request.url) ??
      (request.method === "HEAD" ? matcher.find("GET", request.url) : undefined)
    return found === undefined ? request.method : `${request.method} ${found.handler}`
  })
}

const isPath = (path: string): path is `/${string}` => path.startsWith("/")

/** Every endpoint of an HttpApi as `[method, path template]`, for `routeSpanNames`. */
export const apiRoutes = <Id extends string, Groups extends HttpApiGroup.Constraint>(
  api: HttpApi.HttpApi<Id, Groups>
): Array<readonly [string, `/${string}`]> => {
  const routes: Array<readonly [string, `/${string}`]> = []
  HttpApi.reflect(api, {
    onGroup: () => undefined,
    onEndpoint: ({ endpoint }) => {
      if (isPath(endpoint.path)) routes.push([endpoint.method, endpoint.path])
    }
  })
  return routes
}

/**
 * `Effect.withSpan(name, options)` for pipes, without the call-site stack capture. The
 * data-last form captures a stack trace on every call and ignores `captureStackTrace: false`;
 * in drain and latency profiles that capture cost more than the span itself. The spans this is
 * used for are named after their one call site, so the stack adds nothing.
 */
export const traced = (name: string, options?: Tracer.SpanOptionsNoTrace) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withSpan(self, name, { ...options, captureStackTrace: false })

/**
 * `Effect.fn(name)` for the methods every request runs: each call is still a span named `name`,
 * but without the stack traces `Effect.fn` captures, one at definition and one on every call
 * (a `new Error()`). For the three such methods of a single enqueue those captures were 5 % of
 * the server's CPU. The span names say which method it was; `body` is `Effect.fnUntraced(...)`.
 */
export const spanned = <Args extends ReadonlyArray<unknown>, A, E, R>(
  name: string,
  body: (...args: Args) => Effect.Effect<A, E, R>
) => {
  const span = traced(name)
  return (...args: Args): Effect.Effect<A, E, R> => span(body(...args))
}
