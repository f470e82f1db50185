import { assert, layer } from "@effect/vitest"
import { Effect, Layer, Option, Redacted, Schema } from "effect"
import http from "node:http"
import type { AddressInfo } from "node:net"
import { Webhook as Verifier } from "standardwebhooks"
import { JobId } from "../../src/Domain/Ids.ts"
import { DeliveryId, type WebhookDelivery } from "../../src/Webhooks/Api.ts"
import { getJob } from "../support/engine.ts"
import { assertEnvelope, createQueue, jobRequest, setupProject } from "../support/fixtures.ts"
import { AppConfig } from "../../src/Config/AppConfig.ts"
import { makeApp } from "../../src/Server.ts"
import { clientFor, raw, TestApp, testConfig } from "../support/TestApp.ts"
import { waitFor } from "../support/waitFor.ts"

interface Received {
  readonly path: string
  readonly headers: Record<string, string>
  readonly body: string
  /** Whether `standardwebhooks` verified the signature with the receiver's secret(s). */
  readonly verifiedWith: ReadonlyArray<string>
}

type Answer = (hit: number) => number

/**
 * A local receiver on 127.0.0.1. Each path answers with the status `routes`
 * gives for the n-th request to it, and every request is checked with the
 * `standardwebhooks` package against the secrets registered for its path.
 */
const receiver = (routes: Record<string, Answer>) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{
        readonly server: http.Server
        readonly url: (path: string) => string
        readonly received: Array<Received>
        readonly secrets: Map<string, Array<string>>
      }>((resolve) => {
        const received: Array<Received> = []
        const secrets = new Map<string, Array<string>>()
        const hits = new Map<string, number>()
        const server = http.createServer((request, response) => {
          const chunks: Array<Buffer> = []
          request.on("data", (chunk: Buffer) => chunks.push(chunk))
          request.on("end", () => {
            const path = request.url ?? "/"
            const body = Buffer.concat(chunks).toString("utf8")
            const headers: Record<string, string> = {}
            for (const [name, value] of Object.entries(request.headers)) if (typeof value === "string") headers[name] = value
            const verifiedWith = (secrets.get(path) ?? []).filter((secret) => {
              try {
                new Verifier(secret).verify(body, headers)
                return true
              } catch {
                return false
              }
            })
            received.push({ path, headers, body, verifiedWith })
            const hit = (hits.get(path) ?? 0) + 1
            hits.set(path, hit)
            const answer = routes[path]
            response.writeHead(answer === undefined ? 404 : answer(hit)).end("ok")
          })
        })
        server.listen(0, "127.0.0.1", () => {
          const address: AddressInfo | string | null = server.address()
          const port = typeof address === "object" && address !== null ? address.port : 0
          resolve({ server, url: (path) => `http://127.0.0.1:${port}${path}`, received, secrets })
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

const setup = (name: string) =>
  Effect.gen(function*() {
    const project = yield* setupProject(name)
    yield* createQueue(project.projectId, "work")
    const admin = yield* clientFor(project.tokens.admin)
    const producer = yield* clientFor(project.tokens.producer)
    const enqueue = Effect.map(
      producer.jobs.enqueue({ params: { projectId: project.projectId }, payload: jobRequest("work") }),
      (job) => job.id
    )
    return { ...project, admin, producer, enqueue }
  })

const Body = Schema.Struct({
  type: Schema.String,
  timestamp: Schema.String,
  data: Schema.Struct({ id: Schema.String, job_id: Schema.String })
})
const bodyOf = (received: Received) => Schema.decodeUnknownSync(Schema.fromJsonString(Body))(received.body)

const settled = (delivery: WebhookDelivery | undefined) => delivery !== undefined && ["succeeded", "dead"].includes(delivery.state)

layer(
  TestApp({
    httpAllowCidrs: ["127.0.0.0/8"],
    pollIntervalMs: 100,
    maintenanceIntervalMs: 100,
    eventsPollIntervalMs: 50,
    webhookInitialDelayMs: 100,
    webhookMaxAttempts: 3
  }),
  { timeout: 120_000, excludeTestServices: true }
)("webhooks", (it) => {
  it.effect("a delivery is signed per Standard Webhooks; 500 then 200 succeeds on retry with the same webhook-id; attempts are listed", () =>
    Effect.scoped(Effect.gen(function*() {
      const hooks = yield* receiver({ "/flaky": (hit) => hit === 1 ? 500 : 200 })
      const { projectId, admin, enqueue } = yield* setup("webhooks retry")
      const created = yield* admin.webhooks.create({ params: { projectId }, payload: { url: hooks.url("/flaky") } })
      assert.match(created.secret, /^whsec_[A-Za-z0-9+/]+=*$/)
      hooks.secrets.set("/flaky", [created.secret])
      const fetched = yield* admin.webhooks.get({ params: { projectId, webhookId: created.id } })
      assert.notProperty(fetched, "secret")

      const jobId = yield* enqueue
      const params = { projectId, webhookId: created.id }
      const [delivery] = (yield* waitFor(
        admin.webhooks.deliveries({ params, query: {} }),
        (page) => page.items.some((d) => d.state === "succeeded"),
        { label: "delivery succeeded" }
      )).items
      assert.strictEqual(hooks.received.length, 2)
      const [first, second] = hooks.received
      assert.deepStrictEqual(hooks.received.map((r) => r.verifiedWith.length), [1, 1], "both attempts verify")
      assert.strictEqual(first?.headers["webhook-id"], second?.headers["webhook-id"])
      assert.strictEqual(first?.headers["webhook-id"], delivery?.message_id)
      assert.strictEqual(first?.body, second?.body, "every attempt sends the same body")
      assert.match(first?.headers["webhook-signature"] ?? "", /^v1,[A-Za-z0-9+/]+=*$/)
      assert.strictEqual(first?.headers["content-type"], "application/json")
      if (first !== undefined) {
        const body = bodyOf(first)
        assert.strictEqual(body.type, "enqueued")
        assert.strictEqual(body.data.job_id, jobId)
        assert.isFalse(Number.isNaN(Date.parse(body.timestamp)))
      }
      assert.strictEqual(delivery?.event_type, "enqueued")
      assert.deepStrictEqual(delivery?.attempts.map((a) => [a.attempt, a.status_code, a.succeeded]), [[1, 500, false], [2, 200, true]])
      assert.isTrue(delivery?.attempts.every((a) => a.latency_ms >= 0 && a.latency_ms < 5000))

      // The delivery is a job of the `_webhooks` queue; its own events are never delivered.
      const stranger = yield* setupProject("webhooks stranger")
      assertEnvelope(yield* raw("GET", `/v1/projects/${projectId}/jobs/${delivery?.id}`, { token: stranger.tokens.admin }), 404, "NotFound")
      yield* Effect.sleep("500 millis")
      assert.strictEqual(hooks.received.length, 2, "no deliveries of delivery events")
    })))

  it.effect("redelivery sends the same message again; the delivery job is visible to operators", () =>
    Effect.scoped(Effect.gen(function*() {
      const hooks = yield* receiver({ "/ok": () => 204 })
      const { projectId, admin, tokens, enqueue } = yield* setup("webhooks redeliver")
      const created = yield* admin.webhooks.create({ params: { projectId }, payload: { url: hooks.url("/ok") } })
      hooks.secrets.set("/ok", [created.secret])
      yield* enqueue
      const params = { projectId, webhookId: created.id }
      const page = yield* waitFor(admin.webhooks.deliveries({ params, query: {} }), (p) => settled(p.items[0]), { label: "delivered" })
      const delivery = page.items[0]
      assert.strictEqual(delivery?.state, "succeeded")
      const deliveryId = delivery?.id ?? created.id
      const job = yield* getJob(tokens.viewer, projectId, JobId.make(deliveryId))
      assert.strictEqual(job.queue, "_webhooks")
      assert.strictEqual(job.kind, "webhook")

      const again = yield* admin.webhooks.redeliver({ params: { ...params, deliveryId: DeliveryId.make(deliveryId) } })
      assert.strictEqual(again.id, deliveryId)
      yield* waitFor(Effect.succeed(hooks.received), (r) => r.length === 2, { label: "redelivered" })
      yield* waitFor(admin.webhooks.deliveries({ params, query: {} }), (p) => p.items[0]?.attempts.length === 2, { label: "attempt recorded" })
      assert.strictEqual(hooks.received[0]?.headers["webhook-id"], hooks.received[1]?.headers["webhook-id"])
      assert.strictEqual(hooks.received[1]?.verifiedWith.length, 1)
    })))

  it.effect("a 410 Gone disables the subscription and is not retried; later events are not delivered", () =>
    Effect.scoped(Effect.gen(function*() {
      const hooks = yield* receiver({ "/gone": () => 410 })
      const { projectId, admin, tokens, enqueue } = yield* setup("webhooks gone")
      const created = yield* admin.webhooks.create({ params: { projectId }, payload: { url: hooks.url("/gone") } })
      yield* enqueue
      const params = { projectId, webhookId: created.id }
      const page = yield* waitFor(admin.webhooks.deliveries({ params, query: {} }), (p) => settled(p.items[0]), { label: "dead" })
      const delivery = page.items[0]
      assert.strictEqual(delivery?.state, "dead")
      assert.deepStrictEqual(delivery?.attempts.map((a) => a.status_code), [410])
      const webhook = yield* admin.webhooks.get({ params })
      assert.isFalse(webhook.enabled)
      assert.match(webhook.disabled_reason ?? "", /410/)
      // The dead delivery is in the dead letter of the jobs API.
      const dead = yield* getJob(tokens.viewer, projectId, JobId.make(delivery?.id ?? ""))
      assert.strictEqual(dead.state, "dead")

      yield* enqueue
      yield* Effect.sleep("600 millis")
      assert.strictEqual(hooks.received.length, 1)
      assert.strictEqual((yield* admin.webhooks.deliveries({ params, query: {} })).items.length, 1)
      const refused = yield* raw("POST", `/v1/projects/${projectId}/webhooks/${created.id}/deliveries/${delivery?.id}/redeliver`, {
        token: tokens.admin
      })
      assertEnvelope(refused, 409, "Conflict")
    })))

  it.effect("event_types filters; update and secret rotation apply to later deliveries (old and new secret both verify)", () =>
    Effect.scoped(Effect.gen(function*() {
      const hooks = yield* receiver({ "/only": () => 200 })
      const { projectId, admin, producer, enqueue } = yield* setup("webhooks filter")
      const created = yield* admin.webhooks.create({
        params: { projectId },
        payload: { url: hooks.url("/only"), event_types: ["cancelled"] }
      })
      const kept = yield* enqueue
      const cancelled = yield* enqueue
      yield* producer.jobs.cancel({ params: { projectId, jobId: cancelled } })
      yield* waitFor(Effect.succeed(hooks.received), (r) => r.length >= 1, { label: "cancelled delivered" })
      yield* Effect.sleep("500 millis")
      assert.deepStrictEqual(hooks.received.map((r) => [bodyOf(r).type, bodyOf(r).data.job_id]), [["cancelled", cancelled]])
      assert.notStrictEqual(kept, cancelled)

      const rotated = yield* admin.webhooks.rotateSecret({ params: { projectId, webhookId: created.id } })
      assert.notStrictEqual(rotated.secret, created.secret)
      assert.isNotNull(rotated.previous_secret_expires_at)
      hooks.secrets.set("/only", [created.secret, rotated.secret])
      const updated = yield* admin.webhooks.update({ params: { projectId, webhookId: created.id }, payload: { event_types: ["enqueued"] } })
      assert.deepStrictEqual(updated.event_types, ["enqueued"])
      const fresh = yield* enqueue
      yield* waitFor(Effect.succeed(hooks.received), (r) => r.length >= 2, { label: "enqueued delivered" })
      const last = hooks.received[1]
      assert.strictEqual(last === undefined ? undefined : bodyOf(last).data.job_id, fresh)
      assert.deepStrictEqual(last?.verifiedWith, [created.secret, rotated.secret])

      const removed = yield* admin.webhooks.delete({ params: { projectId, webhookId: created.id } })
      assert.strictEqual(removed.id, created.id)
      assertEnvelope(yield* raw("GET", `/v1/projects/${projectId}/webhooks/${created.id}`, { token: (yield* setupProject("x")).tokens.admin }), 404, "NotFound")
    })))

  it.effect("only admins manage webhooks (403 otherwise); bad URLs and reserved queue names are refused", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setup("webhooks access")
      const body = JSON.stringify({ url: "https://example.com/hook" })
      for (const role of ["producer", "worker", "reviewer", "viewer"] as const) {
        assertEnvelope(yield* raw("POST", `/v1/projects/${projectId}/webhooks`, { token: tokens[role], body }), 403, "Forbidden")
        assertEnvelope(yield* raw("GET", `/v1/projects/${projectId}/webhooks`, { token: tokens[role] }), 403, "Forbidden")
      }
      const bad = yield* raw("POST", `/v1/projects/${projectId}/webhooks`, { token: tokens.admin, body: JSON.stringify({ url: "ftp://x" }) })
      assertEnvelope(bad, 400, "ValidationError")
      const extra = yield* raw("POST", `/v1/projects/${projectId}/webhooks`, {
        token: tokens.admin,
        body: JSON.stringify({ url: "https://example.com/hook", secret: "whsec_mine" })
      })
      assertEnvelope(extra, 400, "ValidationError")
      const reserved = yield* raw("POST", `/v1/projects/${projectId}/queues`, { token: tokens.admin, body: JSON.stringify({ name: "_webhooks" }) })
      assertEnvelope(reserved, 400, "ValidationError")
      const enqueue = yield* raw("POST", `/v1/projects/${projectId}/jobs`, {
        token: tokens.admin,
        body: JSON.stringify({ queue: "_webhooks", kind: "webhook", payload: {} })
      })
      assertEnvelope(enqueue, 400, "ValidationError")
    }))
})

layer(TestApp({ httpAllowCidrs: ["127.0.0.0/8"], eventsPollIntervalMs: 20, eventsBatchSize: 7 }), {
  timeout: 120_000,
  excludeTestServices: true
})("webhooks across instances", (it) => {
  it.effect("two instances on one database dispatch every event exactly once while events commit concurrently", () =>
    Effect.scoped(Effect.gen(function*() {
      const hooks = yield* receiver({ "/a": () => 200, "/b": () => 200 })
      const { projectId, admin, producer } = yield* setup("webhooks two instances")
      const a = yield* admin.webhooks.create({ params: { projectId }, payload: { url: hooks.url("/a"), event_types: ["enqueued"] } })
      const b = yield* admin.webhooks.create({ params: { projectId }, payload: { url: hooks.url("/b"), event_types: ["enqueued"] } })
      hooks.secrets.set("/a", [a.secret])
      hooks.secrets.set("/b", [b.secret])

      // A second instance on the same database, dispatching and delivering too.
      const config = yield* AppConfig
      const url = Option.getOrThrow(config.databaseUrl)
      const memoMap = yield* Layer.makeMemoMap
      const scope = yield* Effect.scope
      yield* Layer.buildWithMemoMap(
        makeApp(testConfig(Redacted.value(url), { httpAllowCidrs: ["127.0.0.0/8"], eventsPollIntervalMs: 20, eventsBatchSize: 7, instanceId: "second" })),
        memoMap,
        scope
      )

      // 20 concurrent requests of 5 jobs: transactions commit in any order.
      const batches = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        () =>
          Effect.map(
            producer.jobs.enqueueBatch({ params: { projectId }, payload: { jobs: Array.from({ length: 5 }, () => jobRequest("work")) } }),
            (created) => created.jobs.map((job) => job.id)
          ),
        { concurrency: 10 }
      )
      const jobIds = batches.flat().sort()
      yield* waitFor(Effect.sync(() => hooks.received.length), (n) => n >= 200, { label: "200 deliveries", timeoutMs: 30_000 })
      yield* Effect.sleep("500 millis")
      assert.strictEqual(hooks.received.length, 200)
      for (const path of ["/a", "/b"]) {
        const seen = hooks.received.filter((r) => r.path === path)
        assert.deepStrictEqual(seen.map((r) => bodyOf(r).data.job_id).sort(), jobIds, `${path} got each job's event once`)
        assert.strictEqual(new Set(seen.map((r) => r.headers["webhook-id"])).size, 100)
        assert.isTrue(seen.every((r) => r.verifiedWith.length === 1))
      }
    })))
})

layer(TestApp({ eventsPollIntervalMs: 50, pollIntervalMs: 100 }), { timeout: 60_000, excludeTestServices: true })(
  "webhooks SSRF guard (loopback refused)",
  (it) => {
    it.effect("a delivery to a refused address is dead at once, without retries, and the job does not name the host", () =>
      Effect.scoped(Effect.gen(function*() {
        const hooks = yield* receiver({ "/internal": () => 200 })
        const { projectId, admin, tokens, enqueue } = yield* setup("webhooks ssrf")
        const created = yield* admin.webhooks.create({
          params: { projectId },
          payload: { url: hooks.url("/internal").replace("127.0.0.1", "localhost") }
        })
        yield* enqueue
        const params = { projectId, webhookId: created.id }
        const page = yield* waitFor(admin.webhooks.deliveries({ params, query: {} }), (p) => settled(p.items[0]), { label: "dead" })
        const delivery = page.items[0]
        assert.strictEqual(delivery?.state, "dead")
        assert.strictEqual(delivery?.attempts.length, 1)
        assert.isNull(delivery?.attempts[0]?.status_code ?? null)
        assert.match(delivery?.attempts[0]?.error ?? "", /refused address/)
        const job = yield* getJob(tokens.viewer, projectId, JobId.make(delivery?.id ?? ""))
        assert.notInclude(JSON.stringify(job.last_error), "localhost")
        assert.strictEqual(hooks.received.length, 0)
        assert.isTrue((yield* admin.webhooks.get({ params })).enabled, "a refused address does not disable the subscription")
      })))
  }
)
