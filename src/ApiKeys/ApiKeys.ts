import { Console, Context, Effect, Layer, Option, PubSub, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { fromOperatorToken, generateKey, matches, prefixOf } from "../Auth/KeySecret.ts"
import { CurrentPrincipal, type Principal, actorName } from "../Auth/Principal.ts"
import { AppConfig } from "../Config/AppConfig.ts"
import { type Forbidden, NotFound, Unauthorized, type ValidationError } from "../Domain/Errors.ts"
import { ApiKeyId, newId, type ProjectId } from "../Domain/Ids.ts"
import { decodeCursor, defaultLimit, toPage, type PageOptions, type PageOf } from "../Domain/Pagination.ts"
import type { ProjectRole } from "../Domain/Role.ts"
import { Projects } from "../Projects/Projects.ts"
import { Audit } from "../Audit/Audit.ts"
import { Notifier } from "../Engine/Notifier.ts"
import type { ApiKey } from "./Api.ts"
import { type ApiKeyRow, ApiKeysRepo } from "./ApiKeysRepo.ts"
import { spanned, traced } from "../Observability/Tracing.ts"

const unauthorized = () => new Unauthorized({ message: "missing, malformed, unknown or revoked API key" })

/** A project key as the API shows it; platform keys never reach the project endpoints. */
const toApiKey = (row: ApiKeyRow): Effect.Effect<ApiKey> =>
  row.project_id === null || row.role === "platform_admin"
    ? Effect.die(new Error(`api key ${row.id} is not project-scoped`))
    : Effect.succeed({
      id: row.id,
      project_id: row.project_id,
      name: row.name,
      role: row.role,
      prefix: row.prefix,
      created_at: row.created_at,
      revoked_at: row.revoked_at
    })

export class ApiKeys extends Context.Service<ApiKeys, {
  create(
    projectId: ProjectId,
    input: { readonly name: string; readonly role: ProjectRole }
  ): Effect.Effect<ApiKey & { readonly secret: string }, NotFound | Forbidden, CurrentPrincipal>
  list(
    projectId: ProjectId,
    options: PageOptions
  ): Effect.Effect<
    PageOf<ApiKey>,
    NotFound | Forbidden | ValidationError,
    CurrentPrincipal
  >
  revoke(projectId: ProjectId, keyId: ApiKeyId): Effect.Effect<ApiKey, NotFound | Forbidden, CurrentPrincipal>
  /** Resolves a bearer token to its principal; every failure is the same 401. */
  authenticate(token: string): Effect.Effect<Principal, Unauthorized>
  /** On an empty database, creates the first platform-admin key and prints it once. */
  bootstrap: Effect.Effect<void>
}>()("foreman/ApiKeys") {
  static readonly layer = Layer.effect(
    ApiKeys,
    Effect.gen(function*() {
      const repo = yield* ApiKeysRepo
      const projects = yield* Projects
      const audit = yield* Audit
      const sql = yield* SqlClient.SqlClient
      const config = yield* AppConfig
      const notifier = yield* Notifier

      // Verified keys by prefix, so a request costs no key lookup. A revocation commits a
      // NOTIFY that makes every instance forget the key; the memory is only trusted while
      // the LISTEN connection is up, and is dropped whenever it reconnects (anything may have
      // been missed). `generation` moves on every such signal: a lookup that raced one is
      // not remembered.
      const trusted = new Map<string, { readonly row: ApiKeyRow; readonly until: number }>()
      const maxTrusted = 10_000
      let generation = 0
      const signals = yield* notifier.subscribe
      yield* Effect.forkScoped(Effect.forever(Effect.map(PubSub.take(signals), (signal) => {
        if (signal._tag === "keyRevoked") {
          generation++
          trusted.delete(signal.prefix)
        } else if (signal._tag === "reconnected") {
          generation++
          trusted.clear()
        }
      })))

      const lookup = Effect.fnUntraced(function*(prefix: string) {
        const hit = trusted.get(prefix)
        if (hit !== undefined && hit.until > Date.now() && (yield* notifier.listening)) return hit.row
        const before = generation
        const row = yield* repo.findByPrefix(prefix)
        trusted.delete(prefix)
        if (row !== undefined && row.revoked_at === null && config.apiKeyCacheMs > 0 && generation === before) {
          if (trusted.size >= maxTrusted) {
            const oldest = trusted.keys().next()
            if (oldest.done !== true) trusted.delete(oldest.value)
          }
          trusted.set(prefix, { row, until: Date.now() + config.apiKeyCacheMs })
        }
        return row
      })

      const create = Effect.fn("ApiKeys.create")(function*(
        projectId: ProjectId,
        input: { readonly name: string; readonly role: ProjectRole }
      ) {
        yield* projects.access(projectId, "keys:manage")
        const key = generateKey()
        const row = yield* repo.insert({
          id: ApiKeyId.make(newId()),
          project_id: projectId,
          name: input.name,
          role: input.role,
          prefix: key.prefix,
          secret_hash: key.hash
        })
        const apiKey = yield* toApiKey(row)
        yield* audit.record({
          projectId,
          actor: actorName(yield* CurrentPrincipal),
          action: "api_key.created",
          targetType: "api_key",
          targetId: row.id,
          details: { name: input.name, role: input.role, prefix: key.prefix }
        })
        return { ...apiKey, secret: key.token }
      })

      const list = Effect.fn("ApiKeys.list")(function*(
        projectId: ProjectId,
        options: PageOptions
      ) {
        yield* projects.access(projectId, "keys:manage")
        const after = yield* decodeCursor(options.cursor)
        const limit = options.limit ?? defaultLimit
        const rows = yield* repo.list(projectId, after, limit + 1)
        const page = toPage(rows, limit, (row) => row.id)
        return { items: yield* Effect.forEach(page.items, toApiKey), next_cursor: page.next_cursor }
      })

      const revoke = Effect.fn("ApiKeys.revoke")(function*(projectId: ProjectId, keyId: ApiKeyId) {
        yield* projects.access(projectId, "keys:manage")
        const row = yield* repo.revoke(projectId, keyId)
        if (row === undefined) return yield* new NotFound({ message: "api key not found" })
        // At once here, whatever the notification's delay.
        generation++
        trusted.delete(row.prefix)
        yield* audit.record({
          projectId,
          actor: actorName(yield* CurrentPrincipal),
          action: "api_key.revoked",
          targetType: "api_key",
          targetId: row.id
        })
        return yield* toApiKey(row)
      })

      const authenticate = spanned("ApiKeys.authenticate", Effect.fnUntraced(function*(token: string) {
        if (token.length === 0 || token.length > 512) return yield* unauthorized()
        const row = yield* lookup(prefixOf(token))
        // The hash comparison runs whether or not the row exists, so the
        // response time does not tell an unknown prefix from a wrong secret.
        const valid = matches(token, row?.secret_hash ?? emptyHash)
        if (row === undefined || !valid || row.revoked_at !== null) return yield* unauthorized()
        const principal: Principal = { kind: "api_key", keyId: row.id, projectId: row.project_id, role: row.role }
        return principal
      }))

      const bootstrap = sql.withTransaction(
        Effect.gen(function*() {
          // Serialises instances that boot together against the same empty database.
          yield* sql`SELECT pg_advisory_xact_lock(${bootstrapLockKey})`
          if ((yield* repo.countAll) > 0) return
          const supplied = Option.map(config.adminApiKey, (secret) => fromOperatorToken(Redacted.value(secret)))
          const key = Option.getOrElse(supplied, generateKey)
          yield* repo.insert({
            id: ApiKeyId.make(newId()),
            project_id: null,
            name: "bootstrap platform admin",
            role: "platform_admin",
            prefix: key.prefix,
            secret_hash: key.hash
          })
          if (Option.isSome(supplied)) {
            yield* Effect.logInfo("bootstrap platform-admin key created from FOREMAN_ADMIN_API_KEY")
          } else {
            // Printed once, on the first boot of an empty database; only its hash is stored.
            yield* Console.log(
              `\nForeman: first boot. Platform-admin API key (shown once, store it now):\n\n  ${key.token}\n`
            )
          }
        })
      ).pipe(Effect.orDie, traced("ApiKeys.bootstrap"))

      return ApiKeys.of({ create, list, revoke, authenticate, bootstrap })
    })
  )
}

const emptyHash = new Uint8Array(32)
const bootstrapLockKey = 7_401_002
