import { Data, type Effect } from "effect"
import type { ClaimedJob } from "./EngineRepo.ts"

/**
 * A failed attempt as a handler reports it. `retryable: false` sends the job
 * straight to `dead`; `retryAfterMs` overrides the policy's backoff for this
 * attempt (an HTTP `Retry-After`, say) while still counting the attempt.
 */
export class HandlerFailure extends Data.TaggedError("HandlerFailure")<{
  readonly message: string
  readonly retryable: boolean
  readonly retryAfterMs?: number | undefined
  readonly details?: unknown
}> {}

/** Runs one attempt of one job in-process. The result is stored on the job. */
export type Handler = (job: ClaimedJob) => Effect.Effect<unknown, HandlerFailure>
