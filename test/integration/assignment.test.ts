import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { JobId, type ProjectId, UserId, WorkerId } from "../../src/Domain/Ids.ts"
import type { EnqueueJob } from "../../src/Jobs/Api.ts"
import { getJob, jobEvents, waitForState } from "../support/engine.ts"
import { assertEnvelope, missingId, queueName, setupProject } from "../support/fixtures.ts"
import { adminToken, clientFor, raw, TestApp } from "../support/TestApp.ts"

const post = (path: string, token: string, body: unknown) => raw("POST", path, { token, body: JSON.stringify(body) })

/** A user with `role` in the project, logged in: returns their id and access token. */
const memberUser = (projectId: ProjectId, role: "worker" | "viewer" | "admin", tag: string) =>
  Effect.gen(function*() {
    const platform = yield* clientFor(adminToken)
    const email = `${tag}-${Math.random().toString(36).slice(2, 10)}@example.com`
    const password = "a long enough password"
    const user = yield* platform.users.create({ payload: { email, password, name: tag } })
    yield* platform.members.add({ params: { projectId }, payload: { user_id: user.id, role } })
    const token = (yield* platform.auth.login({ payload: { email, password } })).access_token
    return { id: user.id, token }
  })

const setup = (name: string) =>
  Effect.gen(function*() {
    const project = yield* setupProject(name)
    const { projectId, tokens } = project
    const admin = yield* clientFor(tokens.admin)
    const queue = yield* admin.queues.create({ params: { projectId }, payload: { name: queueName("assigned") } })
    const producer = yield* clientFor(tokens.producer)
    const workerKey = yield* clientFor(tokens.worker)
    const enqueue = (kind: string, extra: Partial<EnqueueJob> = {}) =>
      producer.jobs.enqueue({ params: { projectId }, payload: { queue: queue.name, kind, payload: {}, ...extra } })
    const register = (workerName: string, kinds: ReadonlyArray<string>, labels: ReadonlyArray<string> = [], token = tokens.worker) =>
      Effect.flatMap(clientFor(token), (client) =>
        client.workers.register({ params: { projectId }, payload: { name: workerName, kinds, labels } }))
    const claimAll = (workerId: WorkerId, token = tokens.worker) =>
      Effect.flatMap(clientFor(token), (client) =>
        Effect.map(client.workers.claim({ params: { projectId, workerId }, payload: { limit: 100 } }), (r) => r.jobs))
    return { ...project, admin, producer, workerKey, queue, enqueue, register, claimAll }
  })

const ids = (jobs: ReadonlyArray<{ readonly id: string }>) => jobs.map((job) => job.id).sort()

layer(
  TestApp({
    handlerModules: ["./test/support/handlers.ts"],
    workerLabels: ["local", "shared"],
    maintenanceIntervalMs: 100,
    pollIntervalMs: 100
  }),
  { timeout: 120_000, excludeTestServices: true }
)("job assignment", (it) => {
  it.effect("enqueue (single and batch) stores the assignment and shows it on the job", () =>
    Effect.gen(function*() {
      const s = yield* setup("assign enqueue")
      const worker = yield* s.register("w", ["human.review"])
      const user = yield* memberUser(s.projectId, "worker", "assignee")
      const toWorker = yield* s.enqueue("human.review", { assign: { worker_id: worker.id } })
      assert.deepStrictEqual(toWorker.assign, { worker_id: worker.id })
      const batch = yield* s.producer.jobs.enqueueBatch({
        params: { projectId: s.projectId },
        payload: {
          jobs: [
            { queue: s.queue.name, kind: "human.review", payload: {}, assign: { label: "gpu" } },
            { queue: s.queue.name, kind: "human.review", payload: {}, assign: { user_id: UserId.make(user.id) } },
            { queue: s.queue.name, kind: "human.review", payload: {} }
          ]
        }
      })
      assert.deepStrictEqual(batch.jobs.map((job) => job.assign), [{ label: "gpu" }, { user_id: user.id }, null])
      const stored = yield* getJob(s.tokens.viewer, s.projectId, toWorker.id)
      assert.deepStrictEqual(stored.assign, { worker_id: worker.id })
    }))

  it.effect("enqueue refuses assignments nobody could claim, and malformed ones", () =>
    Effect.gen(function*() {
      const s = yield* setup("assign refused")
      const other = yield* setup("assign refused other")
      const foreign = yield* other.register("foreign", ["x"])
      const viewer = yield* memberUser(s.projectId, "viewer", "viewer")
      const path = `/v1/projects/${s.projectId}/jobs`
      const body = (assign: unknown) => ({ queue: "assigned", kind: "x", payload: {}, assign })
      assertEnvelope(yield* post(path, s.tokens.producer, body({ worker_id: missingId })), 422, "Unprocessable")
      assertEnvelope(yield* post(path, s.tokens.producer, body({ worker_id: foreign.id })), 422, "Unprocessable")
      // A viewer cannot work jobs, so a task assigned to them could never be done.
      assertEnvelope(yield* post(path, s.tokens.producer, body({ user_id: viewer.id })), 422, "Unprocessable")
      assertEnvelope(yield* post(path, s.tokens.producer, body({ user_id: missingId })), 422, "Unprocessable")
      assertEnvelope(yield* post(path, s.tokens.producer, body({ label: "a", worker_id: foreign.id })), 400, "ValidationError")
      assertEnvelope(yield* post(path, s.tokens.producer, body({ label: "bad label!" })), 400, "ValidationError")
      const batch = yield* post(`${path}/batch`, s.tokens.producer, {
        jobs: [body({ label: "fine" }), body({ worker_id: missingId })]
      })
      const envelope = assertEnvelope(batch, 422, "Unprocessable")
      assert.match(envelope.message, /^job 1: worker/)
      const listed = yield* s.producer.jobs.list({ params: { projectId: s.projectId }, query: {} })
      assert.deepStrictEqual(listed.items, [], "nothing of a refused batch is written")
    }))

  it.effect("a worker gets unassigned jobs of its kinds plus jobs assigned to it or its labels, never others'", () =>
    Effect.gen(function*() {
      const s = yield* setup("assign routing")
      const a = yield* s.register("a", ["ext.job"], ["gpu"])
      const b = yield* s.register("b", ["ext.job"])
      const user = yield* memberUser(s.projectId, "worker", "routing")
      const toA = yield* s.enqueue("ext.job", { assign: { worker_id: a.id } })
      const toB = yield* s.enqueue("ext.job", { assign: { worker_id: b.id } })
      const toGpu = yield* s.enqueue("ext.job", { assign: { label: "gpu" } })
      const toOther = yield* s.enqueue("ext.job", { assign: { label: "arm" } })
      const toUser = yield* s.enqueue("ext.job", { assign: { user_id: UserId.make(user.id) } })
      const otherKind = yield* s.enqueue("ext.other", { assign: { worker_id: a.id } })
      const free = yield* s.enqueue("ext.job")

      assert.deepStrictEqual(ids(yield* s.claimAll(a.id)), ids([toA, toGpu, free]))
      assert.deepStrictEqual(ids(yield* s.claimAll(b.id)), ids([toB]))
      for (const job of [toOther, toUser, otherKind]) {
        assert.strictEqual((yield* getJob(s.tokens.viewer, s.projectId, job.id)).state, "available")
      }
      const started = (yield* jobEvents(s.tokens.viewer, s.projectId, toA.id)).find((event) => event.type === "started")
      assert.strictEqual(started?.worker_id, a.id, "the start event names the worker")
    }))

  it.effect("the in-process engine runs only unassigned jobs and jobs assigned to itself or its labels", () =>
    Effect.gen(function*() {
      const s = yield* setup("assign engine")
      const external = yield* s.register("ext", ["noop"])
      const platform = yield* clientFor(adminToken)
      const instances = yield* platform.workers.instances({ query: {} })
      const self = instances.items.find((w) => w.kinds.includes("noop"))
      assert.isDefined(self, "the engine instance is registered")
      const engineId = self?.id ?? WorkerId.make(missingId)

      const free = yield* s.enqueue("noop")
      const local = yield* s.enqueue("noop", { assign: { label: "local" } })
      const toEngine = yield* s.enqueue("noop", { assign: { worker_id: engineId } })
      const toExternal = yield* s.enqueue("noop", { assign: { worker_id: external.id } })
      const elsewhere = yield* s.enqueue("noop", { assign: { label: "elsewhere" } })
      for (const job of [free, local]) {
        const done = yield* waitForState(s.tokens.viewer, s.projectId, job.id, "succeeded")
        assert.strictEqual(done.worker_id, engineId, "engine attempts name the instance's worker")
      }
      const ran = yield* waitForState(s.tokens.viewer, s.projectId, toEngine.id, "succeeded")
      assert.strictEqual(ran.worker_id, engineId)
      yield* Effect.sleep("500 millis")
      for (const job of [toExternal, elsewhere]) {
        assert.strictEqual((yield* getJob(s.tokens.viewer, s.projectId, job.id)).state, "available", "never run by the engine")
      }
      assert.deepStrictEqual(ids(yield* s.claimAll(external.id)), ids([toExternal]))
    }))

  it.effect("human tasks: only the assigned user sees, claims and completes them", () =>
    Effect.gen(function*() {
      const s = yield* setup("human tasks")
      const alice = yield* memberUser(s.projectId, "worker", "alice")
      const bob = yield* memberUser(s.projectId, "worker", "bob")
      const aliceClient = yield* clientFor(alice.token)
      const task = yield* s.enqueue("human.label", { assign: { user_id: UserId.make(alice.id) } })
      const bobTask = yield* s.enqueue("human.label", { assign: { user_id: UserId.make(bob.id) } })

      const listed = yield* aliceClient.workers.tasks({ params: { projectId: s.projectId }, query: {} })
      assert.deepStrictEqual(listed.items.map((job) => job.id), [task.id])
      const keyTasks = yield* s.workerKey.workers.tasks({ params: { projectId: s.projectId }, query: {} })
      assert.deepStrictEqual(keyTasks.items, [], "API keys have no tasks")

      // Alice's worker record is bound to her.
      const desk = yield* s.register("alice's desk", ["human.label"], [], alice.token)
      assert.strictEqual(desk.user_id, alice.id)
      const bobDesk = yield* s.register("bob's desk", ["human.label"], [], bob.token)
      const machine = yield* s.register("machine", ["human.label"])

      assert.deepStrictEqual(yield* s.claimAll(machine.id), [], "a machine worker never gets a human task")
      assert.deepStrictEqual(ids(yield* s.claimAll(bobDesk.id, bob.token)), [bobTask.id], "bob gets only his own")
      // Nobody else claims through Alice's record.
      const stolen = yield* post(`/v1/projects/${s.projectId}/workers/${desk.id}/claim`, bob.token, {})
      assertEnvelope(stolen, 403, "Forbidden")
      assertEnvelope(yield* post(`/v1/projects/${s.projectId}/workers/${desk.id}/claim`, s.tokens.worker, {}), 403, "Forbidden")

      const [claimed] = yield* s.claimAll(desk.id, alice.token)
      assert.strictEqual(claimed?.id, task.id)
      const done = yield* aliceClient.workers.complete({
        params: { projectId: s.projectId, jobId: task.id },
        payload: { lease_token: claimed?.lease_token ?? "", result: { label: "cat" } }
      })
      assert.strictEqual(done.state, "succeeded")
      assert.strictEqual(done.worker_id, desk.id)
      const pending = yield* aliceClient.workers.tasks({ params: { projectId: s.projectId }, query: { state: "available" } })
      assert.deepStrictEqual(pending.items, [])
    }))

  it.effect("reassigning is an audited operator action, refused for running and finished jobs", () =>
    Effect.gen(function*() {
      const s = yield* setup("reassign")
      const a = yield* s.register("a", ["ext.job"])
      const b = yield* s.register("b", ["ext.job"])
      const job = yield* s.enqueue("ext.job", { assign: { worker_id: a.id } })
      const path = (jobId: JobId) => `/v1/projects/${s.projectId}/jobs/${jobId}/assign`

      assertEnvelope(yield* post(path(job.id), s.tokens.producer, { assign: { worker_id: b.id } }), 403, "Forbidden")
      assertEnvelope(yield* post(path(job.id), s.tokens.worker, { assign: { worker_id: b.id } }), 403, "Forbidden")
      assertEnvelope(yield* post(path(job.id), s.tokens.admin, { assign: { worker_id: missingId } }), 422, "Unprocessable")
      assertEnvelope(yield* post(path(JobId.make(missingId)), s.tokens.admin, { assign: null }), 404, "NotFound")
      assertEnvelope(yield* post(path(job.id), s.tokens.admin, { assign: { worker_id: b.id }, extra: 1 }), 400, "ValidationError")

      const moved = yield* s.admin.workers.assign({ params: { projectId: s.projectId, jobId: job.id }, payload: { assign: { worker_id: b.id } } })
      assert.deepStrictEqual(moved.assign, { worker_id: b.id })
      assert.deepStrictEqual(yield* s.claimAll(a.id), [], "no longer A's")
      const [claimed] = yield* s.claimAll(b.id)
      assert.strictEqual(claimed?.id, job.id)

      const running = assertEnvelope(yield* post(path(job.id), s.tokens.admin, { assign: null }), 409, "Conflict")
      assert.match(running.message, /running/)
      yield* s.workerKey.workers.complete({ params: { projectId: s.projectId, jobId: job.id }, payload: { lease_token: claimed?.lease_token ?? "" } })
      assertEnvelope(yield* post(path(job.id), s.tokens.admin, { assign: null }), 409, "Conflict")

      const assigned = (yield* jobEvents(s.tokens.viewer, s.projectId, job.id)).filter((event) => event.type === "assigned")
      assert.strictEqual(assigned.length, 1)
      assert.deepStrictEqual(assigned[0]?.data, { assign: { worker_id: b.id }, previous: { worker_id: a.id } })
      const audit = yield* s.admin.audit.list({ params: { projectId: s.projectId }, query: { limit: 200 } })
      const entry = audit.items.find((item) => item.action === "job.assigned")
      assert.strictEqual(entry?.target_id, job.id)

      // Unassigning hands the job to any worker of its kind.
      const free = yield* s.enqueue("ext.job", { assign: { label: "nobody" } })
      const unassigned = yield* s.admin.workers.assign({ params: { projectId: s.projectId, jobId: free.id }, payload: { assign: null } })
      assert.isNull(unassigned.assign)
      assert.deepStrictEqual(ids(yield* s.claimAll(a.id)), [free.id])
    }))
})
