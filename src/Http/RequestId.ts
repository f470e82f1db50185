import { Context } from "effect"
import { randomUUID } from "node:crypto"

/** The id of the request being served; "" outside a request. */
export const CurrentRequestId = Context.Reference<string>("foreman/CurrentRequestId", {
  defaultValue: () => ""
})

const wellFormed = /^[A-Za-z0-9._:-]{1,128}$/

/** Accepts a well-formed incoming `x-request-id`, otherwise mints a new one. */
export const resolveRequestId = (incoming: string | undefined): string =>
  incoming !== undefined && wellFormed.test(incoming) ? incoming : randomUUID()
