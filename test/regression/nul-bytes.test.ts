import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { adminToken, raw, TestApp } from "../support/TestApp.ts"

// Found while testing the engine: PostgreSQL refuses NUL characters (and jsonb
// unpaired surrogates), so such input used to surface as a 500 from the database.
layer(TestApp(), { excludeTestServices: true })("regression: NUL characters and unpaired surrogates are a 400", (it) => {
  it.effect("in a job payload, a project name and an idempotency key", () =>
    Effect.gen(function*() {
      const project = yield* raw("POST", "/v1/projects", { token: adminToken, body: JSON.stringify({ name: "nul" }) })
      assert.strictEqual(project.status, 201)
      const projectId = typeof project.body === "object" && project.body !== null && "id" in project.body
        ? String(project.body.id)
        : ""
      const queue = yield* raw("POST", `/v1/projects/${projectId}/queues`, {
        token: adminToken,
        body: JSON.stringify({ name: "q" })
      })
      assert.strictEqual(queue.status, 201)
      const cases = [
        { path: `/v1/projects/${projectId}/jobs`, body: `{"queue":"q","kind":"k","payload":{"text":"a\\u0000b"}}` },
        { path: `/v1/projects/${projectId}/jobs`, body: `{"queue":"q","kind":"k","payload":{"a\\u0000":1}}` },
        { path: `/v1/projects/${projectId}/jobs`, body: `{"queue":"q","kind":"k","payload":"\\ud800"}` },
        { path: `/v1/projects/${projectId}/jobs`, body: `{"queue":"q","kind":"k","payload":{},"idempotency_key":"k\\u0000"}` },
        { path: "/v1/projects", body: `{"name":"a\\u0000b"}` }
      ]
      for (const { body, path } of cases) {
        const response = yield* raw("POST", path, { token: adminToken, body })
        assert.strictEqual(response.status, 400, `${path} ${body}: ${response.text}`)
        assert.deepInclude(response.body, { code: "ValidationError" })
      }
      const listed = yield* raw("GET", `/v1/projects/${projectId}/jobs`, { token: adminToken })
      assert.deepInclude(listed.body, { items: [] })
    }))
})

layer(TestApp(), { excludeTestServices: true })("deeply nested JSON is a 400", (it) => {
  it.effect("a payload nested 33 levels deep is refused, 32 levels accepted", () =>
    Effect.gen(function*() {
      const project = yield* raw("POST", "/v1/projects", { token: adminToken, body: JSON.stringify({ name: "deep" }) })
      const projectId = typeof project.body === "object" && project.body !== null && "id" in project.body
        ? String(project.body.id)
        : ""
      yield* raw("POST", `/v1/projects/${projectId}/queues`, { token: adminToken, body: JSON.stringify({ name: "q" }) })
      const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth)
      const deep = yield* raw("POST", `/v1/projects/${projectId}/jobs`, {
        token: adminToken,
        body: `{"queue":"q","kind":"k","payload":${nested(33)}}`
      })
      assert.strictEqual(deep.status, 400)
      assert.deepInclude(deep.body, { code: "ValidationError" })
      const ok = yield* raw("POST", `/v1/projects/${projectId}/jobs`, {
        token: adminToken,
        body: `{"queue":"q","kind":"k","payload":${nested(32)}}`
      })
      assert.strictEqual(ok.status, 201)
      const huge = yield* raw("POST", `/v1/projects/${projectId}/jobs`, {
        token: adminToken,
        body: `{"queue":"q","kind":"k","payload":${nested(100_000)}}`
      })
      assert.strictEqual(huge.status, 400)
    }))
})
