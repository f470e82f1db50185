import { assert } from "@effect/vitest"
import { Effect } from "effect"
import type { JobId, ProjectId } from "../../src/Domain/Ids.ts"
import type { ClaimRequest } from "../../src/Engine/EngineRepo.ts"
import type { Job, JobEvent } from "../../src/Jobs/Api.ts"
import { clientFor } from "./TestApp.ts"
import { waitFor } from "./waitFor.ts"

/** A job as the API returns it. */
export const getJob = (token: string, projectId: ProjectId, jobId: JobId) =>
  Effect.flatMap(clientFor(token), (client) => client.jobs.get({ params: { projectId, jobId } }))

/** Every event of a job, oldest first (one page of up to 200 is plenty for a test). */
export const jobEvents = (token: string, projectId: ProjectId, jobId: JobId) =>
  Effect.gen(function*() {
    const client = yield* clientFor(token)
    const page = yield* client.jobs.events({ params: { projectId, jobId }, query: { limit: 200 } })
    assert.isNull(page.next_cursor, "a test job has fewer than 200 events")
    return page.items
  })

/** Polls the job until `predicate` holds. */
export const waitForJob = (
  token: string,
  projectId: ProjectId,
  jobId: JobId,
  predicate: (job: Job) => boolean,
  options: { readonly timeoutMs?: number; readonly label?: string } = {}
) =>
  waitFor(getJob(token, projectId, jobId), predicate, {
    timeoutMs: options.timeoutMs ?? 10_000,
    label: options.label ?? `job ${jobId}`
  })

/** Polls until the job is in `state`. */
export const waitForState = (token: string, projectId: ProjectId, jobId: JobId, state: Job["state"], timeoutMs = 10_000) =>
  waitForJob(token, projectId, jobId, (job) => job.state === state, { timeoutMs, label: `job ${jobId} ${state}` })

/** The `retry_at` a failure event carries in `data`, as epoch ms. */
export const retryAtOf = (event: JobEvent): number => {
  const data = event.data
  assert.isTrue(typeof data === "object" && data !== null && !Array.isArray(data), `event ${event.type} has data`)
  const value = field(data, "retry_at")
  assert.isString(value, "data.retry_at is a timestamp string")
  const ms = typeof value === "string" ? Date.parse(value) : Number.NaN
  assert.isFalse(Number.isNaN(ms), `data.retry_at parses: ${String(value)}`)
  return ms
}

/** The `message` of a JSON error object stored on a job or an event. */
export const errorMessage = (error: unknown): string => {
  if (typeof error === "object" && error !== null && "message" in error && typeof error.message === "string") {
    return error.message
  }
  return assert.fail(`expected an error object with a message, got ${JSON.stringify(error)}`)
}

/** A field of a JSON object (`undefined` when absent or not an object). */
export const field = (json: unknown, key: string): unknown =>
  typeof json === "object" && json !== null && !Array.isArray(json) && key in json
    ? Object.entries(json).find(([k]) => k === key)?.[1]
    : undefined

/**
 * A claim as a test makes it directly through `EngineRepo.claim`: across projects (as the
 * in-process engine claims), unassigned jobs only, no capped queues, actor `test`.
 */
export const testClaim = (kinds: ReadonlyArray<string>, limit: number, overrides: Partial<ClaimRequest> = {}): ClaimRequest => ({
  limit,
  kinds,
  projectId: null,
  workerId: null,
  labels: [],
  userId: null,
  leaseMs: 60_000,
  actor: "test",
  includeCapped: false,
  systemQueues: false,
  ...overrides
})
