import { Context, Effect, Layer, type Scope } from "effect"
import type { ClaimedJob } from "./EngineRepo.ts"

/** A slot of this instance's engine, held for one job that the enqueue inserts as `running`. */
export interface Reservation {
  /** The engine instance's worker id: the job's lease holder. */
  readonly workerId: string
  readonly leaseMs: number
  /** The actor of the job's `started` event. */
  readonly actor: string
  /** Runs the job, inserted as `running` under this reservation, in the engine. */
  readonly start: (job: ClaimedJob) => Effect.Effect<void>
  /** Gives the slot back unused. A no-op once `start` or `cancel` ran. */
  readonly cancel: Effect.Effect<void>
}

/** What the engine offers while it runs. */
export interface LocalEngine {
  /** A free slot for a job of `kind`, or `undefined`: no handler for it, no free slot, a backlog, stopping. */
  readonly reserve: (kind: string) => Reservation | undefined
}

/**
 * Eager dispatch (docs/worker-flow.md#eager-dispatch): a job enqueued on an
 * instance whose engine is idle and has a handler for its kind is inserted
 * already claimed by that engine and starts without a notification and a
 * claim round trip. This service is where the enqueue finds the engine: the
 * engine attaches itself for its lifetime when FOREMAN_EAGER_DISPATCH is on; on an
 * `api` instance nothing does.
 */
export class LocalDispatch extends Context.Service<LocalDispatch, {
  readonly reserve: (kind: string) => Reservation | undefined
  readonly attach: (engine: LocalEngine) => Effect.Effect<void, never, Scope.Scope>
}>()("foreman/LocalDispatch") {
  static readonly layer = Layer.sync(LocalDispatch, () => {
    let current: LocalEngine | undefined
    return LocalDispatch.of({
      reserve: (kind) => current?.reserve(kind),
      attach: (engine) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            current = engine
          }),
          () =>
            Effect.sync(() => {
              if (current === engine) current = undefined
            })
        )
    })
  })
}
