import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Webhook } from "standardwebhooks"
import { IdentitySecrets, keySetFromJwks } from "../../src/Auth/Secrets.ts"
import { signature } from "../../src/Webhooks/Delivery.ts"
import { WebhookSecrets } from "../../src/Webhooks/Secrets.ts"
import { testJwk } from "../support/identity.ts"

const secretsWith = (pepper: string) =>
  Effect.gen(function*() {
    const jwtKeys = yield* Effect.orDie(keySetFromJwks([testJwk]))
    return yield* Effect.service(WebhookSecrets).pipe(
      Effect.provide(WebhookSecrets.layer.pipe(
        Layer.provide(Layer.succeed(IdentitySecrets, IdentitySecrets.of({ pepper: new TextEncoder().encode(pepper), jwtKeys })))
      ))
    )
  })

describe("webhook signing", () => {
  it.effect("signatures equal the standardwebhooks reference and verify with it", () =>
    Effect.gen(function*() {
      const secrets = yield* secretsWith("p".repeat(40))
      const secret = secrets.generate()
      assert.match(secret, /^whsec_[A-Za-z0-9+/]{32}$/)
      const body = JSON.stringify({ type: "succeeded", data: { n: 1, text: "é ✓" } })
      const at = new Date()
      const timestamp = Math.floor(at.getTime() / 1000)
      const reference = new Webhook(secret).sign("msg_1", at, body)
      assert.strictEqual(`v1,${signature(secret, "msg_1", timestamp, body)}`, reference)
      const headers = { "webhook-id": "msg_1", "webhook-timestamp": String(timestamp), "webhook-signature": reference }
      assert.deepStrictEqual(new Webhook(secret).verify(body, headers), JSON.parse(body))
      assert.throws(() => new Webhook(secret).verify(`${body} `, headers))
    }))

  it.effect("secrets are sealed: they open only with the same pepper and the same subscription id", () =>
    Effect.gen(function*() {
      const secrets = yield* secretsWith("p".repeat(40))
      const secret = secrets.generate()
      const sealed = secrets.seal(secret, "sub-1")
      assert.notInclude(sealed, secret.slice(6))
      assert.notStrictEqual(secrets.seal(secret, "sub-1"), sealed, "a fresh IV each time")
      assert.strictEqual(secrets.open(sealed, "sub-1"), secret)
      assert.isUndefined(secrets.open(sealed, "sub-2"))
      assert.isUndefined(secrets.open(`${sealed.slice(0, -4)}AAAA`, "sub-1"))
      assert.isUndefined(secrets.open("garbage", "sub-1"))
      const other = yield* secretsWith("q".repeat(40))
      assert.isUndefined(other.open(sealed, "sub-1"))
    }))
})
