import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type Action, authorize, decide, requirePlatformAdmin } from "../../src/Auth/Policy.ts"
import { CurrentPrincipal, type Principal } from "../../src/Auth/Principal.ts"
import { ApiKeyId, ProjectId } from "../../src/Domain/Ids.ts"
import type { ProjectRole } from "../../src/Domain/Role.ts"

const projectA = ProjectId.make("01a20623-99f0-7045-96c5-2e9f574d7135")
const projectB = ProjectId.make("01a20623-99f0-7045-96c5-2e9f574d7136")
const keyId = ApiKeyId.make("01a20623-99f0-7045-96c5-2e9f574d7137")

const actions: ReadonlyArray<Action> = [
  "project:read",
  "keys:manage",
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
]

/**
 * The access table written out independently of src/Auth/Policy.ts, so that a
 * change to the grants shows up here as a failing row rather than passing silently.
 */
const expected: Record<ProjectRole, ReadonlyArray<Action>> = {
  admin: [
    "project:read",
    "keys:manage",
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
  ],
  producer: ["project:read", "queues:read", "jobs:read", "jobs:enqueue", "jobs:cancel", "jobs:retry", "workers:read", "events:read"],
  worker: ["project:read", "queues:read", "jobs:read", "jobs:work", "workers:read", "workers:register", "events:read"],
  reviewer: ["project:read", "queues:read", "jobs:read", "workers:read", "reviews:read", "reviews:decide", "events:read"],
  viewer: ["project:read", "queues:read", "jobs:read", "workers:read", "events:read"]
}
const roles: ReadonlyArray<ProjectRole> = ["admin", "producer", "worker", "reviewer", "viewer"]

const projectKey = (role: ProjectRole, projectId: ProjectId = projectA): Principal => ({
  kind: "api_key",
  keyId,
  projectId,
  role
})
const platformAdmin: Principal = { kind: "api_key", keyId, projectId: null, role: "platform_admin" }

describe("Policy.decide", () => {
  for (const role of roles) {
    for (const action of actions) {
      const allowed = expected[role].includes(action)
      it(`${role} ${allowed ? "may" : "may not"} ${action} in its own project`, () => {
        assert.strictEqual(decide(projectKey(role), projectA, action), allowed ? "allow" : "forbidden")
      })
    }
  }

  it("a platform admin may do everything in any project", () => {
    for (const action of actions) {
      assert.strictEqual(decide(platformAdmin, projectA, action), "allow")
      assert.strictEqual(decide(platformAdmin, projectB, action), "allow")
    }
  })

  it("another project is not_found for every role and action, even ones the role lacks", () => {
    for (const role of roles) {
      for (const action of actions) {
        assert.strictEqual(decide(projectKey(role, projectA), projectB, action), "not_found", `${role} ${action}`)
      }
    }
  })
})

describe("Policy guards", () => {
  const as = (principal: Principal) => Effect.provideService(CurrentPrincipal, principal)

  it.effect("authorize returns the principal when allowed", () =>
    Effect.gen(function*() {
      const principal = yield* authorize(projectA, "jobs:enqueue").pipe(as(projectKey("producer")))
      assert.strictEqual(principal.kind === "api_key" ? principal.role : undefined, "producer")
    }))

  it.effect("authorize fails with Forbidden for a missing grant and NotFound for another project", () =>
    Effect.gen(function*() {
      const forbidden = yield* authorize(projectA, "keys:manage").pipe(as(projectKey("viewer")), Effect.flip)
      assert.strictEqual(forbidden._tag, "Forbidden")
      assert.include(forbidden.message, "viewer")
      const notFound = yield* authorize(projectB, "project:read").pipe(as(projectKey("admin")), Effect.flip)
      assert.strictEqual(notFound._tag, "NotFound")
      assert.strictEqual(notFound.message, "project not found")
    }))

  it.effect("requirePlatformAdmin admits only platform administrators", () =>
    Effect.gen(function*() {
      const principal = yield* requirePlatformAdmin().pipe(as(platformAdmin))
      assert.strictEqual(principal.kind === "api_key" ? principal.role : undefined, "platform_admin")
      for (const role of roles) {
        const error = yield* requirePlatformAdmin().pipe(as(projectKey(role)), Effect.flip)
        assert.strictEqual(error._tag, "Forbidden")
      }
    }))
})
