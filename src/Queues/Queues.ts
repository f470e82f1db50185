import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { CurrentPrincipal, actorName } from "../Auth/Principal.ts"
import { Audit } from "../Audit/Audit.ts"
import { Conflict, type Forbidden, NotFound, type ValidationError } from "../Domain/Errors.ts"
import { newId, type ProjectId, QueueId, type QueueName } from "../Domain/Ids.ts"
import { decodeCursor, defaultLimit, toPage, type PageOptions, type PageOf } from "../Domain/Pagination.ts"
import { defaultReviewPolicy, mergeReviewPolicy } from "../Domain/Review.ts"
import { EngineRepo } from "../Engine/EngineRepo.ts"
import { Projects } from "../Projects/Projects.ts"
import type { CreateQueue, Queue, RetryPolicy, UpdateQueue } from "./Api.ts"
import { type QueueSettings, QueuesRepo } from "./QueuesRepo.ts"

/** Defaults for a queue created without settings; documented in docs/api.md. */
export const defaultRetryPolicy: RetryPolicy = {
  max_attempts: 25,
  initial_delay_ms: 1000,
  factor: 2,
  max_delay_ms: 3_600_000,
  jitter: 0.2
}
export const defaultQueueSettings: QueueSettings = {
  paused: false,
  retry_policy: defaultRetryPolicy,
  timeout_ms: 300_000,
  retention_seconds: 604_800,
  max_running: null,
  review: defaultReviewPolicy
}

const merge = (base: QueueSettings, patch: UpdateQueue): QueueSettings => ({
  paused: patch.paused ?? base.paused,
  retry_policy: { ...base.retry_policy, ...patch.retry_policy },
  timeout_ms: patch.timeout_ms ?? base.timeout_ms,
  retention_seconds: patch.retention_seconds ?? base.retention_seconds,
  max_running: patch.max_running === undefined ? base.max_running : patch.max_running,
  review: mergeReviewPolicy(base.review, patch.review)
})

const queueNotFound = () => new NotFound({ message: "queue not found" })

export class Queues extends Context.Service<Queues, {
  create(projectId: ProjectId, input: CreateQueue): Effect.Effect<Queue, NotFound | Forbidden | Conflict, CurrentPrincipal>
  list(
    projectId: ProjectId,
    options: PageOptions
  ): Effect.Effect<
    PageOf<Queue>,
    NotFound | Forbidden | ValidationError,
    CurrentPrincipal
  >
  get(projectId: ProjectId, name: QueueName): Effect.Effect<Queue, NotFound | Forbidden, CurrentPrincipal>
  update(
    projectId: ProjectId,
    name: QueueName,
    patch: UpdateQueue
  ): Effect.Effect<Queue, NotFound | Forbidden, CurrentPrincipal>
}>()("foreman/Queues") {
  static readonly layer = Layer.effect(
    Queues,
    Effect.gen(function*() {
      const repo = yield* QueuesRepo
      const engine = yield* EngineRepo
      const projects = yield* Projects
      const audit = yield* Audit
      const sql = yield* SqlClient.SqlClient

      const create = Effect.fn("Queues.create")(function*(projectId: ProjectId, input: CreateQueue) {
        yield* projects.access(projectId, "queues:write")
        const settings = merge(defaultQueueSettings, input)
        const queue = yield* repo.insert(projectId, QueueId.make(newId()), input.name, settings)
        if (queue === undefined) return yield* new Conflict({ message: `queue '${input.name}' already exists` })
        yield* audit.record({
          projectId,
          actor: actorName(yield* CurrentPrincipal),
          action: "queue.created",
          targetType: "queue",
          targetId: queue.name,
          details: input
        })
        return queue
      })

      const list = Effect.fn("Queues.list")(function*(projectId: ProjectId, options: PageOptions) {
        yield* projects.access(projectId, "queues:read")
        const after = yield* decodeCursor(options.cursor)
        const limit = options.limit ?? defaultLimit
        return toPage(yield* repo.list(projectId, after, limit + 1), limit, (queue) => queue.id)
      })

      const get = Effect.fn("Queues.get")(function*(projectId: ProjectId, name: QueueName) {
        yield* projects.access(projectId, "queues:read")
        const queue = yield* repo.find(projectId, name)
        if (queue === undefined) return yield* queueNotFound()
        return queue
      })

      const update = Effect.fn("Queues.update")(function*(projectId: ProjectId, name: QueueName, patch: UpdateQueue) {
        yield* projects.access(projectId, "queues:write")
        // Read, merge and write under a row lock so concurrent partial updates do not lose fields.
        return yield* sql.withTransaction(Effect.gen(function*() {
          const current = yield* repo.find(projectId, name, true)
          if (current === undefined) return yield* queueNotFound()
          const updated = yield* repo.update(projectId, name, merge(current, patch))
          if (updated === undefined) return yield* queueNotFound()
          const action = current.paused === updated.paused
            ? "queue.updated"
            : updated.paused
            ? "queue.paused"
            : "queue.resumed"
          // Enqueues into a paused queue wake nobody; resuming does, at commit.
          if (action === "queue.resumed") yield* engine.notifyAvailable([projectId])
          yield* audit.record({
            projectId,
            actor: actorName(yield* CurrentPrincipal),
            action,
            targetType: "queue",
            targetId: name,
            details: patch
          })
          return updated
        })).pipe(Effect.catchTag("SqlError", Effect.die))
      })

      return Queues.of({ create, list, get, update })
    })
  )
}
