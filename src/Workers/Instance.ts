import { Duration, Effect, Schedule, Schema } from "effect"
import { readFileSync } from "node:fs"
import path from "node:path"
import { appRoot } from "../Config/AppRoot.ts"
import { AppConfig } from "../Config/AppConfig.ts"
import { newId, WorkerId } from "../Domain/Ids.ts"
import { WorkersRepo } from "./WorkersRepo.ts"

const PackageJson = Schema.Struct({ version: Schema.String })

/** Foreman's own version, from package.json. */
export const packageVersion = (): string => {
  try {
    const text = readFileSync(path.join(appRoot, "package.json"), "utf8")
    return Schema.decodeUnknownSync(Schema.fromJsonString(PackageJson))(text).version
  } catch {
    return "unknown"
  }
}

/**
 * Registers this engine instance in the worker registry (name = instance id,
 * kinds = its handler kinds, labels from FOREMAN_WORKER_LABELS) and keeps its
 * `last_seen_at` fresh from a scoped fiber. Returns the worker id its claims use.
 */
export const registerInstance = Effect.fn("Workers.registerInstance")(function*(kinds: ReadonlyArray<string>) {
  const config = yield* AppConfig
  const repo = yield* WorkersRepo
  const id = yield* repo.upsertInstance({
    id: WorkerId.make(newId()),
    name: config.instanceId,
    kinds: [...new Set(kinds)],
    version: packageVersion(),
    labels: [...new Set(config.workerLabels)]
  })
  yield* repo.touchInstance(id).pipe(
    Effect.catchCause((cause) => Effect.logWarning("worker registry heartbeat failed", cause)),
    // Three touches per active window, so a live instance never reads as idle between them.
    Effect.repeat(Schedule.spaced(Duration.millis((config.workerActiveSeconds * 1000) / 3))),
    Effect.forkScoped
  )
  return id
})
