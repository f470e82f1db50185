/**
 * Handler module used by the tests and benchmarks (loaded through FOREMAN_HANDLERS).
 * Plain functions, as a user's module would be.
 */
import { Pool } from "pg"

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms)
    signal.addEventListener("abort", () => {
      clearTimeout(timer)
      reject(new Error("aborted"))
    }, { once: true })
  })

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null

const numberField = (payload: unknown, field: string, fallback: number): number => {
  const value = isRecord(payload) ? payload[field] : undefined
  return typeof value === "number" ? value : fallback
}

class NonRetryable extends Error {
  readonly retryable = false
}

let sideEffects: Pool | undefined

/**
 * The connection for `record`, opened on first use from
 * `FOREMAN_TEST_SIDE_EFFECTS_URL`. Idle connections do not keep the process alive.
 */
const sideEffectsPool = (): Pool => {
  if (sideEffects !== undefined) return sideEffects
  const connectionString = process.env.FOREMAN_TEST_SIDE_EFFECTS_URL
  if (connectionString === undefined || connectionString.length === 0) {
    throw new NonRetryable("record: FOREMAN_TEST_SIDE_EFFECTS_URL is not set")
  }
  const pool = new Pool({ connectionString, max: 4, idleTimeoutMillis: 1000, allowExitOnIdle: true })
  // A dropped idle connection must not crash the service; the next query reconnects.
  pool.on("error", () => {})
  sideEffects = pool
  return pool
}

export const handlers = {
  noop: () => ({ ok: true }),
  echo: (payload: unknown) => payload,
  /** Returns the attempt and the review feedback it was handed (reviews.test.ts). */
  reviewed: (_payload: unknown, context: { readonly job: { readonly attempt: number; readonly review_feedback?: unknown } }) => ({
    attempt: context.job.attempt,
    feedback: context.job.review_feedback ?? null
  }),
  sleep: async (payload: unknown, context: { readonly signal: AbortSignal }) => {
    await sleep(numberField(payload, "ms", 100), context.signal)
    return { slept: numberField(payload, "ms", 100) }
  },
  /** Fails until the attempt number reaches `succeed_on`. */
  flaky: (payload: unknown, context: { readonly job: { readonly attempt: number } }) => {
    if (context.job.attempt < numberField(payload, "succeed_on", 2)) throw new Error(`flaky failure on attempt ${context.job.attempt}`)
    return { attempt: context.job.attempt }
  },
  fatal: () => {
    throw new NonRetryable("this job can never succeed")
  },
  /**
   * Records the execution as a side effect, a row (job_id, attempt, instance, at)
   * in the `side_effects` table the test created in FOREMAN_TEST_SIDE_EFFECTS_URL,
   * then sleeps `ms` (default 0), stopping early if the attempt is aborted.
   */
  record: async (
    payload: unknown,
    context: { readonly job: { readonly id: string; readonly attempt: number }; readonly signal: AbortSignal }
  ) => {
    await sideEffectsPool().query(
      "INSERT INTO side_effects (job_id, attempt, instance, at) VALUES ($1, $2, $3, now())",
      [context.job.id, context.job.attempt, process.env.FOREMAN_INSTANCE_ID ?? null]
    )
    const ms = numberField(payload, "ms", 0)
    if (ms > 0) {
      if (context.signal.aborted) throw new Error("aborted")
      await sleep(ms, context.signal)
    }
    return { recorded: true, attempt: context.job.attempt }
  }
}
