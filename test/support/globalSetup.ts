import { Effect, Exit, Redacted, Scope } from "effect"
import { mkdtemp } from "node:fs/promises"
import os from "node:os"
import path from "node:path"
import type { TestProject } from "vitest/node"
import { startEmbeddedPostgres } from "../../src/Sql/EmbeddedPostgres.ts"
import { freePort } from "./freePort.ts"

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string
  }
}


/**
 * One real PostgreSQL for the whole run: `TEST_DATABASE_URL` if set, otherwise
 * an embedded server in a temporary directory. Each test file then creates its
 * own database in it (see TestApp.ts), so files run in parallel without sharing rows.
 */
export default async function setup(project: TestProject) {
  const external = process.env.TEST_DATABASE_URL
  if (external !== undefined && external.length > 0) {
    project.provide("databaseUrl", external)
    return
  }
  const scope = Effect.runSync(Scope.make())
  const dataDir = await mkdtemp(path.join(os.tmpdir(), "foreman-test-pg-"))
  const url = await Effect.runPromise(
    startEmbeddedPostgres({ dataDir, port: await freePort(), persistent: false }).pipe(Scope.provide(scope))
  )
  project.provide("databaseUrl", Redacted.value(url))
  return async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}
