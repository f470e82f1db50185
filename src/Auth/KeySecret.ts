import { createHash, randomBytes, timingSafeEqual } from "node:crypto"

/**
 * API keys look like `fmn_<prefix>_<secret>`: the 12-character prefix is public
 * and indexes the row, the 43-character secret carries 256 bits of entropy.
 * With that much entropy a fast hash (SHA-256) is safe; a slow password hash
 * would only add latency to every request.
 */
const format = /^fmn_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/
const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

const randomPrefix = () => {
  const bytes = randomBytes(12)
  let out = ""
  for (const byte of bytes) out += alphabet[byte % alphabet.length]
  return out
}

export interface GeneratedKey {
  readonly token: string
  readonly prefix: string
  readonly hash: Uint8Array<ArrayBuffer>
}

export const hashToken = (token: string): Uint8Array<ArrayBuffer> =>
  new Uint8Array(createHash("sha256").update(token, "utf8").digest())

/**
 * The lookup prefix of a presented token. Tokens not minted here (an operator's
 * own `FOREMAN_ADMIN_API_KEY`) are indexed by a digest-derived prefix instead.
 */
export const prefixOf = (token: string): string => {
  const match = format.exec(token)
  return match?.[1] ?? `x${Buffer.from(hashToken(token)).toString("hex").slice(0, 11)}`
}

export const generateKey = (): GeneratedKey => {
  const prefix = randomPrefix()
  const token = `fmn_${prefix}_${randomBytes(32).toString("base64url")}`
  return { token, prefix, hash: hashToken(token) }
}

export const fromOperatorToken = (token: string): GeneratedKey => ({
  token,
  prefix: prefixOf(token),
  hash: hashToken(token)
})

export const matches = (token: string, storedHash: Uint8Array): boolean => {
  const presented = hashToken(token)
  return presented.length === storedHash.length && timingSafeEqual(presented, storedHash)
}
