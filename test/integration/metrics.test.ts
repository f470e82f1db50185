import { assert, layer } from "@effect/vitest"
import { Effect, Fiber, Layer, Option } from "effect"
import { SqlClient } from "effect/sql"
import type { EnqueueJob } from "../../src/Jobs/Api.ts"
import { waitForState } from "../support/engine.ts"
import { queueName, setupProject } from "../support/fixtures.ts"
import { freePort } from "../support/freePort.ts"
import { clientFor, raw, TestApp } from "../support/TestApp.ts"

interface Sample {
  readonly name: string
  readonly labels: Record<string, string>
  readonly value: number
}

/** Parses the Prometheus text exposition format (enough of it for these assertions). */
const parse = (text: string): ReadonlyArray<Sample> =>
  text.split("\n").flatMap((line) => {
    if (line === "" || line.startsWith("#")) return []
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line)
    if (match === null) return []
    const labels: Record<string, string> = {}
    for (const [, key, value] of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key as string] = value as string
    }
    return [{ name: match[1] as string, labels, value: Number(match[3]) }]
  })

const sumOf = (samples: ReadonlyArray<Sample>, name: string, labels: Record<string, string>): number =>
  samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0)

const scrape = Effect.gen(function*() {
  const response = yield* raw("GET", "/metrics")
  assert.strictEqual(response.status, 200)
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain/)
  return { text: response.text, samples: parse(response.text) }
})

layer(
  TestApp({
    handlerModules: ["./test/support/handlers.ts"],
    pollIntervalMs: 100,
    maintenanceIntervalMs: 100
  }),
  { timeout: 60_000, excludeTestServices: true }
)("metrics (public listener)", (it) => {
  it.effect("GET /metrics: HTTP and job metrics with queue, kind, route template and status; counters move", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("metrics")
      const admin = yield* clientFor(project.tokens.admin)
      const queue = yield* admin.queues.create({
        params: { projectId: project.projectId },
        payload: { name: queueName("metered"), retry_policy: { initial_delay_ms: 0, max_delay_ms: 0, jitter: 0 } }
      })
      const producer = yield* clientFor(project.tokens.producer)
      const enqueue = (kind: string, payload: EnqueueJob["payload"] = {}, extra: Partial<EnqueueJob> = {}) =>
        producer.jobs.enqueue({ params: { projectId: project.projectId }, payload: { queue: queue.name, kind, payload, ...extra } })

      const before = (yield* scrape).samples
      const q = { queue: "metered" }

      const noops = yield* Effect.all([enqueue("noop"), enqueue("noop")])
      const fatal = yield* enqueue("fatal")
      const flaky = yield* enqueue("flaky", { succeed_on: 2 }, { max_attempts: 3 })
      const later = new Date(Date.now() + 3_600_000)
      const scheduled = yield* enqueue("noop", {}, { run_at: later })
      const toCancel = yield* enqueue("noop", {}, { run_at: later })
      yield* producer.jobs.cancel({ params: { projectId: project.projectId, jobId: toCancel.id } })
      for (const job of noops) yield* waitForState(project.tokens.admin, project.projectId, job.id, "succeeded")
      yield* waitForState(project.tokens.admin, project.projectId, fatal.id, "dead")
      yield* waitForState(project.tokens.admin, project.projectId, flaky.id, "succeeded")
      // A 404 on a raw path must not put the raw URL in a label.
      yield* raw("GET", `/v1/projects/${project.projectId}/jobs/${missingJobId}`, { token: project.tokens.admin })

      const { text, samples } = yield* scrape
      const delta = (name: string, labels: Record<string, string>) =>
        sumOf(samples, name, labels) - sumOf(before, name, labels)

      assert.strictEqual(delta("foreman_jobs_enqueued_total", { ...q, kind: "noop" }), 4)
      assert.strictEqual(delta("foreman_jobs_enqueued_total", { ...q, kind: "fatal" }), 1)
      assert.strictEqual(delta("foreman_jobs_started_total", { ...q, kind: "noop" }), 2)
      assert.strictEqual(delta("foreman_jobs_started_total", { ...q, kind: "flaky" }), 2)
      assert.strictEqual(delta("foreman_jobs_succeeded_total", { ...q, kind: "noop" }), 2)
      assert.strictEqual(delta("foreman_jobs_succeeded_total", { ...q, kind: "flaky" }), 1)
      assert.strictEqual(delta("foreman_jobs_retried_total", { ...q, kind: "flaky" }), 1)
      assert.strictEqual(delta("foreman_jobs_dead_total", { ...q, kind: "fatal" }), 1)
      assert.strictEqual(delta("foreman_jobs_cancelled_total", { ...q, kind: "noop" }), 1)

      // Histograms: first-attempt wait and in-process attempt durations.
      assert.strictEqual(delta("foreman_job_enqueue_to_start_seconds_count", { ...q, kind: "noop" }), 2)
      assert.strictEqual(delta("foreman_job_execution_seconds_count", { ...q, kind: "flaky" }), 2)
      assert.isAbove(sumOf(samples, "foreman_job_execution_seconds_bucket", { ...q, kind: "noop", le: "+Inf" }), 0)

      // HTTP: by route template, method and status, never the raw URL.
      assert.isAtLeast(
        delta("foreman_http_request_duration_seconds_count", {
          route: "/v1/projects/:projectId/jobs",
          method: "POST",
          status: "201"
        }),
        6
      )
      assert.isAtLeast(
        delta("foreman_http_request_duration_seconds_count", {
          route: "/v1/projects/:projectId/jobs/:jobId",
          method: "GET",
          status: "404"
        }),
        1
      )
      const routes = samples.filter((s) => s.name === "foreman_http_request_duration_seconds_count").map((s) => s.labels.route)
      assert.isTrue(routes.length > 0)
      for (const route of routes) assert.notInclude(route ?? "", project.projectId)

      // Queue depth from SQL: the scheduled job; the finished ones are not runnable.
      assert.strictEqual(sumOf(samples, "foreman_queue_depth", { ...q, state: "scheduled" }), 1)
      assert.strictEqual(sumOf(samples, "foreman_queue_depth", { ...q, state: "available" }), 0)
      assert.strictEqual(scheduled.state, "scheduled")

      // Database pool, counted in pg_stat_activity by this instance's application_name.
      const idle = sumOf(samples, "foreman_db_pool_connections", { state: "idle" })
      assert.isAbove(idle, 0, "the instance holds connections (at least the LISTEN one)")
      // FOREMAN_DB_POOL_SIZE (4 in tests) and FOREMAN_CLAIM_POOL_SIZE (4 by default).
      assert.strictEqual(sumOf(samples, "foreman_db_pool_max_connections", {}), 8)
      assert.isTrue(samples.some((s) => s.name === "foreman_db_pool_lock_waits"))
      // A statement running on one of the pool's connections while scraping is a connection in use.
      const sql = yield* SqlClient.SqlClient
      const sleeper = yield* Effect.forkChild(sql`SELECT pg_sleep(1.5)`)
      yield* Effect.sleep("300 millis")
      const busy = (yield* scrape).samples
      yield* Fiber.join(sleeper)
      assert.isAtLeast(sumOf(busy, "foreman_db_pool_connections", { state: "in_use" }), 1)
      // Both pools: the main one and the claim pool.
      assert.isAtMost(
        sumOf(busy, "foreman_db_pool_connections", { state: "in_use" }) + sumOf(busy, "foreman_db_pool_connections", { state: "idle" }),
        8
      )

      // Process gauges.
      assert.isAbove(sumOf(samples, "foreman_process_memory_bytes", { type: "rss" }), 0)
      assert.isTrue(samples.some((s) => s.name === "foreman_event_loop_lag_seconds" && s.labels.quantile === "0.99"))
      assert.include(text, "# TYPE foreman_http_request_duration_seconds histogram")
      assert.include(text, "# TYPE foreman_jobs_enqueued_total counter")
      assert.include(text, "# TYPE foreman_job_leases_expired_total counter")
    }))
})

const missingJobId = "01a20623-99f0-7045-96c5-2e9f574d7135"

let opsPort = 0
const OpsApp = Layer.unwrap(
  Effect.map(Effect.promise(freePort), (port) => {
    opsPort = port
    return TestApp({ opsPort: Option.some(port) })
  })
)

layer(OpsApp, { timeout: 60_000, excludeTestServices: true })("metrics (FOREMAN_OPS_PORT)", (it) => {
  it.effect("metrics and probes move to the operations port and leave the public listener", () =>
    Effect.gen(function*() {
      const ops = (path: string) =>
        Effect.promise(async () => {
          const response = await fetch(`http://127.0.0.1:${opsPort}${path}`)
          return { status: response.status, text: await response.text() }
        })
      const metrics = yield* ops("/metrics")
      assert.strictEqual(metrics.status, 200)
      assert.include(metrics.text, "foreman_process_memory_bytes")
      assert.strictEqual((yield* ops("/healthz")).status, 200)
      assert.strictEqual((yield* ops("/readyz")).status, 200)
      assert.strictEqual((yield* raw("GET", "/metrics")).status, 404)
      assert.strictEqual((yield* raw("GET", "/healthz")).status, 404)
      assert.strictEqual((yield* raw("GET", "/readyz")).status, 404)
      // The public API is still there.
      assert.strictEqual((yield* raw("GET", "/openapi.json")).status, 200)
      // The ops listener serves nothing else.
      assert.strictEqual((yield* ops("/openapi.json")).status, 404)
    }))
})
