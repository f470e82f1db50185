import { assert, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import type { ProjectId } from "../../src/Domain/Ids.ts"
import { assertEnvelope, createQueue, type ErrorEnvelope, setupProject, withoutRequestId } from "../support/fixtures.ts"
import { raw, TestApp } from "../support/TestApp.ts"

// The batch endpoint reads its own body (ADR 0010): these tests hold its answers to
// what the framework's decoding gives the single-job endpoint, job by job, and to the
// answers the framework gave the batch endpoint itself before.

const valid = `{"queue":"default","kind":"k","payload":{"n":1}}`

/** Bodies of one job that the schema refuses, as JSON text (some have no JSON.stringify form). */
const invalidJobs: ReadonlyArray<readonly [string, string]> = [
  ["an unknown key", `{"queue":"default","kind":"k","payload":{},"extra":1}`],
  ["a __proto__ key", `{"__proto__":{"x":1},"queue":"default","kind":"k","payload":{}}`],
  ["an upper-case queue", `{"queue":"Default","kind":"k","payload":{}}`],
  ["a reserved queue", `{"queue":"_webhooks","kind":"k","payload":{}}`],
  ["a number for a queue", `{"queue":7,"kind":"k","payload":{}}`],
  ["no queue", `{"kind":"k","payload":{}}`],
  ["a kind with a space", `{"queue":"default","kind":"a b","payload":{}}`],
  ["an empty kind", `{"queue":"default","kind":"","payload":{}}`],
  ["an unknown priority", `{"queue":"default","kind":"k","payload":{},"priority":"urgent"}`],
  ["a null priority", `{"queue":"default","kind":"k","payload":{},"priority":null}`],
  ["no payload", `{"queue":"default","kind":"k"}`],
  ["a NUL in the payload", `{"queue":"default","kind":"k","payload":{"a":"x\\u0000y"}}`],
  ["a NUL in a payload key", `{"queue":"default","kind":"k","payload":{"a\\u0000":1}}`],
  ["a lone surrogate in the payload", `{"queue":"default","kind":"k","payload":["\\ud800"]}`],
  ["a number beyond double range", `{"queue":"default","kind":"k","payload":{"n":1e400}}`],
  ["a payload nested 40 deep", `{"queue":"default","kind":"k","payload":${"[".repeat(40)}${"]".repeat(40)}}`],
  ["a run_at that is no date", `{"queue":"default","kind":"k","payload":{},"run_at":"soon"}`],
  ["a string for a job", `"job"`],
  ["null for a job", `null`],
  ["an array for a job", `[]`]
]

const decodeItems = Schema.decodeUnknownSync(Schema.Struct({ items: Schema.Array(Schema.Unknown) }))

const post = (token: string, projectId: ProjectId, path: "" | "/batch", body: string, contentType?: string) =>
  raw("POST", `/v1/projects/${projectId}/jobs${path}`, {
    token,
    body,
    ...(contentType === undefined ? {} : { headers: { "content-type": contentType } })
  })

const batchIssue = (index: number) => (envelope: ErrorEnvelope): ErrorEnvelope => ({
  ...envelope,
  issues: (envelope.issues ?? []).map((issue) => ({ ...issue, path: ["payload", "jobs", index, ...issue.path.slice(1)] }))
})

layer(TestApp(), { timeout: 120_000, excludeTestServices: true })("batch bodies", (it) => {
  it.effect("an invalid job in a batch gets the single-job endpoint's error, at its index", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("batch bodies")
      yield* createQueue(projectId, "default")
      for (const [name, job] of invalidJobs) {
        const single = assertEnvelope(yield* post(tokens.producer, projectId, "", job), 400, "ValidationError")
        const batch = assertEnvelope(yield* post(tokens.producer, projectId, "/batch", `{"jobs":[${valid},${job}]}`), 400, "ValidationError")
        assert.deepStrictEqual(withoutRequestId(batch), withoutRequestId(batchIssue(1)(single)), name)
        assert.isAbove(batch.issues?.length ?? 0, 0, name)
      }
      const listed = yield* raw("GET", `/v1/projects/${projectId}/jobs`, { token: tokens.viewer })
      assert.deepStrictEqual(listed.body, { items: [], next_cursor: null }, "nothing was written")
    }))

  it.effect("a batch body of the wrong shape, type or syntax gets the framework's answer", () =>
    Effect.gen(function*() {
      const { projectId, tokens } = yield* setupProject("batch shapes")
      yield* createQueue(projectId, "default")
      const atPayload = ["payload"]
      const atJobs = ["payload", "jobs"]
      const cases: ReadonlyArray<readonly [string, ReadonlyArray<string>, string]> = [
        ["", atPayload, "Expected EnqueueBatch"],
        ["{", atPayload, "Expected a valid JSON body"],
        ["[]", atPayload, "Expected EnqueueBatch"],
        ["null", atPayload, "Expected EnqueueBatch"],
        ["{}", atJobs, "Missing key"],
        [`{"jobs":[]}`, atJobs, "Expected a value with a length of at least 1"],
        [`{"jobs":{}}`, atJobs, "Expected array"],
        [`{"jobs":[${valid}],"more":1}`, ["payload", "more"], "Expected no excess property"],
        [`{"jobs":[${Array.from({ length: 1001 }, () => valid).join(",")}]}`, atJobs, "Expected a value with a length of at most 1000"]
      ]
      for (const [body, path, message] of cases) {
        const envelope = assertEnvelope(yield* post(tokens.producer, projectId, "/batch", body), 400, "ValidationError")
        assert.strictEqual(envelope.message, "invalid request payload")
        assert.deepStrictEqual(envelope.issues, [{ path, message }], body.slice(0, 40))
      }
      for (const contentType of ["text/plain", "application/xml; charset=utf-8"]) {
        assertEnvelope(yield* post(tokens.producer, projectId, "/batch", `{"jobs":[${valid}]}`, contentType), 415, "UnsupportedMediaType")
      }
      // Parameters and case on the JSON media type are fine.
      const created = yield* post(tokens.producer, projectId, "/batch", `{"jobs":[${valid}]}`, "Application/JSON; charset=utf-8")
      assert.strictEqual(created.status, 201, created.text)
      const listed = yield* raw("GET", `/v1/projects/${projectId}/jobs`, { token: tokens.viewer })
      assert.lengthOf(decodeItems(listed.body).items, 1, "only the last batch was written")
    }))
})
