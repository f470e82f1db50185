import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Effect, Layer, Option } from "effect"
import { HttpRouter } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { ApiKeys } from "./ApiKeys/ApiKeys.ts"
import { ApiKeysRepo } from "./ApiKeys/ApiKeysRepo.ts"
import { ApiKeysHttp } from "./ApiKeys/Http.ts"
import { Audit } from "./Audit/Audit.ts"
import { AuditRepo } from "./Audit/AuditRepo.ts"
import { AuditHttp } from "./Audit/Http.ts"
import { AuthenticationLive } from "./Auth/Http.ts"
import { AuthHttp, MeHttp } from "./Auth/IdentityHttp.ts"
import { IdentitySecrets } from "./Auth/Secrets.ts"
import { Sessions } from "./Auth/Sessions.ts"
import { SessionsRepo } from "./Auth/SessionsRepo.ts"
import { AppConfig } from "./Config/AppConfig.ts"
import { Events } from "./Events/Events.ts"
import { EventsRepo } from "./Events/EventsRepo.ts"
import { EventsHttp } from "./Events/Http.ts"
import { HealthHttp, ProbesApi, ProbesHttp } from "./Health/Http.ts"
import { ReadinessProbe } from "./Health/Readiness.ts"
import { Api } from "./Http/Api.ts"
import { withDeepContext } from "./Http/DeepContext.ts"
import { DocsLive } from "./Http/Docs.ts"
import { EnvelopeMiddleware } from "./Http/Envelope.ts"
import { RateLimits } from "./Http/RateLimits.ts"
import { resolveRequestId } from "./Http/RequestId.ts"
import { RequestValidationLive } from "./Http/RequestValidation.ts"
import { JobsHttp } from "./Jobs/Http.ts"
import { Jobs } from "./Jobs/Jobs.ts"
import { JobsRepo } from "./Jobs/JobsRepo.ts"
import { MembersHttp } from "./Members/Http.ts"
import { Members } from "./Members/Members.ts"
import { MembersRepo } from "./Members/MembersRepo.ts"
import { ProjectsHttp } from "./Projects/Http.ts"
import { Projects } from "./Projects/Projects.ts"
import { ProjectsRepo } from "./Projects/ProjectsRepo.ts"
import { QueuesHttp } from "./Queues/Http.ts"
import { Queues } from "./Queues/Queues.ts"
import { QueuesRepo } from "./Queues/QueuesRepo.ts"
import { ReviewsHttp } from "./Reviews/Http.ts"
import { ReviewDeadlinesLive, Reviews } from "./Reviews/Reviews.ts"
import { ReviewsRepo } from "./Reviews/ReviewsRepo.ts"
import { UsersHttp } from "./Users/Http.ts"
import { Users } from "./Users/Users.ts"
import { UsersRepo } from "./Users/UsersRepo.ts"
import { DatabaseLive } from "./Sql/Database.ts"
import { EngineRepo } from "./Engine/EngineRepo.ts"
import { Handlers } from "./Engine/Handlers.ts"
import { MaintenanceLive } from "./Engine/Maintenance.ts"
import { LocalDispatch } from "./Engine/LocalDispatch.ts"
import { Notifier } from "./Engine/Notifier.ts"
import { requestLogger } from "./Observability/Logging.ts"
import { metricsMiddleware, MetricsRoute, OpsPathsHidden, PrometheusMetrics, RouteTemplate } from "./Observability/Metrics.ts"
import { apiRoutes, routeSpanNames } from "./Observability/Tracing.ts"
import { Runner } from "./Engine/Runner.ts"
import { WebhooksHttp } from "./Webhooks/Http.ts"
import { WebhookSecrets } from "./Webhooks/Secrets.ts"
import { Webhooks } from "./Webhooks/Webhooks.ts"
import { WebhooksRepo } from "./Webhooks/WebhooksRepo.ts"
import { WorkersHttp } from "./Workers/Http.ts"
import { Workers } from "./Workers/Workers.ts"
import { WorkersRepo } from "./Workers/WorkersRepo.ts"
import { loadMigrations, migrateUp } from "./Sql/Migrator.ts"

/** Applies pending migrations before anything else touches the database. */
export const MigrationsLive = Layer.effectDiscard(Effect.flatMap(loadMigrations(), migrateUp))

/** The database, migrated. Everything that queries it is built on this. */
export const DatabaseReadyLive = MigrationsLive.pipe(Layer.provideMerge(DatabaseLive))

const RepositoriesLive = Layer.mergeAll(
  ProjectsRepo.layer,
  EventsRepo.layer,
  WebhooksRepo.layer,
  ApiKeysRepo.layer,
  QueuesRepo.layer,
  JobsRepo.layer,
  WorkersRepo.layer,
  EngineRepo.layer,
  UsersRepo.layer,
  MembersRepo.layer,
  SessionsRepo.layer,
  AuditRepo.layer,
  ReviewsRepo.layer
)

export const ServicesLive = Layer.mergeAll(ApiKeys.layer, Events.layer, Webhooks.layer, Queues.layer, Jobs.layer, Workers.layer, Reviews.layer, RateLimits.layer).pipe(
  Layer.provideMerge(Layer.mergeAll(Users.layer, Sessions.layer, Members.layer)),
  Layer.provideMerge(Layer.mergeAll(Audit.layer, ReadinessProbe.layer, WebhookSecrets.layer)),
  Layer.provideMerge(Layer.mergeAll(Projects.layer, Notifier.layer, LocalDispatch.layer)),
  Layer.provideMerge(RepositoriesLive),
  Layer.provideMerge(DatabaseReadyLive),
  // Built first: missing identity secrets stop startup before the database is touched.
  Layer.provideMerge(IdentitySecrets.layer)
)

/** The in-process engine: worker pool and maintenance fibers (off when `FOREMAN_ROLE=api`). */
export const EngineLive = Layer.mergeAll(Runner.layer, MaintenanceLive, ReviewDeadlinesLive).pipe(Layer.provide(Handlers.layer))

const BootstrapLive = Layer.effectDiscard(Effect.gen(function*() {
  const keys = yield* ApiKeys
  yield* keys.bootstrap
}))

export const RoutesLive = Layer.mergeAll(
  HttpApiBuilder.layer(Api, { openapiPath: "/openapi.json" }).pipe(
    Layer.provide([HealthHttp, ProjectsHttp, ApiKeysHttp, QueuesHttp, JobsHttp, WorkersHttp, AuditHttp, ReviewsHttp]),
    Layer.provide([AuthHttp, MeHttp, UsersHttp, MembersHttp]),
    Layer.provide([EventsHttp, WebhooksHttp]),
    Layer.provide([AuthenticationLive, RequestValidationLive]),
    Layer.provide(RouteTemplate)
  ),
  DocsLive,
  EnvelopeMiddleware
)

/** A worker-only instance answers probes and nothing else: the public API is not exposed. */
const ProbeRoutesLive = Layer.mergeAll(
  HttpApiBuilder.layer(ProbesApi).pipe(Layer.provide(ProbesHttp), Layer.provide(RouteTemplate)),
  EnvelopeMiddleware
)


/**
 * A Node server that answers 503 whenever the application's handler is not
 * attached: in the instant between `listen` and the router being installed,
 * and after the router detaches on shutdown. Without it such requests hang.
 */
export const makeNodeServer = (): Server => {
  const server = createServer()
  const fallback = (request: IncomingMessage, response: ServerResponse) => {
    if (server.listenerCount("request") > 1) return
    const header = request.headers["x-request-id"]
    const requestId = resolveRequestId(typeof header === "string" ? header : undefined)
    response.writeHead(503, {
      "content-type": "application/json",
      "retry-after": "1",
      "x-request-id": requestId,
      connection: "close"
    })
    response.end(JSON.stringify({
      _tag: "ServiceUnavailable",
      code: "ServiceUnavailable",
      message: "starting up or shutting down",
      requestId
    }))
  }
  server.on("request", fallback)
  return server
}

/**
 * The HTTP listener. It is provided its dependencies (database, migrations,
 * services, bootstrap key) first, so it only starts listening once the
 * application can answer.
 */
export const HttpLive = Layer.unwrap(
  Effect.gen(function*() {
    const config = yield* AppConfig
    // CORS is closed unless origins are configured: no CORS headers, so browsers refuse cross-origin calls.
    const cors = config.corsOrigins.length === 0 ? Layer.empty : HttpRouter.cors({
      allowedOrigins: config.corsOrigins,
      allowedMethods: ["GET", "POST", "PATCH", "DELETE"],
      allowedHeaders: ["authorization", "content-type", "x-request-id"],
      exposedHeaders: ["x-request-id", "retry-after"],
      maxAge: 600
    })
    const routes = config.role === "worker" ? ProbeRoutesLive : Layer.merge(RoutesLive, cors)
    const metricsRoute = MetricsRoute.pipe(Layer.provide(RouteTemplate))
    const listener = (port: number) => NodeHttpServer.layer(makeNodeServer, { port, host: config.host })
    // Server spans are named by route template, never by raw URL.
    const spanNames = routeSpanNames([
      ...apiRoutes(Api),
      ["GET", "/openapi.json"],
      ["GET", "/docs"],
      ["GET", "/metrics"]
    ])
    // Effect's request logger, with the request id on its line (see requestLogger), around the request metrics.
    const serve = <A, E, R>(app: Layer.Layer<A, E, R>) =>
      withDeepContext(
        HttpRouter.serve(app, { disableLogger: true, middleware: (effect) => requestLogger(metricsMiddleware(effect)) })
      ).pipe(Layer.provide(spanNames))
    // FOREMAN_OPS_PORT: metrics and probes on their own listener, hidden from the public one.
    const publicLive = Option.isSome(config.opsPort)
      ? serve(Layer.merge(routes, OpsPathsHidden)).pipe(
        Layer.provideMerge(listener(config.port)),
        Layer.provideMerge(Layer.effectDiscard(Layer.build(
          serve(Layer.merge(ProbeRoutesLive, metricsRoute)).pipe(Layer.provide(listener(config.opsPort.value)))
        )))
      )
      : serve(Layer.merge(routes, metricsRoute)).pipe(Layer.provideMerge(listener(config.port)))
    return publicLive.pipe(Layer.provideMerge(PrometheusMetrics.layer))
  })
)

/** Built last, so its finalizer runs first on shutdown: readiness turns 503 before anything else stops. */
const DrainLive = Layer.effectDiscard(Effect.gen(function*() {
  const probe = yield* ReadinessProbe
  yield* Effect.addFinalizer(() => probe.beginDrain.pipe(Effect.andThen(Effect.logInfo("shutting down"))))
}))

/**
 * The whole service for a given configuration: what `main.ts` launches and
 * what tests start. Build order (and so reverse shutdown order): database and
 * migrations, services, bootstrap key, HTTP listener, engine, drain signal.
 * On shutdown readiness fails first, then the engine stops claiming and
 * drains, then the listener closes, then the pool.
 */
export const makeApp = <E>(config: Layer.Layer<AppConfig, E>) =>
  DrainLive.pipe(
    Layer.provideMerge(EngineLive),
    Layer.provideMerge(HttpLive),
    Layer.provideMerge(BootstrapLive.pipe(Layer.provideMerge(ServicesLive))),
    Layer.provideMerge(config)
  )

export const AppLive = makeApp(AppConfig.layer)
