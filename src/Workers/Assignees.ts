import { Effect } from "effect"
import { Unprocessable } from "../Domain/Errors.ts"
import type { ProjectId } from "../Domain/Ids.ts"
import type { AssignmentColumns } from "./Assignment.ts"
import type { WorkersRepo } from "./WorkersRepo.ts"

/**
 * Refuses assignments nobody could ever claim: a worker not registered in the
 * project, or a user who is not a member with a role that works jobs. Labels are
 * free: a worker carrying one may register later. One query per kind of target,
 * only when the batch assigns any.
 */
export const checkAssignees = Effect.fnUntraced(function*(
  repo: WorkersRepo["Service"],
  projectId: ProjectId,
  batch: ReadonlyArray<AssignmentColumns>,
  single: boolean
) {
  const workerIds = [...new Set(batch.flatMap((job) => job.assigned_worker_id ?? []))]
  const userIds = [...new Set(batch.flatMap((job) => job.assigned_user_id ?? []))]
  if (workerIds.length === 0 && userIds.length === 0) return
  const unknown = yield* repo.unknownAssignees(projectId, workerIds, userIds)
  const workers = new Set(unknown.workers)
  const users = new Set(unknown.users)
  for (const [index, job] of batch.entries()) {
    const label = single ? "job" : `job ${index}`
    if (job.assigned_worker_id !== null && workers.has(job.assigned_worker_id)) {
      return yield* new Unprocessable({ message: `${label}: worker ${job.assigned_worker_id} is not registered in this project` })
    }
    if (job.assigned_user_id !== null && users.has(job.assigned_user_id)) {
      return yield* new Unprocessable({
        message: `${label}: user ${job.assigned_user_id} is not a member of this project with a role that works jobs`
      })
    }
  }
})
