import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Option } from "effect"
import { JobId } from "../../src/Domain/Ids.ts"
import { HandlerFailure } from "../../src/Engine/Handler.ts"
import { nextRetryDelay } from "../../src/Engine/RetryPolicy.ts"
import { failureFor, toStorableJson } from "../../src/Engine/Runner.ts"
import type { RetryPolicy } from "../../src/Queues/Api.ts"

const policy = (overrides: Partial<RetryPolicy> = {}): RetryPolicy => ({
  max_attempts: 10,
  initial_delay_ms: 100,
  factor: 2,
  max_delay_ms: 1_000_000,
  jitter: 0,
  ...overrides
})

/** The delay in ms after `failedAttempts`, or `null` when the policy is exhausted. */
const delayMs = (p: RetryPolicy, failedAttempts: number) =>
  Effect.map(nextRetryDelay(p, failedAttempts), (delay) => Option.getOrNull(Option.map(delay, Duration.toMillis)))

describe("nextRetryDelay", () => {
  it.effect("grows exponentially from initial_delay_ms by factor", () =>
    Effect.gen(function*() {
      const delays: Array<number | null> = []
      for (let n = 1; n <= 6; n++) delays.push(yield* delayMs(policy(), n))
      assert.deepStrictEqual(delays, [100, 200, 400, 800, 1600, 3200])

      const tripling: Array<number | null> = []
      for (let n = 1; n <= 4; n++) tripling.push(yield* delayMs(policy({ initial_delay_ms: 50, factor: 3 }), n))
      assert.deepStrictEqual(tripling, [50, 150, 450, 1350])

      // factor 1 is a constant backoff.
      assert.strictEqual(yield* delayMs(policy({ factor: 1 }), 7), 100)
    }))

  it.effect("is capped at max_delay_ms", () =>
    Effect.gen(function*() {
      const p = policy({ max_attempts: 20, max_delay_ms: 500 })
      const delays: Array<number | null> = []
      for (let n = 1; n <= 8; n++) delays.push(yield* delayMs(p, n))
      assert.deepStrictEqual(delays, [100, 200, 400, 500, 500, 500, 500, 500])
      // A huge exponent does not overflow past the cap.
      assert.strictEqual(yield* delayMs(policy({ max_attempts: 1000, factor: 10, max_delay_ms: 604_800_000 }), 400), 604_800_000)
    }))

  it.effect("is None once max_attempts is reached", () =>
    Effect.gen(function*() {
      const p = policy({ max_attempts: 3 })
      assert.strictEqual(yield* delayMs(p, 1), 100)
      assert.strictEqual(yield* delayMs(p, 2), 200)
      assert.isNull(yield* delayMs(p, 3))
      assert.isNull(yield* delayMs(p, 4))
      // A single attempt never retries.
      assert.isNull(yield* delayMs(policy({ max_attempts: 1 }), 1))
    }))

  it.effect("jitter keeps every sample within ±jitter of the nominal delay, and actually spreads", () =>
    Effect.gen(function*() {
      const p = policy({ jitter: 0.2 })
      const samples: Array<number> = []
      for (let i = 0; i < 500; i++) {
        const delay = yield* delayMs(p, 3) // nominal 400 ms
        assert.isNotNull(delay)
        if (delay !== null) samples.push(delay)
      }
      for (const sample of samples) {
        assert.isAtLeast(sample, 320)
        assert.isAtMost(sample, 480)
      }
      assert.isAbove(new Set(samples).size, 20, "jitter produces varied delays")
      assert.isBelow(Math.min(...samples), 360, "samples reach the lower part of the band")
      assert.isAbove(Math.max(...samples), 440, "samples reach the upper part of the band")
    }))

  it.effect("jitter applies after the cap, so a capped delay stays within ±jitter of max_delay_ms", () =>
    Effect.gen(function*() {
      const p = policy({ jitter: 0.5, max_delay_ms: 1000 })
      for (let i = 0; i < 200; i++) {
        const delay = yield* delayMs(p, 9) // nominal 25600, capped to 1000
        assert.isNotNull(delay)
        assert.isAtLeast(delay ?? -1, 500)
        assert.isAtMost(delay ?? Infinity, 1500)
      }
    }))

  it.effect("jitter 0 is deterministic", () =>
    Effect.gen(function*() {
      const seen = new Set<number | null>()
      for (let i = 0; i < 100; i++) seen.add(yield* delayMs(policy({ initial_delay_ms: 137, factor: 1.5 }), 4))
      assert.deepStrictEqual([...seen], [Math.round(137 * 1.5 ** 3)])
    }))

  it.effect("full jitter never goes negative", () =>
    Effect.gen(function*() {
      for (let i = 0; i < 200; i++) {
        const delay = yield* delayMs(policy({ jitter: 1 }), 1)
        assert.isAtLeast(delay ?? -1, 0)
        assert.isAtMost(delay ?? Infinity, 200)
      }
    }))
})

const jobId = JobId.make("01a20623-99f0-7045-96c5-2e9f574d7135")

const job = (overrides: { attempt?: number; max_attempts?: number; retry_policy?: RetryPolicy } = {}) => ({
  id: jobId,
  lease_token: "token-1",
  attempt: overrides.attempt ?? 1,
  max_attempts: overrides.max_attempts ?? 5,
  retry_policy: overrides.retry_policy ?? policy({ max_attempts: overrides.max_attempts ?? 5 })
})

describe("failureFor", () => {
  it.effect("a retryable failure is delayed by the policy's schedule for that attempt", () =>
    Effect.gen(function*() {
      const first = yield* failureFor(job({ attempt: 1 }), new HandlerFailure({ message: "boom", retryable: true }))
      assert.deepStrictEqual(first, {
        id: jobId,
        token: "token-1",
        error: { message: "boom", retryable: true },
        delay_ms: 100
      })
      const third = yield* failureFor(job({ attempt: 3 }), new HandlerFailure({ message: "boom", retryable: true }))
      assert.strictEqual(third.delay_ms, 400)
    }))

  it.effect("a non-retryable failure is dead (delay_ms null) whatever the attempt", () =>
    Effect.gen(function*() {
      const row = yield* failureFor(
        job({ attempt: 1 }),
        new HandlerFailure({ message: "bad input", retryable: false, details: { field: "to" } })
      )
      assert.isNull(row.delay_ms)
      assert.deepStrictEqual(row.error, { message: "bad input", retryable: false, details: { field: "to" } })
      // retryAfterMs does not resurrect a non-retryable failure.
      const withRetryAfter = yield* failureFor(
        job({ attempt: 1 }),
        new HandlerFailure({ message: "bad input", retryable: false, retryAfterMs: 5000 })
      )
      assert.isNull(withRetryAfter.delay_ms)
    }))

  it.effect("the last attempt is dead (delay_ms null)", () =>
    Effect.gen(function*() {
      const atMax = yield* failureFor(job({ attempt: 5, max_attempts: 5 }), new HandlerFailure({ message: "x", retryable: true }))
      assert.isNull(atMax.delay_ms)
      const beyond = yield* failureFor(job({ attempt: 7, max_attempts: 5 }), new HandlerFailure({ message: "x", retryable: true }))
      assert.isNull(beyond.delay_ms)
      const lastButOne = yield* failureFor(job({ attempt: 4, max_attempts: 5 }), new HandlerFailure({ message: "x", retryable: true }))
      assert.strictEqual(lastButOne.delay_ms, 800)
      // Also with retryAfterMs: attempts are still counted.
      const retryAfterAtMax = yield* failureFor(
        job({ attempt: 5, max_attempts: 5 }),
        new HandlerFailure({ message: "x", retryable: true, retryAfterMs: 10 })
      )
      assert.isNull(retryAfterAtMax.delay_ms)
    }))

  it.effect("retryAfterMs overrides the schedule's delay", () =>
    Effect.gen(function*() {
      const row = yield* failureFor(job({ attempt: 2 }), new HandlerFailure({ message: "429", retryable: true, retryAfterMs: 1234 }))
      assert.strictEqual(row.delay_ms, 1234)
      const zero = yield* failureFor(job({ attempt: 2 }), new HandlerFailure({ message: "503", retryable: true, retryAfterMs: 0 }))
      assert.strictEqual(zero.delay_ms, 0, "Retry-After: 0 means retry now, not the policy's delay")
    }))
})

describe("toStorableJson", () => {
  it("replaces NUL characters, which PostgreSQL jsonb refuses, in strings and keys at any depth", () => {
    assert.deepStrictEqual(toStorableJson({ "a\u0000b": ["x\u0000", { deep: "\u0000\u0000" }], n: 1, t: true, z: null }), {
      "a\uFFFDb": ["x\uFFFD", { deep: "\uFFFD\uFFFD" }],
      n: 1,
      t: true,
      z: null
    })
    assert.strictEqual(toStorableJson("\u0000"), "\uFFFD")
  })

  it("replaces lone surrogates (a string cut through an emoji), which jsonb also refuses", () => {
    assert.deepStrictEqual(toStorableJson({ cut: "ab\ud83d", low: "\ude00x", ["k\ud83d"]: "😀" }), {
      cut: "ab\uFFFD",
      low: "\uFFFDx",
      ["k\uFFFD"]: "😀"
    })
  })

  it("leaves the text backslash-u-0000 alone and normalises to plain JSON", () => {
    assert.strictEqual(toStorableJson("\\u0000"), "\\u0000")
    assert.isNull(toStorableJson(undefined))
    assert.deepStrictEqual(toStorableJson({ when: new Date(0), skip: undefined, nan: Number.NaN }), { when: "1970-01-01T00:00:00.000Z", nan: null })
  })

  it("throws for values with no JSON form", () => {
    assert.throws(() => toStorableJson({ n: 10n }))
    const cycle: { self?: unknown } = {}
    cycle.self = cycle
    assert.throws(() => toStorableJson(cycle))
  })
})

describe("failureFor: storable errors", () => {
  it.effect("NUL characters in the message and details are replaced; unstorable details are dropped", () =>
    Effect.gen(function*() {
      const row = yield* failureFor(job(), new HandlerFailure({ message: "a\u0000b", retryable: true, details: { body: "x\u0000" } }))
      assert.deepStrictEqual(row.error, { message: "a\uFFFDb", retryable: true, details: { body: "x\uFFFD" } })
      const dropped = yield* failureFor(job(), new HandlerFailure({ message: "m", retryable: true, details: { n: 1n } }))
      assert.deepStrictEqual(dropped.error, { message: "m", retryable: true })
    }))
})
