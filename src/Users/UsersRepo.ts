import { Context, Effect, Option, Layer, Schema } from "effect"
import { SqlClient, SqlSchema } from "effect/sql"
import { ProjectId, UserId } from "../Domain/Ids.ts"
import { MemberRole } from "../Domain/Role.ts"
import { User } from "./Api.ts"
import { traced } from "../Observability/Tracing.ts"

export const UserRow = Schema.Struct({
  ...User.fields,
  password_hash: Schema.String
})
export type UserRow = typeof UserRow.Type

export const NewUser = Schema.Struct({
  id: UserId,
  email: Schema.String,
  name: Schema.String,
  password_hash: Schema.String
})
export type NewUser = typeof NewUser.Type

export const MembershipRow = Schema.Struct({ project_id: ProjectId, role: MemberRole })
export type MembershipRow = typeof MembershipRow.Type

const columns = "id, email, name, created_at, updated_at"

export class UsersRepo extends Context.Service<UsersRepo, {
  /** `undefined` when the email is taken. */
  insert(user: NewUser): Effect.Effect<User | undefined>
  findByEmail(email: string): Effect.Effect<UserRow | undefined>
  findById(id: UserId): Effect.Effect<User | undefined>
  list(after: string | undefined, limit: number): Effect.Effect<ReadonlyArray<User>>
  memberships(id: UserId): Effect.Effect<ReadonlyArray<MembershipRow>>
}>()("foreman/UsersRepo") {
  static readonly layer = Layer.effect(
    UsersRepo,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient

      const insert = SqlSchema.findOneOption({
        Request: NewUser,
        Result: User,
        execute: (user) =>
          sql`INSERT INTO users ${sql.insert(user)} ON CONFLICT (email) DO NOTHING
              RETURNING ${sql.literal(columns)}`
      })
      const findByEmail = SqlSchema.findOneOption({
        Request: Schema.String,
        Result: UserRow,
        execute: (email) => sql`SELECT ${sql.literal(columns)}, password_hash FROM users WHERE email = ${email}`
      })
      const findById = SqlSchema.findOneOption({
        Request: UserId,
        Result: User,
        execute: (id) => sql`SELECT ${sql.literal(columns)} FROM users WHERE id = ${id}`
      })
      const list = SqlSchema.findAll({
        Request: Schema.Struct({ after: Schema.NullOr(Schema.String), limit: Schema.Number }),
        Result: User,
        execute: ({ after, limit }) =>
          sql`SELECT ${sql.literal(columns)} FROM users
              ${after === null ? sql`` : sql`WHERE id < ${after}`}
              ORDER BY id DESC LIMIT ${limit}`
      })
      const memberships = SqlSchema.findAll({
        Request: UserId,
        Result: MembershipRow,
        execute: (id) => sql`SELECT project_id, role FROM project_members WHERE user_id = ${id}`
      })

      return UsersRepo.of({
        insert: (user) =>
          insert(user).pipe(Effect.map(Option.getOrUndefined), Effect.orDie, traced("UsersRepo.insert")),
        findByEmail: (email) =>
          findByEmail(email).pipe(
            Effect.map(Option.getOrUndefined),
            Effect.orDie,
            traced("UsersRepo.findByEmail")
          ),
        findById: (id) =>
          findById(id).pipe(Effect.map(Option.getOrUndefined), Effect.orDie, traced("UsersRepo.findById")),
        list: (after, limit) =>
          list({ after: after ?? null, limit }).pipe(Effect.orDie, traced("UsersRepo.list")),
        memberships: (id) => memberships(id).pipe(Effect.orDie, traced("UsersRepo.memberships"))
      })
    })
  )
}
