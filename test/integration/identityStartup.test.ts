import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { identityEnv } from "../support/identity.ts"
import { createTestDatabase } from "../support/TestApp.ts"

const root = fileURLToPath(new URL("../..", import.meta.url))

/** Runs `node src/main.ts` until it exits (or 30 s pass) and returns its exit code and output. */
const run = (env: Record<string, string>) =>
  Effect.promise(() =>
    new Promise<{ readonly code: number | null; readonly output: string }>((resolve) => {
      const { FOREMAN_PASSWORD_PEPPER: _p, FOREMAN_JWT_KEYS: _k, ...inherited } = process.env
      const child = spawn(process.execPath, ["src/main.ts"], {
        cwd: root,
        env: { ...inherited, PORT: "65001", HOST: "127.0.0.1", FOREMAN_DB_POOL_SIZE: "2", ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      const collect = (chunk: Buffer) => {
        output += chunk.toString("utf8")
      }
      child.stdout.on("data", collect)
      child.stderr.on("data", collect)
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
      child.once("exit", (code) => {
        clearTimeout(timer)
        resolve({ code, output })
      })
    })
  )

describe("identity secrets at startup", () => {
  it.live("with DATABASE_URL but no pepper or JWT keys, the service refuses to start and says why", () =>
    Effect.gen(function*() {
      const url = yield* createTestDatabase
      const missingBoth = yield* run({ DATABASE_URL: url })
      assert.strictEqual(missingBoth.code, 1, missingBoth.output.slice(-2000))
      assert.include(missingBoth.output, "FOREMAN_PASSWORD_PEPPER and FOREMAN_JWT_KEYS are required")
      const weakPepper = yield* run({ DATABASE_URL: url, ...identityEnv, FOREMAN_PASSWORD_PEPPER: "short" })
      assert.strictEqual(weakPepper.code, 1, weakPepper.output.slice(-2000))
      assert.include(weakPepper.output, "at least 32 characters")
    }), 90_000)
})
