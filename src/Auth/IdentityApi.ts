import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "effect/http-api"
import { RateLimited, Unauthorized } from "../Domain/Errors.ts"
import { ProjectId } from "../Domain/Ids.ts"
import { storableText } from "../Domain/Json.ts"
import { MemberRole } from "../Domain/Role.ts"
import { Authentication } from "./Api.ts"
import { maxPasswordLength } from "./Password.ts"

const Bounded = (max: number) =>
  Schema.String.check(Schema.isMaxLength(max), Schema.makeFilter((text: string) => storableText(text)))

export const Login = Schema.Struct({
  email: Bounded(254),
  password: Bounded(maxPasswordLength)
}).annotate({ identifier: "Login" })

export const RefreshRequest = Schema.Struct({
  refresh_token: Bounded(512)
}).annotate({ identifier: "RefreshRequest" })

export const TokenPair = Schema.Struct({
  access_token: Schema.String,
  token_type: Schema.Literal("Bearer"),
  /** Seconds until the access token expires. */
  expires_in: Schema.Number,
  refresh_token: Schema.String
}).annotate({ identifier: "TokenPair" })
export type TokenPair = typeof TokenPair.Type

export const Me = Schema.Struct({
  kind: Schema.Literals(["api_key", "user"]),
  /** The key id or the user id. */
  id: Schema.String,
  email: Schema.NullOr(Schema.String),
  name: Schema.NullOr(Schema.String),
  platform_admin: Schema.Boolean,
  roles: Schema.Array(Schema.Struct({ project_id: ProjectId, role: MemberRole }))
}).annotate({ identifier: "Me" })
export type Me = typeof Me.Type

export class AuthApi extends HttpApiGroup.make("auth")
  .add(
    HttpApiEndpoint.post("login", "/v1/auth/login", {
      payload: Login,
      success: TokenPair,
      error: [Unauthorized, RateLimited]
    }),
    HttpApiEndpoint.post("refresh", "/v1/auth/refresh", {
      payload: RefreshRequest,
      success: TokenPair,
      error: Unauthorized
    }),
    HttpApiEndpoint.post("logout", "/v1/auth/logout", {
      payload: RefreshRequest,
      success: HttpApiSchema.NoContent
    })
  )
  .annotateMerge(OpenApi.annotations({
    title: "Authentication",
    description: "Password login, refresh-token rotation and logout. No bearer token needed."
  }))
{}

export class MeApi extends HttpApiGroup.make("me")
  .add(
    HttpApiEndpoint.get("me", "/v1/me", { success: Me })
  )
  .middleware(Authentication)
  .annotateMerge(OpenApi.annotations({
    title: "Me",
    description: "Who the bearer token belongs to, and its roles."
  }))
{}
