import { Schema } from "effect"
import { UserId, WorkerId } from "../Domain/Ids.ts"

/** A worker label: what jobs can be assigned to instead of one worker. */
export const WorkerLabel = Schema.String.check(
  Schema.isPattern(/^[A-Za-z0-9_.:-]{1,100}$/, { message: "must be 1-100 characters of A-Z, a-z, 0-9, '_', '.', ':', '-'" })
)

/**
 * Who may claim a job: one registered worker, any worker carrying a label, or
 * one user (a human task, claimed through a worker record bound to that user).
 * Jobs without an assignment go to any worker that runs their kind.
 */
export const Assignment = Schema.Union([
  Schema.Struct({ worker_id: WorkerId }),
  Schema.Struct({ label: WorkerLabel }),
  Schema.Struct({ user_id: UserId })
]).annotate({ identifier: "Assignment" })
export type Assignment = typeof Assignment.Type

/** The three assignment columns of a job row. */
export interface AssignmentColumns {
  readonly assigned_worker_id: string | null
  readonly assigned_label: string | null
  readonly assigned_user_id: string | null
}

export const toColumns = (assign: Assignment | null | undefined): AssignmentColumns => ({
  assigned_worker_id: assign !== null && assign !== undefined && "worker_id" in assign ? assign.worker_id : null,
  assigned_label: assign !== null && assign !== undefined && "label" in assign ? assign.label : null,
  assigned_user_id: assign !== null && assign !== undefined && "user_id" in assign ? assign.user_id : null
})
