import { Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { authorize } from "../Auth/Policy.ts"
import { actorName, CurrentPrincipal } from "../Auth/Principal.ts"
import { Conflict, type Forbidden, NotFound, type ValidationError } from "../Domain/Errors.ts"
import type { ProjectId, UserId } from "../Domain/Ids.ts"
import { decodeCursor, defaultLimit, toPage, type PageOptions, type PageOf } from "../Domain/Pagination.ts"
import type { MemberRole } from "../Domain/Role.ts"
import { Projects } from "../Projects/Projects.ts"
import type { Member } from "./Api.ts"
import { MembersRepo } from "./MembersRepo.ts"
import { Audit } from "../Audit/Audit.ts"

const memberNotFound = () => new NotFound({ message: "member not found" })
const lastOwner = () => new Conflict({ message: "a project must keep at least one owner" })

export class Members extends Context.Service<Members, {
  add(
    projectId: ProjectId,
    input: { readonly user_id: UserId; readonly role: MemberRole }
  ): Effect.Effect<Member, NotFound | Forbidden | Conflict, CurrentPrincipal>
  list(
    projectId: ProjectId,
    options: PageOptions
  ): Effect.Effect<
    PageOf<Member>,
    NotFound | Forbidden | ValidationError,
    CurrentPrincipal
  >
  get(projectId: ProjectId, userId: UserId): Effect.Effect<Member, NotFound | Forbidden, CurrentPrincipal>
  update(
    projectId: ProjectId,
    userId: UserId,
    role: MemberRole
  ): Effect.Effect<Member, NotFound | Forbidden | Conflict, CurrentPrincipal>
  remove(projectId: ProjectId, userId: UserId): Effect.Effect<void, NotFound | Forbidden | Conflict, CurrentPrincipal>
}>()("foreman/Members") {
  static readonly layer = Layer.effect(
    Members,
    Effect.gen(function*() {
      const repo = yield* MembersRepo
      const projects = yield* Projects
      const sql = yield* SqlClient.SqlClient
      const audit = yield* Audit
      const recordChange = Effect.fnUntraced(function*(
        projectId: ProjectId,
        action: string,
        userId: UserId,
        details?: unknown
      ) {
        const principal = yield* CurrentPrincipal
        yield* audit.record({ projectId, actor: actorName(principal), action, targetType: "member", targetId: userId, details })
      })

      /** Granting, changing or removing the owner role takes an owner (or a platform administrator). */
      const requireOwner = (projectId: ProjectId) => authorize(projectId, "members:owners")

      const add = Effect.fn("Members.add")(function*(
        projectId: ProjectId,
        input: { readonly user_id: UserId; readonly role: MemberRole }
      ) {
        yield* projects.access(projectId, "members:manage")
        if (input.role === "owner") yield* requireOwner(projectId)
        if (!(yield* repo.userExists(input.user_id))) return yield* new NotFound({ message: "user not found" })
        const member = yield* repo.insert(projectId, input.user_id, input.role)
        if (member === undefined) return yield* new Conflict({ message: "the user is already a member of this project" })
        yield* recordChange(projectId, "member.added", input.user_id, { role: input.role })
        return member
      })

      const list = Effect.fn("Members.list")(function*(
        projectId: ProjectId,
        options: PageOptions
      ) {
        yield* projects.access(projectId, "members:manage")
        const after = yield* decodeCursor(options.cursor)
        const limit = options.limit ?? defaultLimit
        const rows = yield* repo.list(projectId, after, limit + 1)
        return toPage(rows, limit, (member) => member.user_id)
      })

      const get = Effect.fn("Members.get")(function*(projectId: ProjectId, userId: UserId) {
        yield* projects.access(projectId, "members:manage")
        const member = yield* repo.find(projectId, userId)
        if (member === undefined) return yield* memberNotFound()
        return member
      })

      /** Loads the member inside the transaction, checks owner rules, and keeps at least one owner. */
      const guardChange = Effect.fn("Members.guardChange")(function*(
        projectId: ProjectId,
        userId: UserId,
        newRole: MemberRole | undefined
      ) {
        const owners = yield* repo.lockOwners(projectId)
        const current = yield* repo.find(projectId, userId)
        if (current === undefined) return yield* memberNotFound()
        if (current.role === "owner" || newRole === "owner") yield* requireOwner(projectId)
        if (current.role === "owner" && newRole !== "owner" && owners <= 1) return yield* lastOwner()
      })

      const update = Effect.fn("Members.update")(function*(projectId: ProjectId, userId: UserId, role: MemberRole) {
        yield* projects.access(projectId, "members:manage")
        return yield* sql.withTransaction(Effect.gen(function*() {
          yield* guardChange(projectId, userId, role)
          const member = yield* repo.updateRole(projectId, userId, role)
          if (member === undefined) return yield* memberNotFound()
          yield* recordChange(projectId, "member.role_changed", userId, { role })
          return member
        })).pipe(Effect.catchTag("SqlError", Effect.die))
      })

      const remove = Effect.fn("Members.remove")(function*(projectId: ProjectId, userId: UserId) {
        yield* projects.access(projectId, "members:manage")
        yield* sql.withTransaction(Effect.gen(function*() {
          yield* guardChange(projectId, userId, undefined)
          if (!(yield* repo.remove(projectId, userId))) return yield* memberNotFound()
          yield* recordChange(projectId, "member.removed", userId)
        })).pipe(Effect.catchTag("SqlError", Effect.die))
      })

      return Members.of({ add, list, get, update, remove })
    })
  )
}
