import { NodeRuntime } from "@effect/platform-node"
import { Cause, Exit, Layer } from "effect"
import { AppLive } from "./Server.ts"

// SIGTERM/SIGINT interrupt the app; a shutdown that completes is a clean exit (0), not 130.
Layer.launch(AppLive).pipe(NodeRuntime.runMain({
  teardown: (exit, onExit) => onExit(Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause) ? 1 : 0)
}))
