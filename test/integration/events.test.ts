import { assert, layer } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Option, Redacted, Schema, Scope } from "effect"
import { AppConfig } from "../../src/Config/AppConfig.ts"
import { JobId, type ProjectId } from "../../src/Domain/Ids.ts"
import { FeedEvent } from "../../src/Events/Api.ts"
import { assertEnvelope, createQueue, jobRequest, setupProject } from "../support/fixtures.ts"
import { type SseMessage, readSse, sseEvents } from "../support/sse.ts"
import { makeApp } from "../../src/Server.ts"
import { clientFor, raw, TestApp, testConfig } from "../support/TestApp.ts"
import { waitFor } from "../support/waitFor.ts"

const decodeEvent = Schema.decodeUnknownSync(Schema.fromJsonString(Schema.toCodecJson(FeedEvent)))

/** A project with a queue whose jobs never run (no handler), and a way to enqueue `n` of them. */
const setup = (name: string) =>
  Effect.gen(function*() {
    const project = yield* setupProject(name)
    yield* createQueue(project.projectId, "feed")
    const producer = yield* clientFor(project.tokens.producer)
    const enqueue = (n: number) =>
      Effect.map(
        producer.jobs.enqueueBatch({
          params: { projectId: project.projectId },
          payload: { jobs: Array.from({ length: n }, () => jobRequest("feed")) }
        }),
        (created) => created.jobs.map((job) => job.id)
      )
    return { ...project, enqueue }
  })

/** Every event of the feed, by pages of `limit`. */
const wholeFeed = (token: string, projectId: ProjectId, limit: number, type?: string) =>
  Effect.gen(function*() {
    const client = yield* clientFor(token)
    const items: Array<typeof FeedEvent.Type> = []
    let cursor: string | undefined
    let pages = 0
    while (true) {
      const page = yield* client.events.list({
        params: { projectId },
        query: { limit, ...(cursor === undefined ? {} : { cursor }), ...(type === undefined ? {} : { type }) }
      })
      pages++
      items.push(...page.items)
      cursor = page.next_cursor
      if (!page.has_more) return { items, pages, cursor }
    }
  })

/**
 * Waits until the feed shows `n` events. The feed holds back events committed after the oldest
 * transaction still running anywhere on the server (the other test files' databases included),
 * so a write the test just made may take a moment to appear.
 */
const feedShows = (token: string, projectId: ProjectId, n: number) =>
  waitFor(wholeFeed(token, projectId, 200), (feed) => feed.items.length >= n, { label: `the feed shows ${n} events` })

const streamPath = (projectId: string, query = "") => `/v1/projects/${projectId}/events/stream${query}`
const hasEvents = (n: number) => (messages: ReadonlyArray<SseMessage>) => messages.filter((m) => m.data !== undefined).length >= n

layer(TestApp({ eventsPollIntervalMs: 50, eventsKeepAliveMs: 300 }), { timeout: 60_000, excludeTestServices: true })(
  "event feed",
  (it) => {
    it.effect("pagination walks the feed in order, with a cursor that resumes where it stopped; type filters", () =>
      Effect.gen(function*() {
        const { projectId, tokens, enqueue } = yield* setup("feed pages")
        const first = yield* enqueue(5)
        yield* feedShows(tokens.viewer, projectId, 5)
        const all = yield* wholeFeed(tokens.viewer, projectId, 2)
        assert.strictEqual(all.pages, 3)
        assert.deepStrictEqual(all.items.map((e) => e.job_id), first)
        assert.isTrue(all.items.every((e) => e.type === "enqueued" && e.queue === "feed" && e.to_state === "available"))
        assert.strictEqual(new Set(all.items.map((e) => e.id)).size, 5)

        // The last cursor is where new events appear.
        const producer = yield* clientFor(tokens.producer)
        const [cancelledId = "", keptId = ""] = yield* enqueue(2)
        yield* producer.jobs.cancel({ params: { projectId, jobId: JobId.make(cancelledId) } })
        yield* feedShows(tokens.viewer, projectId, 8)
        const client = yield* clientFor(tokens.viewer)
        const next = yield* client.events.list({ params: { projectId }, query: { cursor: all.cursor } })
        assert.deepStrictEqual(next.items.map((e) => `${e.type} ${e.job_id}`), [
          `enqueued ${cancelledId}`,
          `enqueued ${keptId}`,
          `cancelled ${cancelledId}`
        ])
        assert.isFalse(next.has_more)

        const cancelled = yield* wholeFeed(tokens.viewer, projectId, 3, "cancelled,retried")
        assert.deepStrictEqual(cancelled.items.map((e) => e.job_id), [cancelledId])

        // Another project's events never show.
        const other = yield* setup("feed other")
        yield* other.enqueue(1)
        const again = yield* wholeFeed(tokens.viewer, projectId, 200)
        assert.strictEqual(again.items.length, 8)
      }))

    it.effect("bad cursors and type filters are 400; another tenant's feed is 404", () =>
      Effect.gen(function*() {
        const { projectId, tokens } = yield* setup("feed errors")
        assertEnvelope(yield* raw("GET", `/v1/projects/${projectId}/events?cursor=nope`, { token: tokens.viewer }), 400, "ValidationError")
        assertEnvelope(yield* raw("GET", `/v1/projects/${projectId}/events?type=a%20b`, { token: tokens.viewer }), 400, "ValidationError")
        const header = yield* readSse(streamPath(projectId), { token: tokens.viewer, headers: { "last-event-id": "garbage" } })
        assert.strictEqual(header.status, 400)
        const other = yield* setupProject("feed stranger")
        assertEnvelope(yield* raw("GET", `/v1/projects/${projectId}/events`, { token: other.tokens.admin }), 404, "NotFound")
      }))

    it.effect("SSE: id is the cursor, event the type; a dropped connection resumes from Last-Event-ID with no loss or duplicates", () =>
      Effect.gen(function*() {
        const { projectId, tokens, enqueue } = yield* setup("feed sse")
        const before = yield* enqueue(3)
        const first = yield* readSse(streamPath(projectId), { token: tokens.viewer, until: hasEvents(3) })
        assert.strictEqual(first.status, 200)
        assert.match(first.headers.get("content-type") ?? "", /^text\/event-stream/)
        assert.strictEqual(first.headers.get("cache-control"), "no-store")
        const firstEvents = sseEvents(first)
        assert.deepStrictEqual(firstEvents.map((m) => decodeEvent(m.data ?? "").job_id), before)
        for (const message of firstEvents) {
          const event = decodeEvent(message.data ?? "")
          assert.strictEqual(message.id, event.id)
          assert.strictEqual(message.event, event.type)
        }

        // Events happen while the client is away.
        const during = yield* enqueue(4)
        const lastId = firstEvents.at(-1)?.id ?? ""
        const resumed = yield* readSse(streamPath(projectId), {
          token: tokens.viewer,
          headers: { "last-event-id": lastId },
          until: hasEvents(4)
        })
        // And after it is back, live.
        const liveRead = readSse(streamPath(projectId), { token: tokens.viewer, headers: { "last-event-id": lastId }, until: hasEvents(6) })
        const [live] = yield* Effect.all([liveRead, Effect.andThen(Effect.sleep("300 millis"), enqueue(2))], { concurrency: 2 })
        const resumedIds = sseEvents(resumed).map((m) => decodeEvent(m.data ?? "").job_id)
        assert.deepStrictEqual(resumedIds, during)
        const liveIds = sseEvents(live).map((m) => decodeEvent(m.data ?? "").job_id)
        assert.strictEqual(liveIds.length, 6)
        assert.deepStrictEqual(liveIds.slice(0, 4), during)

        // ?after= works the same, and the whole feed equals what the streams delivered, once each.
        const viaQuery = yield* readSse(streamPath(projectId, `?after=${encodeURIComponent(lastId)}`), {
          token: tokens.viewer,
          until: hasEvents(6)
        })
        assert.deepStrictEqual(sseEvents(viaQuery).map((m) => m.id), sseEvents(live).map((m) => m.id))
        const feed = yield* wholeFeed(tokens.viewer, projectId, 200)
        assert.deepStrictEqual(feed.items.map((e) => e.id), [...firstEvents, ...sseEvents(live)].map((m) => m.id))
      }))

    it.effect("SSE: an idle stream sends keep-alive comments; a type filter applies", () =>
      Effect.gen(function*() {
        const { projectId, tokens, enqueue } = yield* setup("feed keepalive")
        const [, cancelledId = ""] = yield* enqueue(2)
        const producer = yield* clientFor(tokens.producer)
        yield* producer.jobs.cancel({ params: { projectId, jobId: JobId.make(cancelledId) } })
        const read = yield* readSse(streamPath(projectId, "?type=cancelled"), {
          token: tokens.viewer,
          until: (messages) => messages.filter((m) => m.comment === "keep-alive").length >= 2
        })
        const events = sseEvents(read)
        assert.deepStrictEqual(events.map((m) => `${m.event} ${decodeEvent(m.data ?? "").job_id}`), [`cancelled ${cancelledId}`])
        assert.isAtLeast(read.messages.filter((m) => m.comment === "keep-alive").length, 2)
      }))
  }
)

layer(TestApp({ eventsPollIntervalMs: 50 }), { timeout: 60_000, excludeTestServices: true })("event feed shutdown", (it) => {
  it.effect("a stream ends as soon as its instance shuts down; another instance resumes it from Last-Event-ID with nothing lost", () =>
    Effect.gen(function*() {
      const { projectId, tokens, enqueue } = yield* setup("feed shutdown")
      // A second instance on the same database; closing its scope is its shutdown.
      const url = Option.getOrThrow((yield* AppConfig).databaseUrl)
      const scope = yield* Scope.make()
      const memoMap = yield* Layer.makeMemoMap
      const second = yield* Layer.buildWithMemoMap(
        makeApp(testConfig(Redacted.value(url), { eventsPollIntervalMs: 50, eventsKeepAliveMs: 60_000, instanceId: "second" })),
        memoMap,
        scope
      )
      const before = yield* enqueue(3)
      let opened = false
      const reader = yield* readSse(streamPath(projectId), {
        token: tokens.viewer,
        timeoutMs: 30_000,
        onOpen: () => {
          opened = true
        }
      }).pipe(Effect.provideContext(second), Effect.forkChild)
      while (!opened) yield* Effect.sleep("20 millis")
      yield* Effect.sleep("500 millis")
      const started = Date.now()
      yield* Scope.close(scope, Exit.void)
      const tookMs = Date.now() - started
      const read = yield* Fiber.join(reader)
      assert.isBelow(tookMs, 5000, `shutdown took ${tookMs} ms`)
      assert.isTrue(read.ended, "the server ended the stream")
      const seen = sseEvents(read)
      assert.deepStrictEqual(seen.map((m) => decodeEvent(m.data ?? "").job_id), before)

      const during = yield* enqueue(2)
      const resumed = yield* readSse(streamPath(projectId), {
        token: tokens.viewer,
        headers: { "last-event-id": seen.at(-1)?.id ?? "" },
        until: hasEvents(2)
      })
      assert.deepStrictEqual(sseEvents(resumed).map((m) => decodeEvent(m.data ?? "").job_id), during)
    }))
})
