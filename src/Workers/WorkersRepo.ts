import { Context, Effect, Layer, Schema, Struct } from "effect"
import { SqlClient, type Statement } from "effect/sql"
import { type ProjectId, UserId, type WorkerId, WorkerId as WorkerIdSchema } from "../Domain/Ids.ts"
import { Worker, WorkerLease } from "./Api.ts"
import type { AssignmentColumns } from "./Assignment.ts"
import { reputation } from "./Reputation.ts"
import { traced } from "../Observability/Tracing.ts"

// The API's worker with its counters flat and no reputation (computed from them in toWorker).
const WorkerRow = Schema.Struct({
  ...Struct.omit(Worker.fields, ["counters", "reputation"]),
  succeeded: Schema.Int,
  failed: Schema.Int,
  lease_expired: Schema.Int,
  approved: Schema.Int,
  rejected: Schema.Int
})
const decodeWorkers = Schema.decodeUnknownEffect(Schema.Array(WorkerRow))
const decodeLeases = Schema.decodeUnknownEffect(Schema.Array(WorkerLease))

const toWorker = (
  { approved, failed, lease_expired, rejected, succeeded, ...row }: typeof WorkerRow.Type
): Worker => {
  const counters = { succeeded, failed, lease_expired, approved, rejected }
  return { ...row, counters, reputation: reputation(counters) }
}

/** What a claim needs to know about the worker it claims for. */
export const ClaimingWorker = Schema.Struct({
  id: WorkerIdSchema,
  kinds: Schema.Array(Schema.String),
  labels: Schema.Array(Schema.String),
  user_id: Schema.NullOr(UserId),
  disabled: Schema.Boolean
})
export type ClaimingWorker = typeof ClaimingWorker.Type
const decodeClaiming = Schema.decodeUnknownEffect(Schema.Array(ClaimingWorker))

/** When a worker counts as active, idle or gone (seconds since last seen). */
export interface Liveness {
  readonly activeSeconds: number
  readonly goneSeconds: number
}

export interface NewWorker {
  readonly id: WorkerId
  readonly project_id: ProjectId
  readonly name: string
  readonly kinds: ReadonlyArray<string>
  readonly version: string | null
  readonly labels: ReadonlyArray<string>
  readonly user_id: string | null
}

const textArray = (items: ReadonlyArray<string>) => JSON.stringify(items)

export class WorkersRepo extends Context.Service<WorkersRepo, {
  /** Registers a worker and records its `registered` event. */
  insert(worker: NewWorker, actor: string, liveness: Liveness): Effect.Effect<Worker>
  /** Registers (or re-registers, by name) one of Foreman's engine instances; returns its id. */
  upsertInstance(instance: {
    readonly id: WorkerId
    readonly name: string
    readonly kinds: ReadonlyArray<string>
    readonly version: string
    readonly labels: ReadonlyArray<string>
  }): Effect.Effect<WorkerId>
  /** Records that a worker was seen (one primary-key update). */
  touchInstance(id: WorkerId): Effect.Effect<void>
  /** Finds a worker and records that it was seen. */
  touch(projectId: ProjectId, id: WorkerId): Effect.Effect<ClaimingWorker | undefined>
  /**
   * Whether the worker is disabled, holding a share lock on its row until the
   * transaction ends: a concurrent disable waits for the claim to commit, so it
   * then sees (and releases) every job that claim took.
   */
  /** `projectId` `null`: the engine instances. */
  list(projectId: ProjectId | null, after: string | undefined, limit: number, liveness: Liveness): Effect.Effect<ReadonlyArray<Worker>>
  /** `projectId` `null`: an engine instance. */
  find(projectId: ProjectId | null, id: WorkerId, liveness: Liveness): Effect.Effect<Worker | undefined>
  leases(id: WorkerId, limit: number): Effect.Effect<ReadonlyArray<WorkerLease>>
  /**
   * Disables or enables a worker and records the event when that changed it.
   * Disabling also hands every job it holds back to `available` (the attempt is
   * not counted), with a `released` event each. Returns whether the worker changed
   * and how many jobs went back, or `undefined` when there is no such worker.
   * `projectId` `null`: an engine instance (its jobs may be of any project).
   */
  setDisabled(
    projectId: ProjectId | null,
    id: WorkerId,
    disabled: boolean,
    actor: string
  ): Effect.Effect<{ readonly changed: boolean; readonly released: number } | undefined>
  /** The worker ids and user ids among those given that cannot be assigned jobs in the project. */
  unknownAssignees(
    projectId: ProjectId,
    workerIds: ReadonlyArray<string>,
    userIds: ReadonlyArray<string>
  ): Effect.Effect<{ readonly workers: ReadonlyArray<string>; readonly users: ReadonlyArray<string> }>
  /**
   * Sets the assignment of a job that is not running or finished, recording an
   * `assigned` event; returns the state it is in, or `undefined` when it is not
   * in such a state (or does not exist).
   */
  assignJob(projectId: ProjectId, jobId: string, assign: AssignmentColumns, actor: string): Effect.Effect<string | undefined>
}>()("foreman/WorkersRepo") {
  static readonly layer = Layer.effect(
    WorkersRepo,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient

      // Leases are counted for the whole page in one pass over the (small) running set.
      const select = (where: Statement.Fragment, liveness: Liveness, limit: number) =>
        sql`
          WITH page AS (
            SELECT * FROM workers w WHERE ${where} ORDER BY w.id DESC LIMIT ${limit}
          ),
          held AS (
            SELECT j.worker_id, count(*)::int AS n FROM jobs j
            WHERE j.state = 'running' AND j.worker_id IN (SELECT id FROM page)
            GROUP BY j.worker_id
          )
          SELECT p.id, p.project_id, p.name, p.kinds, p.version, p.labels, p.user_id::text AS user_id,
                 p.disabled_at, p.created_at, p.last_seen_at, coalesce(h.n, 0) AS leases,
                 CASE WHEN coalesce(h.n, 0) > 0 OR p.last_seen_at > now() - ${liveness.activeSeconds} * interval '1 second' THEN 'active'
                      WHEN p.last_seen_at > now() - ${liveness.goneSeconds} * interval '1 second' THEN 'idle'
                      ELSE 'gone' END AS status,
                 p.succeeded_count::float8 AS succeeded, p.failed_count::float8 AS failed,
                 p.lease_expired_count::float8 AS lease_expired, p.approved_count::float8 AS approved,
                 p.rejected_count::float8 AS rejected
          FROM page p LEFT JOIN held h ON h.worker_id = p.id
          ORDER BY p.id DESC`.pipe(
          Effect.flatMap(decodeWorkers),
          Effect.map((rows) => rows.map(toWorker)),
          Effect.orDie
        )

      const insert = (worker: NewWorker, actor: string, liveness: Liveness) =>
        sql`
          WITH inserted AS (
            INSERT INTO workers (id, project_id, name, kinds, version, labels, user_id)
            VALUES (${worker.id}, ${worker.project_id}, ${worker.name},
                    ARRAY(SELECT jsonb_array_elements_text(${textArray(worker.kinds)}::jsonb)), ${worker.version},
                    ARRAY(SELECT jsonb_array_elements_text(${textArray(worker.labels)}::jsonb)), ${worker.user_id})
            RETURNING id, project_id, name, kinds, version, labels
          )
          INSERT INTO job_events (project_id, worker_id, type, actor, data)
          SELECT i.project_id, i.id, 'registered', ${actor},
                 jsonb_build_object('name', i.name, 'kinds', to_jsonb(i.kinds), 'labels', to_jsonb(i.labels), 'version', i.version)
          FROM inserted i`.pipe(
          Effect.andThen(select(sql`w.id = ${worker.id}`, liveness, 1)),
          Effect.flatMap((rows) => rows[0] === undefined ? Effect.die(new Error("insert returned no worker")) : Effect.succeed(rows[0])),
          Effect.orDie,
          traced("WorkersRepo.insert")
        )

      const upsertInstance = (instance: {
        readonly id: WorkerId
        readonly name: string
        readonly kinds: ReadonlyArray<string>
        readonly version: string
        readonly labels: ReadonlyArray<string>
      }) =>
        sql<{ readonly id: string }>`
          INSERT INTO workers (id, project_id, name, kinds, version, labels)
          VALUES (${instance.id}, NULL, ${instance.name}, ARRAY(SELECT jsonb_array_elements_text(${textArray(instance.kinds)}::jsonb)),
                  ${instance.version}, ARRAY(SELECT jsonb_array_elements_text(${textArray(instance.labels)}::jsonb)))
          ON CONFLICT (name) WHERE project_id IS NULL
          DO UPDATE SET kinds = EXCLUDED.kinds, version = EXCLUDED.version, labels = EXCLUDED.labels, last_seen_at = now()
          RETURNING id::text AS id`.pipe(
          Effect.flatMap((rows) => rows[0] === undefined ? Effect.die(new Error("upsert returned no worker")) : Effect.succeed(rows[0].id)),
          Effect.map((id) => WorkerIdSchema.make(id)),
          Effect.orDie,
          traced("WorkersRepo.upsertInstance")
        )

      const touchInstance = (id: WorkerId) =>
        sql`UPDATE workers SET last_seen_at = now() WHERE id = ${id}`.pipe(Effect.asVoid, Effect.orDie)

      const touch = (projectId: ProjectId, id: WorkerId) =>
        sql`UPDATE workers SET last_seen_at = now() WHERE project_id = ${projectId} AND id = ${id}
            RETURNING id, kinds, labels, user_id::text AS user_id, disabled_at IS NOT NULL AS disabled`.pipe(
          Effect.flatMap(decodeClaiming),
          Effect.map((rows) => rows[0]),
          Effect.orDie,
          traced("WorkersRepo.touch")
        )

      const list = (projectId: ProjectId | null, after: string | undefined, limit: number, liveness: Liveness) =>
        select(
          sql`${projectId === null ? sql`w.project_id IS NULL` : sql`w.project_id = ${projectId}`}
              ${after === undefined ? sql`` : sql`AND w.id < ${after}`}`,
          liveness,
          limit
        ).pipe(traced("WorkersRepo.list"))

      const inScope = (projectId: ProjectId | null) =>
        projectId === null ? sql`w.project_id IS NULL` : sql`w.project_id = ${projectId}`

      const find = (projectId: ProjectId | null, id: WorkerId, liveness: Liveness) =>
        select(sql`${inScope(projectId)} AND w.id = ${id}`, liveness, 1).pipe(
          Effect.map((rows) => rows[0]),
          traced("WorkersRepo.find")
        )

      const leases = (id: WorkerId, limit: number) =>
        sql`SELECT id AS job_id, queue, kind, attempt, started_at, lease_expires_at FROM jobs
            WHERE state = 'running' AND worker_id = ${id}
            ORDER BY started_at, id LIMIT ${limit}`.pipe(
          Effect.flatMap(decodeLeases),
          Effect.orDie,
          traced("WorkersRepo.leases")
        )

      // Two statements: the first locks the worker row, waiting for claims in flight (they
      // key-share-lock it in the claim statement), and commits; the second,
      // with a snapshot taken after they committed, sees every job they took. Not one
      // transaction: holding the worker row while releasing its jobs deadlocks with a
      // completion that holds some of those jobs and then bumps the worker's counters.
      const setDisabled = (projectId: ProjectId | null, id: WorkerId, disabled: boolean, actor: string) =>
        Effect.gen(function*() {
          const changed = yield* sql<{ readonly changed: boolean }>`
            WITH target AS (
              SELECT w.id, w.disabled_at FROM workers w WHERE ${inScope(projectId)} AND w.id = ${id} FOR UPDATE
            ),
            updated AS (
              UPDATE workers w SET disabled_at = ${disabled ? sql`now()` : sql`NULL`}
              FROM target t
              WHERE w.id = t.id AND ${disabled ? sql`t.disabled_at IS NULL` : sql`t.disabled_at IS NOT NULL`}
              RETURNING w.id, w.project_id
            ),
            events AS (
              INSERT INTO job_events (project_id, worker_id, type, actor)
              SELECT u.project_id, u.id, ${disabled ? "disabled" : "enabled"}, ${actor} FROM updated u
              -- An engine instance is in no project's feed; the platform audit log records it.
              WHERE u.project_id IS NOT NULL
            )
            SELECT EXISTS (SELECT 1 FROM updated) AS changed FROM target`
          const row = changed[0]
          if (row === undefined) return undefined
          if (!disabled || !row.changed) return { changed: row.changed, released: 0 }
          const released = yield* sql<{ readonly n: number }>`
            WITH held AS (
              -- Locked in id order, the order in which the engine's completion, failure and heartbeat
              -- batches lock theirs (a primary-key scan of the batch's ids): two statements taking the
              -- same jobs in different orders deadlock (registry.test.ts).
              SELECT j.id FROM jobs j
              WHERE j.state = 'running' AND j.worker_id = ${id}
                ${projectId === null ? sql`` : sql`AND j.project_id = ${projectId}`}
              ORDER BY j.id
              FOR UPDATE OF j
            ),
            released AS (
              UPDATE jobs j
              SET state = 'available', attempt = j.attempt - 1, run_at = now(), lease_token = NULL,
                  lease_expires_at = NULL, updated_at = now()
              FROM held h
              WHERE j.id = h.id AND j.state = 'running' AND j.worker_id = ${id}
              RETURNING j.id, j.project_id, j.attempt
            ),
            events AS (
              INSERT INTO job_events (job_id, project_id, worker_id, type, from_state, to_state, attempt, actor, data)
              SELECT r.id, r.project_id, ${id}, 'released', 'running', 'available', r.attempt + 1, ${actor},
                     jsonb_build_object('reason', 'worker_disabled')
              FROM released r
            ),
            notified AS (
              SELECT pg_notify('foreman', 'available:' || project_id) FROM (SELECT DISTINCT project_id FROM released) p
            )
            SELECT (SELECT count(*) FROM released)::int AS n, (SELECT count(*) FROM notified)::int AS notified`
          return { changed: true, released: released[0]?.n ?? 0 }
        }).pipe(Effect.orDie, traced("WorkersRepo.setDisabled"))

      const unknownAssignees = (projectId: ProjectId, workerIds: ReadonlyArray<string>, userIds: ReadonlyArray<string>) =>
        Effect.all({
          workers: workerIds.length === 0 ? Effect.succeed([]) : sql<{ readonly id: string }>`
            SELECT id::text AS id FROM workers
            WHERE (project_id = ${projectId} OR project_id IS NULL) AND id IN ${sql.in(workerIds)}`,
          // Only members whose role may work jobs (owner, admin, worker) can be given a task.
          users: userIds.length === 0 ? Effect.succeed([]) : sql<{ readonly id: string }>`
            SELECT user_id::text AS id FROM project_members
            WHERE project_id = ${projectId} AND user_id IN ${sql.in(userIds)} AND role IN ('owner', 'admin', 'worker')`
        }).pipe(
          Effect.map((found) => {
            const workers = new Set(found.workers.map((row) => row.id))
            const users = new Set(found.users.map((row) => row.id))
            return {
              workers: workerIds.filter((id) => !workers.has(id)),
              users: userIds.filter((id) => !users.has(id))
            }
          }),
          Effect.orDie,
          traced("WorkersRepo.unknownAssignees")
        )

      const assignJob = (projectId: ProjectId, jobId: string, assign: AssignmentColumns, actor: string) =>
        sql<{ readonly state: string }>`
          WITH target AS (
            SELECT id, state, assigned_worker_id, assigned_label, assigned_user_id FROM jobs
            WHERE project_id = ${projectId} AND id = ${jobId} AND state IN ('scheduled', 'available', 'retrying')
            FOR UPDATE
          ),
          updated AS (
            UPDATE jobs j
            SET assigned_worker_id = ${assign.assigned_worker_id}, assigned_label = ${assign.assigned_label},
                assigned_user_id = ${assign.assigned_user_id}, updated_at = now()
            FROM target t WHERE j.id = t.id
            RETURNING j.id, j.project_id, j.state, j.attempt, t.assigned_worker_id AS prior_worker_id,
                      t.assigned_label AS prior_label, t.assigned_user_id AS prior_user_id
          ),
          events AS (
            INSERT INTO job_events (job_id, project_id, worker_id, type, from_state, to_state, attempt, actor, data)
            SELECT u.id, u.project_id, ${assign.assigned_worker_id}::uuid, 'assigned', u.state, u.state, u.attempt, ${actor},
                   jsonb_build_object(
                     'assign', jsonb_strip_nulls(jsonb_build_object('worker_id', ${assign.assigned_worker_id}::uuid,
                       'label', ${assign.assigned_label}::text, 'user_id', ${assign.assigned_user_id}::uuid)),
                     'previous', jsonb_strip_nulls(jsonb_build_object('worker_id', u.prior_worker_id,
                       'label', u.prior_label, 'user_id', u.prior_user_id)))
            FROM updated u
          ),
          notified AS (SELECT pg_notify('foreman', 'available:' || project_id) FROM updated WHERE state = 'available')
          SELECT state, (SELECT count(*) FROM notified) AS notified FROM updated`.pipe(
          Effect.map((rows) => rows[0]?.state),
          Effect.orDie,
          traced("WorkersRepo.assignJob")
        )

      return WorkersRepo.of({
        insert,
        upsertInstance,
        touchInstance,
        touch,
        list,
        find,
        leases,
        setDisabled,
        unknownAssignees,
        assignJob
      })
    })
  )
}
