/**
 * The real service as child processes (`node src/main.ts`, or what `nodeArgs`
 * says, e.g. the bundle), for tests that kill, signal and restart it. Every
 * process started here is remembered and killed by `killAll` (call it from
 * `afterAll`/`finally`), so none outlives its test file.
 */
import { Effect, Schema } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest } from "effect/http"
import { HttpApiClient } from "effect/http-api"
import { type ChildProcess, spawn } from "node:child_process"
import { get } from "node:http"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { Pool } from "pg"
import { Api } from "../../src/Http/Api.ts"
import { identityEnv } from "./identity.ts"
import { freePort } from "./freePort.ts"
import { createTestDatabase } from "./TestApp.ts"
import { afterAll } from "vitest"

export { freePort }

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
export const handlersModule = path.join(root, "test/support/handlers.ts")


export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** What one GET saw: a refused connection, an HTTP status, no answer in time, or another socket error. */
export type Probe =
  | { readonly kind: "refused" }
  | { readonly kind: "status"; readonly status: number }
  | { readonly kind: "timeout" }
  | { readonly kind: "error"; readonly message: string }

const errorCode = (error: Error): unknown => ("code" in error ? error.code : undefined)

/** One GET on a fresh connection (no keep-alive), abandoned after `timeoutMs`. */
export const probe = (port: number, urlPath: string, timeoutMs = 2000) =>
  new Promise<Probe>((resolve) => {
    const request = get({ host: "127.0.0.1", port, path: urlPath, agent: false }, (response) => {
      response.resume()
      response.on("end", () => resolve({ kind: "status", status: response.statusCode ?? 0 }))
      response.on("error", (error) => resolve({ kind: "error", message: error.message }))
    })
    const timer = setTimeout(() => {
      resolve({ kind: "timeout" })
      request.destroy()
    }, timeoutMs)
    request.on("close", () => clearTimeout(timer))
    request.on("error", (error) => {
      clearTimeout(timer)
      const code = errorCode(error)
      resolve(code === "ECONNREFUSED" ? { kind: "refused" } : { kind: "error", message: `${String(code)} ${error.message}` })
    })
  })

export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface Service {
  readonly name: string
  readonly port: number
  readonly baseUrl: string
  readonly child: ChildProcess
  /** Everything the process wrote to stdout and stderr so far (the last 200 kB). */
  readonly output: () => string
  readonly kill: (signal: NodeJS.Signals) => void
  readonly exited: Promise<Exited>
  /** The exit code, `null` when it died of a signal. */
  readonly exitCode: Promise<number | null>
  readonly running: () => boolean
}

export interface StartOptions {
  readonly databaseUrl: string
  readonly port?: number
  /** Added to (and overriding) the defaults below and the test's own environment. */
  readonly env?: Readonly<Record<string, string>>
  /** For messages; defaults to FOREMAN_INSTANCE_ID or the port. */
  readonly name?: string
  readonly readyTimeoutMs?: number
  /** The `node` arguments, flags and script; defaults to `["src/main.ts"]`. */
  readonly nodeArgs?: ReadonlyArray<string>
}

const started = new Set<Service>()

const outputLimit = 200_000

/** Spawns the service and resolves once `GET /readyz` answers 200 (polled every 50 ms). */
export const startService = async (options: StartOptions): Promise<Service> => {
  const port = options.port ?? (await freePort())
  const env: Record<string, string | undefined> = {
    ...process.env,
    PORT: String(port),
    HOST: "127.0.0.1",
    DATABASE_URL: options.databaseUrl,
    FOREMAN_DB_POOL_SIZE: "4",
    FOREMAN_HANDLERS: handlersModule,
    FOREMAN_TEST_SIDE_EFFECTS_URL: options.databaseUrl,
    ...identityEnv,
    ...options.env
  }
  const name = options.name ?? env.FOREMAN_INSTANCE_ID ?? `port-${port}`
  const child = spawn(process.execPath, [...(options.nodeArgs ?? ["src/main.ts"])], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-outputLimit)
  }
  child.stdout?.on("data", collect)
  child.stderr?.on("data", collect)
  const exited = new Promise<Exited>((resolve) => {
    child.once("exit", (code, signal) => resolve({ code, signal }))
  })
  const running = () => child.exitCode === null && child.signalCode === null
  const service: Service = {
    name,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    child,
    output: () => output,
    kill: (signal) => {
      if (running()) child.kill(signal)
    },
    exited,
    exitCode: exited.then((exit) => exit.code),
    running
  }
  started.add(service)

  const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000)
  while (Date.now() < deadline) {
    if (!running()) {
      const exit = await exited
      throw new Error(`${name} exited before it was ready (${JSON.stringify(exit)})\n${output.slice(-5000)}`)
    }
    const answer = await probe(port, "/readyz", 1000)
    if (answer.kind === "status" && answer.status === 200) return service
    await delay(50)
  }
  await stopNow(service)
  throw new Error(`${name} was not ready within ${options.readyTimeoutMs ?? 30_000} ms\n${output.slice(-5000)}`)
}

/** SIGKILL, and wait for the exit. */
export const stopNow = async (service: Service) => {
  service.kill("SIGKILL")
  await service.exited
  started.delete(service)
}

/** Kills every process started here that is still running. */
export const killAll = async () => {
  await Promise.all([...started].map(stopNow))
}

/** The exit, or `"timeout"` when the process is still running after `withinMs`. */
export const exitWithin = (service: Service, withinMs: number) => {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), withinMs)
  })
  return Promise.race([service.exited, timeout]).finally(() => clearTimeout(timer))
}

/** Output of every process, for assertion messages. */
export const outputs = (services: ReadonlyArray<Service>, tail = 4000) =>
  services.map((service) => `--- ${service.name} ---\n${service.output().slice(-tail)}`).join("\n")

/** Runs `f` with the typed API client of `service`, authenticated with `token`. */
export const withClient = <A, E>(
  service: Service,
  token: string,
  f: (client: HttpApiClient.ForApi<typeof Api>) => Effect.Effect<A, E>
): Promise<A> =>
  Effect.runPromise(
    HttpApiClient.make(Api, {
      baseUrl: service.baseUrl,
      transformClient: (client) => HttpClient.mapRequest(client, HttpClientRequest.bearerToken(token))
    }).pipe(Effect.flatMap(f), Effect.provide(FetchHttpClient.layer))
  )

/** Polls `check` every `everyMs` until it returns true; fails with `describe()` after `timeoutMs`. */
export const waitFor = async (
  what: string,
  check: () => Promise<boolean>,
  options: { readonly timeoutMs?: number; readonly everyMs?: number; readonly describe?: () => Promise<string> | string } = {}
) => {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000)
  while (Date.now() < deadline) {
    if (await check()) return
    await delay(options.everyMs ?? 100)
  }
  const detail = options.describe === undefined ? "" : `\n${await options.describe()}`
  throw new Error(`timed out waiting for ${what}${detail}`)
}

/** A small pool on the test database, for setting up and inspecting from the test itself. */
export const openDb = (databaseUrl: string) => {
  const db = new Pool({ connectionString: databaseUrl, max: 2 })
  db.on("error", () => {})
  return db
}

/** Runs `text` and decodes every row with `schema` (so a row that does not match fails the test). */
export const rows = async <S extends Schema.Top & { readonly DecodingServices: never }>(
  db: Pool,
  schema: S,
  text: string,
  params: ReadonlyArray<unknown> = []
): Promise<ReadonlyArray<S["Type"]>> => {
  const result = await db.query(text, [...params])
  return Schema.decodeUnknownSync(Schema.Array(schema))(result.rows)
}

/** The table the `record` handler writes to: one row per execution. */
export const createSideEffectsTable = (db: Pool) =>
  db.query(`CREATE TABLE IF NOT EXISTS side_effects (
    job_id uuid NOT NULL,
    attempt integer NOT NULL,
    instance text,
    at timestamptz NOT NULL
  )`)

/**
 * For a test file that spawns services: returns `freshDatabase()`, which makes a
 * new database with the `side_effects` table, and registers an `afterAll` that
 * kills every spawned service and closes the pools.
 */
export const sideEffectDatabases = () => {
  const pools: Array<Pool> = []
  afterAll(async () => {
    await killAll()
    await Promise.all(pools.map((pool) => pool.end()))
  })
  return async () => {
    const url = await Effect.runPromise(createTestDatabase)
    const db = openDb(url)
    pools.push(db)
    await createSideEffectsTable(db)
    return { url, db }
  }
}
