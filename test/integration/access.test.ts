import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import type { HttpServer } from "effect/http"
import type { ProjectRole } from "../../src/Domain/Role.ts"
import {
  assertEnvelope,
  createQueue,
  idOf,
  jobRequest,
  missingId,
  projectRoles,
  setupProject,
  withoutRequestId
} from "../support/fixtures.ts"
import { adminToken, clientFor, raw, type RawResponse, TestApp } from "../support/TestApp.ts"

interface Endpoint {
  readonly name: string
  /** The roles the policy table grants this endpoint to; every other project role gets 403. */
  readonly allowed: ReadonlyArray<ProjectRole>
  readonly status: number
  /** Makes one call as `token`; `n` (the role's index) picks a fixture of its own. */
  readonly call: (token: string, n: number) => Effect.Effect<RawResponse, never, HttpServer.HttpServer>
}

const everyone: ReadonlyArray<ProjectRole> = ["admin", "producer", "worker", "reviewer", "viewer"]
const producers: ReadonlyArray<ProjectRole> = ["admin", "producer"]
const adminsOnly: ReadonlyArray<ProjectRole> = ["admin"]

/** The roles allowed to make a request under their own project's path, for the 403 cross-check. */
const producersOf = (method: string, path: string): ReadonlyArray<ProjectRole> =>
  method === "GET" ? everyone : path.endsWith("/cancel") || path.endsWith("/jobs") || path.endsWith("/batch") ? producers : adminsOnly

layer(TestApp(), { timeout: 120_000, excludeTestServices: true })("access control", (it) => {
  it.effect("every role gets exactly the endpoints its grants allow, and 403 for the rest", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("matrix")
      const { projectId } = project
      yield* createQueue(projectId, "matrix")
      const platform = yield* clientFor(adminToken)
      const base = `/v1/projects/${projectId}`

      // Fixtures the mutating calls consume, one per role so an allowed call never starves the next.
      const spareKeys: Record<string, string> = {}
      const spareJobs: Record<string, string> = {}
      for (const role of projectRoles) {
        const key = yield* platform.apiKeys.create({ params: { projectId }, payload: { name: `spare ${role}`, role: "viewer" } })
        spareKeys[role] = key.id
        const job = yield* platform.jobs.enqueue({ params: { projectId }, payload: jobRequest("matrix") })
        spareJobs[role] = job.id
      }
      const aJob = spareJobs.viewer ?? ""

      const json = (body: unknown) => JSON.stringify(body)
      const endpoints: ReadonlyArray<Endpoint> = [
        { name: "GET project", allowed: everyone, status: 200, call: (token) => raw("GET", base, { token }) },
        { name: "GET projects", allowed: everyone, status: 200, call: (token) => raw("GET", "/v1/projects", { token }) },
        {
          name: "POST projects",
          allowed: [],
          status: 201,
          call: (token) => raw("POST", "/v1/projects", { token, body: json({ name: "new" }) })
        },
        {
          name: "PATCH project",
          allowed: [],
          status: 200,
          call: (token) => raw("PATCH", base, { token, body: json({ name: "renamed" }) })
        },
        {
          name: "POST api-keys",
          allowed: adminsOnly,
          status: 201,
          call: (token) => raw("POST", `${base}/api-keys`, { token, body: json({ name: "k", role: "viewer" }) })
        },
        { name: "GET api-keys", allowed: adminsOnly, status: 200, call: (token) => raw("GET", `${base}/api-keys`, { token }) },
        {
          name: "DELETE api-key",
          allowed: adminsOnly,
          status: 200,
          call: (token, n) => raw("DELETE", `${base}/api-keys/${Object.values(spareKeys)[n] ?? missingId}`, { token })
        },
        {
          name: "POST queues",
          allowed: adminsOnly,
          status: 201,
          call: (token, n) => raw("POST", `${base}/queues`, { token, body: json({ name: `created-${n}` }) })
        },
        { name: "GET queues", allowed: everyone, status: 200, call: (token) => raw("GET", `${base}/queues`, { token }) },
        { name: "GET queue", allowed: everyone, status: 200, call: (token) => raw("GET", `${base}/queues/matrix`, { token }) },
        {
          name: "PATCH queue",
          allowed: adminsOnly,
          status: 200,
          call: (token) => raw("PATCH", `${base}/queues/matrix`, { token, body: json({ paused: false }) })
        },
        {
          name: "POST jobs",
          allowed: producers,
          status: 201,
          call: (token) => raw("POST", `${base}/jobs`, { token, body: json(jobRequest("matrix")) })
        },
        {
          name: "POST jobs/batch",
          allowed: producers,
          status: 201,
          call: (token) => raw("POST", `${base}/jobs/batch`, { token, body: json({ jobs: [jobRequest("matrix")] }) })
        },
        { name: "GET jobs", allowed: everyone, status: 200, call: (token) => raw("GET", `${base}/jobs`, { token }) },
        { name: "GET job", allowed: everyone, status: 200, call: (token) => raw("GET", `${base}/jobs/${aJob}`, { token }) },
        {
          name: "POST job cancel",
          allowed: producers,
          status: 200,
          call: (token, n) => raw("POST", `${base}/jobs/${Object.values(spareJobs)[n] ?? missingId}/cancel`, { token })
        }
      ]

      const failures: Array<string> = []
      for (const [n, role] of projectRoles.entries()) {
        for (const endpoint of endpoints) {
          const response = yield* endpoint.call(project.tokens[role], n)
          const allowed = endpoint.allowed.includes(role)
          const expected = allowed ? endpoint.status : 403
          if (response.status !== expected) {
            failures.push(`${role} ${endpoint.name}: expected ${expected}, got ${response.status} ${response.text}`)
          } else if (!allowed) {
            assertEnvelope(response, 403, "Forbidden")
          }
        }
      }
      assert.deepStrictEqual(failures, [])

      // Refused writes changed nothing: only the admin's queue and key exist, only allowed roles enqueued.
      const queues = yield* platform.queues.list({ params: { projectId }, query: {} })
      assert.sameMembers(queues.items.map((queue) => queue.name), ["matrix", "created-0"])
      const keys = yield* platform.apiKeys.list({ params: { projectId }, query: { limit: 200 } })
      assert.strictEqual(keys.items.filter((key) => key.revoked_at !== null).length, 1, "only the admin revoked a key")
      const jobs = yield* platform.jobs.list({ params: { projectId }, query: { limit: 200 } })
      assert.strictEqual(jobs.items.length, projectRoles.length + 2 * producers.length)
      assert.strictEqual(jobs.items.filter((job) => job.state === "cancelled").length, producers.length)
      const fetched = yield* platform.projects.get({ params: { projectId } })
      assert.strictEqual(fetched.name, "matrix")
    }))

  it.effect("another project's resources are 404, identical apart from requestId to a missing project's", () =>
    Effect.gen(function*() {
      const a = yield* setupProject("tenant a")
      const b = yield* setupProject("tenant b")
      yield* createQueue(b.projectId, "secret-queue")
      yield* createQueue(a.projectId, "own-queue")
      const platform = yield* clientFor(adminToken)
      const jobOfB = yield* platform.jobs.enqueue({ params: { projectId: b.projectId }, payload: jobRequest("secret-queue") })

      const pairs: ReadonlyArray<readonly [method: string, other: string, missing: string, body?: unknown]> = [
        ["GET", `/v1/projects/${b.projectId}`, `/v1/projects/${missingId}`],
        ["PATCH", `/v1/projects/${b.projectId}`, `/v1/projects/${missingId}`, { name: "stolen" }],
        ["GET", `/v1/projects/${b.projectId}/queues`, `/v1/projects/${missingId}/queues`],
        ["GET", `/v1/projects/${b.projectId}/queues/secret-queue`, `/v1/projects/${missingId}/queues/secret-queue`],
        [
          "PATCH",
          `/v1/projects/${b.projectId}/queues/secret-queue`,
          `/v1/projects/${missingId}/queues/secret-queue`,
          { paused: true }
        ],
        ["POST", `/v1/projects/${b.projectId}/queues`, `/v1/projects/${missingId}/queues`, { name: "planted" }],
        ["GET", `/v1/projects/${b.projectId}/jobs`, `/v1/projects/${missingId}/jobs`],
        ["GET", `/v1/projects/${b.projectId}/jobs/${jobOfB.id}`, `/v1/projects/${missingId}/jobs/${jobOfB.id}`],
        [
          "POST",
          `/v1/projects/${b.projectId}/jobs/${jobOfB.id}/cancel`,
          `/v1/projects/${missingId}/jobs/${jobOfB.id}/cancel`
        ],
        ["POST", `/v1/projects/${b.projectId}/jobs`, `/v1/projects/${missingId}/jobs`, jobRequest("secret-queue")],
        [
          "POST",
          `/v1/projects/${b.projectId}/jobs/batch`,
          `/v1/projects/${missingId}/jobs/batch`,
          { jobs: [jobRequest("secret-queue")] }
        ],
        ["GET", `/v1/projects/${b.projectId}/api-keys`, `/v1/projects/${missingId}/api-keys`],
        [
          "POST",
          `/v1/projects/${b.projectId}/api-keys`,
          `/v1/projects/${missingId}/api-keys`,
          { name: "backdoor", role: "admin" }
        ],
        [
          "DELETE",
          `/v1/projects/${b.projectId}/api-keys/${b.keyIds.admin}`,
          `/v1/projects/${missingId}/api-keys/${b.keyIds.admin}`
        ],
        // Through its own project's path, another project's job is simply not there.
        ["GET", `/v1/projects/${a.projectId}/jobs/${jobOfB.id}`, `/v1/projects/${a.projectId}/jobs/${missingId}`],
        [
          "POST",
          `/v1/projects/${a.projectId}/jobs/${jobOfB.id}/cancel`,
          `/v1/projects/${a.projectId}/jobs/${missingId}/cancel`
        ],
        ["GET", `/v1/projects/${a.projectId}/queues/secret-queue`, `/v1/projects/${a.projectId}/queues/no-such-queue`]
      ]

      for (const role of projectRoles) {
        const token = a.tokens[role]
        for (const [method, other, missing, body] of pairs) {
          const options = body === undefined ? { token } : { token, body: JSON.stringify(body) }
          const toOther = yield* raw(method, other, options)
          const toMissing = yield* raw(method, missing, options)
          const label = `${role} ${method} ${other}`
          // Under B's path every role gets 404. Under A's own path a role without the
          // action gets its usual 403 — for B's job and a missing one alike.
          const underOwnPath = other.startsWith(`/v1/projects/${a.projectId}/`)
          const [status, tag] = underOwnPath && toOther.status === 403 ? [403, "Forbidden"] : [404, "NotFound"]
          assert.strictEqual(toOther.status, status, `${label}: ${toOther.text}`)
          if (status === 403) assert.isFalse(producersOf(method, other).includes(role), `${label} must not be 403`)
          const otherEnvelope = assertEnvelope(toOther, status, tag)
          const missingEnvelope = assertEnvelope(toMissing, status, tag)
          assert.deepStrictEqual(withoutRequestId(otherEnvelope), withoutRequestId(missingEnvelope), label)
          assert.notInclude(toOther.text, b.name, label)
        }
      }

      // The platform admin's view of a missing project is the same 404 as well.
      const platformMissing = assertEnvelope(yield* raw("GET", `/v1/projects/${missingId}`, { token: adminToken }), 404, "NotFound")
      const tenantOther = assertEnvelope(
        yield* raw("GET", `/v1/projects/${b.projectId}`, { token: a.tokens.admin }),
        404,
        "NotFound"
      )
      assert.deepStrictEqual(withoutRequestId(platformMissing), withoutRequestId(tenantOther))

      // Nothing in B was touched by any of it.
      const projectB = yield* platform.projects.get({ params: { projectId: b.projectId } })
      assert.strictEqual(projectB.name, "tenant b")
      const queuesB = yield* platform.queues.list({ params: { projectId: b.projectId }, query: {} })
      assert.deepStrictEqual(queuesB.items.map((queue) => [queue.name, queue.paused]), [["secret-queue", false]])
      const jobsB = yield* platform.jobs.list({ params: { projectId: b.projectId }, query: {} })
      assert.deepStrictEqual(jobsB.items.map((job) => [job.id, job.state]), [[jobOfB.id, "available"]])
      const keysB = yield* platform.apiKeys.list({ params: { projectId: b.projectId }, query: {} })
      assert.strictEqual(keysB.items.length, projectRoles.length)
      assert.isTrue(keysB.items.every((key) => key.revoked_at === null))
    }))

  it.effect("a project key listing projects sees only its own project", () =>
    Effect.gen(function*() {
      const a = yield* setupProject("own a")
      const b = yield* setupProject("own b")
      for (const role of projectRoles) {
        const client = yield* clientFor(a.tokens[role])
        const page = yield* client.projects.list({ query: {} })
        assert.deepStrictEqual(page.items.map((project) => project.id), [a.projectId], role)
        assert.isNull(page.next_cursor)
      }
      const platform = yield* clientFor(adminToken)
      const all = yield* platform.projects.list({ query: { limit: 200 } })
      const ids = all.items.map((project) => project.id)
      assert.include(ids, a.projectId)
      assert.include(ids, b.projectId)
    }))

  it.effect("project keys cannot create or rename projects", () =>
    Effect.gen(function*() {
      const a = yield* setupProject("no create")
      const b = yield* setupProject("no rename")
      for (const role of projectRoles) {
        const client = yield* clientFor(a.tokens[role])
        const create = yield* client.projects.create({ payload: { name: "mine" } }).pipe(Effect.flip)
        assert.strictEqual(create._tag, "Forbidden", `${role} create`)
        const renameOwn = yield* client.projects.update({ params: { projectId: a.projectId }, payload: { name: "x" } })
          .pipe(Effect.flip)
        assert.strictEqual(renameOwn._tag, "Forbidden", `${role} rename own`)
        const renameOther = yield* client.projects.update({ params: { projectId: b.projectId }, payload: { name: "x" } })
          .pipe(Effect.flip)
        assert.strictEqual(renameOther._tag, "NotFound", `${role} rename other`)
      }
      const platform = yield* clientFor(adminToken)
      assert.strictEqual((yield* platform.projects.get({ params: { projectId: a.projectId } })).name, "no create")
      assert.strictEqual((yield* platform.projects.get({ params: { projectId: b.projectId } })).name, "no rename")
      const all = yield* platform.projects.list({ query: { limit: 200 } })
      assert.notInclude(all.items.map((project) => project.name), "mine")
    }))

  it.effect("a job id resolves only under its own project, even for the platform admin", () =>
    Effect.gen(function*() {
      const a = yield* setupProject("ids a")
      const b = yield* setupProject("ids b")
      yield* createQueue(a.projectId, "default")
      const created = yield* raw("POST", `/v1/projects/${a.projectId}/jobs`, {
        token: a.tokens.producer,
        body: JSON.stringify(jobRequest("default"))
      })
      const jobId = idOf(created)
      const viaB = yield* raw("GET", `/v1/projects/${b.projectId}/jobs/${jobId}`, { token: adminToken })
      assertEnvelope(viaB, 404, "NotFound")
      const viaA = yield* raw("GET", `/v1/projects/${a.projectId}/jobs/${jobId}`, { token: adminToken })
      assert.strictEqual(viaA.status, 200)
    }))
})
