import { assert, describe, it } from "@effect/vitest"
import { isoString, isoStringOrNull } from "../../src/Http/Serialized.ts"

describe("isoString", () => {
  it("writes what toISOString writes, for repeated, alternating and distinct dates", () => {
    const base = Date.UTC(2026, 10, 24, 1, 2, 3, 456)
    const times = [base, base, base + 1, base, base - 86_400_000, base - 86_400_000, 0, -1, 8.64e15, base + 999]
    for (const time of times) {
      const date = new Date(time)
      assert.strictEqual(isoString(date), date.toISOString())
      assert.strictEqual(isoStringOrNull(date), date.toISOString())
    }
    assert.isNull(isoStringOrNull(null))
  })

  it("matches what JSON.stringify writes for the date", () => {
    const date = new Date(Date.UTC(2030, 0, 1))
    assert.strictEqual(JSON.stringify({ at: isoString(date) }), JSON.stringify({ at: date }))
  })
})
