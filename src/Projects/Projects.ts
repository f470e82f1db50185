import { Context, Effect, Layer } from "effect"
import { type Action, authorize, requirePlatformAdmin } from "../Auth/Policy.ts"
import { CurrentPrincipal, isPlatformAdmin, visibleProjects } from "../Auth/Principal.ts"
import type { Forbidden } from "../Domain/Errors.ts"
import { NotFound, type ValidationError } from "../Domain/Errors.ts"
import { newId, ProjectId } from "../Domain/Ids.ts"
import { decodeCursor, defaultLimit, toPage, type PageOptions, type PageOf } from "../Domain/Pagination.ts"
import type { Project } from "./Api.ts"
import { ProjectsRepo } from "./ProjectsRepo.ts"
import { spanned } from "../Observability/Tracing.ts"

const notFound = () => new NotFound({ message: "project not found" })

export class Projects extends Context.Service<Projects, {
  /**
   * The guard every project-scoped handler runs first: the policy decision,
   * then (for platform administrators, who may name any id) that the project exists.
   */
  access(projectId: ProjectId, action: Action): Effect.Effect<void, NotFound | Forbidden, CurrentPrincipal>
  create(name: string): Effect.Effect<Project, Forbidden, CurrentPrincipal>
  list(
    options: PageOptions
  ): Effect.Effect<PageOf<Project>, ValidationError, CurrentPrincipal>
  get(projectId: ProjectId): Effect.Effect<Project, NotFound | Forbidden, CurrentPrincipal>
  rename(projectId: ProjectId, name: string): Effect.Effect<Project, NotFound | Forbidden, CurrentPrincipal>
}>()("foreman/Projects") {
  static readonly layer = Layer.effect(
    Projects,
    Effect.gen(function*() {
      const repo = yield* ProjectsRepo

      const access = spanned("Projects.access", Effect.fnUntraced(function*(projectId: ProjectId, action: Action) {
        const principal = yield* authorize(projectId, action)
        if (isPlatformAdmin(principal) && !(yield* repo.exists(projectId))) {
          return yield* notFound()
        }
      }))

      const create = Effect.fn("Projects.create")(function*(name: string) {
        yield* requirePlatformAdmin()
        return yield* repo.insert(ProjectId.make(newId()), name)
      })

      const list = Effect.fn("Projects.list")(function*(
        options: PageOptions
      ) {
        const principal = yield* CurrentPrincipal
        const after = yield* decodeCursor(options.cursor)
        const limit = options.limit ?? defaultLimit
        // A project key sees exactly its own project, a user the projects they are a member of; administrators see all.
        const rows = yield* repo.list(visibleProjects(principal), after, limit + 1)
        return toPage(rows, limit, (project) => project.id)
      })

      const get = Effect.fn("Projects.get")(function*(projectId: ProjectId) {
        yield* authorize(projectId, "project:read")
        const project = yield* repo.findById(projectId)
        if (project === undefined) return yield* notFound()
        return project
      })

      const rename = Effect.fn("Projects.rename")(function*(projectId: ProjectId, name: string) {
        yield* authorize(projectId, "project:read")
        yield* requirePlatformAdmin()
        const project = yield* repo.rename(projectId, name)
        if (project === undefined) return yield* notFound()
        return project
      })

      return Projects.of({ access, create, list, get, rename })
    })
  )
}
