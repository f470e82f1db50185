import { Console, Effect, Formatter, Layer, Logger, References } from "effect"
import { HttpMiddleware, HttpServerRequest, type HttpServerResponse } from "effect/http"
import { AppConfig } from "../Config/AppConfig.ts"
import { CurrentRequestId, resolveRequestId } from "../Http/RequestId.ts"

const reserved = new Set(["time", "level", "message", "traceId", "spanId", "cause", "durations"])

const isPlain = (value: unknown): value is string | number | boolean | null =>
  value === null || typeof value === "string" || typeof value === "number" || typeof value === "boolean"

/** The message of a line whose message is one string, as Effect's structured record writes it. */
const plainMessage = (message: unknown): string | undefined =>
  typeof message === "string" ? message : Array.isArray(message) && message.length === 1 && typeof message[0] === "string"
  ? message[0]
  : undefined

const addTrace = (line: Record<string, unknown>, span: { readonly traceId: string; readonly spanId: string } | undefined) => {
  if (span === undefined) return
  line.traceId = span.traceId
  line.spanId = span.spanId
}

/**
 * Effect's own structured record (`Logger.formatStructured`, the record behind
 * `Logger.formatJson`), reshaped into one flat object. Written by hand only
 * for what the built-in JSON logger lacks: it names the time `timestamp`,
 * nests the annotations, and carries no trace or span id. The ids come from
 * the fiber's current span (`fiber.cache.span`, what `Effect.currentSpan`
 * reads), so a line can be joined with its trace. An annotation cannot
 * overwrite a fixed field.
 *
 * A line with one string as its message, no cause and only strings, numbers,
 * booleans and nulls as annotations (every request line) is built directly and
 * written with `JSON.stringify`: the same JSON, at about a fifth of the cost of
 * the general path, whose `Formatter.formatJson` inspects every value for
 * getters, redactable values and cycles. Anything else takes the general path.
 */
export const formatLine = Logger.make((options): string => {
  const span = options.fiber.cache.span
  const message = plainMessage(options.message)
  const annotations = options.fiber.getRef(References.CurrentLogAnnotations)
  if (message !== undefined && options.cause.reasons.length === 0 && Object.values(annotations).every(isPlain)) {
    const line: Record<string, unknown> = {
      time: options.date.toISOString(),
      level: options.logLevel.toUpperCase(),
      message
    }
    for (const key in annotations) {
      if (!reserved.has(key)) line[key] = annotations[key]
    }
    addTrace(line, span)
    const spans = options.fiber.getRef(References.CurrentLogSpans)
    if (spans.length > 0) {
      const now = options.date.getTime()
      const durations: Record<string, number> = {}
      for (const [label, start] of spans) durations[label] = now - start
      line.durations = durations
    }
    return JSON.stringify(line)
  }
  const entry = Logger.formatStructured.log(options)
  const line: Record<string, unknown> = { time: entry.timestamp, level: entry.level, message: entry.message }
  for (const [key, value] of Object.entries(entry.annotations)) {
    if (!reserved.has(key)) line[key] = value
  }
  addTrace(line, span)
  if (entry.cause !== undefined) line.cause = entry.cause
  if (Object.keys(entry.spans).length > 0) line.durations = entry.spans
  return Formatter.formatJson(line)
})

/** `formatLine` written to stdout through the `Console` service, as `Logger.consoleJson` does. */
export const jsonLogger = Logger.withConsoleLog(formatLine)

/**
 * `formatLine`, with the lines of each 10 ms written to stdout together: one
 * write instead of one per line (under HTTP load, about a tenth of the
 * server's CPU went to the access log's writes). The lines still buffered
 * are written when the logger's scope closes, at the end of shutdown; a
 * process killed outright loses at most the last 10 ms of lines.
 */
export const batchedJsonLogger = Logger.batched(formatLine, {
  window: "10 millis",
  flush: (lines) => Console.log(lines.join("\n"))
})

/**
 * The service's logging: one JSON object per line on stdout, at or above
 * `FOREMAN_LOG_LEVEL`. It replaces the default loggers, so the pretty console
 * logger goes; `tracerLogger` (log lines as span events) is kept.
 */
export const LoggingLive = Layer.unwrap(Effect.gen(function*() {
  const config = yield* AppConfig
  return Layer.merge(
    Logger.layer([batchedJsonLogger, Logger.tracerLogger]),
    Layer.succeed(References.MinimumLogLevel, config.logLevel)
  )
}))

/**
 * Effect's request logger (`HttpMiddleware.logger`: method, path without the
 * query, status; never headers or bodies), with the request id on its line.
 * It runs outside the router, so the id is resolved here, first: a
 * well-formed incoming `x-request-id` or a minted one, provided as
 * `CurrentRequestId` and as a log annotation to everything the request runs,
 * the envelope middleware (which answers with it) included.
 * For `HttpRouter.serve(..., { disableLogger: true, middleware: requestLogger })`.
 */
export const requestLogger = <E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const requestId = resolveRequestId(request.headers["x-request-id"])
    return HttpMiddleware.logger(app).pipe(
      Effect.annotateLogs({ requestId }),
      Effect.provideService(CurrentRequestId, requestId)
    )
  })
