import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Logger, Redacted, References } from "effect"
import { TestConsole } from "effect/testing"
import { appConfig } from "../../src/Config/AppConfig.ts"
import { batchedJsonLogger, jsonLogger } from "../../src/Observability/Logging.ts"

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** Runs `effect` with the service's JSON logger and returns the parsed lines. */
const logged = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    yield* Effect.provide(effect, Logger.layer([jsonLogger]))
    const lines = yield* TestConsole.logLines
    return lines.map((line) => {
      assert.strictEqual(typeof line, "string")
      const value: unknown = JSON.parse(String(line))
      if (!isRecord(value)) throw new Error(`not an object: ${String(line)}`)
      return value
    })
  }).pipe(Effect.provide(TestConsole.layer))

describe("JSON logger", () => {
  it.effect("one object per line: time, level, message and the annotations beside them", () =>
    Effect.gen(function*() {
      const [line] = yield* logged(Effect.logInfo("attempt started").pipe(
        Effect.annotateLogs({ jobId: "job-1", queue: "emails", attempt: 2 })
      ))
      assert.deepStrictEqual(line, {
        time: line?.time,
        level: "INFO",
        message: "attempt started",
        jobId: "job-1",
        queue: "emails",
        attempt: 2
      })
      assert.match(String(line?.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    }))

  it.effect("the current span's trace and span ids, when a span is active", () =>
    Effect.gen(function*() {
      const [outside, inside] = yield* logged(Effect.gen(function*() {
        yield* Effect.log("no span")
        yield* Effect.gen(function*() {
          const span = yield* Effect.currentSpan
          yield* Effect.log("in a span", span.traceId, span.spanId)
        }).pipe(Effect.withSpan("work"))
      }))
      assert.notProperty(outside, "traceId")
      assert.notProperty(outside, "spanId")
      const message = inside?.message
      assert.isTrue(Array.isArray(message))
      assert.deepStrictEqual(message, ["in a span", inside?.traceId, inside?.spanId])
      assert.match(String(inside?.traceId), /^[0-9a-f]{32}$/)
      assert.match(String(inside?.spanId), /^[0-9a-f]{16}$/)
    }))

  it.effect("annotations cannot replace the fixed fields; redacted values stay redacted; causes are written", () =>
    Effect.gen(function*() {
      const [line] = yield* logged(Effect.logError("failed", Redacted.make("s3cr3t-value")).pipe(
        Effect.annotateLogs({ level: "fake", message: "fake", token: Redacted.make("s3cr3t-token") })
      ))
      assert.strictEqual(line?.level, "ERROR")
      assert.strictEqual(JSON.stringify(line?.message).includes("failed"), true)
      assert.notInclude(JSON.stringify(line), "s3cr3t")
    }))

  it.effect("a request-style line (string message, plain annotations) is written exactly as the general path writes it", () =>
    Effect.gen(function*() {
      // Same line twice; the second also carries an object annotation, which sends it down the general path.
      const annotations = { requestId: "req-1", "http.method": "POST", "http.status": 201, cached: false, note: null }
      const line = (extra: Record<string, unknown>) =>
        Effect.logInfo("Sent HTTP response").pipe(
          Effect.annotateLogs({ ...annotations, ...extra }),
          Effect.withLogSpan("http.span"),
          Effect.withSpan("request")
        )
      const [fast, general] = yield* logged(Effect.andThen(line({}), line({ object: { nested: true } })))
      assert.deepStrictEqual(general?.object, { nested: true })
      const { object: _, ...rest } = general ?? {}
      assert.deepStrictEqual(Object.keys(fast ?? {}), Object.keys(rest))
      assert.deepStrictEqual({ ...fast, time: 0, traceId: 0, spanId: 0 }, { ...rest, time: 0, traceId: 0, spanId: 0 })
      assert.deepStrictEqual(fast?.durations, { "http.span": 0 })
    }))

  it.effect("lines below the minimum level are not written", () =>
    Effect.gen(function*() {
      const lines = yield* logged(Effect.gen(function*() {
        yield* Effect.logDebug("hidden")
        yield* Effect.logWarning("shown")
      }).pipe(Effect.provideService(References.MinimumLogLevel, "Warn")))
      assert.deepStrictEqual(lines.map((line) => line.message), ["shown"])
    }))
})

describe("batched JSON logger (the service's)", () => {
  it.effect("lines logged together are written in one console call, one JSON object per line, and the rest when its scope closes", () =>
    Effect.gen(function*() {
      const calls = yield* Effect.scoped(Effect.gen(function*() {
        const logger = yield* batchedJsonLogger
        yield* Effect.gen(function*() {
          yield* Effect.logInfo("one")
          yield* Effect.logInfo("two")
          yield* Effect.logWarning("three")
        }).pipe(Effect.provide(Logger.layer([logger])))
        // Nothing written yet: the lines wait for the window (or the scope) to end.
        return yield* TestConsole.logLines
      }))
      assert.deepStrictEqual(calls, [])
      const written = yield* TestConsole.logLines
      assert.lengthOf(written, 1, "one write for the three lines")
      const lines = String(written[0]).split("\n").map((line) => {
        const value: unknown = JSON.parse(line)
        if (!isRecord(value)) throw new Error(`not an object: ${line}`)
        return value
      })
      assert.deepStrictEqual(lines.map((line) => [line.level, line.message]), [["INFO", "one"], ["INFO", "two"], ["WARN", "three"]])
    }).pipe(Effect.provide(TestConsole.layer)))
})

describe("FOREMAN_LOG_LEVEL", () => {
  const parse = (env: Record<string, string>) => Effect.runSyncExit(appConfig.parse(ConfigProvider.fromUnknown(env)))

  it("defaults to Info, accepts Effect's level names, refuses others", () => {
    const levelOf = (env: Record<string, string>) => {
      const exit = parse(env)
      return Exit.isSuccess(exit) ? exit.value.logLevel : "refused"
    }
    assert.strictEqual(levelOf({}), "Info")
    assert.strictEqual(levelOf({ FOREMAN_LOG_LEVEL: "Debug" }), "Debug")
    assert.strictEqual(levelOf({ FOREMAN_LOG_LEVEL: "Warn" }), "Warn")
    assert.strictEqual(levelOf({ FOREMAN_LOG_LEVEL: "loud" }), "refused")
  })
})
