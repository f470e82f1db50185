import { Effect } from "effect"
import { HttpApiMiddleware } from "effect/http-api"
import { SchemaIssue } from "effect"
import { ValidationError } from "../Domain/Errors.ts"
import { RequestValidation } from "./Api.ts"

const formatIssues = SchemaIssue.makeFormatterStandardSchemaV1()

const segment = (key: PropertyKey | { readonly key: PropertyKey }): string | number => {
  const value = typeof key === "object" ? key.key : key
  return typeof value === "number" ? value : String(value)
}

/** The 400 for a request `slot` ("payload", "params", …) that failed to decode, one issue per offending field. */
export const validationError = (slot: string, issue: SchemaIssue.Issue): ValidationError =>
  new ValidationError({
    message: `invalid request ${slot}`,
    issues: formatIssues(issue).issues.map((item) => ({
      path: [slot, ...(item.path ?? []).map(segment)],
      message: item.message
    }))
  })

export const RequestValidationLive = HttpApiMiddleware.layerSchemaErrorTransform(
  RequestValidation,
  (error) =>
    // "Body" and "ResponseHeaders" are our own responses failing to encode: a defect, not the caller's fault.
    error.kind === "Body" || error.kind === "ResponseHeaders"
      ? Effect.die(error)
      : Effect.fail(validationError(error.kind.toLowerCase(), error.cause.issue))
)
