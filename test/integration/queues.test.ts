import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import { assertEnvelope, assertValidationIssue, queueName, setupProject } from "../support/fixtures.ts"
import { clientFor, raw, TestApp } from "../support/TestApp.ts"

const defaults = {
  paused: false,
  retry_policy: { max_attempts: 25, initial_delay_ms: 1000, factor: 2, max_delay_ms: 3_600_000, jitter: 0.2 },
  timeout_ms: 300_000,
  retention_seconds: 604_800
}

layer(TestApp(), { timeout: 120_000, excludeTestServices: true })("queues", (it) => {
  it.effect("a queue created with only a name gets the documented defaults", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("defaults")
      const client = yield* clientFor(tokens.admin)
      const queue = yield* client.queues.create({ params: { projectId }, payload: { name: queueName("emails") } })
      assert.strictEqual(queue.name, "emails")
      assert.strictEqual(queue.project_id, projectId)
      assert.deepStrictEqual(
        { paused: queue.paused, retry_policy: queue.retry_policy, timeout_ms: queue.timeout_ms, retention_seconds: queue.retention_seconds },
        defaults
      )
      const fetched = yield* client.queues.get({ params: { projectId, queueName: queueName("emails") } })
      assert.deepStrictEqual(fetched, queue)
    }))

  it.effect("overrides replace the defaults field by field; a partial retry policy keeps the other defaults", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("overrides")
      const client = yield* clientFor(tokens.admin)
      const queue = yield* client.queues.create({
        params: { projectId },
        payload: {
          name: queueName("reports.v2"),
          paused: true,
          retry_policy: { max_attempts: 3, factor: 1.5 },
          timeout_ms: 60_000,
          retention_seconds: 3600
        }
      })
      assert.isTrue(queue.paused)
      assert.deepStrictEqual(queue.retry_policy, { ...defaults.retry_policy, max_attempts: 3, factor: 1.5 })
      assert.strictEqual(queue.timeout_ms, 60_000)
      assert.strictEqual(queue.retention_seconds, 3600)
      // What was stored is what was returned.
      assert.deepStrictEqual(yield* client.queues.get({ params: { projectId, queueName: queue.name } }), queue)
    }))

  it.effect("a duplicate name in the same project is 409; the same name in another project is fine", () =>
    Effect.gen(function*() {
      const a = yield* setupProject("dup a")
      const b = yield* setupProject("dup b")
      const client = yield* clientFor(a.tokens.admin)
      const first = yield* client.queues.create({ params: { projectId: a.projectId }, payload: { name: queueName("dup") } })
      const error = yield* client.queues.create({
        params: { projectId: a.projectId },
        payload: { name: queueName("dup"), paused: true }
      }).pipe(Effect.flip)
      assert.strictEqual(error._tag, "Conflict")
      const response = yield* raw("POST", `/v1/projects/${a.projectId}/queues`, {
        token: a.tokens.admin,
        body: JSON.stringify({ name: "dup" })
      })
      assertEnvelope(response, 409, "Conflict")
      // The original is untouched by the refused create.
      assert.deepStrictEqual(yield* client.queues.get({ params: { projectId: a.projectId, queueName: first.name } }), first)

      const other = yield* clientFor(b.tokens.admin)
      const inB = yield* other.queues.create({ params: { projectId: b.projectId }, payload: { name: queueName("dup") } })
      assert.notStrictEqual(inB.id, first.id)
    }))

  it.effect("lists every queue of the project once, paging with a cursor", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("list")
      const other = yield* setupProject("list other")
      const client = yield* clientFor(tokens.admin)
      const names = ["q0", "q1", "q2", "q3", "q4", "q5", "q6"]
      for (const name of names) yield* client.queues.create({ params: { projectId }, payload: { name: queueName(name) } })
      const otherClient = yield* clientFor(other.tokens.admin)
      yield* otherClient.queues.create({ params: { projectId: other.projectId }, payload: { name: queueName("foreign") } })

      const seen: Array<string> = []
      let cursor: string | undefined 
      let pages = 0
      do {
        const page: { readonly items: ReadonlyArray<{ readonly name: string }>; readonly next_cursor: string | null } =
          yield* client.queues.list({ params: { projectId }, query: { limit: 3, ...(cursor === undefined ? {} : { cursor }) } })
        assert.isAtMost(page.items.length, 3)
        seen.push(...page.items.map((queue) => queue.name))
        cursor = page.next_cursor ?? undefined
        pages++
      } while (cursor !== undefined)
      assert.strictEqual(pages, 3)
      assert.sameMembers(seen, names, "each queue once, and only this project's")
      assert.deepStrictEqual(seen, [...names].reverse(), "newest first")

      const all = yield* client.queues.list({ params: { projectId }, query: {} })
      assert.strictEqual(all.items.length, names.length)
      assert.isNull(all.next_cursor)
    }))

  it.effect("PATCH pauses and resumes, and a partial retry_policy keeps the other fields", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("patch")
      const client = yield* clientFor(tokens.admin)
      const name = queueName("patchy")
      const created = yield* client.queues.create({
        params: { projectId },
        payload: { name, retry_policy: { max_attempts: 7, jitter: 0.5 }, timeout_ms: 5000 }
      })

      const paused = yield* client.queues.update({ params: { projectId, queueName: name }, payload: { paused: true } })
      assert.isTrue(paused.paused)
      assert.deepStrictEqual(paused.retry_policy, created.retry_policy)
      assert.strictEqual(paused.timeout_ms, 5000)
      assert.isTrue(paused.updated_at.getTime() >= created.updated_at.getTime())

      const resumed = yield* client.queues.update({ params: { projectId, queueName: name }, payload: { paused: false } })
      assert.isFalse(resumed.paused)

      const tuned = yield* client.queues.update({
        params: { projectId, queueName: name },
        payload: { retry_policy: { factor: 3 } }
      })
      assert.deepStrictEqual(tuned.retry_policy, { ...created.retry_policy, factor: 3 })
      assert.strictEqual(tuned.retry_policy.max_attempts, 7)
      assert.strictEqual(tuned.retry_policy.jitter, 0.5)
      assert.isFalse(tuned.paused)
      assert.strictEqual(tuned.timeout_ms, 5000)
      assert.strictEqual(tuned.retention_seconds, created.retention_seconds)
      assert.strictEqual(tuned.id, created.id)
      assert.deepStrictEqual(tuned.created_at, created.created_at)

      // An empty patch changes nothing.
      const same = yield* client.queues.update({ params: { projectId, queueName: name }, payload: {} })
      assert.deepStrictEqual(same.retry_policy, tuned.retry_policy)
      assert.strictEqual(same.paused, tuned.paused)

      // The change is stored, not just echoed.
      const fetched = yield* client.queues.get({ params: { projectId, queueName: name } })
      assert.deepStrictEqual(fetched.retry_policy, tuned.retry_policy)
    }))

  it.effect("concurrent partial updates of different fields all survive", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("concurrent patch")
      const client = yield* clientFor(tokens.admin)
      const name = queueName("contended")
      yield* client.queues.create({ params: { projectId }, payload: { name } })
      const patches = [
        { retry_policy: { max_attempts: 9 } },
        { retry_policy: { initial_delay_ms: 5 } },
        { retry_policy: { factor: 3 } },
        { retry_policy: { max_delay_ms: 7000 } },
        { retry_policy: { jitter: 0.9 } },
        { timeout_ms: 7000 },
        { retention_seconds: 120 },
        { paused: true }
      ]
      yield* Effect.all(
        patches.map((patch) =>
          raw("PATCH", `/v1/projects/${projectId}/queues/contended`, { token: tokens.admin, body: JSON.stringify(patch) })
            .pipe(Effect.tap((response) => Effect.sync(() => assert.strictEqual(response.status, 200, response.text))))
        ),
        { concurrency: "unbounded" }
      )
      const queue = yield* client.queues.get({ params: { projectId, queueName: name } })
      assert.deepStrictEqual(queue.retry_policy, {
        max_attempts: 9,
        initial_delay_ms: 5,
        factor: 3,
        max_delay_ms: 7000,
        jitter: 0.9
      })
      assert.strictEqual(queue.timeout_ms, 7000)
      assert.strictEqual(queue.retention_seconds, 120)
      assert.isTrue(queue.paused)
    }))

  it.effect("invalid settings are 400 ValidationErrors naming the field", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("invalid")
      const create = (body: unknown) =>
        raw("POST", `/v1/projects/${projectId}/queues`, { token: tokens.admin, body: JSON.stringify(body) })
      assertValidationIssue(yield* create({ name: "ok1", retry_policy: { factor: 0 } }), ["payload", "retry_policy", "factor"])
      assertValidationIssue(yield* create({ name: "ok2", retry_policy: { jitter: 2 } }), ["payload", "retry_policy", "jitter"])
      assertValidationIssue(yield* create({ name: "ok3", timeout_ms: 10 }), ["payload", "timeout_ms"])
      assertValidationIssue(yield* create({ name: "ok4", retention_seconds: 1 }), ["payload", "retention_seconds"])
      assertValidationIssue(yield* create({ name: "ok5", retry_policy: { max_attempts: 0 } }), ["payload", "retry_policy", "max_attempts"])
      assertValidationIssue(yield* create({ name: "ok6", retry_policy: { max_attempts: 2.5 } }), ["payload", "retry_policy", "max_attempts"])
      assertValidationIssue(yield* create({ name: "ok7", paused: "yes" }), ["payload", "paused"])
      assertValidationIssue(yield* create({ name: "Bad Name" }), ["payload", "name"])
      assertValidationIssue(yield* create({ name: "" }), ["payload", "name"])
      assertValidationIssue(yield* create({ name: "-leading" }), ["payload", "name"])
      assertValidationIssue(yield* create({ name: "x".repeat(65) }), ["payload", "name"])
      assertValidationIssue(yield* create({}), ["payload", "name"])

      yield* create({ name: "valid" })
      const patch = (body: unknown) =>
        raw("PATCH", `/v1/projects/${projectId}/queues/valid`, { token: tokens.admin, body: JSON.stringify(body) })
      assertValidationIssue(yield* patch({ retry_policy: { factor: 0 } }), ["payload", "retry_policy", "factor"])
      assertValidationIssue(yield* patch({ retry_policy: { jitter: 2 } }), ["payload", "retry_policy", "jitter"])
      assertValidationIssue(yield* patch({ timeout_ms: 10 }), ["payload", "timeout_ms"])

      // Nothing invalid was written.
      const client = yield* clientFor(tokens.admin)
      const queues = yield* client.queues.list({ params: { projectId }, query: {} })
      assert.deepStrictEqual(queues.items.map((queue) => queue.name), ["valid"])
      assert.deepStrictEqual(queues.items[0]?.retry_policy, defaults.retry_policy)
      assert.strictEqual(queues.items[0]?.timeout_ms, defaults.timeout_ms)

      // A bad name in the path is a validation error too.
      assertValidationIssue(
        yield* raw("GET", `/v1/projects/${projectId}/queues/Bad%20Name`, { token: tokens.admin }),
        ["params", "queueName"]
      )
    }))

  it.effect("an unknown queue is 404 for get and patch", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("unknown")
      const client = yield* clientFor(tokens.admin)
      const get = yield* client.queues.get({ params: { projectId, queueName: queueName("nope") } }).pipe(Effect.flip)
      assert.strictEqual(get._tag, "NotFound")
      const patch = yield* client.queues.update({ params: { projectId, queueName: queueName("nope") }, payload: { paused: true } })
        .pipe(Effect.flip)
      assert.strictEqual(patch._tag, "NotFound")
      const response = yield* raw("GET", `/v1/projects/${projectId}/queues/nope`, { token: tokens.admin })
      const envelope = assertEnvelope(response, 404, "NotFound")
      assert.strictEqual(envelope.message, "queue not found")
    }))
})
