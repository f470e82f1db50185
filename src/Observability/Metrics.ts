import * as OtelMetrics from "@effect/opentelemetry/OtelMetrics"
import * as OtelResource from "@effect/opentelemetry/Resource"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { Context, Effect, Layer, Metric } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"
import { SqlClient } from "effect/sql"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { AppConfig } from "../Config/AppConfig.ts"
import { applicationName } from "../Sql/Database.ts"

/**
 * Foreman's metrics. They are Effect metrics (`effect/Metric`), bridged to
 * OpenTelemetry by `@effect/opentelemetry`'s `OtelMetrics` producer and read by
 * the OpenTelemetry Prometheus exporter (`@opentelemetry/exporter-prometheus`),
 * whose serializer renders the Prometheus text format for `GET /metrics`.
 * Counters get the exporter's `_total` suffix. The list, with labels, is in
 * docs/operations.md ("Metrics").
 */

const latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
const jobBuckets = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600]

export const httpRequestDuration = Metric.histogram("foreman_http_request_duration_seconds", {
  description: "HTTP request duration by route template, method and status",
  boundaries: latencyBuckets
})

const jobCounter = (outcome: string, description: string) =>
  Metric.counter(`foreman_jobs_${outcome}`, { description, incremental: true })

export const jobsEnqueued = jobCounter("enqueued", "Jobs inserted, by queue and kind")
export const jobsStarted = jobCounter("started", "Attempts started (in-process and external workers), by queue and kind")
export const jobsSucceeded = jobCounter("succeeded", "Attempts that succeeded, by queue and kind")
export const jobsRetried = jobCounter("retried", "Failed attempts that will be retried, by queue and kind")
export const jobsDead = jobCounter("dead", "Failed attempts that left the job dead, by queue and kind")
export const jobsCancelled = jobCounter("cancelled", "Jobs cancelled through the API, by queue and kind")

export const leasesExpired = Metric.counter("foreman_job_leases_expired", {
  description: "Leases reclaimed by the reaper (attempts that lost their worker or timed out)",
  incremental: true
})

export const enqueueToStart = Metric.histogram("foreman_job_enqueue_to_start_seconds", {
  description: "Time from insertion to the first attempt's start (includes any scheduled delay), by queue and kind",
  boundaries: jobBuckets
})

export const executionDuration = Metric.histogram("foreman_job_execution_seconds", {
  description: "In-process attempt duration, by queue and kind",
  boundaries: jobBuckets
})

export const queueDepth = Metric.gauge("foreman_queue_depth", {
  description: "Jobs not yet finished (available, scheduled, retrying, running, awaiting_review), by queue and state"
})

const dbConnections = Metric.gauge("foreman_db_pool_connections", {
  description: "This instance's open database connections by state (in_use, idle), from pg_stat_activity"
})
const dbMaxConnections = Metric.gauge("foreman_db_pool_max_connections", {
  description: "The most connections this instance's pools open (FOREMAN_DB_POOL_SIZE + FOREMAN_CLAIM_POOL_SIZE)"
})
const dbLockWaits = Metric.gauge("foreman_db_pool_lock_waits", {
  description: "This instance's in-use connections whose statement is waiting for a lock, from pg_stat_activity"
})

const memory = Metric.gauge("foreman_process_memory_bytes", { description: "Process memory by type (process.memoryUsage)" })
const eventLoopLag = Metric.gauge("foreman_event_loop_lag_seconds", {
  description: "Event-loop delay since the previous scrape, by quantile (perf_hooks.monitorEventLoopDelay)"
})

type JobLabels = { readonly queue: string; readonly kind: string }

/**
 * `Metric.withAttributes`, remembered per label set: building the labelled
 * metric (and its key) on every update showed up in request and per-job
 * profiles, and so did building the cache key from the attributes object, so
 * the caller names the label set with a key of its own. Label sets are as
 * bounded as the exported series themselves.
 */
const labelled = <In, Out, L>(
  metric: Metric.Metric<In, Out>,
  key: (labels: L) => string,
  attributes: (labels: L) => Readonly<Record<string, string>>
) => {
  const cache = new Map<string, Metric.Metric<In, Out>>()
  return (labels: L): Metric.Metric<In, Out> => {
    const name = key(labels)
    let found = cache.get(name)
    if (found === undefined) {
      found = Metric.withAttributes(metric, attributes(labels))
      cache.set(name, found)
    }
    return found
  }
}

const jobKey = (job: JobLabels) => `${job.queue}\u0000${job.kind}`

/** The labelled metrics of one queue and kind, built once and reused by every attempt. */
interface JobSeries {
  readonly enqueued: Metric.Metric<number, unknown>
  readonly started: Metric.Metric<number, unknown>
  readonly succeeded: Metric.Metric<number, unknown>
  readonly retried: Metric.Metric<number, unknown>
  readonly dead: Metric.Metric<number, unknown>
  readonly cancelled: Metric.Metric<number, unknown>
  readonly enqueueToStart: Metric.Metric<number, unknown>
  readonly execution: Metric.Metric<number, unknown>
}

const jobSeriesCache = new Map<string, JobSeries>()
const jobSeries = (job: JobLabels): JobSeries => {
  const key = jobKey(job)
  let found = jobSeriesCache.get(key)
  if (found === undefined) {
    const attributes = { queue: job.queue, kind: job.kind }
    found = {
      enqueued: Metric.withAttributes(jobsEnqueued, attributes),
      started: Metric.withAttributes(jobsStarted, attributes),
      succeeded: Metric.withAttributes(jobsSucceeded, attributes),
      retried: Metric.withAttributes(jobsRetried, attributes),
      dead: Metric.withAttributes(jobsDead, attributes),
      cancelled: Metric.withAttributes(jobsCancelled, attributes),
      enqueueToStart: Metric.withAttributes(enqueueToStart, attributes),
      execution: Metric.withAttributes(executionDuration, attributes)
    }
    jobSeriesCache.set(key, found)
  }
  return found
}

/**
 * Runs `update` with the fiber's context as one step: the engine records three
 * or four metrics per attempt, and `Metric.update` costs an effect (and a label
 * lookup) for each.
 */
const updating = (update: (context: Context.Context<never>) => void): Effect.Effect<void> =>
  Effect.withFiber((fiber) => {
    update(fiber.context)
    return Effect.void
  })

type RequestLabels = { readonly route: string; readonly method: string; readonly status: string }
const httpRequestDurationBy = labelled(
  httpRequestDuration,
  (labels: RequestLabels) => `${labels.route}\u0000${labels.method}\u0000${labels.status}`,
  (labels) => ({ route: labels.route, method: labels.method, status: labels.status })
)
/** One update per label set, not per job: a batch of 100 usually has one. */
export const recordEnqueued = (jobs: ReadonlyArray<JobLabels>) =>
  updating((context) => {
    const counts = new Map<string, { job: JobLabels; count: number }>()
    for (const job of jobs) {
      const key = jobKey(job)
      const found = counts.get(key)
      if (found === undefined) counts.set(key, { job, count: 1 })
      else found.count++
    }
    for (const { job, count } of counts.values()) jobSeries(job).enqueued.updateUnsafe(count, context)
  })

type StartedJob = JobLabels & { readonly attempt: number; readonly created_at: Date; readonly started_at: Date }

/** An attempt started: counts it, and on the first attempt records the wait since insertion. */
export const recordStarted = (job: StartedJob) =>
  updating((context) => {
    const series = jobSeries(job)
    series.started.updateUnsafe(1, context)
    if (job.attempt === 1) {
      series.enqueueToStart.updateUnsafe(Math.max(0, (job.started_at.getTime() - job.created_at.getTime()) / 1000), context)
    }
  })

export const recordSucceeded = (job: JobLabels) => updating((context) => jobSeries(job).succeeded.updateUnsafe(1, context))

/** A failed attempt: `delay_ms` null means the job is dead, otherwise it will be retried. */
export const recordFailed = (job: JobLabels, failure: { readonly delay_ms: number | null }) =>
  updating((context) => {
    const series = jobSeries(job)
    ;(failure.delay_ms === null ? series.dead : series.retried).updateUnsafe(1, context)
  })

export const recordCancelled = (job: JobLabels) => updating((context) => jobSeries(job).cancelled.updateUnsafe(1, context))

export const recordLeasesExpired = (n: number) => Metric.update(leasesExpired, n)

export const recordExecution = (job: JobLabels, seconds: number) =>
  updating((context) => jobSeries(job).execution.updateUnsafe(seconds, context))

/**
 * Holds the matched route template for the request being served. The outer
 * request middleware (`metricsMiddleware`) provides a fresh cell; the route
 * middleware (`RouteTemplate`), which runs inside the router where
 * `HttpRouter.RouteContext` is set, writes the template into it.
 */
class RouteCell extends Context.Reference<{ template: string | undefined } | undefined>("foreman/Metrics/RouteCell", {
  defaultValue: () => undefined
}) {}

/** Route middleware: records the matched route template (e.g. `/v1/projects/:projectId/jobs`). */
export const RouteTemplate = HttpRouter.middleware((app) =>
  Effect.withFiber((fiber) => {
    const cell = fiber.getRef(RouteCell)
    const route = Context.getOrUndefined(fiber.context, HttpRouter.RouteContext)
    if (cell !== undefined && route !== undefined) cell.template = route.route.path
    return app
  })
).layer

/**
 * Request middleware: observes `foreman_http_request_duration_seconds` by
 * route template, method and status for every request (unmatched paths are
 * labelled `route="unmatched"`; a raw URL is never a label).
 */
export const metricsMiddleware = <E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest> =>
  // Combinators, not Effect.gen. This wraps the whole request, and as a generator it made every
  // request's objects outlive young-generation collections: on /healthz under load 60 MB/s were
  // promoted to the old generation (--trace-gc-nvp), with a full collection every 0.2 s; written
  // like this, 4 MB/s. See docs/benchmarks.md.
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const cell: { template: string | undefined } = { template: undefined }
    const start = performance.now()
    const observe = (status: number) =>
      Metric.update(
        httpRequestDurationBy({
          route: cell.template ?? "unmatched",
          method: request.method,
          status: String(status)
        }),
        (performance.now() - start) / 1000
      )
    return app.pipe(
      Effect.provideService(RouteCell, cell),
      Effect.tap((response) => observe(response.status)),
      Effect.tapCause(() => observe(500))
    )
  })

// awaiting_review is the review backlog; the partial index jobs_awaiting_review covers it.
const runnableStates = ["available", "scheduled", "retrying", "running", "awaiting_review"] as const

/**
 * The scrape: refreshes the gauges read at scrape time (queue depth from one
 * grouped count over the runnable partial indexes, memory, event-loop delay),
 * then collects through the Prometheus exporter and serializes.
 */
export class PrometheusMetrics extends Context.Service<PrometheusMetrics, {
  readonly scrape: Effect.Effect<string>
}>()("foreman/PrometheusMetrics") {
  static readonly layer = Layer.effect(
    PrometheusMetrics,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const config = yield* AppConfig
      const exporter = new PrometheusExporter({ preventServerStart: true })
      const serializer = new PrometheusSerializer(undefined, false, undefined, true, true)
      const lag = monitorEventLoopDelay({ resolution: 10 })
      lag.enable()
      yield* Effect.addFinalizer(() => Effect.sync(() => lag.disable()))
      const seen = new Set<string>()
      // Unlabelled counters are registered at 0, so they are scraped before their first event.
      yield* Metric.update(leasesExpired, 0)

      const refreshDepth = Effect.gen(function*() {
        const rows = yield* sql<{ queue: string; state: string; n: number }>`
          SELECT queue, state, count(*)::int AS n FROM jobs
          WHERE state IN ${sql.in(runnableStates)}
          GROUP BY queue, state`
        const current = new Set<string>()
        for (const row of rows) {
          const key = JSON.stringify([row.queue, row.state])
          current.add(key)
          seen.add(key)
          yield* Metric.update(Metric.withAttributes(queueDepth, { queue: row.queue, state: row.state }), row.n)
        }
        // A queue/state that emptied reads 0 rather than its last value.
        for (const key of seen) {
          if (current.has(key)) continue
          const [queue, state] = JSON.parse(key) as [string, string]
          yield* Metric.update(Metric.withAttributes(queueDepth, { queue, state }), 0)
        }
      }).pipe(Effect.catchCause((cause) => Effect.logWarning("queue depth query failed", cause)))

      // The pools do not expose their counters, so the instance's connections (both pools) are counted
      // where PostgreSQL sees them, by their application_name; the scrape's own connection is left out.
      const refreshPool = Effect.gen(function*() {
        const rows = yield* sql<{ in_use: number; idle: number; lock_waits: number }>`
          SELECT count(*) FILTER (WHERE state <> 'idle')::int AS in_use,
                 count(*) FILTER (WHERE state = 'idle')::int AS idle,
                 count(*) FILTER (WHERE state <> 'idle' AND wait_event_type = 'Lock')::int AS lock_waits
          FROM pg_stat_activity
          WHERE application_name = ${applicationName(config.instanceId)} AND pid <> pg_backend_pid()`
        const row = rows[0] ?? { in_use: 0, idle: 0, lock_waits: 0 }
        yield* Metric.update(Metric.withAttributes(dbConnections, { state: "in_use" }), row.in_use)
        yield* Metric.update(Metric.withAttributes(dbConnections, { state: "idle" }), row.idle)
        yield* Metric.update(dbLockWaits, row.lock_waits)
        yield* Metric.update(dbMaxConnections, config.databasePoolSize + config.claimPoolSize)
      }).pipe(Effect.catchCause((cause) => Effect.logWarning("database pool query failed", cause)))

      const refreshProcess = Effect.suspend(() => {
        const usage = process.memoryUsage()
        const quantiles = { "0.5": lag.percentile(50), "0.99": lag.percentile(99), max: lag.max }
        lag.reset()
        return Effect.andThen(
          Effect.forEach(
            [["rss", usage.rss], ["heap_used", usage.heapUsed], ["heap_total", usage.heapTotal], ["external", usage.external]] as const,
            ([type, bytes]) => Metric.update(Metric.withAttributes(memory, { type }), bytes),
            { discard: true }
          ),
          Effect.forEach(
            Object.entries(quantiles),
            ([quantile, ns]) => Metric.update(Metric.withAttributes(eventLoopLag, { quantile }), Number.isFinite(ns) ? ns / 1e9 : 0),
            { discard: true }
          )
        )
      })

      yield* OtelMetrics.layer(() => exporter).pipe(
        Layer.provide(OtelResource.layer({ serviceName: "foreman" })),
        Layer.build
      )

      const scrape = Effect.gen(function*() {
        yield* refreshDepth
        yield* refreshPool
        yield* refreshProcess
        const { resourceMetrics } = yield* Effect.promise(() => exporter.collect())
        return serializer.serialize(resourceMetrics)
      })
      return PrometheusMetrics.of({ scrape })
    })
  )
}

/** `GET /metrics`: a plain router route, outside the HttpApi (and so outside the OpenAPI document). */
export const MetricsRoute = HttpRouter.add(
  "GET",
  "/metrics",
  Effect.gen(function*() {
    const metrics = yield* PrometheusMetrics
    const body = yield* metrics.scrape
    return HttpServerResponse.text(body, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
  })
)

const opsPaths = new Set(["/metrics", "/healthz", "/readyz"])

/** With `FOREMAN_OPS_PORT` set, the public listener answers 404 for the operations paths. */
export const OpsPathsHidden = HttpRouter.middleware(
  (app) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
      opsPaths.has(request.url.split("?", 1)[0] ?? "")
        ? Effect.succeed(HttpServerResponse.jsonUnsafe({ _tag: "NotFound", message: "not found" }, { status: 404 }))
        : app),
  { global: true }
)
