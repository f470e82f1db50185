import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Api } from "../Http/Api.ts"
import { Projects } from "./Projects.ts"

export const ProjectsHttp = HttpApiBuilder.group(
  Api,
  "projects",
  Effect.fn(function*(handlers) {
    const projects = yield* Projects
    return handlers.handleAll({
      create: ({ payload }) => projects.create(payload.name),
      list: ({ query }) => projects.list(query),
      get: ({ params }) => projects.get(params.projectId),
      update: ({ params, payload }) => projects.rename(params.projectId, payload.name)
    })
  })
)
