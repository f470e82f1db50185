import { assert, layer } from "@effect/vitest"
import { Context, Effect, Layer, Option, Redacted } from "effect"
import { HttpServer } from "effect/http"
import { AppConfig } from "../../src/Config/AppConfig.ts"
import { ApiKeyId } from "../../src/Domain/Ids.ts"
import { makeApp } from "../../src/Server.ts"
import { assertEnvelope, missingId, projectRoles, setupProject } from "../support/fixtures.ts"
import { adminToken, clientFor, raw, TestApp, testConfig } from "../support/TestApp.ts"
import { waitFor } from "../support/waitFor.ts"

layer(TestApp(), { timeout: 120_000, excludeTestServices: true })("api keys", (it) => {
  it.effect("a created key shows its secret once; the list never does", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("keys")
      const client = yield* clientFor(tokens.admin)
      const created = yield* client.apiKeys.create({ params: { projectId }, payload: { name: "ci", role: "producer" } })
      assert.strictEqual(created.name, "ci")
      assert.strictEqual(created.role, "producer")
      assert.strictEqual(created.project_id, projectId)
      assert.isNull(created.revoked_at)
      assert.match(created.secret, /^fmn_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/)
      assert.isTrue(created.secret.startsWith(`fmn_${created.prefix}_`), "the public prefix is part of the secret")

      const listed = yield* raw("GET", `/v1/projects/${projectId}/api-keys?limit=200`, { token: tokens.admin })
      assert.strictEqual(listed.status, 200)
      assert.include(listed.text, created.id)
      assert.notInclude(listed.text, created.secret, "the list never shows a secret")
      assert.notInclude(listed.text, "\"secret\"")
      assert.notInclude(listed.text, "secret_hash")
      for (const token of Object.values(tokens)) assert.notInclude(listed.text, token)

      // The new key works straight away, with its role.
      const asProducer = yield* clientFor(created.secret)
      const project = yield* asProducer.projects.get({ params: { projectId } })
      assert.strictEqual(project.id, projectId)
    }))

  it.effect("lists every key of the project, newest first, paging with a cursor", () =>
    Effect.gen(function*() {
      const { keyIds, projectId, tokens } = yield* setupProject("list keys")
      const client = yield* clientFor(tokens.admin)
      const seen: Array<string> = []
      let cursor: string | undefined 
      let pages = 0
      do {
        const page: { readonly items: ReadonlyArray<{ readonly id: string }>; readonly next_cursor: string | null } =
          yield* client.apiKeys.list({ params: { projectId }, query: { limit: 2, ...(cursor === undefined ? {} : { cursor }) } })
        assert.isAtMost(page.items.length, 2)
        seen.push(...page.items.map((key) => key.id))
        cursor = page.next_cursor ?? undefined
        pages++
      } while (cursor !== undefined)
      assert.strictEqual(pages, 3)
      assert.sameMembers(seen, Object.values(keyIds))
      assert.deepStrictEqual(seen, [...seen].sort().reverse(), "newest first")
    }))

  it.effect("a revoked key is 401 on its next request; revoking is idempotent", () =>
    Effect.gen(function*() {
      const { keyIds, projectId, tokens } = yield* setupProject("revoke")
      const before = yield* raw("GET", `/v1/projects/${projectId}`, { token: tokens.viewer })
      assert.strictEqual(before.status, 200)

      const client = yield* clientFor(tokens.admin)
      const revoked = yield* client.apiKeys.revoke({ params: { projectId, keyId: ApiKeyId.make(keyIds.viewer) } })
      assert.strictEqual(revoked.id, keyIds.viewer)
      assert.isNotNull(revoked.revoked_at)

      const after = yield* raw("GET", `/v1/projects/${projectId}`, { token: tokens.viewer })
      assertEnvelope(after, 401, "Unauthorized")

      const again = yield* client.apiKeys.revoke({ params: { projectId, keyId: ApiKeyId.make(keyIds.viewer) } })
      assert.deepStrictEqual(again.revoked_at, revoked.revoked_at, "revoking twice keeps the first revocation time")

      const listed = yield* client.apiKeys.list({ params: { projectId }, query: {} })
      const entry = listed.items.find((key) => key.id === keyIds.viewer)
      assert.isDefined(entry)
      assert.isNotNull(entry?.revoked_at ?? null)

      // Other keys of the project are unaffected.
      const other = yield* raw("GET", `/v1/projects/${projectId}`, { token: tokens.worker })
      assert.strictEqual(other.status, 200)
    }))

  it.effect("missing, malformed and unknown credentials are all the same 401", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("credentials")
      const path = `/v1/projects/${projectId}`
      const responses = [
        yield* raw("GET", path),
        yield* raw("GET", path, { headers: { authorization: "" } }),
        yield* raw("GET", path, { headers: { authorization: "Bearer" } }),
        yield* raw("GET", path, { headers: { authorization: `Basic ${Buffer.from("a:b").toString("base64")}` } }),
        yield* raw("GET", path, { token: "garbage" }),
        yield* raw("GET", path, { token: `fmn_aaaaaaaaaaaa_${"A".repeat(43)}` }),
        yield* raw("GET", path, { token: tokens.admin.slice(0, -1) + (tokens.admin.endsWith("A") ? "B" : "A") }),
        yield* raw("GET", path, { token: `${tokens.admin}x` }),
        yield* raw("GET", path, { token: "x".repeat(600) }),
        yield* raw("GET", path, { token: adminToken.toUpperCase() })
      ]
      const messages = new Set<string>()
      for (const response of responses) messages.add(assertEnvelope(response, 401, "Unauthorized").message)
      assert.strictEqual(messages.size, 1, "no failure says why")
    }))

  it.effect("authentication comes first: an anonymous request learns nothing about ids, bodies or routes' data", () =>
    Effect.gen(function*() {
      const { projectId } = yield* setupProject("anonymous")
      const requests: ReadonlyArray<readonly [string, string, string?]> = [
        ["GET", "/v1/projects/not-a-uuid"],
        ["GET", `/v1/projects/${missingId}`],
        ["GET", `/v1/projects/${projectId}/queues/Bad%20Name`],
        ["GET", `/v1/projects/${projectId}/jobs?limit=0`],
        ["POST", `/v1/projects/${projectId}/jobs`, "{not json"],
        ["POST", `/v1/projects/${projectId}/api-keys`, JSON.stringify({ name: "x", role: "admin" })]
      ]
      for (const [method, path, body] of requests) {
        const response = yield* raw(method, path, body === undefined ? {} : { body })
        assertEnvelope(response, 401, "Unauthorized")
      }
    }))

  it.effect("only the admin role manages keys; other roles get 403", () =>
    Effect.gen(function*() {
      const { keyIds, projectId, tokens } = yield* setupProject("key roles")
      for (const role of projectRoles.filter((r) => r !== "admin")) {
        const client = yield* clientFor(tokens[role])
        const create = yield* client.apiKeys.create({ params: { projectId }, payload: { name: "x", role: "viewer" } })
          .pipe(Effect.flip)
        assert.strictEqual(create._tag, "Forbidden", `${role} create`)
        const list = yield* client.apiKeys.list({ params: { projectId }, query: {} }).pipe(Effect.flip)
        assert.strictEqual(list._tag, "Forbidden", `${role} list`)
        const revoke = yield* client.apiKeys.revoke({ params: { projectId, keyId: ApiKeyId.make(keyIds.viewer) } })
          .pipe(Effect.flip)
        assert.strictEqual(revoke._tag, "Forbidden", `${role} revoke`)
        assertEnvelope(
          yield* raw("POST", `/v1/projects/${projectId}/api-keys`, {
            token: tokens[role],
            body: JSON.stringify({ name: "x", role: "admin" })
          }),
          403,
          "Forbidden"
        )
      }
      // None of the refused calls changed anything.
      const admin = yield* clientFor(tokens.admin)
      const listed = yield* admin.apiKeys.list({ params: { projectId }, query: {} })
      assert.strictEqual(listed.items.length, projectRoles.length)
      assert.isTrue(listed.items.every((key) => key.revoked_at === null))
    }))

  it.effect("a platform admin creates keys in any project; a project admin only in its own", () =>
    Effect.gen(function*() {
      const a = yield* setupProject("platform a")
      const b = yield* setupProject("platform b")
      const platform = yield* clientFor(adminToken)
      for (const project of [a, b]) {
        const key = yield* platform.apiKeys.create({
          params: { projectId: project.projectId },
          payload: { name: "by platform", role: "admin" }
        })
        assert.strictEqual(key.project_id, project.projectId)
      }
      const adminOfA = yield* clientFor(a.tokens.admin)
      const error = yield* adminOfA.apiKeys.create({ params: { projectId: b.projectId }, payload: { name: "x", role: "admin" } })
        .pipe(Effect.flip)
      assert.strictEqual(error._tag, "NotFound")
    }))

  it.effect("a platform admin cannot create a key in a missing project", () =>
    Effect.gen(function*() {
      const response = yield* raw("POST", `/v1/projects/${missingId}/api-keys`, {
        token: adminToken,
        body: JSON.stringify({ name: "x", role: "admin" })
      })
      assertEnvelope(response, 404, "NotFound")
    }))

  it.effect("a key of another project cannot be revoked through this project: 404, and it keeps working", () =>
    Effect.gen(function*() {
      const a = yield* setupProject("revoke a")
      const b = yield* setupProject("revoke b")
      const keyOfB = ApiKeyId.make(b.keyIds.viewer)
      for (const token of [a.tokens.admin, adminToken]) {
        const response = yield* raw("DELETE", `/v1/projects/${a.projectId}/api-keys/${keyOfB}`, { token })
        assertEnvelope(response, 404, "NotFound")
      }
      const admin = yield* clientFor(a.tokens.admin)
      const error = yield* admin.apiKeys.revoke({ params: { projectId: a.projectId, keyId: keyOfB } }).pipe(Effect.flip)
      assert.strictEqual(error._tag, "NotFound")
      const stillWorks = yield* raw("GET", `/v1/projects/${b.projectId}`, { token: b.tokens.viewer })
      assert.strictEqual(stillWorks.status, 200)
    }))

  it.effect("an unknown key id is 404 and invalid input is 400", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("key input")
      assertEnvelope(
        yield* raw("DELETE", `/v1/projects/${projectId}/api-keys/${missingId}`, { token: tokens.admin }),
        404,
        "NotFound"
      )
      assertEnvelope(
        yield* raw("DELETE", `/v1/projects/${projectId}/api-keys/not-a-uuid`, { token: tokens.admin }),
        400,
        "ValidationError"
      )
      for (const body of [{ name: "x", role: "platform_admin" }, { name: "x", role: "owner" }, { name: "", role: "viewer" }]) {
        const response = yield* raw("POST", `/v1/projects/${projectId}/api-keys`, {
          token: tokens.admin,
          body: JSON.stringify(body)
        })
        assertEnvelope(response, 400, "ValidationError")
      }
    }))
})

layer(TestApp(), { timeout: 120_000, excludeTestServices: true })("api keys across instances", (it) => {
  it.effect("a key revoked on one instance stops working on another that trusted it from memory, long before its cache time", () =>
    Effect.scoped(Effect.gen(function*() {
      const { keyIds, projectId, tokens } = yield* setupProject("revoke across instances")
      // A second instance on the same database that would trust a verified key for ten minutes.
      const config = yield* AppConfig
      const url = Redacted.value(Option.getOrThrow(config.databaseUrl))
      const second = yield* Layer.buildWithMemoMap(
        makeApp(testConfig(url, { instanceId: "second", apiKeyCacheMs: 600_000 })),
        yield* Layer.makeMemoMap,
        yield* Effect.scope
      )
      const address = Context.get(second, HttpServer.HttpServer).address
      if (address._tag === "UnixPathAddress") return yield* Effect.die(new Error("expected a TCP address"))
      const onSecond = Effect.promise(() =>
        fetch(`http://127.0.0.1:${address.port}/v1/projects/${projectId}`, {
          headers: { authorization: `Bearer ${tokens.viewer}` }
        }).then((response) => response.status)
      )
      // Verified once (and remembered), then served again.
      assert.strictEqual(yield* onSecond, 200)
      assert.strictEqual(yield* onSecond, 200)

      const admin = yield* clientFor(tokens.admin)
      yield* admin.apiKeys.revoke({ params: { projectId, keyId: ApiKeyId.make(keyIds.viewer) } })
      // The revoking instance refuses it at once; the other as soon as the notification arrives.
      assertEnvelope(yield* raw("GET", `/v1/projects/${projectId}`, { token: tokens.viewer }), 401, "Unauthorized")
      const started = Date.now()
      yield* waitFor(onSecond, (status) => status === 401, { label: "401 on the second instance", timeoutMs: 5_000, intervalMs: 10 })
      assert.isBelow(Date.now() - started, 5_000)

      // Keys that were not revoked are still served from the second instance.
      const other = yield* Effect.promise(() =>
        fetch(`http://127.0.0.1:${address.port}/v1/projects/${projectId}`, {
          headers: { authorization: `Bearer ${tokens.worker}` }
        }).then((response) => response.status)
      )
      assert.strictEqual(other, 200)
    })))
})
