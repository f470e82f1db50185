import { Context, Effect, Layer, Option, Schema } from "effect"
import { SqlClient, SqlSchema } from "effect/sql"
import { ProjectId } from "../Domain/Ids.ts"
import { Project } from "./Api.ts"
import { traced } from "../Observability/Tracing.ts"

const columns = "id, name, created_at, updated_at"

export class ProjectsRepo extends Context.Service<ProjectsRepo, {
  insert(id: ProjectId, name: string): Effect.Effect<Project>
  findById(id: ProjectId): Effect.Effect<Project | undefined>
  exists(id: ProjectId): Effect.Effect<boolean>
  list(
    only: ReadonlyArray<ProjectId> | null,
    after: string | undefined,
    limit: number
  ): Effect.Effect<ReadonlyArray<Project>>
  rename(id: ProjectId, name: string): Effect.Effect<Project | undefined>
}>()("foreman/ProjectsRepo") {
  static readonly layer = Layer.effect(
    ProjectsRepo,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient

      const insert = SqlSchema.findOne({
        Request: Schema.Struct({ id: ProjectId, name: Schema.String }),
        Result: Project,
        execute: (row) => sql`INSERT INTO projects ${sql.insert(row)} RETURNING ${sql.literal(columns)}`
      })
      const findById = SqlSchema.findOneOption({
        Request: ProjectId,
        Result: Project,
        execute: (id) => sql`SELECT ${sql.literal(columns)} FROM projects WHERE id = ${id}`
      })
      const list = SqlSchema.findAll({
        Request: Schema.Struct({
          only: Schema.NullOr(Schema.Array(ProjectId)),
          after: Schema.NullOr(Schema.String),
          limit: Schema.Number
        }),
        Result: Project,
        execute: ({ after, limit, only }) =>
          sql`SELECT ${sql.literal(columns)} FROM projects
              WHERE true ${only === null ? sql`` : only.length === 0 ? sql`AND false` : sql`AND ${sql.in("id", only)}`}
              ${after === null ? sql`` : sql`AND id < ${after}`}
              ORDER BY id DESC LIMIT ${limit}`
      })
      const rename = SqlSchema.findOneOption({
        Request: Schema.Struct({ id: ProjectId, name: Schema.String }),
        Result: Project,
        execute: ({ id, name }) =>
          sql`UPDATE projects SET name = ${name}, updated_at = now() WHERE id = ${id}
              RETURNING ${sql.literal(columns)}`
      })

      return ProjectsRepo.of({
        insert: (id, name) => insert({ id, name }).pipe(Effect.orDie, traced("ProjectsRepo.insert")),
        findById: (id) =>
          findById(id).pipe(Effect.map(Option.getOrUndefined), Effect.orDie, traced("ProjectsRepo.findById")),
        exists: (id) =>
          sql`SELECT 1 FROM projects WHERE id = ${id}`.pipe(
            Effect.map((rows) => rows.length > 0),
            Effect.orDie,
            traced("ProjectsRepo.exists")
          ),
        list: (only, after, limit) =>
          list({ only, after: after ?? null, limit }).pipe(Effect.orDie, traced("ProjectsRepo.list")),
        rename: (id, name) =>
          rename({ id, name }).pipe(Effect.map(Option.getOrUndefined), Effect.orDie, traced("ProjectsRepo.rename"))
      })
    })
  )
}
