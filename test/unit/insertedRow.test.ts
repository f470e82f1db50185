import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Schema } from "effect"
import { decodeInserted, InsertedRow, isPlainInsertedRow } from "../../src/Jobs/JobsRepo.ts"

const decodeSchema = Schema.decodeUnknownExit(InsertedRow)

const plain = {
  id: "019ab6f0-1c2d-7e3f-8a4b-5c6d7e8f9a0b",
  state: "available",
  attempt: 0,
  max_attempts: 25,
  timeout_ms: 60_000,
  run_at: new Date("2026-11-24T03:00:00.000Z"),
  retry_policy: null,
  review_required: false,
  review_deadline_ms: null,
  review_on_deadline: "approve",
  created_at: new Date("2026-11-24T03:00:00.000Z"),
  started_at: null,
  lease_expires_at: null,
  worker_id: null,
  lease_token: null,
  effective_retry_policy: null
}

const eager = {
  ...plain,
  state: "running",
  attempt: 1,
  review_deadline_ms: 60_000,
  started_at: new Date("2026-11-24T03:00:00.001Z"),
  lease_expires_at: new Date("2026-11-24T03:01:00.001Z"),
  worker_id: "019ab6f0-0000-7000-8000-000000000001",
  lease_token: "019ab6f0-0000-4000-8000-000000000002"
}

const policy = { max_attempts: 5, initial_delay_ms: 1000, factor: 2, max_delay_ms: 60_000, jitter: 0.1 }

// Every field given a value of another type, or out of its schema's range.
const wrongValues: Record<string, ReadonlyArray<unknown>> = {
  id: ["not-a-uuid", "019AB6F0-1C2D-7E3F-8A4B-5C6D7E8F9A0B0", 7, null, undefined],
  state: ["paused", "", null, 1],
  attempt: [0.5, "0", null, Number.NaN, Number.MAX_SAFE_INTEGER + 1],
  max_attempts: [1.5, "25", null],
  timeout_ms: [Number.POSITIVE_INFINITY, "60000", null],
  run_at: [new Date(Number.NaN), "2026-11-24T03:00:00.000Z", 0, null],
  retry_policy: [undefined, "none", { max_attempts: "5" }],
  review_required: ["false", 0, null],
  review_deadline_ms: [1.5, "60000", undefined],
  review_on_deadline: ["accept", null],
  created_at: [new Date(Number.NaN), null, "now"],
  started_at: [new Date(Number.NaN), "now", undefined],
  lease_expires_at: [new Date(Number.NaN), 1, undefined],
  worker_id: [1, undefined],
  lease_token: [false, undefined],
  effective_retry_policy: [undefined, 0]
}

const without = (row: Record<string, unknown>, key: string) =>
  Object.fromEntries(Object.entries(row).filter(([name]) => name !== key))

describe("inserted rows", () => {
  it("the hand check accepts the usual rows, and they decode to themselves", () => {
    for (const row of [plain, eager]) {
      assert.isTrue(isPlainInsertedRow(row))
      const decoded = decodeSchema(row)
      assert.isTrue(Exit.isSuccess(decoded))
      if (Exit.isSuccess(decoded)) assert.deepStrictEqual<unknown>(decoded.value, row)
    }
  })

  it("accepts no row the schema refuses: every field wrong or missing in turn", () => {
    let refused = 0
    for (const [field, values] of Object.entries(wrongValues)) {
      for (const value of [...values, "missing"]) {
        const row = value === "missing" ? without(plain, field) : { ...plain, [field]: value }
        const schemaAccepts = Exit.isSuccess(decodeSchema(row))
        if (!schemaAccepts) refused++
        assert.isFalse(isPlainInsertedRow(row) && !schemaAccepts, `${field}: ${String(value)}`)
      }
    }
    // The table above is made of values the schema refuses, so the hand check was tested on them.
    assert.isAbove(refused, 50)
  })

  it.effect("rows with a retry policy go through the schema", () =>
    Effect.gen(function*() {
      const row = { ...plain, retry_policy: policy }
      assert.isFalse(isPlainInsertedRow(row))
      const [decoded] = yield* decodeInserted([row])
      assert.deepStrictEqual(decoded?.retry_policy, policy)
      const refused = yield* Effect.exit(decodeInserted([plain, { ...plain, retry_policy: { ...policy, factor: 99 } }]))
      assert.isTrue(Exit.isFailure(refused))
    }))
})
