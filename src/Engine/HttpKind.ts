import { Effect, Schema } from "effect"
import dns from "node:dns"
import http from "node:http"
import https from "node:https"
import net from "node:net"
import type { ClaimedJob } from "./EngineRepo.ts"
import { currentSpanTraceparent, traced } from "../Observability/Tracing.ts"
import { type Handler, HandlerFailure } from "./Handler.ts"

export const HttpJobPayload = Schema.Struct({
  url: Schema.String.check(Schema.isMaxLength(4096)),
  method: Schema.optionalKey(Schema.Literals(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])),
  headers: Schema.optionalKey(Schema.Record(Schema.String, Schema.String)),
  body: Schema.optionalKey(Schema.Json)
})
export type HttpJobPayload = typeof HttpJobPayload.Type

export interface HttpKindOptions {
  /** CIDRs exempt from the private-address refusal (development and tests). */
  readonly allowCidrs: ReadonlyArray<string>
  readonly connectTimeoutMs: number
  readonly maxResponseBytes: number
  /** How much of the response body is stored as the job's result. */
  readonly storedBodyBytes: number
}

/**
 * Loopback, private, link-local (cloud metadata lives there), CGNAT, documentation,
 * multicast and reserved ranges, and IPv6 prefixes that translate to IPv4.
 */
const refusedRanges: ReadonlyArray<readonly [string, number, "ipv4" | "ipv6"]> = [
  ["0.0.0.0", 8, "ipv4"],
  ["10.0.0.0", 8, "ipv4"],
  ["100.64.0.0", 10, "ipv4"],
  ["127.0.0.0", 8, "ipv4"],
  ["169.254.0.0", 16, "ipv4"],
  ["172.16.0.0", 12, "ipv4"],
  ["192.0.0.0", 24, "ipv4"],
  ["192.168.0.0", 16, "ipv4"],
  ["198.18.0.0", 15, "ipv4"],
  ["192.0.2.0", 24, "ipv4"],
  ["198.51.100.0", 24, "ipv4"],
  ["203.0.113.0", 24, "ipv4"],
  ["224.0.0.0", 4, "ipv4"],
  ["240.0.0.0", 4, "ipv4"],
  ["::", 128, "ipv6"],
  ["::1", 128, "ipv6"],
  // IPv4-compatible, NAT64 and 6to4 addresses can reach IPv4 space through a translator.
  ["::", 96, "ipv6"],
  ["64:ff9b::", 96, "ipv6"],
  ["64:ff9b:1::", 48, "ipv6"],
  ["2002::", 16, "ipv6"],
  ["::ffff:0:0:0", 96, "ipv6"],
  ["2001::", 32, "ipv6"],
  ["100::", 64, "ipv6"],
  ["fc00::", 7, "ipv6"],
  ["fe80::", 10, "ipv6"],
  ["ff00::", 8, "ipv6"]
]

const toBlockList = (ranges: ReadonlyArray<readonly [string, number, "ipv4" | "ipv6"]>) => {
  const list = new net.BlockList()
  for (const [address, prefix, family] of ranges) list.addSubnet(address, prefix, family)
  return list
}

const parseCidr = (cidr: string): readonly [string, number, "ipv4" | "ipv6"] => {
  const [address = "", prefix] = cidr.split("/")
  const family = net.isIPv6(address) ? "ipv6" : "ipv4"
  return [address, prefix === undefined ? (family === "ipv4" ? 32 : 128) : Number(prefix), family]
}

/** Decides whether an address may be connected to. */
export const makeAddressGuard = (allowCidrs: ReadonlyArray<string>) => {
  const refused = toBlockList(refusedRanges)
  const allowed = toBlockList(allowCidrs.map(parseCidr))
  return (address: string): boolean => {
    // IPv4-mapped IPv6 (::ffff:10.0.0.1) is checked as the IPv4 address it carries.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1]
    const ip = mapped ?? address
    const family = net.isIPv6(ip) ? "ipv6" : "ipv4"
    if (allowed.check(ip, family)) return true
    return !refused.check(ip, family)
  }
}

class RefusedAddress extends Error {}

const retryAfterMs = (header: string | undefined): number | undefined => {
  if (header === undefined) return undefined
  const seconds = Number(header)
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, 86_400_000)
  const date = Date.parse(header)
  return Number.isNaN(date) ? undefined : Math.max(0, Math.min(date - Date.now(), 86_400_000))
}

interface HttpOutcome {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

/**
 * The built-in `http` kind. SSRF is refused at connect time: every address the
 * name resolves to is checked inside the socket's own DNS lookup, so a name
 * cannot resolve to a public address for a check and a private one for the
 * connection. Redirects are never followed.
 */
export const makeHttpHandler = (options: HttpKindOptions): Handler => {
  const isAllowed = makeAddressGuard(options.allowCidrs)

  const lookup: net.LookupFunction = (hostname, lookupOptions, callback) => {
    dns.lookup(hostname, { ...lookupOptions, all: true }, (error, addresses) => {
      if (error) return callback(error, "", 0)
      const bad = addresses.find((entry) => !isAllowed(entry.address))
      if (bad !== undefined) {
        return callback(new RefusedAddress(`${hostname} resolves to refused address ${bad.address}`), "", 0)
      }
      if (lookupOptions.all) return callback(null, addresses)
      const first = addresses[0]
      if (first === undefined) return callback(new Error(`${hostname} did not resolve`), "", 0)
      return callback(null, first.address, first.family)
    })
  }

  const perform = (payload: HttpJobPayload, url: URL, signal: AbortSignal, traceparent: string | null) =>
    new Promise<HttpOutcome>((resolve, reject) => {
      const body = payload.body === undefined ? undefined : typeof payload.body === "string" ? payload.body : JSON.stringify(payload.body)
      const headers: Record<string, string> = {}
      // The call's own span context replaces any `traceparent` in the payload's headers.
      for (const [name, value] of Object.entries(payload.headers ?? {})) {
        if (traceparent === null || name.toLowerCase() !== "traceparent") headers[name] = value
      }
      if (traceparent !== null) headers.traceparent = traceparent
      const hasContentType = Object.keys(headers).some((name) => name.toLowerCase() === "content-type")
      if (body !== undefined && !hasContentType) headers["content-type"] = "application/json"
      const client = url.protocol === "https:" ? https : http
      const request = client.request(url, { method: payload.method ?? "GET", headers, lookup, signal, agent: false })
      const connectTimer = setTimeout(
        () => request.destroy(new Error(`connect timeout after ${options.connectTimeoutMs} ms`)),
        options.connectTimeoutMs
      )
      request.on("socket", (socket) => {
        socket.once(url.protocol === "https:" ? "secureConnect" : "connect", () => clearTimeout(connectTimer))
      })
      request.on("error", (error) => {
        clearTimeout(connectTimer)
        reject(error)
      })
      request.on("response", (response) => {
        clearTimeout(connectTimer)
        const chunks: Array<Buffer> = []
        let size = 0
        response.on("data", (chunk: Buffer) => {
          size += chunk.length
          if (size > options.maxResponseBytes) {
            response.destroy(new Error(`response larger than ${options.maxResponseBytes} bytes`))
            return
          }
          chunks.push(chunk)
        })
        response.on("error", reject)
        response.on("end", () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks).toString("utf8").slice(0, options.storedBodyBytes)
          }))
      })
      request.end(body)
    })

  const decode = Schema.decodeUnknownEffect(HttpJobPayload)

  return (job: ClaimedJob) =>
    Effect.gen(function*() {
      const payload = yield* decode(job.payload).pipe(
        Effect.mapError((error) => new HandlerFailure({ message: `invalid http job payload: ${error.message}`, retryable: false }))
      )
      const url = yield* Effect.try({
        try: () => new URL(payload.url),
        catch: () => new HandlerFailure({ message: `invalid url: ${payload.url}`, retryable: false })
      })
      if (url.protocol !== "http:" && url.protocol !== "https:") {
        return yield* new HandlerFailure({ message: `only http and https URLs are allowed, got ${url.protocol}`, retryable: false })
      }
      const host = url.hostname.replace(/^\[|\]$/g, "")
      // Literal IPs never reach the DNS lookup, so they are checked here.
      if (net.isIP(host) !== 0 && !isAllowed(host)) {
        return yield* new HandlerFailure({ message: `refused address ${host}`, retryable: false })
      }
      const method = payload.method ?? "GET"
      // One client span per outbound call; its context goes out as the request's `traceparent`.
      const outcome = yield* Effect.flatMap(currentSpanTraceparent, (traceparent) =>
        Effect.tryPromise({
          try: (signal) => perform(payload, url, signal, traceparent),
          catch: (error) =>
            error instanceof RefusedAddress
              ? new HandlerFailure({ message: error.message, retryable: false })
              : new HandlerFailure({ message: `request failed: ${error instanceof Error ? error.message : String(error)}`, retryable: true })
        })).pipe(
          Effect.tap((outcome) => Effect.annotateCurrentSpan("http.response.status_code", outcome.status)),
          Effect.withSpan(method, {
            kind: "client",
            attributes: {
              "http.request.method": method,
              "url.scheme": url.protocol.slice(0, -1),
              "server.address": host,
              "server.port": Number(url.port || (url.protocol === "https:" ? 443 : 80))
            }
          })
        )
      const result = { status: outcome.status, body: outcome.body }
      if (outcome.status >= 200 && outcome.status < 300) return result
      const retryable = outcome.status === 408 || outcome.status === 429 || outcome.status >= 500
      const retryAfterHeader = outcome.headers["retry-after"]
      return yield* new HandlerFailure({
        message: `HTTP ${outcome.status}`,
        retryable,
        retryAfterMs: retryable ? retryAfterMs(retryAfterHeader) : undefined,
        details: result
      })
    }).pipe(traced("HttpKind.request"))
}
