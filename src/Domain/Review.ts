import { Schema } from "effect"

/** What happens when a review deadline passes: decide for the reviewer, or tell someone (once). */
export const OnDeadline = Schema.Literals(["approve", "reject", "escalate"])
export type OnDeadline = typeof OnDeadline.Type

/** Review deadlines: one second to seven days. */
export const ReviewDeadlineMs = Schema.Int.check(Schema.isBetween({ minimum: 1000, maximum: 604_800_000 }))

/**
 * Whether a successful attempt waits for a reviewer before the job succeeds.
 * The same shape on a queue (the default) and on a job (as resolved at enqueue).
 */
export const ReviewPolicy = Schema.Struct({
  required: Schema.Boolean,
  /** How long a result may wait for a decision; `null` for no deadline. */
  deadline_ms: Schema.NullOr(ReviewDeadlineMs),
  on_deadline: OnDeadline
}).annotate({ identifier: "ReviewPolicy" })
export type ReviewPolicy = typeof ReviewPolicy.Type

/** A partial policy: on a queue, merged over its current one; on a job, over its queue's. */
export const ReviewPolicyPatch = Schema.Struct({
  required: Schema.optionalKey(Schema.Boolean),
  deadline_ms: Schema.optionalKey(Schema.NullOr(ReviewDeadlineMs)),
  on_deadline: Schema.optionalKey(OnDeadline)
}).annotate({ identifier: "ReviewPolicyPatch" })
export type ReviewPolicyPatch = typeof ReviewPolicyPatch.Type

export const defaultReviewPolicy: ReviewPolicy = { required: false, deadline_ms: null, on_deadline: "escalate" }

export const mergeReviewPolicy = (base: ReviewPolicy, patch: ReviewPolicyPatch | undefined): ReviewPolicy => ({
  required: patch?.required ?? base.required,
  deadline_ms: patch?.deadline_ms === undefined ? base.deadline_ms : patch.deadline_ms,
  on_deadline: patch?.on_deadline ?? base.on_deadline
})

/** A reviewer's rejection with retry, handed to the job's next attempts (claim response, in-process handlers). */
export const ReviewFeedback = Schema.Struct({
  comment: Schema.String,
  /** The attempt whose result was rejected. */
  attempt: Schema.Int,
  /** When the decision was made (ISO 8601, database clock). */
  decided_at: Schema.String
}).annotate({ identifier: "ReviewFeedback" })
export type ReviewFeedback = typeof ReviewFeedback.Type
