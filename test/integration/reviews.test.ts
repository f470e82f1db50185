import { assert, layer } from "@effect/vitest"
import { Effect, Fiber, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { TestClock } from "effect/testing"
import type { JobId, ProjectId } from "../../src/Domain/Ids.ts"
import type { ReviewPolicyPatch } from "../../src/Domain/Review.ts"
import type { EnqueueJob, Job } from "../../src/Jobs/Api.ts"
import { deadlineLoop, Reviews } from "../../src/Reviews/Reviews.ts"
import { field, jobEvents, waitForJob, waitForState } from "../support/engine.ts"
import { assertEnvelope, missingId, queueName, setupProject } from "../support/fixtures.ts"
import { clientFor, raw, TestApp } from "../support/TestApp.ts"
import { waitFor } from "../support/waitFor.ts"

const kind = "review.task"

/** A project with a queue whose policy is `review`, an external worker for `kind`, and helpers. */
const setup = (name: string, review: ReviewPolicyPatch = { required: true }) =>
  Effect.gen(function*() {
    const project = yield* setupProject(name)
    const { projectId, tokens } = project
    const admin = yield* clientFor(tokens.admin)
    const queue = yield* admin.queues.create({ params: { projectId }, payload: { name: queueName("review"), review } })
    const producer = yield* clientFor(tokens.producer)
    const reviewer = yield* clientFor(tokens.reviewer)
    const workerClient = yield* clientFor(tokens.worker)
    const worker = yield* workerClient.workers.register({ params: { projectId }, payload: { name: `${name} worker`, kinds: [kind] } })
    const enqueue = (extra: Partial<EnqueueJob> = {}) =>
      producer.jobs.enqueue({ params: { projectId }, payload: { queue: queue.name, kind, payload: { n: 1 }, ...extra } })
    const claimOne = Effect.gen(function*() {
      const { jobs } = yield* workerClient.workers.claim({ params: { projectId, workerId: worker.id }, payload: { limit: 1, wait_ms: 3000 } })
      const job = jobs[0]
      if (job === undefined || jobs.length !== 1) return yield* Effect.die(new Error(`expected one claimed job, got ${jobs.length}`))
      return job
    })
    /** Claims the next job, checks it is `jobId`, and completes it with `result`. */
    const work = (jobId: JobId, result: EnqueueJob["payload"] = { done: true }) =>
      Effect.gen(function*() {
        const claimed = yield* claimOne
        assert.strictEqual(claimed.id, jobId)
        const completed = yield* workerClient.workers.complete({
          params: { projectId, jobId },
          payload: { lease_token: claimed.lease_token, result }
        })
        return { claimed, completed }
      })
    const decide = (
      token: string,
      jobId: string,
      decision: "approve" | "reject",
      body: Record<string, unknown> = {},
      requestId?: string
    ) =>
      raw("POST", `/v1/projects/${projectId}/reviews/${jobId}/${decision}`, {
        token,
        body: JSON.stringify(body),
        ...(requestId === undefined ? {} : { headers: { "x-request-id": requestId } })
      })
    return { ...project, admin, producer, reviewer, workerClient, worker, queue, enqueue, claimOne, work, decide }
  })

const JobBody = Schema.Struct({ id: Schema.String, state: Schema.String })
const jobBody = Schema.decodeUnknownSync(JobBody)

const workerCounters = (workerId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ approved: number; rejected: number }>`
      SELECT approved_count::int AS approved, rejected_count::int AS rejected FROM workers WHERE id = ${workerId}`
    return rows[0] ?? { approved: -1, rejected: -1 }
  }).pipe(Effect.orDie)

const eventWorkerIds = (jobId: string, type: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ worker_id: string | null }>`
      SELECT worker_id::text AS worker_id FROM job_events WHERE job_id = ${jobId} AND type = ${type} ORDER BY id`
    return rows.map((row) => row.worker_id)
  }).pipe(Effect.orDie)

const reviewEvents = (token: string, projectId: ProjectId, jobId: JobId) =>
  Effect.map(jobEvents(token, projectId, jobId), (events) => events.filter((event) => event.type.startsWith("review.")))

layer(TestApp({ role: "api" }), { timeout: 60_000, excludeTestServices: true })("reviews (external workers)", (it) => {
  it.effect("review policy: queue default, job override, and the shape on both", () =>
    Effect.gen(function*() {
      const s = yield* setup("review policy", { required: true, deadline_ms: 60_000 })
      assert.deepStrictEqual(s.queue.review, { required: true, deadline_ms: 60_000, on_deadline: "escalate" })
      const updated = yield* s.admin.queues.update({
        params: { projectId: s.projectId, queueName: s.queue.name },
        payload: { review: { on_deadline: "approve" } }
      })
      assert.deepStrictEqual(updated.review, { required: true, deadline_ms: 60_000, on_deadline: "approve" }, "patch merges")
      const inherited = yield* s.enqueue()
      assert.deepStrictEqual(inherited.review, { required: true, deadline_ms: 60_000, on_deadline: "approve" })
      const overridden = yield* s.enqueue({ review: { deadline_ms: null, on_deadline: "reject" } })
      assert.deepStrictEqual(overridden.review, { required: true, deadline_ms: null, on_deadline: "reject" })
      const exempt = yield* s.enqueue({ review: { required: false } })
      assert.isFalse(exempt.review.required)
      const plainQueue = yield* s.admin.queues.create({ params: { projectId: s.projectId }, payload: { name: queueName("plain") } })
      assert.deepStrictEqual(plainQueue.review, { required: false, deadline_ms: null, on_deadline: "escalate" })
      const bad = yield* raw("POST", `/v1/projects/${s.projectId}/jobs`, {
        token: s.tokens.producer,
        body: JSON.stringify({ queue: "review", kind, payload: {}, review: { deadline_ms: 10 } })
      })
      assertEnvelope(bad, 400, "ValidationError")
      const unknownField = yield* raw("POST", `/v1/projects/${s.projectId}/jobs`, {
        token: s.tokens.producer,
        body: JSON.stringify({ queue: "review", kind, payload: {}, review: { required: true, who: "me" } })
      })
      assertEnvelope(unknownField, 400, "ValidationError")
    }))

  it.effect("a successful attempt waits for review; approve → succeeded, recorded in events, audit and the worker's counter", () =>
    Effect.gen(function*() {
      const s = yield* setup("review approve")
      const job = yield* s.enqueue()
      const { completed } = yield* s.work(job.id, { answer: 42 })
      assert.strictEqual(completed.state, "awaiting_review")
      assert.deepStrictEqual(completed.result, { answer: 42 }, "the result is stored while it waits")
      assert.isNull(completed.finished_at)
      assert.strictEqual(completed.worker_id, s.worker.id)

      const page = yield* s.reviewer.reviews.list({ params: { projectId: s.projectId }, query: {} })
      assert.deepStrictEqual(page.items.map((review) => review.job_id), [job.id])
      const review = page.items[0]
      assert.deepStrictEqual(review?.result, { answer: 42 })
      assert.strictEqual(review?.worker_id, s.worker.id)
      assert.strictEqual(review?.attempt, 1)
      assert.isFalse(review?.overdue)

      const approved = yield* s.decide(s.tokens.reviewer, job.id, "approve", { comment: "looks right" }, "req-approve-1")
      assert.strictEqual(approved.status, 200, approved.text)
      assert.strictEqual(jobBody(approved.body).state, "succeeded")
      const after = yield* s.producer.jobs.get({ params: { projectId: s.projectId, jobId: job.id } })
      assert.strictEqual(after.state, "succeeded")
      assert.isNotNull(after.finished_at)

      const events = yield* jobEvents(s.tokens.viewer, s.projectId, job.id)
      assert.deepStrictEqual(events.map((e) => e.type), ["enqueued", "started", "awaiting_review", "review.approved"])
      const decision = events[3]
      assert.strictEqual(decision?.from_state, "awaiting_review")
      assert.strictEqual(decision?.to_state, "succeeded")
      assert.strictEqual(decision?.actor, `api_key:${s.keyIds.reviewer}`)
      assert.deepStrictEqual(decision?.data, { decision: "approve", comment: "looks right", request_id: "req-approve-1" })
      assert.deepStrictEqual(yield* eventWorkerIds(job.id, "review.approved"), [s.worker.id])

      const audit = yield* s.admin.audit.list({ params: { projectId: s.projectId }, query: {} })
      const entry = audit.items.find((e) => e.action === "review.approved" && e.target_id === job.id)
      assert.isDefined(entry)
      assert.strictEqual(entry?.actor, `api_key:${s.keyIds.reviewer}`)
      assert.strictEqual(entry?.request_id, "req-approve-1")
      assert.strictEqual(field(entry?.details, "comment"), "looks right")
      assert.strictEqual(field(entry?.details, "worker_id"), s.worker.id)

      assert.deepStrictEqual(yield* workerCounters(s.worker.id), { approved: 1, rejected: 0 })

      // Deciding again, or on a job that never waited for review, is a conflict.
      assertEnvelope(yield* s.decide(s.tokens.reviewer, job.id, "approve"), 409, "Conflict")
      assertEnvelope(yield* s.decide(s.tokens.admin, job.id, "reject", { comment: "late" }), 409, "Conflict")
      const pending = yield* s.enqueue()
      assertEnvelope(yield* s.decide(s.tokens.reviewer, pending.id, "approve"), 409, "Conflict")
      const missing = yield* s.decide(s.tokens.reviewer, missingId, "approve")
      assertEnvelope(missing, 404, "NotFound")
      const listed = yield* s.reviewer.reviews.list({ params: { projectId: s.projectId }, query: {} })
      assert.deepStrictEqual(listed.items, [], "a decided job leaves the review list")
    }))

  it.effect("a job exempted at enqueue succeeds at once; reviews of other projects are invisible", () =>
    Effect.gen(function*() {
      const s = yield* setup("review exempt")
      const other = yield* setup("review other")
      const job = yield* s.enqueue({ review: { required: false } })
      const { completed } = yield* s.work(job.id)
      assert.strictEqual(completed.state, "succeeded")
      const reviewed = yield* other.enqueue()
      yield* other.work(reviewed.id)
      const page = yield* s.reviewer.reviews.list({ params: { projectId: s.projectId }, query: {} })
      assert.deepStrictEqual(page.items, [])
      const foreign = yield* s.decide(s.tokens.reviewer, reviewed.id, "approve")
      assertEnvelope(foreign, 404, "NotFound")
      const crossTenant = yield* raw("GET", `/v1/projects/${other.projectId}/reviews`, { token: s.tokens.reviewer })
      assertEnvelope(crossTenant, 404, "NotFound")
    }))

  it.effect("reject with retry: the job runs again with the feedback; the attempt counts; exhausted attempts → dead", () =>
    Effect.gen(function*() {
      const s = yield* setup("review retry")
      const job = yield* s.enqueue({ max_attempts: 2 })
      const first = yield* s.work(job.id, { draft: 1 })
      assert.isNull(first.claimed.review_feedback, "a first attempt has no feedback")
      const rejected = yield* s.decide(s.tokens.reviewer, job.id, "reject", { comment: "cite your sources", retry: true }, "req-retry")
      assert.strictEqual(rejected.status, 200, rejected.text)
      const again = yield* s.producer.jobs.get({ params: { projectId: s.projectId, jobId: job.id } })
      assert.strictEqual(again.state, "available")
      assert.strictEqual(again.attempt, 1, "the rejected attempt stays counted")
      assert.strictEqual(again.review_feedback?.comment, "cite your sources")
      assert.strictEqual(again.review_feedback?.attempt, 1)

      const second = yield* s.work(job.id, { draft: 2 })
      assert.strictEqual(second.claimed.attempt, 2)
      assert.strictEqual(second.claimed.review_feedback?.comment, "cite your sources", "the claim hands the feedback over")
      assert.strictEqual(second.completed.state, "awaiting_review")

      const exhausted = yield* s.decide(s.tokens.admin, job.id, "reject", { comment: "still wrong", retry: true })
      assert.strictEqual(exhausted.status, 200, exhausted.text)
      const dead = yield* s.producer.jobs.get({ params: { projectId: s.projectId, jobId: job.id } })
      assert.strictEqual(dead.state, "dead", "no attempts left: the job is dead")
      assert.strictEqual(field(dead.last_error, "message"), "rejected in review with no attempts left")
      assert.isNotNull(dead.finished_at)

      const events = yield* reviewEvents(s.tokens.viewer, s.projectId, job.id)
      assert.deepStrictEqual(events.map((e) => [e.type, e.to_state, e.attempt]), [
        ["review.rejected", "available", 1],
        ["review.rejected", "dead", 2]
      ])
      assert.deepStrictEqual(events[0]?.data, { decision: "retry", comment: "cite your sources", request_id: "req-retry" })
      assert.deepStrictEqual(yield* workerCounters(s.worker.id), { approved: 0, rejected: 2 })
    }))

  it.effect("reject as final → rejected; a job awaiting review can be cancelled; rejected is not retryable", () =>
    Effect.gen(function*() {
      const s = yield* setup("review reject")
      const job = yield* s.enqueue()
      yield* s.work(job.id)
      const missingComment = yield* s.decide(s.tokens.reviewer, job.id, "reject", {})
      assertEnvelope(missingComment, 400, "ValidationError")
      const rejected = yield* s.decide(s.tokens.reviewer, job.id, "reject", { comment: "not usable" })
      assert.strictEqual(rejected.status, 200, rejected.text)
      const final = yield* s.producer.jobs.get({ params: { projectId: s.projectId, jobId: job.id } })
      assert.strictEqual(final.state, "rejected")
      assert.isNotNull(final.finished_at)
      assert.deepStrictEqual(yield* workerCounters(s.worker.id), { approved: 0, rejected: 1 })
      const retry = yield* raw("POST", `/v1/projects/${s.projectId}/jobs/${job.id}/retry`, { token: s.tokens.producer })
      assertEnvelope(retry, 409, "Conflict")
      const byState = yield* s.producer.jobs.list({ params: { projectId: s.projectId }, query: { state: "rejected" } })
      assert.deepStrictEqual(byState.items.map((j) => j.id), [job.id])

      const withdrawn = yield* s.enqueue()
      yield* s.work(withdrawn.id)
      const cancelled = yield* s.producer.jobs.cancel({ params: { projectId: s.projectId, jobId: withdrawn.id } })
      assert.strictEqual(cancelled.state, "cancelled")
      assertEnvelope(yield* s.decide(s.tokens.reviewer, withdrawn.id, "approve"), 409, "Conflict")
    }))

  it.effect("producers, workers and viewers may not decide (403); reviewers and admins may", () =>
    Effect.gen(function*() {
      const s = yield* setup("review roles")
      const job = yield* s.enqueue()
      yield* s.work(job.id)
      for (const role of ["producer", "worker", "viewer"] as const) {
        assertEnvelope(yield* s.decide(s.tokens[role], job.id, "approve"), 403, "Forbidden")
        assertEnvelope(yield* s.decide(s.tokens[role], job.id, "reject", { comment: "no", retry: true }), 403, "Forbidden")
        const list = yield* raw("GET", `/v1/projects/${s.projectId}/reviews`, { token: s.tokens[role] })
        assertEnvelope(list, 403, "Forbidden")
      }
      const still = yield* s.producer.jobs.get({ params: { projectId: s.projectId, jobId: job.id } })
      assert.strictEqual(still.state, "awaiting_review")
      const byAdmin = yield* s.decide(s.tokens.admin, job.id, "approve")
      assert.strictEqual(byAdmin.status, 200, byAdmin.text)
    }))

  it.effect("the review list filters by queue, kind and overdue, oldest first, with cursor pagination", () =>
    Effect.gen(function*() {
      const s = yield* setup("review list")
      const second = yield* s.admin.queues.create({
        params: { projectId: s.projectId },
        payload: { name: queueName("second"), review: { required: true } }
      })
      const ids: Array<JobId> = []
      for (let i = 0; i < 3; i++) {
        const job = yield* s.enqueue()
        yield* s.work(job.id)
        ids.push(job.id)
      }
      const elsewhere = yield* s.producer.jobs.enqueue({
        params: { projectId: s.projectId },
        payload: { queue: second.name, kind, payload: {} }
      })
      yield* s.work(elsewhere.id)
      const query = (q: Record<string, string | number | boolean>) =>
        s.reviewer.reviews.list({ params: { projectId: s.projectId }, query: q })

      const first = yield* query({ limit: 2 })
      assert.deepStrictEqual(first.items.map((r) => r.job_id), ids.slice(0, 2))
      assert.isNotNull(first.next_cursor)
      const rest = yield* query({ limit: 2, cursor: first.next_cursor ?? "" })
      assert.deepStrictEqual(rest.items.map((r) => r.job_id), [ids[2], elsewhere.id])
      assert.isNull(rest.next_cursor)

      assert.deepStrictEqual((yield* query({ queue: "second" })).items.map((r) => r.job_id), [elsewhere.id])
      assert.strictEqual((yield* query({ queue: "review" })).items.length, 3)
      assert.strictEqual((yield* query({ kind })).items.length, 4)
      assert.strictEqual((yield* query({ kind: "other.kind" })).items.length, 0)

      // No deadline on these queues: make one review overdue directly.
      const sql = yield* SqlClient.SqlClient
      yield* sql`UPDATE jobs SET review_due_at = now() - interval '1 minute' WHERE id = ${ids[1] ?? ""}`.pipe(Effect.orDie)
      const overdue = yield* query({ overdue: true })
      assert.deepStrictEqual(overdue.items.map((r) => r.job_id), [ids[1]])
      assert.isTrue(overdue.items[0]?.overdue)
      assert.strictEqual((yield* query({ overdue: false })).items.length, 3)
      const badCursor = yield* raw("GET", `/v1/projects/${s.projectId}/reviews?cursor=nope`, { token: s.tokens.reviewer })
      assertEnvelope(badCursor, 400, "ValidationError")
    }))
})

/** Builds a TestClock whose context is provided to the sweep only: the server keeps the real clock. */
const testClock = Effect.gen(function*() {
  const context = yield* Layer.build(TestClock.layer())
  const run = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, context)
  return { run }
})

layer(TestApp({ role: "api" }), { timeout: 60_000, excludeTestServices: true })("review deadlines (TestClock)", (it) => {
  it.effect("the sweep applies each deadline outcome once the Clock passes the deadline, and escalates only once", () =>
    Effect.scoped(Effect.gen(function*() {
      const reviews = yield* Reviews
      const clock = yield* testClock
      const s = yield* setup("deadline outcomes", { required: true, deadline_ms: 60_000 })
      const approveJob = yield* s.enqueue({ review: { on_deadline: "approve" } })
      const rejectJob = yield* s.enqueue({ review: { on_deadline: "reject" } })
      const escalateJob = yield* s.enqueue({ review: { on_deadline: "escalate" } })
      const noDeadline = yield* s.enqueue({ review: { deadline_ms: null } })
      for (const job of [approveJob, rejectJob, escalateJob, noDeadline]) yield* s.work(job.id)
      const start = Date.now()

      yield* clock.run(TestClock.setTime(start))
      assert.deepStrictEqual(yield* clock.run(reviews.sweepDeadlines), { approved: 0, rejected: 0, escalated: 0 })
      yield* clock.run(TestClock.adjust("59 seconds"))
      assert.deepStrictEqual(yield* clock.run(reviews.sweepDeadlines), { approved: 0, rejected: 0, escalated: 0 })

      yield* clock.run(TestClock.adjust("2 seconds"))
      assert.deepStrictEqual(yield* clock.run(reviews.sweepDeadlines), { approved: 1, rejected: 1, escalated: 1 })
      const state = (jobId: JobId) => Effect.map(s.producer.jobs.get({ params: { projectId: s.projectId, jobId } }), (job) => job.state)
      assert.strictEqual(yield* state(approveJob.id), "succeeded")
      assert.strictEqual(yield* state(rejectJob.id), "rejected")
      assert.strictEqual(yield* state(escalateJob.id), "awaiting_review")
      assert.strictEqual(yield* state(noDeadline.id), "awaiting_review")

      yield* clock.run(TestClock.adjust("1 hour"))
      assert.deepStrictEqual(yield* clock.run(reviews.sweepDeadlines), { approved: 0, rejected: 0, escalated: 0 }, "escalation happens once")

      const escalated = yield* reviewEvents(s.tokens.viewer, s.projectId, escalateJob.id)
      assert.deepStrictEqual(escalated.map((e) => [e.type, e.to_state, e.actor]), [["review.escalated", "awaiting_review", "system"]])
      assert.strictEqual(field(escalated[0]?.data, "reason"), "deadline")
      const approved = yield* reviewEvents(s.tokens.viewer, s.projectId, approveJob.id)
      assert.deepStrictEqual(approved.map((e) => [e.type, e.to_state]), [["review.approved", "succeeded"]])
      assert.deepStrictEqual(yield* eventWorkerIds(escalateJob.id, "review.escalated"), [s.worker.id])
      // Automatic outcomes are not a reviewer's verdict on the worker.
      assert.deepStrictEqual(yield* workerCounters(s.worker.id), { approved: 0, rejected: 0 })
      const audit = yield* s.admin.audit.list({ params: { projectId: s.projectId }, query: { limit: 200 } })
      const actions = audit.items.filter((e) => e.actor === "system").map((e) => [e.action, e.target_id]).sort()
      assert.deepStrictEqual(actions, [
        ["review.approved", approveJob.id],
        ["review.escalated", escalateJob.id],
        ["review.rejected", rejectJob.id]
      ].sort())

      // An escalated review stays listed, marked, and can still be decided by a person. (The list's
      // `overdue` compares with the database clock, which the TestClock does not move.)
      const pending = yield* s.reviewer.reviews.list({ params: { projectId: s.projectId }, query: {} })
      assert.deepStrictEqual(pending.items.map((r) => [r.job_id, r.escalated_at !== null]), [
        [escalateJob.id, true],
        [noDeadline.id, false]
      ])
      const decided = yield* s.decide(s.tokens.reviewer, escalateJob.id, "approve")
      assert.strictEqual(decided.status, 200, decided.text)
    })))

  it.effect("the deadline loop sweeps on its schedule, driven by the Clock", () =>
    Effect.scoped(Effect.gen(function*() {
      const clock = yield* testClock
      const s = yield* setup("deadline loop", { required: true, deadline_ms: 30_000, on_deadline: "approve" })
      const job = yield* s.enqueue()
      yield* s.work(job.id)
      yield* clock.run(TestClock.setTime(Date.now()))
      const loop = yield* clock.run(deadlineLoop("10 seconds")).pipe(Effect.forkScoped)
      // The loop sweeps at once, then every 10 s of Clock time; the deadline is 30 s away.
      yield* clock.run(TestClock.adjust("20 seconds"))
      yield* Effect.sleep("300 millis")
      const before = yield* s.producer.jobs.get({ params: { projectId: s.projectId, jobId: job.id } })
      assert.strictEqual(before.state, "awaiting_review", "no sweep acts before the deadline")
      // Step by single intervals so each sleep of the loop is woken in turn.
      for (let i = 0; i < 3; i++) {
        yield* clock.run(TestClock.adjust("10 seconds"))
        yield* Effect.sleep("100 millis")
      }
      yield* waitForState(s.tokens.producer, s.projectId, job.id, "succeeded", 5000)
      yield* Fiber.interrupt(loop)
    })))
})

layer(
  TestApp({ handlerModules: ["./test/support/handlers.ts"], maintenanceIntervalMs: 100 }),
  { timeout: 60_000, excludeTestServices: true }
)("reviews with the in-process engine", (it) => {
  it.effect("in-process results wait for review; a retry hands the feedback to the handler", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("review engine")
      const { projectId, tokens } = project
      const admin = yield* clientFor(tokens.admin)
      const queue = yield* admin.queues.create({ params: { projectId }, payload: { name: queueName("inproc"), review: { required: true } } })
      const producer = yield* clientFor(tokens.producer)
      const job = yield* producer.jobs.enqueue({ params: { projectId }, payload: { queue: queue.name, kind: "reviewed", payload: {} } })
      const first = yield* waitForState(tokens.producer, projectId, job.id, "awaiting_review")
      assert.deepStrictEqual(first.result, { attempt: 1, feedback: null })
      const rejected = yield* raw("POST", `/v1/projects/${projectId}/reviews/${job.id}/reject`, {
        token: tokens.reviewer,
        body: JSON.stringify({ comment: "shorter, please", retry: true })
      })
      assert.strictEqual(rejected.status, 200, rejected.text)
      const second = yield* waitForJob(tokens.producer, projectId, job.id, (j: Job) => j.state === "awaiting_review" && j.attempt === 2)
      assert.strictEqual(field(second.result, "attempt"), 2)
      assert.strictEqual(field(field(second.result, "feedback"), "comment"), "shorter, please")
    }))

  it.effect("end to end: a 1 s deadline is acted on by the running engine (approve and escalate once)", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("review e2e deadline")
      const { projectId, tokens } = project
      const admin = yield* clientFor(tokens.admin)
      const queue = yield* admin.queues.create({
        params: { projectId },
        payload: { name: queueName("timed"), review: { required: true, deadline_ms: 1000, on_deadline: "approve" } }
      })
      const producer = yield* clientFor(tokens.producer)
      const enqueue = (review: ReviewPolicyPatch) =>
        producer.jobs.enqueue({ params: { projectId }, payload: { queue: queue.name, kind: "noop", payload: {}, review } })
      const approveJob = yield* enqueue({})
      const escalateJob = yield* enqueue({ on_deadline: "escalate" })
      const started = Date.now()
      const approved = yield* waitForState(tokens.producer, projectId, approveJob.id, "succeeded", 10_000)
      assert.isAtLeast(Date.now() - started, 900, "not before the deadline")
      assert.isNotNull(approved.finished_at)
      yield* waitFor(
        reviewEvents(tokens.viewer, projectId, escalateJob.id),
        (events) => events.some((e) => e.type === "review.escalated"),
        { label: "escalation" }
      )
      // Several more sweeps run (every 100 ms); the escalation is not repeated.
      yield* Effect.sleep("600 millis")
      const events = yield* reviewEvents(tokens.viewer, projectId, escalateJob.id)
      assert.deepStrictEqual(events.map((e) => e.type), ["review.escalated"])
      const still = yield* producer.jobs.get({ params: { projectId, jobId: escalateJob.id } })
      assert.strictEqual(still.state, "awaiting_review")
    }))
})
