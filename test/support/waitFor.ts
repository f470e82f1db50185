import { Duration, Effect } from "effect"

export class WaitForTimeout extends Error {}

/**
 * Runs `effect` every `intervalMs` (50 ms by default) until its value satisfies
 * `predicate`, and returns that value. After `timeoutMs` it dies with a
 * `WaitForTimeout` naming `label` and showing the last value seen, so a failed
 * wait says what the state actually was. Needs the real clock
 * (`excludeTestServices: true` or `it.live`).
 */
export const waitFor = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  predicate: (value: A) => boolean,
  options: { readonly timeoutMs?: number; readonly intervalMs?: number; readonly label?: string } = {}
): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    const timeoutMs = options.timeoutMs ?? 10_000
    const interval = Duration.millis(options.intervalMs ?? 50)
    const deadline = Date.now() + timeoutMs
    while (true) {
      const value = yield* effect
      if (predicate(value)) return value
      if (Date.now() >= deadline) {
        return yield* Effect.die(
          new WaitForTimeout(
            `waitFor(${options.label ?? "condition"}) timed out after ${timeoutMs} ms; last value: ${
              safeJson(value)
            }`
          )
        )
      }
      yield* Effect.sleep(interval)
    }
  })

const safeJson = (value: unknown): string => {
  try {
    return JSON.stringify(value)?.slice(0, 2000) ?? String(value)
  } catch {
    return String(value)
  }
}
