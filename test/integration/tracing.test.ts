import { assert, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { FetchHttpClient } from "effect/http"
import { OtlpSerialization, OtlpTracer } from "effect/observability"
import { SqlClient } from "effect/sql"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { parseTraceparent } from "../../src/Observability/Tracing.ts"
import { waitForState } from "../support/engine.ts"
import { queueName, setupProject } from "../support/fixtures.ts"
import { clientFor, TestApp } from "../support/TestApp.ts"
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
  readonly attributes: ReadonlyArray<OtlpAttribute>
  readonly links: ReadonlyArray<OtlpLink>
  readonly status: { readonly code: number; readonly message?: string }
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

const StatusError = 2
const StatusOk = 1
const SpanKindServer = 2

layer(
  TestApp({ handlerModules: ["./test/support/handlers.ts"], pollIntervalMs: 100, maintenanceIntervalMs: 100 }, InMemoryCollector),
  { timeout: 60_000, excludeTestServices: true }
)("traces", (it) => {
  it.effect("an enqueue that fails once then succeeds: two Job.attempt spans, both linked to the enqueue span", () =>
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
        payload: { queue: queue.name, kind: "flaky", payload: { succeed_on: 2 } }
      })
      const done = yield* waitForState(project.tokens.viewer, project.projectId, job.id, "succeeded")
      assert.strictEqual(done.attempt, 2)

      // The enqueue request's trace context, stored with the job.
      const sql = yield* SqlClient.SqlClient
      const rows = yield* sql<{ readonly traceparent: string | null }>`SELECT traceparent FROM jobs WHERE id = ${job.id}`
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
      // ... the enqueue request's HTTP server span.
      assert.strictEqual(enqueueSpan?.kind, SpanKindServer)
      assert.match(enqueueSpan?.name ?? "", /POST/)

      for (const span of [first, second]) {
        assert.deepStrictEqual(
          span.links.map((link) => ({ traceId: link.traceId, spanId: link.spanId })),
          [{ traceId: enqueue.traceId, spanId: enqueue.spanId }]
        )
        assert.strictEqual(attribute(span, "foreman.job.queue"), queue.name)
        assert.strictEqual(attribute(span, "foreman.job.kind"), "flaky")
      }
      assert.strictEqual(Number(attribute(first, "foreman.job.attempt")), 1)
      assert.strictEqual(first.status.code, StatusError)
      assert.strictEqual(attribute(first, "foreman.job.outcome"), "failed")
      assert.strictEqual(Number(attribute(second, "foreman.job.attempt")), 2)
      assert.strictEqual(second.status.code, StatusOk)
      assert.strictEqual(attribute(second, "foreman.job.outcome"), "succeeded")
    }))
})
