/**
 * The HTTP workload: Foreman as a child process running what `npm start` runs
 * (the bundle `dist/server/main.js` with the start script's environment and
 * `node` flags, built once by run.ts; pinned to core 0 where `taskset` exists)
 * under autocannon load from another child process (pinned to core 1), beside the bare
 * `node:http` + `pg` baseline (baseline-server.ts) on the same core, against
 * the same schema.
 * Each target gets its own fresh database, set up through the real API.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { existsSync } from "node:fs"
import { readFile } from "node:fs/promises"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { freePort } from "../support/freePort.ts"
import { identityEnv } from "../support/identity.ts"
import { startCommand } from "../support/startScript.ts"
import { dropDatabase, newDatabase, settings } from "./common.ts"
import type { LoadResult, LoadSpec } from "./load.ts"
import { sleep, until } from "./stats.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, "../..")
export const taskset = ["/usr/bin/taskset", "/bin/taskset"].find((candidate) => existsSync(candidate))

export const httpRole = process.env.BENCH_HTTP_ROLE ?? "api"
export const batchSize = 100

/** `node args…` on one core when possible. */
const spawnNode = (core: number, args: ReadonlyArray<string>, env: Record<string, string | undefined>, output: "ignore" | "pipe") =>
  taskset === undefined
    ? spawn(process.execPath, [...args], { cwd: root, env, stdio: ["ignore", output, output === "pipe" ? "pipe" : "ignore"] })
    : spawn(taskset, ["-c", String(core), process.execPath, ...args], {
      cwd: root,
      env,
      stdio: ["ignore", output, output === "pipe" ? "pipe" : "ignore"]
    })

const stop = async (child: ChildProcess) => {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  child.kill("SIGTERM")
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000)
  await exited
  clearTimeout(timer)
}

/** kB from /proc/<pid>/status: VmHWM is the peak resident set size since the process started. */
const procStatus = async (pid: number | undefined, field: "VmHWM" | "VmRSS") => {
  if (pid === undefined) return Number.NaN
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8")
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)
    return match?.[1] === undefined ? Number.NaN : Number(match[1])
  } catch {
    return Number.NaN
  }
}

const runLoad = (spec: LoadSpec) =>
  new Promise<LoadResult>((resolve, reject) => {
    const child = spawnNode(1, [path.join(here, "load.ts"), JSON.stringify(spec)], process.env, "pipe")
    let out = ""
    let err = ""
    child.stdout?.on("data", (chunk: Buffer) => {
      out += chunk.toString("utf8")
    })
    child.stderr?.on("data", (chunk: Buffer) => {
      err += chunk.toString("utf8")
    })
    child.once("exit", (code) => {
      if (code !== 0) return reject(new Error(`load generator exited with ${code}: ${err}`))
      try {
        const parsed: LoadResult = JSON.parse(out.trim().split("\n").at(-1) ?? "")
        resolve(parsed)
      } catch (error) {
        reject(error)
      }
    })
  })

const api = async (baseUrl: string, token: string, method: string, urlPath: string, body?: unknown) => {
  const response = await fetch(`${baseUrl}${urlPath}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  const text = await response.text()
  if (!response.ok) throw new Error(`${method} ${urlPath}: ${response.status} ${text}`)
  const value: unknown = JSON.parse(text)
  return value
}

const field = (value: unknown, name: string): string => {
  const v: unknown = typeof value === "object" && value !== null ? Reflect.get(value, name) : undefined
  if (typeof v !== "string") throw new Error(`expected a string '${name}' in ${JSON.stringify(value)}`)
  return v
}

interface Foreman {
  readonly child: ChildProcess
  readonly baseUrl: string
}

/** `node` and its arguments for Foreman: `npm start`'s, with BENCH_FOREMAN_NODE_FLAGS before the script. */
export const httpForemanCommand = () => {
  const { flags, script } = startCommand()
  const extraFlags = (process.env.BENCH_FOREMAN_NODE_FLAGS ?? "").split(" ").filter((f) => f !== "")
  return ["node", ...flags, ...extraFlags, script]
}

/** The environment `npm start` sets for Foreman (e.g. `MALLOC_ARENA_MAX`). */
export const httpForemanEnv = () => startCommand().env

const startForeman = async (url: string, adminKey: string): Promise<Foreman> => {
  const port = await freePort()
  const child = spawnNode(0, httpForemanCommand().slice(1), {
    ...process.env,
    ...httpForemanEnv(),
    ...identityEnv,
    PORT: String(port),
    HOST: "127.0.0.1",
    DATABASE_URL: url,
    FOREMAN_ADMIN_API_KEY: adminKey,
    FOREMAN_ROLE: httpRole,
    FOREMAN_HANDLERS: path.join(here, "probe.ts"),
    FOREMAN_RATE_LIMIT_PER_ADDRESS: "100000000",
    FOREMAN_RATE_LIMIT_PER_PRINCIPAL: "100000000"
  }, "ignore")
  const baseUrl = `http://127.0.0.1:${port}`
  await until("Foreman to be ready", async () => {
    if (child.exitCode !== null) throw new Error(`Foreman exited with ${child.exitCode}`)
    try {
      return (await fetch(`${baseUrl}/readyz`)).status === 200
    } catch {
      return false
    }
  }, 60_000, 100)
  return { child, baseUrl }
}

interface Target {
  readonly baseUrl: string
  readonly token: string
  readonly projectId: string
  readonly jobId: string
}

/** A project, a paused queue (so enqueued jobs are stored, not run), a producer key and one job to read. */
const setUp = async (foreman: Foreman, adminKey: string): Promise<Target> => {
  const project = await api(foreman.baseUrl, adminKey, "POST", "/v1/projects", { name: "bench" })
  const projectId = field(project, "id")
  await api(foreman.baseUrl, adminKey, "POST", `/v1/projects/${projectId}/queues`, { name: "bench", paused: true })
  const key = await api(foreman.baseUrl, adminKey, "POST", `/v1/projects/${projectId}/api-keys`, { name: "bench", role: "producer" })
  const token = field(key, "secret")
  const job = await api(foreman.baseUrl, token, "POST", `/v1/projects/${projectId}/jobs`, { queue: "bench", kind: "bench_noop", payload: {} })
  return { baseUrl: foreman.baseUrl, token, projectId, jobId: field(job, "id") }
}

export interface HttpFigures {
  readonly single: LoadResult
  readonly batch: LoadResult & { readonly jobsPerSecond: number }
  readonly get: LoadResult
}

const scenarios = async (target: Target): Promise<HttpFigures> => {
  const headers = { authorization: `Bearer ${target.token}`, "content-type": "application/json" }
  const jobs = `${target.baseUrl}/v1/projects/${target.projectId}/jobs`
  const common = { headers, connections: settings.httpConnections, seconds: settings.httpSeconds }
  const one = JSON.stringify({ queue: "bench", kind: "bench_noop", payload: { n: 1 } })
  const many = JSON.stringify({ jobs: Array.from({ length: batchSize }, (_, n) => ({ queue: "bench", kind: "bench_noop", payload: { n } })) })
  // Warm-up (JIT, pool connections, prepared statements), not recorded.
  await runLoad({ ...common, seconds: 1, url: jobs, method: "POST", body: one })
  const single = await runLoad({ ...common, url: jobs, method: "POST", body: one })
  const batch = await runLoad({ ...common, url: `${jobs}/batch`, method: "POST", body: many })
  const get = await runLoad({ ...common, url: `${jobs}/${target.jobId}`, method: "GET" })
  return { single, batch: { ...batch, jobsPerSecond: batch.requestsPerSecond * batchSize }, get }
}

export interface HttpRun {
  readonly foreman: HttpFigures
  readonly baseline: HttpFigures
  /** Peak resident set size of the Foreman process over its whole run (VmHWM), in MiB. */
  readonly foremanPeakRssMiB: number
  /** Highest VmRSS seen when sampled every 100 ms under load, in MiB. */
  readonly foremanSampledRssMiB: number
  /** VmRSS once ready and set up, before the load, in MiB. */
  readonly foremanIdleRssMiB: number
}

export const runHttp = async (baseUrl: string): Promise<HttpRun> => {
  const adminKey = `bench-admin-${randomBytes(16).toString("hex")}`

  // Foreman.
  const foremanDb = await newDatabase(baseUrl, "http_foreman")
  const foreman = await startForeman(foremanDb, adminKey)
  let sampled = 0
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      sampled = Math.max(sampled, await procStatus(foreman.child.pid, "VmRSS"))
      await sleep(100)
    }
  })()
  let foremanFigures: HttpFigures
  let peak: number
  let idle: number
  try {
    const target = await setUp(foreman, adminKey)
    idle = await procStatus(foreman.child.pid, "VmRSS")
    foremanFigures = await scenarios(target)
    peak = await procStatus(foreman.child.pid, "VmHWM")
  } finally {
    sampling = false
    await sampler
    await stop(foreman.child)
  }

  // Baseline: the same migrated schema, project and queue (set up by a Foreman boot), then the bare server.
  const baselineDb = await newDatabase(baseUrl, "http_baseline")
  const setupOnly = await startForeman(baselineDb, adminKey)
  let target: Target
  try {
    target = await setUp(setupOnly, adminKey)
  } finally {
    await stop(setupOnly.child)
  }
  const port = await freePort()
  const baseline = spawnNode(0, [path.join(here, "baseline-server.ts")], {
    ...process.env,
    PORT: String(port),
    DATABASE_URL: baselineDb,
    BENCH_PROJECT_ID: target.projectId,
    BENCH_QUEUE: "bench",
    BENCH_POOL_SIZE: process.env.FOREMAN_DB_POOL_SIZE ?? "10"
  }, "pipe")
  let baselineFigures: HttpFigures
  try {
    baseline.stderr?.resume()
    await new Promise<void>((resolve, reject) => {
      baseline.stdout?.on("data", (chunk: Buffer) => {
        if (chunk.toString("utf8").includes("ready")) resolve()
      })
      baseline.once("exit", (code) => reject(new Error(`baseline server exited with ${code}`)))
    })
    baselineFigures = await scenarios({ ...target, baseUrl: `http://127.0.0.1:${port}` })
  } finally {
    await stop(baseline)
    await dropDatabase(baseUrl, foremanDb)
    await dropDatabase(baseUrl, baselineDb)
  }
  return {
    foreman: foremanFigures,
    baseline: baselineFigures,
    foremanPeakRssMiB: peak / 1024,
    foremanSampledRssMiB: sampled / 1024,
    foremanIdleRssMiB: idle / 1024
  }
}
