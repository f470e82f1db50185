import { Duration, Effect, Option, Random, Schedule } from "effect"
import { Pull } from "effect"
import type { RetryPolicy } from "../Queues/Api.ts"

/**
 * A queue's (or job's) retry policy as an Effect `Schedule`: exponential from
 * `initial_delay_ms` by `factor`, capped at `max_delay_ms`, spread by
 * ±`jitter`, and done after `max_attempts - 1` retries.
 */
export const retrySchedule = (policy: RetryPolicy) =>
  Schedule.exponential(Duration.millis(policy.initial_delay_ms), policy.factor).pipe(
    Schedule.modifyDelay(({ duration }) =>
      Effect.map(Random.next, (r) => {
        const capped = Math.min(Duration.toMillis(duration), policy.max_delay_ms)
        const spread = capped * policy.jitter * (2 * r - 1)
        return Duration.millis(Math.max(0, Math.round(capped + spread)))
      })
    ),
    Schedule.upTo({ times: policy.max_attempts - 1 })
  )

/**
 * How long to wait before the next attempt after `failedAttempts` attempts
 * have failed, or `None` when the policy is exhausted. The schedule is
 * replayed from its start, so the answer depends only on the policy and the
 * attempt count; the caller persists the resulting run-at, which is what makes
 * retries survive restarts.
 */
export const nextRetryDelay = Effect.fn("RetryPolicy.nextRetryDelay")(function*(
  policy: RetryPolicy,
  failedAttempts: number
) {
  const step = yield* Schedule.toStep(retrySchedule(policy))
  let delay: Option.Option<Duration.Duration> = Option.none()
  for (let i = 0; i < failedAttempts; i++) {
    const next = yield* step(0, undefined).pipe(
      Effect.map(([, duration]) => Option.some(duration)),
      Pull.catchDone(() => Effect.succeed(Option.none<Duration.Duration>()))
    )
    if (Option.isNone(next)) return next
    delay = next
  }
  return delay
})
