import { HttpApiMiddleware, HttpApiSecurity } from "effect/http-api"
import { RateLimited, Unauthorized } from "../Domain/Errors.ts"
import { CurrentPrincipal } from "./Principal.ts"

/**
 * Bearer authentication for every `/v1` endpoint. The credential is an API key
 * (`Authorization: Bearer fmn_…`) or a user's access JWT (`Bearer eyJ…`,
 * from `POST /v1/auth/login`); the middleware resolves either to the one
 * `CurrentPrincipal` or answers 401.
 */
export class Authentication extends HttpApiMiddleware.Service<Authentication, {
  provides: CurrentPrincipal
  requires: never
}>()("foreman/Authentication", {
  security: { bearer: HttpApiSecurity.bearer },
  error: [Unauthorized, RateLimited]
}) {}
