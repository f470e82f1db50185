import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import type { EnqueueJob } from "../../src/Jobs/Api.ts"
import { jobEvents, waitForState } from "../support/engine.ts"
import { queueName, setupProject } from "../support/fixtures.ts"
import { clientFor, TestApp } from "../support/TestApp.ts"

// Eager dispatch (docs/worker-flow.md#eager-dispatch): a single due, unassigned job whose kind this
// instance's idle engine runs is inserted already claimed by it; everything else takes the
// notify-and-claim path.
const instanceId = "eager-test"
const handlerModules = ["./test/support/handlers.ts"]

const setup = (name: string) =>
  Effect.gen(function*() {
    const project = yield* setupProject(name)
    const admin = yield* clientFor(project.tokens.admin)
    yield* admin.queues.create({ params: { projectId: project.projectId }, payload: { name: queueName("work") } })
    const producer = yield* clientFor(project.tokens.producer)
    const enqueue = (kind: string, extra: Partial<EnqueueJob> = {}) =>
      producer.jobs.enqueue({ params: { projectId: project.projectId }, payload: { queue: queueName("work"), kind, payload: {}, ...extra } })
    // Eager dispatch is best effort: an engine that just found a full batch, or is busy claiming,
    // refuses it. Under a loaded test run, try a few times for a moment when it is idle.
    const enqueueEager = (kind: string, extra: (attempt: number) => Partial<EnqueueJob> = () => ({})) =>
      Effect.gen(function*() {
        for (let attempt = 0; attempt < 20; attempt++) {
          const job = yield* enqueue(kind, extra(attempt))
          if (job.state === "running") return job
          yield* Effect.sleep("100 millis")
        }
        return assert.fail("no enqueue was dispatched eagerly in 20 tries")
      })
    return { ...project, admin, producer, enqueue, enqueueEager }
  })

layer(TestApp({ handlerModules, instanceId, pollIntervalMs: 100 }), { timeout: 60_000, excludeTestServices: true })(
  "eager dispatch",
  (it) => {
    it.effect("a job for the idle engine is returned running under its lease, and its history is enqueued, started, succeeded", () =>
      Effect.gen(function*() {
        const { projectId, tokens, enqueueEager } = yield* setup("eager")
        const job = yield* enqueueEager("noop")
        assert.strictEqual(job.attempt, 1)
        assert.isNotNull(job.worker_id)
        assert.isNotNull(job.started_at)
        assert.isNotNull(job.lease_expires_at)
        const done = yield* waitForState(tokens.viewer, projectId, job.id, "succeeded")
        assert.strictEqual(done.attempt, 1)
        assert.deepStrictEqual(done.result, { ok: true })
        const events = yield* jobEvents(tokens.viewer, projectId, job.id)
        assert.deepStrictEqual(
          events.map(({ actor, attempt, from_state, to_state, type }) => ({ type, from_state, to_state, attempt, actor })),
          [
            { type: "enqueued", from_state: null, to_state: "available", attempt: 0, actor: events[0]?.actor ?? "" },
            { type: "started", from_state: "available", to_state: "running", attempt: 1, actor: `instance:${instanceId}` },
            { type: "succeeded", from_state: "running", to_state: "succeeded", attempt: 1, actor: `instance:${instanceId}` }
          ]
        )
        assert.strictEqual(events[1]?.worker_id, job.worker_id)
      }))

    it.effect("an idempotent replay of an eagerly dispatched job returns it and runs nothing twice", () =>
      Effect.gen(function*() {
        const { projectId, tokens, enqueue, enqueueEager } = yield* setup("eager replay")
        const job = yield* enqueueEager("noop", (attempt) => ({ idempotency_key: `once-${attempt}` }))
        const replay = yield* enqueue("noop", { idempotency_key: job.idempotency_key ?? "" })
        assert.strictEqual(replay.id, job.id)
        yield* waitForState(tokens.viewer, projectId, job.id, "succeeded")
        const events = yield* jobEvents(tokens.viewer, projectId, job.id)
        assert.deepStrictEqual(events.map((event) => event.type), ["enqueued", "started", "succeeded"])
      }))

    it.effect("not dispatched eagerly: a kind without a handler here, a delayed job, an assigned job, a paused queue, a batch", () =>
      Effect.gen(function*() {
        const { projectId, tokens, admin, producer, enqueue } = yield* setup("not eager")
        assert.strictEqual((yield* enqueue("email.send")).state, "available")
        assert.strictEqual((yield* enqueue("noop", { delay_ms: 60_000 })).state, "scheduled")
        assert.strictEqual((yield* enqueue("noop", { assign: { label: "elsewhere" } })).state, "available")
        const batch = yield* producer.jobs.enqueueBatch({
          params: { projectId },
          payload: { jobs: [{ queue: queueName("work"), kind: "noop", payload: {} }] }
        })
        assert.strictEqual(batch.jobs[0]?.state, "available")
        yield* waitForState(tokens.viewer, projectId, batch.jobs[0]?.id ?? job0(), "succeeded")

        yield* admin.queues.update({ params: { projectId, queueName: queueName("work") }, payload: { paused: true } })
        const paused = yield* enqueue("noop")
        assert.strictEqual(paused.state, "available")
        assert.isNull(paused.worker_id)
        yield* admin.queues.update({ params: { projectId, queueName: queueName("work") }, payload: { paused: false } })
        // Resumed, it runs through the ordinary claim.
        yield* waitForState(tokens.viewer, projectId, paused.id, "succeeded")
      }))
  }
)

layer(TestApp({ handlerModules, eagerDispatch: false, pollIntervalMs: 100 }), { timeout: 60_000, excludeTestServices: true })(
  "eager dispatch off (FOREMAN_EAGER_DISPATCH=false)",
  (it) => {
    it.effect("a job for the idle engine is returned available and then claimed", () =>
      Effect.gen(function*() {
        const { projectId, tokens, enqueue } = yield* setup("eager off")
        const job = yield* enqueue("noop")
        assert.strictEqual(job.state, "available")
        assert.strictEqual(job.attempt, 0)
        const done = yield* waitForState(tokens.viewer, projectId, job.id, "succeeded")
        assert.strictEqual(done.attempt, 1)
      }))
  }
)

const job0 = (): never => assert.fail("the batch returned no job")
