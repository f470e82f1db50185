import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { FetchHttpClient } from "effect/http"
import { OtlpSerialization, OtlpTracer } from "effect/observability"
import { SqlClient } from "effect/sql"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { parseTraceparent } from "../../src/Observability/Tracing.ts"
import { field, jobEvents, waitForState } from "../support/engine.ts"
import { queueName, setupProject } from "../support/fixtures.ts"
import { clientFor, raw, TestApp } from "../support/TestApp.ts"
import { waitFor } from "../support/waitFor.ts"

interface OtlpLink {
  readonly traceId: string
  readonly spanId: string
  readonly attributes: ReadonlyArray<OtlpAttribute>
}
interface OtlpAttribute {
  readonly key: string
  readonly value: Readonly<Record<string, unknown>>
}
interface OtlpSpan {
  readonly name: string
  readonly kind: number
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string | undefined
  readonly attributes: ReadonlyArray<OtlpAttribute>
  readonly links: ReadonlyArray<OtlpLink>
  readonly status: { readonly code: number; readonly message?: string }
  readonly startTimeUnixNano: string
  readonly endTimeUnixNano: string
}

/** Every span received by the in-memory OTLP/HTTP collector below. */
const received: Array<OtlpSpan> = []

/**
 * An in-memory OTLP/HTTP collector on an ephemeral port, and the service's exporter
 * (the one `OTEL_EXPORTER_OTLP_ENDPOINT` installs) pointed at it.
 */
const InMemoryCollector = Layer.unwrap(Effect.gen(function*() {
  const server = yield* Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<ReturnType<typeof createServer>>((resolve) => {
        const server = createServer((request, response) => {
          const chunks: Array<Buffer> = []
          request.on("data", (chunk: Buffer) => chunks.push(chunk))
          request.on("end", () => {
            const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
              resourceSpans: ReadonlyArray<{ scopeSpans: ReadonlyArray<{ spans: ReadonlyArray<OtlpSpan> }> }>
            }
            for (const resource of body.resourceSpans) {
              for (const scope of resource.scopeSpans) received.push(...scope.spans)
            }
            response.writeHead(200, { "content-type": "application/json" })
            response.end("{}")
          })
        })
        server.listen(0, "127.0.0.1", () => resolve(server))
      })
    ),
    (server) => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
  )
  const { port } = server.address() as AddressInfo
  return OtlpTracer.layer({
    url: `http://127.0.0.1:${port}/v1/traces`,
    resource: { serviceName: "foreman" },
    exportInterval: "50 millis"
  }).pipe(Layer.provide(OtlpSerialization.layerJson), Layer.provide(FetchHttpClient.layer))
}))

const attribute = (span: OtlpSpan, key: string): unknown => {
  const value = span.attributes.find((a) => a.key === key)?.value
  return value === undefined ? undefined : Object.values(value)[0]
}

const payloadMarker = "payload-marker-7f3a"

const linksOf = (span: OtlpSpan) =>
  span.links.map((link) => ({
    traceId: link.traceId,
    spanId: link.spanId,
    kind: link.attributes.find((a) => a.key === "foreman.link")?.value.stringValue
  }))

/** The exported `Job.attempt` spans of a job, by attempt number. */
const attemptSpans = (jobId: string, count: number) =>
  waitFor(
    Effect.sync(() =>
      received
        .filter((span) => span.name === "Job.attempt" && attribute(span, "foreman.job.id") === jobId)
        .sort((a, b) => Number(attribute(a, "foreman.job.attempt")) - Number(attribute(b, "foreman.job.attempt")))
    ),
    (spans) => spans.length >= count,
    { timeoutMs: 10_000, label: `${count} exported Job.attempt spans` }
  )

const contextOf = (span: OtlpSpan) => `00-${span.traceId}-${span.spanId}-01`
const startMs = (span: OtlpSpan) => Number(BigInt(span.startTimeUnixNano) / 1_000_000n)

const StatusError = 2
const StatusOk = 1
const SpanKindServer = 2

layer(
  TestApp({ handlerModules: ["./test/support/handlers.ts"], pollIntervalMs: 100, maintenanceIntervalMs: 100 }, InMemoryCollector),
  { timeout: 60_000, excludeTestServices: true }
)("traces", (it) => {
  it.effect("fails once then succeeds: enqueue span by route template -> attempt 1 (failed) -> attempt 2 (succeeded, linked to both)", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("traces")
      const admin = yield* clientFor(project.tokens.admin)
      const queue = yield* admin.queues.create({
        params: { projectId: project.projectId },
        payload: { name: queueName("work"), retry_policy: { initial_delay_ms: 50, jitter: 0, max_attempts: 5 } }
      })
      const producer = yield* clientFor(project.tokens.producer)
      const job = yield* producer.jobs.enqueue({
        params: { projectId: project.projectId },
        payload: { queue: queue.name, kind: "flaky", payload: { succeed_on: 2, marker: payloadMarker } }
      })
      const done = yield* waitForState(project.tokens.viewer, project.projectId, job.id, "succeeded")
      assert.strictEqual(done.attempt, 2)

      // The enqueue request's trace context, stored with the job.
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ readonly traceparent: string | null; readonly last_attempt_traceparent: string | null }>`
        SELECT traceparent, last_attempt_traceparent FROM jobs WHERE id = ${job.id}`
      const traceparent = rows[0]?.traceparent ?? null
      assert.isNotNull(traceparent)
      assert.match(traceparent ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
      const enqueue = parseTraceparent(traceparent)
      if (enqueue === undefined) return assert.fail("stored traceparent does not parse")

      const attempts = yield* waitFor(
        Effect.sync(() =>
          received
            .filter((span) => span.name === "Job.attempt" && attribute(span, "foreman.job.id") === job.id)
            .sort((a, b) => Number(attribute(a, "foreman.job.attempt")) - Number(attribute(b, "foreman.job.attempt")))
        ),
        (spans) => spans.length >= 2,
        { timeoutMs: 10_000, label: "two exported Job.attempt spans" }
      )
      assert.strictEqual(attempts.length, 2)
      const [first, second] = attempts
      if (first === undefined || second === undefined) return assert.fail("expected two attempts")

      // The stored context is a span the service exported: the one the enqueue ran in.
      const enqueueSpan = received.find((span) => span.spanId === enqueue.spanId)
      assert.isDefined(enqueueSpan, "the enqueue span was exported")
      assert.strictEqual(enqueueSpan?.traceId, enqueue.traceId)
      // ... the enqueue request's HTTP server span, named by its route template, not its URL.
      assert.strictEqual(enqueueSpan?.kind, SpanKindServer)
      assert.strictEqual(enqueueSpan?.name, "POST /v1/projects/{projectId}/jobs")
      assert.strictEqual(enqueueSpan && attribute(enqueueSpan, "http.route"), "/v1/projects/:projectId/jobs")

      // Attempt 1 links to the enqueue; attempt 2 to the enqueue and to attempt 1.
      assert.deepStrictEqual(linksOf(first), [{ traceId: enqueue.traceId, spanId: enqueue.spanId, kind: "enqueue" }])
      assert.deepStrictEqual(linksOf(second), [
        { traceId: enqueue.traceId, spanId: enqueue.spanId, kind: "enqueue" },
        { traceId: first.traceId, spanId: first.spanId, kind: "previous_attempt" }
      ])
      for (const span of [first, second]) {
        assert.strictEqual(attribute(span, "foreman.job.id"), job.id)
        assert.strictEqual(attribute(span, "foreman.job.queue"), queue.name)
        assert.strictEqual(attribute(span, "foreman.job.kind"), "flaky")
      }
      // The last attempt's context is stored with the job, and each attempt's is on its outcome event.
      assert.strictEqual(rows[0]?.last_attempt_traceparent, `00-${second.traceId}-${second.spanId}-01`)
      const events = yield* jobEvents(project.tokens.viewer, project.projectId, job.id)
      const failedEvent = events.find((event) => event.type === "failed")
      const succeededEvent = events.find((event) => event.type === "succeeded")
      assert.strictEqual(field(failedEvent?.data, "traceparent"), `00-${first.traceId}-${first.spanId}-01`)
      assert.isString(field(failedEvent?.data, "retry_at"))
      assert.strictEqual(field(succeededEvent?.data, "traceparent"), `00-${second.traceId}-${second.spanId}-01`)

      // SQL statement spans carry the statement text, never parameter values.
      const statements = received.filter((span) => typeof attribute(span, "db.query.text") === "string")
      assert.isTrue(
        statements.some((span) => String(attribute(span, "db.query.text")).includes("INSERT INTO jobs")),
        "the enqueue's INSERT is a span with its text"
      )
      for (const span of received) {
        for (const a of span.attributes) assert.notInclude(JSON.stringify(a.value), payloadMarker, `${span.name}: ${a.key}`)
      }
      assert.strictEqual(Number(attribute(first, "foreman.job.attempt")), 1)
      assert.strictEqual(first.status.code, StatusError)
      assert.strictEqual(attribute(first, "foreman.job.outcome"), "failed")
      assert.strictEqual(Number(attribute(second, "foreman.job.attempt")), 2)
      assert.strictEqual(second.status.code, StatusOk)
      assert.strictEqual(attribute(second, "foreman.job.outcome"), "succeeded")
    }))

  it.effect("external workers: traceparent on fail and complete is stored, returned on the next claim and in events; malformed is 400", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("traces-ext")
      const admin = yield* clientFor(project.tokens.admin)
      const queue = yield* admin.queues.create({
        params: { projectId: project.projectId },
        payload: { name: queueName("ext"), retry_policy: { initial_delay_ms: 0, max_delay_ms: 0, jitter: 0, max_attempts: 5 } }
      })
      const producer = yield* clientFor(project.tokens.producer)
      const job = yield* producer.jobs.enqueue({
        params: { projectId: project.projectId },
        payload: { queue: queue.name, kind: "external-traced", payload: {} }
      })
      const worker = yield* clientFor(project.tokens.worker)
      const registered = yield* worker.workers.register({
        params: { projectId: project.projectId },
        payload: { name: "traced worker", kinds: ["external-traced"] }
      })
      const claim = Effect.map(
        worker.workers.claim({ params: { projectId: project.projectId, workerId: registered.id }, payload: { wait_ms: 5_000 } }),
        (response) => response.jobs
      )
      const [first] = yield* claim
      if (first === undefined) return assert.fail("nothing claimed")
      assert.match(first.traceparent ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
      assert.isNull(first.last_attempt_traceparent)

      const workerAttempt1 = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
      const path = `/v1/projects/${project.projectId}/jobs/${job.id}`
      for (const bad of ["nope", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331", "00-00000000000000000000000000000000-b7ad6b7169203331-01", 42]) {
        const response = yield* raw("POST", `${path}/fail`, {
          token: project.tokens.worker,
          body: JSON.stringify({ lease_token: first.lease_token, error: { message: "boom" }, traceparent: bad })
        })
        assert.strictEqual(response.status, 400, `traceparent ${JSON.stringify(bad)}`)
      }
      yield* worker.workers.fail({
        params: { projectId: project.projectId, jobId: job.id },
        payload: { lease_token: first.lease_token, error: { message: "boom" }, traceparent: workerAttempt1 }
      })

      const [second] = yield* claim
      if (second === undefined) return assert.fail("the retry was not claimed")
      assert.strictEqual(second.attempt, 2)
      assert.strictEqual(second.traceparent, first.traceparent)
      assert.strictEqual(second.last_attempt_traceparent, workerAttempt1)

      const workerAttempt2 = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
      yield* worker.workers.complete({
        params: { projectId: project.projectId, jobId: job.id },
        payload: { lease_token: second.lease_token, traceparent: workerAttempt2 }
      })
      const events = yield* jobEvents(project.tokens.viewer, project.projectId, job.id)
      assert.strictEqual(field(events.find((event) => event.type === "failed")?.data, "traceparent"), workerAttempt1)
      assert.strictEqual(field(events.find((event) => event.type === "succeeded")?.data, "traceparent"), workerAttempt2)
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ readonly last_attempt_traceparent: string | null }>`
        SELECT last_attempt_traceparent FROM jobs WHERE id = ${job.id}`
      assert.strictEqual(rows[0]?.last_attempt_traceparent, workerAttempt2)

      // The server records a Job.attempt span per external attempt too, from claim to outcome,
      // linked to the enqueue, the previous attempt (the worker's span, as reported) and the worker's own span.
      const [span1, span2] = yield* attemptSpans(job.id, 2)
      if (span1 === undefined || span2 === undefined) return assert.fail("two attempt spans")
      const enqueue = parseTraceparent(first.traceparent)
      if (enqueue === undefined) return assert.fail("enqueue context")
      const link = (traceparent: string, kind: string) => {
        const parsed = parseTraceparent(traceparent)
        return { traceId: parsed?.traceId ?? "", spanId: parsed?.spanId ?? "", kind }
      }
      const enqueueLink = { traceId: enqueue.traceId, spanId: enqueue.spanId, kind: "enqueue" }
      assert.deepStrictEqual(linksOf(span1), [enqueueLink, link(workerAttempt1, "worker_attempt")])
      assert.deepStrictEqual(linksOf(span2), [
        enqueueLink,
        link(workerAttempt1, "previous_attempt"),
        link(workerAttempt2, "worker_attempt")
      ])
      for (const [span, attempt, outcome, status] of [[span1, 1, "failed", StatusError], [span2, 2, "succeeded", StatusOk]] as const) {
        assert.strictEqual(attribute(span, "foreman.job.queue"), queue.name)
        assert.strictEqual(attribute(span, "foreman.job.kind"), "external-traced")
        assert.strictEqual(Number(attribute(span, "foreman.job.attempt")), attempt)
        assert.strictEqual(attribute(span, "foreman.job.outcome"), outcome)
        assert.strictEqual(span.status.code, status)
        assert.isUndefined(span.parentSpanId || undefined, "a trace of its own")
        assert.isTrue(BigInt(span.startTimeUnixNano) <= BigInt(span.endTimeUnixNano), "starts before it ends")
      }
      assert.strictEqual(span1.status.message, "boom")
      // It starts when the job did (started_at), not when the outcome was reported.
      const done = yield* worker.jobs.get({ params: { projectId: project.projectId, jobId: job.id } })
      assert.strictEqual(startMs(span2), done.started_at?.getTime())
    }))

  it.effect("external attempts without a worker span, and attempts lost to lease expiry, are linked through the server's attempt spans", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("traces-ext-server")
      const admin = yield* clientFor(project.tokens.admin)
      const queue = yield* admin.queues.create({
        params: { projectId: project.projectId },
        payload: { name: queueName("ext-server"), retry_policy: { initial_delay_ms: 0, max_delay_ms: 0, jitter: 0, max_attempts: 5 } }
      })
      const producer = yield* clientFor(project.tokens.producer)
      const job = yield* producer.jobs.enqueue({
        params: { projectId: project.projectId },
        payload: { queue: queue.name, kind: "external-plain", payload: {} }
      })
      const worker = yield* clientFor(project.tokens.worker)
      const registered = yield* worker.workers.register({
        params: { projectId: project.projectId },
        payload: { name: "plain worker", kinds: ["external-plain"] }
      })
      const claim = (leaseMs: number) =>
        Effect.flatMap(
          worker.workers.claim({
            params: { projectId: project.projectId, workerId: registered.id },
            payload: { wait_ms: 10_000, lease_ms: leaseMs }
          }),
          (response) => response.jobs[0] === undefined ? Effect.die(new Error("nothing claimed")) : Effect.succeed(response.jobs[0])
        )
      // Attempt 1 is abandoned: its lease expires and the reaper records it.
      yield* claim(1000)
      const second = yield* claim(30_000)
      assert.strictEqual(second.attempt, 2)
      const [lost] = yield* attemptSpans(job.id, 1)
      if (lost === undefined) return assert.fail("the lost attempt's span")
      assert.strictEqual(attribute(lost, "foreman.job.outcome"), "lease_expired")
      assert.strictEqual(lost.status.code, StatusError)
      assert.strictEqual(second.last_attempt_traceparent, contextOf(lost), "the next attempt links to the reaped one")

      // Attempt 2 fails and attempt 3 completes without a worker span: the server's spans carry the chain.
      yield* worker.workers.fail({
        params: { projectId: project.projectId, jobId: job.id },
        payload: { lease_token: second.lease_token, error: { message: "plain failure" } }
      })
      const third = yield* claim(30_000)
      yield* worker.workers.complete({ params: { projectId: project.projectId, jobId: job.id }, payload: { lease_token: third.lease_token } })
      const [, failed, succeeded] = yield* attemptSpans(job.id, 3)
      if (failed === undefined || succeeded === undefined) return assert.fail("three attempt spans")
      assert.strictEqual(third.last_attempt_traceparent, contextOf(failed))
      assert.deepStrictEqual(linksOf(failed).map((l) => [l.kind, l.spanId]), [["enqueue", parseTraceparent(second.traceparent)?.spanId], ["previous_attempt", lost.spanId]])
      assert.deepStrictEqual(linksOf(succeeded).map((l) => [l.kind, l.spanId]), [["enqueue", parseTraceparent(second.traceparent)?.spanId], ["previous_attempt", failed.spanId]])
      assert.deepStrictEqual(
        [lost, failed, succeeded].map((span) => [Number(attribute(span, "foreman.job.attempt")), attribute(span, "foreman.job.outcome")]),
        [[1, "lease_expired"], [2, "failed"], [3, "succeeded"]]
      )
      const events = yield* jobEvents(project.tokens.viewer, project.projectId, job.id)
      assert.strictEqual(field(events.find((e) => e.type === "succeeded")?.data, "traceparent"), contextOf(succeeded))
    }))
})
