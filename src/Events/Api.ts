import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { Authentication } from "../Auth/Api.ts"
import { Forbidden, NotFound, ValidationError } from "../Domain/Errors.ts"
import { ProjectId } from "../Domain/Ids.ts"

/**
 * One event of a project's feed: a job transition, a review decision or a
 * worker event. `id` is the feed cursor of the event (also the SSE `id:`);
 * resuming after it returns exactly the events that follow.
 */
export const FeedEvent = Schema.Struct({
  id: Schema.String,
  /** The row number of the event; unique, but not the feed order (use `id`). */
  sequence: Schema.String,
  type: Schema.String,
  at: Schema.Date,
  project_id: ProjectId,
  job_id: Schema.NullOr(Schema.String),
  /** The job's queue, while the job exists. */
  queue: Schema.NullOr(Schema.String),
  worker_id: Schema.NullOr(Schema.String),
  from_state: Schema.NullOr(Schema.String),
  to_state: Schema.NullOr(Schema.String),
  attempt: Schema.NullOr(Schema.Int),
  actor: Schema.String,
  error: Schema.NullOr(Schema.Json),
  data: Schema.NullOr(Schema.Json)
}).annotate({ identifier: "FeedEvent" })
export type FeedEvent = typeof FeedEvent.Type

/** A page of the feed. The feed never ends: `next_cursor` is always where to continue. */
export const FeedPage = Schema.Struct({
  items: Schema.Array(FeedEvent),
  next_cursor: Schema.String,
  /** Whether more events were already available after this page. */
  has_more: Schema.Boolean
}).annotate({ identifier: "FeedPage" })
export type FeedPage = typeof FeedPage.Type

const Cursor = Schema.String.check(Schema.isMaxLength(200))
/** Comma-separated event types; only these are returned. */
const TypeFilter = Schema.String.check(Schema.isMaxLength(1000))

const eventsPath = "/v1/projects/:projectId/events"
const projectParams = { projectId: ProjectId }

export class EventsApi extends HttpApiGroup.make("events")
  .add(
    HttpApiEndpoint.get("list", eventsPath, {
      params: projectParams,
      query: {
        limit: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 1000 }))),
        cursor: Schema.optional(Cursor),
        type: Schema.optional(TypeFilter)
      },
      success: FeedPage,
      error: [NotFound, Forbidden, ValidationError]
    }),
    HttpApiEndpoint.get("stream", `${eventsPath}/stream`, {
      params: projectParams,
      query: {
        /** Where to resume when no `Last-Event-ID` header is sent; the start of the feed when neither is. */
        after: Schema.optional(Cursor),
        type: Schema.optional(TypeFilter)
      },
      success: HttpApiSchema.StreamUint8Array({ contentType: "text/event-stream" }),
      error: [NotFound, Forbidden, ValidationError]
    }).annotateMerge(OpenApi.annotations({
      description: "Server-Sent Events: `id:` is the event's cursor, `event:` its type, `data:` the FeedEvent as JSON. " +
        "Reconnect with `Last-Event-ID` (or `?after=`) to resume without loss or duplicates."
    }))
  )
  .middleware(Authentication)
  .annotateMerge(OpenApi.annotations({
    title: "Events",
    description: "The durable, ordered event feed of a project: job lifecycle, review and worker events."
  }))
{}
