import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { randomBytes } from "node:crypto"
import { AppConfig } from "../Config/AppConfig.ts"
import { Unauthorized } from "../Domain/Errors.ts"
import { newId, type ProjectId, UserId } from "../Domain/Ids.ts"
import type { MemberRole } from "../Domain/Role.ts"
import { normalizeEmail } from "../Users/Email.ts"
import { UsersRepo } from "../Users/UsersRepo.ts"
import type { TokenPair } from "./IdentityApi.ts"
import { type JwtSettings, signAccessToken, verifyAccessToken } from "./Jwt.ts"
import { hashToken } from "./KeySecret.ts"
import { makeDummyHash, verifyPassword } from "./Password.ts"
import type { UserPrincipal } from "./Principal.ts"
import { IdentitySecrets } from "./Secrets.ts"
import { SessionsRepo } from "./SessionsRepo.ts"
import { Audit } from "../Audit/Audit.ts"
import { spanned } from "../Observability/Tracing.ts"

const badCredentials = () => new Unauthorized({ message: "invalid email or password" })
const badRefresh = () => new Unauthorized({ message: "invalid, expired, used or revoked refresh token" })
const badAccess = () => new Unauthorized({ message: "invalid, expired or revoked access token" })

/** Opaque refresh tokens: `fmr_` and 256 random bits; only their SHA-256 is stored. */
const newRefreshToken = (): string => `fmr_${randomBytes(32).toString("base64url")}`

/**
 * Password login, refresh-token rotation with reuse detection, logout, and
 * resolving an access JWT to its user principal.
 *
 * Refresh: the presented token is spent by one conditional UPDATE (`used_at
 * IS NULL`). Of two concurrent refreshes of one token the row lock lets
 * exactly one match; the other then finds the token used, which is reuse: the
 * whole family is revoked, including the token the winner just received.
 */
export class Sessions extends Context.Service<Sessions, {
  login(email: string, password: string): Effect.Effect<TokenPair, Unauthorized>
  refresh(refreshToken: string): Effect.Effect<TokenPair, Unauthorized>
  logout(refreshToken: string): Effect.Effect<void>
  authenticate(accessToken: string): Effect.Effect<UserPrincipal, Unauthorized>
}>()("foreman/Sessions") {
  static readonly layer = Layer.effect(
    Sessions,
    Effect.gen(function*() {
      const repo = yield* SessionsRepo
      const users = yield* UsersRepo
      const secrets = yield* IdentitySecrets
      const config = yield* AppConfig
      const sql = yield* SqlClient.SqlClient
      const audit = yield* Audit
      const dummyHash = yield* makeDummyHash(secrets.pepper)
      const jwt: JwtSettings = {
        issuer: config.jwtIssuer,
        audience: config.jwtAudience,
        ttlSeconds: config.accessTokenTtlSeconds,
        clockSkewSeconds: config.jwtClockSkewSeconds
      }

      /** A new access token and the next refresh token of `familyId`. */
      const issue = Effect.fn("Sessions.issue")(function*(userId: UserId, familyId: string) {
        const refreshToken = newRefreshToken()
        yield* repo.insertToken({
          id: newId(),
          family_id: familyId,
          token_hash: hashToken(refreshToken),
          ttlSeconds: config.refreshTokenTtlSeconds
        })
        const accessToken = yield* signAccessToken(secrets.jwtKeys, jwt, { userId, sessionId: familyId })
        const pair: TokenPair = {
          access_token: accessToken,
          token_type: "Bearer",
          expires_in: config.accessTokenTtlSeconds,
          refresh_token: refreshToken
        }
        return pair
      })

      const login = Effect.fn("Sessions.login")(function*(email: string, password: string) {
        const user = yield* users.findByEmail(normalizeEmail(email))
        // An unknown email still pays for one Argon2 verification, against a dummy hash.
        const valid = yield* verifyPassword(user?.password_hash ?? dummyHash, password, secrets.pepper)
        if (user === undefined || !valid) {
          yield* audit.record({
            projectId: null,
            actor: "anonymous",
            action: "auth.login_failed",
            targetType: "user",
            targetId: user?.id ?? null,
            details: { email: normalizeEmail(email) }
          })
          return yield* badCredentials()
        }
        const familyId = newId()
        yield* audit.record({
          projectId: null,
          actor: `user:${user.id}`,
          action: "auth.login",
          targetType: "session",
          targetId: familyId
        })
        return yield* sql.withTransaction(
          Effect.gen(function*() {
            yield* repo.createFamily(familyId, user.id)
            return yield* issue(user.id, familyId)
          })
        ).pipe(Effect.orDie)
      })

      const refresh = Effect.fn("Sessions.refresh")(function*(refreshToken: string) {
        const hash = hashToken(refreshToken)
        const rotated = yield* sql.withTransaction(
          Effect.gen(function*() {
            const spent = yield* repo.spend(hash)
            if (spent === undefined) return undefined
            return yield* issue(spent.user_id, spent.family_id)
          })
        ).pipe(Effect.orDie)
        if (rotated !== undefined) return rotated
        const state = yield* repo.find(hash)
        if (state?.used === true && !state.family_revoked) {
          // A spent token came back: someone holds a copy. End the whole family.
          yield* repo.revokeFamily(state.family_id, "reuse")
          yield* audit.record({
            projectId: null,
            actor: "system",
            action: "auth.refresh_reuse",
            targetType: "session",
            targetId: state.family_id
          })
          yield* Effect.logWarning("refresh token reuse detected; family revoked").pipe(
            Effect.annotateLogs({ family: state.family_id })
          )
        }
        return yield* badRefresh()
      })

      const logout = Effect.fn("Sessions.logout")(function*(refreshToken: string) {
        const state = yield* repo.find(hashToken(refreshToken))
        if (state !== undefined) yield* repo.revokeFamily(state.family_id, "logout")
      })

      const authenticate = spanned("Sessions.authenticate", Effect.fnUntraced(function*(accessToken: string) {
        const claims = yield* verifyAccessToken(secrets.jwtKeys, jwt, accessToken).pipe(
          Effect.mapError(badAccess)
        )
        const userId = UserId.make(claims.userId)
        // Checked on every request: logout and reuse detection end access tokens too, not only refresh tokens.
        const email = yield* repo.activeSession(claims.sessionId, userId)
        if (email === undefined) return yield* badAccess()
        const rows = yield* users.memberships(userId)
        const memberships = new Map<ProjectId, MemberRole>(rows.map((row) => [row.project_id, row.role]))
        const principal: UserPrincipal = { kind: "user", userId, email, sessionId: claims.sessionId, memberships }
        return principal
      }))

      return Sessions.of({ login, refresh, logout, authenticate })
    })
  )
}
