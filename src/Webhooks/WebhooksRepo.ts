import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { newId, ProjectId, webhooksQueue } from "../Domain/Ids.ts"
import type { FeedPosition } from "../Events/EventsRepo.ts"
import { DeliveryId, Webhook, type WebhookDelivery, WebhookId } from "./Api.ts"
import { traced } from "../Observability/Tracing.ts"

const SubscriptionRow = Schema.Struct({
  ...Webhook.fields,
  secret_ciphertext: Schema.String,
  previous_secret_ciphertext: Schema.NullOr(Schema.String),
  start_xact_id: Schema.String
})
export type SubscriptionRow = typeof SubscriptionRow.Type
const decodeSubscriptions = Schema.decodeUnknownEffect(Schema.Array(SubscriptionRow))

const subscriptionColumns = `id, project_id, url, event_types, enabled, disabled_reason,
  CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END AS previous_secret_expires_at,
  created_at, updated_at, secret_ciphertext,
  CASE WHEN previous_secret_expires_at > now() THEN previous_secret_ciphertext END AS previous_secret_ciphertext,
  start_xact_id::text AS start_xact_id`

export const toWebhook = (row: SubscriptionRow): Webhook => ({
  id: row.id,
  project_id: row.project_id,
  url: row.url,
  event_types: row.event_types,
  enabled: row.enabled,
  disabled_reason: row.disabled_reason,
  previous_secret_expires_at: row.previous_secret_expires_at,
  created_at: row.created_at,
  updated_at: row.updated_at
})

const AttemptJson = Schema.Struct({
  attempt: Schema.Int,
  at: Schema.String,
  status_code: Schema.NullOr(Schema.Int),
  latency_ms: Schema.Int,
  succeeded: Schema.Boolean,
  error: Schema.NullOr(Schema.String)
})
const DeliveryRow = Schema.Struct({
  id: DeliveryId,
  webhook_id: WebhookId,
  event_id: Schema.String,
  event_type: Schema.String,
  state: Schema.String,
  attempts: Schema.Array(AttemptJson),
  created_at: Schema.Date
})
const decodeDeliveries = Schema.decodeUnknownEffect(Schema.Array(DeliveryRow))
const toDelivery = (row: typeof DeliveryRow.Type): WebhookDelivery => ({
  ...row,
  message_id: messageId(row.id),
  attempts: row.attempts.map((attempt) => ({ ...attempt, at: new Date(attempt.at) }))
})

/** The `webhook-id` of a delivery: stable across its attempts and redeliveries. */
export const messageId = (deliveryId: string): string => `msg_${deliveryId}`

/** What one attempt needs: the stored body and the subscription as it is now. */
const DeliveryTarget = Schema.Struct({
  id: Schema.String,
  project_id: Schema.String,
  body: Schema.Json,
  subscription_id: Schema.String,
  url: Schema.String,
  enabled: Schema.Boolean,
  secret_ciphertext: Schema.String,
  previous_secret_ciphertext: Schema.NullOr(Schema.String)
})
export type DeliveryTarget = typeof DeliveryTarget.Type
const decodeTargets = Schema.decodeUnknownEffect(Schema.Array(DeliveryTarget))

export interface NewDelivery {
  readonly id: string
  readonly subscription_id: string
  readonly event_id: string
  readonly event_type: string
  readonly body: unknown
}

export interface Attempt {
  readonly deliveryId: string
  readonly attempt: number
  readonly statusCode: number | null
  readonly latencyMs: number
  readonly succeeded: boolean
  readonly error: string | null
}

/** Settings of a project's `_webhooks` queue when it is first created. */
export interface WebhooksQueueSettings {
  readonly maxAttempts: number
  readonly initialDelayMs: number
  readonly maxDelayMs: number
  readonly timeoutMs: number
  readonly retentionSeconds: number
}

export type Redelivery = "redelivered" | "pending" | "missing"

export interface NewSubscription {
  readonly id: string
  readonly projectId: ProjectId
  readonly url: string
  readonly eventTypes: ReadonlyArray<string>
  readonly enabled: boolean
  readonly sealedSecret: string
}

export class WebhooksRepo extends Context.Service<WebhooksRepo, {
  insert(row: NewSubscription): Effect.Effect<SubscriptionRow>
  list(projectId: ProjectId, after: string | undefined, limit: number): Effect.Effect<ReadonlyArray<SubscriptionRow>>
  find(projectId: ProjectId, id: WebhookId, forUpdate?: boolean): Effect.Effect<SubscriptionRow | undefined>
  update(
    projectId: ProjectId,
    id: WebhookId,
    fields: { readonly url: string; readonly eventTypes: ReadonlyArray<string>; readonly enabled: boolean }
  ): Effect.Effect<SubscriptionRow | undefined>
  remove(projectId: ProjectId, id: WebhookId): Effect.Effect<SubscriptionRow | undefined>
  /** Replaces the secret; the old one keeps signing for `graceSeconds`. */
  rotate(projectId: ProjectId, id: WebhookId, sealedSecret: string, graceSeconds: number): Effect.Effect<SubscriptionRow | undefined>
  deliveries(
    projectId: ProjectId,
    webhookId: WebhookId,
    after: string | undefined,
    limit: number,
    only?: string
  ): Effect.Effect<ReadonlyArray<WebhookDelivery>>
  /** Starts a finished delivery over (attempt 0), or recreates its job when it was pruned. */
  redeliver(projectId: ProjectId, deliveryId: string, actor: string, queue: WebhooksQueueSettings): Effect.Effect<Redelivery>
  target(deliveryId: string): Effect.Effect<DeliveryTarget | undefined>
  recordAttempt(attempt: Attempt): Effect.Effect<void>
  disable(subscriptionId: string, reason: string): Effect.Effect<void>

  // The dispatcher.
  /** Projects whose feed has events after the dispatcher's cursor (`pending`), and whether any project has a cursor. */
  readonly cursorProjects: Effect.Effect<{ readonly pending: ReadonlyArray<ProjectId>; readonly any: boolean }>
  /** Creates the project's cursor at `position` unless it has one. */
  ensureCursor(projectId: ProjectId, position: FeedPosition): Effect.Effect<void>
  /** Locks the project's cursor for this transaction; `undefined` when another instance holds it. */
  lockCursor(projectId: ProjectId): Effect.Effect<FeedPosition | undefined>
  advanceCursor(projectId: ProjectId, position: FeedPosition): Effect.Effect<void>
  enabledSubscriptions(projectId: ProjectId): Effect.Effect<ReadonlyArray<SubscriptionRow>>
  /** Inserts deliveries and their jobs; a delivery that exists already is skipped. Returns how many were new. */
  enqueue(projectId: ProjectId, deliveries: ReadonlyArray<NewDelivery>, queue: WebhooksQueueSettings): Effect.Effect<number>
  /** Deletes deliveries older than `retentionSeconds` whose job is gone. */
  prune(retentionSeconds: number, limit: number): Effect.Effect<number>
}>()("foreman/WebhooksRepo") {
  static readonly layer = Layer.effect(
    WebhooksRepo,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const subscriptions = (rows: ReadonlyArray<unknown>) => decodeSubscriptions(rows)
      const first = (rows: ReadonlyArray<unknown>) => Effect.map(subscriptions(rows), (decoded) => decoded[0])

      const insert = (row: NewSubscription) =>
        sql`
          INSERT INTO webhook_subscriptions (id, project_id, url, event_types, enabled, secret_ciphertext, start_xact_id)
          VALUES (${row.id}, ${row.projectId}, ${row.url}, ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(row.eventTypes)}::jsonb)),
                  ${row.enabled}, ${row.sealedSecret}, pg_snapshot_xmin(pg_current_snapshot()))
          RETURNING ${sql.literal(subscriptionColumns)}`.pipe(
          Effect.flatMap(first),
          Effect.flatMap((found) => found === undefined ? Effect.die(new Error("insert returned no row")) : Effect.succeed(found)),
          Effect.orDie,
          traced("WebhooksRepo.insert")
        )

      const list = (projectId: ProjectId, after: string | undefined, limit: number) =>
        sql`SELECT ${sql.literal(subscriptionColumns)} FROM webhook_subscriptions
            WHERE project_id = ${projectId} ${after === undefined ? sql`` : sql`AND id < ${after}`}
            ORDER BY id DESC LIMIT ${limit}`.pipe(Effect.flatMap(subscriptions), Effect.orDie, traced("WebhooksRepo.list"))

      const find = (projectId: ProjectId, id: WebhookId, forUpdate = false) =>
        sql`SELECT ${sql.literal(subscriptionColumns)} FROM webhook_subscriptions
            WHERE project_id = ${projectId} AND id = ${id} ${forUpdate ? sql`FOR UPDATE` : sql``}`.pipe(
          Effect.flatMap(first),
          Effect.orDie,
          traced("WebhooksRepo.find")
        )

      const update = (
        projectId: ProjectId,
        id: WebhookId,
        fields: { readonly url: string; readonly eventTypes: ReadonlyArray<string>; readonly enabled: boolean }
      ) =>
        sql`
          UPDATE webhook_subscriptions
          SET url = ${fields.url}, event_types = ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(fields.eventTypes)}::jsonb)),
              disabled_reason = CASE WHEN ${fields.enabled} THEN NULL ELSE disabled_reason END,
              enabled = ${fields.enabled}, updated_at = now()
          WHERE project_id = ${projectId} AND id = ${id}
          RETURNING ${sql.literal(subscriptionColumns)}`.pipe(Effect.flatMap(first), Effect.orDie, traced("WebhooksRepo.update"))

      const remove = (projectId: ProjectId, id: WebhookId) =>
        sql`DELETE FROM webhook_subscriptions WHERE project_id = ${projectId} AND id = ${id}
            RETURNING ${sql.literal(subscriptionColumns)}`.pipe(Effect.flatMap(first), Effect.orDie, traced("WebhooksRepo.remove"))

      const rotate = (projectId: ProjectId, id: WebhookId, sealedSecret: string, graceSeconds: number) =>
        sql`
          UPDATE webhook_subscriptions
          SET previous_secret_ciphertext = secret_ciphertext,
              previous_secret_expires_at = now() + ${graceSeconds} * interval '1 second',
              secret_ciphertext = ${sealedSecret}, updated_at = now()
          WHERE project_id = ${projectId} AND id = ${id}
          RETURNING ${sql.literal(subscriptionColumns)}`.pipe(Effect.flatMap(first), Effect.orDie, traced("WebhooksRepo.rotate"))

      const deliveries = (projectId: ProjectId, webhookId: WebhookId, after: string | undefined, limit: number, only?: string) =>
        sql`
          SELECT d.id, d.subscription_id AS webhook_id, d.event_id::text AS event_id, d.event_type, d.created_at,
                 coalesce(j.state, CASE WHEN (SELECT a.succeeded FROM webhook_attempts a WHERE a.delivery_id = d.id
                                              ORDER BY a.id DESC LIMIT 1) THEN 'succeeded' ELSE 'dead' END) AS state,
                 coalesce((SELECT jsonb_agg(jsonb_build_object('attempt', a.attempt, 'at', a.at, 'status_code', a.status_code,
                                                               'latency_ms', a.latency_ms, 'succeeded', a.succeeded, 'error', a.error)
                                            ORDER BY a.id)
                           FROM webhook_attempts a WHERE a.delivery_id = d.id), '[]'::jsonb) AS attempts
          FROM webhook_deliveries d LEFT JOIN jobs j ON j.id = d.id
          WHERE d.project_id = ${projectId} AND d.subscription_id = ${webhookId}
            ${after === undefined ? sql`` : sql`AND d.id < ${after}`}
            ${only === undefined ? sql`` : sql`AND d.id = ${only}`}
          ORDER BY d.id DESC LIMIT ${limit}`.pipe(
          Effect.flatMap(decodeDeliveries),
          Effect.map((rows) => rows.map(toDelivery)),
          Effect.orDie,
          traced("WebhooksRepo.deliveries")
        )

      const ensureQueue = (projectId: ProjectId, queue: WebhooksQueueSettings) =>
        sql`
          INSERT INTO queues (project_id, name, id, paused, max_attempts, backoff_initial_ms, backoff_factor, backoff_max_ms,
                              backoff_jitter, timeout_ms, retention_seconds)
          VALUES (${projectId}, ${webhooksQueue}, ${newId()}, false, ${queue.maxAttempts}, ${queue.initialDelayMs}, 2,
                  ${queue.maxDelayMs}, 0.2, ${queue.timeoutMs}, ${queue.retentionSeconds})
          ON CONFLICT (project_id, name) DO NOTHING`

      // Delivery jobs take their attempts, timeout and backoff from the `_webhooks` queue,
      // which operators can tune like any other queue.
      const insertJobs = (projectId: ProjectId, ids: ReadonlyArray<string>, actor: string) =>
        sql`
          WITH inserted AS (
            INSERT INTO jobs (id, project_id, queue, kind, payload, priority, state, run_at, max_attempts, timeout_ms)
            SELECT x.id, q.project_id, q.name, 'webhook', jsonb_build_object('delivery_id', x.id), 2, 'available', now(),
                   q.max_attempts, q.timeout_ms
            FROM jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb) AS i(value)
            CROSS JOIN LATERAL (SELECT i.value::uuid AS id) x
            JOIN queues q ON q.project_id = ${projectId} AND q.name = ${webhooksQueue}
            RETURNING id, project_id
          ),
          events AS (
            INSERT INTO job_events (job_id, project_id, type, from_state, to_state, attempt, actor)
            SELECT id, project_id, 'enqueued', NULL, 'available', 0, ${actor} FROM inserted
          )
          SELECT count(*)::int AS n FROM inserted`.pipe(Effect.map((rows) => Number(rows[0]?.n ?? 0)))

      const notify = (projectId: ProjectId) => sql`SELECT pg_notify('foreman', ${`available:${projectId}`})`

      const redeliver = (projectId: ProjectId, deliveryId: string, actor: string, queue: WebhooksQueueSettings) =>
        sql.withTransaction(Effect.gen(function*() {
          const rows = yield* sql<{ readonly current: string | null; readonly reset: number }>`
            WITH target AS (
              SELECT j.id, j.state FROM jobs j
              WHERE j.id = ${deliveryId} AND j.project_id = ${projectId}
              FOR UPDATE
            ),
            reset AS (
              UPDATE jobs j
              SET state = 'available', attempt = 0, run_at = now(), finished_at = NULL, last_error = NULL, result = NULL,
                  updated_at = now()
              FROM target t WHERE j.id = t.id AND t.state IN ('succeeded', 'dead', 'cancelled')
              RETURNING j.id, j.project_id, t.state AS from_state
            ),
            events AS (
              INSERT INTO job_events (job_id, project_id, type, from_state, to_state, attempt, actor)
              SELECT id, project_id, 'retried', from_state, 'available', 0, ${actor} FROM reset
            )
            SELECT (SELECT state FROM target) AS current, (SELECT count(*) FROM reset)::int AS reset`
          const row = rows[0]
          if (row !== undefined && Number(row.reset) > 0) {
            yield* notify(projectId)
            return "redelivered" as const
          }
          if (row !== undefined && row.current !== null) return "pending" as const
          // The job was pruned: deliver again under the same id.
          const exists = yield* sql`SELECT 1 FROM webhook_deliveries WHERE id = ${deliveryId} AND project_id = ${projectId}`
          if (exists.length === 0) return "missing" as const
          yield* ensureQueue(projectId, queue)
          yield* insertJobs(projectId, [deliveryId], actor)
          yield* notify(projectId)
          return "redelivered" as const
        })).pipe(Effect.orDie, traced("WebhooksRepo.redeliver"))

      const target = (deliveryId: string) =>
        sql`
          SELECT d.id, d.project_id, d.body, s.id AS subscription_id, s.url, s.enabled, s.secret_ciphertext,
                 CASE WHEN s.previous_secret_expires_at > now() THEN s.previous_secret_ciphertext END AS previous_secret_ciphertext
          FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id
          WHERE d.id = ${deliveryId}`.pipe(
          Effect.flatMap(decodeTargets),
          Effect.map((rows) => rows[0]),
          Effect.orDie,
          traced("WebhooksRepo.target")
        )

      const recordAttempt = (attempt: Attempt) =>
        sql`
          INSERT INTO webhook_attempts (delivery_id, attempt, status_code, latency_ms, succeeded, error)
          VALUES (${attempt.deliveryId}, ${attempt.attempt}, ${attempt.statusCode}, ${attempt.latencyMs}, ${attempt.succeeded},
                  ${attempt.error})`.pipe(Effect.asVoid, Effect.orDie)

      const disable = (subscriptionId: string, reason: string) =>
        sql`UPDATE webhook_subscriptions SET enabled = false, disabled_reason = ${reason}, updated_at = now()
            WHERE id = ${subscriptionId}`.pipe(Effect.asVoid, Effect.orDie)

      const cursorProjects = sql<{ readonly project_id: string; readonly pending: boolean }>`
        SELECT c.project_id::text AS project_id, EXISTS (
          SELECT 1 FROM job_events e
          WHERE e.project_id = c.project_id AND (e.xact_id, e.id) > (c.xact_id, c.event_id)
            AND e.xact_id < pg_snapshot_xmin(pg_current_snapshot())) AS pending
        FROM webhook_cursors c`.pipe(
        Effect.flatMap((rows) =>
          Effect.map(
            Schema.decodeUnknownEffect(Schema.Array(ProjectId))(rows.flatMap((row) => row.pending ? [row.project_id] : [])),
            (pending) => ({ pending, any: rows.length > 0 })
          )
        ),
        Effect.orDie
      )

      const ensureCursor = (projectId: ProjectId, position: FeedPosition) =>
        sql`INSERT INTO webhook_cursors (project_id, xact_id, event_id)
            VALUES (${projectId}, ${position.xact}::xid8, ${position.id}::bigint)
            ON CONFLICT (project_id) DO NOTHING`.pipe(Effect.asVoid, Effect.orDie)

      const lockCursor = (projectId: ProjectId) =>
        sql<{ readonly xact: string; readonly id: string }>`
          SELECT xact_id::text AS xact, event_id::text AS id FROM webhook_cursors
          WHERE project_id = ${projectId} FOR UPDATE SKIP LOCKED`.pipe(
          Effect.map((rows) => rows[0] === undefined ? undefined : { xact: rows[0].xact, id: rows[0].id }),
          Effect.orDie
        )

      const advanceCursor = (projectId: ProjectId, position: FeedPosition) =>
        sql`UPDATE webhook_cursors SET xact_id = ${position.xact}::xid8, event_id = ${position.id}::bigint, updated_at = now()
            WHERE project_id = ${projectId}`.pipe(Effect.asVoid, Effect.orDie)

      const enabledSubscriptions = (projectId: ProjectId) =>
        sql`SELECT ${sql.literal(subscriptionColumns)} FROM webhook_subscriptions
            WHERE project_id = ${projectId} AND enabled`.pipe(Effect.flatMap(subscriptions), Effect.orDie)

      const enqueue = (projectId: ProjectId, batch: ReadonlyArray<NewDelivery>, queue: WebhooksQueueSettings) =>
        batch.length === 0 ? Effect.succeed(0) : Effect.gen(function*() {
          yield* ensureQueue(projectId, queue)
          const inserted = yield* sql<{ readonly id: string }>`
            INSERT INTO webhook_deliveries (id, project_id, subscription_id, event_id, event_type, body)
            SELECT x.id, ${projectId}, x.subscription_id, x.event_id, x.event_type, x.body
            FROM jsonb_to_recordset(${JSON.stringify(batch)}::jsonb)
              AS x(id uuid, subscription_id uuid, event_id bigint, event_type text, body jsonb)
            ON CONFLICT (subscription_id, event_id) DO NOTHING
            RETURNING id::text AS id`
          if (inserted.length === 0) return 0
          const n = yield* insertJobs(projectId, inserted.map((row) => row.id), "system")
          yield* notify(projectId)
          return n
        }).pipe(Effect.orDie, traced("WebhooksRepo.enqueue", { attributes: { "foreman.deliveries.count": batch.length } }))

      const prune = (retentionSeconds: number, limit: number) =>
        sql<{ readonly n: number }>`
          WITH doomed AS (
            SELECT d.id FROM webhook_deliveries d
            WHERE d.created_at < now() - ${retentionSeconds} * interval '1 second'
              AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = d.id)
            ORDER BY d.created_at LIMIT ${limit}
          ),
          deleted AS (DELETE FROM webhook_deliveries d USING doomed WHERE d.id = doomed.id RETURNING d.id)
          SELECT count(*)::int AS n FROM deleted`.pipe(Effect.map((rows) => Number(rows[0]?.n ?? 0)), Effect.orDie)

      return WebhooksRepo.of({
        insert,
        list,
        find,
        update,
        remove,
        rotate,
        deliveries,
        redeliver,
        target,
        recordAttempt,
        disable,
        cursorProjects,
        ensureCursor,
        lockCursor,
        advanceCursor,
        enabledSubscriptions,
        enqueue,
        prune
      })
    })
  )
}
