import { Context, Effect, Layer } from "effect"
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto"
import { IdentitySecrets } from "../Auth/Secrets.ts"

const version = "v1"

/**
 * Webhook signing secrets. The service must sign with them, so they cannot be
 * hashed; they are stored sealed with AES-256-GCM under a key derived (HKDF)
 * from the password pepper, with the subscription id as associated data so a
 * sealed secret cannot be moved to another subscription. A database dump alone
 * does not reveal them.
 */
export class WebhookSecrets extends Context.Service<WebhookSecrets, {
  /** A fresh `whsec_<base64>` secret (24 random bytes, as Standard Webhooks suggests). */
  readonly generate: () => string
  readonly seal: (secret: string, subscriptionId: string) => string
  /** `undefined` when the ciphertext does not open with this instance's key. */
  readonly open: (sealed: string, subscriptionId: string) => string | undefined
}>()("foreman/WebhookSecrets") {
  static readonly layer = Layer.effect(
    WebhookSecrets,
    Effect.gen(function*() {
      const identity = yield* IdentitySecrets
      const key = Buffer.from(hkdfSync("sha256", identity.pepper, "foreman", "webhook signing secrets v1", 32))

      const seal = (secret: string, subscriptionId: string) => {
        const iv = randomBytes(12)
        const cipher = createCipheriv("aes-256-gcm", key, iv)
        cipher.setAAD(Buffer.from(subscriptionId))
        const ciphertext = Buffer.concat([cipher.update(secret, "utf8"), cipher.final()])
        return `${version}:${Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString("base64")}`
      }

      const open = (sealed: string, subscriptionId: string) => {
        if (!sealed.startsWith(`${version}:`)) return undefined
        const bytes = Buffer.from(sealed.slice(version.length + 1), "base64")
        if (bytes.length < 29) return undefined
        try {
          const decipher = createDecipheriv("aes-256-gcm", key, bytes.subarray(0, 12))
          decipher.setAAD(Buffer.from(subscriptionId))
          decipher.setAuthTag(bytes.subarray(12, 28))
          return Buffer.concat([decipher.update(bytes.subarray(28)), decipher.final()]).toString("utf8")
        } catch {
          return undefined
        }
      }

      return WebhookSecrets.of({ generate: () => `whsec_${randomBytes(24).toString("base64")}`, seal, open })
    })
  )
}
