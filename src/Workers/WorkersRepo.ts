import { Context, Effect, Layer, Schema } from "effect"
import { SqlClient } from "effect/sql"
import type { ProjectId, WorkerId } from "../Domain/Ids.ts"
import { Worker } from "./Api.ts"

const decodeWorkers = Schema.decodeUnknownEffect(Schema.Array(Worker))
const columns = "id, project_id, name, kinds, created_at, last_seen_at"

export class WorkersRepo extends Context.Service<WorkersRepo, {
  insert(worker: { readonly id: WorkerId; readonly project_id: ProjectId; readonly name: string; readonly kinds: ReadonlyArray<string> }): Effect.Effect<Worker>
  /** Finds a worker and records that it was seen. */
  touch(projectId: ProjectId, id: WorkerId): Effect.Effect<Worker | undefined>
  list(projectId: ProjectId, after: string | undefined, limit: number): Effect.Effect<ReadonlyArray<Worker>>
}>()("foreman/WorkersRepo") {
  static readonly layer = Layer.effect(
    WorkersRepo,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return WorkersRepo.of({
        insert: (worker) =>
          sql`INSERT INTO workers (id, project_id, name, kinds)
              VALUES (${worker.id}, ${worker.project_id}, ${worker.name}, ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(worker.kinds)}::jsonb)))
              RETURNING ${sql.literal(columns)}`.pipe(
            Effect.flatMap(decodeWorkers),
            Effect.flatMap((rows) => rows[0] === undefined ? Effect.die(new Error("insert returned no worker")) : Effect.succeed(rows[0])),
            Effect.orDie,
            Effect.withSpan("WorkersRepo.insert")
          ),
        touch: (projectId, id) =>
          sql`UPDATE workers SET last_seen_at = now() WHERE project_id = ${projectId} AND id = ${id}
              RETURNING ${sql.literal(columns)}`.pipe(
            Effect.flatMap(decodeWorkers),
            Effect.map((rows) => rows[0]),
            Effect.orDie,
            Effect.withSpan("WorkersRepo.touch")
          ),
        list: (projectId, after, limit) =>
          sql`SELECT ${sql.literal(columns)} FROM workers WHERE project_id = ${projectId}
              ${after === undefined ? sql`` : sql`AND id < ${after}`}
              ORDER BY id DESC LIMIT ${limit}`.pipe(
            Effect.flatMap(decodeWorkers),
            Effect.orDie,
            Effect.withSpan("WorkersRepo.list")
          )
      })
    })
  )
}
