import { Schema } from "effect"
import { ShortText } from "../Domain/Json.ts"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { Authentication } from "../Auth/Api.ts"
import { Forbidden, NotFound, ValidationError } from "../Domain/Errors.ts"
import { ProjectId } from "../Domain/Ids.ts"
import { Page, PageQuery } from "../Domain/Pagination.ts"

export const ProjectName = ShortText

export const Project = Schema.Struct({
  id: ProjectId,
  name: Schema.String,
  created_at: Schema.Date,
  updated_at: Schema.Date
}).annotate({ identifier: "Project" })
export type Project = typeof Project.Type

export const CreateProject = Schema.Struct({ name: ProjectName }).annotate({ identifier: "CreateProject" })
export const UpdateProject = Schema.Struct({ name: ProjectName }).annotate({ identifier: "UpdateProject" })

export class ProjectsApi extends HttpApiGroup.make("projects")
  .add(
    HttpApiEndpoint.post("create", "/v1/projects", {
      payload: CreateProject,
      success: Project.pipe(Schema.annotate({ httpApiStatus: 201 })),
      error: Forbidden
    }),
    HttpApiEndpoint.get("list", "/v1/projects", {
      query: PageQuery,
      success: Page(Project),
      error: [Forbidden, ValidationError]
    }),
    HttpApiEndpoint.get("get", "/v1/projects/:projectId", {
      params: { projectId: ProjectId },
      success: Project,
      error: [NotFound, Forbidden]
    }),
    HttpApiEndpoint.patch("update", "/v1/projects/:projectId", {
      params: { projectId: ProjectId },
      payload: UpdateProject,
      success: Project,
      error: [NotFound, Forbidden]
    })
  )
  .middleware(Authentication)
  .annotateMerge(OpenApi.annotations({
    title: "Projects",
    description: "Tenants. Platform administrators create, list and rename them."
  }))
{}
