import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { queueName, setupProject } from "../support/fixtures.ts"
import { adminToken, clientFor, raw, TestApp } from "../support/TestApp.ts"

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null

layer(TestApp(), { excludeTestServices: true })("security headers, closed CORS, audit log", (it) => {
  it.effect("every response carries the security headers", () =>
    Effect.gen(function*() {
      for (const [path, token] of [["/healthz", undefined], ["/v1/projects", adminToken], ["/v1/projects", "bad"], ["/nope", undefined]] as const) {
        const response = yield* raw("GET", path, token === undefined ? {} : { token })
        assert.strictEqual(response.headers.get("x-content-type-options"), "nosniff", path)
        assert.strictEqual(response.headers.get("x-frame-options"), "DENY", path)
        assert.strictEqual(response.headers.get("referrer-policy"), "no-referrer", path)
        assert.strictEqual(response.headers.get("content-security-policy"), "default-src 'none'; frame-ancestors 'none'", path)
        assert.strictEqual(response.headers.get("cache-control"), "no-store", path)
      }
      const docs = yield* raw("GET", "/docs")
      assert.strictEqual(docs.status, 200)
      assert.include(docs.headers.get("content-security-policy") ?? "", "script-src 'unsafe-inline'")
    }))

  it.effect("CORS is closed by default: no browser origin is allowed", () =>
    Effect.gen(function*() {
      const preflight = yield* raw("OPTIONS", "/v1/projects", {
        headers: { origin: "https://evil.example", "access-control-request-method": "POST" }
      })
      assert.isNull(preflight.headers.get("access-control-allow-origin"))
      const get = yield* raw("GET", "/healthz", { headers: { origin: "https://evil.example" } })
      assert.isNull(get.headers.get("access-control-allow-origin"))
    }))

  it.effect("key changes and operator actions are in the audit log, with actor and request id", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("audited")
      const admin = yield* clientFor(project.tokens.admin)
      const projectId = project.projectId
      const created = yield* raw("POST", `/v1/projects/${projectId}/api-keys`, {
        token: project.tokens.admin,
        body: JSON.stringify({ name: "temp", role: "viewer" }),
        headers: { "x-request-id": "audit-create-key" }
      })
      assert.strictEqual(created.status, 201)
      const keyId = isRecord(created.body) ? String(created.body.id) : ""
      yield* raw("DELETE", `/v1/projects/${projectId}/api-keys/${keyId}`, {
        token: project.tokens.admin,
        headers: { "x-request-id": "audit-revoke-key" }
      })
      yield* admin.queues.create({ params: { projectId }, payload: { name: queueName("q") } })
      yield* admin.queues.update({ params: { projectId, queueName: queueName("q") }, payload: { paused: true } })
      const job = yield* admin.jobs.enqueue({ params: { projectId }, payload: { queue: queueName("q"), kind: "k", payload: {} } })
      yield* admin.jobs.cancel({ params: { projectId, jobId: job.id } })
      yield* admin.jobs.retry({ params: { projectId, jobId: job.id } })

      const page = yield* admin.audit.list({ params: { projectId }, query: { limit: 200 } })
      const actions = page.items.map((entry) => entry.action)
      for (const action of ["api_key.created", "api_key.revoked", "queue.created", "queue.paused", "job.cancelled", "job.retried"]) {
        assert.include(actions, action)
      }
      const revoked = page.items.find((entry) => entry.action === "api_key.revoked")
      assert.strictEqual(revoked?.target_id, keyId)
      assert.strictEqual(revoked?.request_id, "audit-revoke-key")
      assert.strictEqual(revoked?.actor, `api_key:${project.keyIds.admin}`)
      assert.strictEqual(page.items.find((entry) => entry.action === "api_key.created" && entry.target_id === keyId)?.request_id, "audit-create-key")
      // Newest first, and a cursor walks the rest.
      const firstPage = yield* admin.audit.list({ params: { projectId }, query: { limit: 2 } })
      assert.strictEqual(firstPage.items[0]?.action, "job.retried")
      assert.isString(firstPage.next_cursor)
      const second = yield* admin.audit.list({ params: { projectId }, query: { limit: 2, cursor: firstPage.next_cursor ?? "" } })
      assert.strictEqual(second.items[0]?.action, "queue.paused")

      const viewer = yield* raw("GET", `/v1/projects/${projectId}/audit`, { token: project.tokens.viewer })
      assert.strictEqual(viewer.status, 403)
      const other = yield* setupProject("other tenant")
      const foreign = yield* raw("GET", `/v1/projects/${projectId}/audit`, { token: other.tokens.admin })
      assert.strictEqual(foreign.status, 404)
    }))
})

layer(TestApp({ corsOrigins: ["https://app.example"] }), { excludeTestServices: true })("configured CORS", (it) => {
  it.effect("allows only the configured origins", () =>
    Effect.gen(function*() {
      const allowed = yield* raw("OPTIONS", "/v1/projects", {
        headers: { origin: "https://app.example", "access-control-request-method": "POST" }
      })
      assert.strictEqual(allowed.headers.get("access-control-allow-origin"), "https://app.example")
      const refused = yield* raw("GET", "/healthz", { headers: { origin: "https://evil.example" } })
      assert.notStrictEqual(refused.headers.get("access-control-allow-origin"), "https://evil.example")
    }))
})

layer(TestApp({ rateLimitPerAddress: 5 }), { excludeTestServices: true })("rate limit per client address", (it) => {
  it.effect("answers 429 with Retry-After once the address has used its budget; probes are exempt", () =>
    Effect.gen(function*() {
      const statuses: Array<number> = []
      for (let i = 0; i < 8; i++) {
        const response = yield* raw("GET", "/v1/projects", { token: adminToken })
        statuses.push(response.status)
        if (response.status === 429) {
          assert.deepInclude(response.body, { code: "RateLimited" })
          const retry = Number(response.headers.get("retry-after"))
          assert.isAtLeast(retry, 1)
        }
      }
      assert.deepStrictEqual(statuses.slice(0, 5), [200, 200, 200, 200, 200])
      assert.deepStrictEqual(statuses.slice(5), [429, 429, 429])
      assert.strictEqual((yield* raw("GET", "/readyz")).status, 200)
    }))
})
