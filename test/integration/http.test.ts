import { assert, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { HttpApi } from "effect/http-api"
import { Api } from "../../src/Http/Api.ts"
import { assertEnvelope, assertValidationIssue } from "../support/fixtures.ts"
import { adminToken, baseUrl, raw, type RawResponse, TestApp } from "../support/TestApp.ts"

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

const OpenApiDocument = Schema.Struct({
  openapi: Schema.String,
  info: Schema.Struct({ title: Schema.String, version: Schema.String }),
  paths: Schema.Record(Schema.String, Schema.Record(Schema.String, Schema.Unknown))
})

const Readiness = Schema.Struct({
  status: Schema.String,
  checks: Schema.Record(Schema.String, Schema.String)
})

/** Every route the HttpApi declares, as OpenAPI spells them: `["post", "/v1/projects/{projectId}/jobs"]`. */
const declaredRoutes = (): Array<readonly [string, string]> => {
  const routes: Array<readonly [string, string]> = []
  HttpApi.reflect(Api, {
    onGroup: () => {},
    onEndpoint: ({ endpoint }) => {
      routes.push([endpoint.method.toLowerCase(), endpoint.path.replace(/:(\w+)/g, "{$1}")])
    }
  })
  return routes
}

/** A body streamed without content-length (chunked), which a length check alone would miss. */
const chunked = (path: string, bytes: number) =>
  Effect.gen(function*() {
    const url = yield* baseUrl
    return yield* Effect.promise(async (): Promise<RawResponse> => {
      const chunk = new TextEncoder().encode("x".repeat(256))
      let sent = 0
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= bytes) return controller.close()
          sent += chunk.length
          controller.enqueue(chunk)
        }
      })
      const response = await fetch(url + path, {
        method: "POST",
        headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
        body: stream,
        duplex: "half"
      })
      const text = await response.text()
      let body: unknown 
      try {
        body = JSON.parse(text)
      } catch {
        body = undefined
      }
      return { status: response.status, headers: response.headers, body, text }
    })
  })

layer(TestApp(), { timeout: 120_000, excludeTestServices: true })("http", (it) => {
  it.effect("an unknown route is a 404 envelope, with or without credentials", () =>
    Effect.gen(function*() {
      assertEnvelope(yield* raw("GET", "/nope"), 404, "NotFound")
      assertEnvelope(yield* raw("GET", "/v1/nope", { token: adminToken }), 404, "NotFound")
      assertEnvelope(yield* raw("POST", "/v1/projects/x/y/z", { token: adminToken, body: "{}" }), 404, "NotFound")
      const wrongMethod = yield* raw("PUT", "/v1/projects", { token: adminToken, body: "{}" })
      assert.isAtLeast(wrongMethod.status, 400)
      assertEnvelope(wrongMethod, wrongMethod.status, wrongMethod.status === 405 ? "MethodNotAllowed" : "NotFound")
    }))

  it.effect("a malformed JSON body is a 400 ValidationError at payload", () =>
    Effect.gen(function*() {
      for (const body of ["{not json", "{\"name\": \"a\"", "[1,", "\u0000"]) {
        const response = yield* raw("POST", "/v1/projects", { token: adminToken, body })
        assertValidationIssue(response, ["payload"])
      }
      // Well-formed JSON of the wrong shape names the field.
      assertValidationIssue(yield* raw("POST", "/v1/projects", { token: adminToken, body: "{\"name\": 42}" }), ["payload", "name"])
      assertValidationIssue(yield* raw("POST", "/v1/projects", { token: adminToken, body: "[]" }), ["payload"])
      assertValidationIssue(yield* raw("POST", "/v1/projects", { token: adminToken, body: "null" }), ["payload"])
    }))

  it.effect("a body with the wrong content-type is a 415 envelope served as JSON", () =>
    Effect.gen(function*() {
      for (const contentType of ["text/plain", "application/xml", "multipart/form-data; boundary=x"]) {
        const response = yield* raw("POST", "/v1/projects", {
          token: adminToken,
          body: JSON.stringify({ name: "typed wrong" }),
          headers: { "content-type": contentType }
        })
        assertEnvelope(response, 415, "UnsupportedMediaType")
      }
      // Parameters on the right media type are fine.
      const ok = yield* raw("POST", "/v1/projects", {
        token: adminToken,
        body: JSON.stringify({ name: "typed right" }),
        headers: { "content-type": "application/json; charset=utf-8" }
      })
      assert.strictEqual(ok.status, 201, ok.text)
    }))

  it.effect("a well-formed x-request-id is echoed in the header and the error body", () =>
    Effect.gen(function*() {
      for (const id of ["abc-123", "trace:01J.x_y-z", "a".repeat(128)]) {
        const response = yield* raw("GET", "/v1/projects/not-a-uuid", { token: adminToken, headers: { "x-request-id": id } })
        assert.strictEqual(response.headers.get("x-request-id"), id)
        assert.strictEqual(assertEnvelope(response, 400, "ValidationError").requestId, id)
      }
      const success = yield* raw("GET", "/healthz", { headers: { "x-request-id": "probe-1" } })
      assert.strictEqual(success.status, 200)
      assert.strictEqual(success.headers.get("x-request-id"), "probe-1", "successes carry it too")
    }))

  it.effect("a malformed x-request-id is replaced by a fresh one", () =>
    Effect.gen(function*() {
      const malformed = ["has spaces", "a".repeat(129), "x".repeat(300), "semi;colon", "<script>", "ünïcode", "a/b"]
      const seen = new Set<string>()
      for (const id of malformed) {
        const response = yield* raw("GET", "/nope", { headers: { "x-request-id": id } })
        const header = response.headers.get("x-request-id") ?? ""
        assert.notStrictEqual(header, id)
        assert.match(header, uuid)
        assert.strictEqual(assertEnvelope(response, 404, "NotFound").requestId, header)
        assert.notInclude(response.text, id)
        seen.add(header)
      }
      assert.strictEqual(seen.size, malformed.length, "each request gets its own id")
      const none = yield* raw("GET", "/nope")
      assert.match(none.headers.get("x-request-id") ?? "", uuid)
    }))

  it.effect("/healthz is 200 without credentials", () =>
    Effect.gen(function*() {
      const response = yield* raw("GET", "/healthz")
      assert.strictEqual(response.status, 200)
      assert.deepStrictEqual(response.body, { status: "ok" })
    }))

  it.effect("/readyz is 200 with every check ok", () =>
    Effect.gen(function*() {
      const response = yield* raw("GET", "/readyz")
      assert.strictEqual(response.status, 200, response.text)
      const readiness = Schema.decodeUnknownSync(Readiness)(response.body)
      assert.strictEqual(readiness.status, "ready")
      assert.includeMembers(Object.keys(readiness.checks), ["database", "migrations", "shutdown"])
      for (const [name, status] of Object.entries(readiness.checks)) assert.strictEqual(status, "ok", name)
    }))

  it.effect("/openapi.json is an OpenAPI document listing every route", () =>
    Effect.gen(function*() {
      const response = yield* raw("GET", "/openapi.json")
      assert.strictEqual(response.status, 200)
      const document = Schema.decodeUnknownSync(OpenApiDocument)(response.body)
      assert.match(document.openapi, /^3\.\d+\.\d+$/)
      assert.strictEqual(document.info.title, "Foreman")
      const expected: ReadonlyArray<readonly [string, string]> = [
        ["get", "/healthz"],
        ["get", "/readyz"],
        ["post", "/v1/projects"],
        ["get", "/v1/projects"],
        ["get", "/v1/projects/{projectId}"],
        ["patch", "/v1/projects/{projectId}"],
        ["post", "/v1/projects/{projectId}/api-keys"],
        ["get", "/v1/projects/{projectId}/api-keys"],
        ["delete", "/v1/projects/{projectId}/api-keys/{keyId}"],
        ["post", "/v1/projects/{projectId}/queues"],
        ["get", "/v1/projects/{projectId}/queues"],
        ["get", "/v1/projects/{projectId}/queues/{queueName}"],
        ["patch", "/v1/projects/{projectId}/queues/{queueName}"],
        ["post", "/v1/projects/{projectId}/jobs"],
        ["post", "/v1/projects/{projectId}/jobs/batch"],
        ["get", "/v1/projects/{projectId}/jobs"],
        ["get", "/v1/projects/{projectId}/jobs/{jobId}"],
        ["post", "/v1/projects/{projectId}/jobs/{jobId}/cancel"]
      ]
      const declared = declaredRoutes()
      assert.isAtLeast(declared.length, expected.length)
      for (const [method, path] of [...expected, ...declared]) {
        assert.isDefined(document.paths[path]?.[method], `${method.toUpperCase()} ${path} is documented`)
      }
    }))

  it.effect("/docs serves an HTML page", () =>
    Effect.gen(function*() {
      const response = yield* raw("GET", "/docs")
      assert.strictEqual(response.status, 200)
      assert.match(response.headers.get("content-type") ?? "", /^text\/html/)
      assert.match(response.text, /<html/i)
      assert.include(response.text, "Scalar.createApiReference", "the page boots Scalar with the bundled script")
      // Set up at the first request (src/Http/Docs.ts), then served from what that built.
      const again = yield* raw("GET", "/docs")
      assert.strictEqual(again.status, 200)
      assert.strictEqual(again.text, response.text)
    }))
})

layer(TestApp({ maxBodyBytes: 2048 }), { timeout: 120_000, excludeTestServices: true })("http: body limit", (it) => {
  it.effect("a body larger than FOREMAN_MAX_BODY_BYTES is a 413 PayloadTooLarge envelope", () =>
    Effect.gen(function*() {
      const small = yield* raw("POST", "/v1/projects", { token: adminToken, body: JSON.stringify({ name: "fits" }) })
      assert.strictEqual(small.status, 201, small.text)

      const big = yield* raw("POST", "/v1/projects", {
        token: adminToken,
        body: JSON.stringify({ name: "x".repeat(3000) })
      })
      assertEnvelope(big, 413, "PayloadTooLarge")
      const hugeBatch = yield* raw("POST", "/v1/projects/01a20623-99f0-7045-96c5-2e9f574d7135/jobs/batch", {
        token: adminToken,
        body: JSON.stringify({ jobs: Array.from({ length: 100 }, () => ({ queue: "q", kind: "k", payload: {} })) })
      })
      assertEnvelope(hugeBatch, 413, "PayloadTooLarge")
    }))

  it.effect("the limit holds for a chunked body without content-length", () =>
    Effect.gen(function*() {
      const response = yield* chunked("/v1/projects", 64 * 1024)
      assertEnvelope(response, 413, "PayloadTooLarge")
    }))

  it.effect("the server still answers after refusing an oversized body", () =>
    Effect.gen(function*() {
      const response = yield* raw("GET", "/healthz")
      assert.strictEqual(response.status, 200)
    }))
})
