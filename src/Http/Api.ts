import { HttpApi, HttpApiMiddleware, OpenApi } from "effect/http-api"
import { ApiKeysApi } from "../ApiKeys/Api.ts"
import { AuthApi, MeApi } from "../Auth/IdentityApi.ts"
import { AuditApi } from "../Audit/Api.ts"
import { ValidationError } from "../Domain/Errors.ts"
import { EventsApi } from "../Events/Api.ts"
import { HealthApi } from "../Health/Api.ts"
import { JobsApi } from "../Jobs/Api.ts"
import { MembersApi } from "../Members/Api.ts"
import { ProjectsApi } from "../Projects/Api.ts"
import { QueuesApi } from "../Queues/Api.ts"
import { ReviewsApi } from "../Reviews/Api.ts"
import { UsersApi } from "../Users/Api.ts"
import { WebhooksApi } from "../Webhooks/Api.ts"
import { WorkersApi } from "../Workers/Api.ts"

/**
 * Unknown fields in a request body are a 400, not silently dropped: a client that
 * sends `state` or `project_id` learns at once that it cannot set them.
 */
export const payloadParseOptions = { onExcessProperty: "error" } as const

/** Turns request decoding failures into a 400 `ValidationError` naming each offending field. */
export class RequestValidation extends HttpApiMiddleware.Service<RequestValidation>()("foreman/RequestValidation", {
  error: ValidationError
}) {}

export class Api extends HttpApi.make("foreman")
  .add(HealthApi)
  .add(ProjectsApi)
  .add(ApiKeysApi)
  .add(QueuesApi)
  .add(JobsApi)
  .add(WorkersApi)
  .add(AuthApi)
  .add(MeApi)
  .add(UsersApi)
  .add(MembersApi)
  .add(AuditApi)
  .add(EventsApi)
  .add(WebhooksApi)
  .add(ReviewsApi)
  .middleware(RequestValidation)
  .annotate(HttpApi.PayloadParseOptions, payloadParseOptions)
  .annotateMerge(OpenApi.annotations({
    title: "Foreman",
    version: "1.0.0",
    description: "A durable task engine. Every error response uses the envelope described in docs/errors.md."
  }))
{}
