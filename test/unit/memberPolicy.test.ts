import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type Action, authorize, decide, grants, requirePlatformAdmin } from "../../src/Auth/Policy.ts"
import { CurrentPrincipal, type Principal, visibleProjects } from "../../src/Auth/Principal.ts"
import { ProjectId, UserId } from "../../src/Domain/Ids.ts"
import type { MemberRole } from "../../src/Domain/Role.ts"

const projectA = ProjectId.make("01a20623-99f0-7045-96c5-2e9f574d7135")
const projectB = ProjectId.make("01a20623-99f0-7045-96c5-2e9f574d7136")
const userId = UserId.make("01a20623-99f0-7045-96c5-2e9f574d7138")

const user = (memberships: ReadonlyArray<readonly [ProjectId, MemberRole]>): Principal => ({
  kind: "user",
  userId,
  email: "someone@example.com",
  sessionId: "01a20623-99f0-7045-96c5-2e9f574d7139",
  memberships: new Map(memberships)
})

const roles: ReadonlyArray<MemberRole> = ["owner", "admin", "producer", "worker", "reviewer", "viewer"]

describe("policy for users and the owner role", () => {
  it("owner holds every admin grant, plus managing owners; nobody else manages owners", () => {
    for (const action of grants.admin) assert.isTrue(grants.owner.has(action), action)
    assert.isTrue(grants.owner.has("members:owners"))
    for (const role of roles.filter((r) => r !== "owner")) assert.isFalse(grants[role].has("members:owners"), role)
  })

  it("only owners and admins manage members", () => {
    const managers = roles.filter((role) => grants[role].has("members:manage"))
    assert.deepStrictEqual(managers, ["owner", "admin"])
  })

  it("a user's role comes from their membership in that project; no membership is not_found", () => {
    const principal = user([[projectA, "viewer"]])
    assert.strictEqual(decide(principal, projectA, "jobs:read"), "allow")
    assert.strictEqual(decide(principal, projectA, "jobs:enqueue"), "forbidden")
    for (const action of ["jobs:read", "members:manage", "keys:manage"] satisfies ReadonlyArray<Action>) {
      assert.strictEqual(decide(principal, projectB, action), "not_found")
    }
    const multi = user([[projectA, "viewer"], [projectB, "owner"]])
    assert.strictEqual(decide(multi, projectB, "members:owners"), "allow")
    assert.strictEqual(decide(multi, projectA, "members:manage"), "forbidden")
    assert.sameMembers([...(visibleProjects(multi) ?? [])], [projectA, projectB])
    assert.deepStrictEqual(visibleProjects(user([])), [])
  })

  it.effect("guards name the user's role in 403 and refuse users platform operations", () =>
    Effect.gen(function*() {
      const as = Effect.provideService(CurrentPrincipal, user([[projectA, "producer"]]))
      const forbidden = yield* authorize(projectA, "keys:manage").pipe(as, Effect.flip)
      assert.strictEqual(forbidden._tag, "Forbidden")
      assert.include(forbidden.message, "producer")
      const notFound = yield* authorize(projectB, "project:read").pipe(as, Effect.flip)
      assert.strictEqual(notFound._tag, "NotFound")
      const platform = yield* requirePlatformAdmin().pipe(Effect.provideService(CurrentPrincipal, user([[projectA, "owner"]])), Effect.flip)
      assert.strictEqual(platform._tag, "Forbidden")
    }))
})
