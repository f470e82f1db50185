/** What the systems share: fresh databases, the workload sizes, and the latency loop. */
import { spawnSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { readdirSync, readFileSync } from "node:fs"
import { Client, type QueryResultRow } from "pg"
import { probe } from "./probe.ts"
import { percentile, sleep, sorted, until } from "./stats.ts"

const quick = process.env.BENCH_QUICK === "1"
const numberEnv = (name: string, fallback: number) => {
  const raw = process.env[name]
  const value = raw === undefined || raw.length === 0 ? fallback : Number(raw)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${raw}`)
  return value
}

export const settings = {
  quick,
  runs: numberEnv("BENCH_RUNS", quick ? 1 : 3),
  jobs: numberEnv("BENCH_JOBS", quick ? 5_000 : 50_000),
  latencyJobs: numberEnv("BENCH_LATENCY_JOBS", quick ? 100 : 500),
  retained: numberEnv("BENCH_RETAINED", quick ? 100_000 : 1_000_000),
  httpSeconds: numberEnv("BENCH_HTTP_SECONDS", quick ? 3 : 10),
  httpConnections: numberEnv("BENCH_HTTP_CONNECTIONS", 32),
  /** Comma-separated subset of systems/workloads to run: foreman, retained, graphile, graphile-batched, pgboss, http. */
  only: (process.env.BENCH_ONLY ?? "").split(",").map((s) => s.trim()).filter((s) => s.length > 0),
  /** Whether PostgreSQL is the harness's own embedded server, whose processes are the only `postgres` ones here. */
  embedded: (process.env.BENCH_DATABASE_URL ?? "").length === 0
}

export const enabled = (name: string) => settings.only.length === 0 || settings.only.includes(name)

/** A new, empty database on the server of `baseUrl`; returns its URL. */
export const newDatabase = async (baseUrl: string, label: string): Promise<string> => {
  const name = `bench_${label.replace(/[^a-z0-9]/g, "_")}_${randomBytes(4).toString("hex")}`
  const client = new Client({ connectionString: baseUrl })
  await client.connect()
  try {
    await client.query(`CREATE DATABASE ${name}`)
  } finally {
    await client.end()
  }
  const url = new URL(baseUrl)
  url.pathname = `/${name}`
  return url.toString()
}

export const dropDatabase = async (baseUrl: string, url: string) => {
  const name = new URL(url).pathname.slice(1)
  const client = new Client({ connectionString: baseUrl })
  await client.connect()
  try {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  } finally {
    await client.end()
  }
}

/** Runs `statement` once on `url` and returns the rows. */
export const query = async <R extends QueryResultRow>(url: string, statement: string, params: ReadonlyArray<unknown> = []) => {
  const client = new Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query<R>(statement, [...params])).rows
  } finally {
    await client.end()
  }
}

export interface DrainResult {
  readonly jobsPerSecond: number
  readonly seconds: number
  /**
   * CPU time per job over the timed drain. `process`: this process, where the
   * system under test runs (Foreman's engine, graphile-worker's and pg-boss's
   * workers alike). `postgres`: every process named `postgres` on the machine,
   * measured only with the embedded server (undefined otherwise, or without `/proc`).
   */
  readonly cpuMicrosPerJob: { readonly process: number; readonly postgres: number | undefined }
}

// /proc/<pid>/stat counts CPU time in clock ticks (USER_HZ).
const clockTicksPerSecond = (() => {
  const out = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" })
  const n = Number(out.stdout?.trim())
  return out.status === 0 && Number.isFinite(n) && n > 0 ? n : 100
})()

/** User plus system CPU of every process named `postgres`, in microseconds; undefined without `/proc`. */
const postgresCpuMicros = (): number | undefined => {
  let entries: Array<string>
  try {
    entries = readdirSync("/proc")
  } catch {
    return undefined
  }
  let ticks = 0
  for (const pid of entries) {
    if (!/^\d+$/.test(pid)) continue
    let stat: string
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    } catch {
      continue // exited since the listing
    }
    const close = stat.lastIndexOf(")")
    if (stat.slice(stat.indexOf("(") + 1, close) !== "postgres") continue
    // After the command: state, ppid, …; utime and stime are fields 14 and 15 of the line.
    const fields = stat.slice(close + 2).split(" ")
    ticks += Number(fields[11]) + Number(fields[12])
  }
  return (ticks * 1e6) / clockTicksPerSecond
}

/**
 * Starts a drain's clock and CPU meters; `stop(jobs)` reads them. A PostgreSQL
 * backend that exits within the window takes its CPU time with it: the systems'
 * pools stay open past it, the harness's own settle checks (a connection each,
 * once every handler call was seen) do not.
 */
export const startDrain = () => {
  const start = performance.now()
  const cpu = process.cpuUsage()
  const postgres = settings.embedded ? postgresCpuMicros() : undefined
  return {
    stop: (jobs: number): DrainResult => {
      const seconds = (performance.now() - start) / 1000
      const used = process.cpuUsage(cpu)
      const postgresNow = postgres === undefined ? undefined : postgresCpuMicros()
      return {
        jobsPerSecond: jobs / seconds,
        seconds,
        cpuMicrosPerJob: {
          process: (used.user + used.system) / jobs,
          postgres: postgres === undefined || postgresNow === undefined ? undefined : (postgresNow - postgres) / jobs
        }
      }
    }
  }
}

export interface LatencyResult {
  readonly p50: number
  readonly p99: number
  readonly max: number
}

/**
 * Enqueues `count` jobs one at a time into an idle system; each one's latency
 * is the time from just before its enqueue call to the first line of its
 * handler. The next enqueue waits for that start plus 2 ms, so the system is
 * idle (and listening) each time.
 */
/**
 * `count` sequential enqueues into an idle, listening system. The drain before it left dead
 * rows behind (every system does), and autovacuum would clean them up during the loop at a time
 * of its choosing: the database `url` is vacuumed and analyzed first, the same for every system.
 */
export const latencyLoop = async (url: string, count: number, enqueue: (i: number) => Promise<unknown>): Promise<LatencyResult> => {
  await query(url, "VACUUM (ANALYZE)")
  probe.reset()
  const latencies: Array<number> = []
  for (let i = 0; i < count; i++) {
    const t0 = performance.now()
    await enqueue(i)
    await until(`latency job ${i} to start`, () => probe.startOf(i) !== undefined, 10_000, 1)
    latencies.push((probe.startOf(i) ?? Number.NaN) - t0)
    await sleep(2)
  }
  const s = sorted(latencies)
  return { p50: percentile(s, 50), p99: percentile(s, 99), max: s.at(-1) ?? Number.NaN }
}

/** Waits until the handler ran `count` times and `settled()` (the database agrees every job is finished). */
export const awaitDrain = async (count: number, settled: () => Promise<boolean>) => {
  await until(`${count} handler calls (saw ${probe.calls()})`, () => probe.calls() >= count, 30 * 60_000, 5)
  await until("the database to show every job finished", settled, 5 * 60_000, 5)
}
