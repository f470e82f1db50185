import { Context, Effect, Layer } from "effect"
import { hashPassword } from "../Auth/Password.ts"
import { requirePlatformAdmin } from "../Auth/Policy.ts"
import type { CurrentPrincipal } from "../Auth/Principal.ts"
import { IdentitySecrets } from "../Auth/Secrets.ts"
import { Conflict, type Forbidden, type ValidationError } from "../Domain/Errors.ts"
import { newId, UserId } from "../Domain/Ids.ts"
import { decodeCursor, defaultLimit, toPage, type PageOptions, type PageOf } from "../Domain/Pagination.ts"
import type { CreateUser, User } from "./Api.ts"
import { normalizeEmail } from "./Email.ts"
import { UsersRepo } from "./UsersRepo.ts"


export class Users extends Context.Service<Users, {
  create(input: CreateUser): Effect.Effect<User, Forbidden | Conflict, CurrentPrincipal>
  list(
    options: PageOptions
  ): Effect.Effect<
    PageOf<User>,
    Forbidden | ValidationError,
    CurrentPrincipal
  >
}>()("foreman/Users") {
  static readonly layer = Layer.effect(
    Users,
    Effect.gen(function*() {
      const repo = yield* UsersRepo
      const secrets = yield* IdentitySecrets

      const create = Effect.fn("Users.create")(function*(input: CreateUser) {
        yield* requirePlatformAdmin()
        const passwordHash = yield* hashPassword(input.password, secrets.pepper)
        const user = yield* repo.insert({
          id: UserId.make(newId()),
          email: normalizeEmail(input.email),
          name: input.name,
          password_hash: passwordHash
        })
        if (user === undefined) return yield* new Conflict({ message: "a user with this email already exists" })
        return user
      })

      const list = Effect.fn("Users.list")(function*(
        options: PageOptions
      ) {
        yield* requirePlatformAdmin()
        const after = yield* decodeCursor(options.cursor)
        const limit = options.limit ?? defaultLimit
        const rows = yield* repo.list(after, limit + 1)
        return toPage(rows, limit, (user) => user.id)
      })

      return Users.of({ create, list })
    })
  )
}
