import { assert, layer } from "@effect/vitest"
import { Cause, Effect, Exit } from "effect"
import { SqlClient } from "effect/sql"
import { actorName, CurrentPrincipal, type Principal } from "../../src/Auth/Principal.ts"
import { ApiKeyId, newId, QueueName } from "../../src/Domain/Ids.ts"
import { Jobs } from "../../src/Jobs/Jobs.ts"
import { JobsRepo, type NewJob } from "../../src/Jobs/JobsRepo.ts"
import { createQueue, type ProjectFixture, jobRequest, setupProject } from "../support/fixtures.ts"
import { raw, TestApp } from "../support/TestApp.ts"

const producerOf = (project: ProjectFixture): Principal => ({
  kind: "api_key",
  keyId: ApiKeyId.make(project.keyIds.producer),
  projectId: project.projectId,
  role: "producer"
})

/** How many transactions wrote the `enqueued` events of these jobs: one per statement that inserted them. */
const statementsFor = (ids: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ readonly n: number }>`
      SELECT count(DISTINCT xact_id)::int AS n FROM job_events WHERE type = 'enqueued' AND job_id IN ${sql.in(ids)}`
    return rows[0]?.n ?? 0
  }).pipe(Effect.orDie)

const newJob = (queue: string, overrides: Partial<NewJob> = {}): NewJob => ({
  id: newId(),
  queue: QueueName.make(queue),
  kind: "email.send",
  payload: {},
  priority: 2,
  run_at: null,
  delay_ms: null,
  max_attempts: null,
  retry_policy: null,
  timeout_ms: null,
  idempotency_key: null,
  request_hash: null,
  assign: null,
  assigned_worker_id: null,
  assigned_label: null,
  assigned_user_id: null,
  review: null,
  ...overrides
})

// An `api` instance runs no engine, so no enqueue is dispatched eagerly: every single enqueue coalesces.
layer(TestApp({ role: "api" }), { timeout: 60_000 })("coalesced single enqueues", (it) => {
  it.effect("concurrent single enqueues share one statement; each gets its own job, trace context and event", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("coalesce")
      yield* createQueue(project.projectId, "work")
      const jobs = yield* Jobs
      const principal = producerOf(project)
      const enqueued = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, n) => n),
        (n) => jobs.enqueue(project.projectId, jobRequest("work", { payload: { n } })).pipe(Effect.withSpan(`request ${n}`)),
        { concurrency: "unbounded" }
      ).pipe(Effect.provideService(CurrentPrincipal, principal))

      // Each caller got the row it asked for.
      assert.deepStrictEqual(enqueued.map((job) => job.payload), Array.from({ length: 20 }, (_, n) => ({ n })))
      const ids = enqueued.map((job) => job.id)
      assert.strictEqual(new Set(ids).size, 20)
      assert.strictEqual(yield* statementsFor(ids), 1)

      const sql = yield* SqlClient.SqlClient
      const stored = yield* sql<{ readonly traceparent: string | null; readonly actor: string }>`
        SELECT j.traceparent, e.actor FROM jobs j JOIN job_events e ON e.job_id = j.id AND e.type = 'enqueued'
        WHERE j.id IN ${sql.in(ids)}`.pipe(Effect.orDie)
      assert.strictEqual(stored.length, 20)
      // Every job carries the trace context of its own request, not the first caller's.
      assert.strictEqual(new Set(stored.map((row) => row.traceparent)).size, 20)
      for (const row of stored) {
        assert.match(row.traceparent ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
        assert.strictEqual(row.actor, actorName(principal))
      }
    }))

  it.effect("outcomes stay per request inside a shared statement: unknown queue, idempotent replay, key reuse", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("coalesce outcomes")
      yield* createQueue(project.projectId, "work")
      const jobs = yield* Jobs
      const requests = [
        jobRequest("work", { payload: { n: 1 } }),
        jobRequest("missing", { payload: { n: 2 } }),
        jobRequest("work", { payload: { n: 3 }, idempotency_key: "same" }),
        jobRequest("work", { payload: { n: 3 }, idempotency_key: "same" }),
        jobRequest("work", { payload: { n: 4 }, idempotency_key: "reused" }),
        jobRequest("work", { payload: { n: 5 }, idempotency_key: "reused" })
      ]
      const exits = yield* Effect.forEach(requests, (request) => Effect.exit(jobs.enqueue(project.projectId, request)), {
        concurrency: "unbounded"
      }).pipe(Effect.provideService(CurrentPrincipal, producerOf(project)))
      const [plain, missing, replayA, replayB, reusedA, reusedB] = exits
      if (
        plain === undefined || missing === undefined || replayA === undefined || replayB === undefined ||
        reusedA === undefined || reusedB === undefined
      ) return assert.fail("expected six outcomes")

      assert.isTrue(Exit.isSuccess(plain))
      const refused = Exit.isFailure(missing) ? Cause.findErrorOption(missing.cause) : undefined
      assert.strictEqual(refused?._tag === "Some" ? refused.value._tag : "none", "Unprocessable")
      // The same key and request twice: one job, returned to both.
      if (!Exit.isSuccess(replayA) || !Exit.isSuccess(replayB)) return assert.fail("replays should succeed")
      assert.strictEqual(replayA.value.id, replayB.value.id)
      // The same key with a different request: one of the two is refused.
      const reused = [reusedA, reusedB]
      assert.strictEqual(reused.filter(Exit.isSuccess).length, 1)
      const conflict = reused.flatMap((exit) => Exit.isFailure(exit) ? [Cause.findErrorOption(exit.cause)] : [])
      assert.strictEqual(conflict[0]?._tag === "Some" ? conflict[0].value._tag : "none", "Conflict")

      const sql = yield* SqlClient.SqlClient
      const count = yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM jobs WHERE project_id = ${project.projectId}`.pipe(Effect.orDie)
      assert.strictEqual(count[0]?.n, 3)
    }))

  it.effect("a shared statement that fails is retried row by row: only the bad row's caller fails", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("coalesce failure")
      yield* createQueue(project.projectId, "work")
      const repo = yield* JobsRepo
      // Priority 7 passes no API schema; the table's check constraint refuses it and fails the statement.
      const rows = [newJob("work"), newJob("work", { priority: 7 }), newJob("work"), newJob("work")]
      const exits = yield* Effect.forEach(
        rows,
        (row) => Effect.exit(repo.insertCoalesced(project.projectId, row, "api_key:test")),
        { concurrency: "unbounded" }
      )
      const insertedIds = exits.map((exit) => Exit.isSuccess(exit) ? exit.value?.job.id : "failed")
      assert.deepStrictEqual(insertedIds, [rows[0]?.id, "failed", rows[2]?.id, rows[3]?.id])
      // Each surviving row went in on its own.
      assert.strictEqual(yield* statementsFor([rows[0], rows[2], rows[3]].flatMap((row) => row?.id ?? [])), 3)
    }))

  it.effect("concurrent batches without idempotency keys share one statement with single enqueues; each gets its own jobs, in order", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("coalesce batches")
      yield* createQueue(project.projectId, "work")
      const jobs = yield* Jobs
      const batches = [0, 1, 2].map((b) =>
        Array.from({ length: 5 }, (_, n) => jobRequest("work", { payload: { b, n } }))
      )
      const [fromBatches, fromSingles] = yield* Effect.all([
        Effect.forEach(
          batches,
          (items, b) => jobs.enqueueBatch(project.projectId, items).pipe(Effect.withSpan(`batch ${b}`)),
          { concurrency: "unbounded" }
        ),
        Effect.forEach([0, 1], (n) => jobs.enqueue(project.projectId, jobRequest("work", { payload: { single: n } })), {
          concurrency: "unbounded"
        })
      ], { concurrency: "unbounded" }).pipe(Effect.provideService(CurrentPrincipal, producerOf(project)))

      for (const [b, inserted] of fromBatches.entries()) {
        assert.deepStrictEqual(inserted.map((job) => job.payload), Array.from({ length: 5 }, (_, n) => ({ b, n })))
      }
      assert.deepStrictEqual(fromSingles.map((job) => job.payload), [{ single: 0 }, { single: 1 }])
      const ids = [...fromBatches.flat(), ...fromSingles].map((job) => job.id)
      assert.strictEqual(new Set(ids).size, 17)
      assert.strictEqual(yield* statementsFor(ids), 1)

      // Each batch's jobs carry their own request's trace context, one per batch.
      const sql = yield* SqlClient.SqlClient
      const traceparents = yield* Effect.forEach(fromBatches, (inserted) =>
        sql<{ readonly traceparent: string | null }>`
          SELECT DISTINCT traceparent FROM jobs WHERE id IN ${sql.in(inserted.map((job) => job.id))}`.pipe(
          Effect.map((rows) => rows.map((row) => row.traceparent ?? "")),
          Effect.orDie
        ))
      for (const distinct of traceparents) {
        assert.strictEqual(distinct.length, 1)
        assert.match(distinct[0] ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
      }
      assert.strictEqual(new Set(traceparents.flat()).size, 3)
    }))

  it.effect("a batch naming a missing queue fails alone and writes nothing; the enqueues it was coalesced with go in", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("coalesce batch missing queue")
      yield* createQueue(project.projectId, "work")
      const jobs = yield* Jobs
      const good = [jobRequest("work", { payload: { n: 1 } }), jobRequest("work", { payload: { n: 2 } })]
      const bad = [jobRequest("work", { payload: { n: 3 } }), jobRequest("missing", { payload: { n: 4 } })]
      const [goodExit, badExit, singleExit] = yield* Effect.all([
        Effect.exit(jobs.enqueueBatch(project.projectId, good)),
        Effect.exit(jobs.enqueueBatch(project.projectId, bad)),
        Effect.exit(jobs.enqueue(project.projectId, jobRequest("work", { payload: { n: 5 } })))
      ], { concurrency: "unbounded" }).pipe(Effect.provideService(CurrentPrincipal, producerOf(project)))

      if (!Exit.isSuccess(goodExit) || !Exit.isSuccess(singleExit)) return assert.fail("the good enqueues should succeed")
      assert.deepStrictEqual(goodExit.value.map((job) => job.payload), [{ n: 1 }, { n: 2 }])
      assert.deepStrictEqual(singleExit.value.payload, { n: 5 })
      const refused = Exit.isFailure(badExit) ? Cause.findErrorOption(badExit.cause) : undefined
      assert.strictEqual(refused?._tag === "Some" ? refused.value._tag : "none", "Unprocessable")
      assert.strictEqual(refused?._tag === "Some" ? refused.value.message : "", "job 1: queue 'missing' does not exist")

      const sql = yield* SqlClient.SqlClient
      const payloads = yield* sql<{ readonly n: number }>`
        SELECT (payload->>'n')::int AS n FROM jobs WHERE project_id = ${project.projectId} ORDER BY 1`.pipe(Effect.orDie)
      assert.deepStrictEqual(payloads.map((row) => row.n), [1, 2, 5])
    }))

  it.effect("a shared statement that fails is retried request by request: only the bad batch's caller fails", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("coalesce batch failure")
      yield* createQueue(project.projectId, "work")
      const repo = yield* JobsRepo
      const good = [newJob("work"), newJob("work")]
      // Priority 7 passes no API schema; the table's check constraint refuses it and fails the statement.
      const bad = [newJob("work"), newJob("work", { priority: 7 })]
      const [goodExit, badExit, singleExit] = yield* Effect.all([
        Effect.exit(repo.insertBatchCoalesced(project.projectId, good, "api_key:test")),
        Effect.exit(repo.insertBatchCoalesced(project.projectId, bad, "api_key:test")),
        Effect.exit(repo.insertCoalesced(project.projectId, newJob("work"), "api_key:test"))
      ], { concurrency: "unbounded" })

      if (!Exit.isSuccess(goodExit) || !Exit.isSuccess(singleExit)) return assert.fail("the good rows should go in")
      assert.deepStrictEqual(goodExit.value.map((row) => row.job.id), good.map((job) => job.id))
      assert.isDefined(singleExit.value)
      assert.isTrue(Exit.isFailure(badExit))
      // The good batch went in on its own statement, none of the bad batch's rows did.
      assert.strictEqual(yield* statementsFor(good.map((job) => job.id)), 1)
      const sql = yield* SqlClient.SqlClient
      const count = yield* sql<{ readonly n: number }>`
        SELECT count(*)::int AS n FROM jobs WHERE project_id = ${project.projectId}`.pipe(Effect.orDie)
      assert.strictEqual(count[0]?.n, 3)
    }))

  it.effect("over HTTP, concurrent single enqueues each answer 201 with their own job", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("coalesce http")
      yield* createQueue(project.projectId, "work")
      const responses = yield* Effect.forEach(
        Array.from({ length: 30 }, (_, n) => n),
        (n) =>
          raw("POST", `/v1/projects/${project.projectId}/jobs`, {
            token: project.tokens.producer,
            body: JSON.stringify(jobRequest("work", { payload: { n } }))
          }),
        { concurrency: "unbounded" }
      )
      responses.forEach((response, n) => {
        assert.strictEqual(response.status, 201, response.text)
        assert.include(response.text, `"payload":{"n":${n}}`)
      })
    }))
})
