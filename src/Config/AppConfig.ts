import { Config, Context, Effect, Layer, Option, Redacted } from "effect"
import { hostname } from "node:os"

const list = (value: string): ReadonlyArray<string> =>
  value.split(",").map((item) => item.trim()).filter((item) => item.length > 0)

/**
 * Every setting the service reads, with its default. docs/operations.md lists
 * the same table for operators; keep the two in step.
 */
export interface AppConfigShape {
  readonly port: number
  readonly host: string
  readonly databaseUrl: Option.Option<Redacted.Redacted>
  readonly embeddedDataDir: string
  readonly embeddedPort: number
  readonly databasePoolSize: number
  readonly adminApiKey: Option.Option<Redacted.Redacted>
  readonly maxBodyBytes: number
  readonly maxPayloadBytes: number
  readonly shutdownGraceMs: number
  /** `api` serves the HTTP API without the engine; `worker` runs the engine and serves only the probes; `all` does both. */
  readonly role: "all" | "api" | "worker"
  readonly workerConcurrency: number
  readonly claimBatchSize: number
  readonly claimLoops: number
  readonly leaseMs: number
  readonly pollIntervalMs: number
  readonly maintenanceIntervalMs: number
  readonly handlerModules: ReadonlyArray<string>
  readonly httpAllowCidrs: ReadonlyArray<string>
  readonly instanceId: string
}

export const appConfig = Config.all({
  port: Config.Port("PORT").pipe(Config.withDefault(8080)),
  host: Config.String("HOST").pipe(Config.withDefault("0.0.0.0")),
  databaseUrl: Config.option(Config.Redacted("DATABASE_URL")),
  embeddedDataDir: Config.String("FOREMAN_EMBEDDED_PG_DIR").pipe(Config.withDefault(".data/postgres")),
  embeddedPort: Config.Port("FOREMAN_EMBEDDED_PG_PORT").pipe(Config.withDefault(54329)),
  databasePoolSize: Config.Int("FOREMAN_DB_POOL_SIZE").pipe(Config.withDefault(10)),
  adminApiKey: Config.option(Config.Redacted("FOREMAN_ADMIN_API_KEY")),
  maxBodyBytes: Config.Int("FOREMAN_MAX_BODY_BYTES").pipe(Config.withDefault(4 * 1024 * 1024)),
  maxPayloadBytes: Config.Int("FOREMAN_MAX_PAYLOAD_BYTES").pipe(Config.withDefault(64 * 1024)),
  shutdownGraceMs: Config.Int("FOREMAN_SHUTDOWN_GRACE_MS").pipe(Config.withDefault(10_000)),
  role: Config.Literals(["all", "api", "worker"], "FOREMAN_ROLE").pipe(Config.withDefault("all" as const)),
  workerConcurrency: Config.Int("FOREMAN_WORKER_CONCURRENCY").pipe(Config.withDefault(256)),
  claimBatchSize: Config.Int("FOREMAN_CLAIM_BATCH_SIZE").pipe(Config.withDefault(128)),
  claimLoops: Config.Int("FOREMAN_CLAIM_LOOPS").pipe(Config.withDefault(2)),
  leaseMs: Config.Int("FOREMAN_LEASE_MS").pipe(Config.withDefault(30_000)),
  pollIntervalMs: Config.Int("FOREMAN_POLL_INTERVAL_MS").pipe(Config.withDefault(1000)),
  maintenanceIntervalMs: Config.Int("FOREMAN_MAINTENANCE_INTERVAL_MS").pipe(Config.withDefault(1000)),
  handlerModules: Config.String("FOREMAN_HANDLERS").pipe(Config.withDefault(""), Config.map(list)),
  httpAllowCidrs: Config.String("FOREMAN_HTTP_ALLOW_CIDRS").pipe(Config.withDefault(""), Config.map(list)),
  instanceId: Config.String("FOREMAN_INSTANCE_ID").pipe(Config.withDefault(`${hostname()}-${process.pid}`))
})

export class AppConfig extends Context.Service<AppConfig, AppConfigShape>()("foreman/AppConfig") {
  static readonly layer = Layer.effect(AppConfig, Effect.map(appConfig, AppConfig.of))
  static readonly layerWith = (overrides: Partial<AppConfigShape>) =>
    Layer.effect(AppConfig, Effect.map(appConfig, (config) => AppConfig.of({ ...config, ...overrides })))
}
