import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { createHash } from "node:crypto"
import stringify from "safe-stable-stringify"
import { actorName, CurrentPrincipal } from "../Auth/Principal.ts"
import { AppConfig } from "../Config/AppConfig.ts"
import {
  Conflict,
  type Forbidden,
  NotFound,
  PayloadTooLarge,
  Unprocessable,
  ValidationError
} from "../Domain/Errors.ts"
import { type JobId, newId, type ProjectId } from "../Domain/Ids.ts"
import { decodeCursor, defaultLimit, sequenceKey, toPage, type PageOptions, type PageOf } from "../Domain/Pagination.ts"
import { EngineRepo } from "../Engine/EngineRepo.ts"
import { Audit } from "../Audit/Audit.ts"
import { Projects } from "../Projects/Projects.ts"
import { type EnqueueJob, type Job, type JobEvent, maxScheduleAheadMs } from "./Api.ts"
import {
  cancellableStates,
  type JobFilter,
  JobsRepo,
  type NewJob,
  priorityRank,
  retryableStates,
  type StoredJob
} from "./JobsRepo.ts"
import { recordCancelled, recordEnqueued } from "../Observability/Metrics.ts"
import { checkAssignees } from "../Workers/Assignees.ts"
import { toColumns } from "../Workers/Assignment.ts"
import { WorkersRepo } from "../Workers/WorkersRepo.ts"
import { LocalDispatch, type Reservation } from "../Engine/LocalDispatch.ts"
import { spanned } from "../Observability/Tracing.ts"

type EnqueueError = NotFound | Forbidden | Conflict | PayloadTooLarge | Unprocessable | ValidationError

const jobNotFound = () => new NotFound({ message: "job not found" })


/** The canonical hash of an enqueue request: same key + same hash is a replay. */
const requestHash = (item: EnqueueJob): string =>
  createHash("sha256").update(stringify(item) ?? "").digest("hex")

export class Jobs extends Context.Service<Jobs, {
  enqueue(projectId: ProjectId, item: EnqueueJob): Effect.Effect<Job, EnqueueError, CurrentPrincipal>
  /** All or nothing: either every job is accepted (or replayed) or none is written. */
  enqueueBatch(
    projectId: ProjectId,
    items: ReadonlyArray<EnqueueJob>
  ): Effect.Effect<ReadonlyArray<Job>, EnqueueError, CurrentPrincipal>
  get(projectId: ProjectId, id: JobId): Effect.Effect<Job, NotFound | Forbidden, CurrentPrincipal>
  list(
    projectId: ProjectId,
    options: JobFilter & PageOptions
  ): Effect.Effect<
    PageOf<Job>,
    NotFound | Forbidden | ValidationError,
    CurrentPrincipal
  >
  /** A running job's lease is revoked: in-process attempts are interrupted, external workers learn on their next call. */
  cancel(projectId: ProjectId, id: JobId): Effect.Effect<Job, NotFound | Forbidden | Conflict, CurrentPrincipal>
  retry(projectId: ProjectId, id: JobId): Effect.Effect<Job, NotFound | Forbidden | Conflict, CurrentPrincipal>
  events(
    projectId: ProjectId,
    id: JobId,
    options: PageOptions
  ): Effect.Effect<
    PageOf<JobEvent>,
    NotFound | Forbidden | ValidationError,
    CurrentPrincipal
  >
}>()("foreman/Jobs") {
  static readonly layer = Layer.effect(
    Jobs,
    Effect.gen(function*() {
      const repo = yield* JobsRepo
      const projects = yield* Projects
      const sql = yield* SqlClient.SqlClient
      const config = yield* AppConfig
      const engine = yield* EngineRepo
      const audit = yield* Audit
      const workers = yield* WorkersRepo
      const dispatch = yield* LocalDispatch

      /** `index` is the item's place in a batch, `undefined` for the single-job endpoint. */
      // Plain values, not effects: a batch prepares up to 1,000 of them.
      const prepare = (item: EnqueueJob, index: number | undefined, now: number): NewJob | EnqueueError => {
        const where = (field: string) => index === undefined ? ["payload", field] : ["payload", "jobs", index, field]
        const label = index === undefined ? "job" : `job ${index}`
        if (Buffer.byteLength(JSON.stringify(item.payload), "utf8") > config.maxPayloadBytes) {
          return new PayloadTooLarge({ message: `${label}: payload exceeds ${config.maxPayloadBytes} bytes` })
        }
        if (item.run_at !== undefined && item.delay_ms !== undefined) {
          return new ValidationError({
            message: "give run_at or delay_ms, not both",
            issues: [{ path: where("run_at"), message: "run_at and delay_ms are mutually exclusive" }]
          })
        }
        if (item.run_at !== undefined && item.run_at.getTime() > now + maxScheduleAheadMs) {
          return new Unprocessable({ message: `${label}: run_at is more than 365 days ahead` })
        }
        return {
          id: newId(),
          queue: item.queue,
          kind: item.kind,
          payload: item.payload,
          priority: priorityRank(item.priority ?? "normal"),
          run_at: item.run_at?.toISOString() ?? null,
          delay_ms: item.delay_ms ?? null,
          max_attempts: item.max_attempts ?? null,
          retry_policy: item.retry_policy === undefined ? null : { ...item.retry_policy },
          timeout_ms: item.timeout_ms ?? null,
          assign: item.assign ?? null,
          ...toColumns(item.assign),
          idempotency_key: item.idempotency_key ?? null,
          request_hash: item.idempotency_key === undefined ? null : requestHash(item),
          review: item.review === undefined ? null : { ...item.review }
        }
      }

      /** Inserts what it can in one statement, then explains every row that was not inserted. */
      const reconcile = Effect.fnUntraced(function*(
        projectId: ProjectId,
        batch: ReadonlyArray<NewJob>,
        actor: string,
        single: boolean,
        reservation: Reservation | undefined,
        shared: boolean
      ) {
        const lone = single ? batch[0] : undefined
        const inserted = !shared || reservation !== undefined
          ? yield* repo.insertMany(projectId, batch, actor, reservation)
          : lone !== undefined
          ? yield* Effect.map(repo.insertCoalesced(projectId, lone, actor), (row) => row === undefined ? [] : [row])
          : yield* repo.insertBatchCoalesced(projectId, batch, actor)
        yield* recordEnqueued(inserted.map((row) => row.job))
        if (reservation !== undefined) {
          const claimed = inserted.find((row) => row.claimed !== undefined)?.claimed
          yield* claimed === undefined ? reservation.cancel : reservation.start(claimed)
        }
        // The repository returns the inserted jobs in the batch's order.
        if (inserted.length === batch.length) return inserted.map((row) => row.job)
        const byId = new Map<string, StoredJob>(inserted.map((row) => [row.job.id, row]))
        const keys = batch.flatMap((job) => byId.has(job.id) || job.idempotency_key === null ? [] : [job.idempotency_key])
        const existing = keys.length === 0 ? [] : yield* repo.findByIdempotencyKeys(projectId, keys)
        const byKey = new Map(existing.map((row) => [row.job.idempotency_key, row]))
        // insertMany inserts nothing when a row names a missing queue: find which, unless every row
        // is explained by an earlier job with its key.
        const missing = inserted.length === 0 &&
            batch.some((job) => job.idempotency_key === null || !byKey.has(job.idempotency_key))
          ? yield* repo.missingQueues(projectId, [...new Set(batch.map((job) => job.queue))])
          : new Set<string>()
        const result: Array<Job> = []
        for (const [index, job] of batch.entries()) {
          const label = single ? "job" : `job ${index}`
          const fresh = byId.get(job.id)
          if (fresh !== undefined) {
            result.push(fresh.job)
            continue
          }
          const prior = job.idempotency_key === null ? undefined : byKey.get(job.idempotency_key)
          const refused = missing.has(job.queue) || (prior === undefined && missing.size === 0)
          if (refused) return yield* new Unprocessable({ message: `${label}: queue '${job.queue}' does not exist` })
          // Left out only because a later row names a missing queue, which the loop reports.
          if (prior === undefined) continue
          if (prior.requestHash !== job.request_hash) {
            return yield* new Conflict({
              message: `${label}: idempotency key '${job.idempotency_key}' was used with a different request`
            })
          }
          result.push(prior.job)
        }
        return result
      })

      // Shared by the two public methods, each of which is one span.
      const enqueueMany = Effect.fnUntraced(function*(
        projectId: ProjectId,
        items: ReadonlyArray<EnqueueJob>,
        asBatch: boolean
      ) {
        yield* projects.access(projectId, "jobs:enqueue")
        const actor = actorName(yield* CurrentPrincipal)
        const now = Date.now()
        const single = items.length === 1 && !asBatch
        const batch: Array<NewJob> = []
        for (const [index, item] of items.entries()) {
          const prepared = prepare(item, single ? undefined : index, now)
          if ("_tag" in prepared) return yield* prepared
          batch.push(prepared)
        }
        yield* checkAssignees(workers, projectId, batch, single)
        yield* Effect.annotateCurrentSpan({ "foreman.jobs.count": batch.length })
        // A batch's rows are all or nothing. The statement inserts nothing when a row names a missing
        // queue, so without idempotency keys one statement is atomic on its own, and saves the BEGIN and
        // COMMIT round trips (a fifth of the batch enqueue's rate, docs/benchmarks.md). With keys, a
        // conflict is only found after the insert, and the transaction rolls the other rows back.
        const first = batch[0]
        // Eager dispatch: one due, unassigned job whose kind this instance's idle engine runs.
        const reservation = single && first !== undefined && first.run_at === null &&
            (first.delay_ms ?? 0) === 0 && first.assigned_worker_id === null && first.assigned_label === null &&
            first.assigned_user_id === null
          ? dispatch.reserve(first.kind)
          : undefined
        if (reservation !== undefined) {
          // Uninterruptible from insert to hand-over: a job inserted as running but never started
          // would wait for its lease to expire. The slot goes back on every other outcome.
          return yield* Effect.uninterruptible(reconcile(projectId, batch, actor, single, reservation, false)).pipe(
            Effect.onExit(() => reservation.cancel)
          )
        }
        // Outside a transaction, a statement can be shared with the enqueues of other requests.
        const atomic = batch.length === 1 || batch.every((job) => job.idempotency_key === null)
        const written = reconcile(projectId, batch, actor, single, undefined, atomic)
        return yield* (atomic ? written : sql.withTransaction(written)).pipe(Effect.catchTag("SqlError", Effect.die))
      })

      const enqueue = spanned("Jobs.enqueue", Effect.fnUntraced(function*(projectId: ProjectId, item: EnqueueJob) {
        const [job] = yield* enqueueMany(projectId, [item], false)
        if (job === undefined) return yield* Effect.die(new Error("enqueue returned no job"))
        return job
      }))

      const get = spanned("Jobs.get", Effect.fnUntraced(function*(projectId: ProjectId, id: JobId) {
        yield* projects.access(projectId, "jobs:read")
        const job = yield* repo.find(projectId, id)
        if (job === undefined) return yield* jobNotFound()
        return job
      }))

      const list = Effect.fn("Jobs.list")(function*(
        projectId: ProjectId,
        options: JobFilter & PageOptions
      ) {
        yield* projects.access(projectId, "jobs:read")
        const after = yield* decodeCursor(options.cursor)
        const limit = options.limit ?? defaultLimit
        const rows = yield* repo.list(projectId, options, after, limit + 1)
        return toPage(rows, limit, (job) => job.id)
      })

      const cancel = Effect.fn("Jobs.cancel")(function*(projectId: ProjectId, id: JobId) {
        yield* projects.access(projectId, "jobs:cancel")
        const actor = actorName(yield* CurrentPrincipal)
        const cancelled = yield* repo.cancel(projectId, id, actor)
        if (cancelled !== undefined) {
          if (cancelled.from === "running") yield* engine.notifyCancelled(id)
          yield* recordCancelled(cancelled.job)
          yield* audit.record({
            projectId,
            actor,
            action: "job.cancelled",
            targetType: "job",
            targetId: id,
            details: { from: cancelled.from }
          })
          return cancelled.job
        }
        const job = yield* repo.find(projectId, id)
        if (job === undefined) return yield* jobNotFound()
        // Cancelling twice is harmless: the second call returns the cancelled job.
        if (job.state === "cancelled") return job
        return yield* new Conflict({
          message: `job is ${job.state}; only ${cancellableStates.join(", ")} jobs can be cancelled`
        })
      })

      const retry = Effect.fn("Jobs.retry")(function*(projectId: ProjectId, id: JobId) {
        yield* projects.access(projectId, "jobs:retry")
        const actor = actorName(yield* CurrentPrincipal)
        const retried = yield* repo.retry(projectId, id, actor)
        if (retried !== undefined) {
          yield* audit.record({ projectId, actor, action: "job.retried", targetType: "job", targetId: id })
          return retried
        }
        const job = yield* repo.find(projectId, id)
        if (job === undefined) return yield* jobNotFound()
        return yield* new Conflict({
          message: `job is ${job.state}; only ${retryableStates.join(", ")} jobs can be retried`
        })
      })

      const events = Effect.fn("Jobs.events")(function*(
        projectId: ProjectId,
        id: JobId,
        options: PageOptions
      ) {
        yield* projects.access(projectId, "jobs:read")
        const after = yield* decodeCursor(options.cursor, sequenceKey)
        const limit = options.limit ?? defaultLimit
        const rows = yield* repo.events(projectId, id, after, limit + 1)
        if (rows.length === 0 && after === undefined && (yield* repo.find(projectId, id)) === undefined) {
          return yield* jobNotFound()
        }
        return toPage(rows, limit, (event) => event.id)
      })

      const enqueueBatch = spanned(
        "Jobs.enqueueBatch",
        (projectId: ProjectId, items: ReadonlyArray<EnqueueJob>) => enqueueMany(projectId, items, true)
      )

      return Jobs.of({ enqueue, enqueueBatch, get, list, cancel, retry, events })
    })
  )
}
