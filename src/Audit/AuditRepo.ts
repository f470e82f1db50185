import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import type { ProjectId } from "../Domain/Ids.ts"
import { AuditEntry } from "./Api.ts"
import { traced } from "../Observability/Tracing.ts"

const decodeEntries = Schema.decodeUnknownEffect(Schema.Array(AuditEntry))

export interface NewAuditEntry {
  readonly project_id: ProjectId | null
  readonly actor: string
  readonly action: string
  readonly target_type: string
  readonly target_id: string | null
  readonly request_id: string | null
  readonly details: unknown
}

export class AuditRepo extends Context.Service<AuditRepo, {
  insert(entry: NewAuditEntry): Effect.Effect<void>
  /** `projectId` null: the platform-wide entries (logins, refresh-token reuse). */
  list(projectId: ProjectId | null, before: string | undefined, limit: number): Effect.Effect<ReadonlyArray<AuditEntry>>
}>()("foreman/AuditRepo") {
  static readonly layer = Layer.effect(
    AuditRepo,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return AuditRepo.of({
        insert: (entry) =>
          sql`INSERT INTO audit_log (project_id, actor, action, target_type, target_id, request_id, details)
              VALUES (${entry.project_id}, ${entry.actor}, ${entry.action}, ${entry.target_type}, ${entry.target_id},
                      ${entry.request_id}, ${entry.details === undefined ? null : JSON.stringify(entry.details)}::jsonb)`.pipe(
            Effect.asVoid,
            Effect.orDie,
            traced("AuditRepo.insert")
          ),
        list: (projectId, before, limit) =>
          sql`SELECT audit_log.id::text AS id, project_id, at, actor, action, target_type, target_id, request_id, details
              FROM audit_log WHERE ${projectId === null ? sql`project_id IS NULL` : sql`project_id = ${projectId}`}
              ${before === undefined ? sql`` : sql`AND audit_log.id < ${before}`}
              ORDER BY audit_log.id DESC LIMIT ${limit}`.pipe(
            Effect.flatMap(decodeEntries),
            Effect.orDie,
            traced("AuditRepo.list")
          )
      })
    })
  )
}
