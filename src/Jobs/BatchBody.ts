/**
 * The batch enqueue endpoint reads its own body (ADR 0010). The API's strict
 * decoding (`onExcessProperty: "error"`) sends every struct down Schema's general
 * path, which cost about a seventh of the server's CPU per batch of 100. A body of
 * the usual shape (jobs with `queue`, `kind`, `payload` and maybe `priority`) is
 * checked here by hand, with the schema's own patterns; any other body is decoded
 * by the schema, as the framework would decode it, so every error is its error.
 */
import { Effect, Schema, SchemaIssue } from "effect"
import type { HttpServerRequest } from "effect/http"
import { HttpServerResponse } from "effect/http"
import type { ValidationError } from "../Domain/Errors.ts"
import { userQueueNamePattern } from "../Domain/Ids.ts"
import { isPlainStorableJson } from "../Domain/Json.ts"
import { payloadParseOptions } from "../Http/Api.ts"
import { validationError } from "../Http/RequestValidation.ts"
import { EnqueueBatch, type EnqueueJob, jobKindPattern, maxBatchJobs, priorities } from "./Api.ts"

const plainJobKeys: ReadonlySet<string> = new Set(["queue", "kind", "payload", "priority"])
const priorityValues: ReadonlySet<unknown> = new Set(priorities)

/**
 * A job the schema would decode to itself: only the keys above, each valid. Never
 * looser than `EnqueueJob` (test/unit/batchBody.test.ts holds it to that); anything
 * it refuses goes to the schema.
 */
export const isPlainEnqueueJob = (job: unknown): job is EnqueueJob => {
  if (typeof job !== "object" || job === null || Array.isArray(job)) return false
  for (const key in job) if (!plainJobKeys.has(key)) return false
  return "queue" in job && typeof job.queue === "string" && userQueueNamePattern.test(job.queue) &&
    "kind" in job && typeof job.kind === "string" && jobKindPattern.test(job.kind) &&
    "payload" in job && isPlainStorableJson(job.payload) &&
    (!("priority" in job) || priorityValues.has(job.priority))
}

/** A body `{"jobs": [...]}` of 1 to `maxBatchJobs` plain jobs and nothing else. */
export const isPlainBatch = (body: unknown): body is EnqueueBatch => {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return false
  for (const key in body) if (key !== "jobs") return false
  if (!("jobs" in body) || !Array.isArray(body.jobs)) return false
  const jobs: ReadonlyArray<unknown> = body.jobs
  return jobs.length >= 1 && jobs.length <= maxBatchJobs && jobs.every(isPlainEnqueueJob)
}

// As HttpApiBuilder decodes a JSON payload: the schema's JSON form, with the API's options.
const decodeBatch = Schema.decodeUnknownEffect(Schema.toCodecJson(EnqueueBatch), payloadParseOptions)

const decodeText = (text: string): Effect.Effect<EnqueueBatch, ValidationError> => {
  let body: unknown
  try {
    body = text === "" ? undefined : JSON.parse(text)
  } catch {
    return Effect.fail(validationError("payload", new SchemaIssue.InvalidValue({ message: "Expected a valid JSON body" })))
  }
  return isPlainBatch(body)
    ? Effect.succeed(body)
    : Effect.mapError(decodeBatch(body), (error) => validationError("payload", error.issue))
}

const mediaType = (contentType: string): string => {
  const normalized = contentType.toLowerCase().trim()
  const index = normalized.indexOf(";")
  return index === -1 ? normalized : normalized.slice(0, index).trim()
}

/**
 * The decoded batch, or the 415 the framework answers a body of another media type
 * with. A body over `FOREMAN_MAX_BODY_BYTES` fails reading it, as in the framework,
 * and the envelope turns that into a 413.
 */
export const readBatch = (
  request: HttpServerRequest.HttpServerRequest
): Effect.Effect<EnqueueBatch | HttpServerResponse.HttpServerResponse, ValidationError> => {
  const contentType = mediaType(request.headers["content-type"] ?? "application/json")
  return contentType === "application/json"
    ? Effect.flatMap(Effect.orDie(request.text), decodeText)
    : Effect.succeed(HttpServerResponse.text(`Unsupported content-type: ${contentType}`, { status: 415 }))
}
