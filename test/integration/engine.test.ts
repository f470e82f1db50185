import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql"
import type { JobId } from "../../src/Domain/Ids.ts"
import { EngineRepo } from "../../src/Engine/EngineRepo.ts"
import { Runner } from "../../src/Engine/Runner.ts"
import type { EnqueueJob, Job, JobEvent } from "../../src/Jobs/Api.ts"
import type { CreateQueue } from "../../src/Queues/Api.ts"
import { errorMessage, field, getJob, jobEvents, retryAtOf, waitForJob, waitForState } from "../support/engine.ts"
import { assertEnvelope, queueName, setupProject } from "../support/fixtures.ts"
import { clientFor, raw, TestApp } from "../support/TestApp.ts"
import { waitFor } from "../support/waitFor.ts"

const instanceId = "engine-test"
const engineActor = `instance:${instanceId}`

/** A project with one queue of the given settings; returns the ids, tokens and a producer client. */
const setup = (name: string, queue: Omit<CreateQueue, "name"> = {}) =>
  Effect.gen(function*() {
    const project = yield* setupProject(name)
    const admin = yield* clientFor(project.tokens.admin)
    const created = yield* admin.queues.create({
      params: { projectId: project.projectId },
      payload: { name: queueName("work"), ...queue }
    })
    const producer = yield* clientFor(project.tokens.producer)
    const enqueue = (kind: string, payload: EnqueueJob["payload"], extra: Partial<EnqueueJob> = {}) =>
      producer.jobs.enqueue({ params: { projectId: project.projectId }, payload: { queue: created.name, kind, payload, ...extra } })
    return { ...project, admin, producer, queue: created, enqueue }
  })

const types = (events: ReadonlyArray<JobEvent>) => events.map((event) => event.type)
const ofType = (events: ReadonlyArray<JobEvent>, type: string) => events.filter((event) => event.type === type)
/** Failure transitions: in-process `failed` and reaper `lease_expired`. */
const failures = (events: ReadonlyArray<JobEvent>) =>
  events.filter((event) => event.type === "failed" || event.type === "lease_expired")

const assertNonDecreasing = (events: ReadonlyArray<JobEvent>) => {
  for (let i = 1; i < events.length; i++) {
    const previous = events[i - 1]
    const current = events[i]
    if (previous === undefined || current === undefined) continue
    assert.isAtLeast(
      current.at.getTime(),
      previous.at.getTime(),
      `event ${i} (${current.type}) is not earlier than event ${i - 1} (${previous.type})`
    )
  }
}

const first = <A>(items: ReadonlyArray<A>, what: string): A => {
  const item = items[0]
  if (item === undefined) return assert.fail(`expected at least one ${what}`)
  return item
}

const nth = <A>(items: ReadonlyArray<A>, index: number, what: string): A => {
  const item = items[index]
  if (item === undefined) return assert.fail(`expected ${what} #${index}, have ${items.length}`)
  return item
}

layer(
  TestApp({
    handlerModules: ["./test/support/handlers.ts", "./test/support/edgeHandlers.ts"],
    pollIntervalMs: 100,
    maintenanceIntervalMs: 100,
    leaseMs: 2000,
    instanceId
  }),
  { timeout: 120_000, excludeTestServices: true }
)("engine (in-process)", (it) => {
  it.effect("a noop job succeeds: result stored, events enqueued → started → succeeded with attempts and actors", () =>
    Effect.gen(function*() {
      const { projectId, tokens, keyIds, enqueue } = yield* setup("noop")
      const job = yield* enqueue("noop", { hello: "world" })
      // Running when the idle engine took it in the enqueue's own statement (eager dispatch, best effort),
      // else available; the history below is the same either way.
      assert.include(["running", "available"], job.state)

      const done = yield* waitForState(tokens.viewer, projectId, job.id, "succeeded")
      assert.deepStrictEqual(done.result, { ok: true })
      assert.strictEqual(done.attempt, 1)
      assert.isNull(done.last_error)
      assert.isNull(done.lease_expires_at, "a finished job holds no lease")
      assert.isNotNull(done.started_at)
      assert.isNotNull(done.finished_at)
      assert.isAtLeast(done.finished_at?.getTime() ?? 0, done.started_at?.getTime() ?? Infinity)

      const events = yield* jobEvents(tokens.viewer, projectId, job.id)
      assert.deepStrictEqual(
        events.map(({ actor, attempt, from_state, job_id, to_state, type }) => ({ type, from_state, to_state, attempt, actor, job_id })),
        [
          { type: "enqueued", from_state: null, to_state: "available", attempt: 0, actor: `api_key:${keyIds.producer}`, job_id: job.id },
          { type: "started", from_state: "available", to_state: "running", attempt: 1, actor: engineActor, job_id: job.id },
          { type: "succeeded", from_state: "running", to_state: "succeeded", attempt: 1, actor: engineActor, job_id: job.id }
        ]
      )
      assertNonDecreasing(events)
      for (const event of events) {
        assert.isNull(event.error)
        assert.isAtLeast(event.at.getTime(), job.created_at.getTime())
      }

      // The handler's return value is the stored result.
      const echoed = yield* enqueue("echo", { n: [1, 2, { deep: true }], s: "é" })
      const echoDone = yield* waitForState(tokens.viewer, projectId, echoed.id, "succeeded")
      assert.deepStrictEqual(echoDone.result, { n: [1, 2, { deep: true }], s: "é" })
    }))

  it.effect("flaky{succeed_on:3} is retried with exponential backoff and succeeds on attempt 3", () =>
    Effect.gen(function*() {
      const { projectId, tokens, enqueue } = yield* setup("flaky", {
        retry_policy: { initial_delay_ms: 100, factor: 2, jitter: 0, max_attempts: 5 }
      })
      const job = yield* enqueue("flaky", { succeed_on: 3 })
      const done = yield* waitForState(tokens.viewer, projectId, job.id, "succeeded")
      assert.strictEqual(done.attempt, 3)
      assert.deepStrictEqual(done.result, { attempt: 3 })

      const events = yield* jobEvents(tokens.viewer, projectId, job.id)
      assertNonDecreasing(events)
      const started = ofType(events, "started")
      assert.deepStrictEqual(started.map((e) => e.attempt), [1, 2, 3])
      const failed = ofType(events, "failed")
      assert.deepStrictEqual(
        failed.map(({ attempt, from_state, to_state }) => ({ attempt, from_state, to_state })),
        [
          { attempt: 1, from_state: "running", to_state: "retrying" },
          { attempt: 2, from_state: "running", to_state: "retrying" }
        ]
      )
      assert.deepStrictEqual(failed.map((e) => e.error), [
        { message: "flaky failure on attempt 1", retryable: true },
        { message: "flaky failure on attempt 2", retryable: true }
      ])
      // The backoff: retry_at = failure time + 100 ms, then + 200 ms (jitter 0).
      const backoffs = failed.map((e) => retryAtOf(e) - e.at.getTime())
      assert.strictEqual(backoffs.length, 2)
      assert.closeTo(nth(backoffs, 0, "backoff"), 100, 5)
      assert.closeTo(nth(backoffs, 1, "backoff"), 200, 5)
      // And it is honoured: the next attempt does not start before retry_at.
      for (const [i, failure] of failed.entries()) {
        const next = nth(started, i + 1, "started event")
        assert.isAtLeast(next.at.getTime(), retryAtOf(failure), `attempt ${next.attempt} started before its retry_at`)
      }
      assert.strictEqual(types(events).at(-1), "succeeded")
      assert.strictEqual(types(events)[0], "enqueued")
    }))

  it.effect("exhausting max_attempts makes the job dead with last_error", () =>
    Effect.gen(function*() {
      const { projectId, tokens, enqueue } = yield* setup("exhaust", {
        retry_policy: { initial_delay_ms: 50, factor: 1, jitter: 0, max_attempts: 3 }
      })
      const job = yield* enqueue("flaky", { succeed_on: 100 })
      const dead = yield* waitForState(tokens.viewer, projectId, job.id, "dead")
      assert.strictEqual(dead.attempt, 3)
      assert.deepStrictEqual(dead.last_error, { message: "flaky failure on attempt 3", retryable: true })
      assert.isNull(dead.result)
      assert.isNotNull(dead.finished_at)

      const events = yield* jobEvents(tokens.viewer, projectId, job.id)
      assert.deepStrictEqual(ofType(events, "started").map((e) => e.attempt), [1, 2, 3])
      const last = first(events.slice(-1), "event")
      assert.deepInclude(last, { type: "failed", from_state: "running", to_state: "dead", attempt: 3, actor: engineActor })
      assert.isUndefined(field(last.data, "retry_at"), "a dead job has no retry_at")
      assert.match(String(field(last.data, "traceparent")), /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/, "the attempt's trace context")
      assert.strictEqual(ofType(events, "succeeded").length, 0)
    }))

  it.effect("a non-retryable failure is dead after one attempt", () =>
    Effect.gen(function*() {
      const { projectId, tokens, enqueue } = yield* setup("fatal", {
        retry_policy: { initial_delay_ms: 50, jitter: 0, max_attempts: 5 }
      })
      const job = yield* enqueue("fatal", {})
      const dead = yield* waitForState(tokens.viewer, projectId, job.id, "dead")
      assert.strictEqual(dead.attempt, 1)
      assert.deepStrictEqual(dead.last_error, { message: "this job can never succeed", retryable: false })
      const events = yield* jobEvents(tokens.viewer, projectId, job.id)
      assert.deepStrictEqual(types(events), ["enqueued", "started", "failed"])
      assert.deepInclude(nth(events, 2, "event"), { from_state: "running", to_state: "dead", attempt: 1 })
    }))

  it.effect("a per-job retry_policy overrides the queue's", () =>
    Effect.gen(function*() {
      const { projectId, tokens, enqueue } = yield* setup("override", {
        retry_policy: { initial_delay_ms: 100, factor: 2, jitter: 0, max_attempts: 1 }
      })
      const inherits = yield* enqueue("flaky", { succeed_on: 3 })
      const overrides = yield* enqueue("flaky", { succeed_on: 3 }, { retry_policy: { max_attempts: 3, initial_delay_ms: 150 } })
      assert.strictEqual(overrides.max_attempts, 3)
      assert.deepStrictEqual(overrides.retry_policy, {
        max_attempts: 3,
        initial_delay_ms: 150,
        factor: 2,
        max_delay_ms: 3_600_000,
        jitter: 0
      })

      // The queue allows a single attempt: the job without an override dies on its first failure.
      const dead = yield* waitForState(tokens.viewer, projectId, inherits.id, "dead")
      assert.strictEqual(dead.attempt, 1)

      const done = yield* waitForState(tokens.viewer, projectId, overrides.id, "succeeded")
      assert.strictEqual(done.attempt, 3)
      const failed = ofType(yield* jobEvents(tokens.viewer, projectId, overrides.id), "failed")
      const backoffs = failed.map((e) => retryAtOf(e) - e.at.getTime())
      assert.strictEqual(backoffs.length, 2)
      assert.closeTo(nth(backoffs, 0, "backoff"), 150, 5)
      assert.closeTo(nth(backoffs, 1, "backoff"), 300, 5)
    }))

  it.effect("an attempt over timeout_ms fails with a timeout error and is retried", () =>
    Effect.gen(function*() {
      const { projectId, tokens, enqueue } = yield* setup("timeout", {
        retry_policy: { initial_delay_ms: 100, factor: 1, jitter: 0, max_attempts: 2 }
      })
      const job = yield* enqueue("sleep", { ms: 5000 }, { timeout_ms: 1000 })
      const dead = yield* waitForState(tokens.viewer, projectId, job.id, "dead", 8000)
      assert.strictEqual(dead.attempt, 2)
      assert.match(errorMessage(dead.last_error), /time/i)

      const events = yield* jobEvents(tokens.viewer, projectId, job.id)
      const started = ofType(events, "started")
      const failed = failures(events)
      assert.deepStrictEqual(started.map((e) => e.attempt), [1, 2])
      assert.deepStrictEqual(failed.map((e) => [e.attempt, e.to_state]), [[1, "retrying"], [2, "dead"]])
      for (const [i, failure] of failed.entries()) {
        assert.match(errorMessage(failure.error), /time/i, "the failure is a timeout")
        const ran = failure.at.getTime() - nth(started, i, "started").at.getTime()
        assert.isAtLeast(ran, 900, "the attempt ran for about timeout_ms")
        assert.isBelow(ran, 2500, "the attempt was stopped at its timeout, not after the 5 s sleep")
      }
      assert.strictEqual(ofType(events, "succeeded").length, 0)
    }))

  it.effect("an operator retry makes a dead job available and it runs again from attempt 1; a succeeded job cannot be retried", () =>
    Effect.gen(function*() {
      const { projectId, tokens, keyIds, producer, enqueue } = yield* setup("retry", {
        retry_policy: { initial_delay_ms: 50, jitter: 0, max_attempts: 2 }
      })
      const job = yield* enqueue("fatal", {})
      yield* waitForState(tokens.viewer, projectId, job.id, "dead")

      const retried = yield* producer.jobs.retry({ params: { projectId, jobId: job.id } })
      assert.strictEqual(retried.state, "available")
      assert.strictEqual(retried.attempt, 0, "the attempt count starts over")
      assert.isNull(retried.finished_at)

      // It runs again (attempt 1, not 2) and, being fatal, dies again.
      yield* waitForJob(tokens.viewer, projectId, job.id, (j) => j.state === "dead" && j.updated_at > retried.updated_at, {
        label: "dead again"
      })
      const events = yield* jobEvents(tokens.viewer, projectId, job.id)
      assert.deepStrictEqual(types(events), ["enqueued", "started", "failed", "retried", "started", "failed"])
      assert.deepInclude(nth(events, 3, "event"), {
        type: "retried",
        from_state: "dead",
        to_state: "available",
        attempt: 0,
        actor: `api_key:${keyIds.producer}`
      })
      assert.deepInclude(nth(events, 4, "event"), { type: "started", from_state: "available", attempt: 1 })
      assert.deepInclude(nth(events, 5, "event"), { to_state: "dead", attempt: 1 })
      assertNonDecreasing(events)

      const ok = yield* enqueue("noop", {})
      yield* waitForState(tokens.viewer, projectId, ok.id, "succeeded")
      const refused = yield* raw("POST", `/v1/projects/${projectId}/jobs/${ok.id}/retry`, { token: tokens.producer })
      assertEnvelope(refused, 409, "Conflict")
      const after = yield* getJob(tokens.viewer, projectId, ok.id)
      assert.strictEqual(after.state, "succeeded")
      assert.strictEqual(after.attempt, 1)
    }))

  it.effect("cancelling a running job interrupts it: cancelled from running, never succeeded", () =>
    Effect.gen(function*() {
      const runner = yield* Runner
      const { projectId, tokens, keyIds, producer, enqueue } = yield* setup("cancel")
      const job = yield* enqueue("sleep", { ms: 5000 })
      yield* waitForState(tokens.viewer, projectId, job.id, "running")
      assert.isAtLeast(yield* runner.inFlight, 1, "the attempt is in flight")

      const cancelled = yield* producer.jobs.cancel({ params: { projectId, jobId: job.id } })
      assert.strictEqual(cancelled.state, "cancelled")
      assert.isNull(cancelled.lease_expires_at)

      // The attempt is interrupted promptly (the handler would otherwise sleep for 5 s).
      yield* waitFor(runner.inFlight, (n) => n === 0, { timeoutMs: 2000, label: "attempt interrupted" })

      const after = yield* getJob(tokens.viewer, projectId, job.id)
      assert.strictEqual(after.state, "cancelled")
      assert.isNull(after.result)
      assert.isNotNull(after.finished_at)
      const events = yield* jobEvents(tokens.viewer, projectId, job.id)
      assert.deepStrictEqual(types(events), ["enqueued", "started", "cancelled"])
      assert.deepInclude(nth(events, 2, "event"), {
        from_state: "running",
        to_state: "cancelled",
        attempt: 1,
        actor: `api_key:${keyIds.producer}`
      })
    }))

  it.effect("a paused queue's jobs wait until it is resumed, then run", () =>
    Effect.gen(function*() {
      const { projectId, tokens, admin, queue, enqueue } = yield* setup("paused", { paused: true })
      const jobs: Array<Job> = []
      for (let i = 0; i < 3; i++) jobs.push(yield* enqueue("noop", { i }))
      // Several poll intervals (100 ms) pass without the engine touching them.
      yield* Effect.sleep("500 millis")
      for (const job of jobs) {
        const current = yield* getJob(tokens.viewer, projectId, job.id)
        assert.strictEqual(current.state, "available")
        assert.strictEqual(current.attempt, 0)
        assert.deepStrictEqual(types(yield* jobEvents(tokens.viewer, projectId, job.id)), ["enqueued"])
      }

      const resumed = yield* admin.queues.update({ params: { projectId, queueName: queue.name }, payload: { paused: false } })
      assert.isFalse(resumed.paused)
      for (const job of jobs) yield* waitForState(tokens.viewer, projectId, job.id, "succeeded")
    }))

  it.effect("max_running 2: ten 300 ms jobs never run more than two at a time, and all finish", () =>
    Effect.gen(function*() {
      const { projectId, tokens, producer, queue } = yield* setup("capped", { max_running: 2 })
      const viewer = yield* clientFor(tokens.viewer)
      const started = Date.now()
      const { jobs } = yield* producer.jobs.enqueueBatch({
        params: { projectId },
        payload: { jobs: Array.from({ length: 10 }, () => ({ queue: queue.name, kind: "sleep", payload: { ms: 300 } })) }
      })
      assert.strictEqual(jobs.length, 10)

      let maxRunning = 0
      const samples: Array<number> = []
      yield* waitFor(
        Effect.gen(function*() {
          const running = yield* viewer.jobs.list({ params: { projectId }, query: { queue: queue.name, state: "running", limit: 100 } })
          samples.push(running.items.length)
          maxRunning = Math.max(maxRunning, running.items.length)
          const done = yield* viewer.jobs.list({ params: { projectId }, query: { queue: queue.name, state: "succeeded", limit: 100 } })
          return done.items.length
        }),
        (n) => n === 10,
        { timeoutMs: 15_000, intervalMs: 20, label: "all ten succeeded" }
      )
      const elapsed = Date.now() - started
      assert.isAtMost(maxRunning, 2, `running samples: ${samples.join(",")}`)
      assert.strictEqual(maxRunning, 2, "the cap is used, not just respected")
      assert.isAtLeast(elapsed, 5 * 300, "ten 300 ms jobs two at a time take at least 1.5 s")

      // The event log agrees: at no instant were more than two attempts between started and succeeded.
      const intervals: Array<readonly [number, number]> = []
      for (const job of jobs) {
        const events = yield* jobEvents(tokens.viewer, projectId, job.id)
        assert.deepStrictEqual(types(events), ["enqueued", "started", "succeeded"])
        intervals.push([nth(events, 1, "event").at.getTime(), nth(events, 2, "event").at.getTime()])
      }
      for (const [start] of intervals) {
        // 1 ms of slack: the API's timestamps are truncated to milliseconds.
        const overlapping = intervals.filter(([s, e]) => s <= start && start < e - 1).length
        assert.isAtMost(overlapping, 2, `at ${start}, ${overlapping} attempts were running`)
      }
    }))

  it.effect("priority: a critical job enqueued after low ones is claimed first", () =>
    Effect.gen(function*() {
      const { projectId, tokens, enqueue } = yield* setup("priority")
      const workerClient = yield* clientFor(tokens.worker)
      // A kind no in-process handler runs, so only this external worker claims it.
      const worker = yield* workerClient.workers.register({ params: { projectId }, payload: { name: "prio", kinds: ["ext.priority"] } })
      const low1 = yield* enqueue("ext.priority", { n: "low1" }, { priority: "low" })
      const low2 = yield* enqueue("ext.priority", { n: "low2" }, { priority: "low" })
      const normal = yield* enqueue("ext.priority", { n: "normal" })
      const critical = yield* enqueue("ext.priority", { n: "critical" }, { priority: "critical" })
      const high = yield* enqueue("ext.priority", { n: "high" }, { priority: "high" })

      const order: Array<JobId> = []
      for (let i = 0; i < 5; i++) {
        const { jobs } = yield* workerClient.workers.claim({ params: { projectId, workerId: worker.id }, payload: { limit: 1 } })
        assert.strictEqual(jobs.length, 1)
        const claimed = first(jobs, "claimed job")
        order.push(claimed.id)
        yield* workerClient.workers.complete({
          params: { projectId, jobId: claimed.id },
          payload: { lease_token: claimed.lease_token }
        })
      }
      assert.deepStrictEqual(order, [critical.id, high.id, normal.id, low1.id, low2.id])
    }))

  it.effect("a delayed job stays scheduled until its delay passes, then runs", () =>
    Effect.gen(function*() {
      const { projectId, tokens, enqueue } = yield* setup("delayed")
      const job = yield* enqueue("noop", {}, { delay_ms: 500 })
      assert.strictEqual(job.state, "scheduled")
      const early = yield* getJob(tokens.viewer, projectId, job.id)
      assert.strictEqual(early.state, "scheduled")
      assert.strictEqual(early.attempt, 0)

      yield* waitForState(tokens.viewer, projectId, job.id, "succeeded", 5000)
      const events = yield* jobEvents(tokens.viewer, projectId, job.id)
      const enqueued = first(ofType(events, "enqueued"), "enqueued event")
      assert.strictEqual(enqueued.to_state, "scheduled")
      const start = first(ofType(events, "started"), "started event")
      const waited = start.at.getTime() - enqueued.at.getTime()
      assert.isAtLeast(waited, 500, "not started before run_at")
      assert.isBelow(waited, 2000, "started soon after run_at")
      assert.isAtLeast(start.at.getTime(), job.run_at.getTime())
    }))

  it.effect("a result with no JSON form fails the attempt for good, and the engine keeps recording other jobs", () =>
    Effect.gen(function*() {
      const { projectId, tokens, enqueue } = yield* setup("unstorable", {
        retry_policy: { initial_delay_ms: 50, factor: 1, jitter: 0, max_attempts: 3 }
      })
      const bigint = yield* enqueue("bigint", {})
      const circular = yield* enqueue("circular", {})
      for (const job of [bigint, circular]) {
        const dead = yield* waitForState(tokens.viewer, projectId, job.id, "dead", 5000)
        assert.strictEqual(dead.attempt, 1, "not retried: the same handler would return the same value")
        assert.match(errorMessage(dead.last_error), /cannot be stored as JSON/)
        assert.isNull(dead.result)
      }
      // Completions and failures of later jobs are still written, by the attempt itself (not the reaper).
      const ok = yield* enqueue("noop", {})
      const flaky = yield* enqueue("flaky", { succeed_on: 2 })
      yield* waitForState(tokens.viewer, projectId, ok.id, "succeeded", 3000)
      const retried = yield* waitForState(tokens.viewer, projectId, flaky.id, "succeeded", 3000)
      assert.strictEqual(retried.attempt, 2)
      assert.deepStrictEqual(types(yield* jobEvents(tokens.viewer, projectId, flaky.id)).filter((t) => t !== "available"), [
        "enqueued",
        "started",
        "failed",
        "started",
        "succeeded"
      ])
    }))

  it.effect("a write the database refuses does not stop the engine: other outcomes are recorded, the reaper recovers the job", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const { projectId, tokens, admin, queue, enqueue } = yield* setup("refused write", {
        paused: true,
        retry_policy: { initial_delay_ms: 0, jitter: 0, max_attempts: 5 }
      })
      const blocked = yield* enqueue("noop", {})
      // The database now refuses to record this one job's success (as it would a row it cannot store).
      yield* sql.unsafe(
        `ALTER TABLE job_events ADD CONSTRAINT refuse_one_success CHECK (job_id <> '${blocked.id}' OR type <> 'succeeded') NOT VALID`
      )
      yield* Effect.gen(function*() {
        yield* admin.queues.update({ params: { projectId, queueName: queue.name }, payload: { paused: false } })
        yield* waitForState(tokens.viewer, projectId, blocked.id, "running")
        const later = yield* enqueue("noop", {})
        const done = yield* waitForState(tokens.viewer, projectId, later.id, "succeeded", 3000)
        assert.strictEqual(done.attempt, 1)
        assert.strictEqual((yield* getJob(tokens.viewer, projectId, blocked.id)).state, "running", "its success was not recorded")
      }).pipe(Effect.ensuring(Effect.orDie(sql`ALTER TABLE job_events DROP CONSTRAINT IF EXISTS refuse_one_success`)))

      // Its lease (2 s) expires, the reaper puts it back, and the next attempt is recorded.
      const recovered = yield* waitForState(tokens.viewer, projectId, blocked.id, "succeeded", 8000)
      assert.strictEqual(recovered.attempt, 2)
      assert.include(types(yield* jobEvents(tokens.viewer, projectId, blocked.id)), "lease_expired")
    }))

  it.effect("pruneFinished deletes finished jobs (and their events) older than the queue's retention, and nothing else", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const engine = yield* EngineRepo
      const { projectId, tokens, enqueue } = yield* setup("retention", {
        retention_seconds: 3600,
        retry_policy: { max_attempts: 1 }
      })
      const oldSucceeded = yield* enqueue("noop", {})
      const oldDead = yield* enqueue("fatal", {})
      const oldCancelled = yield* enqueue("noop", {}, { delay_ms: 60_000 })
      const recent = yield* enqueue("noop", {})
      const pending = yield* enqueue("noop", {}, { delay_ms: 60_000 })
      yield* waitForState(tokens.viewer, projectId, oldSucceeded.id, "succeeded")
      yield* waitForState(tokens.viewer, projectId, oldDead.id, "dead")
      yield* waitForState(tokens.viewer, projectId, recent.id, "succeeded")
      const producer = yield* clientFor(tokens.producer)
      yield* producer.jobs.cancel({ params: { projectId, jobId: oldCancelled.id } })

      const old = [oldSucceeded.id, oldDead.id, oldCancelled.id]
      // Two hours ago: beyond this queue's one-hour retention, within the default week of every other queue.
      yield* sql`UPDATE jobs SET finished_at = now() - interval '2 hours' WHERE id IN ${sql.in(old)}`
      // An unfinished job is never pruned, however old.
      yield* sql`UPDATE jobs SET created_at = now() - interval '30 days' WHERE id = ${pending.id}`
      // A finished job just inside retention stays.
      yield* sql`UPDATE jobs SET finished_at = now() - interval '50 minutes' WHERE id = ${recent.id}`

      assert.strictEqual(yield* engine.pruneFinished(2), 2, "the limit bounds one batch")
      assert.strictEqual(yield* engine.pruneFinished(500), 1)
      assert.strictEqual(yield* engine.pruneFinished(500), 0)

      const viewer = yield* clientFor(tokens.viewer)
      for (const id of old) {
        const response = yield* raw("GET", `/v1/projects/${projectId}/jobs/${id}`, { token: tokens.viewer })
        assertEnvelope(response, 404, "NotFound")
      }
      const orphans = yield* sql<{ readonly n: number }>`SELECT count(*)::int AS n FROM job_events WHERE job_id IN ${sql.in(old)}`
      assert.strictEqual(first(orphans, "row").n, 0, "events go with their job")
      assert.strictEqual((yield* viewer.jobs.get({ params: { projectId, jobId: recent.id } })).state, "succeeded")
      assert.strictEqual((yield* viewer.jobs.get({ params: { projectId, jobId: pending.id } })).state, "scheduled")
    }))
})
