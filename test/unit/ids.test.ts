import { describe, expect, it } from "@effect/vitest"
import { validate, version } from "uuid"
import { newId } from "../../src/Domain/Ids.ts"

describe("newId", () => {
  it("makes distinct version 7 UUIDs that sort in the order they were made, across many pool refills", () => {
    // 20,000 ids draw 320 kB of random bytes: the 4 kB pool is refilled 78 times.
    const ids = Array.from({ length: 20_000 }, newId)
    expect(ids.every((id) => validate(id) && version(id) === 7)).toBe(true)
    expect(ids.every((id) => /^[0-9a-f-]{36}$/.test(id) && /^[89ab]$/.test(id.charAt(19)))).toBe(true)
    expect(new Set(ids).size).toBe(ids.length)
    expect([...ids].sort()).toEqual(ids)
  })

  it("gives every id fresh random bytes", async () => {
    const first = Array.from({ length: 1000 }, newId)
    await new Promise((resolve) => setTimeout(resolve, 5))
    const second = Array.from({ length: 1000 }, newId)
    // The last five bytes are random alone (no timestamp or sequence bits); 40 bits for 2,000 ids.
    const tails = new Set([...first, ...second].map((id) => id.slice(-10)))
    expect(tails.size).toBe(2000)
  })
})
