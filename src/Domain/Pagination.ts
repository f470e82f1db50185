import { Effect, Schema } from "effect"
import { ValidationError } from "./Errors.ts"

export const defaultLimit = 50

/** Query fields shared by every list endpoint. */
export const PageQuery = {
  limit: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 200 }))),
  cursor: Schema.optional(Schema.String.check(Schema.isMaxLength(200)))
}

/** What every list endpoint accepts, as the services see it. */
export interface PageOptions {
  readonly cursor?: string | undefined
  readonly limit?: number | undefined
}

/** What every list service returns. */
export interface PageOf<A> {
  readonly items: ReadonlyArray<A>
  readonly next_cursor: string | null
}

/** One page of results; `next_cursor` is null on the last page. */
export const Page = <S extends Schema.Top>(item: S) =>
  Schema.Struct({
    items: Schema.Array(item),
    next_cursor: Schema.NullOr(Schema.String)
  })

const cursorPrefix = "v1:"
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** Cursors are opaque to clients: base64url of the last id seen, versioned. */
export const encodeCursor = (id: string): string => Buffer.from(cursorPrefix + id).toString("base64url")

const badCursor = () =>
  new ValidationError({
    message: "invalid cursor",
    issues: [{ path: ["query", "cursor"], message: "not a cursor returned by this API" }]
  })

/** Decodes a cursor whose key must match `key` (a UUID unless said otherwise). */
export const decodeCursor = (
  cursor: string | undefined,
  key: RegExp = uuid
): Effect.Effect<string | undefined, ValidationError> => {
  if (cursor === undefined) return Effect.succeed(undefined)
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) return Effect.fail(badCursor())
  const text = Buffer.from(cursor, "base64url").toString("utf8")
  if (!text.startsWith(cursorPrefix)) return Effect.fail(badCursor())
  const id = text.slice(cursorPrefix.length)
  return key.test(id) ? Effect.succeed(id) : Effect.fail(badCursor())
}

/** Keys of sequence-numbered rows (event ids). */
export const sequenceKey = /^\d{1,18}$/

/** Rows are fetched with `limit + 1` so the presence of a next page is known without a count. */
export const toPage = <A>(rows: ReadonlyArray<A>, limit: number, idOf: (a: A) => string) => {
  const items = rows.slice(0, limit)
  const last = items.at(-1)
  return {
    items,
    next_cursor: rows.length > limit && last !== undefined ? encodeCursor(idOf(last)) : null
  }
}
