import { Cause, Context, Duration, Effect, Exit, Fiber, Layer, Option, PubSub, Queue, Schedule, Scope, Tracer } from "effect"
import { AppConfig } from "../Config/AppConfig.ts"
import { type ClaimedJob, type Completion, EngineRepo, type Failure } from "./EngineRepo.ts"
import { HandlerFailure } from "./Handler.ts"
import { Handlers } from "./Handlers.ts"
import { LocalDispatch } from "./LocalDispatch.ts"
import { Notifier } from "./Notifier.ts"
import * as Metrics from "../Observability/Metrics.ts"
import { attemptLinks, formatTraceparent } from "../Observability/Tracing.ts"
import { nextRetryDelay } from "./RetryPolicy.ts"
import { registerInstance } from "../Workers/Instance.ts"

interface Slot {
  readonly token: string
  fiber: Fiber.Fiber<void> | undefined
}

/** A string `jsonb` accepts: NUL characters and lone surrogates (a string cut mid-pair) become U+FFFD. */
const storableString = (text: string): string => text.replaceAll("\u0000", "\uFFFD").toWellFormed()

const storableStrings = (json: unknown): unknown => {
  if (typeof json === "string") return storableString(json)
  if (Array.isArray(json)) return json.map(storableStrings)
  if (typeof json === "object" && json !== null) {
    return Object.fromEntries(Object.entries(json).map(([key, item]) => [storableString(key), storableStrings(item)]))
  }
  return json
}

/**
 * `value` as plain JSON that PostgreSQL `jsonb` accepts: NUL characters and
 * lone surrogates (which `jsonb` refuses) become U+FFFD. Throws when `value`
 * has no JSON form (a BigInt, a cycle). Without this, one such result or
 * error fails the whole batch write.
 */
export const toStorableJson = (value: unknown): unknown => {
  const text = JSON.stringify(value ?? null)
  return text === undefined ? null : storableStrings(JSON.parse(text))
}

/** Error details as storable JSON; details with no JSON form are left out rather than failing the write. */
const storableDetails = (details: unknown): unknown => {
  if (details === undefined) return undefined
  try {
    return toStorableJson(details)
  } catch {
    return undefined
  }
}

/**
 * `self`, failed with `onTimeout()` when it has not finished after `ms`.
 * `Effect.timeoutOrElse` races `self` against a sleep in two forked fibers;
 * this forks `self` alone and times it with a plain timer: about a third of
 * the engine's CPU per attempt in a drain (docs/benchmarks.md). On timeout
 * `self` is interrupted and the failure returned without waiting for its
 * finalizers; when the caller is interrupted, `self` is interrupted and
 * awaited, as a child fiber would be.
 */
export const failAfter = <A, E, E2>(self: Effect.Effect<A, E>, ms: number, onTimeout: () => E2): Effect.Effect<A, E | E2> =>
  Effect.withFiber((parent) =>
    Effect.callback<A, E | E2>((resume) => {
      // Forked inside the callback, so an interruption that reaches the caller while `self`
      // starts still finds the child to interrupt and await.
      const child = Effect.runForkWith(parent.context)(self)
      // A fork runs at once until its first asynchronous step: a handler that returns
      // without one already has its exit, and needs no timer.
      const done = child.pollUnsafe()
      if (done !== undefined) {
        resume(done)
        return
      }
      let timer: ReturnType<typeof setTimeout> | undefined = setTimeout(() => {
        timer = undefined
        child.interruptUnsafe(parent.id)
        resume(Effect.fail(onTimeout()))
      }, ms)
      child.addObserver((exit) => {
        if (timer === undefined) return
        clearTimeout(timer)
        timer = undefined
        resume(exit)
      })
      return Effect.suspend(() => {
        if (timer !== undefined) clearTimeout(timer)
        timer = undefined
        return Fiber.interrupt(child)
      })
    })
  )

/** Turns a failed attempt into the failure row: backoff delay, or `null` for dead. */
export const failureFor = Effect.fnUntraced(function*(
  job: Pick<ClaimedJob, "id" | "lease_token" | "attempt" | "max_attempts" | "retry_policy">,
  failure: HandlerFailure
) {
  const details = storableDetails(failure.details)
  const error = {
    message: storableString(failure.message),
    retryable: failure.retryable,
    ...(details === undefined ? {} : { details })
  }
  if (!failure.retryable || job.attempt >= job.max_attempts) {
    return { id: job.id, token: job.lease_token, error, delay_ms: null } satisfies Failure
  }
  const scheduled = yield* nextRetryDelay(job.retry_policy, job.attempt)
  const delay = Option.isNone(scheduled)
    ? null
    : failure.retryAfterMs ?? Duration.toMillis(scheduled.value)
  return { id: job.id, token: job.lease_token, error, delay_ms: delay } satisfies Failure
})

/**
 * The in-process worker pool. `FOREMAN_CLAIM_LOOPS` claim loops fill up to
 * `FOREMAN_WORKER_CONCURRENCY` fibers with batched claims; completions and
 * failures are written in batches by two flusher fibers; a heartbeat fiber
 * extends every held lease in one statement and interrupts attempts whose
 * lease was lost (cancelled, expired, taken). On shutdown it stops claiming,
 * gives running attempts the grace period, then interrupts them and hands
 * their leases back so another instance can start them at once.
 */
export class Runner extends Context.Service<Runner, {
  readonly inFlight: Effect.Effect<number>
}>()("foreman/Runner") {
  static readonly layer = Layer.effect(
    Runner,
    Effect.gen(function*() {
      const config = yield* AppConfig
      if (config.role === "api") return Runner.of({ inFlight: Effect.succeed(0) })

      const repo = yield* EngineRepo
      const handlers = yield* Handlers
      const notifier = yield* Notifier
      const dispatch = yield* LocalDispatch
      const scope = yield* Scope.Scope
      const actor = `instance:${config.instanceId}`
      // This instance in the worker registry: its claims, outcomes and liveness show there.
      const self = yield* registerInstance(handlers.kinds)
      const running = new Map<string, Slot>()
      const claimLoops = Math.max(1, Math.min(config.claimLoops, config.workerConcurrency))
      const kicks = yield* Effect.forEach(Array.from({ length: claimLoops }), () => Queue.sliding<void>(1))
      const completions = yield* Queue.unbounded<Completion>()
      const failures = yield* Queue.unbounded<Failure>()
      const attemptScope = yield* Scope.fork(scope)
      let stopping = false
      // Refreshed every poll interval: while no queue is capped, claims skip the
      // transaction and lock that capped queues need.
      let cappedQueues = yield* repo.hasCappedQueues
      let flushing = 0

      const wake = Effect.forEach(kicks, (kick) => Queue.offer(kick, undefined), { discard: true })
      // New work wakes one loop (round robin); a loop whose claim came back full wakes the next
      // (below), so loops join in while there is a backlog and a single job costs a single claim.
      let nextLoop = 0
      const wakeOne = Effect.suspend(() => {
        const kick = kicks[nextLoop++ % kicks.length]
        return kick === undefined ? Effect.void : Queue.offer(kick, undefined)
      })
      // Loops that stopped claiming for want of free slots: a finished attempt wakes them. Loops
      // whose last claim found no more work wait for new work (a signal, or the poll) instead.
      let waitingForSlots = 0
      // Whether the last claim came back full: there may be due jobs waiting, and eager dispatch
      // would let a new job overtake them.
      let backlog = true

      const recordFailure = (job: ClaimedJob, failure: HandlerFailure, traceparent: string | null) =>
        Effect.flatMap(
          failureFor(job, failure),
          (row) => Effect.andThen(Metrics.recordFailed(job, row), Queue.offer(failures, { ...row, traceparent }))
        )
      // The attempt's outcome, once it has one: its duration, then a completion or a failure row.
      const settle = (job: ClaimedJob, exit: Exit.Exit<unknown, HandlerFailure>, seconds: number, traceparent: string | null) =>
        Effect.andThen(Metrics.recordExecution(job, seconds), () => {
          if (Exit.isSuccess(exit)) {
            let result: unknown
            try {
              result = toStorableJson(exit.value)
            } catch (error) {
              const message = `handler result cannot be stored as JSON: ${error instanceof Error ? error.message : String(error)}`
              return recordFailure(job, new HandlerFailure({ message, retryable: false }), traceparent)
            }
            return Effect.andThen(
              Metrics.recordSucceeded(job),
              Queue.offer(completions, { id: job.id, token: job.lease_token, result, traceparent })
            )
          }
          const failure = Option.getOrElse(
            Cause.findErrorOption(exit.cause),
            () => new HandlerFailure({ message: `handler crashed: ${Cause.pretty(exit.cause)}`, retryable: true })
          )
          return recordFailure(job, failure, traceparent)
        })

      const runAttempt = (job: ClaimedJob) => {
        const handler = handlers.get(job.kind)
        const attempt = handler === undefined
          ? Effect.fail(new HandlerFailure({ message: `no in-process handler for kind '${job.kind}'`, retryable: false }))
          : handler(job)
        const started = performance.now()
        // The attempt span's context, written with the outcome so the next attempt links to it.
        let traceparent: string | null = null
        return Metrics.recordStarted(job).pipe(
          Effect.andThen(failAfter(
            attempt,
            job.timeout_ms,
            () => new HandlerFailure({ message: `timed out after ${job.timeout_ms} ms`, retryable: true })
          )),
          // The outcome, on the span: succeeded, or failed (the error status comes from the failure itself).
          Effect.onExit((exit) =>
            Effect.withFiber((fiber) => {
              const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
              if (span !== undefined) {
                if (span._tag === "Span") {
                  span.attribute(
                    "foreman.job.outcome",
                    Exit.isSuccess(exit) ? "succeeded" : Cause.hasInterruptsOnly(exit.cause) ? "interrupted" : "failed"
                  )
                }
                traceparent = formatTraceparent(span)
              }
              return Effect.void
            })
          ),
          // Data-first: only that form honours `captureStackTrace: false`. The span's source line is
          // always this one, and capturing it cost about 8 % of the engine's CPU in a drain profile.
          (self) => Effect.withSpan(self, "Job.attempt", {
            captureStackTrace: false,
            attributes: {
              "foreman.job.id": job.id,
              "foreman.job.queue": job.queue,
              "foreman.job.kind": job.kind,
              "foreman.job.attempt": job.attempt
            },
            // Each attempt is a trace of its own, linked to the request that enqueued the job and to the previous attempt.
            root: true,
            links: attemptLinks(job)
          }),
          Effect.exit,
          // Interrupted attempts (lost lease, shutdown) have no outcome and are not timed.
          Effect.flatMap((exit) =>
            Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)
              ? Effect.void
              : settle(job, exit, (performance.now() - started) / 1000, traceparent)
          ),
          Effect.ensuring(Effect.suspend(() => {
            // Only this attempt's slot: the job may already run again here under a newer lease.
            if (running.get(job.id)?.token === job.lease_token) running.delete(job.id)
            return waitingForSlots > 0 ? wake : Effect.void
          })),
          // Every log line of the attempt (handler, timeout, result recording) names its job.
          Effect.annotateLogs({ jobId: job.id, queue: job.queue, kind: job.kind, attempt: job.attempt })
        )
      }

      // Several claim loops share the slots: while one waits on its claim
      // statement another can claim, so the database and this process overlap
      // their work instead of taking turns. `reserved` counts slots promised to
      // claims in flight, so the loops never claim more than the free slots.
      let reserved = 0
      const claimLoop = (kick: Queue.Queue<void>, index: number) =>
        Effect.gen(function*() {
          // Claim in batches: with work in flight, wait until enough slots are
          // free, so a stream of completions does not turn into a stream of
          // one-job claims.
          const threshold = Math.max(
            1,
            Math.min(config.claimBatchSize, Math.floor(config.workerConcurrency / (2 * claimLoops)))
          )
          while (!stopping) {
            const free = config.workerConcurrency - running.size - reserved
            if (free >= threshold || (free > 0 && running.size === 0)) {
              const limit = Math.min(free, config.claimBatchSize)
              reserved += limit
              const jobs = yield* repo.claim({
                limit,
                kinds: handlers.kinds,
                projectId: null,
                workerId: self,
                labels: config.workerLabels,
                userId: null,
                leaseMs: config.leaseMs,
                actor,
                includeCapped: cappedQueues,
                systemQueues: true
              }).pipe(Effect.onError(() => Effect.sync(() => {
                reserved -= limit
              })))
              // Slots are registered before the reservation is released, so another
              // loop never sees them free in between.
              for (const job of jobs) running.set(job.id, { token: job.lease_token, fiber: undefined })
              reserved -= limit
              for (const job of jobs) {
                const slot = running.get(job.id)
                const fiber = yield* Effect.forkIn(runAttempt(job), attemptScope)
                if (slot !== undefined && slot.token === job.lease_token) slot.fiber = fiber
              }
              backlog = jobs.length === limit
              if (jobs.length === limit) {
                const other = kicks[(index + 1) % kicks.length]
                if (other !== undefined && other !== kick) yield* Queue.offer(other, undefined)
                continue
              }
              yield* Queue.take(kick).pipe(Effect.timeoutOption(Duration.millis(config.pollIntervalMs)))
            } else {
              waitingForSlots++
              yield* Queue.take(kick).pipe(
                Effect.timeoutOption(Duration.millis(config.pollIntervalMs)),
                Effect.ensuring(Effect.sync(() => {
                  waitingForSlots--
                }))
              )
            }
          }
        }).pipe(
          Effect.catchCause((cause) =>
            Effect.logError("claim loop failed; restarting", cause).pipe(Effect.andThen(Effect.sleep("1 second")))
          ),
          Effect.repeat({ while: () => !stopping })
        )

      // A failed write (a dropped connection, a row the database refuses) must not end the
      // flusher, or no attempt of this instance would ever be recorded again. The batch is
      // retried row by row; a row that still fails is logged and left to the reaper, which
      // reclaims the job when its lease expires.
      const flusher = <A extends { readonly id: string }>(
        what: string,
        queue: Queue.Queue<A>,
        write: (batch: ReadonlyArray<A>) => Effect.Effect<unknown>
      ) =>
        Effect.forever(Effect.gen(function*() {
          const batch = yield* Queue.takeBetween(queue, 1, 1000)
          flushing++
          yield* Effect.suspend(() => write(batch)).pipe(
            Effect.catchCause(() =>
              Effect.forEach(batch, (row) =>
                Effect.suspend(() => write([row])).pipe(
                  Effect.catchCause((cause) =>
                    Effect.logError(`could not record a job ${what}; the reaper will reclaim it`, cause).pipe(
                      Effect.annotateLogs({ jobId: row.id })
                    )
                  )
                ), { discard: true })
            ),
            Effect.ensuring(Effect.sync(() => flushing--))
          )
        }))

      const heartbeat = Effect.gen(function*() {
        const held = [...running].map(([id, slot]) => ({ id, token: slot.token }))
        if (held.length === 0) return
        const extended = new Set((yield* repo.heartbeat(held, config.leaseMs, undefined)).map((row) => row.id))
        for (const { id } of held) {
          const slot = running.get(id)
          // Lost leases (cancelled, expired and reaped): stop working on them.
          if (!extended.has(id) && slot?.fiber !== undefined) yield* Effect.forkDetach(Fiber.interrupt(slot.fiber))
        }
      }).pipe(
        Effect.catchCause((cause) => Effect.logWarning("heartbeat failed", cause)),
        Effect.repeat(Schedule.spaced(Duration.millis(Math.max(100, Math.floor(config.leaseMs / 3)))))
      )

      const signals = Effect.gen(function*() {
        const subscription = yield* notifier.subscribe
        while (true) {
          const signal = yield* PubSub.take(subscription)
          if (signal._tag === "cancelled") {
            const fiber = running.get(signal.jobId)?.fiber
            if (fiber !== undefined) yield* Effect.forkDetach(Fiber.interrupt(fiber))
          } else if (signal._tag === "available") {
            yield* wakeOne
          } else if (signal._tag === "reconnected") {
            yield* wake
          }
        }
      }).pipe(Effect.scoped)

      yield* flusher("completion", completions, (batch) => repo.complete(batch, actor)).pipe(Effect.forkScoped)
      yield* flusher("failure", failures, (batch) => repo.fail(batch, actor, "failed")).pipe(Effect.forkScoped)
      yield* signals.pipe(Effect.forkScoped)
      yield* heartbeat.pipe(Effect.forkScoped)
      yield* repo.hasCappedQueues.pipe(
        Effect.tap((capped) => Effect.sync(() => { cappedQueues = capped })),
        Effect.catchCause((cause) => Effect.logWarning("capped-queue check failed", cause)),
        Effect.repeat(Schedule.spaced(Duration.millis(config.pollIntervalMs))),
        Effect.forkScoped
      )
      const loopFibers = yield* Effect.forEach(kicks, (kick, index) => claimLoop(kick, index).pipe(Effect.forkScoped))

      const drained = Effect.gen(function*() {
        while (running.size > 0) yield* Effect.sleep("20 millis")
      })
      const flushed = Effect.gen(function*() {
        while ((yield* Queue.size(completions)) > 0 || (yield* Queue.size(failures)) > 0 || flushing > 0) {
          yield* Effect.sleep("10 millis")
        }
      })

      // Registered after the fibers above, so it runs before they are interrupted.
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          stopping = true
          yield* wake
          // Let an in-flight claim finish so every job it took is tracked and handed back below.
          const stopped = yield* Fiber.awaitAll(loopFibers).pipe(Effect.timeoutOption("5 seconds"))
          if (Option.isNone(stopped)) yield* Fiber.interruptAll(loopFibers)
          const finished = yield* drained.pipe(Effect.timeoutOption(Duration.millis(config.shutdownGraceMs)))
          const held = [...running].map(([id, slot]) => ({ id, token: slot.token }))
          if (Option.isNone(finished)) {
            yield* Effect.logWarning("shutdown grace elapsed; interrupting attempts").pipe(
              Effect.annotateLogs({ running: held.length })
            )
          }
          yield* Scope.close(attemptScope, Exit.void)
          yield* flushed.pipe(Effect.timeoutOption("5 seconds"))
          const released = yield* repo.release(held, actor)
          yield* Effect.logInfo("engine stopped").pipe(Effect.annotateLogs({ released }))
        })
      )

      // Eager dispatch. Attached after the shutdown finalizer above, so it is detached first.
      const runnerContext = yield* Effect.context<never>()
      const startEager = (job: ClaimedJob) =>
        Effect.suspend(() => {
          // Reserved before shutdown began, inserted after: hand it straight back, as shutdown does.
          if (stopping) {
            return repo.release([{ id: job.id, token: job.lease_token }], actor).pipe(
              Effect.catchCause((cause) => Effect.logWarning("could not hand back an eagerly dispatched job", cause)),
              Effect.asVoid
            )
          }
          running.set(job.id, { token: job.lease_token, fiber: undefined })
          // Forked with the engine's own context, not the enqueueing request's.
          return Effect.forkIn(Effect.provideContext(runAttempt(job), runnerContext), attemptScope).pipe(
            Effect.tap((fiber) =>
              Effect.sync(() => {
                const slot = running.get(job.id)
                if (slot !== undefined && slot.token === job.lease_token) slot.fiber = fiber
              })
            ),
            Effect.asVoid
          )
        })
      if (config.eagerDispatch) yield* dispatch.attach({
        reserve: (kind) => {
          if (stopping || backlog || waitingForSlots > 0 || handlers.get(kind) === undefined) {
            return undefined
          }
          if (config.workerConcurrency - running.size - reserved < 1) return undefined
          reserved++
          let open = true
          const settle = () => {
            const was = open
            if (open) {
              open = false
              reserved--
            }
            return was
          }
          return {
            workerId: self,
            leaseMs: config.leaseMs,
            actor,
            start: (job) => Effect.suspend(() => settle() ? startEager(job) : Effect.void),
            cancel: Effect.sync(() => {
              settle()
            })
          }
        }
      })

      return Runner.of({ inFlight: Effect.sync(() => running.size) })
    })
  )
}
