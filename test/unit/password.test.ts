import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { hashPassword, makeDummyHash, verifyPassword } from "../../src/Auth/Password.ts"

const pepper = new TextEncoder().encode("unit-test-pepper-0123456789abcdefghij")
const otherPepper = new TextEncoder().encode("another-pepper-0123456789abcdefghijkl")

describe("password hashing", () => {
  it.effect("Argon2id with the OWASP parameters and a fresh salt per hash", () =>
    Effect.gen(function*() {
      const first = yield* hashPassword("correct horse battery staple", pepper)
      const second = yield* hashPassword("correct horse battery staple", pepper)
      assert.match(first, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/)
      assert.notStrictEqual(first, second, "salted")
      assert.notInclude(first, "correct horse")
    }))

  it.effect("verifies the right password only, and only with the same pepper", () =>
    Effect.gen(function*() {
      const stored = yield* hashPassword("correct horse battery staple", pepper)
      assert.isTrue(yield* verifyPassword(stored, "correct horse battery staple", pepper))
      assert.isFalse(yield* verifyPassword(stored, "correct horse battery stapl", pepper))
      assert.isFalse(yield* verifyPassword(stored, "Correct horse battery staple", pepper))
      assert.isFalse(yield* verifyPassword(stored, "", pepper))
      // A database dump without the pepper does not verify guesses.
      assert.isFalse(yield* verifyPassword(stored, "correct horse battery staple", otherPepper))
    }))

  it.effect("an unparseable stored hash is a failed verification, never an error", () =>
    Effect.gen(function*() {
      assert.isFalse(yield* verifyPassword("not a hash", "whatever password", pepper))
      assert.isFalse(yield* verifyPassword("", "whatever password", pepper))
    }))

  it.effect("the dummy hash (for unknown emails) does real Argon2 work and matches nothing guessable", () =>
    Effect.gen(function*() {
      const dummy = yield* makeDummyHash(pepper)
      assert.match(dummy, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
      assert.isFalse(yield* verifyPassword(dummy, "correct horse battery staple", pepper))
      assert.isFalse(yield* verifyPassword(dummy, "", pepper))
    }))
})
