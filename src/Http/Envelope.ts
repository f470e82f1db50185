import { ByteSize, Cause, Effect, Option, type Types } from "effect"
import { Headers, HttpIncomingMessage, HttpRouter, HttpServerError, HttpServerRequest, HttpServerResponse } from "effect/http"
import { AppConfig } from "../Config/AppConfig.ts"
import { RateLimits } from "./RateLimits.ts"
import { CurrentRequestId } from "./RequestId.ts"

const defaults: Record<number, readonly [code: string, message: string]> = {
  400: ["BadRequest", "The request could not be read"],
  401: ["Unauthorized", "Authentication required"],
  403: ["Forbidden", "Not allowed"],
  404: ["NotFound", "No such route"],
  405: ["MethodNotAllowed", "Method not allowed"],
  409: ["Conflict", "Conflict"],
  413: ["PayloadTooLarge", "The request body is too large"],
  415: ["UnsupportedMediaType", "Unsupported media type"],
  422: ["Unprocessable", "The request cannot be processed"],
  429: ["RateLimited", "Too many requests"],
  500: ["InternalServerError", "Internal server error"],
  503: ["ServiceUnavailable", "Service unavailable"]
}

const fallback = (status: number): readonly [string, string] =>
  defaults[status] ?? (status >= 500 ? ["InternalServerError", "Internal server error"] : ["BadRequest", "Bad request"])

const decoder = new TextDecoder()

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * Rewrites every non-2xx response into the documented envelope
 * `{ _tag, code, message, requestId, ... }`: typed errors keep their fields and
 * gain `code` and `requestId`; framework errors with an empty or foreign body
 * (unknown route, unreadable body, oversized body, defects) get a body built
 * from their status.
 */
export const toEnvelope = (
  response: HttpServerResponse.HttpServerResponse,
  requestId: string
): { readonly response: HttpServerResponse.HttpServerResponse; readonly body: Record<string, unknown> | undefined } => {
  if (response.status < 400) return { response, body: undefined }
  let body: Record<string, unknown> | undefined
  if (response.body._tag === "Uint8Array" && response.body.contentType.includes("json")) {
    try {
      const parsed: unknown = JSON.parse(decoder.decode(response.body.body))
      if (isRecord(parsed) && typeof parsed._tag === "string") body = parsed
    } catch {
      body = undefined
    }
  }
  const [code, message] = fallback(response.status)
  const envelope = body === undefined
    ? { _tag: code, code, message, requestId }
    : { ...body, code: body._tag, message: typeof body.message === "string" ? body.message : message, requestId }
  // The replaced body's content-type (text/plain on a 415, for one) must not outlive
  // it: the envelope is always served as application/json.
  const headers = Headers.removeMany(response.headers, ["content-type", "content-length"])
  return { response: HttpServerResponse.jsonUnsafe(envelope, { status: response.status, headers }), body: envelope }
}

const causeToResponse = <E>(cause: Cause.Cause<E>) =>
  Effect.gen(function*() {
    const [response] = yield* HttpServerError.causeResponse(cause)
    if (response.status >= 500) yield* Effect.logError("request failed", cause)
    return response
  })

const probes = new Set(["/healthz", "/readyz"])

const strictUtf8 = new TextDecoder("utf-8", { fatal: true })

/**
 * A JSON body that is not valid UTF-8 is refused: the framework would decode it
 * with replacement characters and store something the client never sent. The
 * body is read once and cached, so the endpoint's own decoding reuses it.
 */
const invalidUtf8 = (request: HttpServerRequest.HttpServerRequest) =>
  request.method === "GET" || request.method === "HEAD" || !(request.headers["content-type"] ?? "").includes("json")
    ? Effect.succeed(undefined)
    : Effect.map(request.arrayBuffer, (bytes) => {
      try {
        strictUtf8.decode(bytes)
        return undefined
      } catch {
        return Effect.succeed(HttpServerResponse.jsonUnsafe({
          _tag: "ValidationError",
          message: "the request body is not valid UTF-8",
          issues: [{ path: ["payload"], message: "not valid UTF-8" }]
        }, { status: 400 }))
      }
    })

/** Sent on every response. The API reference page needs inline script and style; nothing else needs any. */
const securityHeaders = (path: string): Record<string, string> => ({
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-resource-policy": "same-origin",
  "strict-transport-security": "max-age=31536000; includeSubDomains",
  "content-security-policy": path === "/docs"
    ? "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; font-src data:; connect-src 'self'; frame-ancestors 'none'"
    : "default-src 'none'; frame-ancestors 'none'",
  "cache-control": "no-store"
})

const retryAfter = (response: HttpServerResponse.HttpServerResponse, body: Record<string, unknown> | undefined) =>
  response.status === 429 && typeof body?.retry_after_seconds === "number"
    ? HttpServerResponse.setHeader(response, "retry-after", String(body.retry_after_seconds))
    : response

/**
 * Global middleware: the request id on the response, the per-address rate
 * limit, body size limit, security headers, and the error envelope on every
 * failure, including those raised before routing. The id itself is resolved
 * once, outside the router, by the request logger every listener is served
 * with (`requestLogger`, src/Observability/Logging.ts).
 */
export const EnvelopeMiddleware = HttpRouter.middleware(
  Effect.gen(function*() {
    const config = yield* AppConfig
    const limits = yield* RateLimits
    const maxBody = ByteSize.bytes(config.maxBodyBytes)
    return (httpEffect): Effect.Effect<HttpServerResponse.HttpServerResponse, Types.unhandled, HttpServerRequest.HttpServerRequest> =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const requestId = yield* CurrentRequestId
        const path = request.url.split("?", 1)[0] ?? ""
        const address = Option.getOrElse(request.remoteAddress, () => "unknown")
        const limited = probes.has(path) ? undefined : yield* Effect.flip(limits.check("address", address)).pipe(
          Effect.option,
          Effect.map(Option.getOrUndefined)
        )
        const response = limited !== undefined
          ? HttpServerResponse.jsonUnsafe(
            { _tag: limited._tag, message: limited.message, retry_after_seconds: limited.retry_after_seconds },
            { status: 429 }
          )
          : yield* Effect.flatMap(invalidUtf8(request), (invalid) => invalid ?? httpEffect).pipe(
            Effect.provideService(HttpIncomingMessage.MaxBodySize, maxBody),
            Effect.catchCause(causeToResponse)
          )
        const { body, response: enveloped } = toEnvelope(response, requestId)
        return HttpServerResponse.setHeaders(retryAfter(enveloped, body), {
          ...securityHeaders(path),
          "x-request-id": requestId
        })
      })
  }),
  { global: true }
)
