import { assert, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { Job, JobList } from "../../src/Jobs/Api.ts"
import { createQueue, setupProject } from "../support/fixtures.ts"
import { clientFor, raw, type RawResponse, TestApp } from "../support/TestApp.ts"

// The jobs endpoints serialize their bodies with JSON.stringify instead of the schema
// encoder (src/Http/Serialized.ts). Each body must be exactly what the encoder writes:
// decoding and re-encoding it through the endpoint's schema changes nothing, so there
// is no extra key, no missing one, and every date is in the schema's format.
const roundTrips = <S extends Schema.Codec<unknown, unknown>>(schema: S, response: RawResponse, expectedStatus: number) => {
  assert.strictEqual(response.status, expectedStatus, response.text)
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/)
  const codec = Schema.toCodecJson(schema)
  const reencoded = Schema.encodeUnknownSync(codec)(Schema.decodeUnknownSync(codec)(response.body))
  assert.deepStrictEqual(response.body, reencoded)
  return response.body
}

const JobBatch = Schema.Struct({ jobs: Schema.Array(Job) })
const JobWithId = Schema.Struct({ id: Schema.String })
const idOf = (body: unknown) => Schema.decodeUnknownSync(JobWithId)(body).id

layer(TestApp(), { timeout: 120_000, excludeTestServices: true })("serialized job bodies", (it) => {
  it.effect("every jobs endpoint writes what the Job schema's encoder would, with every field populated", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("serialized")
      yield* createQueue(projectId, "work")
      const base = `/v1/projects/${projectId}/jobs`
      const post = (path: string, token: string, body: unknown) => raw("POST", path, { token, body: JSON.stringify(body) })

      // Every optional request field at once, with a payload that JSON escapes.
      const full = {
        queue: "work",
        kind: "report.build",
        payload: { text: "quote \" backslash \\ newline \n emoji 🚀", nested: [1, 2.5, null, true, { deep: "x" }] },
        priority: "high",
        run_at: new Date(Date.now() + 3_600_000).toISOString(),
        max_attempts: 7,
        retry_policy: { initial_delay_ms: 250, factor: 1.5, jitter: 0.25 },
        timeout_ms: 45_000,
        assign: { label: "gpu" },
        idempotency_key: "serialized-full",
        review: { required: true, deadline_ms: 60_000, on_deadline: "reject" }
      }
      const enqueued = roundTrips(Job, yield* post(base, tokens.producer, full), 201)
      roundTrips(Job, yield* post(base, tokens.producer, full), 201) // the idempotent replay
      const fullId = idOf(enqueued)
      roundTrips(Job, yield* raw("GET", `${base}/${fullId}`, { token: tokens.viewer }), 200)
      roundTrips(Job, yield* post(`${base}/${fullId}/cancel`, tokens.admin, {}), 200)
      roundTrips(Job, yield* post(`${base}/${fullId}/retry`, tokens.admin, {}), 200)

      const batch = roundTrips(
        JobBatch,
        yield* post(`${base}/batch`, tokens.producer, {
          jobs: [{ queue: "work", kind: "ext.task", payload: null }, { ...full, idempotency_key: "serialized-batch" }]
        }),
        201
      )
      assert.lengthOf(Schema.decodeUnknownSync(Schema.toCodecJson(JobBatch))(batch).jobs, 2)

      // A job that ran: lease, worker, progress, result and finish times set.
      const worker = yield* clientFor(tokens.worker)
      const registered = yield* worker.workers.register({ params: { projectId }, payload: { name: "serializer", kinds: ["ext.task"] } })
      const [claimed] = (yield* worker.workers.claim({
        params: { projectId, workerId: registered.id },
        payload: { limit: 1, wait_ms: 3000 }
      })).jobs
      if (claimed === undefined) return assert.fail("expected a claimed job")
      roundTrips(Job, yield* raw("GET", `${base}/${claimed.id}`, { token: tokens.viewer }), 200)
      const heartbeat = yield* post(`${base}/${claimed.id}/heartbeat`, tokens.worker, {
        lease_token: claimed.lease_token,
        progress: { done: 3, of: 4 }
      })
      assert.strictEqual(heartbeat.status, 200, heartbeat.text)
      const completed = yield* post(`${base}/${claimed.id}/complete`, tokens.worker, {
        lease_token: claimed.lease_token,
        result: { rows: 12, url: "https://example.com/r?a=1&b=2" }
      })
      assert.strictEqual(completed.status, 200, completed.text)
      const finished = roundTrips(Job, yield* raw("GET", `${base}/${claimed.id}`, { token: tokens.viewer }), 200)
      const decoded = Schema.decodeUnknownSync(Schema.toCodecJson(Job))(finished)
      assert.strictEqual(decoded.state, "succeeded")
      assert.isNotNull(decoded.result)
      assert.isNotNull(decoded.progress)
      assert.isNotNull(decoded.finished_at)

      const page = roundTrips(JobList, yield* raw("GET", `${base}?limit=2`, { token: tokens.viewer }), 200)
      assert.isNotNull(Schema.decodeUnknownSync(Schema.toCodecJson(JobList))(page).next_cursor)
    }))
})
