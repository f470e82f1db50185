import { Context, Effect, Layer } from "effect"
import { requirePlatformAdmin } from "../Auth/Policy.ts"
import type { CurrentPrincipal } from "../Auth/Principal.ts"
import type { Forbidden, NotFound, ValidationError } from "../Domain/Errors.ts"
import type { ProjectId } from "../Domain/Ids.ts"
import { decodeCursor, defaultLimit, sequenceKey, toPage, type PageOptions, type PageOf } from "../Domain/Pagination.ts"
import { CurrentRequestId } from "../Http/RequestId.ts"
import { Projects } from "../Projects/Projects.ts"
import type { AuditEntry } from "./Api.ts"
import { AuditRepo } from "./AuditRepo.ts"

export interface AuditRecord {
  readonly projectId: ProjectId | null
  /** Who acted: `api_key:<id>`, `user:<id>`, `system`, or an unauthenticated `address:<ip>`. */
  readonly actor: string
  /** `<resource>.<verb>`, e.g. `api_key.created`, `job.cancelled`, `queue.paused`. */
  readonly action: string
  readonly targetType: string
  readonly targetId: string | null
  readonly details?: unknown
}

/** The audit log: append-only, written after the action it records succeeded, with the request id. */
export class Audit extends Context.Service<Audit, {
  record(entry: AuditRecord): Effect.Effect<void>
  list(
    projectId: ProjectId,
    options: PageOptions
  ): Effect.Effect<
    PageOf<AuditEntry>,
    NotFound | Forbidden | ValidationError,
    CurrentPrincipal
  >
  /** Platform-wide entries, for platform administrators. */
  platform(
    options: PageOptions
  ): Effect.Effect<
    PageOf<AuditEntry>,
    Forbidden | ValidationError,
    CurrentPrincipal
  >
}>()("foreman/Audit") {
  static readonly layer = Layer.effect(
    Audit,
    Effect.gen(function*() {
      const repo = yield* AuditRepo
      const projects = yield* Projects

      const record = Effect.fn("Audit.record")(function*(entry: AuditRecord) {
        const requestId = yield* CurrentRequestId
        yield* repo.insert({
          project_id: entry.projectId,
          actor: entry.actor,
          action: entry.action,
          target_type: entry.targetType,
          target_id: entry.targetId,
          request_id: requestId === "" ? null : requestId,
          details: entry.details
        })
      })

      const list = Effect.fn("Audit.list")(function*(
        projectId: ProjectId,
        options: PageOptions
      ) {
        yield* projects.access(projectId, "audit:read")
        const before = yield* decodeCursor(options.cursor, sequenceKey)
        const limit = options.limit ?? defaultLimit
        return toPage(yield* repo.list(projectId, before, limit + 1), limit, (entry) => entry.id)
      })

      const platform = Effect.fn("Audit.platform")(function*(
        options: PageOptions
      ) {
        yield* requirePlatformAdmin()
        const before = yield* decodeCursor(options.cursor, sequenceKey)
        const limit = options.limit ?? defaultLimit
        return toPage(yield* repo.list(null, before, limit + 1), limit, (entry) => entry.id)
      })

      return Audit.of({ record, list, platform })
    })
  )
}
