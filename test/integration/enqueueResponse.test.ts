import { assert, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { Job } from "../../src/Jobs/Api.ts"
import { createQueue, setupProject } from "../support/fixtures.ts"
import { clientFor, raw, TestApp } from "../support/TestApp.ts"

// The insert returns only what the database decides; the rest of each job in an enqueue
// response is built from the request (src/Jobs/JobsRepo.ts). Every response job must be
// the job as stored: what a GET returns right after, field for field.
const Jobs = Schema.Struct({ jobs: Schema.Array(Schema.toCodecJson(Job)) })
const decodeJobs = Schema.decodeUnknownSync(Jobs)
const decodeJob = Schema.decodeUnknownSync(Schema.toCodecJson(Job))

// An `api` instance runs no engine: nothing changes the jobs between the enqueue and the GET.
layer(TestApp({ role: "api" }), { timeout: 120_000 })("enqueue responses", (it) => {
  it.effect("every job of a batch and of a single enqueue is the stored job, whatever the request set", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("enqueue responses")
      yield* createQueue(projectId, "work")
      const worker = yield* clientFor(tokens.worker)
      const registered = yield* worker.workers.register({ params: { projectId }, payload: { name: "w", kinds: ["a.b"] } })
      const base = `/v1/projects/${projectId}/jobs`
      const items = [
        { queue: "work", kind: "a.b", payload: { z: 1, a: [1.5, "x", null], nested: { y: true, b: "é" } } },
        { queue: "work", kind: "a.b", payload: null, priority: "critical", delay_ms: 60_000 },
        { queue: "work", kind: "a.b", payload: "text", run_at: new Date(Date.now() + 3_600_000).toISOString() },
        { queue: "work", kind: "a.b", payload: 7, max_attempts: 3, retry_policy: { factor: 3 }, timeout_ms: 5_000 },
        { queue: "work", kind: "a.b", payload: [], assign: { worker_id: registered.id } },
        { queue: "work", kind: "a.b", payload: {}, assign: { label: "gpu" }, idempotency_key: "k-1" },
        { queue: "work", kind: "a.b", payload: {}, review: { required: true, deadline_ms: 60_000 } },
        { queue: "work", kind: "a.b", payload: {}, review: { on_deadline: "reject" }, priority: "low" }
      ]
      const batch = yield* raw("POST", `${base}/batch`, { token: tokens.producer, body: JSON.stringify({ jobs: items }) })
      assert.strictEqual(batch.status, 201, batch.text)
      const single = yield* raw("POST", base, { token: tokens.producer, body: JSON.stringify(items[4]) })
      assert.strictEqual(single.status, 201, single.text)
      const enqueued = [...decodeJobs(batch.body).jobs, decodeJob(single.body)]
      assert.lengthOf(enqueued, items.length + 1)

      for (const job of enqueued) {
        const stored = yield* raw("GET", `/v1/projects/${projectId}/jobs/${job.id}`, { token: tokens.viewer })
        assert.strictEqual(stored.status, 200, stored.text)
        assert.deepStrictEqual(job, decodeJob(stored.body))
      }
      const [first, delayed, , retried, assigned, , reviewed] = enqueued
      assert.strictEqual(first?.project_id, projectId)
      assert.strictEqual(delayed?.state, "scheduled")
      assert.deepStrictEqual(retried?.retry_policy?.factor, 3)
      assert.deepStrictEqual(assigned?.assign, { worker_id: registered.id })
      assert.isTrue(reviewed?.review.required)

      // The batch's trace context is sent once for all its rows, the single enqueue's with its row.
      const sql = yield* SqlClient.SqlClient
      const stored = yield* sql<{ readonly id: string; readonly traceparent: string | null }>`
        SELECT id, traceparent FROM jobs WHERE id IN ${sql.in(enqueued.map((job) => job.id))}`
      const batchTrace = new Set(stored.filter((row) => row.id !== enqueued.at(-1)?.id).map((row) => row.traceparent))
      const singleTrace = stored.find((row) => row.id === enqueued.at(-1)?.id)?.traceparent
      assert.strictEqual(batchTrace.size, 1)
      const [shared] = [...batchTrace]
      assert.match(shared ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
      assert.match(singleTrace ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
      assert.notStrictEqual(singleTrace, shared)
    }))
})
