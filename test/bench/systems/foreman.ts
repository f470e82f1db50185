/**
 * Foreman's in-process engine, built from the service's own layers (`makeApp`)
 * with the handler module `test/bench/probe.ts`. Jobs are enqueued through the
 * `Jobs` service (batches of 1,000 for the drain, one at a time for latency).
 */
import { Effect, Option, Redacted, References } from "effect"
import { SqlClient } from "effect/sql"
import { randomBytes } from "node:crypto"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { CurrentPrincipal } from "../../../src/Auth/Principal.ts"
import { AppConfig, type AppConfigShape } from "../../../src/Config/AppConfig.ts"
import { ApiKeyId, ProjectId, QueueName } from "../../../src/Domain/Ids.ts"
import { Jobs } from "../../../src/Jobs/Jobs.ts"
import { Projects } from "../../../src/Projects/Projects.ts"
import { Queues } from "../../../src/Queues/Queues.ts"
import { makeApp } from "../../../src/Server.ts"
import { testJwtKeys, testPepper } from "../../support/identity.ts"
import { awaitDrain, type DrainResult, startDrain, latencyLoop, type LatencyResult } from "../common.ts"
import { probe } from "../probe.ts"

const probeModule = path.join(path.dirname(fileURLToPath(import.meta.url)), "../probe.ts")

const admin = CurrentPrincipal.of({
  kind: "api_key",
  keyId: ApiKeyId.make("00000000-0000-4000-8000-000000000000"),
  projectId: null,
  role: "platform_admin"
})

export interface ForemanOptions {
  readonly jobs: number
  /** Finished jobs inserted (one INSERT … SELECT generate_series) before the drain. */
  readonly retained: number
  /** 0 skips the latency workload. */
  readonly latencyJobs: number
}

export interface ForemanResult {
  readonly drain: DrainResult
  readonly latency: LatencyResult | undefined
  readonly retainedRows: number
}

/**
 * Foreman runs with its throughput settings (docs/operations.md), as graphile-worker runs
 * with its documented batched ones; FOREMAN_WORKER_CONCURRENCY and FOREMAN_CLAIM_BATCH_SIZE
 * override them.
 */
const throughput: Partial<AppConfigShape> = {
  ...(process.env.FOREMAN_WORKER_CONCURRENCY === undefined ? { workerConcurrency: 1000 } : {}),
  ...(process.env.FOREMAN_CLAIM_BATCH_SIZE === undefined ? { claimBatchSize: 500 } : {})
}

/** The engine configuration the run used, for the report. */
export const foremanConfig = (loaded: AppConfigShape) => {
  const config = { ...loaded, ...throughput }
  return {
  workerConcurrency: config.workerConcurrency,
  claimBatchSize: config.claimBatchSize,
  claimLoops: config.claimLoops,
  pollIntervalMs: config.pollIntervalMs,
  databasePoolSize: benchPoolSize
  }
}

const benchPoolSize = 10

export const runForeman = (url: string, options: ForemanOptions) =>
  Effect.gen(function*() {
    const projects = yield* Projects
    const queues = yield* Queues
    const jobs = yield* Jobs
    const sql = yield* SqlClient.SqlClient
    const project = yield* projects.create("bench")
    const projectId = ProjectId.make(project.id)
    // Jobs are enqueued as a producer key of the project would, not as the platform admin
    // that set the project up (an admin's access check also looks the project up).
    const producer = CurrentPrincipal.of({
      kind: "api_key",
      keyId: ApiKeyId.make("00000000-0000-4000-8000-000000000001"),
      projectId,
      role: "producer"
    })
    const queue = QueueName.make("bench")
    yield* queues.create(projectId, { name: queue, paused: true, retention_seconds: 7 * 86_400 })

    if (options.retained > 0) {
      const [version] = yield* sql<{ readonly v: number }>`SELECT current_setting('server_version_num')::int AS v`
      // Time-ordered ids like the service's own (uuidv7 exists from PostgreSQL 18).
      const id = (version?.v ?? 0) >= 180000 ? sql`uuidv7()` : sql`gen_random_uuid()`
      yield* sql`
        INSERT INTO jobs (id, project_id, queue, kind, payload, priority, state, run_at, attempt, max_attempts,
                          timeout_ms, created_at, updated_at, started_at, finished_at, result)
        SELECT ${id}, ${projectId}, ${queue}, 'bench_noop', jsonb_build_object('n', g), 2, 'succeeded', t, 1, 25,
               60000, t, t + interval '4 ms', t + interval '2 ms', t + interval '4 ms', 'null'::jsonb
        FROM generate_series(1, ${options.retained}) AS g,
             LATERAL (SELECT now() - interval '1 hour' + g * (interval '1 hour' / ${options.retained})) AS at(t)`
    }
    // Steady state: autovacuum would have visited a table with this history. The empty-table
    // run takes the same step, so the two drains differ only in what the table holds.
    yield* sql.unsafe("VACUUM ANALYZE jobs")
    const [retainedRow] = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM jobs`

    // Drain: enqueue into the paused queue (not timed), then resume and time until every job has finished.
    for (let offset = 0; offset < options.jobs; offset += 1000) {
      const size = Math.min(1000, options.jobs - offset)
      yield* jobs.enqueueBatch(
        projectId,
        Array.from({ length: size }, () => ({ queue, kind: "bench_noop", payload: {} }))
      ).pipe(Effect.provideService(CurrentPrincipal, producer))
    }
    probe.reset()
    const clock = startDrain()
    yield* queues.update(projectId, queue, { paused: false })
    const settled = () =>
      Effect.runPromise(
        sql<{ readonly busy: boolean }>`
          SELECT EXISTS (SELECT 1 FROM jobs WHERE state IN ('available', 'scheduled', 'retrying'))
              OR EXISTS (SELECT 1 FROM jobs WHERE state = 'running') AS busy`.pipe(
          Effect.map(([row]) => row?.busy === false),
          Effect.orDie
        )
      )
    yield* Effect.promise(() => awaitDrain(options.jobs, settled))
    const drain = clock.stop(options.jobs)

    const latency = options.latencyJobs === 0 ? undefined : yield* Effect.promise(() =>
      latencyLoop(url, options.latencyJobs, (i) =>
        Effect.runPromise(
          jobs.enqueue(projectId, { queue, kind: "bench_noop", payload: { i } }).pipe(
            Effect.provideService(CurrentPrincipal, producer),
            Effect.orDie
          )
        ))
    )
    return {
      drain,
      latency,
      retainedRows: retainedRow?.n ?? 0
    } satisfies ForemanResult
  }).pipe(
    Effect.provideService(CurrentPrincipal, admin),
    Effect.provide(
      makeApp(AppConfig.layerWith({
        port: 0,
        host: "127.0.0.1",
        databaseUrl: Option.some(Redacted.make(url)),
        handlerModules: [probeModule],
        ...throughput,
        databasePoolSize: benchPoolSize,
        // A supplied bootstrap key is logged (below Warn) instead of printed to stdout.
        adminApiKey: Option.some(Redacted.make(`bench-${randomBytes(16).toString("hex")}`)),
        passwordPepper: Option.some(Redacted.make(testPepper)),
        jwtKeys: Option.some(Redacted.make(testJwtKeys))
      }))
    ),
    // The engine's own log lines would interleave with the report and cost stdout writes.
    Effect.provideService(References.MinimumLogLevel, "Warn"),
    Effect.scoped,
    Effect.orDie
  )
