import { Config, Context, Effect, Layer, type LogLevel, Option, Redacted, Schema } from "effect"
import { hostname } from "node:os"

/** An integer setting; a value outside [min, max] stops startup with a configuration error. */
const intBetween = (name: string, minimum: number, maximum: number, fallback: number) =>
  Config.schema(Schema.Int.check(Schema.isBetween({ minimum, maximum })), name).pipe(Config.withDefault(fallback))

const list = (value: string): ReadonlyArray<string> =>
  value.split(",").map((item) => item.trim()).filter((item) => item.length > 0)

/**
 * Every setting the service reads, with its default. docs/operations.md lists
 * the same table for operators; keep the two in step.
 */
export interface AppConfigShape {
  readonly port: number
  readonly host: string
  /** `FOREMAN_OPS_PORT`: when set, /metrics, /healthz and /readyz are served there and not on `port`. */
  readonly opsPort: Option.Option<number>
  readonly databaseUrl: Option.Option<Redacted.Redacted>
  readonly embeddedDataDir: string
  readonly embeddedPort: number
  readonly databasePoolSize: number
  /** Connections of the claim pool, apart from `databasePoolSize` (see `ClaimSql`). */
  readonly claimPoolSize: number
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
  /** Event feed: how often an idle SSE stream and the webhook dispatcher look for new events. */
  readonly eventsPollIntervalMs: number
  /** Event feed: an idle SSE stream sends a `: keep-alive` comment this often. */
  readonly eventsKeepAliveMs: number
  /** Event feed: the most events read (and held in memory) per step of a stream or the dispatcher. */
  readonly eventsBatchSize: number
  /** Webhook deliveries: attempts, first backoff, backoff cap, per-attempt timeout, and how long deliveries are kept. */
  readonly webhookMaxAttempts: number
  readonly webhookInitialDelayMs: number
  readonly webhookMaxDelayMs: number
  readonly webhookTimeoutMs: number
  readonly webhookRetentionSeconds: number
  readonly instanceId: string
  /** Argon2id secret (pepper); required with `DATABASE_URL`, generated and persisted in embedded mode. */
  readonly passwordPepper: Option.Option<Redacted.Redacted>
  /** JSON array of Ed25519 JWKs with `kid`; the first (private) signs, every one verifies. Same default rule as the pepper. */
  readonly jwtKeys: Option.Option<Redacted.Redacted>
  readonly jwtIssuer: string
  readonly jwtAudience: string
  readonly accessTokenTtlSeconds: number
  readonly refreshTokenTtlSeconds: number
  readonly jwtClockSkewSeconds: number
  /** Requests per minute per client address / per principal / logins per address. */
  readonly rateLimitPerAddress: number
  readonly rateLimitPerPrincipal: number
  readonly rateLimitLogin: number
  /** Origins allowed to call the API from a browser; empty means CORS is closed. */
  readonly corsOrigins: ReadonlyArray<string>
  /** The least severe level written to the log; `Info` unless set. */
  readonly logLevel: LogLevel.LogLevel
  /** Labels of this instance's in-process worker: jobs assigned to one of them may run here. */
  readonly workerLabels: ReadonlyArray<string>
  /** A worker seen within this many seconds (or holding leases) is `active`. */
  readonly workerActiveSeconds: number
  /** A worker not seen for this many seconds (and holding no lease) is `gone`; in between it is `idle`. */
  readonly workerGoneSeconds: number
  /** How long a verified API key is trusted from memory; `0` looks every key up on every request. */
  readonly apiKeyCacheMs: number
  /** Whether a single job enqueued on an idle engine instance is inserted already claimed by it. */
  readonly eagerDispatch: boolean
}

export const appConfig = Config.all({
  port: Config.Port("PORT").pipe(Config.withDefault(8080)),
  host: Config.String("HOST").pipe(Config.withDefault("0.0.0.0")),
  opsPort: Config.option(Config.Port("FOREMAN_OPS_PORT")),
  databaseUrl: Config.option(Config.Redacted("DATABASE_URL")),
  embeddedDataDir: Config.String("FOREMAN_EMBEDDED_PG_DIR").pipe(Config.withDefault(".data/postgres")),
  embeddedPort: Config.Port("FOREMAN_EMBEDDED_PG_PORT").pipe(Config.withDefault(54329)),
  databasePoolSize: intBetween("FOREMAN_DB_POOL_SIZE", 1, 1000, 10),
  claimPoolSize: intBetween("FOREMAN_CLAIM_POOL_SIZE", 1, 1000, 4),
  adminApiKey: Config.option(Config.Redacted("FOREMAN_ADMIN_API_KEY")),
  maxBodyBytes: intBetween("FOREMAN_MAX_BODY_BYTES", 1024, 268_435_456, 4 * 1024 * 1024),
  maxPayloadBytes: intBetween("FOREMAN_MAX_PAYLOAD_BYTES", 16, 67_108_864, 64 * 1024),
  shutdownGraceMs: intBetween("FOREMAN_SHUTDOWN_GRACE_MS", 0, 3_600_000, 10_000),
  role: Config.Literals(["all", "api", "worker"], "FOREMAN_ROLE").pipe(Config.withDefault("all" as const)),
  workerConcurrency: intBetween("FOREMAN_WORKER_CONCURRENCY", 1, 100_000, 256),
  claimBatchSize: intBetween("FOREMAN_CLAIM_BATCH_SIZE", 1, 10_000, 128),
  claimLoops: intBetween("FOREMAN_CLAIM_LOOPS", 1, 64, 2),
  leaseMs: intBetween("FOREMAN_LEASE_MS", 1000, 3_600_000, 30_000),
  pollIntervalMs: intBetween("FOREMAN_POLL_INTERVAL_MS", 10, 3_600_000, 1000),
  maintenanceIntervalMs: intBetween("FOREMAN_MAINTENANCE_INTERVAL_MS", 10, 3_600_000, 1000),
  handlerModules: Config.String("FOREMAN_HANDLERS").pipe(Config.withDefault(""), Config.map(list)),
  httpAllowCidrs: Config.String("FOREMAN_HTTP_ALLOW_CIDRS").pipe(Config.withDefault(""), Config.map(list)),
  eventsPollIntervalMs: intBetween("FOREMAN_EVENTS_POLL_INTERVAL_MS", 10, 60_000, 500),
  eventsKeepAliveMs: intBetween("FOREMAN_EVENTS_KEEPALIVE_MS", 100, 3_600_000, 15_000),
  eventsBatchSize: intBetween("FOREMAN_EVENTS_BATCH_SIZE", 1, 1000, 200),
  webhookMaxAttempts: intBetween("FOREMAN_WEBHOOK_MAX_ATTEMPTS", 1, 1000, 12),
  webhookInitialDelayMs: intBetween("FOREMAN_WEBHOOK_INITIAL_DELAY_MS", 0, 86_400_000, 5000),
  webhookMaxDelayMs: intBetween("FOREMAN_WEBHOOK_MAX_DELAY_MS", 0, 604_800_000, 3_600_000),
  webhookTimeoutMs: intBetween("FOREMAN_WEBHOOK_TIMEOUT_MS", 1000, 300_000, 15_000),
  webhookRetentionSeconds: intBetween("FOREMAN_WEBHOOK_RETENTION_SECONDS", 60, 31_536_000, 604_800),
  instanceId: Config.String("FOREMAN_INSTANCE_ID").pipe(Config.withDefault(`${hostname()}-${process.pid}`)),
  passwordPepper: Config.option(Config.Redacted("FOREMAN_PASSWORD_PEPPER")),
  jwtKeys: Config.option(Config.Redacted("FOREMAN_JWT_KEYS")),
  jwtIssuer: Config.String("FOREMAN_JWT_ISSUER").pipe(Config.withDefault("foreman")),
  jwtAudience: Config.String("FOREMAN_JWT_AUDIENCE").pipe(Config.withDefault("foreman-api")),
  accessTokenTtlSeconds: intBetween("FOREMAN_ACCESS_TOKEN_TTL_SECONDS", 60, 86_400, 900),
  refreshTokenTtlSeconds: intBetween("FOREMAN_REFRESH_TOKEN_TTL_SECONDS", 300, 31_536_000, 1_209_600),
  jwtClockSkewSeconds: intBetween("FOREMAN_JWT_CLOCK_SKEW_SECONDS", 0, 300, 30),
  rateLimitPerAddress: intBetween("FOREMAN_RATE_LIMIT_PER_ADDRESS", 1, 100_000_000, 12_000),
  rateLimitPerPrincipal: intBetween("FOREMAN_RATE_LIMIT_PER_PRINCIPAL", 1, 100_000_000, 12_000),
  rateLimitLogin: intBetween("FOREMAN_RATE_LIMIT_LOGIN", 1, 100_000, 10),
  corsOrigins: Config.String("FOREMAN_CORS_ORIGINS").pipe(Config.withDefault(""), Config.map(list)),
  logLevel: Config.LogLevel("FOREMAN_LOG_LEVEL").pipe(Config.withDefault("Info" as const)),
  workerLabels: Config.String("FOREMAN_WORKER_LABELS").pipe(Config.withDefault(""), Config.map(list)),
  workerActiveSeconds: intBetween("FOREMAN_WORKER_ACTIVE_SECONDS", 1, 86_400, 30),
  workerGoneSeconds: intBetween("FOREMAN_WORKER_GONE_SECONDS", 1, 31_536_000, 300),
  apiKeyCacheMs: intBetween("FOREMAN_API_KEY_CACHE_MS", 0, 3_600_000, 60_000),
  eagerDispatch: Config.Boolean("FOREMAN_EAGER_DISPATCH").pipe(Config.withDefault(true))
})

export class AppConfig extends Context.Service<AppConfig, AppConfigShape>()("foreman/AppConfig") {
  static readonly layer = Layer.effect(AppConfig, Effect.map(appConfig, AppConfig.of))
  static readonly layerWith = (overrides: Partial<AppConfigShape>) =>
    Layer.effect(AppConfig, Effect.map(appConfig, (config) => AppConfig.of({ ...config, ...overrides })))
}
