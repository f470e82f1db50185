import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { Authentication } from "../Auth/Api.ts"
import { Conflict, Forbidden, NotFound, ValidationError } from "../Domain/Errors.ts"
import { ProjectId, UserId } from "../Domain/Ids.ts"
import { Page, PageQuery } from "../Domain/Pagination.ts"
import { MemberRole } from "../Domain/Role.ts"

export const Member = Schema.Struct({
  project_id: ProjectId,
  user_id: UserId,
  email: Schema.String,
  name: Schema.String,
  role: MemberRole,
  created_at: Schema.Date,
  updated_at: Schema.Date
}).annotate({ identifier: "Member" })
export type Member = typeof Member.Type

export const AddMember = Schema.Struct({ user_id: UserId, role: MemberRole }).annotate({ identifier: "AddMember" })
export const UpdateMember = Schema.Struct({ role: MemberRole }).annotate({ identifier: "UpdateMember" })

const projectParams = { projectId: ProjectId }
const memberParams = { projectId: ProjectId, userId: UserId }

export class MembersApi extends HttpApiGroup.make("members")
  .add(
    HttpApiEndpoint.post("add", "/v1/projects/:projectId/members", {
      params: projectParams,
      payload: AddMember,
      success: Member.pipe(Schema.annotate({ httpApiStatus: 201 })),
      error: [NotFound, Forbidden, Conflict]
    }),
    HttpApiEndpoint.get("list", "/v1/projects/:projectId/members", {
      params: projectParams,
      query: PageQuery,
      success: Page(Member),
      error: [NotFound, Forbidden, ValidationError]
    }),
    HttpApiEndpoint.get("get", "/v1/projects/:projectId/members/:userId", {
      params: memberParams,
      success: Member,
      error: [NotFound, Forbidden]
    }),
    HttpApiEndpoint.patch("update", "/v1/projects/:projectId/members/:userId", {
      params: memberParams,
      payload: UpdateMember,
      success: Member,
      error: [NotFound, Forbidden, Conflict]
    }),
    HttpApiEndpoint.delete("remove", "/v1/projects/:projectId/members/:userId", {
      params: memberParams,
      success: HttpApiSchema.NoContent,
      error: [NotFound, Forbidden, Conflict]
    })
  )
  .middleware(Authentication)
  .annotateMerge(OpenApi.annotations({
    title: "Members",
    description: "Users' roles in a project. Owners and admins manage them; only owners manage owners."
  }))
{}
