import { Clock, Context, Effect, Exit, Option, References, type Tracer } from "effect"
import { attemptLinks, formatTraceparent, parseTraceparent } from "../Observability/Tracing.ts"
import { HandlerFailure } from "./Handler.ts"

/** The attempt as the job row knows it when the attempt began. */
export interface AttemptFacts {
  readonly id: string
  readonly queue: string
  readonly kind: string
  readonly attempt: number
  readonly started_at: Date
}

/** How an attempt recorded after the fact ended, with the contexts its span links to (from the recording statement). */
export interface AttemptEnd {
  readonly outcome: "succeeded" | "failed" | "lease_expired"
  /** The failure's message, for the span's error status. */
  readonly error?: string | undefined
  readonly enqueue_traceparent: string | null
  readonly previous_traceparent: string | null
  /** The span the worker reported for this attempt, if any. */
  readonly worker_traceparent?: string | null | undefined
}

export interface RecordedAttemptSpan {
  /** The span's W3C context (stored as the job's `last_attempt_traceparent`); `null` when tracing is off. */
  readonly traceparent: string | null
  /** Ends and exports the span; call only once the outcome is recorded. */
  readonly end: (end: AttemptEnd) => Effect.Effect<void>
}

/**
 * The `Job.attempt` span of an attempt that ran outside this process (an
 * external worker's, or one lost to lease expiry), as the in-process engine
 * writes for its own: same name and attributes, a trace of its own, linked to
 * the enqueue and to the previous attempt. It starts at the job's `started_at`
 * (`Effect.makeSpan` has no start-time option, so the tracer is called
 * directly) and ends when `end` is called; a span never ended is never exported.
 */
export const startRecordedAttempt = (job: AttemptFacts): Effect.Effect<RecordedAttemptSpan> =>
  Effect.gen(function*() {
    if (!(yield* References.TracerEnabled)) {
      return { traceparent: null, end: () => Effect.void }
    }
    const tracer = yield* Effect.tracer
    const span: Tracer.Span = tracer.span({
      name: "Job.attempt",
      parent: Option.none(),
      annotations: Context.empty(),
      links: [],
      startTime: BigInt(job.started_at.getTime()) * 1_000_000n,
      kind: "internal",
      root: true,
      sampled: true
    })
    span.attribute("foreman.job.id", job.id)
    span.attribute("foreman.job.queue", job.queue)
    span.attribute("foreman.job.kind", job.kind)
    span.attribute("foreman.job.attempt", job.attempt)
    const end = (end: AttemptEnd) =>
      Effect.flatMap(Clock.currentTimeNanos, (now) =>
        Effect.sync(() => {
          const links = attemptLinks({ traceparent: end.enqueue_traceparent, last_attempt_traceparent: end.previous_traceparent })
          const worker = parseTraceparent(end.worker_traceparent)
          if (worker !== undefined) links.push({ span: worker, attributes: { "foreman.link": "worker_attempt" } })
          if (links.length > 0) span.addLinks(links)
          span.attribute("foreman.job.outcome", end.outcome)
          span.end(
            now,
            end.outcome === "succeeded"
              ? Exit.void
              : Exit.fail(new HandlerFailure({ message: end.error ?? end.outcome, retryable: true }))
          )
        }))
    return { traceparent: formatTraceparent(span), end }
  })
