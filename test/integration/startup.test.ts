import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { identityEnv } from "../support/identity.ts"
import { createTestDatabase } from "../support/TestApp.ts"
import { freePort } from "../support/freePort.ts"
import { type Probe, probe } from "../support/processes.ts"

const root = fileURLToPath(new URL("../..", import.meta.url))
const adminKey = "startup-test-admin-key-0123456789abcdef"

/** What one probe saw: refused, an HTTP status, a hang past its timeout, or some other socket error. */
type Attempt = Probe

interface Service {
  readonly child: ChildProcess
  readonly port: number
  readonly output: () => string
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

/** The real service as a child process (`node src/main.ts`); killed on scope close if still running. */
const startService = (databaseUrl: string) =>
  Effect.acquireRelease(
    Effect.promise(async (): Promise<Service> => {
      const port = await freePort()
      const child = spawn(process.execPath, ["src/main.ts"], {
        cwd: root,
        env: {
          ...process.env,
          PORT: String(port),
          HOST: "127.0.0.1",
          DATABASE_URL: databaseUrl,
          FOREMAN_ADMIN_API_KEY: adminKey,
          ...identityEnv,
          FOREMAN_DB_POOL_SIZE: "4"
        },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      const collect = (chunk: Buffer) => {
        output = (output + chunk.toString("utf8")).slice(-20_000)
      }
      child.stdout?.on("data", collect)
      child.stderr?.on("data", collect)
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
        child.once("exit", (code, signal) => resolve({ code, signal }))
      })
      return { child, port, output: () => output, exited }
    }),
    (service) =>
      Effect.promise(async () => {
        if (service.child.exitCode === null && service.child.signalCode === null) {
          service.child.kill("SIGKILL")
          await service.exited
        }
      })
  )

/**
 * Polls `/healthz` every 20 ms from now until a 200 arrives (or `deadlineMs`
 * passes), each probe with a 2 s timeout, and returns every attempt.
 */
const pollUntilHealthy = (service: Service, deadlineMs = 30_000) =>
  Effect.promise(async () => {
    const attempts: Array<Promise<Attempt>> = []
    const started = Date.now()
    let healthy = false
    while (!healthy && Date.now() - started < deadlineMs && service.child.exitCode === null) {
      const attempt = probe(service.port, "/healthz")
      attempt.then((a) => {
        if (a.kind === "status" && a.status === 200) healthy = true
      })
      attempts.push(attempt)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    return { healthy, attempts: await Promise.all(attempts) }
  })

const stop = (service: Service, withinMs = 15_000) =>
  Effect.promise(async () => {
    service.child.kill("SIGTERM")
    const timeout = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), withinMs).unref())
    return await Promise.race([service.exited, timeout])
  })

const describeAttempts = (attempts: ReadonlyArray<Attempt>) => {
  const counts = new Map<string, number>()
  for (const a of attempts) {
    const key = a.kind === "status" ? `HTTP ${a.status}` : a.kind === "error" ? `error: ${a.message}` : a.kind
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return JSON.stringify(Object.fromEntries(counts))
}

const call = (port: number, method: string, path: string, token: string, body?: unknown) =>
  Effect.promise(async () => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: body === undefined ? null : JSON.stringify(body),
      signal: AbortSignal.timeout(5000)
    })
    const json: unknown = await response.json()
    return { status: response.status, body: json }
  })

const Created = Schema.Struct({ id: Schema.String, name: Schema.String })
const CreatedKey = Schema.Struct({ secret: Schema.String })

describe("startup and shutdown of the real process", () => {
  it.live("a request during startup never hangs; SIGTERM exits 0", () =>
    Effect.scoped(Effect.gen(function*() {
      const databaseUrl = yield* createTestDatabase
      const service = yield* startService(databaseUrl)
      const { attempts, healthy } = yield* pollUntilHealthy(service)
      const summary = describeAttempts(attempts)
      assert.isTrue(healthy, `never became healthy: ${summary}\n${service.output()}`)
      for (const attempt of attempts) {
        const acceptable = attempt.kind === "refused" ||
          (attempt.kind === "status" && (attempt.status === 200 || attempt.status === 503))
        assert.isTrue(acceptable, `unacceptable startup probe ${JSON.stringify(attempt)}; all: ${summary}`)
      }

      // While shutting down nothing hangs either: each probe is refused, answered, or its connection closed.
      const exit = stop(service)
      const during: Array<Attempt> = []
      const probing = Effect.promise(async () => {
        while (service.child.exitCode === null && service.child.signalCode === null) {
          during.push(await probe(service.port, "/healthz"))
          await new Promise((resolve) => setTimeout(resolve, 20))
        }
      })
      const [result] = yield* Effect.all([exit, probing], { concurrency: "unbounded" })
      assert.notStrictEqual(result, "timeout", `did not exit within 15 s of SIGTERM\n${service.output()}`)
      assert.isFalse(during.some((a) => a.kind === "timeout"), `a probe hung during shutdown: ${describeAttempts(during)}`)
      assert.deepStrictEqual(result, { code: 0, signal: null }, `exit after SIGTERM\n${service.output().slice(-2000)}`)
    })), 60_000)

  it.live("a restart on the same database keeps the bootstrap key, keys and projects", () =>
    Effect.scoped(Effect.gen(function*() {
      const databaseUrl = yield* createTestDatabase

      const first = yield* startService(databaseUrl)
      assert.isTrue((yield* pollUntilHealthy(first)).healthy, first.output())
      const created = yield* call(first.port, "POST", "/v1/projects", adminKey, { name: "survives restarts" })
      assert.strictEqual(created.status, 201)
      const project = Schema.decodeUnknownSync(Created)(created.body)
      const keyResponse = yield* call(first.port, "POST", `/v1/projects/${project.id}/api-keys`, adminKey, {
        name: "durable",
        role: "viewer"
      })
      assert.strictEqual(keyResponse.status, 201)
      const projectKey = Schema.decodeUnknownSync(CreatedKey)(keyResponse.body).secret
      const firstExit = yield* stop(first)
      assert.notStrictEqual(firstExit, "timeout")

      const second = yield* startService(databaseUrl)
      assert.isTrue((yield* pollUntilHealthy(second)).healthy, second.output())
      assert.notInclude(second.output(), "first boot", "no second bootstrap key is minted")
      const fetched = yield* call(second.port, "GET", `/v1/projects/${project.id}`, adminKey)
      assert.strictEqual(fetched.status, 200, "the bootstrap key still works")
      assert.deepStrictEqual(Schema.decodeUnknownSync(Created)(fetched.body), project)
      const asViewer = yield* call(second.port, "GET", `/v1/projects/${project.id}`, projectKey)
      assert.strictEqual(asViewer.status, 200, "keys minted in the first run still work")
      const readiness = yield* call(second.port, "GET", "/readyz", adminKey)
      assert.strictEqual(readiness.status, 200, "migrations are not re-applied or reported missing")
      const secondExit = yield* stop(second)
      assert.notStrictEqual(secondExit, "timeout")
    })), 60_000)
})
