/** Percentiles and per-run summaries shared by every benchmark. */
export const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN

export const sorted = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)

export const median = (values: ReadonlyArray<number>) => percentile(sorted(values), 50)

/** One figure over several runs: the median of the runs, with min, max and every run. */
export interface Summary {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly runs: ReadonlyArray<number>
}

export const summary = (values: ReadonlyArray<number>): Summary => ({
  median: median(values),
  min: Math.min(...values),
  max: Math.max(...values),
  runs: values
})

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Polls `check` every `everyMs` until it is true; throws after `timeoutMs`. */
export const until = async (what: string, check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 10) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`benchmark: timed out waiting for ${what}`)
    await sleep(everyMs)
  }
}
