import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { spanned } from "../../src/Observability/Tracing.ts"

describe("spanned", () => {
  it.effect("each call runs in a span of the given name, under the caller's span", () =>
    Effect.gen(function*() {
      const method = spanned("Service.method", Effect.fnUntraced(function*(n: number) {
        const span = yield* Effect.currentSpan
        return { n: n + 1, name: span.name, parent: span.parent }
      }))
      const outer = yield* Effect.currentSpan
      const first = yield* method(1)
      const second = yield* method(2)
      assert.strictEqual(first.n, 2)
      assert.strictEqual(second.n, 3)
      assert.strictEqual(first.name, "Service.method")
      assert.strictEqual(Option.getOrUndefined(first.parent)?.spanId, outer.spanId)
    }).pipe(Effect.withSpan("caller")))

  it.effect("does not capture a stack trace per call, as Effect.fn does", () =>
    Effect.gen(function*() {
      const method = spanned("Service.method", Effect.fnUntraced(function*() {
        return yield* Effect.void
      }))
      const traced = Effect.fn("Service.traced")(function*() {
        return yield* Effect.void
      })
      // Effect.fn creates its call-site errors with `new globalThis.Error()`.
      const errors = yield* Effect.sync(() => {
        const original = globalThis.Error
        let created = 0
        class Counting extends original {
          constructor(message?: string) {
            super(message)
            created++
          }
        }
        const install = (value: unknown) =>
          Object.defineProperty(globalThis, "Error", { value, configurable: true, writable: true })
        install(Counting)
        return {
          count: () => created,
          restore: () => install(original)
        }
      })
      yield* method()
      const afterSpanned = errors.count()
      yield* traced()
      errors.restore()
      assert.strictEqual(afterSpanned, 0)
      assert.isAbove(errors.count(), 0)
    }))
})
