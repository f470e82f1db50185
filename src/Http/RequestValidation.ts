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

export const RequestValidationLive = HttpApiMiddleware.layerSchemaErrorTransform(
  RequestValidation,
  (error) => {
    // "Body" and "ResponseHeaders" are our own responses failing to encode: a defect, not the caller's fault.
    if (error.kind === "Body" || error.kind === "ResponseHeaders") return Effect.die(error)
    const slot = error.kind.toLowerCase()
    const issues = formatIssues(error.cause.issue).issues.map((issue) => ({
      path: [slot, ...(issue.path ?? []).map(segment)],
      message: issue.message
    }))
    return Effect.fail(new ValidationError({ message: `invalid request ${slot}`, issues }))
  }
)
