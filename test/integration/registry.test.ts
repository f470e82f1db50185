import { assert, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { JobId, newId, type WorkerId } from "../../src/Domain/Ids.ts"
import type { EnqueueJob } from "../../src/Jobs/Api.ts"
import { field, getJob, jobEvents, waitForState } from "../support/engine.ts"
import { assertEnvelope, queueName, setupProject } from "../support/fixtures.ts"
import { adminToken, clientFor, raw, TestApp } from "../support/TestApp.ts"
import { waitFor } from "../support/waitFor.ts"

const post = (path: string, token: string, body: unknown = {}) => raw("POST", path, { token, body: JSON.stringify(body) })
/** This test app's engine instance, the one that runs the `sleep` kind. */
const engineInstance = Effect.gen(function*() {
  const platform = yield* clientFor(adminToken)
  const page = yield* platform.workers.instances({ query: {} })
  const self = page.items.find((w) => w.kinds.includes("sleep"))
  if (self === undefined) return yield* Effect.die(new Error("the engine instance is not registered"))
  return { platform, self }
})

/** Runs `body` with the engine instance disabled, enabling it again whatever happens. */
const whileDisabled = <A, E, R>(body: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const { platform, self } = yield* engineInstance
    yield* platform.workers.disableInstance({ params: { workerId: self.id } })
    return yield* body.pipe(Effect.ensuring(Effect.ignore(platform.workers.enableInstance({ params: { workerId: self.id } }))))
  })

const LeaseLost = Schema.Struct({ _tag: Schema.Literal("LeaseLost"), state: Schema.String })

const setup = (name: string, labels: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    const project = yield* setupProject(name)
    const { projectId, tokens } = project
    const admin = yield* clientFor(tokens.admin)
    const queue = yield* admin.queues.create({ params: { projectId }, payload: { name: queueName("registry") } })
    const producer = yield* clientFor(tokens.producer)
    const workerKey = yield* clientFor(tokens.worker)
    const worker = yield* workerKey.workers.register({
      params: { projectId },
      payload: { name: `${name} worker`, kinds: ["ext.a", "ext.b"], version: "2.3.1", labels }
    })
    const enqueue = (kind: string, extra: Partial<EnqueueJob> = {}) =>
      producer.jobs.enqueue({ params: { projectId }, payload: { queue: queue.name, kind, payload: {}, ...extra } })
    const claim = (limit: number, leaseMs?: number) =>
      Effect.map(
        workerKey.workers.claim({
          params: { projectId, workerId: worker.id },
          payload: leaseMs === undefined ? { limit } : { limit, lease_ms: leaseMs }
        }),
        (r) => r.jobs
      )
    const getWorker = (workerId: WorkerId = worker.id) => admin.workers.get({ params: { projectId, workerId } })
    const jobPath = (jobId: string, action: string) => `/v1/projects/${projectId}/jobs/${jobId}/${action}`
    return { ...project, admin, producer, workerKey, worker, queue, enqueue, claim, getWorker, jobPath }
  })

layer(
  TestApp({
    handlerModules: ["./test/support/handlers.ts"],
    workerLabels: ["local"],
    workerActiveSeconds: 1,
    workerGoneSeconds: 3,
    maintenanceIntervalMs: 100,
    pollIntervalMs: 100,
    leaseMs: 2000
  }),
  { timeout: 120_000, excludeTestServices: true }
)("operator registry", (it) => {
  it.effect("a registered worker shows its name, kinds, version, labels, status, leases, counters and reputation", () =>
    Effect.gen(function*() {
      const s = yield* setup("registry basics", ["gpu", "gpu", "eu"])
      assert.strictEqual(s.worker.version, "2.3.1")
      assert.deepStrictEqual([...s.worker.labels].sort(), ["eu", "gpu"], "labels are de-duplicated")
      assert.strictEqual(s.worker.status, "active")
      assert.strictEqual(s.worker.leases, 0)
      assert.isNull(s.worker.disabled_at)
      assert.isNull(s.worker.user_id, "registered with an API key: bound to no user")
      assert.deepStrictEqual(s.worker.counters, { succeeded: 0, failed: 0, lease_expired: 0, approved: 0, rejected: 0 })
      assert.strictEqual(s.worker.reputation, 0.5)
      const detail = yield* s.getWorker()
      assert.deepStrictEqual(detail.held, [])

      const sql = yield* SqlClient.SqlClient
      const events = yield* sql<{ readonly type: string; readonly job_id: string | null }>`
        SELECT type, job_id::text AS job_id FROM job_events WHERE worker_id = ${s.worker.id} AND project_id = ${s.projectId}`
      assert.deepStrictEqual(events, [{ type: "registered", job_id: null }])
    }))

  it.effect("claims hand out only declared kinds; counters follow complete, fail and lease expiry", () =>
    Effect.gen(function*() {
      const s = yield* setup("registry counters")
      const jobs = yield* Effect.forEach(["ext.a", "ext.b", "ext.a"], (kind) => s.enqueue(kind))
      const undeclared = yield* s.enqueue("ext.c")
      const claimed = yield* s.claim(10, 1000)
      assert.deepStrictEqual(claimed.map((j) => j.id).sort(), jobs.map((j) => j.id).sort())
      assert.strictEqual((yield* getJob(s.tokens.viewer, s.projectId, undeclared.id)).state, "available")

      const holding = yield* s.getWorker()
      assert.strictEqual(holding.leases, 3)
      assert.strictEqual(holding.status, "active")
      assert.deepStrictEqual(holding.held.map((lease) => lease.job_id).sort(), jobs.map((j) => j.id).sort())

      const [first, second, third] = claimed
      if (first === undefined || second === undefined || third === undefined) return assert.fail("three jobs")
      yield* s.workerKey.workers.heartbeat({ params: { projectId: s.projectId, jobId: first.id }, payload: { lease_token: first.lease_token, lease_ms: 20_000 } })
      yield* s.workerKey.workers.heartbeat({ params: { projectId: s.projectId, jobId: second.id }, payload: { lease_token: second.lease_token, lease_ms: 20_000 } })
      yield* s.workerKey.workers.complete({ params: { projectId: s.projectId, jobId: first.id }, payload: { lease_token: first.lease_token } })
      yield* s.workerKey.workers.fail({
        params: { projectId: s.projectId, jobId: second.id },
        payload: { lease_token: second.lease_token, error: { message: "boom" }, retryable: false }
      })
      // The third lease (1 s) is left to expire and be reaped.
      const after = yield* waitFor(s.getWorker(), (w) => w.counters.lease_expired === 1, { timeoutMs: 10_000, label: "lease expiry counted" })
      assert.deepStrictEqual(after.counters, { succeeded: 1, failed: 1, lease_expired: 1, approved: 0, rejected: 0 })
      assert.strictEqual(after.leases, 0)
      assert.approximately(after.reputation, 3 / 7, 1e-9)

      const events = yield* jobEvents(s.tokens.viewer, s.projectId, first.id)
      for (const type of ["started", "succeeded"]) {
        assert.strictEqual(events.find((e) => e.type === type)?.worker_id, s.worker.id, `${type} names the worker`)
      }
      const expired = (yield* jobEvents(s.tokens.viewer, s.projectId, third.id)).find((e) => e.type === "lease_expired")
      assert.strictEqual(expired?.worker_id, s.worker.id, "the reaped attempt names the worker that lost it")
    }))

  it.effect("status is derived from last_seen_at: active, idle, then gone; a claim makes it active again", () =>
    Effect.gen(function*() {
      const s = yield* setup("registry status")
      yield* waitFor(s.getWorker(), (w) => w.status === "idle", { timeoutMs: 5000, label: "idle" })
      yield* waitFor(s.getWorker(), (w) => w.status === "gone", { timeoutMs: 6000, label: "gone" })
      yield* s.claim(1)
      assert.strictEqual((yield* s.getWorker()).status, "active")
      const listed = yield* s.workerKey.workers.list({ params: { projectId: s.projectId }, query: {} })
      assert.deepStrictEqual(listed.items.map((w) => [w.id, w.status]), [[s.worker.id, "active"]])
    }))

  it.effect("disabling refuses claims, releases leases at once, and the worker's calls get LeaseLost; enabling restores it", () =>
    Effect.gen(function*() {
      const s = yield* setup("registry disable")
      const job = yield* s.enqueue("ext.a")
      const [held] = yield* s.claim(1, 60_000)
      assert.strictEqual(held?.id, job.id)
      const workerPath = `/v1/projects/${s.projectId}/workers/${s.worker.id}`

      for (const role of ["producer", "worker", "viewer"] as const) {
        assertEnvelope(yield* post(`${workerPath}/disable`, s.tokens[role]), 403, "Forbidden")
      }
      const disabled = yield* s.admin.workers.disable({ params: { projectId: s.projectId, workerId: s.worker.id } })
      assert.isNotNull(disabled.disabled_at)
      assert.strictEqual(disabled.leases, 0)
      const back = yield* getJob(s.tokens.viewer, s.projectId, job.id)
      assert.strictEqual(back.state, "available", "the job is back in the queue at once")
      assert.strictEqual(back.attempt, 0, "the interrupted attempt is not counted")
      const released = (yield* jobEvents(s.tokens.viewer, s.projectId, job.id)).find((e) => e.type === "released")
      assert.strictEqual(released?.worker_id, s.worker.id)
      assert.deepStrictEqual(released?.data, { reason: "worker_disabled" })

      const token = held?.lease_token ?? ""
      const lost = yield* post(s.jobPath(job.id, "heartbeat"), s.tokens.worker, { lease_token: token })
      assertEnvelope(lost, 409, "LeaseLost")
      assert.strictEqual(Schema.decodeUnknownSync(LeaseLost)(lost.body).state, "available")
      assertEnvelope(yield* post(s.jobPath(job.id, "complete"), s.tokens.worker, { lease_token: token }), 409, "LeaseLost")
      assertEnvelope(yield* post(s.jobPath(job.id, "fail"), s.tokens.worker, { lease_token: token, error: { message: "x" } }), 409, "LeaseLost")
      assertEnvelope(yield* post(`${workerPath}/claim`, s.tokens.worker, { limit: 1 }), 409, "WorkerDisabled")
      assertEnvelope(yield* post(`${workerPath}/claim`, s.tokens.worker, { limit: 1, wait_ms: 500 }), 409, "WorkerDisabled")
      // Disabling twice changes nothing more.
      yield* s.admin.workers.disable({ params: { projectId: s.projectId, workerId: s.worker.id } })

      const enabled = yield* s.admin.workers.enable({ params: { projectId: s.projectId, workerId: s.worker.id } })
      assert.isNull(enabled.disabled_at)
      const [again] = yield* s.claim(1)
      assert.strictEqual(again?.id, job.id)
      assert.strictEqual(again?.attempt, 1)

      const sql = yield* SqlClient.SqlClient
      const events = yield* sql<{ readonly type: string }>`
        SELECT type FROM job_events WHERE worker_id = ${s.worker.id} AND job_id IS NULL ORDER BY id`
      assert.deepStrictEqual(events.map((e) => e.type), ["registered", "disabled", "enabled"])
      const audit = yield* s.admin.audit.list({ params: { projectId: s.projectId }, query: { limit: 200 } })
      const actions = audit.items.filter((e) => e.target_id === s.worker.id).map((e) => e.action)
      assert.deepStrictEqual(actions.sort(), ["worker.disabled", "worker.enabled"])
      assertEnvelope(yield* post(`/v1/projects/${s.projectId}/workers/01a20623-99f0-7045-96c5-2e9f574d7135/disable`, s.tokens.admin), 404, "NotFound")
    }))

  it.effect("engine instances register at startup and count their outcomes; only platform admins list them", () =>
    Effect.gen(function*() {
      const s = yield* setup("registry instances")
      const platform = yield* clientFor(adminToken)
      const job = yield* s.enqueue("noop")
      yield* waitForState(s.tokens.viewer, s.projectId, job.id, "succeeded")
      const page = yield* platform.workers.instances({ query: {} })
      const self = page.items.find((w) => w.kinds.includes("noop"))
      if (self === undefined) return assert.fail("the engine instance is registered")
      assert.isNull(self.project_id)
      assert.match(self.name, /.+-\d+$/, "name is hostname-pid")
      assert.strictEqual(self.version, "0.1.0")
      assert.deepStrictEqual(self.labels, ["local"])
      assert.strictEqual(self.status, "active")
      assert.strictEqual((yield* getJob(s.tokens.viewer, s.projectId, job.id)).worker_id, self.id)
      const counted = yield* waitFor(platform.workers.instances({ query: {} }), (p) =>
        (p.items.find((w) => w.id === self.id)?.counters.succeeded ?? 0) >= 1, { timeoutMs: 5000, label: "engine success counted" })
      assert.isDefined(counted)
      assertEnvelope(yield* raw("GET", "/v1/workers", { token: s.tokens.admin }), 403, "Forbidden")
      const listed = yield* s.admin.workers.list({ params: { projectId: s.projectId }, query: {} })
      assert.deepStrictEqual(listed.items.map((w) => w.id), [s.worker.id], "a project lists only its own workers")
    }))

  it.effect("a platform admin disables an engine instance: it claims nothing and hands its leases back at once; enabling resumes it", () =>
    Effect.gen(function*() {
      const s = yield* setup("registry instance disable")
      const { platform, self } = yield* engineInstance
      assertEnvelope(yield* post(`/v1/workers/${self.id}/disable`, s.tokens.admin), 403, "Forbidden")
      assertEnvelope(yield* post(`/v1/workers/${s.worker.id}/disable`, adminToken), 404, "NotFound")
      const long = yield* s.enqueue("sleep", { payload: { ms: 60_000 } })
      yield* waitForState(s.tokens.viewer, s.projectId, long.id, "running")

      const disabled = yield* platform.workers.disableInstance({ params: { workerId: self.id } })
      const resumed = Effect.gen(function*() {
        assert.isNotNull(disabled.disabled_at)
        assert.strictEqual(disabled.leases, 0)
        const back = yield* getJob(s.tokens.viewer, s.projectId, long.id)
        assert.strictEqual(back.state, "available", "the instance's lease is released at once")
        assert.strictEqual(back.attempt, 0)
        const released = (yield* jobEvents(s.tokens.viewer, s.projectId, long.id)).find((e) => e.type === "released")
        assert.strictEqual(released?.worker_id, self.id)
        assert.deepStrictEqual(released?.data, { reason: "worker_disabled" })
        yield* s.producer.jobs.cancel({ params: { projectId: s.projectId, jobId: long.id } })

        // Ten poll intervals and an enqueue notification later, still nothing claimed.
        const waiting = yield* s.enqueue("noop")
        yield* Effect.sleep("1 second")
        const still = yield* getJob(s.tokens.viewer, s.projectId, waiting.id)
        assert.strictEqual(still.state, "available", "a disabled instance claims nothing")
        assert.isNull(still.worker_id)
        const listed = (yield* platform.workers.instances({ query: {} })).items.find((w) => w.id === self.id)
        assert.isNotNull(listed?.disabled_at)
        // Disabling twice changes nothing more.
        yield* platform.workers.disableInstance({ params: { workerId: self.id } })

        const enabled = yield* platform.workers.enableInstance({ params: { workerId: self.id } })
        assert.isNull(enabled.disabled_at)
        const done = yield* waitForState(s.tokens.viewer, s.projectId, waiting.id, "succeeded")
        assert.strictEqual(done.worker_id, self.id)
        const audit = yield* platform.audit.platform({ query: { limit: 200 } })
        const actions = audit.items.filter((e) => e.target_id === self.id).map((e) => e.action)
        assert.deepStrictEqual(actions.sort(), ["worker.disabled", "worker.enabled"])
        assert.isTrue(audit.items.filter((e) => e.target_id === self.id).every((e) => e.project_id === null))
      })
      yield* resumed.pipe(Effect.ensuring(Effect.ignore(platform.workers.enableInstance({ params: { workerId: self.id } }))))
    }))

  it.effect("external workers never receive jobs of the service's own queues, even declaring their kind; the engine runs them", () =>
    Effect.gen(function*() {
      const s = yield* setup("registry system queues")
      const { self } = yield* engineInstance
      const greedy = yield* s.workerKey.workers.register({
        params: { projectId: s.projectId },
        payload: { name: "greedy worker", kinds: ["webhook", "ext.a"] }
      })
      const sql = yield* SqlClient.SqlClient
      const delivery = newId()
      const foreign = newId()
      const visible = yield* whileDisabled(Effect.gen(function*() {
        // A `_webhooks` queue with a delivery job and a job of a kind only the external worker declares.
        yield* sql`
          INSERT INTO queues (project_id, name, id, paused, max_attempts, backoff_initial_ms, backoff_factor, backoff_max_ms,
                              backoff_jitter, timeout_ms, retention_seconds)
          VALUES (${s.projectId}, '_webhooks', ${newId()}, false, 1, 1000, 2, 60000, 0, 10000, 3600)`
        yield* sql`
          INSERT INTO jobs (id, project_id, queue, kind, payload, priority, state, run_at, max_attempts, timeout_ms)
          VALUES (${delivery}, ${s.projectId}, '_webhooks', 'webhook', jsonb_build_object('delivery_id', ${delivery}::text), 2, 'available', now(), 1, 10000),
                 (${foreign}, ${s.projectId}, '_webhooks', 'ext.a', '{}', 2, 'available', now(), 1, 10000)`
        const visible = yield* s.enqueue("ext.a")
        // The engine is disabled: nothing else competes for these jobs.
        const { jobs } = yield* s.workerKey.workers.claim({
          params: { projectId: s.projectId, workerId: greedy.id },
          payload: { limit: 10 }
        })
        assert.deepStrictEqual(jobs.map((j) => j.id), [visible.id], "only the job of the user's queue")
        for (const id of [delivery, foreign]) {
          assert.strictEqual((yield* getJob(s.tokens.viewer, s.projectId, JobId.make(id))).state, "available")
        }
        return visible
      }))
      assert.strictEqual(visible.queue, s.queue.name)
      // Enabled again, the engine runs the delivery (which finds no delivery row and ends without a request).
      const ran = yield* waitFor(getJob(s.tokens.viewer, s.projectId, JobId.make(delivery)), (job) => job.state !== "available" && job.state !== "running", {
        timeoutMs: 10_000,
        label: "the engine ran the delivery"
      })
      assert.strictEqual(ran.worker_id, self.id)
    }))

  it.effect("disabling an instance while it drains a backlog releases what it holds without deadlocking its completions", () =>
    Effect.gen(function*() {
      const s = yield* setup("registry busy instance")
      const { platform, self } = yield* engineInstance
      const jobs = (yield* Effect.forEach(Array.from({ length: 6 }), () =>
        s.producer.jobs.enqueueBatch({
          params: { projectId: s.projectId },
          payload: { jobs: Array.from({ length: 500 }, () => ({ queue: s.queue.name, kind: "sleep", payload: { ms: 200 } })) }
        }))).flatMap((r) => r.jobs)
      const viewer = yield* clientFor(s.tokens.viewer)
      const succeeded = viewer.jobs.list({ params: { projectId: s.projectId }, query: { state: "succeeded", limit: 1 } })
      yield* waitFor(succeeded, (page) => page.items.length > 0, { timeoutMs: 10_000, label: "draining" })
      const sql = yield* SqlClient.SqlClient
      const deadlocks = sql<{ readonly n: number }>`
        SELECT deadlocks::int AS n FROM pg_stat_database WHERE datname = current_database()`.pipe(Effect.map((rows) => rows[0]?.n ?? 0))
      const before = yield* deadlocks
      let released = 0
      const rounds = Effect.gen(function*() {
        for (let round = 0; round < 5; round++) {
          const disabled = yield* platform.workers.disableInstance({ params: { workerId: self.id } })
          assert.strictEqual(disabled.leases, 0, `round ${round}: every lease released`)
          const [entry] = (yield* platform.audit.platform({ query: { limit: 1 } })).items
          released += Number(field(entry?.details, "released"))
          yield* platform.workers.enableInstance({ params: { workerId: self.id } })
          yield* Effect.sleep("100 millis")
        }
      })
      yield* rounds.pipe(Effect.ensuring(Effect.ignore(platform.workers.enableInstance({ params: { workerId: self.id } }))))
      const last = jobs[jobs.length - 1]
      if (last === undefined) return assert.fail("jobs")
      yield* waitFor(
        viewer.jobs.list({ params: { projectId: s.projectId }, query: { state: "available", limit: 1 } }),
        (page) => page.items.length === 0,
        { timeoutMs: 60_000, label: "backlog drained" }
      )
      assert.isAbove(released, 0, "the instance held leases when it was disabled")
      yield* Effect.sleep("1500 millis")
      assert.strictEqual(yield* deadlocks, before, "no deadlock between the disable and the instance's completions")
    }))
})
