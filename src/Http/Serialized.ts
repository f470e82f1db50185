import { HttpServerResponse } from "effect/http"

/**
 * A success body written with `JSON.stringify`, skipping the endpoint's schema encoder.
 *
 * Only for values whose type form already is their JSON form under the endpoint's
 * success schema: plain data whose only non-JSON leaves are `Date`s (their `toJSON`
 * writes the ISO string the schema's JSON codec writes), built as object literals
 * with exactly the schema's keys. The jobs endpoints qualify (JobsRepo builds every
 * job field by field). The schema encoder walks every field through the Effect
 * runtime: about 27 µs per job, a third of a batch enqueue's CPU.
 * test/integration/serialized.test.ts holds both encodings equal.
 */
export const serialized = (status: number) => <A>(value: A): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.jsonUnsafe(value, { status })
