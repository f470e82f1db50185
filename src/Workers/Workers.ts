import { Context, Duration, Effect, Layer, PubSub } from "effect"
import { Audit } from "../Audit/Audit.ts"
import { requirePlatformAdmin } from "../Auth/Policy.ts"
import { actorName, CurrentPrincipal, type Principal } from "../Auth/Principal.ts"
import { AppConfig } from "../Config/AppConfig.ts"
import { Conflict, Forbidden, NotFound, Unprocessable, type ValidationError } from "../Domain/Errors.ts"
import { type JobId, newId, type ProjectId, WorkerId } from "../Domain/Ids.ts"
import { decodeCursor, defaultLimit, toPage, type PageOptions, type PageOf } from "../Domain/Pagination.ts"
import { startRecordedAttempt } from "../Engine/AttemptSpan.ts"
import { type ClaimedJob, EngineRepo } from "../Engine/EngineRepo.ts"
import { HandlerFailure } from "../Engine/Handler.ts"
import { Notifier } from "../Engine/Notifier.ts"
import { failureFor } from "../Engine/Runner.ts"
import * as Metrics from "../Observability/Metrics.ts"
import { currentTraceparent } from "../Observability/Tracing.ts"
import type { Job, JobState } from "../Jobs/Api.ts"
import { JobsRepo } from "../Jobs/JobsRepo.ts"
import { Projects } from "../Projects/Projects.ts"
import { QueuesRepo } from "../Queues/QueuesRepo.ts"
import { LeaseLost, type RegisterWorker, type Worker, type WorkerDetail, WorkerDisabled } from "./Api.ts"
import { checkAssignees } from "./Assignees.ts"
import { type Assignment, toColumns } from "./Assignment.ts"
import { WorkersRepo } from "./WorkersRepo.ts"

export interface ClaimOptions {
  readonly limit?: number | undefined
  readonly wait_ms?: number | undefined
  readonly lease_ms?: number | undefined
}

const workerNotFound = () => new NotFound({ message: "worker not found" })
const jobNotFound = () => new NotFound({ message: "job not found" })
const disabledError = () => new WorkerDisabled({ message: "the worker is disabled; an operator must enable it before it can claim" })

/** Jobs in these states can be (re)assigned: not running, not finished. */
export const assignableStates: ReadonlyArray<JobState> = ["scheduled", "available", "retrying"]

/** The most leases `GET worker` lists. */
const maxListedLeases = 1000

/** The attempt the lease holder reports on, for its span (`started_at` is set while the job runs). */
const attemptOf = (job: Job) => ({
  id: job.id,
  queue: job.queue,
  kind: job.kind,
  attempt: job.attempt,
  started_at: job.started_at ?? new Date()
})

const boundTo = (principal: Principal): string | null => principal.kind === "user" ? principal.userId : null

export class Workers extends Context.Service<Workers, {
  /** A user registering a worker binds it to themselves: it then receives the jobs assigned to them. */
  register(projectId: ProjectId, input: RegisterWorker): Effect.Effect<Worker, NotFound | Forbidden, CurrentPrincipal>
  list(projectId: ProjectId, options: PageOptions): Effect.Effect<
    PageOf<Worker>,
    NotFound | Forbidden | ValidationError,
    CurrentPrincipal
  >
  get(projectId: ProjectId, workerId: WorkerId): Effect.Effect<WorkerDetail, NotFound | Forbidden, CurrentPrincipal>
  /** Refuses the worker's claims from now on and hands every job it holds back to the queue. */
  disable(projectId: ProjectId, workerId: WorkerId): Effect.Effect<Worker, NotFound | Forbidden, CurrentPrincipal>
  enable(projectId: ProjectId, workerId: WorkerId): Effect.Effect<Worker, NotFound | Forbidden, CurrentPrincipal>
  /** Foreman's engine instances (platform administrators). */
  instances(options: PageOptions): Effect.Effect<PageOf<Worker>, Forbidden | ValidationError, CurrentPrincipal>
  /** As `disable`, for an engine instance (platform administrators): its claims take nothing until it is enabled. */
  disableInstance(workerId: WorkerId): Effect.Effect<Worker, NotFound | Forbidden, CurrentPrincipal>
  enableInstance(workerId: WorkerId): Effect.Effect<Worker, NotFound | Forbidden, CurrentPrincipal>
  /**
   * Claims up to `limit` jobs of the worker's kinds that are unassigned or assigned to it,
   * one of its labels or its user, waiting up to `wait_ms` for one to arrive.
   */
  claim(
    projectId: ProjectId,
    workerId: WorkerId,
    options: ClaimOptions
  ): Effect.Effect<ReadonlyArray<ClaimedJob>, NotFound | Forbidden | WorkerDisabled, CurrentPrincipal>
  /** The jobs assigned to the calling user (none for API keys). */
  tasks(
    projectId: ProjectId,
    options: PageOptions & { readonly state?: JobState | undefined }
  ): Effect.Effect<PageOf<Job>, NotFound | Forbidden | ValidationError, CurrentPrincipal>
  /** Sets (or, with `null`, removes) the assignment of a job that is not running or finished. */
  assign(
    projectId: ProjectId,
    jobId: JobId,
    assign: Assignment | null
  ): Effect.Effect<Job, NotFound | Forbidden | Conflict | Unprocessable, CurrentPrincipal>
  heartbeat(
    projectId: ProjectId,
    jobId: JobId,
    input: { readonly lease_token: string; readonly lease_ms?: number | undefined; readonly progress?: unknown }
  ): Effect.Effect<{ readonly lease_expires_at: Date }, NotFound | Forbidden | LeaseLost, CurrentPrincipal>
  complete(
    projectId: ProjectId,
    jobId: JobId,
    input: { readonly lease_token: string; readonly result?: unknown; readonly traceparent?: string | undefined }
  ): Effect.Effect<Job, NotFound | Forbidden | LeaseLost, CurrentPrincipal>
  fail(
    projectId: ProjectId,
    jobId: JobId,
    input: {
      readonly lease_token: string
      readonly error: { readonly message: string; readonly details?: unknown }
      readonly retryable?: boolean | undefined
      readonly retry_after_ms?: number | undefined
      readonly traceparent?: string | undefined
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
      const audit = yield* Audit
      const liveness = { activeSeconds: config.workerActiveSeconds, goneSeconds: config.workerGoneSeconds }

      const register = Effect.fn("Workers.register")(function*(projectId: ProjectId, input: RegisterWorker) {
        yield* projects.access(projectId, "workers:register")
        const principal = yield* CurrentPrincipal
        return yield* repo.insert({
          id: WorkerId.make(newId()),
          project_id: projectId,
          name: input.name,
          kinds: [...new Set(input.kinds)],
          version: input.version ?? null,
          labels: [...new Set(input.labels ?? [])],
          user_id: boundTo(principal)
        }, actorName(principal), liveness)
      })

      const list = Effect.fn("Workers.list")(function*(projectId: ProjectId, options: PageOptions) {
        yield* projects.access(projectId, "workers:read")
        const after = yield* decodeCursor(options.cursor)
        const limit = options.limit ?? defaultLimit
        return toPage(yield* repo.list(projectId, after, limit + 1, liveness), limit, (worker) => worker.id)
      })

      const instances = Effect.fn("Workers.instances")(function*(options: PageOptions) {
        yield* requirePlatformAdmin()
        const after = yield* decodeCursor(options.cursor)
        const limit = options.limit ?? defaultLimit
        return toPage(yield* repo.list(null, after, limit + 1, liveness), limit, (worker) => worker.id)
      })

      const get = Effect.fn("Workers.get")(function*(projectId: ProjectId, workerId: WorkerId) {
        yield* projects.access(projectId, "workers:read")
        const worker = yield* repo.find(projectId, workerId, liveness)
        if (worker === undefined) return yield* workerNotFound()
        return { ...worker, held: yield* repo.leases(workerId, maxListedLeases) }
      })

      /** `projectId` `null`: an engine instance, which only platform administrators manage. */
      const setDisabled = (disabled: boolean, name: string) =>
        Effect.fn(name)(function*(projectId: ProjectId | null, workerId: WorkerId) {
          if (projectId === null) yield* requirePlatformAdmin()
          else yield* projects.access(projectId, "workers:manage")
          const actor = actorName(yield* CurrentPrincipal)
          const changed = yield* repo.setDisabled(projectId, workerId, disabled, actor)
          if (changed === undefined) return yield* workerNotFound()
          // Disabling a disabled worker (or enabling an enabled one) changes nothing and records nothing.
          if (changed.changed) {
            yield* audit.record({
              projectId,
              actor,
              action: disabled ? "worker.disabled" : "worker.enabled",
              targetType: "worker",
              targetId: workerId,
              details: disabled ? { released: changed.released } : undefined
            })
          }
          const worker = yield* repo.find(projectId, workerId, liveness)
          if (worker === undefined) return yield* workerNotFound()
          return worker
        })

      const disableInstance = setDisabled(true, "Workers.disableInstance")
      const enableInstance = setDisabled(false, "Workers.enableInstance")

      const claim = Effect.fn("Workers.claim")(function*(projectId: ProjectId, workerId: WorkerId, options: ClaimOptions) {
        yield* projects.access(projectId, "jobs:work")
        const worker = yield* repo.touch(projectId, workerId)
        if (worker === undefined) return yield* workerNotFound()
        const principal = yield* CurrentPrincipal
        // A human worker is its user's alone: nobody else may receive the tasks assigned to them.
        if (worker.user_id !== null && boundTo(principal) !== worker.user_id) {
          return yield* new Forbidden({ message: "this worker is bound to another user" })
        }
        if (worker.disabled) return yield* disabledError()
        const request = {
          limit: options.limit ?? 1,
          kinds: worker.kinds,
          projectId,
          workerId,
          labels: worker.labels,
          userId: worker.user_id,
          leaseMs: options.lease_ms ?? config.leaseMs,
          includeCapped: true,
          // The service's own queues (webhook deliveries) are run by engine instances only.
          systemQueues: false,
          actor: `worker:${workerId} (${actorName(principal)})`
        }
        // The claim statement key-share-locks the worker row (refusing a disabled one) until it
        // commits, so a disable either empties this claim or waits for it and then releases
        // what it took; the next request of a disabled worker gets WorkerDisabled above.
        const claimOnce = engine.claim(request)
        const deadline = Date.now() + (options.wait_ms ?? 0)
        return yield* Effect.scoped(Effect.gen(function*() {
          // Subscribed before the first attempt, so a job enqueued in between still wakes us.
          const signals = yield* notifier.subscribe
          while (true) {
            const claimed = yield* claimOnce
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
        input: { readonly lease_token: string; readonly result?: unknown; readonly traceparent?: string | undefined }
      ) {
        yield* projects.access(projectId, "jobs:work")
        const job = yield* requireJob(projectId, jobId)
        const actor = actorName(yield* CurrentPrincipal)
        // The server's span for the attempt (claim to now); the next attempt links to the worker's, else to it.
        const span = yield* startRecordedAttempt(attemptOf(job))
        const traceparent = input.traceparent ?? span.traceparent ?? (yield* currentTraceparent)
        const [done] = yield* engine.complete(
          [{ id: jobId, token: input.lease_token, result: input.result ?? null, traceparent }],
          actor,
          { attemptContexts: true }
        )
        if (done === undefined) return yield* explain(projectId, jobId)
        yield* span.end({ outcome: "succeeded", ...done, worker_traceparent: input.traceparent })
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
          readonly traceparent?: string | undefined
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
        // The worker's span for the attempt, else the server's: the next attempt links to it.
        const span = yield* startRecordedAttempt(attemptOf(job))
        const traceparent = input.traceparent ?? span.traceparent ?? (yield* currentTraceparent)
        const [failed] = yield* engine.fail([{ ...failure, traceparent }], actor, "failed", { attemptContexts: true })
        if (failed === undefined) return yield* explain(projectId, jobId)
        yield* span.end({ outcome: "failed", error: input.error.message, ...failed, worker_traceparent: input.traceparent })
        yield* Metrics.recordFailed(job, failure)
        return yield* requireJob(projectId, jobId)
      })

      const tasks = Effect.fn("Workers.tasks")(function*(
        projectId: ProjectId,
        options: PageOptions & { readonly state?: JobState | undefined }
      ) {
        yield* projects.access(projectId, "jobs:work")
        const after = yield* decodeCursor(options.cursor)
        const limit = options.limit ?? defaultLimit
        const user = boundTo(yield* CurrentPrincipal)
        if (user === null) return { items: [], next_cursor: null }
        const rows = yield* jobs.list(projectId, { state: options.state, assigned_user_id: user }, after, limit + 1)
        return toPage(rows, limit, (job) => job.id)
      })

      const assign = Effect.fn("Workers.assign")(function*(projectId: ProjectId, jobId: JobId, target: Assignment | null) {
        yield* projects.access(projectId, "jobs:assign")
        const actor = actorName(yield* CurrentPrincipal)
        const columns = toColumns(target)
        yield* checkAssignees(repo, projectId, [columns], true)
        const state = yield* repo.assignJob(projectId, jobId, columns, actor)
        const job = yield* jobs.find(projectId, jobId)
        if (job === undefined) return yield* jobNotFound()
        if (state === undefined) {
          return yield* new Conflict({ message: `job is ${job.state}; only ${assignableStates.join(", ")} jobs can be assigned` })
        }
        yield* audit.record({ projectId, actor, action: "job.assigned", targetType: "job", targetId: jobId, details: { assign: target } })
        return job
      })

      return Workers.of({
        register,
        list,
        get,
        disable: setDisabled(true, "Workers.disable"),
        enable: setDisabled(false, "Workers.enable"),
        disableInstance: (workerId) => disableInstance(null, workerId),
        enableInstance: (workerId) => enableInstance(null, workerId),
        instances,
        claim,
        tasks,
        assign,
        heartbeat,
        complete,
        fail
      })
    })
  )
}

