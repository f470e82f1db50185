import { Context, Duration, Effect, Layer, PubSub, Stream } from "effect"
import type { CurrentPrincipal } from "../Auth/Principal.ts"
import { AppConfig } from "../Config/AppConfig.ts"
import { type Forbidden, type NotFound, ValidationError } from "../Domain/Errors.ts"
import type { ProjectId } from "../Domain/Ids.ts"
import { decodeCursor } from "../Domain/Pagination.ts"
import { Notifier } from "../Engine/Notifier.ts"
import { ReadinessProbe } from "../Health/Readiness.ts"
import { Projects } from "../Projects/Projects.ts"
import type { FeedEvent, FeedPage } from "./Api.ts"
import {
  EventsRepo,
  type FeedPosition,
  feedStart,
  parsePosition,
  type PositionedEvent,
  positionCursor,
  positionKey
} from "./EventsRepo.ts"

const eventType = /^[A-Za-z0-9_.:-]{1,100}$/

/** `type=a,b`: the event types to keep; empty keeps every type. */
export const parseTypes = (
  value: string | undefined,
  at: ReadonlyArray<string> = ["query", "type"]
): Effect.Effect<ReadonlyArray<string>, ValidationError> => {
  const types = (value ?? "").split(",").map((item) => item.trim()).filter((item) => item.length > 0)
  const bad = types.find((type) => !eventType.test(type))
  return bad === undefined ? Effect.succeed(types) : Effect.fail(
    new ValidationError({
      message: "invalid event type filter",
      issues: [{ path: [...at], message: `'${bad.slice(0, 100)}' is not an event type (1-100 of A-Z a-z 0-9 _ . : -)` }]
    })
  )
}

/** A feed cursor from a query parameter or header; `undefined` for the start of the feed. */
export const decodePosition = (
  cursor: string | undefined,
  at: ReadonlyArray<string>
): Effect.Effect<FeedPosition, ValidationError> =>
  cursor === undefined ? Effect.succeed(feedStart) : decodeCursor(cursor, positionKey).pipe(
    Effect.mapError(() =>
      new ValidationError({ message: "invalid cursor", issues: [{ path: [...at], message: "not a cursor returned by this API" }] })
    ),
    Effect.map((key) => key === undefined ? feedStart : parsePosition(key))
  )

/** One SSE message. Types and JSON have no line breaks, so each field is one line. */
export const renderSse = (event: FeedEvent): string =>
  `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`

export const keepAliveComment = ": keep-alive\n\n"

export interface StreamOptions {
  readonly lastEventId?: string | undefined
  readonly after?: string | undefined
  readonly type?: string | undefined
}

export class Events extends Context.Service<Events, {
  list(
    projectId: ProjectId,
    options: { readonly cursor?: string | undefined; readonly limit?: number | undefined; readonly type?: string | undefined }
  ): Effect.Effect<FeedPage, NotFound | Forbidden | ValidationError, CurrentPrincipal>
  /**
   * The feed as Server-Sent Events, from `Last-Event-ID` (else `after`, else
   * the start). Reads are bounded batches pulled only as fast as the client
   * takes them; the stream ends when the service begins shutting down.
   */
  stream(
    projectId: ProjectId,
    options: StreamOptions
  ): Effect.Effect<Stream.Stream<Uint8Array>, NotFound | Forbidden | ValidationError, CurrentPrincipal>
}>()("foreman/Events") {
  static readonly layer = Layer.effect(
    Events,
    Effect.gen(function*() {
      const repo = yield* EventsRepo
      const projects = yield* Projects
      const config = yield* AppConfig
      const notifier = yield* Notifier
      const probe = yield* ReadinessProbe

      // The type filter is applied after the read, so a cursor moves past events it
      // filtered out and a selective filter never rescans them.
      const read = (projectId: ProjectId, position: FeedPosition, types: ReadonlyArray<string>, limit: number) =>
        Effect.map(repo.after(projectId, position, limit), (rows) => {
          const last: PositionedEvent | undefined = rows.at(-1)
          return {
            events: types.length === 0 ? rows.map((row) => row.event) : rows.flatMap((row) => types.includes(row.event.type) ? [row.event] : []),
            position: last?.position ?? position,
            full: rows.length === limit
          }
        })

      const list = Effect.fn("Events.list")(function*(
        projectId: ProjectId,
        options: { readonly cursor?: string | undefined; readonly limit?: number | undefined; readonly type?: string | undefined }
      ) {
        yield* projects.access(projectId, "events:read")
        const position = yield* decodePosition(options.cursor, ["query", "cursor"])
        const types = yield* parseTypes(options.type)
        const page = yield* read(projectId, position, types, options.limit ?? 100)
        return { items: page.events, next_cursor: positionCursor(page.position), has_more: page.full }
      })

      const stream = Effect.fn("Events.stream")(function*(projectId: ProjectId, options: StreamOptions) {
        yield* projects.access(projectId, "events:read")
        const fromHeader = options.lastEventId !== undefined && options.lastEventId.length > 0
        const start = yield* decodePosition(
          fromHeader ? options.lastEventId : options.after,
          fromHeader ? ["headers", "last-event-id"] : ["query", "after"]
        )
        const types = yield* parseTypes(options.type)
        const pollMs = config.eventsPollIntervalMs
        const keepAliveMs = config.eventsKeepAliveMs

        const body = Stream.unwrap(Effect.gen(function*() {
          const signals = yield* notifier.subscribe
          // Woken early when jobs of this project become available (or the listener reconnects);
          // every other transition is found by polling.
          const wake = PubSub.take(signals).pipe(
            Effect.repeat({ until: (signal) => signal._tag === "reconnected" || (signal._tag === "available" && signal.projectId === projectId) })
          )
          interface State {
            readonly position: FeedPosition
            readonly lastSentAt: number
          }
          const step = (state: State) =>
            Effect.gen(function*() {
              let position = state.position
              while (true) {
                const page = yield* read(projectId, position, types, config.eventsBatchSize)
                position = page.position
                const now = Date.now()
                if (page.events.length > 0) {
                  return [page.events.map(renderSse).join(""), { position, lastSentAt: now }] as const
                }
                if (page.full) continue
                const quietFor = now - state.lastSentAt
                if (quietFor >= keepAliveMs) return [keepAliveComment, { position, lastSentAt: now }] as const
                yield* wake.pipe(Effect.timeoutOption(Duration.millis(Math.min(pollMs, keepAliveMs - quietFor))))
              }
            })
          // The opening comment sends the headers at once, so the client knows it is connected.
          return Stream.concat(Stream.succeed(": connected\n\n"), Stream.unfold({ position: start, lastSentAt: Date.now() }, step))
        }))
        return body.pipe(Stream.interruptWhen(probe.drainStarted), Stream.encodeText)
      })

      return Events.of({ list, stream })
    })
  )
}
