import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { queueName, setupProject } from "../support/fixtures.ts"
import { adminToken, clientFor, raw, TestApp } from "../support/TestApp.ts"

layer(TestApp({ role: "worker" }), { excludeTestServices: true })("FOREMAN_ROLE=worker", (it) => {
  it.effect("serves the probes and nothing of the public API", () =>
    Effect.gen(function*() {
      assert.strictEqual((yield* raw("GET", "/healthz")).status, 200)
      assert.strictEqual((yield* raw("GET", "/readyz")).status, 200)
      for (const path of ["/v1/projects", "/openapi.json", "/docs"]) {
        const response = yield* raw("GET", path, { token: adminToken })
        assert.strictEqual(response.status, 404, path)
        assert.deepInclude(response.body, { code: "NotFound" })
      }
    }))
})

layer(
  TestApp({ role: "api", handlerModules: ["./test/support/does-not-exist.ts"], pollIntervalMs: 50 }),
  { excludeTestServices: true }
)("FOREMAN_ROLE=api", (it) => {
  it.effect("starts without loading handler modules and runs no jobs", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("api role")
      const admin = yield* clientFor(project.tokens.admin)
      yield* admin.queues.create({ params: { projectId: project.projectId }, payload: { name: queueName("q") } })
      // `http` is a built-in kind every engine could run: an API-only instance must leave it alone.
      const job = yield* admin.jobs.enqueue({
        params: { projectId: project.projectId },
        payload: { queue: queueName("q"), kind: "http", payload: { url: "http://example.invalid/" } }
      })
      yield* Effect.sleep("500 millis")
      const after = yield* admin.jobs.get({ params: { projectId: project.projectId, jobId: job.id } })
      assert.strictEqual(after.state, "available")
      assert.strictEqual(after.attempt, 0)
    }))
})
