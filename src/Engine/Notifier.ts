import { PgClient } from "@effect/sql-pg"
import { Context, Deferred, Effect, Layer, PubSub, Queue, Schedule, type Scope } from "effect"

/** What other instances (or this one) announced through PostgreSQL `NOTIFY foreman`. */
export type Signal =
  | { readonly _tag: "available"; readonly projectId: string }
  | { readonly _tag: "cancelled"; readonly jobId: string }
  /** An API key was revoked: instances that trust it from memory must forget it. */
  | { readonly _tag: "keyRevoked"; readonly prefix: string }
  /** The listening connection was (re)established: anything may have been missed, so look again. */
  | { readonly _tag: "reconnected" }

const parse = (payload: string): Signal | undefined => {
  const [kind, id] = payload.split(":", 2)
  if (id === undefined) return undefined
  if (kind === "available") return { _tag: "available", projectId: id }
  if (kind === "cancelled") return { _tag: "cancelled", jobId: id }
  if (kind === "key_revoked") return { _tag: "keyRevoked", prefix: id }
  return undefined
}

/**
 * One `LISTEN foreman` connection per instance, fanned out in-process. When the
 * connection drops it is re-established every second; consumers also poll, so
 * a lost notification delays work by at most one poll interval.
 */
export class Notifier extends Context.Service<Notifier, {
  readonly subscribe: Effect.Effect<PubSub.Subscription<Signal>, never, Scope.Scope>
  /** Announces locally without a database round trip (used when this instance itself makes jobs available). */
  readonly publishLocal: (signal: Signal) => Effect.Effect<void>
  /** Whether the `LISTEN` connection is up (reported by `/readyz`). */
  readonly listening: Effect.Effect<boolean>
}>()("foreman/Notifier") {
  static readonly layer = Layer.effect(
    Notifier,
    Effect.gen(function*() {
      const pg = yield* PgClient.PgClient
      const hub = yield* PubSub.sliding<Signal>(1024)
      let listening = false
      const firstListen = yield* Deferred.make<void>()

      const listenOnce = Effect.scoped(Effect.gen(function*() {
        const notifications = yield* pg.listen("foreman")
        listening = true
        yield* Deferred.succeed(firstListen, undefined)
        yield* PubSub.publish(hub, { _tag: "reconnected" })
        while (true) {
          const notification = yield* Queue.take(notifications)
          const signal = parse(notification.payload)
          if (signal !== undefined) yield* PubSub.publish(hub, signal)
        }
      }))

      yield* listenOnce.pipe(
        Effect.tapError((error) =>
          Effect.sync(() => {
            listening = false
          }).pipe(Effect.andThen(Effect.logWarning("LISTEN connection lost; reconnecting", error)))
        ),
        Effect.retry(Schedule.spaced("1 second")),
        Effect.forkScoped
      )

      // Ready with the listener up, so /readyz does not start out failing; a database that
      // refuses LISTEN does not block startup for more than a few seconds.
      yield* Deferred.await(firstListen).pipe(Effect.timeoutOption("5 seconds"))

      return Notifier.of({
        subscribe: PubSub.subscribe(hub),
        publishLocal: (signal) => Effect.asVoid(PubSub.publish(hub, signal)),
        listening: Effect.sync(() => listening)
      })
    })
  )
}
