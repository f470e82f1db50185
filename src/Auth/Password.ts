import { hash, verify } from "@node-rs/argon2"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { traced } from "../Observability/Tracing.ts"

/**
 * Password hashing: Argon2id with the OWASP parameters (19 MiB, 2 passes,
 * 1 lane) and the server-side pepper passed as Argon2's secret input, so a
 * stolen database alone is not enough to test guesses offline.
 */
export const argon2Options = {
  // Algorithm.Argon2id; the enum is `const` and cannot be imported under type stripping.
  algorithm: 2,
  memoryCost: 19_456,
  timeCost: 2,
  parallelism: 1
} as const

export const minPasswordLength = 12
/** Longer input is rejected before hashing, so a huge password cannot buy CPU time. */
export const maxPasswordLength = 1024

export const hashPassword = (password: string, pepper: Uint8Array): Effect.Effect<string> =>
  Effect.promise(() => hash(password, { ...argon2Options, secret: pepper })).pipe(
    traced("Password.hash")
  )

/** `false` for a wrong password and for a hash that cannot be parsed; never fails. */
export const verifyPassword = (stored: string, password: string, pepper: Uint8Array): Effect.Effect<boolean> =>
  Effect.tryPromise(() => verify(stored, password, { secret: pepper })).pipe(
    Effect.orElseSucceed(() => false),
    traced("Password.verify")
  )

/**
 * A hash of a random password, computed once at startup: verified against
 * when the email is unknown, so an unknown email costs the same Argon2 work
 * as a wrong password and the response time does not reveal which it was.
 */
export const makeDummyHash = (pepper: Uint8Array): Effect.Effect<string> =>
  hashPassword(randomBytes(32).toString("base64url"), pepper)
