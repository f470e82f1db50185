import { Effect } from "effect"
import { Forbidden, NotFound } from "../Domain/Errors.ts"
import type { ProjectId } from "../Domain/Ids.ts"
import type { MemberRole, ProjectRole } from "../Domain/Role.ts"
import { CurrentPrincipal, isPlatformAdmin, type Principal, roleIn } from "./Principal.ts"

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
  | "jobs:assign"
  | "workers:read"
  | "workers:register"
  | "workers:manage"
  | "reviews:read"
  | "reviews:decide"
  | "events:read"
  | "webhooks:manage"
  | "audit:read"
  | "members:manage"
  | "members:owners"

const keyRoleGrants: Record<ProjectRole, ReadonlySet<Action>> = {
  admin: new Set<Action>([
    "project:read",
    "keys:manage",
    "members:manage",
    "queues:read",
    "queues:write",
    "jobs:read",
    "jobs:enqueue",
    "jobs:cancel",
    "jobs:retry",
    "jobs:work",
    "jobs:assign",
    "workers:read",
    "workers:register",
    "workers:manage",
    "reviews:read",
    "reviews:decide",
    "events:read",
    "webhooks:manage",
    "audit:read"
  ]),
  producer: new Set<Action>([
    "project:read",
    "queues:read",
    "jobs:read",
    "jobs:enqueue",
    "jobs:cancel",
    "jobs:retry",
    "workers:read",
    "events:read"
  ]),
  worker: new Set<Action>([
    "project:read",
    "queues:read",
    "jobs:read",
    "jobs:work",
    "workers:read",
    "workers:register",
    "events:read"
  ]),
  reviewer: new Set<Action>([
    "project:read",
    "queues:read",
    "jobs:read",
    "workers:read",
    "reviews:read",
    "reviews:decide",
    "events:read"
  ]),
  viewer: new Set<Action>(["project:read", "queues:read", "jobs:read", "workers:read", "events:read"])
}

/**
 * What each role may do. API keys carry the five project roles; users hold
 * them (or `owner`) through memberships. `owner` is every admin grant plus
 * managing other owners, so an admin can never grant or take away ownership.
 */
export const grants: Record<MemberRole, ReadonlySet<Action>> = {
  ...keyRoleGrants,
  owner: new Set<Action>([...keyRoleGrants.admin, "members:owners"])
}

const projectNotFound = () => new NotFound({ message: "project not found" })

/** Pure decision, used by the effectful guards below and by unit tests. */
export const decide = (
  principal: Principal,
  projectId: ProjectId,
  action: Action
): "allow" | "not_found" | "forbidden" => {
  if (isPlatformAdmin(principal)) return "allow"
  // Another tenant's project, or one a user is no member of, is indistinguishable from a missing one.
  const role = roleIn(principal, projectId)
  if (role === undefined) return "not_found"
  return grants[role].has(action) ? "allow" : "forbidden"
}

/**
 * Fails with 404 for another tenant's project and 403 for a role without the action.
 * Untraced: an in-memory decision that runs in every project request, inside the
 * caller's span (`Projects.access`), which records its failure.
 */
export const authorize = Effect.fnUntraced(function*(projectId: ProjectId, action: Action) {
  const principal = yield* CurrentPrincipal
  const decision = decide(principal, projectId, action)
  if (decision === "not_found") return yield* projectNotFound()
  if (decision === "forbidden") {
    return yield* new Forbidden({ message: `role '${roleIn(principal, projectId) ?? "none"}' may not perform '${action}'` })
  }
  return principal
})

/** Platform-wide operations: creating, listing every, and renaming projects. */
export const requirePlatformAdmin = Effect.fn("Policy.requirePlatformAdmin")(function*() {
  const principal = yield* CurrentPrincipal
  if (!isPlatformAdmin(principal)) {
    return yield* new Forbidden({ message: "only platform administrators may do this" })
  }
  return principal
})
