import { HttpServerResponse } from "effect/http"

/**
 * A success body written with `JSON.stringify`, skipping the endpoint's schema encoder.
 *
 * Only for values that already are the JSON form of the endpoint's success schema:
 * plain data, dates already written as ISO strings (see `isoString`), built as object
 * literals with exactly the schema's keys. The jobs endpoints qualify (src/Jobs/Http.ts
 * builds every job's JSON field by field). The schema encoder walks every field through
 * the Effect runtime: about 27 µs per job, a third of a batch enqueue's CPU.
 * test/integration/serialized.test.ts holds both encodings equal.
 */
export const serialized = (status: number) => <A>(value: A): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.jsonUnsafe(value, { status })

let lastTime = Number.NaN
let lastText = ""

/**
 * `date.toISOString()`, what the schema's JSON codec writes for a `Schema.Date`.
 *
 * Bodies carry strings rather than `Date`s because one object with a `toJSON` method
 * puts `JSON.stringify` on V8's slow path for the whole value: a batch response of 100
 * jobs took 250 µs to stringify with their dates and 56 µs with strings. The last date
 * written is remembered, since the jobs of a batch share their timestamps (the
 * statement's `now()`).
 */
export const isoString = (date: Date): string => {
  const time = date.getTime()
  if (time !== lastTime) {
    lastText = date.toISOString()
    lastTime = time
  }
  return lastText
}

export const isoStringOrNull = (date: Date | null): string | null => date === null ? null : isoString(date)
