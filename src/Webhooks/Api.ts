import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { Authentication } from "../Auth/Api.ts"
import { Conflict, Forbidden, NotFound, Unprocessable, ValidationError } from "../Domain/Errors.ts"
import { ProjectId, Uuid } from "../Domain/Ids.ts"
import { Page, PageQuery } from "../Domain/Pagination.ts"

export const WebhookId = Uuid.pipe(Schema.brand("WebhookId"))
export type WebhookId = typeof WebhookId.Type
export const DeliveryId = Uuid.pipe(Schema.brand("DeliveryId"))
export type DeliveryId = typeof DeliveryId.Type

/** An absolute http(s) URL. Where it may point is checked at delivery time (see docs/security.md). */
export const WebhookUrl = Schema.String.check(
  Schema.isMaxLength(2048),
  Schema.makeFilter((text: string) => {
    try {
      const url = new URL(text)
      return url.protocol === "http:" || url.protocol === "https:" ? true : "must be an http or https URL"
    } catch {
      return "must be an absolute URL"
    }
  })
)

export const EventType = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9_.:-]{1,100}$/, { message: "must be 1-100 characters of A-Z, a-z, 0-9, '_', '.', ':', '-'" })
)
/** The event types delivered; empty delivers every type. */
export const EventTypes = Schema.Array(EventType).check(Schema.isMaxLength(100))

export const Webhook = Schema.Struct({
  id: WebhookId,
  project_id: ProjectId,
  url: Schema.String,
  event_types: Schema.Array(Schema.String),
  enabled: Schema.Boolean,
  /** Why the service disabled the subscription (a `410 Gone`), or `null`. */
  disabled_reason: Schema.NullOr(Schema.String),
  /** Until then the secret replaced by the last rotation also signs deliveries. */
  previous_secret_expires_at: Schema.NullOr(Schema.Date),
  created_at: Schema.Date,
  updated_at: Schema.Date
}).annotate({ identifier: "Webhook" })
export type Webhook = typeof Webhook.Type

export const WebhookWithSecret = Schema.Struct({
  ...Webhook.fields,
  /** `whsec_<base64>`: shown once, at creation and rotation. */
  secret: Schema.String
}).annotate({ identifier: "WebhookWithSecret" })
export type WebhookWithSecret = typeof WebhookWithSecret.Type

export const CreateWebhook = Schema.Struct({
  url: WebhookUrl,
  event_types: Schema.optionalKey(EventTypes),
  enabled: Schema.optionalKey(Schema.Boolean)
}).annotate({ identifier: "CreateWebhook" })
export type CreateWebhook = typeof CreateWebhook.Type

export const UpdateWebhook = Schema.Struct({
  url: Schema.optionalKey(WebhookUrl),
  event_types: Schema.optionalKey(EventTypes),
  enabled: Schema.optionalKey(Schema.Boolean)
}).annotate({ identifier: "UpdateWebhook" })
export type UpdateWebhook = typeof UpdateWebhook.Type

export const DeliveryAttempt = Schema.Struct({
  attempt: Schema.Int,
  at: Schema.Date,
  /** The HTTP status answered, or `null` when there was no answer (refused, timeout, connection error). */
  status_code: Schema.NullOr(Schema.Int),
  latency_ms: Schema.Int,
  succeeded: Schema.Boolean,
  error: Schema.NullOr(Schema.String)
}).annotate({ identifier: "DeliveryAttempt" })

export const WebhookDelivery = Schema.Struct({
  /** Also the id of the job that delivers it (`GET /v1/projects/{id}/jobs/{deliveryId}`). */
  id: DeliveryId,
  webhook_id: WebhookId,
  /** The `webhook-id` header: the same on every attempt and redelivery. */
  message_id: Schema.String,
  event_id: Schema.String,
  event_type: Schema.String,
  /** The delivery job's state; `succeeded` or `dead` once the job has been pruned. */
  state: Schema.String,
  attempts: Schema.Array(DeliveryAttempt),
  created_at: Schema.Date
}).annotate({ identifier: "WebhookDelivery" })
export type WebhookDelivery = typeof WebhookDelivery.Type

const webhooksPath = "/v1/projects/:projectId/webhooks"
const projectParams = { projectId: ProjectId }
const webhookParams = { projectId: ProjectId, webhookId: WebhookId }

export class WebhooksApi extends HttpApiGroup.make("webhooks")
  .add(
    HttpApiEndpoint.post("create", webhooksPath, {
      params: projectParams,
      payload: CreateWebhook,
      success: WebhookWithSecret.pipe(Schema.annotate({ httpApiStatus: 201 })),
      error: [NotFound, Forbidden, ValidationError]
    }),
    HttpApiEndpoint.get("list", webhooksPath, {
      params: projectParams,
      query: PageQuery,
      success: Page(Webhook),
      error: [NotFound, Forbidden, ValidationError]
    }),
    HttpApiEndpoint.get("get", `${webhooksPath}/:webhookId`, {
      params: webhookParams,
      success: Webhook,
      error: [NotFound, Forbidden]
    }),
    HttpApiEndpoint.patch("update", `${webhooksPath}/:webhookId`, {
      params: webhookParams,
      payload: UpdateWebhook,
      success: Webhook,
      error: [NotFound, Forbidden, ValidationError]
    }),
    HttpApiEndpoint.delete("delete", `${webhooksPath}/:webhookId`, {
      params: webhookParams,
      success: Webhook,
      error: [NotFound, Forbidden]
    }),
    HttpApiEndpoint.post("rotateSecret", `${webhooksPath}/:webhookId/rotate-secret`, {
      params: webhookParams,
      success: WebhookWithSecret,
      error: [NotFound, Forbidden]
    }),
    HttpApiEndpoint.get("deliveries", `${webhooksPath}/:webhookId/deliveries`, {
      params: webhookParams,
      query: PageQuery,
      success: Page(WebhookDelivery),
      error: [NotFound, Forbidden, ValidationError]
    }),
    HttpApiEndpoint.post("redeliver", `${webhooksPath}/:webhookId/deliveries/:deliveryId/redeliver`, {
      params: { ...webhookParams, deliveryId: DeliveryId },
      success: WebhookDelivery.pipe(Schema.annotate({ httpApiStatus: 202 })),
      error: [NotFound, Forbidden, Conflict, Unprocessable]
    })
  )
  .middleware(Authentication)
  .annotateMerge(OpenApi.annotations({
    title: "Webhooks",
    description: "Signed (Standard Webhooks) deliveries of the project's events to subscribed URLs."
  }))
{}
