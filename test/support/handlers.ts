/**
 * Handler module used by the tests and benchmarks (loaded through FOREMAN_HANDLERS).
 * Plain functions, as a user's module would be.
 */
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

export const handlers = {
  noop: () => ({ ok: true }),
  echo: (payload: unknown) => payload,
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
  }
}
