import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import http from "node:http"
import type { AddressInfo } from "node:net"
import type { EnqueueJob } from "../../src/Jobs/Api.ts"
import type { CreateQueue } from "../../src/Queues/Api.ts"
import { errorMessage, field, jobEvents, retryAtOf, waitForState } from "../support/engine.ts"
import { queueName, setupProject } from "../support/fixtures.ts"
import { clientFor, TestApp } from "../support/TestApp.ts"

interface Seen {
  readonly method: string
  readonly path: string
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

type Route = (request: http.IncomingMessage, response: http.ServerResponse, hit: number) => void

/**
 * A local HTTP server on 127.0.0.1 with an ephemeral port, closed with the
 * test's scope. Every request is recorded; `routes` answers by path, and the
 * `hit` argument counts requests to that path (1 for the first).
 */
const localServer = (routes: Record<string, Route>) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ readonly server: http.Server; readonly port: number; readonly seen: Array<Seen> }>((resolve) => {
        const seen: Array<Seen> = []
        const hits = new Map<string, number>()
        const server = http.createServer((request, response) => {
          const chunks: Array<Buffer> = []
          request.on("data", (chunk: Buffer) => chunks.push(chunk))
          request.on("end", () => {
            const path = request.url ?? "/"
            seen.push({ method: request.method ?? "", path, headers: request.headers, body: Buffer.concat(chunks).toString("utf8") })
            const hit = (hits.get(path) ?? 0) + 1
            hits.set(path, hit)
            response.on("error", () => {}) // the client may hang up on purpose (oversized bodies)
            const route = routes[path]
            if (route === undefined) {
              response.writeHead(418).end("no such route")
              return
            }
            route(request, response, hit)
          })
        })
        server.listen(0, "127.0.0.1", () => {
          const address: AddressInfo | string | null = server.address()
          resolve({ server, port: typeof address === "object" && address !== null ? address.port : 0, seen })
        })
      })
    ),
    ({ server }) =>
      Effect.promise(() =>
        new Promise<void>((resolve) => {
          server.closeAllConnections()
          server.close(() => resolve())
        })
      )
  )

/** A project with one queue for `http` jobs. */
const setup = (name: string, queue: Omit<CreateQueue, "name"> = {}) =>
  Effect.gen(function*() {
    const project = yield* setupProject(name)
    const admin = yield* clientFor(project.tokens.admin)
    const created = yield* admin.queues.create({
      params: { projectId: project.projectId },
      payload: { name: queueName("hooks"), retry_policy: { initial_delay_ms: 100, factor: 2, jitter: 0, max_attempts: 3 }, ...queue }
    })
    const producer = yield* clientFor(project.tokens.producer)
    const enqueue = (payload: EnqueueJob["payload"], extra: Partial<EnqueueJob> = {}) =>
      producer.jobs.enqueue({ params: { projectId: project.projectId }, payload: { queue: created.name, kind: "http", payload, ...extra } })
    return { ...project, enqueue }
  })

const engine = {
  pollIntervalMs: 100,
  maintenanceIntervalMs: 100,
  leaseMs: 2000
}

layer(TestApp({ ...engine, httpAllowCidrs: ["127.0.0.0/8"] }), { timeout: 120_000, excludeTestServices: true })(
  "http kind (loopback allowed)",
  (it) => {
    it.effect("200: succeeded with the status and the body truncated to 4096 characters; method, headers and body are sent", () =>
      Effect.scoped(Effect.gen(function*() {
        const { port, seen } = yield* localServer({
          "/ok": (_request, response) => response.writeHead(200, { "content-type": "text/plain" }).end("x".repeat(10_000))
        })
        const { projectId, tokens, enqueue } = yield* setup("http ok")
        const job = yield* enqueue({
          url: `http://127.0.0.1:${port}/ok`,
          method: "POST",
          headers: { "x-signature": "abc123" },
          body: { event: "order.created", id: 7 }
        })
        const done = yield* waitForState(tokens.viewer, projectId, job.id, "succeeded")
        assert.strictEqual(done.attempt, 1)
        assert.strictEqual(field(done.result, "status"), 200)
        assert.strictEqual(field(done.result, "body"), "x".repeat(4096))

        assert.strictEqual(seen.length, 1)
        const request = seen[0]
        assert.strictEqual(request?.method, "POST")
        assert.strictEqual(request?.path, "/ok")
        assert.strictEqual(request?.headers["x-signature"], "abc123")
        assert.strictEqual(request?.headers["content-type"], "application/json")
        assert.deepStrictEqual(JSON.parse(request?.body ?? "null"), { event: "order.created", id: 7 })
      })))

    it.effect("traceparent: the outbound request carries a client span of the attempt's trace (a payload traceparent is replaced)", () =>
      Effect.scoped(Effect.gen(function*() {
        const { port, seen } = yield* localServer({ "/traced": (_request, response) => response.writeHead(204).end() })
        const { projectId, tokens, enqueue } = yield* setup("http traced")
        const stale = "00-11111111111111111111111111111111-2222222222222222-01"
        const job = yield* enqueue({ url: `http://127.0.0.1:${port}/traced`, headers: { TraceParent: stale } })
        yield* waitForState(tokens.viewer, projectId, job.id, "succeeded")
        // The attempt's own context is on its `succeeded` event.
        const succeeded = (yield* jobEvents(tokens.viewer, projectId, job.id)).find((event) => event.type === "succeeded")
        const attempt = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/.exec(String(field(succeeded?.data, "traceparent")))
        if (attempt === null) return assert.fail("no attempt traceparent on the succeeded event")

        assert.strictEqual(seen.length, 1)
        const header = seen[0]?.headers.traceparent
        const sent = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/.exec(typeof header === "string" ? header : "")
        if (sent === null) return assert.fail(`no W3C traceparent header: ${String(header)}`)
        assert.strictEqual(sent[1], attempt[1], "same trace as the attempt")
        assert.notStrictEqual(sent[2], attempt[2], "the client span's id, not the attempt span's")
        assert.notInclude(JSON.stringify(seen[0]?.headers), stale)
      })))

    it.effect("500 then 200: the 500 is retried with backoff, then the job succeeds", () =>
      Effect.scoped(Effect.gen(function*() {
        const { port, seen } = yield* localServer({
          "/flaky": (_request, response, hit) =>
            hit === 1 ? response.writeHead(500).end("boom") : response.writeHead(200).end("recovered")
        })
        const { projectId, tokens, enqueue } = yield* setup("http 500")
        const job = yield* enqueue({ url: `http://127.0.0.1:${port}/flaky` })
        const done = yield* waitForState(tokens.viewer, projectId, job.id, "succeeded")
        assert.strictEqual(done.attempt, 2)
        assert.deepStrictEqual(done.result, { status: 200, body: "recovered" })
        assert.strictEqual(seen.length, 2)

        const failed = (yield* jobEvents(tokens.viewer, projectId, job.id)).filter((e) => e.type === "failed")
        assert.strictEqual(failed.length, 1)
        const failure = failed[0]
        assert.deepStrictEqual(failure?.error, { message: "HTTP 500", retryable: true, details: { status: 500, body: "boom" } })
        if (failure !== undefined) assert.closeTo(retryAtOf(failure) - failure.at.getTime(), 100, 5)
      })))

    it.effect("429 with Retry-After: 1 delays the next attempt by one second instead of the policy's 100 ms", () =>
      Effect.scoped(Effect.gen(function*() {
        const { port, seen } = yield* localServer({
          "/limited": (_request, response, hit) =>
            hit === 1 ? response.writeHead(429, { "retry-after": "1" }).end("slow down") : response.writeHead(200).end("ok")
        })
        const { projectId, tokens, enqueue } = yield* setup("http 429")
        const job = yield* enqueue({ url: `http://127.0.0.1:${port}/limited` })
        const done = yield* waitForState(tokens.viewer, projectId, job.id, "succeeded", 5000)
        assert.strictEqual(done.attempt, 2)
        assert.strictEqual(seen.length, 2)

        const events = yield* jobEvents(tokens.viewer, projectId, job.id)
        const failure = events.find((e) => e.type === "failed")
        const retried = events.filter((e) => e.type === "started")[1]
        assert.isDefined(failure)
        assert.isDefined(retried)
        if (failure !== undefined && retried !== undefined) {
          assert.strictEqual(errorMessage(failure.error), "HTTP 429")
          assert.closeTo(retryAtOf(failure) - failure.at.getTime(), 1000, 5)
          assert.isAtLeast(retried.at.getTime() - failure.at.getTime(), 1000, "the second attempt waited for Retry-After")
        }
      })))

    it.effect("404 is not retried: dead after one attempt", () =>
      Effect.scoped(Effect.gen(function*() {
        const { port, seen } = yield* localServer({ "/missing": (_request, response) => response.writeHead(404).end("nope") })
        const { projectId, tokens, enqueue } = yield* setup("http 404")
        const job = yield* enqueue({ url: `http://127.0.0.1:${port}/missing` })
        const dead = yield* waitForState(tokens.viewer, projectId, job.id, "dead")
        assert.strictEqual(dead.attempt, 1)
        assert.deepStrictEqual(dead.last_error, { message: "HTTP 404", retryable: false, details: { status: 404, body: "nope" } })
        assert.strictEqual(seen.length, 1)
      })))

    it.effect("a 302 redirect is not followed: the job is dead and the target never requested", () =>
      Effect.scoped(Effect.gen(function*() {
        const { port, seen } = yield* localServer({
          "/redirect": (_request, response) => response.writeHead(302, { location: "/target" }).end(),
          "/target": (_request, response) => response.writeHead(200).end("should not be reached")
        })
        const { projectId, tokens, enqueue } = yield* setup("http 302")
        const job = yield* enqueue({ url: `http://127.0.0.1:${port}/redirect` })
        const dead = yield* waitForState(tokens.viewer, projectId, job.id, "dead")
        assert.strictEqual(dead.attempt, 1)
        assert.strictEqual(errorMessage(dead.last_error), "HTTP 302")
        assert.deepStrictEqual(seen.map((s) => s.path), ["/redirect"])
      })))

    it.effect("a response larger than 1 MiB fails the attempt", () =>
      Effect.scoped(Effect.gen(function*() {
        const { port } = yield* localServer({
          "/huge": (_request, response) => {
            response.writeHead(200, { "content-type": "application/octet-stream" })
            const chunk = Buffer.alloc(64 * 1024, 97)
            let sent = 0
            const write = () => {
              while (sent < 2 * 1024 * 1024) {
                sent += chunk.length
                if (!response.write(chunk)) return void response.once("drain", write)
              }
              response.end()
            }
            write()
          }
        })
        const { projectId, tokens, enqueue } = yield* setup("http huge", { retry_policy: { max_attempts: 1 } })
        const job = yield* enqueue({ url: `http://127.0.0.1:${port}/huge` })
        const dead = yield* waitForState(tokens.viewer, projectId, job.id, "dead")
        assert.match(errorMessage(dead.last_error), /larger than 1048576 bytes/)
        assert.isNull(dead.result)
      })))

    it.effect("NUL bytes in a response body are stored as U+FFFD, and the engine keeps recording outcomes", () =>
      Effect.scoped(Effect.gen(function*() {
        const { port } = yield* localServer({
          "/nul-ok": (_request, response) => response.writeHead(200).end("ok\u0000body"),
          "/nul-error": (_request, response, hit) =>
            hit === 1 ? response.writeHead(500).end("bad\u0000body") : response.writeHead(200).end("fine"),
          "/plain": (_request, response) => response.writeHead(200).end("plain")
        })
        const { projectId, tokens, enqueue } = yield* setup("http nul")
        const ok = yield* enqueue({ url: `http://127.0.0.1:${port}/nul-ok` })
        const failing = yield* enqueue({ url: `http://127.0.0.1:${port}/nul-error` })
        const done = yield* waitForState(tokens.viewer, projectId, ok.id, "succeeded", 3000)
        assert.deepStrictEqual(done.result, { status: 200, body: "ok\uFFFDbody" })
        const recovered = yield* waitForState(tokens.viewer, projectId, failing.id, "succeeded", 3000)
        assert.strictEqual(recovered.attempt, 2)
        const failure = (yield* jobEvents(tokens.viewer, projectId, failing.id)).find((e) => e.type === "failed")
        assert.deepStrictEqual(failure?.error, { message: "HTTP 500", retryable: true, details: { status: 500, body: "bad\uFFFDbody" } })
        // Later jobs are still recorded by the attempt itself, not left to the reaper.
        const later = yield* enqueue({ url: `http://127.0.0.1:${port}/plain` })
        const laterDone = yield* waitForState(tokens.viewer, projectId, later.id, "succeeded", 1500)
        assert.strictEqual(laterDone.attempt, 1)
      })))

    it.effect("a body cut through a surrogate pair at the 4096-character limit is still stored", () =>
      Effect.scoped(Effect.gen(function*() {
        // The emoji's two UTF-16 halves sit at positions 4095 and 4096: the cut keeps only the first.
        const { port } = yield* localServer({
          "/emoji": (_request, response) => response.writeHead(200).end(`${"x".repeat(4095)}😀 and more`)
        })
        const { projectId, tokens, enqueue } = yield* setup("http surrogate")
        const job = yield* enqueue({ url: `http://127.0.0.1:${port}/emoji` })
        const done = yield* waitForState(tokens.viewer, projectId, job.id, "succeeded", 3000)
        assert.strictEqual(done.attempt, 1)
        assert.strictEqual(field(done.result, "body"), `${"x".repeat(4095)}\uFFFD`)
      })))

    it.effect("non-http URLs and malformed payloads are dead without a request", () =>
      Effect.scoped(Effect.gen(function*() {
        const { projectId, tokens, enqueue } = yield* setup("http schemes")
        const file = yield* enqueue({ url: "file:///etc/passwd" })
        const ftp = yield* enqueue({ url: "ftp://127.0.0.1/" })
        const noUrl = yield* enqueue({ method: "GET" })
        const garbage = yield* enqueue({ url: "not a url" })
        for (const [job, pattern] of [[file, /only http and https/], [ftp, /only http and https/], [noUrl, /invalid http job payload/], [garbage, /invalid url/]] as const) {
          const dead = yield* waitForState(tokens.viewer, projectId, job.id, "dead")
          assert.strictEqual(dead.attempt, 1)
          assert.match(errorMessage(dead.last_error), pattern)
          assert.isNull(dead.result)
        }
      })))

    it.effect("a refused connection is a retryable failure", () =>
      Effect.scoped(Effect.gen(function*() {
        // A port that was just free: nothing listens on it.
        const closedPort = yield* Effect.scoped(Effect.map(localServer({}), ({ port }) => port))
        const { projectId, tokens, enqueue } = yield* setup("http refused", { retry_policy: { max_attempts: 2, initial_delay_ms: 50 } })
        const job = yield* enqueue({ url: `http://127.0.0.1:${closedPort}/` })
        const dead = yield* waitForState(tokens.viewer, projectId, job.id, "dead")
        assert.strictEqual(dead.attempt, 2, "retried once")
        assert.match(errorMessage(dead.last_error), /request failed/)
      })))
  }
)

layer(TestApp(engine), { timeout: 120_000, excludeTestServices: true })("http kind (default config: SSRF guard)", (it) => {
  it.effect("private, loopback and metadata addresses are refused without a request, in every spelling", () =>
    Effect.scoped(Effect.gen(function*() {
      const { port, seen } = yield* localServer({ "/": (_request, response) => response.writeHead(200).end("leaked") })
      const { projectId, tokens, enqueue } = yield* setup("ssrf")
      const urls = [
        `http://127.0.0.1:${port}/`,
        "http://169.254.169.254/latest/meta-data/",
        `http://localhost:${port}/`,
        `http://[::ffff:127.0.0.1]:${port}/`,
        `http://2130706433:${port}/`,
        `http://0x7f.1:${port}/`,
        `http://[::1]:${port}/`,
        `http://0.0.0.0:${port}/`
      ]
      const jobs = []
      for (const url of urls) jobs.push({ url, job: yield* enqueue({ url }) })
      for (const { job, url } of jobs) {
        const dead = yield* waitForState(tokens.viewer, projectId, job.id, "dead")
        assert.strictEqual(dead.attempt, 1, `${url}: refused for good, not retried`)
        assert.match(errorMessage(dead.last_error), /refused address/, url)
        assert.isFalse(field(dead.last_error, "retryable") === true, url)
      }
      assert.deepStrictEqual(seen, [], "the local server received nothing")
    })))
})
