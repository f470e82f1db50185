import { NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import { AppLive } from "./Server.ts"

Layer.launch(AppLive).pipe(NodeRuntime.runMain)
