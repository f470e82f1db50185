import { Effect } from "effect"
import { Forbidden, NotFound } from "../Domain/Errors.ts"
import type { ProjectId } from "../Domain/Ids.ts"
import type { ProjectRole } from "../Domain/Role.ts"
import { CurrentPrincipal, type Principal } from "./Principal.ts"

/**
 * Every access rule in one place. Handlers name the action they perform; this
 * module decides. docs/security.md renders the same table.
 */
export type Action =
  | "project:read"
  | "keys:manage"
  | "queues:read"
  | "queues:write"
  | "jobs:read"
  | "jobs:enqueue"
  | "jobs:cancel"
  | "jobs:retry"
  | "jobs:work"
  | "workers:read"
  | "workers:register"

export const grants: Record<ProjectRole, ReadonlySet<Action>> = {
  admin: new Set<Action>([
    "project:read",
    "keys:manage",
    "queues:read",
    "queues:write",
    "jobs:read",
    "jobs:enqueue",
    "jobs:cancel",
    "jobs:retry",
    "jobs:work",
    "workers:read",
    "workers:register"
  ]),
  producer: new Set<Action>([
    "project:read",
    "queues:read",
    "jobs:read",
    "jobs:enqueue",
    "jobs:cancel",
    "jobs:retry",
    "workers:read"
  ]),
  worker: new Set<Action>(["project:read", "queues:read", "jobs:read", "jobs:work", "workers:read", "workers:register"]),
  reviewer: new Set<Action>(["project:read", "queues:read", "jobs:read", "workers:read"]),
  viewer: new Set<Action>(["project:read", "queues:read", "jobs:read", "workers:read"])
}

const projectNotFound = () => new NotFound({ message: "project not found" })

/** Pure decision, used by the effectful guards below and by unit tests. */
export const decide = (
  principal: Principal,
  projectId: ProjectId,
  action: Action
): "allow" | "not_found" | "forbidden" => {
  if (principal.role === "platform_admin") return "allow"
  // Another tenant's project is indistinguishable from a missing one.
  if (principal.projectId !== projectId) return "not_found"
  return grants[principal.role].has(action) ? "allow" : "forbidden"
}

/** Fails with 404 for another tenant's project and 403 for a role without the action. */
export const authorize = Effect.fn("Policy.authorize")(function*(projectId: ProjectId, action: Action) {
  const principal = yield* CurrentPrincipal
  const decision = decide(principal, projectId, action)
  if (decision === "not_found") return yield* projectNotFound()
  if (decision === "forbidden") {
    return yield* new Forbidden({ message: `role '${principal.role}' may not perform '${action}'` })
  }
  return principal
})

/** Platform-wide operations: creating, listing every, and renaming projects. */
export const requirePlatformAdmin = Effect.fn("Policy.requirePlatformAdmin")(function*() {
  const principal = yield* CurrentPrincipal
  if (principal.role !== "platform_admin") {
    return yield* new Forbidden({ message: "only platform administrators may do this" })
  }
  return principal
})
