import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { JobId, type ProjectId } from "../../src/Domain/Ids.ts"
import type { JobState } from "../../src/Jobs/Api.ts"
import {
  assertEnvelope,
  assertValidationIssue,
  createQueue,
  idOf,
  jobRequest,
  missingId,
  queueName,
  setupProject
} from "../support/fixtures.ts"
import { clientFor, raw, TestApp } from "../support/TestApp.ts"

const day = 24 * 3600 * 1000

interface JobSummary {
  readonly id: string
  readonly queue: string
  readonly kind: string
  readonly state: JobState
}
interface JobPage {
  readonly items: ReadonlyArray<JobSummary>
  readonly next_cursor: string | null
}
interface ListFilter {
  readonly queue?: string
  readonly state?: JobState
  readonly kind?: string
}

/** Every job matching `filter`, following cursors page by page; fails on a page larger than `limit`. */
const listAll = (token: string, projectId: ProjectId, filter: ListFilter = {}, limit = 200) =>
  Effect.gen(function*() {
    const client = yield* clientFor(token)
    const items: Array<JobSummary> = []
    let cursor: string | undefined 
    do {
      const page: JobPage = yield* client.jobs.list({
        params: { projectId },
        query: {
          limit,
          ...(filter.queue === undefined ? {} : { queue: queueName(filter.queue) }),
          ...(filter.state === undefined ? {} : { state: filter.state }),
          ...(filter.kind === undefined ? {} : { kind: filter.kind }),
          ...(cursor === undefined ? {} : { cursor })
        }
      })
      assert.isAtMost(page.items.length, limit)
      items.push(...page.items)
      cursor = page.next_cursor ?? undefined
    } while (cursor !== undefined)
    return items
  })

const enqueueRaw = (token: string, projectId: ProjectId, body: unknown) =>
  raw("POST", `/v1/projects/${projectId}/jobs`, { token, body: JSON.stringify(body) })

const batchRaw = (token: string, projectId: ProjectId, jobs: ReadonlyArray<unknown>) =>
  raw("POST", `/v1/projects/${projectId}/jobs/batch`, { token, body: JSON.stringify({ jobs }) })

layer(TestApp(), { timeout: 120_000, excludeTestServices: true })("jobs", (it) => {
  it.effect("an enqueued job is available now, normal priority, with the queue's attempts and timeout", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("enqueue")
      const client = yield* clientFor(tokens.producer)
      yield* createQueue(projectId, "default")
      const before = Date.now()
      const job = yield* client.jobs.enqueue({
        params: { projectId },
        payload: jobRequest("default", { payload: { to: "a@example.com", n: [1, 2, { deep: null }] } })
      })
      assert.strictEqual(job.project_id, projectId)
      assert.strictEqual(job.queue, "default")
      assert.strictEqual(job.kind, "email.send")
      assert.deepStrictEqual(job.payload, { to: "a@example.com", n: [1, 2, { deep: null }] })
      assert.strictEqual(job.state, "available")
      assert.strictEqual(job.priority, "normal")
      assert.strictEqual(job.attempt, 0)
      assert.strictEqual(job.max_attempts, 25)
      assert.strictEqual(job.timeout_ms, 300_000)
      assert.isNull(job.idempotency_key)
      assert.isNull(job.finished_at)
      assert.isAtMost(job.run_at.getTime(), Date.now() + 1000)
      assert.isAtLeast(job.run_at.getTime(), before - 5000)

      const fetched = yield* client.jobs.get({ params: { projectId, jobId: job.id } })
      assert.deepStrictEqual(fetched, job)
    }))

  it.effect("max_attempts and timeout_ms come from the queue unless the job overrides them", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("inherit")
      const admin = yield* clientFor(tokens.admin)
      yield* admin.queues.create({
        params: { projectId },
        payload: { name: queueName("tuned"), retry_policy: { max_attempts: 5 }, timeout_ms: 10_000 }
      })
      const client = yield* clientFor(tokens.producer)
      const inherited = yield* client.jobs.enqueue({ params: { projectId }, payload: jobRequest("tuned") })
      assert.strictEqual(inherited.max_attempts, 5)
      assert.strictEqual(inherited.timeout_ms, 10_000)

      const overridden = yield* client.jobs.enqueue({
        params: { projectId },
        payload: jobRequest("tuned", { max_attempts: 2, timeout_ms: 2000, priority: "critical" })
      })
      assert.strictEqual(overridden.max_attempts, 2)
      assert.strictEqual(overridden.timeout_ms, 2000)
      assert.strictEqual(overridden.priority, "critical")

      // A queue change later does not rewrite jobs already enqueued.
      yield* admin.queues.update({ params: { projectId, queueName: queueName("tuned") }, payload: { timeout_ms: 20_000 } })
      const again = yield* client.jobs.get({ params: { projectId, jobId: inherited.id } })
      assert.strictEqual(again.timeout_ms, 10_000)
      const later = yield* client.jobs.enqueue({ params: { projectId }, payload: jobRequest("tuned") })
      assert.strictEqual(later.timeout_ms, 20_000)
    }))

  it.effect("delay_ms and a future run_at make a scheduled job; a past run_at is available", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("schedule")
      yield* createQueue(projectId, "later")
      const client = yield* clientFor(tokens.producer)

      const before = Date.now()
      const delayed = yield* client.jobs.enqueue({ params: { projectId }, payload: jobRequest("later", { delay_ms: 60_000 }) })
      assert.strictEqual(delayed.state, "scheduled")
      assert.isAbove(delayed.run_at.getTime(), Date.now() + 50_000)
      assert.isAtMost(delayed.run_at.getTime(), Date.now() + 61_000)
      assert.isAtLeast(delayed.run_at.getTime(), before + 55_000)

      const runAt = new Date(Date.now() + 3600_000)
      const scheduled = yield* client.jobs.enqueue({ params: { projectId }, payload: jobRequest("later", { run_at: runAt }) })
      assert.strictEqual(scheduled.state, "scheduled")
      assert.strictEqual(scheduled.run_at.toISOString(), runAt.toISOString())

      const past = new Date(Date.now() - 3600_000)
      const overdue = yield* client.jobs.enqueue({ params: { projectId }, payload: jobRequest("later", { run_at: past }) })
      assert.strictEqual(overdue.state, "available")
      assert.strictEqual(overdue.run_at.toISOString(), past.toISOString())

      const zero = yield* client.jobs.enqueue({ params: { projectId }, payload: jobRequest("later", { delay_ms: 0 }) })
      assert.strictEqual(zero.state, "available")
    }))

  it.effect("a batch of 1000 is accepted in order and every job is listed", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("big batch")
      yield* createQueue(projectId, "bulk")
      const client = yield* clientFor(tokens.producer)
      const jobs = Array.from({ length: 1000 }, (_, i) => jobRequest("bulk", { kind: "bulk.item", payload: { i } }))
      const result = yield* client.jobs.enqueueBatch({ params: { projectId }, payload: { jobs } })
      assert.strictEqual(result.jobs.length, 1000)
      for (const [i, job] of result.jobs.entries()) assert.deepStrictEqual(job.payload, { i }, `job ${i} is in request order`)
      assert.strictEqual(new Set(result.jobs.map((job) => job.id)).size, 1000)

      const listed = yield* listAll(tokens.viewer, projectId, { queue: "bulk" })
      assert.strictEqual(listed.length, 1000)
      assert.sameMembers(listed.map((job) => job.id), result.jobs.map((job) => job.id))
    }))

  it.effect("a batch of 1001, or of none, is refused by the schema", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("too many")
      yield* createQueue(projectId, "bulk")
      const jobs = Array.from({ length: 1001 }, (_, i) => jobRequest("bulk", { payload: { i } }))
      assertValidationIssue(yield* batchRaw(tokens.producer, projectId, jobs), ["payload", "jobs"])
      assertValidationIssue(yield* batchRaw(tokens.producer, projectId, []), ["payload", "jobs"])
      assert.strictEqual((yield* listAll(tokens.viewer, projectId)).length, 0)
    }))

  it.effect("a batch is all or nothing: one missing queue is 422 and nothing is written", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("atomic")
      yield* createQueue(projectId, "real")
      const client = yield* clientFor(tokens.producer)
      const jobs = [
        jobRequest("real", { payload: { n: 1 } }),
        jobRequest("real", { payload: { n: 2 }, idempotency_key: "atomic-2" }),
        jobRequest("missing", { payload: { n: 3 } }),
        jobRequest("real", { payload: { n: 4 } })
      ]
      const error = yield* client.jobs.enqueueBatch({ params: { projectId }, payload: { jobs } }).pipe(Effect.flip)
      assert.strictEqual(error._tag, "Unprocessable")
      const response = yield* batchRaw(tokens.producer, projectId, jobs)
      const envelope = assertEnvelope(response, 422, "Unprocessable")
      assert.include(envelope.message, "missing")
      assert.strictEqual((yield* listAll(tokens.viewer, projectId)).length, 0, "none of the valid jobs was written")

      // The idempotency key of the refused batch was not consumed: a later request with it creates a job.
      const retried = yield* client.jobs.enqueue({
        params: { projectId },
        payload: jobRequest("real", { payload: { n: 2 }, idempotency_key: "atomic-2" })
      })
      assert.strictEqual(retried.idempotency_key, "atomic-2")
      assert.strictEqual((yield* listAll(tokens.viewer, projectId)).length, 1)
    }))

  it.effect("a batch without idempotency keys, one statement, is all or nothing too and names the first missing queue", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("atomic statement")
      yield* createQueue(projectId, "real")
      yield* createQueue(projectId, "other")
      const jobs = [jobRequest("real"), jobRequest("other"), jobRequest("absent"), jobRequest("real"), jobRequest("gone")]
      const envelope = assertEnvelope(yield* batchRaw(tokens.producer, projectId, jobs), 422, "Unprocessable")
      assert.strictEqual(envelope.message, "job 2: queue 'absent' does not exist")
      assert.strictEqual((yield* listAll(tokens.viewer, projectId)).length, 0, "none of the valid jobs was written")
      const written = yield* batchRaw(tokens.producer, projectId, [jobRequest("real"), jobRequest("other")])
      assert.strictEqual(written.status, 201, written.text)
      assert.strictEqual((yield* listAll(tokens.viewer, projectId)).length, 2)
    }))

  it.effect("a single job for a missing queue is 422", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("missing queue")
      const response = yield* enqueueRaw(tokens.producer, projectId, jobRequest("nowhere"))
      assertEnvelope(response, 422, "Unprocessable")
    }))

  it.effect("idempotency: the same key and body replay the same job with 201; a different body is 409", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("idempotency")
      yield* createQueue(projectId, "default")
      const body = jobRequest("default", { idempotency_key: "order-42", payload: { order: 42 } })
      const first = yield* enqueueRaw(tokens.producer, projectId, body)
      assert.strictEqual(first.status, 201)
      const replay = yield* enqueueRaw(tokens.producer, projectId, body)
      assert.strictEqual(replay.status, 201)
      assert.strictEqual(idOf(replay), idOf(first))

      // Key order in the JSON does not make it a different request.
      const reordered = yield* enqueueRaw(tokens.producer, projectId, {
        payload: { order: 42 },
        idempotency_key: "order-42",
        kind: body.kind,
        queue: body.queue
      })
      assert.strictEqual(reordered.status, 201)
      assert.strictEqual(idOf(reordered), idOf(first))

      const client = yield* clientFor(tokens.producer)
      const typed = yield* client.jobs.enqueue({ params: { projectId }, payload: body })
      assert.strictEqual(typed.id, idOf(first))
      assert.strictEqual(typed.idempotency_key, "order-42")

      const different = yield* enqueueRaw(tokens.producer, projectId, { ...body, payload: { order: 43 } })
      assertEnvelope(different, 409, "Conflict")
      const otherPriority = yield* client.jobs.enqueue({ params: { projectId }, payload: { ...body, priority: "high" } })
        .pipe(Effect.flip)
      assert.strictEqual(otherPriority._tag, "Conflict")

      const listed = yield* listAll(tokens.viewer, projectId)
      assert.deepStrictEqual(listed.map((job) => job.id), [idOf(first)], "exactly one job was written")
    }))

  it.effect("concurrent requests with one idempotency key create exactly one job", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("idem race")
      yield* createQueue(projectId, "default")
      const body = jobRequest("default", { idempotency_key: "race", payload: { n: 1 } })
      const same = yield* Effect.all(Array.from({ length: 8 }, () => enqueueRaw(tokens.producer, projectId, body)), {
        concurrency: "unbounded"
      })
      for (const response of same) assert.strictEqual(response.status, 201, response.text)
      assert.strictEqual(new Set(same.map(idOf)).size, 1, "every replay names the same job")

      const racing = yield* Effect.all(
        Array.from({ length: 8 }, (_, n) =>
          enqueueRaw(tokens.producer, projectId, jobRequest("default", { idempotency_key: "race-2", payload: { n } }))),
        { concurrency: "unbounded" }
      )
      const statuses = racing.map((response) => response.status).sort()
      assert.deepStrictEqual(statuses, [201, 409, 409, 409, 409, 409, 409, 409], "one winner, every other body conflicts")
      assert.strictEqual((yield* listAll(tokens.viewer, projectId)).length, 2)
    }))

  it.effect("idempotency keys are scoped to the project", () =>
    Effect.gen(function*() {
      const a = yield* setupProject("idem a")
      const b = yield* setupProject("idem b")
      yield* createQueue(a.projectId, "default")
      yield* createQueue(b.projectId, "default")
      const body = jobRequest("default", { idempotency_key: "shared-key" })
      const inA = yield* enqueueRaw(a.tokens.producer, a.projectId, body)
      const inB = yield* enqueueRaw(b.tokens.producer, b.projectId, body)
      assert.strictEqual(inA.status, 201)
      assert.strictEqual(inB.status, 201)
      assert.notStrictEqual(idOf(inA), idOf(inB))
    }))

  it.effect("idempotency within one batch: duplicates collapse to one job; a conflicting duplicate fails the batch", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("idem batch")
      yield* createQueue(projectId, "default")
      const client = yield* clientFor(tokens.producer)
      const same = jobRequest("default", { idempotency_key: "dup", payload: { x: 1 } })
      const result = yield* client.jobs.enqueueBatch({
        params: { projectId },
        payload: { jobs: [same, jobRequest("default", { payload: { x: 2 } }), same] }
      })
      assert.strictEqual(result.jobs.length, 3)
      assert.strictEqual(result.jobs[0]?.id, result.jobs[2]?.id)
      assert.notStrictEqual(result.jobs[0]?.id, result.jobs[1]?.id)
      assert.strictEqual((yield* listAll(tokens.viewer, projectId)).length, 2)

      // Two items sharing a key with different bodies conflict, and the batch writes nothing.
      const conflicting = [
        jobRequest("default", { payload: { y: 1 } }),
        jobRequest("default", { idempotency_key: "dup2", payload: { x: 1 } }),
        jobRequest("default", { idempotency_key: "dup2", payload: { x: 2 } })
      ]
      const response = yield* batchRaw(tokens.producer, projectId, conflicting)
      assertEnvelope(response, 409, "Conflict")
      assert.strictEqual((yield* listAll(tokens.viewer, projectId)).length, 2, "the conflicting batch wrote nothing")

      // A batch that reuses an earlier key with a different body conflicts too, and writes nothing.
      const reuse = yield* batchRaw(tokens.producer, projectId, [
        jobRequest("default", { payload: { z: 1 } }),
        jobRequest("default", { idempotency_key: "dup", payload: { x: 999 } })
      ])
      assertEnvelope(reuse, 409, "Conflict")
      assert.strictEqual((yield* listAll(tokens.viewer, projectId)).length, 2)
    }))

  it.effect("run_at and delay_ms together are a 400 naming run_at", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("both")
      yield* createQueue(projectId, "default")
      const both = { ...jobRequest("default"), run_at: new Date(Date.now() + 60_000).toISOString(), delay_ms: 1000 }
      // In a batch the offending field is payload.jobs.<index>.run_at ...
      assertValidationIssue(
        yield* batchRaw(tokens.producer, projectId, [jobRequest("default"), both]),
        ["payload", "jobs", 1, "run_at"]
      )
      // ... and for a single job, whose body is the job itself, payload.run_at.
      assertValidationIssue(yield* enqueueRaw(tokens.producer, projectId, both), ["payload", "run_at"])
      assert.strictEqual((yield* listAll(tokens.viewer, projectId)).length, 0)
    }))

  it.effect("scheduling more than 365 days ahead is refused", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("far future")
      yield* createQueue(projectId, "default")
      const farRunAt = yield* enqueueRaw(tokens.producer, projectId, {
        ...jobRequest("default"),
        run_at: new Date(Date.now() + 366 * day).toISOString()
      })
      assertEnvelope(farRunAt, 422, "Unprocessable")
      const farDelay = yield* enqueueRaw(tokens.producer, projectId, { ...jobRequest("default"), delay_ms: 366 * day })
      assertValidationIssue(farDelay, ["payload", "delay_ms"])
      const nearlyAYear = yield* enqueueRaw(tokens.producer, projectId, {
        ...jobRequest("default"),
        run_at: new Date(Date.now() + 364 * day).toISOString()
      })
      assert.strictEqual(nearlyAYear.status, 201)
    }))

  it.effect("malformed jobs are 400 ValidationErrors naming the field", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("malformed jobs")
      yield* createQueue(projectId, "default")
      const enqueue = (body: unknown) => enqueueRaw(tokens.producer, projectId, body)
      assertValidationIssue(yield* enqueue({ ...jobRequest("default"), kind: "has spaces" }), ["payload", "kind"])
      assertValidationIssue(yield* enqueue({ ...jobRequest("default"), priority: "urgent" }), ["payload", "priority"])
      assertValidationIssue(yield* enqueue({ ...jobRequest("default"), max_attempts: 0 }), ["payload", "max_attempts"])
      assertValidationIssue(yield* enqueue({ ...jobRequest("default"), timeout_ms: 10 }), ["payload", "timeout_ms"])
      assertValidationIssue(yield* enqueue({ ...jobRequest("default"), delay_ms: -1 }), ["payload", "delay_ms"])
      assertValidationIssue(yield* enqueue({ ...jobRequest("default"), run_at: "tomorrow" }), ["payload", "run_at"])
      assertValidationIssue(yield* enqueue({ ...jobRequest("default"), idempotency_key: "" }), ["payload", "idempotency_key"])
      assertValidationIssue(yield* enqueue({ ...jobRequest("default"), queue: "Bad Name" }), ["payload", "queue"])
      assertValidationIssue(yield* enqueue({ queue: "default", kind: "k" }), ["payload", "payload"])
      assert.strictEqual((yield* listAll(tokens.viewer, projectId)).length, 0)
    }))

  it.effect("get returns a job; an unknown or malformed id is 404 / 400", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("get")
      yield* createQueue(projectId, "default")
      const client = yield* clientFor(tokens.viewer)
      const producer = yield* clientFor(tokens.producer)
      const job = yield* producer.jobs.enqueue({ params: { projectId }, payload: jobRequest("default") })
      assert.deepStrictEqual(yield* client.jobs.get({ params: { projectId, jobId: job.id } }), job)
      const missing = yield* client.jobs.get({ params: { projectId, jobId: JobId.make(missingId) } }).pipe(Effect.flip)
      assert.strictEqual(missing._tag, "NotFound")
      const envelope = assertEnvelope(
        yield* raw("GET", `/v1/projects/${projectId}/jobs/${missingId}`, { token: tokens.viewer }),
        404,
        "NotFound"
      )
      assert.strictEqual(envelope.message, "job not found")
      assertValidationIssue(
        yield* raw("GET", `/v1/projects/${projectId}/jobs/42`, { token: tokens.viewer }),
        ["params", "jobId"]
      )
    }))

  it.effect("list filters by queue, state and kind, and pages without duplicates", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("filters")
      yield* createQueue(projectId, "alpha")
      yield* createQueue(projectId, "beta")
      const client = yield* clientFor(tokens.producer)
      const enqueue = (queue: string, kind: string, delayed: boolean) =>
        client.jobs.enqueue({
          params: { projectId },
          payload: jobRequest(queue, { kind, ...(delayed ? { delay_ms: 3_600_000 } : {}) })
        })
      const created = [
        yield* enqueue("alpha", "a.one", false),
        yield* enqueue("alpha", "a.two", true),
        yield* enqueue("alpha", "a.one", true),
        yield* enqueue("beta", "a.one", false),
        yield* enqueue("beta", "b.one", false),
        yield* enqueue("beta", "b.one", true),
        yield* enqueue("alpha", "a.two", false)
      ]
      const cancelled = created[6]
      if (cancelled === undefined) return yield* Effect.die(new Error("fixture"))
      yield* client.jobs.cancel({ params: { projectId, jobId: cancelled.id } })

      const ids = (jobs: ReadonlyArray<{ readonly id: string }>) => jobs.map((job) => job.id).sort()

      for (const limit of [1, 2, 3, 50]) {
        const all = yield* listAll(tokens.viewer, projectId, {}, limit)
        assert.deepStrictEqual(ids(all), ids(created), `limit ${limit}: each job exactly once`)
        assert.strictEqual(new Set(all.map((job) => job.id)).size, all.length)
        assert.deepStrictEqual(all.map((job) => job.id), [...all.map((job) => job.id)].sort().reverse(), "newest first")
      }

      const alpha = yield* listAll(tokens.viewer, projectId, { queue: "alpha" }, 2)
      assert.deepStrictEqual(ids(alpha), ids(created.filter((job) => job.queue === "alpha")))
      assert.isTrue(alpha.every((job) => job.queue === "alpha"))

      const scheduled = yield* listAll(tokens.viewer, projectId, { state: "scheduled" }, 2)
      assert.strictEqual(scheduled.length, 3)
      assert.isTrue(scheduled.every((job) => job.state === "scheduled"))

      const available = yield* listAll(tokens.viewer, projectId, { state: "available" }, 2)
      assert.strictEqual(available.length, 3)

      const cancelledJobs = yield* listAll(tokens.viewer, projectId, { state: "cancelled" })
      assert.deepStrictEqual(ids(cancelledJobs), [cancelled.id])

      const kindA1 = yield* listAll(tokens.viewer, projectId, { kind: "a.one" }, 1)
      assert.strictEqual(kindA1.length, 3)
      assert.isTrue(kindA1.every((job) => job.kind === "a.one"))

      const combined = yield* listAll(tokens.viewer, projectId, { queue: "beta", state: "available", kind: "b.one" })
      assert.strictEqual(combined.length, 1)
      assert.strictEqual(combined[0]?.id, created[4]?.id)

      const none = yield* listAll(tokens.viewer, projectId, { queue: "gamma" })
      assert.strictEqual(none.length, 0)

      assertValidationIssue(
        yield* raw("GET", `/v1/projects/${projectId}/jobs?state=sleeping`, { token: tokens.viewer }),
        ["query", "state"]
      )
      assertValidationIssue(
        yield* raw("GET", `/v1/projects/${projectId}/jobs?cursor=bogus`, { token: tokens.viewer }),
        ["query", "cursor"]
      )
      for (const limit of ["201", "0", "-1", "99999999999999999999", "1.5", "ten"]) {
        assertValidationIssue(
          yield* raw("GET", `/v1/projects/${projectId}/jobs?limit=${limit}`, { token: tokens.viewer }),
          ["query", "limit"]
        )
      }
      // A cursor that decodes but was altered (another id, another version) is refused too.
      const tampered = Buffer.from("v2:01a20623-99f0-7045-96c5-2e9f574d7135").toString("base64url")
      assertValidationIssue(
        yield* raw("GET", `/v1/projects/${projectId}/jobs?cursor=${tampered}`, { token: tokens.viewer }),
        ["query", "cursor"]
      )
    }))

  it.effect("cancel: available and scheduled jobs become cancelled; twice returns the cancelled job; unknown is 404", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("cancel")
      yield* createQueue(projectId, "default")
      const client = yield* clientFor(tokens.producer)
      const job = yield* client.jobs.enqueue({ params: { projectId }, payload: jobRequest("default") })
      assert.strictEqual(job.state, "available")

      const cancelled = yield* client.jobs.cancel({ params: { projectId, jobId: job.id } })
      assert.strictEqual(cancelled.id, job.id)
      assert.strictEqual(cancelled.state, "cancelled")
      assert.isNotNull(cancelled.finished_at)
      assert.isAtLeast(cancelled.finished_at?.getTime() ?? 0, job.created_at.getTime())

      const twice = yield* client.jobs.cancel({ params: { projectId, jobId: job.id } })
      assert.strictEqual(twice.state, "cancelled")
      assert.deepStrictEqual(twice.finished_at, cancelled.finished_at, "the second cancel changes nothing")
      const response = yield* raw("POST", `/v1/projects/${projectId}/jobs/${job.id}/cancel`, { token: tokens.producer })
      assert.strictEqual(response.status, 200)

      const stored = yield* client.jobs.get({ params: { projectId, jobId: job.id } })
      assert.strictEqual(stored.state, "cancelled")

      const scheduled = yield* client.jobs.enqueue({ params: { projectId }, payload: jobRequest("default", { delay_ms: 60_000 }) })
      const cancelledScheduled = yield* client.jobs.cancel({ params: { projectId, jobId: scheduled.id } })
      assert.strictEqual(cancelledScheduled.state, "cancelled")

      const unknown = yield* client.jobs.cancel({ params: { projectId, jobId: JobId.make(missingId) } }).pipe(Effect.flip)
      assert.strictEqual(unknown._tag, "NotFound")
      assertEnvelope(
        yield* raw("POST", `/v1/projects/${projectId}/jobs/${missingId}/cancel`, { token: tokens.producer }),
        404,
        "NotFound"
      )
    }))
})

layer(TestApp({ maxPayloadBytes: 1024 }), { timeout: 120_000, excludeTestServices: true })("jobs: payload limit", (it) => {
  // `{"d":"…"}` is 8 bytes plus the string.
  const payloadOf = (bytes: number) => ({ d: "x".repeat(bytes - 8) })

  it.effect("a payload up to FOREMAN_MAX_PAYLOAD_BYTES is accepted; one byte more is 413", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("payload limit")
      yield* createQueue(projectId, "default")
      const atLimit = yield* enqueueRaw(tokens.producer, projectId, jobRequest("default", { payload: payloadOf(1024) }))
      assert.strictEqual(atLimit.status, 201)
      const over = yield* enqueueRaw(tokens.producer, projectId, jobRequest("default", { payload: payloadOf(1025) }))
      assertEnvelope(over, 413, "PayloadTooLarge")

      const client = yield* clientFor(tokens.producer)
      const typed = yield* client.jobs.enqueue({ params: { projectId }, payload: jobRequest("default", { payload: payloadOf(5000) }) })
        .pipe(Effect.flip)
      assert.strictEqual(typed._tag, "PayloadTooLarge")
    }))

  it.effect("the limit counts UTF-8 bytes, not characters", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("utf8 limit")
      yield* createQueue(projectId, "default")
      // 600 characters, 1200 bytes.
      const response = yield* enqueueRaw(tokens.producer, projectId, jobRequest("default", { payload: { d: "é".repeat(600) } }))
      assertEnvelope(response, 413, "PayloadTooLarge")
    }))

  it.effect("an upper-case id is a 400 wherever a client gives one: in the path and in a body", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("upper-case ids")
      const client = yield* clientFor(tokens.producer)
      yield* createQueue(projectId, "default")
      const job = yield* client.jobs.enqueue({ params: { projectId }, payload: jobRequest("default") })
      const paths = [
        `/v1/projects/${projectId.toUpperCase()}/jobs/${job.id}`,
        `/v1/projects/${projectId}/jobs/${job.id.toUpperCase()}`
      ]
      for (const path of paths) {
        const envelope = assertEnvelope(yield* raw("GET", path, { token: tokens.producer }), 400, "ValidationError")
        assert.include(envelope.issues?.[0]?.message ?? "", "lower-case", path)
      }
      const worker = missingId.toUpperCase()
      const body = { ...jobRequest("default"), assign: { worker_id: worker } }
      const single = assertValidationIssue(yield* enqueueRaw(tokens.producer, projectId, body), ["payload", "assign", "worker_id"])
      const batch = assertValidationIssue(yield* batchRaw(tokens.producer, projectId, [body]), ["payload", "jobs", 0, "assign", "worker_id"])
      for (const envelope of [single, batch]) assert.match(envelope.issues?.[0]?.message ?? "", /lower-case/)
      // The lower-case forms are the job.
      const found = yield* raw("GET", `/v1/projects/${projectId}/jobs/${job.id}`, { token: tokens.producer })
      assert.strictEqual(found.status, 200)
    }))

  it.effect("one oversized payload fails the whole batch and nothing is written", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("batch limit")
      yield* createQueue(projectId, "default")
      const response = yield* batchRaw(tokens.producer, projectId, [
        jobRequest("default", { payload: payloadOf(100) }),
        jobRequest("default", { payload: payloadOf(2000) })
      ])
      assertEnvelope(response, 413, "PayloadTooLarge")
      assert.strictEqual((yield* listAll(tokens.viewer, projectId)).length, 0)
    }))
})
