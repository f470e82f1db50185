import { Context, Effect, Layer, Option, Schema } from "effect"
import { SqlClient, SqlSchema } from "effect/sql"
import { UserId } from "../Domain/Ids.ts"
import { traced } from "../Observability/Tracing.ts"

const Spent = Schema.Struct({ family_id: Schema.String, user_id: UserId })
export type Spent = typeof Spent.Type

const TokenState = Schema.Struct({
  family_id: Schema.String,
  used: Schema.Boolean,
  expired: Schema.Boolean,
  family_revoked: Schema.Boolean
})
export type TokenState = typeof TokenState.Type

export type RevokeReason = "logout" | "reuse"

/**
 * Refresh-token families and tokens. Only SHA-256 digests of tokens are
 * stored; `spend` is the single conditional UPDATE that decides which of
 * several concurrent refreshes of one token wins.
 */
export class SessionsRepo extends Context.Service<SessionsRepo, {
  createFamily(id: string, userId: UserId): Effect.Effect<void>
  insertToken(
    token: { readonly id: string; readonly family_id: string; readonly token_hash: Uint8Array; readonly ttlSeconds: number }
  ): Effect.Effect<void>
  /** Marks an unused, unexpired token of a live family as used; `undefined` when no row qualified. */
  spend(tokenHash: Uint8Array<ArrayBuffer>): Effect.Effect<Spent | undefined>
  find(tokenHash: Uint8Array<ArrayBuffer>): Effect.Effect<TokenState | undefined>
  revokeFamily(familyId: string, reason: RevokeReason): Effect.Effect<void>
  /** The user's email when the session (family) exists, belongs to the user and is not revoked. */
  activeSession(familyId: string, userId: UserId): Effect.Effect<string | undefined>
}>()("foreman/SessionsRepo") {
  static readonly layer = Layer.effect(
    SessionsRepo,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient

      const spend = SqlSchema.findOneOption({
        Request: Schema.instanceOf(Uint8Array),
        Result: Spent,
        execute: (hash) =>
          sql`UPDATE refresh_tokens t SET used_at = now()
              FROM refresh_families f
              WHERE t.token_hash = ${hash} AND t.used_at IS NULL AND t.expires_at > now()
                AND f.id = t.family_id AND f.revoked_at IS NULL
              RETURNING t.family_id::text AS family_id, f.user_id`
      })
      const find = SqlSchema.findOneOption({
        Request: Schema.instanceOf(Uint8Array),
        Result: TokenState,
        execute: (hash) =>
          sql`SELECT t.family_id::text AS family_id, t.used_at IS NOT NULL AS used,
                     t.expires_at <= now() AS expired, f.revoked_at IS NOT NULL AS family_revoked
              FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id
              WHERE t.token_hash = ${hash}`
      })
      const activeSession = SqlSchema.findOneOption({
        Request: Schema.Struct({ familyId: Schema.String, userId: UserId }),
        Result: Schema.Struct({ email: Schema.String }),
        execute: ({ familyId, userId }) =>
          sql`SELECT u.email FROM refresh_families f JOIN users u ON u.id = f.user_id
              WHERE f.id = ${familyId} AND f.user_id = ${userId} AND f.revoked_at IS NULL`
      })

      return SessionsRepo.of({
        createFamily: (id, userId) =>
          sql`INSERT INTO refresh_families ${sql.insert({ id, user_id: userId })}`.pipe(
            Effect.asVoid,
            Effect.orDie,
            traced("SessionsRepo.createFamily")
          ),
        insertToken: ({ family_id, id, token_hash, ttlSeconds }) =>
          sql`INSERT INTO refresh_tokens (id, family_id, token_hash, expires_at)
              VALUES (${id}, ${family_id}, ${token_hash}, now() + make_interval(secs => ${ttlSeconds}))`.pipe(
            Effect.asVoid,
            Effect.orDie,
            traced("SessionsRepo.insertToken")
          ),
        spend: (hash) =>
          spend(hash).pipe(Effect.map(Option.getOrUndefined), Effect.orDie, traced("SessionsRepo.spend")),
        find: (hash) =>
          find(hash).pipe(Effect.map(Option.getOrUndefined), Effect.orDie, traced("SessionsRepo.find")),
        revokeFamily: (familyId, reason) =>
          sql`UPDATE refresh_families
              SET revoked_at = coalesce(revoked_at, now()), revoked_reason = coalesce(revoked_reason, ${reason})
              WHERE id = ${familyId}`.pipe(Effect.asVoid, Effect.orDie, traced("SessionsRepo.revokeFamily")),
        activeSession: (familyId, userId) =>
          activeSession({ familyId, userId }).pipe(
            Effect.map((row) => Option.getOrUndefined(row)?.email),
            Effect.orDie,
            traced("SessionsRepo.activeSession")
          )
      })
    })
  )
}
