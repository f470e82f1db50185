import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { newId } from "../../src/Domain/Ids.ts"
import { decodeCursor, encodeCursor, toPage } from "../../src/Domain/Pagination.ts"

const base64url = (text: string) => Buffer.from(text).toString("base64url")

describe("cursor encoding", () => {
  it.effect("decode(encode(id)) is the id", () =>
    Effect.gen(function*() {
      for (let i = 0; i < 20; i++) {
        const id = newId()
        const cursor = encodeCursor(id)
        assert.match(cursor, /^[A-Za-z0-9_-]+$/, "cursors are URL-safe without escaping")
        assert.notInclude(cursor, id, "cursors are opaque")
        assert.strictEqual(yield* decodeCursor(cursor), id)
      }
    }))

  it.effect("no cursor decodes to undefined", () =>
    Effect.gen(function*() {
      assert.isUndefined(yield* decodeCursor(undefined))
    }))

  it.effect("garbage and tampered cursors fail with a ValidationError naming query.cursor", () =>
    Effect.gen(function*() {
      const valid = encodeCursor(newId())
      const candidates = [
        "",
        "!!!",
        "not a cursor",
        "abc=",
        "abc",
        base64url(`v2:${newId()}`),
        base64url(newId()),
        base64url("v1:"),
        base64url("v1:not-a-uuid"),
        base64url(`v1:${newId().toUpperCase()}`),
        base64url(`v1:${newId()}; DROP TABLE jobs`),
        `${valid}AAAA`,
        `A${valid.slice(1)}`,
        valid.slice(0, -4)
      ]
      for (const cursor of candidates) {
        const error = yield* Effect.flip(decodeCursor(cursor))
        assert.strictEqual(error._tag, "ValidationError", `cursor ${JSON.stringify(cursor)}`)
        assert.deepStrictEqual(error.issues.map((issue) => issue.path), [["query", "cursor"]])
      }
    }))
})

describe("toPage", () => {
  const rows = (n: number) => Array.from({ length: n }, () => ({ id: newId() }))

  it.effect("a full page plus one row has the last item's cursor", () =>
    Effect.gen(function*() {
      const fetched = rows(4)
      const page = toPage(fetched, 3, (row) => row.id)
      assert.deepStrictEqual(page.items, fetched.slice(0, 3))
      assert.isNotNull(page.next_cursor)
      const after = yield* decodeCursor(page.next_cursor ?? undefined)
      assert.strictEqual(after, fetched[2]?.id)
    }))

  it("exactly `limit` rows is the last page", () => {
    const fetched = rows(3)
    const page = toPage(fetched, 3, (row) => row.id)
    assert.deepStrictEqual(page.items, fetched)
    assert.isNull(page.next_cursor)
  })

  it("fewer rows than the limit is the last page", () => {
    const page = toPage(rows(1), 3, (row) => row.id)
    assert.strictEqual(page.items.length, 1)
    assert.isNull(page.next_cursor)
  })

  it("no rows is an empty last page", () => {
    const page = toPage([], 3, (row: { readonly id: string }) => row.id)
    assert.deepStrictEqual(page.items, [])
    assert.isNull(page.next_cursor)
  })
})
