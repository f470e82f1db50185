import { Context, Duration, Effect, Layer, PubSub } from "effect"
import { actorName, CurrentPrincipal } from "../Auth/Principal.ts"
import { AppConfig } from "../Config/AppConfig.ts"
import { type Forbidden, NotFound, type ValidationError } from "../Domain/Errors.ts"
import { type JobId, newId, type ProjectId, WorkerId } from "../Domain/Ids.ts"
import { decodeCursor, defaultLimit, toPage, type PageOptions, type PageOf } from "../Domain/Pagination.ts"
import { type ClaimedJob, EngineRepo } from "../Engine/EngineRepo.ts"
import { HandlerFailure } from "../Engine/Handler.ts"
import { Notifier } from "../Engine/Notifier.ts"
import { failureFor } from "../Engine/Runner.ts"
import * as Metrics from "../Observability/Metrics.ts"
import type { Job } from "../Jobs/Api.ts"
import { JobsRepo } from "../Jobs/JobsRepo.ts"
import { Projects } from "../Projects/Projects.ts"
import { QueuesRepo } from "../Queues/QueuesRepo.ts"
import { LeaseLost, type Worker } from "./Api.ts"
import { WorkersRepo } from "./WorkersRepo.ts"

export interface ClaimOptions {
  readonly limit?: number | undefined
  readonly wait_ms?: number | undefined
  readonly lease_ms?: number | undefined
}

const workerNotFound = () => new NotFound({ message: "worker not found" })
const jobNotFound = () => new NotFound({ message: "job not found" })

export class Workers extends Context.Service<Workers, {
  register(
    projectId: ProjectId,
    input: { readonly name: string; readonly kinds: ReadonlyArray<string> }
  ): Effect.Effect<Worker, NotFound | Forbidden, CurrentPrincipal>
  list(projectId: ProjectId, options: PageOptions): Effect.Effect<
    PageOf<Worker>,
    NotFound | Forbidden | ValidationError,
    CurrentPrincipal
  >
  /** Claims up to `limit` jobs of the worker's kinds, waiting up to `wait_ms` for one to arrive. */
  claim(
    projectId: ProjectId,
    workerId: WorkerId,
    options: ClaimOptions
  ): Effect.Effect<ReadonlyArray<ClaimedJob>, NotFound | Forbidden, CurrentPrincipal>
  heartbeat(
    projectId: ProjectId,
    jobId: JobId,
    input: { readonly lease_token: string; readonly lease_ms?: number | undefined; readonly progress?: unknown }
  ): Effect.Effect<{ readonly lease_expires_at: Date }, NotFound | Forbidden | LeaseLost, CurrentPrincipal>
  complete(
    projectId: ProjectId,
    jobId: JobId,
    input: { readonly lease_token: string; readonly result?: unknown }
  ): Effect.Effect<Job, NotFound | Forbidden | LeaseLost, CurrentPrincipal>
  fail(
    projectId: ProjectId,
    jobId: JobId,
    input: {
      readonly lease_token: string
      readonly error: { readonly message: string; readonly details?: unknown }
      readonly retryable?: boolean | undefined
      readonly retry_after_ms?: number | undefined
    }
  ): Effect.Effect<Job, NotFound | Forbidden | LeaseLost, CurrentPrincipal>
}>()("foreman/Workers") {
  static readonly layer = Layer.effect(
    Workers,
    Effect.gen(function*() {
      const config = yield* AppConfig
      const projects = yield* Projects
      const repo = yield* WorkersRepo
      const engine = yield* EngineRepo
      const jobs = yield* JobsRepo
      const queues = yield* QueuesRepo
      const notifier = yield* Notifier

      const register = Effect.fn("Workers.register")(function*(
        projectId: ProjectId,
        input: { readonly name: string; readonly kinds: ReadonlyArray<string> }
      ) {
        yield* projects.access(projectId, "workers:register")
        return yield* repo.insert({ id: WorkerId.make(newId()), project_id: projectId, name: input.name, kinds: [...new Set(input.kinds)] })
      })

      const list = Effect.fn("Workers.list")(function*(projectId: ProjectId, options: PageOptions) {
        yield* projects.access(projectId, "workers:read")
        const after = yield* decodeCursor(options.cursor)
        const limit = options.limit ?? defaultLimit
        return toPage(yield* repo.list(projectId, after, limit + 1), limit, (worker) => worker.id)
      })

      const claim = Effect.fn("Workers.claim")(function*(projectId: ProjectId, workerId: WorkerId, options: ClaimOptions) {
        yield* projects.access(projectId, "jobs:work")
        const worker = yield* repo.touch(projectId, workerId)
        if (worker === undefined) return yield* workerNotFound()
        const principal = yield* CurrentPrincipal
        const request = {
          limit: options.limit ?? 1,
          kinds: worker.kinds,
          projectId,
          workerId,
          leaseMs: options.lease_ms ?? config.leaseMs,
          includeCapped: true,
          actor: `worker:${workerId} (${actorName(principal)})`
        }
        const deadline = Date.now() + (options.wait_ms ?? 0)
        return yield* Effect.scoped(Effect.gen(function*() {
          // Subscribed before the first attempt, so a job enqueued in between still wakes us.
          const signals = yield* notifier.subscribe
          while (true) {
            const claimed = yield* engine.claim(request)
            const remaining = deadline - Date.now()
            yield* Effect.forEach(claimed, Metrics.recordStarted, { discard: true })
            if (claimed.length > 0 || remaining <= 0) return claimed
            const wakeForUs = Effect.gen(function*() {
              while (true) {
                const signal = yield* PubSub.take(signals)
                if (signal._tag === "reconnected" || (signal._tag === "available" && signal.projectId === projectId)) return
              }
            })
            yield* wakeForUs.pipe(Effect.timeoutOption(Duration.millis(Math.min(remaining, config.pollIntervalMs))))
          }
        }))
      })

      /** Why a lease-holder call changed nothing: 404 outside the project, else who holds the job now. */
      const explain = Effect.fnUntraced(function*(projectId: ProjectId, jobId: JobId) {
        const job = yield* jobs.find(projectId, jobId)
        if (job === undefined) return yield* jobNotFound()
        return yield* new LeaseLost({
          message: job.state === "cancelled"
            ? "the job was cancelled"
            : job.state === "running"
            ? "the lease token is not the current one"
            : `the lease is no longer held (job is ${job.state})`,
          state: job.state
        })
      })

      const requireJob = Effect.fnUntraced(function*(projectId: ProjectId, jobId: JobId) {
        const job = yield* jobs.find(projectId, jobId)
        if (job === undefined) return yield* jobNotFound()
        return job
      })

      const heartbeat = Effect.fn("Workers.heartbeat")(function*(
        projectId: ProjectId,
        jobId: JobId,
        input: { readonly lease_token: string; readonly lease_ms?: number | undefined; readonly progress?: unknown }
      ) {
        yield* projects.access(projectId, "jobs:work")
        yield* requireJob(projectId, jobId)
        const [extended] = yield* engine.heartbeat(
          [{ id: jobId, token: input.lease_token }],
          input.lease_ms ?? config.leaseMs,
          input.progress
        )
        if (extended === undefined) return yield* explain(projectId, jobId)
        return { lease_expires_at: extended.lease_expires_at }
      })

      const complete = Effect.fn("Workers.complete")(function*(
        projectId: ProjectId,
        jobId: JobId,
        input: { readonly lease_token: string; readonly result?: unknown }
      ) {
        yield* projects.access(projectId, "jobs:work")
        const job = yield* requireJob(projectId, jobId)
        const actor = actorName(yield* CurrentPrincipal)
        const done = yield* engine.complete([{ id: jobId, token: input.lease_token, result: input.result ?? null }], actor)
        if (done.length === 0) return yield* explain(projectId, jobId)
        yield* Metrics.recordSucceeded(job)
        return yield* requireJob(projectId, jobId)
      })

      const fail = Effect.fn("Workers.fail")(function*(
        projectId: ProjectId,
        jobId: JobId,
        input: {
          readonly lease_token: string
          readonly error: { readonly message: string; readonly details?: unknown }
          readonly retryable?: boolean | undefined
          readonly retry_after_ms?: number | undefined
        }
      ) {
        yield* projects.access(projectId, "jobs:work")
        const job = yield* requireJob(projectId, jobId)
        const queue = yield* queues.find(projectId, job.queue)
        // As the claim and the reaper do: a job without its own policy takes the queue's backoff
        // but keeps its own max_attempts (which may have been set per job at enqueue).
        const policy = job.retry_policy ??
          (queue === undefined ? undefined : { ...queue.retry_policy, max_attempts: job.max_attempts })
        if (policy === undefined) return yield* jobNotFound()
        const failure = yield* failureFor(
          {
            id: job.id,
            lease_token: input.lease_token,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            retry_policy: policy
          },
          new HandlerFailure({
            message: input.error.message,
            retryable: input.retryable ?? true,
            retryAfterMs: input.retry_after_ms,
            details: input.error.details
          })
        )
        const actor = actorName(yield* CurrentPrincipal)
        const failed = yield* engine.fail([failure], actor, "failed")
        if (failed.length === 0) return yield* explain(projectId, jobId)
        yield* Metrics.recordFailed(job, failure)
        return yield* requireJob(projectId, jobId)
      })

      return Workers.of({ register, list, claim, heartbeat, complete, fail })
    })
  )
}

