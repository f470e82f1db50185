import { Schema } from "effect"

/** A string PostgreSQL text and `jsonb` accept: no NUL, no unpaired surrogate. */
export const storableText = (text: string): true | string =>
  !text.includes("\u0000") && text.isWellFormed() ? true : "must not contain NUL characters or unpaired surrogates"

/** Deeper JSON is refused: nothing legitimate nests this far, and deep nesting is a cheap way to burn CPU. */
export const maxJsonDepth = 32

const storable = (value: unknown, depth = 0): boolean => {
  if (typeof value === "string") return storableText(value) === true
  if (depth >= maxJsonDepth && typeof value === "object" && value !== null) return false
  if (Array.isArray(value)) return value.every((item) => storable(item, depth + 1))
  if (typeof value === "object" && value !== null) {
    return Object.entries(value).every(([key, item]) => storable(key) && storable(item, depth + 1))
  }
  return true
}

/**
 * JSON that PostgreSQL `jsonb` can store: no NUL characters and no lone
 * surrogates in any string or key, nested at most `maxJsonDepth` levels.
 * Anything else is a 400, never a 500.
 */
export const StorableJson = Schema.Json.check(
  Schema.makeFilter((value) =>
    storable(value) ? undefined : `must not contain NUL characters or unpaired surrogates, or nest deeper than ${maxJsonDepth} levels`
  )
)

/** A 1–200 character name or key that PostgreSQL `text` can store. */
export const ShortText = Schema.String.check(
  Schema.isMinLength(1),
  Schema.isMaxLength(200),
  Schema.makeFilter((text: string) => storableText(text))
)
