/**
 * Clean shutdown of a real service process on SIGTERM and SIGINT: readiness
 * fails at once, a running job gets the grace period to finish, and one that
 * outlives it is handed back uncounted for the next instance.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import type { Pool } from "pg"
import type { ProjectId } from "../../src/Domain/Ids.ts"
import { queueName } from "../support/fixtures.ts"
import {
  delay,
  exitWithin,
  type Probe,
  probe,
  rows,
  sideEffectDatabases,
  type Service,
  startService,
  stopNow,
  waitFor,
  withClient
} from "../support/processes.ts"

const adminKey = "shutdown-test-admin-key-0123456789abcdef"

const freshDatabase = sideEffectDatabases()

const start = (url: string, instanceId: string, graceMs: number) =>
  startService({
    databaseUrl: url,
    env: {
      FOREMAN_INSTANCE_ID: instanceId,
      FOREMAN_ADMIN_API_KEY: adminKey,
      FOREMAN_SHUTDOWN_GRACE_MS: String(graceMs),
      FOREMAN_POLL_INTERVAL_MS: "100",
      FOREMAN_MAINTENANCE_INTERVAL_MS: "200"
    }
  })

/** A project and queue, and one `record` job sleeping `ms`; returns the job's id. */
const enqueueRecord = (service: Service, ms: number) =>
  withClient(service, adminKey, (client) =>
    Effect.gen(function*() {
      const project = yield* client.projects.create({ payload: { name: "shutdown" } })
      const projectId: ProjectId = project.id
      yield* client.queues.create({ params: { projectId }, payload: { name: queueName("work") } })
      const job = yield* client.jobs.enqueue({
        params: { projectId },
        payload: { queue: queueName("work"), kind: "record", payload: { ms } }
      })
      return job.id
    }))

const JobRow = Schema.Struct({ state: Schema.String, attempt: Schema.Number })
const jobRow = async (db: Pool, id: string) => (await rows(db, JobRow, "SELECT state, attempt FROM jobs WHERE id = $1", [id]))[0]

const SideEffect = Schema.Struct({ attempt: Schema.Number, instance: Schema.String })
const sideEffects = (db: Pool, id: string) =>
  rows(db, SideEffect, "SELECT attempt, instance FROM side_effects WHERE job_id = $1 ORDER BY at", [id])

const Event = Schema.Struct({ type: Schema.String, attempt: Schema.Number, actor: Schema.String })
const events = (db: Pool, id: string) =>
  rows(db, Event, "SELECT type, attempt, actor FROM job_events WHERE job_id = $1 ORDER BY id", [id])

/** Waits until the handler is running: it writes its side effect first. */
const waitUntilRunning = (db: Pool, id: string, service: Service) =>
  waitFor(`job ${id} to start`, async () => (await sideEffects(db, id)).length > 0, {
    timeoutMs: 15_000,
    everyMs: 20,
    describe: () => service.output().slice(-4000)
  })

interface ReadinessAnswer {
  /** Whether the service had logged that it began draining when the probe was sent. */
  readonly draining: boolean
  readonly answer: Probe
  /** When the answer arrived (Date.now()). */
  readonly at: number
}

/**
 * Probes /readyz back to back from now until the listener is gone (refused)
 * or the process exits, noting for each probe whether the service had already
 * logged "shutting down" (readiness is flipped just before that line).
 */
const probeUntilClosed = async (service: Service): Promise<ReadonlyArray<ReadinessAnswer>> => {
  const answers: Array<ReadinessAnswer> = []
  while (service.running()) {
    const draining = service.output().includes("shutting down")
    const answer = await probe(service.port, "/readyz", 2000)
    answers.push({ draining, answer, at: Date.now() })
    if (answer.kind === "refused") break
    if (answer.kind === "error" && draining) break
    await delay(10)
  }
  return answers
}

describe("shutdown of a service process", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`${signal}: readiness fails at once, the running job finishes within the grace period, exit 0`, async () => {
      const { url, db } = await freshDatabase()
      const service = await start(url, `graceful-${signal}`, 5000)
      try {
        const id = await enqueueRecord(service, 1500)
        await waitUntilRunning(db, id, service)
        const signalled = Date.now()
        service.kill(signal)
        const answers = await probeUntilClosed(service)
        const seen = JSON.stringify(answers)
        const exit = await exitWithin(service, 15_000)
        assert.deepStrictEqual(exit, { code: 0, signal: null }, `exit after ${signal}\n${service.output().slice(-4000)}`)
        // It waited for the job (1.5 s) but not for the whole grace period (5 s).
        assert.isBelow(Date.now() - signalled, 5000, "waited for the grace period although the job had finished")

        const isStatus = (answer: Probe, status: number) => answer.kind === "status" && answer.status === status
        // A probe that races the signal itself may still be answered 200; once the
        // service has begun draining, every answer is 503 until the listener closes.
        const beforeDrain = answers.filter((a) => !a.draining)
        const afterDrain = answers.filter((a) => a.draining)
        for (const { answer } of beforeDrain) {
          assert.isTrue(isStatus(answer, 200) || isStatus(answer, 503) || answer.kind === "refused", seen)
        }
        const firstAfter = afterDrain.find((a) => a.answer.kind !== "refused")
        assert.isDefined(firstAfter, `no answer after the drain began: ${seen}\n${service.output().slice(-4000)}`)
        assert.isTrue(isStatus(firstAfter.answer, 503), `first answer after the drain began: ${seen}`)
        // Then 503 until the listener closes: refused, or reset if a connection raced the close.
        const closing = (answer: Probe) =>
          answer.kind === "refused" || (answer.kind === "error" && answer.message.startsWith("ECONNRESET"))
        for (const { answer } of afterDrain) {
          assert.isTrue(isStatus(answer, 503) || closing(answer), `after the drain began: ${seen}`)
        }
        // Readiness flipped promptly, while the job was still running (so before the engine drained).
        assert.isBelow(firstAfter.at - signalled, 1000, `the drain began late: ${seen}`)

        assert.deepStrictEqual(await jobRow(db, id), { state: "succeeded", attempt: 1 })
        assert.deepStrictEqual(await sideEffects(db, id), [{ attempt: 1, instance: `graceful-${signal}` }])
        const finished = await rows(
          db,
          Schema.Struct({ at_ms: Schema.Number }),
          "SELECT (extract(epoch FROM at) * 1000)::float8 AS at_ms FROM job_events WHERE job_id = $1 AND type = 'succeeded'",
          [id]
        )
        assert.isBelow(firstAfter.at, finished[0]?.at_ms ?? 0, "readiness failed only after the job had finished")
        assert.deepStrictEqual(
          (await events(db, id)).map((event) => event.type),
          ["enqueued", "started", "succeeded"]
        )
      } finally {
        await stopNow(service)
      }
    }, 60_000)

    it(`${signal}: a job that outlives the grace period is released uncounted and the next instance runs it`, async () => {
      const { url, db } = await freshDatabase()
      const first = await start(url, `short-grace-${signal}`, 500)
      let second: Service | undefined
      try {
        const id = await enqueueRecord(first, 20_000)
        await waitUntilRunning(db, id, first)
        const signalled = Date.now()
        first.kill(signal)
        const exit = await exitWithin(first, 5000)
        assert.deepStrictEqual(exit, { code: 0, signal: null }, `exit after ${signal}\n${first.output().slice(-4000)}`)
        assert.isBelow(Date.now() - signalled, 5000)

        // Back to 'available', the interrupted attempt not counted.
        assert.deepStrictEqual(await jobRow(db, id), { state: "available", attempt: 0 })
        const actor = `instance:short-grace-${signal}`
        assert.deepStrictEqual(
          (await events(db, id)).map((event) => [event.type, event.attempt, event.type === "enqueued" ? "" : event.actor]),
          [["enqueued", 0, ""], ["started", 1, actor], ["released", 1, actor]]
        )

        // The second instance need not sleep 20 s again: shorten the payload; the handler is the same.
        await db.query(`UPDATE jobs SET payload = '{"ms": 0}' WHERE id = $1`, [id])
        second = await start(url, `next-${signal}`, 5000)
        await waitFor(`job ${id} to succeed on the second instance`, async () => (await jobRow(db, id))?.state === "succeeded", {
          timeoutMs: 15_000,
          describe: () => second?.output().slice(-4000) ?? ""
        })
        assert.deepStrictEqual(await jobRow(db, id), { state: "succeeded", attempt: 1 })
        assert.deepStrictEqual(await sideEffects(db, id), [
          { attempt: 1, instance: `short-grace-${signal}` },
          { attempt: 1, instance: `next-${signal}` }
        ])
      } finally {
        await stopNow(first)
        if (second !== undefined) await stopNow(second)
      }
    }, 60_000)
  }
})
