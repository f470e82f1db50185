/**
 * `npm run bench`: the engine's drain throughput and enqueue-to-start latency,
 * each beside a baseline measured in the same run on the same PostgreSQL.
 *
 * 1. drain: 50,000 no-op jobs bulk-inserted into a paused queue; the queue is
 *    resumed and the clock runs until every job has succeeded. Baseline: the
 *    floor any PostgreSQL queue pays, a bare `FOR UPDATE SKIP LOCKED` batch
 *    loop over a one-column table with no leases, events or handlers.
 * 2. latency: 500 enqueues through the service, one at a time, into an idle
 *    engine woken by LISTEN/NOTIFY; latency is started_at - created_at, both
 *    from the database clock. Baseline: the same enqueue path's own duration.
 *
 * Environment: BENCH_DATABASE_URL (else an embedded PostgreSQL), BENCH_JOBS
 * (default 50000), BENCH_LATENCY_JOBS (default 500), BENCH_RUNS (default 3).
 */
import { PgClient } from "@effect/sql-pg"
import { Console, Effect, Layer, Option, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { randomBytes } from "node:crypto"
import { writeFile } from "node:fs/promises"
import { mkdtemp } from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { CurrentPrincipal } from "../../src/Auth/Principal.ts"
import { AppConfig, appConfig } from "../../src/Config/AppConfig.ts"
import { ApiKeyId, ProjectId, QueueName } from "../../src/Domain/Ids.ts"
import { Jobs } from "../../src/Jobs/Jobs.ts"
import { Projects } from "../../src/Projects/Projects.ts"
import { Queues } from "../../src/Queues/Queues.ts"
import { makeApp } from "../../src/Server.ts"
import { startEmbeddedPostgres } from "../../src/Sql/EmbeddedPostgres.ts"
import { freePort } from "../support/freePort.ts"
import { testJwtKeys, testPepper } from "../support/identity.ts"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const jobsCount = Number(process.env.BENCH_JOBS ?? 50_000)
const latencyJobs = Number(process.env.BENCH_LATENCY_JOBS ?? 500)
const runs = Number(process.env.BENCH_RUNS ?? 3)


const admin = CurrentPrincipal.of({
  kind: "api_key",
  keyId: ApiKeyId.make("00000000-0000-4000-8000-000000000000"),
  projectId: null,
  role: "platform_admin"
})

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN

const median = (values: ReadonlyArray<number>) => percentile([...values].sort((a, b) => a - b), 50)

const summary = (values: ReadonlyArray<number>) => ({
  median: median(values),
  min: Math.min(...values),
  max: Math.max(...values),
  runs: values
})

const newDatabase = (baseUrl: string) =>
  Effect.gen(function*() {
    const name = `foreman_bench_${randomBytes(4).toString("hex")}`
    const sql = yield* PgClient.PgClient
    yield* sql.unsafe(`CREATE DATABASE ${name}`)
    const url = new URL(baseUrl)
    url.pathname = `/${name}`
    return url.toString()
  }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(baseUrl), maxConnections: 1 })), Effect.orDie)

/** The floor: claim-and-finish batches of a bare table with SKIP LOCKED, same batch size and concurrency. */
const baselineDrain = (url: string, concurrency: number, batch: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, state text NOT NULL)`
    yield* sql`TRUNCATE bench_floor`
    yield* sql`INSERT INTO bench_floor (state) SELECT 'available' FROM generate_series(1, ${jobsCount})`
    const start = performance.now()
    const worker = Effect.gen(function*() {
      while (true) {
        const rows = yield* sql`
          UPDATE bench_floor SET state = 'done'
          WHERE id IN (SELECT id FROM bench_floor WHERE state = 'available' ORDER BY id LIMIT ${batch} FOR UPDATE SKIP LOCKED)
          RETURNING id`
        if (rows.length === 0) return
      }
    })
    yield* Effect.all(Array.from({ length: Math.max(1, Math.floor(concurrency / batch)) + 1 }, () => worker), {
      concurrency: "unbounded"
    })
    return jobsCount / ((performance.now() - start) / 1000)
  }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 10 })), Effect.orDie)

const foremanRun = (url: string) =>
  Effect.gen(function*() {
    const projects = yield* Projects
    const queues = yield* Queues
    const jobs = yield* Jobs
    const sql = yield* SqlClient.SqlClient
    const project = yield* projects.create("bench")
    const projectId = ProjectId.make(project.id)
    const queue = QueueName.make("bench")
    yield* queues.create(projectId, { name: queue, paused: true })

    // Drain: bulk insert (not timed), then resume and time until all have succeeded.
    yield* sql`
      INSERT INTO jobs (id, project_id, queue, kind, payload, priority, state, run_at, max_attempts, timeout_ms)
      SELECT gen_random_uuid(), ${projectId}, ${queue}, 'noop', '{}'::jsonb, 2, 'available', now(), 25, 60000
      FROM generate_series(1, ${jobsCount})`
    const start = performance.now()
    yield* queues.update(projectId, queue, { paused: false })
    // Both probes use the engine's partial indexes, so polling costs next to nothing.
    while (true) {
      const [row] = yield* sql<{ readonly busy: boolean }>`
        SELECT EXISTS (SELECT 1 FROM jobs WHERE state IN ('available', 'scheduled', 'retrying'))
            OR EXISTS (SELECT 1 FROM jobs WHERE state = 'running') AS busy`
      if (row?.busy === false) break
      yield* Effect.sleep("10 millis")
    }
    const drainSeconds = (performance.now() - start) / 1000

    // Latency: sequential enqueues into the now idle engine.
    const enqueueMs: Array<number> = []
    const ids: Array<string> = []
    for (let i = 0; i < latencyJobs; i++) {
      const t0 = performance.now()
      const job = yield* jobs.enqueue(projectId, { queue, kind: "noop", payload: { i } })
      enqueueMs.push(performance.now() - t0)
      ids.push(job.id)
      yield* Effect.sleep("5 millis")
    }
    while (true) {
      const [row] = yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM jobs WHERE id IN ${sql.in(ids)} AND state = 'succeeded'`
      if ((row?.n ?? 0) >= ids.length) break
      yield* Effect.sleep("25 millis")
    }
    const latencies = (yield* sql<{ readonly ms: number }>`
      SELECT extract(epoch FROM (started_at - created_at)) * 1000 AS ms FROM jobs WHERE id IN ${sql.in(ids)}`)
      .map((row) => Number(row.ms)).sort((a, b) => a - b)
    const enqueueSorted = [...enqueueMs].sort((a, b) => a - b)
    return {
      drainJobsPerSecond: jobsCount / drainSeconds,
      latencyP50: percentile(latencies, 50),
      latencyP99: percentile(latencies, 99),
      enqueueP50: percentile(enqueueSorted, 50),
      enqueueP99: percentile(enqueueSorted, 99)
    }
  }).pipe(
    Effect.provideService(CurrentPrincipal, admin),
    Effect.provide(
      makeApp(AppConfig.layerWith({
        port: 0,
        host: "127.0.0.1",
        databaseUrl: Option.some(Redacted.make(url)),
        handlerModules: [path.join(root, "test/support/handlers.ts")],
        databasePoolSize: 10,
        passwordPepper: Option.some(Redacted.make(testPepper)),
        jwtKeys: Option.some(Redacted.make(testJwtKeys))
      }))
    ),
    Effect.scoped,
    Effect.orDie
  )

const program = Effect.gen(function*() {
  const external = process.env.BENCH_DATABASE_URL
  const baseUrl = external !== undefined && external.length > 0
    ? external
    : Redacted.value(
      yield* startEmbeddedPostgres({
        dataDir: yield* Effect.promise(() => mkdtemp(path.join(os.tmpdir(), "foreman-bench-pg-"))),
        port: yield* Effect.promise(freePort),
        persistent: false
      })
    )
  const config = yield* appConfig
  const drain: Array<number> = []
  const floor: Array<number> = []
  const p50: Array<number> = []
  const p99: Array<number> = []
  const enqueueP50: Array<number> = []
  for (let run = 1; run <= runs; run++) {
    const url = yield* newDatabase(baseUrl)
    floor.push(yield* baselineDrain(url, config.workerConcurrency, config.claimBatchSize))
    const result = yield* foremanRun(url)
    drain.push(result.drainJobsPerSecond)
    p50.push(result.latencyP50)
    p99.push(result.latencyP99)
    enqueueP50.push(result.enqueueP50)
    yield* Console.log(
      `run ${run}/${runs}: drain ${result.drainJobsPerSecond.toFixed(0)} jobs/s (floor ${floor.at(-1)?.toFixed(0)}), ` +
        `enqueue→start p50 ${result.latencyP50.toFixed(2)} ms p99 ${result.latencyP99.toFixed(2)} ms, ` +
        `enqueue call p50 ${result.enqueueP50.toFixed(2)} ms`
    )
  }
  const results = {
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? "unknown", memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    config: { jobs: jobsCount, latencyJobs, runs, workerConcurrency: config.workerConcurrency, claimBatchSize: config.claimBatchSize },
    drainJobsPerSecond: summary(drain),
    floorJobsPerSecond: summary(floor),
    drainVsFloor: median(drain) / median(floor),
    enqueueToStartP50Ms: summary(p50),
    enqueueToStartP99Ms: summary(p99),
    enqueueCallP50Ms: summary(enqueueP50)
  }
  yield* Effect.promise(() => writeFile(path.join(root, "test/bench/results.json"), JSON.stringify(results, null, 2) + "\n"))
  yield* Console.log(JSON.stringify(results, null, 2))
}).pipe(Effect.scoped)

Effect.runPromise(program.pipe(Effect.provide(Layer.empty))).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`)
    process.exit(1)
  }
)
