import { Schema } from "effect"
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "effect/http-api"
import { normalizeEmail } from "./Email.ts"
import { Authentication } from "../Auth/Api.ts"
import { maxPasswordLength, minPasswordLength } from "../Auth/Password.ts"
import { Conflict, Forbidden, ValidationError } from "../Domain/Errors.ts"
import { UserId } from "../Domain/Ids.ts"
import { ShortText, storableText } from "../Domain/Json.ts"
import { Page, PageQuery } from "../Domain/Pagination.ts"

/**
 * An email address as typed; compared and stored trimmed and lower-cased, and
 * at most 254 characters in that form. Deliberately loose (one `@`, no
 * spaces): deliverability is not checked.
 */
export const Email = Schema.String.check(
  Schema.isMaxLength(320),
  Schema.isPattern(/^\s*[^\s@]+@[^\s@]+\s*$/, { message: "must be an email address" }),
  Schema.makeFilter((text: string) => storableText(text)),
  Schema.makeFilter((text: string) => normalizeEmail(text).length <= 254 || "must be at most 254 characters")
)

/** A new password: 12 to 1024 characters. */
export const NewPassword = Schema.String.check(
  Schema.isMinLength(minPasswordLength, { message: `must be at least ${minPasswordLength} characters` }),
  Schema.isMaxLength(maxPasswordLength, { message: `must be at most ${maxPasswordLength} characters` }),
  Schema.makeFilter((text: string) => storableText(text))
)

export const User = Schema.Struct({
  id: UserId,
  email: Schema.String,
  name: Schema.String,
  created_at: Schema.Date,
  updated_at: Schema.Date
}).annotate({ identifier: "User" })
export type User = typeof User.Type

export const CreateUser = Schema.Struct({
  email: Email,
  password: NewPassword,
  name: ShortText
}).annotate({ identifier: "CreateUser" })
export type CreateUser = typeof CreateUser.Type

export class UsersApi extends HttpApiGroup.make("users")
  .add(
    HttpApiEndpoint.post("create", "/v1/users", {
      payload: CreateUser,
      success: User.pipe(Schema.annotate({ httpApiStatus: 201 })),
      error: [Forbidden, Conflict]
    }),
    HttpApiEndpoint.get("list", "/v1/users", {
      query: PageQuery,
      success: Page(User),
      error: [Forbidden, ValidationError]
    })
  )
  .middleware(Authentication)
  .annotateMerge(OpenApi.annotations({
    title: "Users",
    description: "People who log in with a password. Platform administrators create and list them."
  }))
{}
