import { assert, layer } from "@effect/vitest"
import { Effect } from "effect"
import type { ProjectRole } from "../../src/Domain/Role.ts"
import { projectRoles, queueName, setupProject } from "../support/fixtures.ts"
import { adminToken, clientFor, raw, TestApp } from "../support/TestApp.ts"

type Caller = "platform_admin" | ProjectRole
const callers: ReadonlyArray<Caller> = ["platform_admin", ...projectRoles]
const everyone = callers
const platformOnly: ReadonlyArray<Caller> = ["platform_admin"]
const admins: ReadonlyArray<Caller> = ["platform_admin", "admin"]
const producers: ReadonlyArray<Caller> = ["platform_admin", "admin", "producer"]
const workers: ReadonlyArray<Caller> = ["platform_admin", "admin", "worker"]
const reviewers: ReadonlyArray<Caller> = ["platform_admin", "admin", "reviewer"]

interface Context {
  readonly projectId: string
  /** A fresh job for calls that change it (cancel, retry). */
  readonly freshJob: Effect.Effect<string>
  readonly freshKey: Effect.Effect<string>
  readonly jobId: string
  readonly workerId: string
}

interface Case {
  readonly allowed: ReadonlyArray<Caller> | "public"
  readonly request: (context: Context) => Effect.Effect<{ readonly path: string; readonly body?: unknown }>
}

const unknownInstance = "01a20623-99f0-7045-96c5-2e9f574d7135"
const at = (path: string, body?: unknown) => Effect.succeed(body === undefined ? { path } : { path, body })
const lease = { lease_token: "00000000-0000-4000-8000-000000000000" }
const missingUser = "01a20623-99f0-7045-96c5-2e9f574d7140"

/**
 * Every operation of the OpenAPI document, with who may call it. An endpoint
 * added to the API without a line here fails the first test; a line whose
 * policy is not what the code enforces fails the second.
 */
const cases: Record<string, Case> = {
  "GET /healthz": { allowed: "public", request: () => at("/healthz") },
  "GET /readyz": { allowed: "public", request: () => at("/readyz") },
  "POST /v1/projects": { allowed: platformOnly, request: () => at("/v1/projects", { name: "matrix" }) },
  "GET /v1/projects": { allowed: everyone, request: () => at("/v1/projects") },
  "GET /v1/projects/{projectId}": { allowed: everyone, request: (c) => at(`/v1/projects/${c.projectId}`) },
  "PATCH /v1/projects/{projectId}": {
    allowed: platformOnly,
    request: (c) => at(`/v1/projects/${c.projectId}`, { name: "matrix" })
  },
  "POST /v1/projects/{projectId}/api-keys": {
    allowed: admins,
    request: (c) => at(`/v1/projects/${c.projectId}/api-keys`, { name: "k", role: "viewer" })
  },
  "GET /v1/projects/{projectId}/api-keys": { allowed: admins, request: (c) => at(`/v1/projects/${c.projectId}/api-keys`) },
  "DELETE /v1/projects/{projectId}/api-keys/{keyId}": {
    allowed: admins,
    request: (c) => Effect.map(c.freshKey, (keyId) => ({ path: `/v1/projects/${c.projectId}/api-keys/${keyId}` }))
  },
  "POST /v1/projects/{projectId}/queues": {
    allowed: admins,
    request: (c) => at(`/v1/projects/${c.projectId}/queues`, { name: `q-${Math.random().toString(36).slice(2, 10)}` })
  },
  "GET /v1/projects/{projectId}/queues": { allowed: everyone, request: (c) => at(`/v1/projects/${c.projectId}/queues`) },
  "GET /v1/projects/{projectId}/queues/{queueName}": {
    allowed: everyone,
    request: (c) => at(`/v1/projects/${c.projectId}/queues/q`)
  },
  "PATCH /v1/projects/{projectId}/queues/{queueName}": {
    allowed: admins,
    request: (c) => at(`/v1/projects/${c.projectId}/queues/q`, { paused: false })
  },
  "POST /v1/projects/{projectId}/jobs": {
    allowed: producers,
    request: (c) => at(`/v1/projects/${c.projectId}/jobs`, { queue: "q", kind: "matrix", payload: {} })
  },
  "GET /v1/projects/{projectId}/jobs": { allowed: everyone, request: (c) => at(`/v1/projects/${c.projectId}/jobs`) },
  "POST /v1/projects/{projectId}/jobs/batch": {
    allowed: producers,
    request: (c) => at(`/v1/projects/${c.projectId}/jobs/batch`, { jobs: [{ queue: "q", kind: "matrix", payload: {} }] })
  },
  "GET /v1/projects/{projectId}/jobs/{jobId}": {
    allowed: everyone,
    request: (c) => at(`/v1/projects/${c.projectId}/jobs/${c.jobId}`)
  },
  "POST /v1/projects/{projectId}/jobs/{jobId}/cancel": {
    allowed: producers,
    request: (c) => Effect.map(c.freshJob, (jobId) => ({ path: `/v1/projects/${c.projectId}/jobs/${jobId}/cancel` }))
  },
  "POST /v1/projects/{projectId}/jobs/{jobId}/retry": {
    allowed: producers,
    request: (c) => at(`/v1/projects/${c.projectId}/jobs/${c.jobId}/retry`)
  },
  "GET /v1/projects/{projectId}/jobs/{jobId}/events": {
    allowed: everyone,
    request: (c) => at(`/v1/projects/${c.projectId}/jobs/${c.jobId}/events`)
  },
  "POST /v1/projects/{projectId}/workers": {
    allowed: workers,
    request: (c) => at(`/v1/projects/${c.projectId}/workers`, { name: "w", kinds: ["matrix"] })
  },
  "GET /v1/projects/{projectId}/workers": { allowed: everyone, request: (c) => at(`/v1/projects/${c.projectId}/workers`) },
  "POST /v1/projects/{projectId}/workers/{workerId}/claim": {
    allowed: workers,
    request: (c) => at(`/v1/projects/${c.projectId}/workers/${c.workerId}/claim`, { limit: 1 })
  },
  "POST /v1/projects/{projectId}/jobs/{jobId}/heartbeat": {
    allowed: workers,
    request: (c) => at(`/v1/projects/${c.projectId}/jobs/${c.jobId}/heartbeat`, lease)
  },
  "POST /v1/projects/{projectId}/jobs/{jobId}/complete": {
    allowed: workers,
    request: (c) => at(`/v1/projects/${c.projectId}/jobs/${c.jobId}/complete`, lease)
  },
  "POST /v1/projects/{projectId}/jobs/{jobId}/fail": {
    allowed: workers,
    request: (c) => at(`/v1/projects/${c.projectId}/jobs/${c.jobId}/fail`, { ...lease, error: { message: "x" } })
  },
  "GET /v1/projects/{projectId}/workers/{workerId}": {
    allowed: everyone,
    request: (c) => at(`/v1/projects/${c.projectId}/workers/${c.workerId}`)
  },
  "POST /v1/projects/{projectId}/workers/{workerId}/disable": {
    allowed: admins,
    request: (c) => at(`/v1/projects/${c.projectId}/workers/${c.workerId}/disable`, {})
  },
  "POST /v1/projects/{projectId}/workers/{workerId}/enable": {
    allowed: admins,
    request: (c) => at(`/v1/projects/${c.projectId}/workers/${c.workerId}/enable`, {})
  },
  "GET /v1/projects/{projectId}/tasks": { allowed: workers, request: (c) => at(`/v1/projects/${c.projectId}/tasks`) },
  "POST /v1/projects/{projectId}/jobs/{jobId}/assign": {
    allowed: admins,
    request: (c) => Effect.map(c.freshJob, (jobId) => ({ path: `/v1/projects/${c.projectId}/jobs/${jobId}/assign`, body: { assign: null } }))
  },
  "GET /v1/workers": { allowed: platformOnly, request: () => at("/v1/workers") },
  // An unknown instance (404 for the platform admin): the matrix must not disable the test's own engine.
  "POST /v1/workers/{workerId}/disable": { allowed: platformOnly, request: () => at(`/v1/workers/${unknownInstance}/disable`, {}) },
  "POST /v1/workers/{workerId}/enable": { allowed: platformOnly, request: () => at(`/v1/workers/${unknownInstance}/enable`, {}) },
  // Reviews (test/integration/reviews.test.ts covers the flows; the job here is not awaiting review: 409).
  "GET /v1/projects/{projectId}/reviews": { allowed: reviewers, request: (c) => at(`/v1/projects/${c.projectId}/reviews`) },
  "POST /v1/projects/{projectId}/reviews/{jobId}/approve": {
    allowed: reviewers,
    request: (c) => at(`/v1/projects/${c.projectId}/reviews/${c.jobId}/approve`, { comment: "ok" })
  },
  "POST /v1/projects/{projectId}/reviews/{jobId}/reject": {
    allowed: reviewers,
    request: (c) => at(`/v1/projects/${c.projectId}/reviews/${c.jobId}/reject`, { comment: "no", retry: true })
  },
  "GET /v1/projects/{projectId}/audit": { allowed: admins, request: (c) => at(`/v1/projects/${c.projectId}/audit`) },
  "GET /v1/audit": { allowed: platformOnly, request: () => at("/v1/audit") },
  // Event feed and webhooks (events.test.ts and webhooks.test.ts cover the behaviour).
  "GET /v1/projects/{projectId}/events": { allowed: everyone, request: (c) => at(`/v1/projects/${c.projectId}/events`) },
  // An invalid cursor answers 400 once access is granted, so the stream does not stay open.
  "GET /v1/projects/{projectId}/events/stream": {
    allowed: everyone,
    request: (c) => at(`/v1/projects/${c.projectId}/events/stream?after=not-a-cursor`)
  },
  "POST /v1/projects/{projectId}/webhooks": {
    allowed: admins,
    request: (c) => at(`/v1/projects/${c.projectId}/webhooks`, { url: "https://example.com/hook" })
  },
  "GET /v1/projects/{projectId}/webhooks": { allowed: admins, request: (c) => at(`/v1/projects/${c.projectId}/webhooks`) },
  "GET /v1/projects/{projectId}/webhooks/{webhookId}": {
    allowed: admins,
    request: (c) => at(`/v1/projects/${c.projectId}/webhooks/${missingUser}`)
  },
  "PATCH /v1/projects/{projectId}/webhooks/{webhookId}": {
    allowed: admins,
    request: (c) => at(`/v1/projects/${c.projectId}/webhooks/${missingUser}`, { enabled: false })
  },
  "DELETE /v1/projects/{projectId}/webhooks/{webhookId}": {
    allowed: admins,
    request: (c) => at(`/v1/projects/${c.projectId}/webhooks/${missingUser}`)
  },
  "POST /v1/projects/{projectId}/webhooks/{webhookId}/rotate-secret": {
    allowed: admins,
    request: (c) => at(`/v1/projects/${c.projectId}/webhooks/${missingUser}/rotate-secret`)
  },
  "GET /v1/projects/{projectId}/webhooks/{webhookId}/deliveries": {
    allowed: admins,
    request: (c) => at(`/v1/projects/${c.projectId}/webhooks/${missingUser}/deliveries`)
  },
  "POST /v1/projects/{projectId}/webhooks/{webhookId}/deliveries/{deliveryId}/redeliver": {
    allowed: admins,
    request: (c) => at(`/v1/projects/${c.projectId}/webhooks/${missingUser}/deliveries/${missingUser}/redeliver`)
  },
  // Identity (test/integration/identity.test.ts covers the flows; here only who may call).
  "POST /v1/auth/login": { allowed: "public", request: () => at("/v1/auth/login", {}) },
  "POST /v1/auth/refresh": { allowed: "public", request: () => at("/v1/auth/refresh", {}) },
  "POST /v1/auth/logout": { allowed: "public", request: () => at("/v1/auth/logout", { refresh_token: "fmr_x" }) },
  "GET /v1/me": { allowed: everyone, request: () => at("/v1/me") },
  "POST /v1/users": {
    allowed: platformOnly,
    request: () =>
      at("/v1/users", {
        email: `m-${Math.random().toString(36).slice(2, 10)}@example.com`,
        password: "a long enough password",
        name: "m"
      })
  },
  "GET /v1/users": { allowed: platformOnly, request: () => at("/v1/users") },
  "POST /v1/projects/{projectId}/members": {
    allowed: admins,
    request: (c) => at(`/v1/projects/${c.projectId}/members`, { user_id: missingUser, role: "viewer" })
  },
  "GET /v1/projects/{projectId}/members": { allowed: admins, request: (c) => at(`/v1/projects/${c.projectId}/members`) },
  "GET /v1/projects/{projectId}/members/{userId}": {
    allowed: admins,
    request: (c) => at(`/v1/projects/${c.projectId}/members/${missingUser}`)
  },
  "PATCH /v1/projects/{projectId}/members/{userId}": {
    allowed: admins,
    request: (c) => at(`/v1/projects/${c.projectId}/members/${missingUser}`, { role: "viewer" })
  },
  "DELETE /v1/projects/{projectId}/members/{userId}": {
    allowed: admins,
    request: (c) => at(`/v1/projects/${c.projectId}/members/${missingUser}`)
  }
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null
const methods = ["get", "post", "put", "patch", "delete"]

layer(TestApp(), { excludeTestServices: true })("policy matrix: every endpoint × every role", (it) => {
  it.effect("the table names exactly the operations of the OpenAPI document", () =>
    Effect.gen(function*() {
      const spec = yield* raw("GET", "/openapi.json")
      const paths = isRecord(spec.body) && isRecord(spec.body.paths) ? spec.body.paths : {}
      const operations = Object.entries(paths).flatMap(([path, item]) =>
        isRecord(item) ? Object.keys(item).filter((m) => methods.includes(m)).map((m) => `${m.toUpperCase()} ${path}`) : []
      )
      assert.isAbove(operations.length, 20)
      assert.deepStrictEqual([...operations].sort(), Object.keys(cases).sort())
    }))

  it.effect("each caller is allowed or refused (403) exactly as the table says", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("matrix")
      const admin = yield* clientFor(project.tokens.admin)
      yield* admin.queues.create({ params: { projectId: project.projectId }, payload: { name: queueName("q") } })
      const freshJob = Effect.map(
        admin.jobs.enqueue({ params: { projectId: project.projectId }, payload: { queue: queueName("q"), kind: "matrix", payload: {} } }),
        (job) => job.id
      ).pipe(Effect.orDie)
      const freshKey = Effect.map(
        admin.apiKeys.create({ params: { projectId: project.projectId }, payload: { name: "spare", role: "viewer" } }),
        (key) => key.id
      ).pipe(Effect.orDie)
      const worker = yield* admin.workers.register({ params: { projectId: project.projectId }, payload: { name: "w", kinds: ["matrix"] } })
      const context: Context = {
        projectId: project.projectId,
        freshJob,
        freshKey,
        jobId: yield* freshJob,
        workerId: worker.id
      }
      const tokenOf = (caller: Caller) => caller === "platform_admin" ? adminToken : project.tokens[caller]
      const failures: Array<string> = []
      for (const [operation, spec] of Object.entries(cases)) {
        const [method = "GET"] = operation.split(" ")
        for (const caller of callers) {
          const request = yield* spec.request(context)
          const response = yield* raw(method, request.path, {
            token: tokenOf(caller),
            ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) })
          })
          const allowed = spec.allowed === "public" || spec.allowed.includes(caller)
          const ok = allowed ? response.status !== 401 && response.status !== 403 && response.status < 500 : response.status === 403
          if (!ok) failures.push(`${operation} as ${caller}: ${response.status} ${response.text.slice(0, 120)}`)
        }
      }
      assert.deepStrictEqual(failures, [])
    }))

  it.effect("users get exactly the grants of their membership role (owner as admin), never platform operations", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("matrix users")
      const platform = yield* clientFor(adminToken)
      const projectId = project.projectId
      yield* platform.queues.create({ params: { projectId }, payload: { name: queueName("q") } })
      const freshJob = Effect.map(
        platform.jobs.enqueue({ params: { projectId }, payload: { queue: queueName("q"), kind: "matrix", payload: {} } }),
        (job) => job.id
      ).pipe(Effect.orDie)
      const freshKey = Effect.map(
        platform.apiKeys.create({ params: { projectId }, payload: { name: "spare", role: "viewer" } }),
        (key) => key.id
      ).pipe(Effect.orDie)
      const worker = yield* platform.workers.register({ params: { projectId }, payload: { name: "w", kinds: ["matrix"] } })
      const context: Context = { projectId, freshJob, freshKey, jobId: yield* freshJob, workerId: worker.id }
      const memberRoles = ["owner", ...projectRoles] as const
      const tokens: Record<string, string> = {}
      for (const role of memberRoles) {
        const email = `matrix-${role}@example.com`
        const password = "a long enough password"
        const user = yield* platform.users.create({ payload: { email, password, name: role } })
        yield* platform.members.add({ params: { projectId }, payload: { user_id: user.id, role } })
        tokens[role] = (yield* platform.auth.login({ payload: { email, password } })).access_token
      }
      const failures: Array<string> = []
      for (const [operation, spec] of Object.entries(cases)) {
        const [method = "GET"] = operation.split(" ")
        for (const role of memberRoles) {
          const request = yield* spec.request(context)
          const response = yield* raw(method, request.path, {
            token: tokens[role] ?? "",
            ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) })
          })
          const asKeyRole: Caller = role === "owner" ? "admin" : role
          const allowed = spec.allowed === "public" || spec.allowed.includes(asKeyRole)
          const ok = allowed ? response.status !== 401 && response.status !== 403 && response.status < 500 : response.status === 403
          if (!ok) failures.push(`${operation} as user ${role}: ${response.status} ${response.text.slice(0, 120)}`)
        }
      }
      assert.deepStrictEqual(failures, [])
    }))
})
