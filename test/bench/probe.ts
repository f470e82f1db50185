/**
 * The no-op handler every system runs, and what it observed: how many calls,
 * and when the call for latency job `i` started (performance.now(), in this
 * process). Foreman loads this file as a handler module (FOREMAN_HANDLERS);
 * graphile-worker and pg-boss call `hit` from their own task functions, so all
 * three are timed by the same clock at the same point: the handler's first line.
 */
const state = { calls: 0, starts: new Map<number, number>() }

const latencyIndex = (payload: unknown): number | undefined => {
  if (typeof payload !== "object" || payload === null || !("i" in payload)) return undefined
  return typeof payload.i === "number" ? payload.i : undefined
}

export const hit = (payload: unknown): void => {
  const now = performance.now()
  state.calls++
  const i = latencyIndex(payload)
  if (i !== undefined) state.starts.set(i, now)
}

export const probe = {
  reset: () => {
    state.calls = 0
    state.starts.clear()
  },
  calls: () => state.calls,
  startOf: (i: number) => state.starts.get(i)
}

export const handlers = {
  bench_noop: (payload: unknown) => {
    hit(payload)
    return null
  }
}
