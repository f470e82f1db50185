import { Context, Effect, Layer, Option, Schema } from "effect"
import { SqlClient, SqlSchema } from "effect/sql"
import { ProjectId, UserId } from "../Domain/Ids.ts"
import { MemberRole } from "../Domain/Role.ts"
import { Member } from "./Api.ts"
import { traced } from "../Observability/Tracing.ts"

const Key = Schema.Struct({ projectId: ProjectId, userId: UserId })
const WithRole = Schema.Struct({ projectId: ProjectId, userId: UserId, role: MemberRole })

/** The membership columns joined with the user's email and name. */
const select = "m.project_id, m.user_id, u.email, u.name, m.role, m.created_at, m.updated_at"

export class MembersRepo extends Context.Service<MembersRepo, {
  /** `undefined` when the user is already a member. */
  insert(projectId: ProjectId, userId: UserId, role: MemberRole): Effect.Effect<Member | undefined>
  find(projectId: ProjectId, userId: UserId): Effect.Effect<Member | undefined>
  list(projectId: ProjectId, after: string | undefined, limit: number): Effect.Effect<ReadonlyArray<Member>>
  updateRole(projectId: ProjectId, userId: UserId, role: MemberRole): Effect.Effect<Member | undefined>
  remove(projectId: ProjectId, userId: UserId): Effect.Effect<boolean>
  /** Locks the project's owner rows until the transaction ends and returns how many there are. */
  lockOwners(projectId: ProjectId): Effect.Effect<number>
  userExists(userId: UserId): Effect.Effect<boolean>
}>()("foreman/MembersRepo") {
  static readonly layer = Layer.effect(
    MembersRepo,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient

      const insert = SqlSchema.findOneOption({
        Request: WithRole,
        Result: Member,
        execute: ({ projectId, role, userId }) =>
          sql`WITH m AS (
                INSERT INTO project_members (project_id, user_id, role) VALUES (${projectId}, ${userId}, ${role})
                ON CONFLICT (project_id, user_id) DO NOTHING
                RETURNING *
              )
              SELECT ${sql.literal(select)} FROM m JOIN users u ON u.id = m.user_id`
      })
      const find = SqlSchema.findOneOption({
        Request: Key,
        Result: Member,
        execute: ({ projectId, userId }) =>
          sql`SELECT ${sql.literal(select)} FROM project_members m JOIN users u ON u.id = m.user_id
              WHERE m.project_id = ${projectId} AND m.user_id = ${userId}`
      })
      const list = SqlSchema.findAll({
        Request: Schema.Struct({ projectId: ProjectId, after: Schema.NullOr(Schema.String), limit: Schema.Number }),
        Result: Member,
        execute: ({ after, limit, projectId }) =>
          sql`SELECT ${sql.literal(select)} FROM project_members m JOIN users u ON u.id = m.user_id
              WHERE m.project_id = ${projectId} ${after === null ? sql`` : sql`AND m.user_id < ${after}`}
              ORDER BY m.user_id DESC LIMIT ${limit}`
      })
      const updateRole = SqlSchema.findOneOption({
        Request: WithRole,
        Result: Member,
        execute: ({ projectId, role, userId }) =>
          sql`WITH m AS (
                UPDATE project_members SET role = ${role}, updated_at = now()
                WHERE project_id = ${projectId} AND user_id = ${userId}
                RETURNING *
              )
              SELECT ${sql.literal(select)} FROM m JOIN users u ON u.id = m.user_id`
      })

      return MembersRepo.of({
        insert: (projectId, userId, role) =>
          insert({ projectId, userId, role }).pipe(
            Effect.map(Option.getOrUndefined),
            Effect.orDie,
            traced("MembersRepo.insert")
          ),
        find: (projectId, userId) =>
          find({ projectId, userId }).pipe(Effect.map(Option.getOrUndefined), Effect.orDie, traced("MembersRepo.find")),
        list: (projectId, after, limit) =>
          list({ projectId, after: after ?? null, limit }).pipe(Effect.orDie, traced("MembersRepo.list")),
        updateRole: (projectId, userId, role) =>
          updateRole({ projectId, userId, role }).pipe(
            Effect.map(Option.getOrUndefined),
            Effect.orDie,
            traced("MembersRepo.updateRole")
          ),
        remove: (projectId, userId) =>
          sql`DELETE FROM project_members WHERE project_id = ${projectId} AND user_id = ${userId} RETURNING 1`.pipe(
            Effect.map((rows) => rows.length > 0),
            Effect.orDie,
            traced("MembersRepo.remove")
          ),
        lockOwners: (projectId) =>
          sql`SELECT user_id FROM project_members WHERE project_id = ${projectId} AND role = 'owner' FOR UPDATE`.pipe(
            Effect.map((rows) => rows.length),
            Effect.orDie,
            traced("MembersRepo.lockOwners")
          ),
        userExists: (userId) =>
          sql`SELECT 1 FROM users WHERE id = ${userId}`.pipe(
            Effect.map((rows) => rows.length > 0),
            Effect.orDie,
            traced("MembersRepo.userExists")
          )
      })
    })
  )
}
