import { assert, describe, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import { fromOperatorToken, generateKey, hashToken, matches, prefixOf } from "../../src/Auth/KeySecret.ts"

const minted = /^fmn_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/

describe("KeySecret", () => {
  it("generated keys have the documented format and a prefix taken from the token", () => {
    const tokens = new Set<string>()
    const prefixes = new Set<string>()
    for (let i = 0; i < 50; i++) {
      const key = generateKey()
      const match = minted.exec(key.token)
      assert.isNotNull(match, key.token)
      assert.strictEqual(match?.[1], key.prefix)
      tokens.add(key.token)
      prefixes.add(key.prefix)
    }
    assert.strictEqual(tokens.size, 50, "tokens are random")
    assert.strictEqual(prefixes.size, 50, "prefixes are random")
  })

  it("the secret part carries 256 bits", () => {
    const secret = generateKey().token.split("_").slice(2).join("_")
    assert.strictEqual(Buffer.from(secret, "base64url").length, 32)
  })

  it("prefixOf a minted token is its embedded prefix", () => {
    const key = generateKey()
    assert.strictEqual(prefixOf(key.token), key.prefix)
  })

  it("prefixOf a foreign token is a stable digest-derived 12-character prefix", () => {
    const foreign = "my-own-operator-secret"
    const prefix = prefixOf(foreign)
    assert.match(prefix, /^x[0-9a-f]{11}$/)
    assert.strictEqual(prefixOf(foreign), prefix, "deterministic")
    assert.strictEqual(prefix, `x${createHash("sha256").update(foreign).digest("hex").slice(0, 11)}`)
    assert.notStrictEqual(prefixOf("another-operator-secret"), prefix)
  })

  it("a token that only looks minted (wrong length, wrong alphabet) takes the foreign path", () => {
    const key = generateKey()
    for (const almost of [`${key.token}x`, key.token.slice(0, -1), key.token.replace("fmn_", "fmx_"), key.token.toUpperCase()]) {
      assert.match(prefixOf(almost), /^x[0-9a-f]{11}$/, almost)
    }
  })

  it("matches accepts the token and rejects anything else", () => {
    const key = generateKey()
    assert.isTrue(matches(key.token, key.hash))
    assert.isFalse(matches(generateKey().token, key.hash))
    assert.isFalse(matches(`${key.token} `, key.hash))
    assert.isFalse(matches("", key.hash))
    assert.isFalse(matches(key.token, new Uint8Array(32)))
    assert.isFalse(matches(key.token, key.hash.slice(0, 16)), "a hash of another length never matches")
  })

  it("the stored hash is the 32-byte SHA-256 of the token, never the token", () => {
    const key = generateKey()
    assert.strictEqual(key.hash.length, 32)
    assert.deepStrictEqual(key.hash, hashToken(key.token))
    assert.strictEqual(Buffer.from(key.hash).toString("hex"), createHash("sha256").update(key.token).digest("hex"))
    assert.notInclude(Buffer.from(key.hash).toString("utf8"), key.token)
    assert.notInclude(Buffer.from(key.hash).toString("base64url"), key.token.slice(17))
  })

  it("operator-supplied tokens keep the token and get the foreign prefix", () => {
    const key = fromOperatorToken("operator-chosen-admin-key")
    assert.strictEqual(key.token, "operator-chosen-admin-key")
    assert.strictEqual(key.prefix, prefixOf("operator-chosen-admin-key"))
    assert.isTrue(matches("operator-chosen-admin-key", key.hash))
  })
})
