/** A worker's outcome counters, as stored on its row. */
export interface Outcomes {
  readonly succeeded: number
  readonly failed: number
  readonly lease_expired: number
  readonly approved: number
  readonly rejected: number
}

/** The prior: a new worker counts as this many good and bad outcomes (mean 0.5). */
export const priorGood = 2
export const priorBad = 2

/**
 * A worker's reputation in [0, 1]: the posterior mean of its success rate under a
 * Beta(2, 2) prior (docs/worker-flow.md, "Reputation").
 *
 * good = succeeded + approved; bad = failed + lease_expired + 2 × rejected.
 * A rejection weighs twice because the completion it overturns was already counted
 * as a success. The prior keeps a new worker at 0.5 and moves it slowly: one
 * success gives 0.6, not 1; one failure 0.4, not 0.
 */
export const reputation = (outcomes: Outcomes): number => {
  const good = Math.max(0, outcomes.succeeded) + Math.max(0, outcomes.approved)
  const bad = Math.max(0, outcomes.failed) + Math.max(0, outcomes.lease_expired) + 2 * Math.max(0, outcomes.rejected)
  return (good + priorGood) / (good + bad + priorGood + priorBad)
}
