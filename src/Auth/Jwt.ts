import { Effect, Schema } from "effect"
import { errors, jwtVerify, SignJWT } from "jose"
import { randomUUID } from "node:crypto"
import type { JwtKeySet } from "./Secrets.ts"
import { traced } from "../Observability/Tracing.ts"

/** The only algorithm accepted: pinned, never taken from the token. */
export const jwtAlgorithm = "EdDSA"
/** RFC 9068 access-token media type, in the protected header's `typ`. */
export const accessTokenType = "at+jwt"

export interface JwtSettings {
  readonly issuer: string
  readonly audience: string
  readonly ttlSeconds: number
  readonly clockSkewSeconds: number
}

export interface AccessClaims {
  readonly userId: string
  readonly sessionId: string
}

const Uuid = Schema.String.check(Schema.isUUID(undefined))
const Payload = Schema.Struct({
  sub: Uuid,
  sid: Uuid,
  jti: Schema.String
})

/** Every way a presented token can be wrong; the caller turns them all into the same 401. */
export class InvalidToken extends Schema.TaggedError<InvalidToken>()("InvalidToken", {
  reason: Schema.String
}) {}

/** Compact JWS shape: three base64url segments, starting with a JSON header (`eyJ`). */
export const looksLikeJwt = (token: string): boolean => /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/.test(token)

export const signAccessToken = (
  keys: JwtKeySet,
  settings: JwtSettings,
  claims: AccessClaims,
  now: Date = new Date()
): Effect.Effect<string> => {
  const iat = Math.floor(now.getTime() / 1000)
  return Effect.promise(() =>
    new SignJWT({ sid: claims.sessionId })
      .setProtectedHeader({ alg: jwtAlgorithm, kid: keys.signing.kid, typ: accessTokenType })
      .setIssuer(settings.issuer)
      .setAudience(settings.audience)
      .setSubject(claims.userId)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + settings.ttlSeconds)
      .setJti(randomUUID())
      .sign(keys.signing.privateKey)
  ).pipe(traced("Jwt.sign"))
}

/**
 * Verifies signature (EdDSA only, key chosen by `kid` from the configured set),
 * `typ`, `iss`, `aud`, `exp`, `nbf` (with the clock-skew leeway) and the
 * presence of `iat`, `jti`, `sub` and `sid`.
 */
export const verifyAccessToken = (
  keys: JwtKeySet,
  settings: JwtSettings,
  token: string,
  now: Date = new Date()
): Effect.Effect<AccessClaims, InvalidToken> =>
  Effect.tryPromise({
    try: () =>
      jwtVerify(token, (header) => {
        const key = header.kid === undefined ? undefined : keys.verifying.get(header.kid)
        if (key === undefined) throw new errors.JWKSNoMatchingKey()
        return key
      }, {
        algorithms: [jwtAlgorithm],
        typ: accessTokenType,
        issuer: settings.issuer,
        audience: settings.audience,
        clockTolerance: settings.clockSkewSeconds,
        currentDate: now,
        requiredClaims: ["iss", "aud", "exp", "iat", "nbf", "jti", "sub", "sid"]
      }),
    catch: (error) => new InvalidToken({ reason: error instanceof errors.JOSEError ? error.code : "malformed" })
  }).pipe(
    Effect.flatMap(({ payload }) =>
      Schema.decodeUnknownEffect(Payload)(payload).pipe(
        Effect.mapError(() => new InvalidToken({ reason: "claims" }))
      )
    ),
    Effect.map((payload) => ({ userId: payload.sub, sessionId: payload.sid })),
    traced("Jwt.verify")
  )
