import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { ProjectId } from "../Domain/Ids.ts"
import { encodeCursor } from "../Domain/Pagination.ts"
import { FeedEvent } from "./Api.ts"
import { traced } from "../Observability/Tracing.ts"

/** A place in a project's feed: after the event with this transaction id and row id. */
export interface FeedPosition {
  readonly xact: string
  readonly id: string
}

/** Before every event. */
export const feedStart: FeedPosition = { xact: "0", id: "0" }

/** The opaque cursor of a position (also the SSE event id). */
export const positionCursor = (position: FeedPosition): string => encodeCursor(`${position.xact}.${position.id}`)

/** Keys of feed cursors: `<xact_id>.<event id>`. */
export const positionKey = /^\d{1,20}\.\d{1,19}$/

export const parsePosition = (key: string): FeedPosition => {
  const [xact = "0", id = "0"] = key.split(".")
  return { xact, id }
}

// A feed event as stored: its cursor (`id`) is derived from `xact` and `sequence`.
const { id: _cursor, ...storedFields } = FeedEvent.fields
const EventRow = Schema.Struct({ ...storedFields, xact: Schema.String })
const decodeRows = Schema.decodeUnknownEffect(Schema.Array(EventRow))

/** An event with its feed position. */
export interface PositionedEvent {
  readonly position: FeedPosition
  readonly event: FeedEvent
}

/**
 * Reads of the feed. Only events of transactions older than every transaction
 * still running are returned (`pg_snapshot_xmin`), so an event committed later
 * always sorts after any cursor already handed out.
 */
export class EventsRepo extends Context.Service<EventsRepo, {
  /** Up to `limit` events after `after`, oldest first. */
  after(projectId: ProjectId, after: FeedPosition, limit: number): Effect.Effect<ReadonlyArray<PositionedEvent>>
  /** The position every event readable now precedes (the head of the feed). */
  readonly head: Effect.Effect<FeedPosition>
}>()("foreman/EventsRepo") {
  static readonly layer = Layer.effect(
    EventsRepo,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient

      const after = (projectId: ProjectId, position: FeedPosition, limit: number) =>
        sql`
          SELECT e.id::text AS sequence, e.xact_id::text AS xact, e.type, e.at, e.project_id, e.job_id::text AS job_id,
                 j.queue, e.worker_id::text AS worker_id, e.from_state, e.to_state, e.attempt, e.actor, e.error, e.data
          FROM job_events e LEFT JOIN jobs j ON j.id = e.job_id
          WHERE e.project_id = ${projectId}
            AND (e.xact_id, e.id) > (${position.xact}::xid8, ${position.id}::bigint)
            AND e.xact_id < pg_snapshot_xmin(pg_current_snapshot())
          ORDER BY e.xact_id, e.id
          LIMIT ${limit}`.pipe(
          Effect.flatMap(decodeRows),
          Effect.map((rows) =>
            rows.map(({ sequence, xact, ...row }): PositionedEvent => {
              const position = { xact, id: sequence }
              return { position, event: { id: positionCursor(position), sequence, ...row } }
            })
          ),
          Effect.orDie,
          traced("EventsRepo.after", { attributes: { "foreman.events.limit": limit } })
        )

      const head = sql<{ readonly xact: string }>`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xact`.pipe(
        // Every readable event has an xact_id below xmin, so (xmin, 0) follows all of them.
        Effect.map((rows): FeedPosition => ({ xact: rows[0]?.xact ?? "0", id: "0" })),
        Effect.orDie
      )

      return EventsRepo.of({ after, head })
    })
  )
}
