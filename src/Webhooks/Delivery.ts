import { Duration, Effect, Exit, Option, Cause, Schema } from "effect"
import { createHmac } from "node:crypto"
import { AppConfig } from "../Config/AppConfig.ts"
import { webhooksQueue } from "../Domain/Ids.ts"
import type { ClaimedJob } from "../Engine/EngineRepo.ts"
import { type Handler, HandlerFailure } from "../Engine/Handler.ts"
import { makeHttpHandler } from "../Engine/HttpKind.ts"
import { WebhookSecrets } from "./Secrets.ts"
import { messageId, WebhooksRepo } from "./WebhooksRepo.ts"
import { traced } from "../Observability/Tracing.ts"

/** Standard Webhooks v1: base64 HMAC-SHA256 of `id.timestamp.body`, keyed with the secret's bytes after `whsec_`. */
export const signature = (secret: string, id: string, timestamp: number, body: string): string =>
  createHmac("sha256", Buffer.from(secret.replace(/^whsec_/, ""), "base64")).update(`${id}.${timestamp}.${body}`).digest("base64")

const HttpDetails = Schema.Struct({ status: Schema.Int })
const statusOf = (details: unknown): number | undefined =>
  Option.getOrUndefined(Option.map(Schema.decodeUnknownOption(HttpDetails)(details), (d) => d.status))

/**
 * The built-in `webhook` kind: one attempt of one delivery. The request goes
 * through the `http` kind, so it gets the same SSRF guard (addresses checked at
 * connect time, `FOREMAN_HTTP_ALLOW_CIDRS`) and never follows redirects. Every
 * answer other than 2xx is retried with the queue's backoff, except `410 Gone`,
 * which disables the subscription. Each attempt is recorded with its status
 * code and latency.
 */
export const makeWebhookHandler = Effect.gen(function*() {
  const repo = yield* WebhooksRepo
  const secrets = yield* WebhookSecrets
  const config = yield* AppConfig
  // A worker-only instance without FOREMAN_PASSWORD_PEPPER has a throwaway pepper, so it could
  // not open any signing secret: it leaves deliveries to the instances that can.
  if (config.role === "worker" && Option.isNone(config.passwordPepper) && Option.isSome(config.databaseUrl)) {
    yield* Effect.logWarning("FOREMAN_PASSWORD_PEPPER is not set: this instance does not deliver webhooks")
    return undefined
  }
  const http = makeHttpHandler({
    allowCidrs: config.httpAllowCidrs,
    connectTimeoutMs: 5000,
    maxResponseBytes: 64 * 1024,
    storedBodyBytes: 1024
  })

  const handler: Handler = (job: ClaimedJob) =>
    Effect.gen(function*() {
      if (job.queue !== webhooksQueue) {
        return yield* new HandlerFailure({ message: "webhook jobs are created by the service for its subscriptions", retryable: false })
      }
      const target = yield* repo.target(job.id)
      if (target === undefined || target.project_id !== job.project_id) {
        return { skipped: "the webhook subscription was deleted" }
      }
      if (!target.enabled) {
        return yield* new HandlerFailure({ message: "the webhook subscription is disabled", retryable: false })
      }
      const secret = secrets.open(target.secret_ciphertext, target.subscription_id)
      if (secret === undefined) {
        // Another instance (with the right FOREMAN_PASSWORD_PEPPER) may still deliver it.
        return yield* new HandlerFailure({ message: "cannot open the signing secret on this instance", retryable: true })
      }
      const previous = target.previous_secret_ciphertext === null
        ? undefined
        : secrets.open(target.previous_secret_ciphertext, target.subscription_id)
      const id = messageId(job.id)
      const timestamp = Math.floor(Date.now() / 1000)
      const body = JSON.stringify(target.body)
      const signatures = [secret, ...(previous === undefined ? [] : [previous])]
        .map((key) => `v1,${signature(key, id, timestamp, body)}`)
        .join(" ")

      const started = performance.now()
      const exit = yield* http({
        ...job,
        payload: {
          url: target.url,
          method: "POST",
          headers: {
            "content-type": "application/json",
            "user-agent": "Foreman-Webhooks/1",
            "webhook-id": id,
            "webhook-timestamp": String(timestamp),
            "webhook-signature": signatures
          },
          body
        }
      }).pipe(
        // Finish (and record) the attempt before the engine's own timeout interrupts it.
        Effect.timeoutOrElse({
          duration: Duration.millis(Math.max(500, job.timeout_ms - 500)),
          orElse: () => Effect.fail(new HandlerFailure({ message: "request timed out", retryable: true }))
        }),
        Effect.exit
      )
      const latencyMs = Math.round(performance.now() - started)
      const record = (statusCode: number | null, succeeded: boolean, error: string | null) =>
        repo.recordAttempt({ deliveryId: job.id, attempt: job.attempt, statusCode, latencyMs, succeeded, error })

      if (Exit.isSuccess(exit)) {
        const status = statusOf(exit.value) ?? 200
        yield* record(status, true, null)
        return { status, latency_ms: latencyMs }
      }
      const failure = Option.getOrUndefined(Cause.findErrorOption(exit.cause))
      if (failure === undefined) {
        yield* record(null, false, "interrupted")
        return yield* Effect.failCause(exit.cause)
      }
      const status = statusOf(failure.details)
      if (status === 410) {
        yield* repo.disable(target.subscription_id, "the endpoint answered 410 Gone")
        yield* record(status, false, "410 Gone: subscription disabled")
        return yield* new HandlerFailure({ message: "HTTP 410: the subscription was disabled", retryable: false, details: { status, latency_ms: latencyMs } })
      }
      yield* record(status ?? null, false, failure.message)
      // The reason (which may name the host) stays with the attempt, readable by admins only:
      // the job and its events are readable by every role.
      if (status === undefined) {
        return yield* new HandlerFailure({
          message: "no HTTP answer; the reason is in the delivery's attempts",
          retryable: failure.retryable,
          details: { latency_ms: latencyMs }
        })
      }
      // Redirects and client errors are retried too: the receiver may be fixed in the meantime.
      return yield* new HandlerFailure({
        message: `HTTP ${status}`,
        retryable: true,
        retryAfterMs: failure.retryAfterMs,
        details: { status, latency_ms: latencyMs }
      })
    }).pipe(traced("Webhooks.deliver", { attributes: { "foreman.delivery.id": job.id } }))

  return handler
})
