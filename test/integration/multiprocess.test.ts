/**
 * Several real service processes on one database: every job runs exactly once
 * while three instances compete for it, and a SIGKILLed instance's jobs are
 * picked up by the survivor only once their leases have expired.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import type { Pool } from "pg"
import type { ProjectId } from "../../src/Domain/Ids.ts"
import type { EnqueueJob } from "../../src/Jobs/Api.ts"
import { queueName } from "../support/fixtures.ts"
import {
  outputs,
  rows,
  sideEffectDatabases,
  type Service,
  startService,
  stopNow,
  waitFor,
  withClient
} from "../support/processes.ts"

const adminKey = "multiprocess-test-admin-key-0123456789abcdef"

const freshDatabase = sideEffectDatabases()

/** A project and a queue whose retries are immediate (no backoff), created through `service`'s API. */
const setupQueue = (service: Service, name: string) =>
  withClient(service, adminKey, (client) =>
    Effect.gen(function*() {
      const project = yield* client.projects.create({ payload: { name } })
      yield* client.queues.create({
        params: { projectId: project.id },
        payload: { name: queueName("work"), retry_policy: { initial_delay_ms: 0, jitter: 0 } }
      })
      return project.id
    }))

const enqueue = (service: Service, projectId: ProjectId, jobs: ReadonlyArray<EnqueueJob>) =>
  withClient(service, adminKey, (client) =>
    client.jobs.enqueueBatch({ params: { projectId }, payload: { jobs } }).pipe(
      Effect.map((created) => created.jobs.map((job) => job.id))
    ))

const recordJob = (payload: Record<string, number> = {}): EnqueueJob => ({
  queue: queueName("work"),
  kind: "record",
  payload
})

const Count = Schema.Struct({ n: Schema.Number })
const count = async (db: Pool, text: string, params: ReadonlyArray<unknown> = []) =>
  (await rows(db, Count, text, params))[0]?.n ?? 0

const StateCount = Schema.Struct({ state: Schema.String, n: Schema.Number })
const states = async (db: Pool) =>
  JSON.stringify(await rows(db, StateCount, "SELECT state, count(*)::int AS n FROM jobs GROUP BY state ORDER BY state"))

const allSucceeded = (db: Pool, total: number) => async () =>
  (await count(db, "SELECT count(*)::int AS n FROM jobs WHERE state = 'succeeded'")) === total

describe("several service processes on one database", () => {
  it("3 instances, 3000 jobs: each job runs exactly once, and the work is shared", async () => {
    const { url, db } = await freshDatabase()
    const services = await Promise.all([1, 2, 3].map((i) =>
      startService({
        databaseUrl: url,
        env: {
          FOREMAN_INSTANCE_ID: `mp-${i}`,
          FOREMAN_ADMIN_API_KEY: adminKey,
          FOREMAN_WORKER_CONCURRENCY: "20",
          FOREMAN_POLL_INTERVAL_MS: "100",
          FOREMAN_MAINTENANCE_INTERVAL_MS: "200"
        }
      })
    ))
    try {
      const [first] = services
      if (first === undefined) throw new Error("no service")
      const projectId = await setupQueue(first, "exactly once")
      const ids: Array<string> = []
      for (let batch = 0; batch < 3; batch++) {
        ids.push(...await enqueue(first, projectId, Array.from({ length: 1000 }, () => recordJob())))
      }
      assert.strictEqual(new Set(ids).size, 3000)

      await waitFor("3000 jobs to succeed", allSucceeded(db, 3000), {
        timeoutMs: 40_000,
        describe: async () => `${await states(db)}\n${outputs(services)}`
      })

      const totals = await rows(
        db,
        Schema.Struct({ rows: Schema.Number, jobs: Schema.Number, known: Schema.Number }),
        `SELECT count(*)::int AS rows, count(DISTINCT s.job_id)::int AS jobs, count(j.id)::int AS known
         FROM side_effects s LEFT JOIN jobs j ON j.id = s.job_id`
      )
      assert.deepStrictEqual(totals, [{ rows: 3000, jobs: 3000, known: 3000 }], "one side effect per job")

      // Exactly one attempt per job: started once, succeeded once, attempt 1.
      const events = await rows(
        db,
        Schema.Struct({ started: Schema.Number, succeeded: Schema.Number, other: Schema.Number, attempts: Schema.Number }),
        `SELECT count(*) FILTER (WHERE type = 'started')::int AS started,
                count(*) FILTER (WHERE type = 'succeeded')::int AS succeeded,
                count(*) FILTER (WHERE type NOT IN ('created', 'enqueued', 'started', 'succeeded'))::int AS other,
                (SELECT count(*)::int FROM jobs WHERE attempt <> 1) AS attempts
         FROM job_events`
      )
      assert.deepStrictEqual(events, [{ started: 3000, succeeded: 3000, other: 0, attempts: 0 }])

      const perInstance = await rows(
        db,
        Schema.Struct({ instance: Schema.String, n: Schema.Number }),
        "SELECT instance, count(*)::int AS n FROM side_effects GROUP BY instance ORDER BY instance"
      )
      assert.isAtLeast(perInstance.length, 2, `work was not shared: ${JSON.stringify(perInstance)}`)
      for (const { instance } of perInstance) assert.include(["mp-1", "mp-2", "mp-3"], instance)
    } finally {
      await Promise.all(services.map(stopNow))
    }
  }, 60_000)

  it("SIGKILL: the victim's jobs are re-run by the survivor only after their leases expire, never twice", async () => {
    const leaseMs = 3000
    const { url, db } = await freshDatabase()
    const env = (id: string) => ({
      FOREMAN_INSTANCE_ID: id,
      FOREMAN_ADMIN_API_KEY: adminKey,
      // Each can hold half the jobs: the victim is sure to get some, the survivor needs few waves.
      FOREMAN_WORKER_CONCURRENCY: "100",
      FOREMAN_POLL_INTERVAL_MS: "100",
      FOREMAN_LEASE_MS: String(leaseMs),
      FOREMAN_MAINTENANCE_INTERVAL_MS: "200"
    })
    const [survivor, victim] = await Promise.all([
      startService({ databaseUrl: url, env: env("survivor") }),
      startService({ databaseUrl: url, env: env("victim") })
    ])
    try {
      const projectId = await setupQueue(survivor, "kill -9")
      const total = 200
      const ids = await enqueue(survivor, projectId, Array.from({ length: total }, () => recordJob({ ms: 2000 })))
      assert.strictEqual(ids.length, total)

      // The victim holds leases once it has started jobs and is running at least one handler.
      await waitFor("the victim to hold running jobs", async () =>
        (await count(db, "SELECT count(*)::int AS n FROM side_effects WHERE instance = 'victim'")) > 0, {
        timeoutMs: 20_000,
        everyMs: 20,
        describe: async () => `${await states(db)}\n${outputs([survivor, victim])}`
      })
      victim.kill("SIGKILL")
      const exit = await victim.exited
      assert.strictEqual(exit.signal, "SIGKILL")

      await waitFor(`all ${total} jobs to succeed`, allSucceeded(db, total), {
        timeoutMs: 30_000,
        describe: async () => `${await states(db)}\n${outputs([survivor, victim])}`
      })

      const Event = Schema.Struct({
        id: Schema.Number,
        job_id: Schema.String,
        type: Schema.String,
        attempt: Schema.Number,
        actor: Schema.String,
        at_ms: Schema.Number
      })
      const events = await rows(
        db,
        Event,
        `SELECT id::int AS id, job_id::text AS job_id, type, attempt, actor,
                (extract(epoch FROM at) * 1000)::float8 AS at_ms
         FROM job_events ORDER BY id`
      )
      const SideEffect = Schema.Struct({ job_id: Schema.String, attempt: Schema.Number, instance: Schema.String })
      const effects = await rows(db, SideEffect, "SELECT job_id::text AS job_id, attempt, instance FROM side_effects")

      const byJob = new Map<string, Array<typeof Event.Type>>()
      for (const event of events) byJob.set(event.job_id, [...(byJob.get(event.job_id) ?? []), event])
      const effectsByJob = new Map<string, Array<typeof SideEffect.Type>>()
      for (const effect of effects) effectsByJob.set(effect.job_id, [...(effectsByJob.get(effect.job_id) ?? []), effect])

      const victimActor = "instance:victim"
      const survivorActor = "instance:survivor"
      let interrupted = 0
      for (const id of ids) {
        const history = byJob.get(id) ?? []
        const ran = effectsByJob.get(id) ?? []
        const context = `job ${id}: events ${JSON.stringify(history)}, side effects ${JSON.stringify(ran)}`
        const succeeded = history.filter((event) => event.type === "succeeded")
        assert.strictEqual(succeeded.length, 1, `succeeded exactly once; ${context}`)
        const startedByVictim = history.filter((event) => event.type === "started" && event.actor === victimActor)
        const finishedByVictim = succeeded.some((event) => event.actor === victimActor)

        if (startedByVictim.length === 0) {
          // Untouched by the victim: one attempt, by the survivor, one side effect.
          assert.deepStrictEqual(ran.map((r) => [r.instance, r.attempt]), [["survivor", 1]], context)
          assert.deepStrictEqual(
            history.filter((event) => event.type !== "created" && event.type !== "enqueued").map((e) => [e.type, e.actor]),
            [["started", survivorActor], ["succeeded", survivorActor]],
            context
          )
          continue
        }
        assert.strictEqual(startedByVictim.length, 1, context)
        const [victimStart] = startedByVictim
        if (victimStart === undefined) continue
        assert.strictEqual(victimStart.attempt, 1, context)
        if (finishedByVictim) {
          assert.deepStrictEqual(ran.map((r) => [r.instance, r.attempt]), [["victim", 1]], context)
          continue
        }

        // Started by the victim and not finished: the lease expired, then the survivor ran attempt 2.
        interrupted++
        const expired = history.filter((event) => event.type === "lease_expired")
        assert.strictEqual(expired.length, 1, `one lease_expired; ${context}`)
        const [lease] = expired
        if (lease === undefined) continue
        assert.strictEqual(lease.attempt, 1, context)
        assert.isTrue(lease.id > victimStart.id, context)
        // The reaper takes only leases past lease_expires_at, which is at least started + lease.
        assert.isAtLeast(lease.at_ms - victimStart.at_ms, leaseMs, `reaped before the lease ran out; ${context}`)
        const rerun = history.filter((event) => event.type === "started" && event.id > victimStart.id)
        assert.deepStrictEqual(rerun.map((e) => [e.actor, e.attempt]), [[survivorActor, 2]], context)
        const [restart] = rerun
        if (restart === undefined) continue
        assert.isTrue(restart.id > lease.id, `re-run before the lease expired; ${context}`)
        assert.isAtLeast(restart.at_ms, lease.at_ms, context)
        assert.deepStrictEqual(succeeded.map((e) => [e.actor, e.attempt]), [[survivorActor, 2]], context)
        // At most the victim's own (attempt 1, if it got that far) and the survivor's (attempt 2).
        const survivorRuns = ran.filter((r) => r.instance === "survivor")
        const victimRuns = ran.filter((r) => r.instance === "victim")
        assert.deepStrictEqual(survivorRuns.map((r) => r.attempt), [2], context)
        assert.isAtMost(victimRuns.length, 1, context)
        for (const r of victimRuns) assert.strictEqual(r.attempt, 1, context)
      }
      assert.isAbove(interrupted, 0, "the victim held no unfinished job when it was killed")
      // Every side effect belongs to one of the jobs.
      assert.strictEqual(effects.filter((effect) => !byJob.has(effect.job_id)).length, 0)
    } finally {
      await Promise.all([survivor, victim].map(stopNow))
    }
  }, 60_000)
})
