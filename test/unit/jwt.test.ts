import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Layer } from "effect"
import { decodeProtectedHeader, decodeJwt, SignJWT } from "jose"
import { createPrivateKey, createPublicKey, createSecretKey, randomUUID } from "node:crypto"
import { mkdtemp, readFile, stat } from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import { type JwtSettings, looksLikeJwt, signAccessToken, verifyAccessToken } from "../../src/Auth/Jwt.ts"
import {
  type Ed25519Jwk,
  embeddedSecretsPath,
  generateJwk,
  IdentitySecrets,
  keySetFromJwks
} from "../../src/Auth/Secrets.ts"
import { AppConfig, appConfig } from "../../src/Config/AppConfig.ts"

const settings: JwtSettings = { issuer: "foreman", audience: "foreman-api", ttlSeconds: 900, clockSkewSeconds: 30 }
const claims = { userId: randomUUID(), sessionId: randomUUID() }
const current = generateJwk("k-2")
const previous = generateJwk("k-1")
const keySet = (jwks: ReadonlyArray<Ed25519Jwk>) => Effect.runSync(keySetFromJwks(jwks))
const publicOnly = ({ d: _d, ...jwk }: Ed25519Jwk): Ed25519Jwk => jwk
const privateKeyOf = (jwk: Ed25519Jwk) =>
  createPrivateKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, d: jwk.d ?? "" }, format: "jwk" })

const reasonOf = (exit: Exit.Exit<unknown, { readonly reason: string }>) =>
  Exit.isFailure(exit) ? exit.cause.reasons.map((r) => (r._tag === "Fail" ? r.error.reason : r._tag)).join() : "ok"

describe("access JWTs", () => {
  it.effect("carry a pinned EdDSA header with kid and typ, and iss, aud, sub, sid, jti, iat, nbf, exp", () =>
    Effect.gen(function*() {
      const now = new Date("2026-01-01T00:00:00Z")
      const token = yield* signAccessToken(keySet([current]), settings, claims, now)
      assert.isTrue(looksLikeJwt(token))
      assert.deepStrictEqual(decodeProtectedHeader(token), { alg: "EdDSA", kid: "k-2", typ: "at+jwt" })
      const payload = decodeJwt(token)
      const iat = now.getTime() / 1000
      assert.strictEqual(payload.iss, "foreman")
      assert.strictEqual(payload.aud, "foreman-api")
      assert.strictEqual(payload.sub, claims.userId)
      assert.strictEqual(payload.sid, claims.sessionId)
      assert.isString(payload.jti)
      assert.deepStrictEqual([payload.iat, payload.nbf, payload.exp], [iat, iat, iat + 900])
      const verified = yield* verifyAccessToken(keySet([current]), settings, token, now)
      assert.deepStrictEqual(verified, claims)
    }))

  it.effect("exp and nbf are checked with the clock-skew leeway", () =>
    Effect.gen(function*() {
      const issued = new Date("2026-01-01T00:00:00Z")
      const token = yield* signAccessToken(keySet([current]), settings, claims, issued)
      const at = (seconds: number) => new Date(issued.getTime() + seconds * 1000)
      const verify = (seconds: number) => Effect.exit(verifyAccessToken(keySet([current]), settings, token, at(seconds)))
      assert.isTrue(Exit.isSuccess(yield* verify(900 + 29)), "expired 29 s ago: within the leeway")
      assert.strictEqual(reasonOf(yield* verify(900 + 31)), "ERR_JWT_EXPIRED")
      assert.isTrue(Exit.isSuccess(yield* verify(-29)), "valid in 29 s: within the leeway")
      assert.strictEqual(reasonOf(yield* verify(-31)), "ERR_JWT_CLAIM_VALIDATION_FAILED")
    }))

  it.effect("rotation: a token of the previous key verifies while its public key is configured, not after", () =>
    Effect.gen(function*() {
      const old = yield* signAccessToken(keySet([previous]), settings, claims)
      const rotated = keySet([current, publicOnly(previous)])
      assert.strictEqual(rotated.signing.kid, "k-2")
      assert.deepStrictEqual(yield* verifyAccessToken(rotated, settings, old), claims)
      const retired = yield* Effect.exit(verifyAccessToken(keySet([current]), settings, old))
      assert.strictEqual(reasonOf(retired), "ERR_JWKS_NO_MATCHING_KEY")
    }))

  it.effect("rejects alg none, HS256 keyed with the public key, a foreign key, wrong iss/aud/typ, missing claims", () =>
    Effect.gen(function*() {
      const keys = keySet([current])
      const now = Math.floor(Date.now() / 1000)
      const base = { iss: "foreman", aud: "foreman-api", sub: claims.userId, sid: claims.sessionId, jti: "j", iat: now, nbf: now, exp: now + 60 }
      const sign = (payload: Record<string, unknown>, header: Record<string, unknown> = {}, key: Parameters<SignJWT["sign"]>[0] = privateKeyOf(current)) =>
        Effect.promise(() => new SignJWT(payload).setProtectedHeader({ alg: "EdDSA", kid: "k-2", typ: "at+jwt", ...header }).sign(key))
      const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
      const hmacKey = createSecretKey(createPublicKey(privateKeyOf(current)).export({ format: "der", type: "spki" }))
      const cases: Record<string, string> = {
        "alg none": `${b64({ alg: "none", kid: "k-2", typ: "at+jwt" })}.${b64(base)}.`,
        "HS256 with the public key": yield* sign(base, { alg: "HS256" }, hmacKey),
        "foreign key, same kid": yield* sign(base, {}, privateKeyOf(generateJwk("k-2"))),
        "unknown kid": yield* sign(base, { kid: "k-9" }),
        "wrong iss": yield* sign({ ...base, iss: "x" }),
        "wrong aud": yield* sign({ ...base, aud: "x" }),
        "wrong typ": yield* sign(base, { typ: "JWT" }),
        "no iat": yield* sign({ ...base, iat: undefined }),
        "no nbf": yield* sign({ ...base, nbf: undefined }),
        "no jti": yield* sign({ ...base, jti: undefined }),
        "sub not a uuid": yield* sign({ ...base, sub: "admin" }),
        malformed: "eyJhbGciOiJFZERTQSJ9.e30"
      }
      assert.isTrue(Exit.isSuccess(yield* Effect.exit(verifyAccessToken(keys, settings, yield* sign(base)))), "control")
      for (const [name, token] of Object.entries(cases)) {
        const exit = yield* Effect.exit(verifyAccessToken(keys, settings, token))
        assert.isTrue(Exit.isFailure(exit), name)
      }
    }))

  it("only compact-JWS-shaped bearer tokens take the JWT path", () => {
    assert.isTrue(looksLikeJwt("eyJhbGciOi.eyJzdWIi.sig"))
    assert.isTrue(looksLikeJwt("eyJhbGciOi.eyJzdWIi."))
    assert.isFalse(looksLikeJwt("fmn_abcdefghijkl_0123456789012345678901234567890123456789012"))
    assert.isFalse(looksLikeJwt("test-platform-admin-key-0123456789abcdef"))
    assert.isFalse(looksLikeJwt("eyJ.a.b.c"))
  })
})

describe("identity secrets", () => {
  const configFor = (env: Record<string, string>) =>
    Layer.effect(AppConfig, Effect.map(appConfig, AppConfig.of)).pipe(
      Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(env)))
    )
  const secretsWith = (env: Record<string, string>) =>
    Effect.gen(function*() {
      return yield* IdentitySecrets
    }).pipe(Effect.provide(IdentitySecrets.layer.pipe(Layer.provide(configFor(env)))))
  const load = (env: Record<string, string>) => Effect.exit(secretsWith(env))

  it("key sets need a signing key first and unique kids", () => {
    for (const jwks of [[], [publicOnly(current)], [current, { ...previous, kid: "k-2" }]]) {
      assert.isTrue(Exit.isFailure(Effect.runSyncExit(keySetFromJwks(jwks))))
    }
  })

  it.effect("with DATABASE_URL and no pepper or keys, an API instance refuses to start", () =>
    Effect.gen(function*() {
      const url = "postgres://localhost/x"
      const keys = JSON.stringify([current])
      const pepper = "p".repeat(32)
      assert.isTrue(Exit.isFailure(yield* load({ DATABASE_URL: url })))
      assert.isTrue(Exit.isFailure(yield* load({ DATABASE_URL: url, FOREMAN_JWT_KEYS: keys })))
      assert.isTrue(Exit.isFailure(yield* load({ DATABASE_URL: url, FOREMAN_PASSWORD_PEPPER: pepper })))
      assert.isTrue(Exit.isFailure(yield* load({ DATABASE_URL: url, FOREMAN_PASSWORD_PEPPER: "short", FOREMAN_JWT_KEYS: keys })))
      assert.isTrue(Exit.isFailure(yield* load({ DATABASE_URL: url, FOREMAN_PASSWORD_PEPPER: pepper, FOREMAN_JWT_KEYS: "[1]" })))
      assert.isTrue(Exit.isSuccess(yield* load({ DATABASE_URL: url, FOREMAN_PASSWORD_PEPPER: pepper, FOREMAN_JWT_KEYS: keys })))
      // A worker-only instance serves no API: it starts without them.
      assert.isTrue(Exit.isSuccess(yield* load({ DATABASE_URL: url, FOREMAN_ROLE: "worker" })))
    }))

  it.effect("embedded mode generates the secrets once, 0600, next to the data directory, and reuses them", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.promise(() => mkdtemp(path.join(os.tmpdir(), "foreman-secrets-")))
      const dataDir = path.join(dir, "postgres")
      const read = secretsWith({ FOREMAN_EMBEDDED_PG_DIR: dataDir })
      const first = yield* read
      const second = yield* read
      assert.deepStrictEqual(Buffer.from(first.pepper), Buffer.from(second.pepper))
      assert.strictEqual(first.jwtKeys.signing.kid, second.jwtKeys.signing.kid)
      const file = embeddedSecretsPath(dataDir)
      assert.strictEqual(file, `${dataDir}.secrets.json`)
      const info = yield* Effect.promise(() => stat(file))
      assert.strictEqual(info.mode & 0o777, 0o600)
      assert.include(yield* Effect.promise(() => readFile(file, "utf8")), "passwordPepper")
    }))
})
