import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { Authentication } from "../Auth/Api.ts"
import { Forbidden, NotFound, ValidationError } from "../Domain/Errors.ts"
import { ProjectId } from "../Domain/Ids.ts"
import { Page, PageQuery } from "../Domain/Pagination.ts"

export const AuditEntry = Schema.Struct({
  id: Schema.String,
  project_id: Schema.NullOr(ProjectId),
  at: Schema.Date,
  actor: Schema.String,
  action: Schema.String,
  target_type: Schema.String,
  target_id: Schema.NullOr(Schema.String),
  request_id: Schema.NullOr(Schema.String),
  details: Schema.NullOr(Schema.Json)
}).annotate({ identifier: "AuditEntry" })
export type AuditEntry = typeof AuditEntry.Type

export class AuditApi extends HttpApiGroup.make("audit")
  .add(
    HttpApiEndpoint.get("list", "/v1/projects/:projectId/audit", {
      params: { projectId: ProjectId },
      query: PageQuery,
      success: Page(AuditEntry),
      error: [NotFound, Forbidden, ValidationError]
    }),
    HttpApiEndpoint.get("platform", "/v1/audit", {
      query: PageQuery,
      success: Page(AuditEntry),
      error: [Forbidden, ValidationError]
    })
  )
  .middleware(Authentication)
  .annotateMerge(OpenApi.annotations({
    title: "Audit log",
    description: "Security-relevant and operator actions, newest first: per project, and platform-wide (logins, refresh-token reuse) for platform administrators."
  }))
{}
