import { assert, describe, it } from "@effect/vitest"
import { Exit, Schema } from "effect"
import { payloadParseOptions } from "../../src/Http/Api.ts"
import { EnqueueBatch, EnqueueJob } from "../../src/Jobs/Api.ts"
import { isPlainBatch, isPlainEnqueueJob } from "../../src/Jobs/BatchBody.ts"

// The hand check may refuse what the schema accepts (the schema then decides), but must
// never accept what the schema refuses, and what it accepts must decode to itself.
const decodeJob = Schema.decodeUnknownExit(Schema.toCodecJson(EnqueueJob), payloadParseOptions)
const decodeBatch = Schema.decodeUnknownExit(Schema.toCodecJson(EnqueueBatch), payloadParseOptions)

const nested = (depth: number): unknown => depth === 0 ? 1 : [nested(depth - 1)]

const base = { queue: "default", kind: "email.send", payload: { to: "a@example.com", n: [1, 2.5, true, null] } }

/** Each field of `base` given other values, valid and not; `undefined` removes the key. */
const variants: Record<string, ReadonlyArray<unknown>> = {
  queue: [undefined, "", "a", "Default", "_webhooks", "-x", "a b", "q".repeat(64), "q".repeat(65), 7, null, ["default"]],
  kind: [undefined, "", "a b", "k".repeat(100), "k".repeat(101), "a:b.c-d_e", "é", 1, null],
  payload: [
    undefined,
    null,
    0,
    -1.5e300,
    Number.POSITIVE_INFINITY,
    Number.NaN,
    "",
    "x\u0000y",
    "\ud800",
    "😀",
    [],
    {},
    { "a\u0000": 1 },
    { "\udc00": 1 },
    JSON.parse("{\"__proto__\":{\"x\":1}}"),
    nested(31),
    nested(32),
    nested(33),
    new Date(0),
    () => 1,
    1n,
    Symbol.for("x"),
    Object.create(null),
    new Map()
  ],
  priority: [undefined, "critical", "high", "normal", "low", "urgent", "", null, 1]
}

const extraKeys: ReadonlyArray<Record<string, unknown>> = [
  { run_at: "2026-11-24T00:00:00.000Z" },
  { run_at: "soon" },
  { delay_ms: 10 },
  { max_attempts: 3 },
  { idempotency_key: "k" },
  { retry_policy: {} },
  { extra: 1 },
  JSON.parse("{\"__proto__\":1}")
]

const candidates = (): ReadonlyArray<unknown> => {
  const out: Array<unknown> = [base, null, "job", [], [base], 1]
  for (const [key, values] of Object.entries(variants)) {
    for (const value of values) {
      const job: Record<string, unknown> = { ...base }
      if (value === undefined) delete job[key]
      else job[key] = value
      out.push(job)
    }
  }
  for (const extra of extraKeys) out.push(Object.assign({ ...base }, extra))
  return out
}

describe("batch bodies: the hand check", () => {
  it("never accepts a job the schema refuses, and accepts the usual ones as the schema decodes them", () => {
    let accepted = 0
    for (const job of candidates()) {
      const exit = decodeJob(job)
      if (isPlainEnqueueJob(job)) {
        accepted++
        assert.isTrue(Exit.isSuccess(exit), `the hand check accepted what the schema refuses: ${String(JSON.stringify(job))}`)
        if (Exit.isSuccess(exit)) assert.deepStrictEqual(exit.value, job)
      }
    }
    // base, four priorities, and the other valid queue, kind and payload values.
    assert.isAtLeast(accepted, 20)
    assert.isTrue(isPlainEnqueueJob(base))
    assert.isFalse(isPlainEnqueueJob({ ...base, run_at: "2026-11-24T00:00:00.000Z" }), "a date needs the schema's decoding")
  })

  it("takes a batch only as {jobs: [1..1000 plain jobs]}", () => {
    const jobs = (n: number) => Array.from({ length: n }, () => base)
    const bodies: ReadonlyArray<unknown> = [
      { jobs: jobs(1) },
      { jobs: jobs(1000) },
      { jobs: jobs(0) },
      { jobs: jobs(1001) },
      { jobs: [base, { ...base, extra: 1 }] },
      { jobs: jobs(1), extra: 1 },
      JSON.parse(`{"jobs":[],"__proto__":1}`),
      { jobs: {} },
      {},
      [],
      null,
      "jobs"
    ]
    const verdicts = bodies.map((body) => {
      const plain = isPlainBatch(body)
      if (plain) assert.isTrue(Exit.isSuccess(decodeBatch(body)), `accepted a batch the schema refuses: ${JSON.stringify(body).slice(0, 80)}`)
      return plain
    })
    assert.deepStrictEqual(verdicts, [true, true, false, false, false, false, false, false, false, false, false, false])
  })
})
