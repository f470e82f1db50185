import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { queueName, setupProject } from "../support/fixtures.ts"
import { adminToken, baseUrl, clientFor, raw, TestApp } from "../support/TestApp.ts"

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

const json = (value: unknown) => JSON.stringify(value)

layer(TestApp({ rateLimitLogin: 3 }), { excludeTestServices: true })("identity in the audit log; login rate limit", (it) => {
  it.effect("logins (failed and successful), refresh reuse and membership changes are audited", () =>
    Effect.gen(function*() {
      const email = "audited@example.com"
      const password = "correct horse battery staple"
      const user = yield* raw("POST", "/v1/users", { token: adminToken, body: json({ email, password, name: "Audited" }) })
      assert.strictEqual(user.status, 201)
      const userId = isRecord(user.body) ? String(user.body.id) : ""
      const bad = yield* raw("POST", "/v1/auth/login", { body: json({ email, password: "wrong password here" }) })
      assert.strictEqual(bad.status, 401)
      const good = yield* raw("POST", "/v1/auth/login", { body: json({ email, password }) })
      assert.strictEqual(good.status, 200)
      const refreshToken = isRecord(good.body) ? String(good.body.refresh_token) : ""
      assert.strictEqual((yield* raw("POST", "/v1/auth/refresh", { body: json({ refresh_token: refreshToken }) })).status, 200)
      assert.strictEqual((yield* raw("POST", "/v1/auth/refresh", { body: json({ refresh_token: refreshToken }) })).status, 401)

      const platform = yield* raw("GET", "/v1/audit?limit=200", { token: adminToken })
      assert.strictEqual(platform.status, 200)
      const entries = isRecord(platform.body) && Array.isArray(platform.body.items) ? platform.body.items.filter(isRecord) : []
      const find = (action: string) => entries.find((entry) => entry.action === action)
      assert.deepInclude(find("auth.login_failed"), { actor: "anonymous", target_id: userId })
      assert.deepInclude(find("auth.login"), { actor: `user:${userId}` })
      assert.isDefined(find("auth.refresh_reuse"))

      const project = yield* setupProject("members audited")
      const added = yield* raw("POST", `/v1/projects/${project.projectId}/members`, {
        token: project.tokens.admin,
        body: json({ user_id: userId, role: "viewer" })
      })
      assert.strictEqual(added.status, 201)
      const admin = yield* clientFor(project.tokens.admin)
      const audit = yield* admin.audit.list({ params: { projectId: project.projectId }, query: {} })
      const memberEntry = audit.items.find((entry) => entry.action === "member.added")
      assert.strictEqual(memberEntry?.target_id, userId)
      assert.strictEqual(memberEntry?.actor, `api_key:${project.keyIds.admin}`)
    }))

  it.effect("login attempts per address are limited more strictly than other calls", () =>
    Effect.gen(function*() {
      const statuses: Array<number> = []
      for (let i = 0; i < 4; i++) {
        const response = yield* raw("POST", "/v1/auth/login", { body: json({ email: "nobody@example.com", password: "not the password" }) })
        statuses.push(response.status)
        if (response.status === 429) assert.isAtLeast(Number(response.headers.get("retry-after")), 1)
      }
      // The budget of 3 was partly spent by the previous test in this layer.
      assert.include(statuses, 429)
      assert.strictEqual(statuses.at(-1), 429)
      assert.strictEqual((yield* raw("GET", "/v1/projects", { token: adminToken })).status, 200)
    }))
})

layer(TestApp({ rateLimitPerPrincipal: 4 }), { excludeTestServices: true })("rate limit per principal", (it) => {
  it.effect("a key that used its budget gets 429; another key is unaffected", () =>
    Effect.gen(function*() {
      // Three calls of the platform admin's budget of four.
      const admin = yield* clientFor(adminToken)
      const project = yield* admin.projects.create({ payload: { name: "limited principal" } })
      const viewer = yield* admin.apiKeys.create({ params: { projectId: project.id }, payload: { name: "v", role: "viewer" } })
      const producer = yield* admin.apiKeys.create({ params: { projectId: project.id }, payload: { name: "p", role: "producer" } })
      const statuses: Array<number> = []
      for (let i = 0; i < 6; i++) {
        statuses.push((yield* raw("GET", `/v1/projects/${project.id}/queues`, { token: viewer.secret })).status)
      }
      assert.deepStrictEqual(statuses, [200, 200, 200, 200, 429, 429])
      assert.strictEqual((yield* raw("GET", `/v1/projects/${project.id}/queues`, { token: producer.secret })).status, 200)
    }))
})

layer(TestApp(), { excludeTestServices: true })("mass assignment", (it) => {
  it.effect("unknown and server-owned fields in a request body are a 400 naming the field", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("mass assignment")
      const base = `/v1/projects/${project.projectId}`
      yield* raw("POST", `${base}/queues`, { token: project.tokens.admin, body: json({ name: "q" }) })
      const cases = [
        { path: `${base}/jobs`, body: { queue: "q", kind: "k", payload: {}, state: "succeeded" }, field: "state" },
        { path: `${base}/jobs`, body: { queue: "q", kind: "k", payload: {}, attempt: 5 }, field: "attempt" },
        { path: `${base}/jobs`, body: { queue: "q", kind: "k", payload: {}, project_id: project.projectId }, field: "project_id" },
        { path: `${base}/queues`, body: { name: "q2", id: "01a20623-99f0-7045-96c5-2e9f574d7135" }, field: "id" },
        { path: `${base}/api-keys`, body: { name: "k", role: "viewer", project_id: project.projectId }, field: "project_id" },
        { path: `${base}/api-keys`, body: { name: "k", role: "platform_admin" }, field: "role" }
      ]
      for (const { body, field, path } of cases) {
        const response = yield* raw("POST", path, { token: project.tokens.admin, body: json(body) })
        assert.strictEqual(response.status, 400, `${path} ${field}`)
        assert.deepInclude(response.body, { code: "ValidationError" })
        assert.include(response.text, field)
      }
      const jobs = yield* raw("GET", `${base}/jobs`, { token: project.tokens.admin })
      assert.deepInclude(jobs.body, { items: [] })
    }))
})

layer(TestApp(), { excludeTestServices: true })("invalid UTF-8", (it) => {
  it.effect("a JSON body that is not valid UTF-8 is a 400; valid multi-byte text is accepted", () =>
    Effect.gen(function*() {
      const url = yield* baseUrl
      const send = (bytes: Uint8Array) =>
        Effect.promise(async () => {
          const response = await fetch(`${url}/v1/projects`, {
            method: "POST",
            headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
            body: bytes
          })
          return { status: response.status, body: await response.text() }
        })
      const invalid = yield* send(Uint8Array.from([...Buffer.from('{"name":"bad '), 0xc3, 0x28, ...Buffer.from('"}')]))
      assert.strictEqual(invalid.status, 400)
      assert.include(invalid.body, "not valid UTF-8")
      const valid = yield* send(new Uint8Array(Buffer.from(JSON.stringify({ name: "Grüße 😀" }))))
      assert.strictEqual(valid.status, 201)
    }))
})
