import { assert } from "@effect/vitest"
import { Effect, Schema } from "effect"
import type { ProjectId } from "../../src/Domain/Ids.ts"
import { QueueName } from "../../src/Domain/Ids.ts"
import type { ProjectRole } from "../../src/Domain/Role.ts"
import type { EnqueueJob } from "../../src/Jobs/Api.ts"
import { adminToken, clientFor, type RawResponse } from "./TestApp.ts"

/** Every project role, in the order the policy table lists them. */
export const projectRoles: ReadonlyArray<ProjectRole> = ["admin", "producer", "worker", "reviewer", "viewer"]

/** A syntactically valid id that names nothing in any test database. */
export const missingId = "01a20623-99f0-7045-96c5-2e9f574d7135"

export const queueName = (name: string): QueueName => QueueName.make(name)

/**
 * A minimal enqueue request for `queue`; `overrides` replace or add fields.
 * Its kind has no registered handler, so the engine never claims it and the
 * job stays in the state the API put it in.
 */
export const jobRequest = (queue: string, overrides: Partial<EnqueueJob> = {}): EnqueueJob => ({
  queue: queueName(queue),
  kind: "email.send",
  payload: { to: "someone@example.com" },
  ...overrides
})

export interface ProjectFixture {
  readonly projectId: ProjectId
  readonly name: string
  /** The secret of one freshly created key per role. */
  readonly tokens: Readonly<Record<ProjectRole, string>>
  /** The id of the key behind each token. */
  readonly keyIds: Readonly<Record<ProjectRole, string>>
}

/** Creates a project through the admin API, plus one API key per role, and returns their secrets. */
export const setupProject = (name = "fixture project") =>
  Effect.gen(function*() {
    const admin = yield* clientFor(adminToken)
    const project = yield* admin.projects.create({ payload: { name } })
    const key = (role: ProjectRole) =>
      admin.apiKeys.create({ params: { projectId: project.id }, payload: { name: `${role} key`, role } })
    const keys = yield* Effect.all({
      admin: key("admin"),
      producer: key("producer"),
      worker: key("worker"),
      reviewer: key("reviewer"),
      viewer: key("viewer")
    })
    return {
      projectId: project.id,
      name: project.name,
      tokens: {
        admin: keys.admin.secret,
        producer: keys.producer.secret,
        worker: keys.worker.secret,
        reviewer: keys.reviewer.secret,
        viewer: keys.viewer.secret
      },
      keyIds: {
        admin: keys.admin.id,
        producer: keys.producer.id,
        worker: keys.worker.id,
        reviewer: keys.reviewer.id,
        viewer: keys.viewer.id
      }
    } satisfies ProjectFixture
  })

/** Creates a queue with default settings through the admin API. */
export const createQueue = (projectId: ProjectId, name: string) =>
  Effect.gen(function*() {
    const admin = yield* clientFor(adminToken)
    return yield* admin.queues.create({ params: { projectId }, payload: { name: queueName(name) } })
  })

const Issue = Schema.Struct({
  path: Schema.Array(Schema.Union([Schema.String, Schema.Number])),
  message: Schema.String
})

/** The documented error envelope; `issues` only on validation errors. */
export const ErrorEnvelope = Schema.Struct({
  _tag: Schema.String,
  code: Schema.String,
  message: Schema.String,
  requestId: Schema.String,
  issues: Schema.optionalKey(Schema.Array(Issue))
})
export type ErrorEnvelope = typeof ErrorEnvelope.Type

const decodeEnvelope = Schema.decodeUnknownSync(ErrorEnvelope)

/**
 * Asserts a raw response is `status` with the error envelope for `tag`:
 * `code` equals `_tag`, `message` is non-empty, and `requestId` equals the
 * `x-request-id` response header. Returns the decoded envelope.
 */
export const assertEnvelope = (response: RawResponse, status: number, tag: string): ErrorEnvelope => {
  assert.strictEqual(response.status, status, `expected ${status} ${tag}, got ${response.status}: ${response.text}`)
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/, "error bodies are JSON")
  const envelope = decodeEnvelope(response.body)
  assert.strictEqual(envelope._tag, tag)
  assert.strictEqual(envelope.code, envelope._tag, "code equals _tag")
  assert.isAbove(envelope.message.length, 0, "message is not empty")
  const header = response.headers.get("x-request-id")
  assert.isString(header)
  assert.strictEqual(envelope.requestId, header, "requestId equals the x-request-id header")
  return envelope
}

/** Asserts a 400 ValidationError envelope with an issue at exactly `path`. */
export const assertValidationIssue = (response: RawResponse, path: ReadonlyArray<string | number>): ErrorEnvelope => {
  const envelope = assertEnvelope(response, 400, "ValidationError")
  const paths = (envelope.issues ?? []).map((issue) => issue.path)
  assert.isTrue(
    paths.some((p) => p.length === path.length && p.every((segment, i) => segment === path[i])),
    `expected an issue at ${JSON.stringify(path)}, got ${JSON.stringify(paths)}`
  )
  return envelope
}

/** The envelope without its per-request id: two 404s must be identical apart from it. */
export const withoutRequestId = (envelope: ErrorEnvelope) => {
  const { requestId: _requestId, ...rest } = envelope
  return rest
}

/** Decodes `{ id }` out of a raw success body. */
export const idOf = (response: RawResponse): string =>
  Schema.decodeUnknownSync(Schema.Struct({ id: Schema.String }))(response.body).id
