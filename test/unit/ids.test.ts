import { describe, expect, it } from "@effect/vitest"
import { randomBytes } from "node:crypto"
import { parse, stringify, validate, version } from "uuid"
import { Schema } from "effect"
import { newId, Uuid, uuidText } from "../../src/Domain/Ids.ts"

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

  it("writes the text uuid's stringify writes, for any bytes", () => {
    const samples = [new Uint8Array(16), new Uint8Array(16).fill(0xff), Uint8Array.from({ length: 16 }, (_, i) => i * 17)]
    for (let i = 0; i < 2000; i++) samples.push(new Uint8Array(randomBytes(16)))
    const hex = (bytes: Uint8Array) => {
      const all = Buffer.from(bytes).toString("hex")
      return [all.slice(0, 8), all.slice(8, 12), all.slice(12, 16), all.slice(16, 20), all.slice(20)].join("-")
    }
    for (const bytes of samples) expect(uuidText(bytes)).toBe(hex(bytes))
    // uuid's stringify only takes valid UUIDs: the same bytes with version 7 and the variant bits.
    for (const bytes of samples.slice(3)) {
      bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x70
      bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80
      expect(uuidText(bytes)).toBe(stringify(bytes))
    }
    // Each call returns its own string, not a view of the shared buffer.
    const [a, b] = [uuidText(new Uint8Array(16)), uuidText(new Uint8Array(16).fill(0xff))]
    expect([a, b]).toEqual(["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"])
    for (const id of Array.from({ length: 1000 }, newId)) expect(stringify(parse(id))).toBe(id)
  })
})

describe("Uuid", () => {
  it("accepts what Schema.isUUID accepts, in lower case only", () => {
    const isAnyUuid = Schema.is(Schema.String.check(Schema.isUUID(undefined)))
    const isUuid = Schema.is(Uuid)
    const samples = [
      "00000000-0000-0000-0000-000000000000",
      "ffffffff-ffff-ffff-ffff-ffffffffffff",
      "019ab6f0-1c2d-0e3f-8a4b-5c6d7e8f9a0b",
      "019ab6f0-1c2d-7e3f-ca4b-5c6d7e8f9a0b",
      " 019ab6f0-1c2d-7e3f-8a4b-5c6d7e8f9a0b",
      "019ab6f01c2d7e3f8a4b5c6d7e8f9a0b",
      ""
    ]
    for (let i = 0; i < 500; i++) samples.push(newId(), crypto.randomUUID())
    for (const sample of [...samples]) samples.push(sample.toUpperCase(), sample.charAt(0).toUpperCase() + sample.slice(1))
    for (const sample of samples) {
      expect(isUuid(sample), sample).toBe(isAnyUuid(sample) && sample === sample.toLowerCase())
    }
    expect(samples.filter(isUuid).length).toBeGreaterThan(1000)
  })
})
