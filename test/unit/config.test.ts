import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Option } from "effect"
import { appConfig } from "../../src/Config/AppConfig.ts"

const parse = (env: Record<string, string>) => Effect.runSyncExit(appConfig.parse(ConfigProvider.fromUnknown(env)))

describe("configuration", () => {
  it("documented defaults apply when nothing is set", () => {
    const exit = parse({})
    assert.isTrue(exit._tag === "Success")
    if (exit._tag !== "Success") return
    const config = exit.value
    assert.strictEqual(config.port, 8080)
    assert.strictEqual(config.role, "all")
    assert.strictEqual(config.workerConcurrency, 256)
    assert.strictEqual(config.claimBatchSize, 128)
    assert.strictEqual(config.claimLoops, 2)
    assert.strictEqual(config.leaseMs, 30_000)
    assert.isTrue(Option.isNone(config.databaseUrl))
    assert.deepStrictEqual(config.handlerModules, [])
  })

  it("lists are split on commas and trimmed", () => {
    const exit = parse({ FOREMAN_HTTP_ALLOW_CIDRS: " 127.0.0.0/8 , ::1/128,," })
    assert.isTrue(exit._tag === "Success" && exit.value.httpAllowCidrs.join("|") === "127.0.0.0/8|::1/128")
  })

  it("out-of-range and malformed integers stop startup", () => {
    for (const env of [
      { FOREMAN_WORKER_CONCURRENCY: "0" },
      { FOREMAN_CLAIM_LOOPS: "65" },
      { FOREMAN_LEASE_MS: "10" },
      { FOREMAN_DB_POOL_SIZE: "ten" },
      { FOREMAN_ROLE: "everything" },
      { PORT: "70000" }
    ]) {
      assert.strictEqual(parse(env)._tag, "Failure", JSON.stringify(env))
    }
  })
})
