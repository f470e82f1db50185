/**
 * The service's logs, from the real process: one JSON object per line with
 * time, level and message, request lines carrying their request id, and no
 * secret anywhere in stdout or stderr, even at Debug.
 */
import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { testPepper } from "../support/identity.ts"
import { delay, sideEffectDatabases, startService, stopNow } from "../support/processes.ts"

const freshDatabase = sideEffectDatabases()

const adminKey = "fmk_logging-test-admin-key-0123456789abcdef"
const password = "a password that must never be logged"

const Line = Schema.Struct({ time: Schema.String, level: Schema.String, message: Schema.Unknown })
const decodeLine = Schema.decodeUnknownSync(Line)
const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const call = async (baseUrl: string, method: string, path: string, options: { token?: string; body?: unknown } = {}) => {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
      ...(options.body === undefined ? {} : { "content-type": "application/json" })
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) })
  })
  const text = await response.text()
  const body: unknown = text.length === 0 ? undefined : JSON.parse(text)
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`)
  if (!isRecord(body)) throw new Error(`${method} ${path}: not an object: ${text}`)
  return body
}

const field = (body: Record<string, unknown>, name: string): string => {
  const value = body[name]
  if (typeof value !== "string") throw new Error(`expected a string ${name} in ${JSON.stringify(body)}`)
  return value
}

describe("logs", () => {
  it("are JSON lines with time, level, message and request ids, and never contain a secret", async () => {
    const { url } = await freshDatabase()
    const service = await startService({
      databaseUrl: url,
      env: { FOREMAN_ADMIN_API_KEY: adminKey, FOREMAN_LOG_LEVEL: "Debug", FOREMAN_INSTANCE_ID: "logging" }
    })
    try {
      const base = service.baseUrl
      // An API-key request: create a user (with its password) and a project.
      const user = await call(base, "POST", "/v1/users", {
        token: adminKey,
        body: { email: "logged@example.com", password, name: "Logged User" }
      })
      assert.strictEqual(field(user, "email"), "logged@example.com")
      const project = await call(base, "POST", "/v1/projects", { token: adminKey, body: { name: "logging" } })
      const projectId = field(project, "id")
      // A login, a refresh, and a request with the access token.
      const pair = await call(base, "POST", "/v1/auth/login", { body: { email: "logged@example.com", password } })
      const refreshed = await call(base, "POST", "/v1/auth/refresh", { body: { refresh_token: field(pair, "refresh_token") } })
      await call(base, "GET", "/v1/me", { token: field(refreshed, "access_token") })
      // A created key's secret, then used.
      const key = await call(base, "POST", `/v1/projects/${projectId}/api-keys`, {
        token: adminKey,
        body: { name: "logged key", role: "admin" }
      })
      const keySecret = field(key, "secret")
      await call(base, "GET", `/v1/projects/${projectId}/queues`, { token: keySecret })
      // A failed login (wrong password) is logged too, without the password.
      const wrong = await fetch(`${base}/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email: "logged@example.com", password: "wrong-password-also-secret" })
      })
      assert.strictEqual(wrong.status, 401)
      await wrong.text()
      const minted = wrong.headers.get("x-request-id") ?? ""
      // A request id the client chose is kept.
      const chosen = await fetch(`${base}/v1/me`, {
        headers: { authorization: `Bearer ${keySecret}`, "x-request-id": "logging-test-42" }
      })
      await chosen.text()
      assert.strictEqual(chosen.headers.get("x-request-id"), "logging-test-42")

      // A graceful stop: every line is written (the request line follows the response) and shutdown logs too.
      service.kill("SIGTERM")
      assert.strictEqual(await service.exitCode, 0)
      const output = service.output()
      const secrets = {
        adminKey,
        password,
        wrongPassword: "wrong-password-also-secret",
        pepper: testPepper,
        accessToken: field(pair, "access_token"),
        refreshToken: field(pair, "refresh_token"),
        refreshedAccessToken: field(refreshed, "access_token"),
        refreshedRefreshToken: field(refreshed, "refresh_token"),
        keySecret,
        databasePassword: new URL(url).password
      }
      for (const [name, secret] of Object.entries(secrets)) {
        if (secret.length === 0) continue
        assert.notInclude(output, secret, `${name} appears in the output`)
      }

      const lines = output.split("\n").filter((line) => line.startsWith("{"))
      const parsed = lines.map((line) => {
        const value: unknown = JSON.parse(line)
        decodeLine(value)
        if (!isRecord(value)) throw new Error(`not an object: ${line}`)
        assert.match(field(value, "time"), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
        return value
      })
      assert.isAbove(parsed.length, 0, output)
      // Debug is on: the SQL client's debug lines (or others) pass the level filter.
      const requests = parsed.filter((line) => line.message === "Sent HTTP response")
      assert.isAtLeast(requests.length, 7, output.slice(-5000))
      for (const line of requests) {
        assert.match(field(line, "requestId"), /^[\w.:-]+$/, JSON.stringify(line))
        assert.strictEqual(typeof line["http.method"], "string")
        assert.strictEqual(typeof line["http.status"], "number")
      }
      // The logged id is the one the client got back, minted or chosen.
      assert.isTrue(requests.some((line) => line["http.status"] === 401 && line.requestId === minted), minted)
      assert.isTrue(requests.some((line) => line.requestId === "logging-test-42"))
      // A span is active while a request is served: its line names the trace.
      for (const line of requests) {
        assert.match(field(line, "traceId"), /^[0-9a-f]{32}$/)
        assert.match(field(line, "spanId"), /^[0-9a-f]{16}$/)
      }
    } finally {
      await stopNow(service)
    }
  }, 120_000)

  it("honours FOREMAN_LOG_LEVEL: at Warn, no Info lines", async () => {
    const { url } = await freshDatabase()
    const service = await startService({ databaseUrl: url, env: { FOREMAN_ADMIN_API_KEY: adminKey, FOREMAN_LOG_LEVEL: "Warn" } })
    await call(service.baseUrl, "GET", "/v1/projects", { token: adminKey })
    service.kill("SIGTERM")
    await service.exited
    const levels = service.output().split("\n").filter((line) => line.startsWith("{")).map((line) => {
      const value: unknown = JSON.parse(line)
      return decodeLine(value).level
    })
    assert.notInclude(levels, "INFO")
    assert.notInclude(levels, "DEBUG")
  }, 120_000)

  it("a client closing an event stream is an ordinary request line, never an error or an interruption", async () => {
    const { url } = await freshDatabase()
    const service = await startService({
      databaseUrl: url,
      env: { FOREMAN_ADMIN_API_KEY: adminKey, FOREMAN_LOG_LEVEL: "Debug", FOREMAN_EVENTS_KEEPALIVE_MS: "200" }
    })
    try {
      const projectId = field(await call(service.baseUrl, "POST", "/v1/projects", { token: adminKey, body: { name: "streams" } }), "id")
      const streamPath = `/v1/projects/${projectId}/events/stream`
      // Dropped at once, after the first bytes, between keep-alives, and (the last three) open at shutdown.
      const open = async (holdMs: number | undefined) => {
        const controller = new AbortController()
        const response = await fetch(`${service.baseUrl}${streamPath}`, {
          headers: { authorization: `Bearer ${adminKey}` },
          signal: controller.signal
        })
        const reader = response.body?.getReader()
        await reader?.read()
        if (holdMs === undefined) return
        await delay(holdMs)
        controller.abort()
      }
      for (const holdMs of [0, 20, 150, 450]) await open(holdMs)
      await Promise.all([open(undefined), open(undefined), open(undefined)])
      await delay(200)
      service.kill("SIGTERM")
      assert.strictEqual(await service.exitCode, 0)
      const output = service.output()
      assert.notMatch(output, /InterruptError|interrupted/i, output.slice(-3000))
      const streamLines = output.split("\n").filter((line) => line.startsWith("{") && line.includes(streamPath))
      assert.strictEqual(streamLines.length, 7, output.slice(-3000))
      for (const line of streamLines) {
        const value: unknown = JSON.parse(line)
        if (!isRecord(value)) throw new Error(line)
        assert.strictEqual(value.message, "Sent HTTP response", line)
        assert.strictEqual(value.level, "INFO", line)
        assert.strictEqual(value["http.status"], 200, line)
        assert.isUndefined(value.cause, line)
      }
    } finally {
      await stopNow(service)
    }
  }, 120_000)
})
