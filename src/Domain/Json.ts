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
 * A value as `JSON.parse` makes it that `StorableJson` accepts as it is, in one walk:
 * strings `storableText` accepts, finite numbers, booleans, null, arrays and plain
 * objects, nested at most `maxJsonDepth` levels. Stricter than the schema (it refuses
 * what `JSON.parse` never makes), never looser, so a refusal here means "ask the schema".
 */
export const isPlainStorableJson = (value: unknown, depth = 0): boolean => {
  switch (typeof value) {
    case "string":
      return storableText(value) === true
    case "number":
      return Number.isFinite(value)
    case "boolean":
      return true
    case "object": {
      if (value === null) return true
      if (depth >= maxJsonDepth) return false
      if (Array.isArray(value)) {
        for (const item of value) if (!isPlainStorableJson(item, depth + 1)) return false
        return true
      }
      if (Object.getPrototypeOf(value) !== Object.prototype) return false
      for (const key in value) {
        if (storableText(key) !== true || !isPlainStorableJson(Reflect.get(value, key), depth + 1)) return false
      }
      return true
    }
    default:
      return false
  }
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
