import { Context, Duration, Effect, Layer, PubSub, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { Audit } from "../Audit/Audit.ts"
import { actorName, CurrentPrincipal } from "../Auth/Principal.ts"
import { AppConfig } from "../Config/AppConfig.ts"
import { Conflict, type Forbidden, NotFound, type ValidationError } from "../Domain/Errors.ts"
import { newId, type ProjectId } from "../Domain/Ids.ts"
import { decodeCursor, defaultLimit, type PageOf, type PageOptions, toPage } from "../Domain/Pagination.ts"
import { Notifier } from "../Engine/Notifier.ts"
import { EventsRepo, type FeedPosition } from "../Events/EventsRepo.ts"
import { Projects } from "../Projects/Projects.ts"
import type {
  CreateWebhook,
  DeliveryId,
  UpdateWebhook,
  Webhook,
  WebhookDelivery,
  WebhookId,
  WebhookWithSecret
} from "./Api.ts"
import { WebhookSecrets } from "./Secrets.ts"
import { type NewDelivery, toWebhook, WebhooksRepo, type WebhooksQueueSettings } from "./WebhooksRepo.ts"
import { traced } from "../Observability/Tracing.ts"

/** How long the secret replaced by a rotation keeps signing, so receivers can roll over. */
export const rotationGraceSeconds = 24 * 3600

const webhookNotFound = () => new NotFound({ message: "webhook not found" })
const deliveryNotFound = () => new NotFound({ message: "delivery not found" })

const after = (a: FeedPosition, b: FeedPosition): boolean => {
  const ax = BigInt(a.xact)
  const bx = BigInt(b.xact)
  return ax > bx || (ax === bx && BigInt(a.id) > BigInt(b.id))
}

type Access = NotFound | Forbidden

export class Webhooks extends Context.Service<Webhooks, {
  create(projectId: ProjectId, input: CreateWebhook): Effect.Effect<WebhookWithSecret, Access, CurrentPrincipal>
  list(projectId: ProjectId, options: PageOptions): Effect.Effect<PageOf<Webhook>, Access | ValidationError, CurrentPrincipal>
  get(projectId: ProjectId, id: WebhookId): Effect.Effect<Webhook, Access, CurrentPrincipal>
  update(projectId: ProjectId, id: WebhookId, patch: UpdateWebhook): Effect.Effect<Webhook, Access, CurrentPrincipal>
  remove(projectId: ProjectId, id: WebhookId): Effect.Effect<Webhook, Access, CurrentPrincipal>
  rotateSecret(projectId: ProjectId, id: WebhookId): Effect.Effect<WebhookWithSecret, Access, CurrentPrincipal>
  deliveries(
    projectId: ProjectId,
    id: WebhookId,
    options: PageOptions
  ): Effect.Effect<PageOf<WebhookDelivery>, Access | ValidationError, CurrentPrincipal>
  redeliver(
    projectId: ProjectId,
    id: WebhookId,
    deliveryId: DeliveryId
  ): Effect.Effect<WebhookDelivery, Access | Conflict, CurrentPrincipal>
}>()("foreman/Webhooks") {
  static readonly layer = Layer.effect(
    Webhooks,
    Effect.gen(function*() {
      const repo = yield* WebhooksRepo
      const events = yield* EventsRepo
      const secrets = yield* WebhookSecrets
      const projects = yield* Projects
      const audit = yield* Audit
      const config = yield* AppConfig
      const notifier = yield* Notifier
      const sql = yield* SqlClient.SqlClient
      const queueSettings: WebhooksQueueSettings = {
        maxAttempts: config.webhookMaxAttempts,
        initialDelayMs: config.webhookInitialDelayMs,
        maxDelayMs: config.webhookMaxDelayMs,
        timeoutMs: config.webhookTimeoutMs,
        retentionSeconds: config.webhookRetentionSeconds
      }

      const record = (projectId: ProjectId, action: string, targetId: string, details?: unknown) =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          audit.record({
            projectId,
            actor: actorName(principal),
            action,
            targetType: "webhook",
            targetId,
            ...(details === undefined ? {} : { details })
          }))

      const create = Effect.fn("Webhooks.create")(function*(projectId: ProjectId, input: CreateWebhook) {
        yield* projects.access(projectId, "webhooks:manage")
        const id = newId()
        const secret = secrets.generate()
        const row = yield* sql.withTransaction(Effect.gen(function*() {
          const inserted = yield* repo.insert({
            id,
            projectId,
            url: input.url,
            eventTypes: input.event_types ?? [],
            enabled: input.enabled ?? true,
            sealedSecret: secrets.seal(secret, id)
          })
          yield* repo.ensureCursor(projectId, yield* events.head)
          return inserted
        })).pipe(Effect.orDie)
        yield* record(projectId, "webhook.created", id, { url: input.url, event_types: row.event_types, enabled: row.enabled })
        return { ...toWebhook(row), secret }
      })

      const list = Effect.fn("Webhooks.list")(function*(projectId: ProjectId, options: PageOptions) {
        yield* projects.access(projectId, "webhooks:manage")
        const cursor = yield* decodeCursor(options.cursor)
        const limit = options.limit ?? defaultLimit
        const rows = yield* repo.list(projectId, cursor, limit + 1)
        return toPage(rows.map(toWebhook), limit, (webhook) => webhook.id)
      })

      const get = Effect.fn("Webhooks.get")(function*(projectId: ProjectId, id: WebhookId) {
        yield* projects.access(projectId, "webhooks:manage")
        const row = yield* repo.find(projectId, id)
        if (row === undefined) return yield* webhookNotFound()
        return toWebhook(row)
      })

      const update = Effect.fn("Webhooks.update")(function*(projectId: ProjectId, id: WebhookId, patch: UpdateWebhook) {
        yield* projects.access(projectId, "webhooks:manage")
        const row = yield* sql.withTransaction(Effect.gen(function*() {
          const current = yield* repo.find(projectId, id, true)
          if (current === undefined) return undefined
          return yield* repo.update(projectId, id, {
            url: patch.url ?? current.url,
            eventTypes: patch.event_types ?? current.event_types,
            enabled: patch.enabled ?? current.enabled
          })
        })).pipe(Effect.orDie)
        if (row === undefined) return yield* webhookNotFound()
        yield* record(projectId, "webhook.updated", id, patch)
        return toWebhook(row)
      })

      const remove = Effect.fn("Webhooks.remove")(function*(projectId: ProjectId, id: WebhookId) {
        yield* projects.access(projectId, "webhooks:manage")
        const row = yield* repo.remove(projectId, id)
        if (row === undefined) return yield* webhookNotFound()
        yield* record(projectId, "webhook.deleted", id)
        return toWebhook(row)
      })

      const rotateSecret = Effect.fn("Webhooks.rotateSecret")(function*(projectId: ProjectId, id: WebhookId) {
        yield* projects.access(projectId, "webhooks:manage")
        const secret = secrets.generate()
        const row = yield* repo.rotate(projectId, id, secrets.seal(secret, id), rotationGraceSeconds)
        if (row === undefined) return yield* webhookNotFound()
        yield* record(projectId, "webhook.secret_rotated", id)
        return { ...toWebhook(row), secret }
      })

      const deliveries = Effect.fn("Webhooks.deliveries")(function*(projectId: ProjectId, id: WebhookId, options: PageOptions) {
        yield* projects.access(projectId, "webhooks:manage")
        const cursor = yield* decodeCursor(options.cursor)
        const limit = options.limit ?? defaultLimit
        const rows = yield* repo.deliveries(projectId, id, cursor, limit + 1)
        if (rows.length === 0 && (yield* repo.find(projectId, id)) === undefined) return yield* webhookNotFound()
        return toPage(rows, limit, (delivery) => delivery.id)
      })

      const redeliver = Effect.fn("Webhooks.redeliver")(function*(projectId: ProjectId, id: WebhookId, deliveryId: DeliveryId) {
        yield* projects.access(projectId, "webhooks:manage")
        const webhook = yield* repo.find(projectId, id)
        if (webhook === undefined) return yield* webhookNotFound()
        const [existing] = yield* repo.deliveries(projectId, id, undefined, 1, deliveryId)
        if (existing === undefined) return yield* deliveryNotFound()
        if (!webhook.enabled) return yield* new Conflict({ message: "the webhook is disabled; enable it before redelivering" })
        const outcome = yield* repo.redeliver(projectId, deliveryId, actorName(yield* CurrentPrincipal), queueSettings)
        if (outcome === "missing") return yield* deliveryNotFound()
        if (outcome === "pending") return yield* new Conflict({ message: `the delivery is still ${existing.state}` })
        yield* record(projectId, "webhook.redelivered", id, { delivery_id: deliveryId })
        const [delivery] = yield* repo.deliveries(projectId, id, undefined, 1, deliveryId)
        return delivery ?? existing
      })

      // The dispatcher: follows each project's feed from its durable cursor and enqueues one
      // delivery job per (event, matching subscription). The cursor row is locked (SKIP LOCKED)
      // and advanced in the transaction that inserts the deliveries, so every event is
      // dispatched exactly once across restarts and instances.
      const dispatchProject = (projectId: ProjectId) =>
        sql.withTransaction(Effect.gen(function*() {
          const position = yield* repo.lockCursor(projectId)
          if (position === undefined) return false
          const subscriptions = yield* repo.enabledSubscriptions(projectId)
          if (subscriptions.length === 0) {
            const head = yield* events.head
            if (after(head, position)) yield* repo.advanceCursor(projectId, head)
            return false
          }
          const rows = yield* events.after(projectId, position, config.eventsBatchSize)
          const last = rows.at(-1)
          if (last === undefined) return false
          const batch: Array<NewDelivery> = []
          for (const { event, position: at } of rows) {
            // Events of the service's own queues (deliveries themselves) are never delivered.
            if (event.queue?.startsWith("_")) continue
            for (const subscription of subscriptions) {
              if (BigInt(at.xact) < BigInt(subscription.start_xact_id)) continue
              if (subscription.event_types.length > 0 && !subscription.event_types.includes(event.type)) continue
              batch.push({
                id: newId(),
                subscription_id: subscription.id,
                event_id: event.sequence,
                event_type: event.type,
                body: { type: event.type, timestamp: event.at.toISOString(), data: event }
              })
            }
          }
          yield* repo.enqueue(projectId, batch, queueSettings)
          yield* repo.advanceCursor(projectId, last.position)
          return rows.length === config.eventsBatchSize
        })).pipe(Effect.orDie, traced("Webhooks.dispatch", { attributes: { "foreman.project.id": projectId } }))

      /** `more`: a project had a full batch; `active`: some project has subscriptions (a cursor). */
      const dispatchAll = Effect.gen(function*() {
        let more = false
        const projects = yield* repo.cursorProjects
        for (const projectId of projects.pending) {
          if (yield* dispatchProject(projectId)) more = true
        }
        return { more, active: projects.any }
      })

      const dispatcher = Effect.gen(function*() {
        const signals = yield* notifier.subscribe
        while (true) {
          const { active, more } = yield* dispatchAll.pipe(
            Effect.catchCause((cause) => Effect.as(Effect.logWarning("webhook dispatch failed", cause), { more: false, active: true }))
          )
          if (more) continue
          const idle = Duration.millis(config.eventsPollIntervalMs)
          // With no subscription anywhere, enqueues (each one a signal) do not wake the dispatcher:
          // it only polls, so a new subscription is picked up within one poll interval.
          yield* active ? PubSub.take(signals).pipe(Effect.timeoutOption(idle)) : Effect.sleep(idle)
          // One look covers every signal that arrived meanwhile.
          yield* PubSub.takeUpTo(signals, 1024)
        }
      }).pipe(Effect.scoped)

      if (config.role !== "api") {
        yield* Effect.forkScoped(dispatcher)
        yield* repo.prune(config.webhookRetentionSeconds, 1000).pipe(
          Effect.catchCause((cause) => Effect.as(Effect.logWarning("webhook delivery pruning failed", cause), 0)),
          Effect.repeat(Schedule.spaced("1 minute")),
          Effect.forkScoped
        )
      }

      return Webhooks.of({ create, list, get, update, remove, rotateSecret, deliveries, redeliver })
    })
  )
}
