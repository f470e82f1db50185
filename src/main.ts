import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Exit, Layer } from "effect"
import { AppConfig } from "./Config/AppConfig.ts"
import { LoggingLive } from "./Observability/Logging.ts"
import { TracingLive } from "./Observability/Tracing.ts"
import { AppLive } from "./Server.ts"

// JSON lines on stdout at FOREMAN_LOG_LEVEL for everything the app logs, its startup included;
// spans exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set (nothing installed otherwise).
const MainLive = AppLive.pipe(
  Layer.provide(LoggingLive.pipe(Layer.provide(AppConfig.layer))),
  Layer.provide(TracingLive)
)

// SIGTERM/SIGINT interrupt the app; a shutdown that completes is a clean exit (0), not 130.
Layer.launch(MainLive).pipe(NodeRuntime.runMain({
  teardown: (exit, onExit) => onExit(Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause) ? 1 : 0)
}))
