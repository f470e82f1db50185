/**
 * `npm run bench`: Foreman side by side with graphile-worker and pg-boss on one
 * PostgreSQL, plus Foreman's HTTP API beside a bare node:http + pg baseline.
 * Never part of `npm test`. See docs/benchmarks.md for what each workload does.
 *
 * Environment: BENCH_DATABASE_URL (else an embedded PostgreSQL), BENCH_RUNS (3),
 * BENCH_JOBS (50000), BENCH_LATENCY_JOBS (500), BENCH_RETAINED (1000000),
 * BENCH_HTTP_SECONDS (10), BENCH_HTTP_CONNECTIONS (32), BENCH_HTTP_ROLE (api),
 * BENCH_FOREMAN_NODE_FLAGS (extra `node` flags for the HTTP workload's Foreman, after the start
 * script's own, e.g. `--cpu-prof`),
 * BENCH_ONLY (comma list of foreman, retained, graphile, graphile-batched,
 * pgboss, http), BENCH_QUICK=1 (5,000 jobs, 100 latency jobs, 100,000
 * retained, 1 run, 3 s of HTTP load; results are not written to the docs).
 *
 * The HTTP workload runs the bundle `npm start` runs: `npm run build` first.
 */
import { Effect, Redacted } from "effect"
import { mkdtemp, readFile, writeFile } from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { appConfig } from "../../src/Config/AppConfig.ts"
import { startEmbeddedPostgres } from "../../src/Sql/EmbeddedPostgres.ts"
import { freePort } from "../support/freePort.ts"
import { buildBundle } from "../support/startScript.ts"
import { type DrainResult, dropDatabase, enabled, type LatencyResult, newDatabase, query, settings } from "./common.ts"
import { batchSize, httpForemanCommand, httpForemanEnv, httpRole, type HttpRun, runHttp, taskset } from "./http.ts"
import { type DrainSystem, renderMarkdown, renderSvg, type Results, targets } from "./render.ts"
import { graphileSettings, runGraphile } from "./systems/graphile.ts"
import { foremanConfig, runForeman } from "./systems/foreman.ts"
import { pgbossSettings, runPgBoss } from "./systems/pgboss.ts"
import { summary } from "./stats.ts"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

const log = (line: string) => process.stdout.write(`${line}\n`)

const version = async (pkg: string) => {
  const text = await readFile(path.join(root, "node_modules", pkg, "package.json"), "utf8")
  const parsed: unknown = JSON.parse(text)
  const v: unknown = typeof parsed === "object" && parsed !== null ? Reflect.get(parsed, "version") : undefined
  return typeof v === "string" ? v : "unknown"
}

type LatencySystem = "foreman" | "graphileDefault" | "graphileBatched" | "pgboss"

const main = async (baseUrl: string) => {
  const drains = new Map<DrainSystem, Array<DrainResult>>()
  const latencies = new Map<LatencySystem, Array<LatencyResult>>()
  const https: Array<HttpRun> = []
  const push = <K, V>(map: Map<K, Array<V>>, key: K, value: V) => map.set(key, [...(map.get(key) ?? []), value])
  const fresh = async <A>(label: string, f: (url: string) => Promise<A>) => {
    const url = await newDatabase(baseUrl, label)
    try {
      return await f(url)
    } finally {
      await dropDatabase(baseUrl, url)
    }
  }
  const options = { jobs: settings.jobs, latencyJobs: settings.latencyJobs }
  let retainedRows = 0
  if (enabled("http")) {
    log("npm run build")
    buildBundle()
  }

  for (let run = 1; run <= settings.runs; run++) {
    log(`--- run ${run}/${settings.runs} ---`)
    if (enabled("foreman")) {
      const r = await fresh("foreman", (url) => Effect.runPromise(runForeman(url, { ...options, retained: 0 })))
      push(drains, "foreman", r.drain)
      if (r.latency !== undefined) push(latencies, "foreman", r.latency)
      log(`foreman: drain ${r.drain.jobsPerSecond.toFixed(0)} jobs/s, latency p50 ${r.latency?.p50.toFixed(2)} ms p99 ${r.latency?.p99.toFixed(2)} ms`)
    }
    if (enabled("retained")) {
      const r = await fresh("foreman_retained", (url) =>
        Effect.runPromise(runForeman(url, { jobs: settings.jobs, latencyJobs: 0, retained: settings.retained })))
      retainedRows = r.retainedRows
      push(drains, "foremanRetained", r.drain)
      log(`foreman with ${r.retainedRows} finished jobs retained: drain ${r.drain.jobsPerSecond.toFixed(0)} jobs/s`)
    }
    if (enabled("graphile")) {
      const r = await fresh("graphile", (url) => runGraphile(url, "default", options))
      push(drains, "graphileDefault", r.drain)
      if (r.latency !== undefined) push(latencies, "graphileDefault", r.latency)
      log(`graphile-worker (defaults): drain ${r.drain.jobsPerSecond.toFixed(0)} jobs/s, latency p50 ${r.latency?.p50.toFixed(2)} ms p99 ${r.latency?.p99.toFixed(2)} ms`)
    }
    if (enabled("graphile-batched")) {
      const r = await fresh("graphile_batched", (url) => runGraphile(url, "batched", options))
      push(drains, "graphileBatched", r.drain)
      if (r.latency !== undefined) push(latencies, "graphileBatched", r.latency)
      log(`graphile-worker (batched): drain ${r.drain.jobsPerSecond.toFixed(0)} jobs/s, latency p50 ${r.latency?.p50.toFixed(2)} ms p99 ${r.latency?.p99.toFixed(2)} ms`)
    }
    if (enabled("pgboss")) {
      const r = await fresh("pgboss", (url) => runPgBoss(url, options))
      push(drains, "pgboss", r.drain)
      if (r.latency !== undefined) push(latencies, "pgboss", r.latency)
      log(`pg-boss: drain ${r.drain.jobsPerSecond.toFixed(0)} jobs/s, latency p50 ${r.latency?.p50.toFixed(2)} ms p99 ${r.latency?.p99.toFixed(2)} ms`)
    }
    if (enabled("http")) {
      const r = await runHttp(baseUrl)
      https.push(r)
      const line = (name: string, f: HttpRun["foreman"]) =>
        `${name}: single ${f.single.requestsPerSecond.toFixed(0)} req/s p99 ${f.single.p99.toFixed(1)} ms, ` +
        `batch ${f.batch.jobsPerSecond.toFixed(0)} jobs/s, get ${f.get.requestsPerSecond.toFixed(0)} req/s` +
        ` (non-2xx ${f.single.non2xx + f.batch.non2xx + f.get.non2xx}, errors ${f.single.errors + f.batch.errors + f.get.errors})`
      log(line("http foreman", r.foreman))
      log(line("http baseline", r.baseline))
      log(`foreman peak RSS ${r.foremanPeakRssMiB.toFixed(0)} MiB`)
    }
  }

  const [pg] = await query<{ readonly v: string }>(baseUrl, "SELECT current_setting('server_version') AS v")
  const config = await Effect.runPromise(appConfig)
  const cpus = os.cpus()
  const drainSummary = Object.fromEntries([...drains].map(([k, v]) => [k, summary(v.map((d) => d.jobsPerSecond))]))
  const drainCpu = Object.fromEntries([...drains].map(([k, v]) => {
    const postgres = v.flatMap((d) => d.cpuMicrosPerJob.postgres === undefined ? [] : [d.cpuMicrosPerJob.postgres])
    return [k, {
      process: summary(v.map((d) => d.cpuMicrosPerJob.process)),
      postgres: postgres.length === v.length ? summary(postgres) : undefined
    }]
  }))
  const latencySummary = Object.fromEntries(
    [...latencies].map(([k, v]) => [k, { p50: summary(v.map((x) => x.p50)), p99: summary(v.map((x) => x.p99)) }])
  )
  const httpSide = (side: "foreman" | "baseline") => {
    const scenario = (name: "single" | "batch" | "get") => ({
      requestsPerSecond: summary(https.map((r) => r[side][name].requestsPerSecond)),
      p50: summary(https.map((r) => r[side][name].p50)),
      p95: summary(https.map((r) => r[side][name].p95)),
      p99: summary(https.map((r) => r[side][name].p99)),
      failed: https.reduce((n, r) => n + r[side][name].non2xx + r[side][name].errors, 0)
    })
    return {
      single: scenario("single"),
      batch: { ...scenario("batch"), jobsPerSecond: summary(https.map((r) => r[side].batch.jobsPerSecond)) },
      get: scenario("get")
    }
  }
  const results: Results = {
    generatedAt: new Date().toISOString(),
    quick: settings.quick,
    machine: {
      cpu: cpus[0]?.model.trim() ?? "unknown",
      cores: cpus.length,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      os: `${os.type()} ${os.release()}`
    },
    versions: {
      node: process.version,
      postgres: pg?.v ?? "unknown",
      foreman: await version(".."),
      graphileWorker: await version("graphile-worker"),
      pgBoss: await version("pg-boss"),
      autocannon: await version("autocannon")
    },
    config: {
      runs: settings.runs,
      jobs: settings.jobs,
      latencyJobs: settings.latencyJobs,
      retained: settings.retained,
      retainedRows,
      database: process.env.BENCH_DATABASE_URL ? "BENCH_DATABASE_URL" : "embedded PostgreSQL, default settings",
      foreman: foremanConfig(config),
      graphileDefault: graphileSettings("default"),
      graphileBatched: graphileSettings("batched"),
      pgboss: pgbossSettings,
      http: {
        seconds: settings.httpSeconds,
        connections: settings.httpConnections,
        batchSize,
        foremanRole: httpRole,
        foremanCommand: [...Object.entries(httpForemanEnv()).map(([name, value]) => `${name}=${value}`), ...httpForemanCommand()].join(" "),
        pinned: taskset === undefined ? "no (taskset not found)" : "server on core 0, load generator on core 1"
      }
    },
    drain: drainSummary,
    drainCpu,
    latency: latencySummary,
    http: https.length === 0 ? undefined : {
      foreman: httpSide("foreman"),
      baseline: httpSide("baseline"),
      foremanPeakRssMB: summary(https.map((r) => (r.foremanPeakRssMiB * 2 ** 20) / 1e6)),
      foremanSampledRssMB: summary(https.map((r) => (r.foremanSampledRssMiB * 2 ** 20) / 1e6)),
      foremanIdleRssMB: summary(https.map((r) => (r.foremanIdleRssMiB * 2 ** 20) / 1e6))
    },
    targets: []
  }
  const final: Results = { ...results, targets: targets(results) }
  for (const t of final.targets) log(`${t.pass === undefined ? "n/a " : t.pass ? "PASS" : "MISS"}  ${t.target}: ${t.measured}`)

  const out = settings.quick ? path.join(os.tmpdir(), "foreman-bench-quick") : path.join(root, "test/bench")
  if (settings.quick) await import("node:fs/promises").then((fs) => fs.mkdir(out, { recursive: true }))
  await writeFile(path.join(out, "results.json"), `${JSON.stringify(final, null, 2)}\n`)
  const docsDir = settings.quick ? out : path.join(root, "docs")
  const mdPath = path.join(docsDir, "benchmarks.md")
  const existing = await readFile(settings.quick ? path.join(root, "docs/benchmarks.md") : mdPath, "utf8")
  await writeFile(mdPath, renderMarkdown(existing, final))
  await writeFile(path.join(docsDir, "benchmarks.svg"), renderSvg(final))
  log(`results: ${path.join(out, "results.json")}, ${mdPath}, ${path.join(docsDir, "benchmarks.svg")}`)
}

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
  yield* Effect.promise(() => main(baseUrl))
}).pipe(Effect.scoped)

Effect.runPromise(program).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`)
    process.exit(1)
  }
)
