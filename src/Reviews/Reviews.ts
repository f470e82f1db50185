import { Clock, Context, Duration, Effect, Layer, Schedule } from "effect"
import { Audit } from "../Audit/Audit.ts"
import { actorName, CurrentPrincipal } from "../Auth/Principal.ts"
import { AppConfig } from "../Config/AppConfig.ts"
import { Conflict, type Forbidden, NotFound, type ValidationError } from "../Domain/Errors.ts"
import type { JobId, ProjectId } from "../Domain/Ids.ts"
import { decodeCursor, defaultLimit, type PageOf, type PageOptions, toPage } from "../Domain/Pagination.ts"
import { CurrentRequestId } from "../Http/RequestId.ts"
import type { Job } from "../Jobs/Api.ts"
import { JobsRepo } from "../Jobs/JobsRepo.ts"
import { Projects } from "../Projects/Projects.ts"
import type { Decision, Review } from "./Api.ts"
import { type Decided, type ReviewFilter, ReviewsRepo } from "./ReviewsRepo.ts"
import { traced } from "../Observability/Tracing.ts"

const jobNotFound = () => new NotFound({ message: "job not found" })

/** How many overdue reviews one sweep statement handles; a full batch is followed by another at once. */
const sweepBatch = 500

export interface SweepResult {
  readonly approved: number
  readonly rejected: number
  readonly escalated: number
}

const auditAction: Record<Decided["outcome"], string> = {
  approve: "review.approved",
  reject: "review.rejected",
  escalate: "review.escalated"
}

export class Reviews extends Context.Service<Reviews, {
  list(
    projectId: ProjectId,
    options: ReviewFilter & PageOptions
  ): Effect.Effect<PageOf<Review>, NotFound | Forbidden | ValidationError, CurrentPrincipal>
  approve(
    projectId: ProjectId,
    id: JobId,
    input: { readonly comment?: string | undefined }
  ): Effect.Effect<Job, NotFound | Forbidden | Conflict, CurrentPrincipal>
  reject(
    projectId: ProjectId,
    id: JobId,
    input: { readonly comment: string; readonly retry?: boolean | undefined }
  ): Effect.Effect<Job, NotFound | Forbidden | Conflict, CurrentPrincipal>
  /**
   * Applies the deadline outcome to every review overdue at the current `Clock`
   * time (so tests drive it with `TestClock`).
   */
  readonly sweepDeadlines: Effect.Effect<SweepResult>
}>()("foreman/Reviews") {
  static readonly layer = Layer.effect(
    Reviews,
    Effect.gen(function*() {
      const repo = yield* ReviewsRepo
      const jobs = yield* JobsRepo
      const projects = yield* Projects
      const audit = yield* Audit

      const list = Effect.fn("Reviews.list")(function*(projectId: ProjectId, options: ReviewFilter & PageOptions) {
        yield* projects.access(projectId, "reviews:read")
        const after = yield* decodeCursor(options.cursor)
        const limit = options.limit ?? defaultLimit
        const rows = yield* repo.list(projectId, options, after, limit + 1)
        return toPage(rows, limit, (review) => review.job_id)
      })

      const decide = Effect.fnUntraced(function*(
        projectId: ProjectId,
        id: JobId,
        decision: Decision,
        comment: string | null
      ) {
        yield* projects.access(projectId, "reviews:decide")
        const actor = actorName(yield* CurrentPrincipal)
        const requestId = yield* CurrentRequestId
        const decided = yield* repo.decide(projectId, id, {
          decision,
          comment,
          actor,
          requestId: requestId === "" ? null : requestId
        })
        const job = yield* jobs.find(projectId, id)
        if (job === undefined) return yield* jobNotFound()
        if (decided === undefined) {
          return yield* new Conflict({ message: `job is ${job.state}; only jobs awaiting review can be decided` })
        }
        yield* audit.record({
          projectId,
          actor,
          action: decision === "approve" ? "review.approved" : "review.rejected",
          targetType: "job",
          targetId: id,
          details: { decision, comment, worker_id: decided.worker_id, state: decided.state, attempt: decided.attempt }
        })
        return job
      })

      const approve = Effect.fn("Reviews.approve")(function*(
        projectId: ProjectId,
        id: JobId,
        input: { readonly comment?: string | undefined }
      ) {
        return yield* decide(projectId, id, "approve", input.comment ?? null)
      })

      const reject = Effect.fn("Reviews.reject")(function*(
        projectId: ProjectId,
        id: JobId,
        input: { readonly comment: string; readonly retry?: boolean | undefined }
      ) {
        return yield* decide(projectId, id, input.retry === true ? "retry" : "reject", input.comment)
      })

      const sweepDeadlines = Effect.gen(function*() {
        const totals = { approved: 0, rejected: 0, escalated: 0 }
        while (true) {
          const now = new Date(yield* Clock.currentTimeMillis)
          const decided = yield* repo.sweepDeadlines(now, sweepBatch)
          for (const row of decided) {
            if (row.outcome === "approve") totals.approved++
            else if (row.outcome === "reject") totals.rejected++
            else totals.escalated++
            yield* audit.record({
              projectId: row.project_id,
              actor: "system",
              action: auditAction[row.outcome],
              targetType: "job",
              targetId: row.id,
              details: { decision: row.outcome, reason: "deadline", worker_id: row.worker_id, state: row.state }
            })
          }
          if (decided.length < sweepBatch) return totals
        }
      }).pipe(traced("Reviews.sweepDeadlines"))

      return Reviews.of({ list, approve, reject, sweepDeadlines })
    })
  )
}

/**
 * The deadline sweep, every `interval` by the `Clock` (a `TestClock` in tests):
 * one sweep at once, then one per interval. A failed sweep is logged and the
 * loop goes on.
 */
export const deadlineLoop = (interval: Duration.Input) =>
  Effect.gen(function*() {
    const reviews = yield* Reviews
    return yield* reviews.sweepDeadlines.pipe(
      Effect.tap((result) =>
        result.approved + result.rejected + result.escalated === 0
          ? Effect.void
          : Effect.logInfo("review deadlines applied").pipe(Effect.annotateLogs({ ...result }))
      ),
      Effect.catchCause((cause) => Effect.logWarning("review deadline sweep failed", cause)),
      Effect.repeat(Schedule.spaced(interval)),
      Effect.asVoid
    )
  })

/** Runs the deadline sweep on every engine instance (not `FOREMAN_ROLE=api`), each maintenance interval. */
export const ReviewDeadlinesLive = Layer.effectDiscard(Effect.gen(function*() {
  const config = yield* AppConfig
  if (config.role === "api") return
  yield* deadlineLoop(Duration.millis(config.maintenanceIntervalMs)).pipe(Effect.forkScoped)
}))
