import { Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, randomBytes } from "node:crypto"
import { mkdir, readFile, writeFile } from "node:fs/promises"
import path from "node:path"
import { AppConfig } from "../Config/AppConfig.ts"

/** An Ed25519 key in JWK form; `d` (the private part) is present on keys that may sign. */
export const Ed25519Jwk = Schema.Struct({
  kty: Schema.Literal("OKP"),
  crv: Schema.Literal("Ed25519"),
  kid: Schema.String.check(Schema.isPattern(/^[A-Za-z0-9._-]{1,64}$/, { message: "kid: 1-64 of A-Z a-z 0-9 . _ -" })),
  x: Schema.String,
  d: Schema.optionalKey(Schema.String)
})
export type Ed25519Jwk = typeof Ed25519Jwk.Type

const JwkSet = Schema.Array(Ed25519Jwk)
const decodeJwkSet = Schema.decodeUnknownEffect(Schema.fromJsonString(JwkSet))

const PersistedSecrets = Schema.Struct({ passwordPepper: Schema.String, jwtKeys: JwkSet })
const decodePersisted = Schema.decodeUnknownEffect(Schema.fromJsonString(PersistedSecrets))

/** Startup refuses to continue: identity secrets are missing or malformed. */
export class IdentitySecretsError extends Schema.TaggedError<IdentitySecretsError>()("IdentitySecretsError", {
  message: Schema.String
}) {}

export interface SigningKey {
  readonly kid: string
  readonly privateKey: KeyObject
}

/** The JWT keys: one signs, every one (including retired public-only keys) verifies by `kid`. */
export interface JwtKeySet {
  readonly signing: SigningKey
  readonly verifying: ReadonlyMap<string, KeyObject>
}

export const minPepperLength = 32

/**
 * Builds a key set from JWKs: the first key signs and must carry its private
 * part; kids are unique. Exported for tests and for operators' tooling.
 */
export const keySetFromJwks = (jwks: ReadonlyArray<Ed25519Jwk>): Effect.Effect<JwtKeySet, IdentitySecretsError> =>
  Effect.gen(function*() {
    const fail = (message: string) => new IdentitySecretsError({ message: `FOREMAN_JWT_KEYS: ${message}` })
    const [first] = jwks
    if (first === undefined) return yield* fail("at least one key is required")
    if (first.d === undefined) return yield* fail(`the first key ('${first.kid}') signs and must include its private part 'd'`)
    if (new Set(jwks.map((jwk) => jwk.kid)).size !== jwks.length) return yield* fail("key ids (kid) must be unique")
    const verifying = new Map<string, KeyObject>()
    let signing: SigningKey | undefined
    for (const jwk of jwks) {
      const imported = yield* Effect.try({
        try: () => {
          const publicKey = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, format: "jwk" })
          const privateKey = jwk.d === undefined
            ? undefined
            : createPrivateKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, d: jwk.d }, format: "jwk" })
          return { publicKey, privateKey }
        },
        catch: () => fail(`key '${jwk.kid}' is not a valid Ed25519 JWK`)
      })
      verifying.set(jwk.kid, imported.publicKey)
      if (signing === undefined && imported.privateKey !== undefined) {
        signing = { kid: jwk.kid, privateKey: imported.privateKey }
      }
    }
    if (signing === undefined) return yield* fail("no signing key")
    return { signing, verifying }
  })

/** A fresh Ed25519 signing key as a private JWK. */
export const generateJwk = (kid: string): Ed25519Jwk => {
  const jwk = generateKeyPairSync("ed25519").privateKey.export({ format: "jwk" })
  return { kty: "OKP", crv: "Ed25519", kid, x: jwk.x ?? "", d: jwk.d ?? "" }
}

const generateSecrets = () => ({
  passwordPepper: randomBytes(32).toString("base64url"),
  jwtKeys: [generateJwk(`k-${randomBytes(6).toString("hex")}`)]
})

/** Where embedded mode keeps its generated secrets: next to (not inside) the PostgreSQL data directory. */
export const embeddedSecretsPath = (embeddedDataDir: string): string => `${path.resolve(embeddedDataDir)}.secrets.json`

/** Reads the embedded secrets file, creating it (0600, exclusive create) on first boot. */
const loadOrCreateEmbedded = (file: string) =>
  Effect.gen(function*() {
    const fresh = generateSecrets()
    const created = yield* Effect.tryPromise(async () => {
      await mkdir(path.dirname(file), { recursive: true })
      try {
        await writeFile(file, JSON.stringify(fresh, null, 2), { flag: "wx", mode: 0o600 })
        return true
      } catch (error) {
        if (error instanceof Error && "code" in error && error.code === "EEXIST") return false
        throw error
      }
    })
    if (created) {
      yield* Effect.logInfo(`embedded mode: generated the password pepper and JWT signing key in ${file}`)
      return fresh
    }
    const text = yield* Effect.tryPromise(() => readFile(file, "utf8"))
    return yield* decodePersisted(text)
  }).pipe(
    Effect.mapError((cause) =>
      new IdentitySecretsError({ message: `cannot read or create the embedded secrets file ${file}: ${String(cause)}` })
    )
  )

/**
 * The server-side secrets of the identity feature: the password pepper and
 * the JWT keys. From `FOREMAN_PASSWORD_PEPPER` / `FOREMAN_JWT_KEYS` when set.
 * Otherwise: in embedded mode (no `DATABASE_URL`) generated once and persisted
 * next to the data directory; on a worker-only instance (which serves no API)
 * ephemeral; and with `DATABASE_URL` on an API instance startup is refused,
 * because instances sharing a database must share these secrets.
 */
export class IdentitySecrets extends Context.Service<IdentitySecrets, {
  readonly pepper: Uint8Array
  readonly jwtKeys: JwtKeySet
}>()("foreman/IdentitySecrets") {
  static readonly layer = Layer.effect(
    IdentitySecrets,
    Effect.gen(function*() {
      const config = yield* AppConfig
      const configuredPepper = Option.map(config.passwordPepper, Redacted.value)
      const configuredKeys = Option.map(config.jwtKeys, Redacted.value)
      const bothConfigured = Option.isSome(configuredPepper) && Option.isSome(configuredKeys)
      const fallback = bothConfigured
        ? undefined
        : Option.isNone(config.databaseUrl)
        ? yield* loadOrCreateEmbedded(embeddedSecretsPath(config.embeddedDataDir))
        : config.role === "worker"
        ? generateSecrets()
        : yield* new IdentitySecretsError({
          message: "DATABASE_URL is set, so FOREMAN_PASSWORD_PEPPER and FOREMAN_JWT_KEYS are required " +
            "(every instance on the database must share them); see docs/operations.md"
        })
      const pepper = Option.getOrElse(configuredPepper, () => fallback?.passwordPepper ?? "")
      if (pepper.length < minPepperLength) {
        return yield* new IdentitySecretsError({
          message: `FOREMAN_PASSWORD_PEPPER must be at least ${minPepperLength} characters`
        })
      }
      const jwks = Option.isSome(configuredKeys)
        ? yield* decodeJwkSet(configuredKeys.value).pipe(
          Effect.mapError(() =>
            new IdentitySecretsError({ message: "FOREMAN_JWT_KEYS must be a JSON array of Ed25519 JWKs with kid" })
          )
        )
        : fallback?.jwtKeys ?? []
      const jwtKeys = yield* keySetFromJwks(jwks)
      return IdentitySecrets.of({ pepper: new TextEncoder().encode(pepper), jwtKeys })
    })
  )
}
