import { Schema } from "effect"
import { ShortText } from "../Domain/Json.ts"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { Authentication } from "../Auth/Api.ts"
import { Forbidden, NotFound, ValidationError } from "../Domain/Errors.ts"
import { ApiKeyId, ProjectId } from "../Domain/Ids.ts"
import { Page, PageQuery } from "../Domain/Pagination.ts"
import { ProjectRole } from "../Domain/Role.ts"

export const ApiKey = Schema.Struct({
  id: ApiKeyId,
  project_id: ProjectId,
  name: Schema.String,
  role: ProjectRole,
  prefix: Schema.String,
  created_at: Schema.Date,
  revoked_at: Schema.NullOr(Schema.Date)
}).annotate({ identifier: "ApiKey" })
export type ApiKey = typeof ApiKey.Type

export const CreatedApiKey = Schema.Struct({
  ...ApiKey.fields,
  /** Shown once, never stored in plain text. */
  secret: Schema.String
}).annotate({ identifier: "CreatedApiKey" })

export const CreateApiKey = Schema.Struct({
  name: ShortText,
  role: ProjectRole
}).annotate({ identifier: "CreateApiKey" })

const projectParams = { projectId: ProjectId }

export class ApiKeysApi extends HttpApiGroup.make("apiKeys")
  .add(
    HttpApiEndpoint.post("create", "/v1/projects/:projectId/api-keys", {
      params: projectParams,
      payload: CreateApiKey,
      success: CreatedApiKey.pipe(Schema.annotate({ httpApiStatus: 201 })),
      error: [NotFound, Forbidden]
    }),
    HttpApiEndpoint.get("list", "/v1/projects/:projectId/api-keys", {
      params: projectParams,
      query: PageQuery,
      success: Page(ApiKey),
      error: [NotFound, Forbidden, ValidationError]
    }),
    HttpApiEndpoint.delete("revoke", "/v1/projects/:projectId/api-keys/:keyId", {
      params: { ...projectParams, keyId: ApiKeyId },
      success: ApiKey,
      error: [NotFound, Forbidden]
    })
  )
  .middleware(Authentication)
  .annotateMerge(OpenApi.annotations({
    title: "API keys",
    description: "Project-scoped keys. The secret is returned once at creation."
  }))
{}
