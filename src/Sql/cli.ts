import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Layer } from "effect"
import { AppConfig } from "../Config/AppConfig.ts"
import { DatabaseLive } from "./Database.ts"
import { loadMigrations, migrateDown, migrateUp } from "./Migrator.ts"

/** `npm run migrate` applies pending migrations; `npm run migrate:down` reverts the last one. */
const command = process.argv[2]

const program = Effect.gen(function*() {
  const migrations = yield* loadMigrations()
  if (command === "up") {
    const applied = yield* migrateUp(migrations)
    yield* Console.log(
      applied.length === 0
        ? "migrations: nothing to apply"
        : `migrations: applied ${applied.map((m) => `${m.version}_${m.name}`).join(", ")}`
    )
  } else if (command === "down") {
    const reverted = yield* migrateDown(migrations)
    yield* Console.log(reverted === undefined ? "migrations: nothing to revert" : `migrations: reverted ${reverted.version}_${reverted.name}`)
  } else {
    return yield* Effect.die(new Error(`usage: cli.ts up|down (got ${command ?? "nothing"})`))
  }
})

program.pipe(
  Effect.provide(DatabaseLive.pipe(Layer.provide(AppConfig.layer))),
  NodeRuntime.runMain
)
