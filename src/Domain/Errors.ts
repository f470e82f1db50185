import { Schema } from "effect"

/**
 * Errors shared by every feature. Each is a tagged error with an HTTP status;
 * on the wire it is the error envelope `{ _tag, code, message, requestId }`
 * (see docs/errors.md). `code` and `requestId` are added by the envelope
 * middleware so that handlers need not thread the request id.
 */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  message: Schema.String
}, { httpApiStatus: 401 }) {}

export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", {
  message: Schema.String
}, { httpApiStatus: 403 }) {}

export const Issue = Schema.Struct({
  path: Schema.Array(Schema.Union([Schema.String, Schema.Number])),
  message: Schema.String
})
export type Issue = typeof Issue.Type

/** Malformed input: the request does not match the endpoint's schema. */
export class ValidationError extends Schema.TaggedError<ValidationError>()("ValidationError", {
  message: Schema.String,
  issues: Schema.Array(Issue)
}, { httpApiStatus: 400 }) {}

/** The request is well-formed but cannot be applied to the current state. */
export class Unprocessable extends Schema.TaggedError<Unprocessable>()("Unprocessable", {
  message: Schema.String
}, { httpApiStatus: 422 }) {}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  message: Schema.String
}, { httpApiStatus: 413 }) {}

export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {
  message: Schema.String
}, { httpApiStatus: 404 }) {}

export class Conflict extends Schema.TaggedError<Conflict>()("Conflict", {
  message: Schema.String
}, { httpApiStatus: 409 }) {}

/** Too many requests; `retry_after_seconds` is also sent as the `Retry-After` header. */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  message: Schema.String,
  retry_after_seconds: Schema.Int
}, { httpApiStatus: 429 }) {}
