import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber } from "effect"
import { JobId, ProjectId, QueueName } from "../../src/Domain/Ids.ts"
import type { ClaimedJob } from "../../src/Engine/EngineRepo.ts"
import { HandlerFailure } from "../../src/Engine/Handler.ts"
import { fromModule, type ModuleContext } from "../../src/Engine/Handlers.ts"
import { failAfter } from "../../src/Engine/Runner.ts"

const timedOut = () => new HandlerFailure({ message: "timed out", retryable: true })

// The adapter reads only the payload and passes the job through; the rest of a claimed job does not matter here.
const claimed = (payload: ClaimedJob["payload"]): ClaimedJob => ({
  id: JobId.make("01a20bfa-faa3-7479-af2a-000000000001"),
  project_id: ProjectId.make("01a20bfa-faa3-7479-af2a-000000000002"),
  queue: QueueName.make("q"),
  kind: "k",
  payload,
  priority: 2,
  attempt: 1,
  max_attempts: 3,
  timeout_ms: 1000,
  lease_token: "t",
  lease_expires_at: new Date(),
  started_at: new Date(),
  created_at: new Date(),
  retry_policy: { max_attempts: 3, initial_delay_ms: 1000, factor: 2, max_delay_ms: 60_000, jitter: 0 },
  traceparent: null,
  last_attempt_traceparent: null,
  review_feedback: null
})

describe("failAfter (the attempt timeout)", () => {
  it.live("passes a result or a failure through, and leaves no timer behind", () =>
    Effect.gen(function*() {
      assert.strictEqual(yield* failAfter(Effect.succeed(1), 50, timedOut), 1)
      const failed = yield* Effect.exit(failAfter(Effect.fail("boom"), 50, timedOut))
      assert.deepStrictEqual(failed, Exit.fail("boom"))
      const late = yield* Effect.exit(failAfter(Effect.sleep("5 millis").pipe(Effect.as(2)), 200, timedOut))
      assert.deepStrictEqual(late, Exit.succeed(2))
    }))

  it.live("fails with the timeout error after ms and interrupts what was running", () =>
    Effect.gen(function*() {
      const finalized = yield* Deferred.make<void>()
      const start = Date.now()
      const exit = yield* Effect.exit(failAfter(
        Effect.never.pipe(Effect.onInterrupt(() => Deferred.succeed(finalized, undefined))),
        50,
        timedOut
      ))
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) assert.strictEqual(String(exit.cause).includes("timed out"), true)
      assert.isAtLeast(Date.now() - start, 45)
      yield* Deferred.await(finalized).pipe(Effect.timeout("1 second"))
    }))

  it.live("an interrupted caller interrupts the attempt and waits for its finalizers", () =>
    Effect.gen(function*() {
      let finalized = false
      const started = yield* Deferred.make<void>()
      const fiber = yield* Effect.forkChild(failAfter(
        Deferred.succeed(started, undefined).pipe(
          Effect.andThen(Effect.never),
          Effect.onInterrupt(() => Effect.sleep("20 millis").pipe(Effect.andThen(Effect.sync(() => {
            finalized = true
          }))))
        ),
        10_000,
        timedOut
      ))
      yield* Deferred.await(started)
      yield* Fiber.interrupt(fiber)
      assert.isTrue(finalized, "the attempt's finalizer ran before the interruption returned")
    }))

  it.live("the attempt sees the caller's context (its span)", () =>
    Effect.gen(function*() {
      const inner = yield* failAfter(Effect.map(Effect.currentSpan, (span) => span.name), 1000, timedOut)
      assert.strictEqual(inner, "outer")
    }).pipe(Effect.withSpan("outer")))
})

describe("handler modules", () => {
  it.live("a synchronous handler's value is the result, and it may read its signal", () =>
    Effect.gen(function*() {
      const seen: Array<boolean> = []
      const handler = fromModule((payload, context: ModuleContext) => {
        seen.push(context.signal.aborted)
        return { got: payload }
      })
      assert.deepStrictEqual(yield* handler(claimed({ n: 1 })), { got: { n: 1 } })
      assert.deepStrictEqual(seen, [false])
    }))

  it.live("a throw or a rejection is a HandlerFailure; retryable: false is kept", () =>
    Effect.gen(function*() {
      const thrown = yield* Effect.flip(fromModule(() => {
        throw new Error("bad input")
      })(claimed(null)))
      assert.deepStrictEqual([thrown.message, thrown.retryable], ["bad input", true])
      const fatal = yield* Effect.flip(fromModule(() => Promise.reject(Object.assign(new Error("gone"), { retryable: false })))(claimed(null)))
      assert.deepStrictEqual([fatal.message, fatal.retryable], ["gone", false])
      assert.strictEqual(yield* fromModule(async (payload) => payload)(claimed(7)), 7)
    }))

  it.live("a promise handler's signal aborts when the attempt is interrupted or times out", () =>
    Effect.gen(function*() {
      const signals: Array<AbortSignal> = []
      const pending = fromModule((_payload, context: ModuleContext) => {
        signals.push(context.signal)
        return new Promise(() => {})
      })
      const fiber = yield* Effect.forkChild(pending(claimed(null)))
      yield* Effect.sleep("10 millis")
      yield* Fiber.interrupt(fiber)
      assert.isTrue(signals[0]?.aborted, "interrupted")
      const exit = yield* Effect.exit(failAfter(pending(claimed(null)), 20, timedOut))
      assert.isTrue(Exit.isFailure(exit))
      yield* Effect.sleep("5 millis")
      assert.isTrue(signals[1]?.aborted, "timed out")
    }))
})
