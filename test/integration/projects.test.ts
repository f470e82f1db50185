import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { adminToken, clientFor, raw, TestApp } from "../support/TestApp.ts"

layer(TestApp(), { timeout: 120_000 })("projects", (it) => {
  it.effect("a platform admin creates, gets, lists and renames projects", () =>
    Effect.gen(function*() {
      const admin = yield* clientFor(adminToken)
      const created = yield* admin.projects.create({ payload: { name: "acme" } })
      assert.strictEqual(created.name, "acme")
      const fetched = yield* admin.projects.get({ params: { projectId: created.id } })
      assert.deepStrictEqual(fetched, created)
      const renamed = yield* admin.projects.update({ params: { projectId: created.id }, payload: { name: "acme 2" } })
      assert.strictEqual(renamed.name, "acme 2")
      assert.isTrue(renamed.updated_at.getTime() >= created.updated_at.getTime())
      const page = yield* admin.projects.list({ query: {} })
      assert.isTrue(page.items.some((project) => project.id === created.id))
    }))

  it.effect("lists page through with an opaque cursor", () =>
    Effect.gen(function*() {
      const admin = yield* clientFor(adminToken)
      const ids = new Set<string>()
      for (let i = 0; i < 5; i++) ids.add((yield* admin.projects.create({ payload: { name: `p${i}` } })).id)
      const seen: Array<string> = []
      let cursor: string | undefined = undefined
      do {
        const page: { readonly items: ReadonlyArray<{ readonly id: string }>; readonly next_cursor: string | null } =
          yield* admin.projects.list({ query: { limit: 2, ...(cursor === undefined ? {} : { cursor }) } })
        assert.isAtMost(page.items.length, 2)
        seen.push(...page.items.map((p) => p.id))
        cursor = page.next_cursor ?? undefined
      } while (cursor !== undefined)
      for (const id of ids) assert.include(seen, id)
      assert.strictEqual(new Set(seen).size, seen.length, "no project appears twice")
    }))

  it.effect("a missing project is 404 in the error envelope", () =>
    Effect.gen(function*() {
      const response = yield* raw("GET", "/v1/projects/01a20623-99f0-7045-96c5-2e9f574d7135", { token: adminToken })
      assert.strictEqual(response.status, 404)
      assert.deepInclude(response.body, { _tag: "NotFound", code: "NotFound", message: "project not found" })
      const requestId = response.headers.get("x-request-id")
      assert.isString(requestId)
      assert.deepInclude(response.body, { requestId })
    }))

  it.effect("a malformed project id is a 400 validation error", () =>
    Effect.gen(function*() {
      const response = yield* raw("GET", "/v1/projects/not-a-uuid", { token: adminToken })
      assert.strictEqual(response.status, 400)
      assert.deepInclude(response.body, { code: "ValidationError" })
    }))
})
