import { Duration, Effect, Layer, Option, Schedule } from "effect"
import { AppConfig } from "../Config/AppConfig.ts"
import { startRecordedAttempt } from "./AttemptSpan.ts"
import { EngineRepo, type ExpiredLease, type Failure } from "./EngineRepo.ts"
import { nextRetryDelay } from "./RetryPolicy.ts"
import { recordLeasesExpired } from "../Observability/Metrics.ts"
import { traced } from "../Observability/Tracing.ts"

const batchSize = 500

const expiredToFailure = Effect.fnUntraced(function*(lease: ExpiredLease) {
  const error = {
    message: lease.timed_out ? "attempt exceeded its timeout" : "lease expired without heartbeat",
    retryable: true
  }
  const delay = lease.attempt >= lease.max_attempts
    ? Option.none()
    : yield* nextRetryDelay(lease.retry_policy, lease.attempt)
  return {
    id: lease.id,
    token: lease.lease_token,
    error,
    delay_ms: Option.isNone(delay) ? null : Duration.toMillis(delay.value)
  } satisfies Failure
})

/**
 * Maintenance fibers, run by every engine instance (each statement skips rows
 * another instance holds, so running several is safe):
 * - reaper: expired leases count as a failed attempt (`lease_expired`) and go
 *   back to the queue with backoff, or to `dead` when attempts are exhausted;
 * - promoter: due `scheduled` and `retrying` jobs become `available`;
 * - pruner: finished jobs older than their queue's retention are deleted.
 */
export const MaintenanceLive = Layer.effectDiscard(Effect.gen(function*() {
  const config = yield* AppConfig
  if (config.role === "api") return
  const repo = yield* EngineRepo
  const every = Schedule.spaced(Duration.millis(config.maintenanceIntervalMs))

  const reap = Effect.gen(function*() {
    while (true) {
      const expired = yield* repo.expiredLeases(batchSize)
      if (expired.length === 0) return
      // Each lost attempt gets its span here (its worker, elsewhere or gone, may have written none);
      // the next attempt links to it.
      const reaping = yield* Effect.forEach(expired, (lease) =>
        Effect.all({ lease: Effect.succeed(lease), failure: expiredToFailure(lease), span: startRecordedAttempt(lease) }))
      const failures = reaping.map(({ failure, span }) => ({ ...failure, traceparent: span.traceparent }))
      const reaped = new Set((yield* repo.fail(failures, "system", "lease_expired")).map((row) => row.id))
      yield* Effect.forEach(reaping, ({ failure, lease, span }) =>
        reaped.has(lease.id)
          ? span.end({
            outcome: "lease_expired",
            error: failure.error.message,
            enqueue_traceparent: lease.traceparent,
            previous_traceparent: lease.last_attempt_traceparent
          })
          : Effect.void, { discard: true })
      yield* recordLeasesExpired(expired.length)
      yield* Effect.logInfo("expired leases reclaimed").pipe(Effect.annotateLogs({ count: expired.length }))
      if (expired.length < batchSize) return
    }
  }).pipe(traced("Maintenance.reap"))

  const promote = Effect.gen(function*() {
    while ((yield* repo.promoteDue(batchSize)) === batchSize) {
      yield* Effect.yieldNow
    }
  }).pipe(traced("Maintenance.promote"))

  const prune = Effect.gen(function*() {
    while ((yield* repo.pruneFinished(batchSize)) === batchSize) {
      yield* Effect.yieldNow
    }
  }).pipe(traced("Maintenance.prune"))

  const loop = (name: string, task: Effect.Effect<void>, schedule: Schedule.Schedule<unknown>) =>
    task.pipe(
      Effect.catchCause((cause) => Effect.logWarning(`maintenance ${name} failed`, cause)),
      Effect.repeat(schedule),
      Effect.forkScoped
    )

  yield* loop("reaper", reap, every)
  yield* loop("promoter", promote, every)
  yield* loop("pruner", prune, Schedule.spaced("1 minute"))
}))
