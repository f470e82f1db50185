import { assert, describe, it } from "@effect/vitest"
import { type Outcomes, reputation } from "../../src/Workers/Reputation.ts"

const none: Outcomes = { succeeded: 0, failed: 0, lease_expired: 0, approved: 0, rejected: 0 }
const close = (actual: number, expected: number) => assert.approximately(actual, expected, 1e-9)

describe("reputation", () => {
  it("a new worker is neither trusted nor distrusted", () => {
    close(reputation(none), 0.5)
  })

  it("one outcome moves it a little, not to 0 or 1", () => {
    close(reputation({ ...none, succeeded: 1 }), 0.6)
    close(reputation({ ...none, failed: 1 }), 0.4)
    close(reputation({ ...none, lease_expired: 1 }), 0.4)
  })

  it("evidence outweighs luck: 970 of 1000 beats 3 of 3", () => {
    const lucky = reputation({ ...none, succeeded: 3 })
    const proven = reputation({ ...none, succeeded: 970, failed: 30 })
    assert.isAbove(proven, lucky)
    close(proven, 972 / 1004)
  })

  it("approvals count as good outcomes, rejections twice as bad ones", () => {
    close(reputation({ ...none, succeeded: 4, approved: 4 }), 10 / 12)
    // A rejected completion was counted as a success; the rejection cancels it and counts once more.
    close(reputation({ ...none, succeeded: 1, rejected: 1 }), 3 / 7)
    assert.isBelow(reputation({ ...none, succeeded: 1, rejected: 1 }), reputation(none))
  })

  it("stays within [0, 1] and is monotone in each counter", () => {
    const base = { succeeded: 10, failed: 5, lease_expired: 2, approved: 3, rejected: 1 }
    const score = reputation(base)
    assert.isAbove(reputation({ ...base, succeeded: 11 }), score)
    assert.isAbove(reputation({ ...base, approved: 4 }), score)
    assert.isBelow(reputation({ ...base, failed: 6 }), score)
    assert.isBelow(reputation({ ...base, lease_expired: 3 }), score)
    assert.isBelow(reputation({ ...base, rejected: 2 }), score)
    for (const n of [0, 1, 10, 1e6, 1e12]) {
      for (const value of [reputation({ ...none, succeeded: n }), reputation({ ...none, failed: n })]) {
        assert.isAtLeast(value, 0)
        assert.isAtMost(value, 1)
      }
    }
  })

  it("ignores negative counters (never stored, but the function is total)", () => {
    close(reputation({ ...none, succeeded: -5, failed: -5 }), 0.5)
  })
})
