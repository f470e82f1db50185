import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Option, Redacted } from "effect"
import { FetchHttpClient, HttpClient, HttpClientRequest, HttpServer } from "effect/http"
import { HttpApiClient } from "effect/http-api"
import { randomBytes } from "node:crypto"
import { inject } from "vitest"
import { AppConfig, type AppConfigShape } from "../../src/Config/AppConfig.ts"
import { Api } from "../../src/Http/Api.ts"
import { makeApp } from "../../src/Server.ts"
import { testJwtKeys, testPepper } from "./identity.ts"

/** The bootstrap platform-admin key of every test database. */
export const adminToken = "test-platform-admin-key-0123456789abcdef"

/** A fresh database per test file, inside the run's PostgreSQL, so files can run in parallel. */
export const createTestDatabase = Effect.gen(function*() {
  const base = new URL(inject("databaseUrl"))
  const name = `foreman_test_${randomBytes(6).toString("hex")}`
  yield* Effect.gen(function*() {
    const sql = yield* PgClient.PgClient
    yield* sql.unsafe(`CREATE DATABASE ${name}`)
  }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(base.toString()), maxConnections: 1 })), Effect.orDie)
  base.pathname = `/${name}`
  return base.toString()
})

export const testConfig = (url: string, overrides: Partial<AppConfigShape> = {}) =>
  AppConfig.layerWith({
    port: 0,
    host: "127.0.0.1",
    databaseUrl: Option.some(Redacted.make(url)),
    adminApiKey: Option.some(Redacted.make(adminToken)),
    passwordPepper: Option.some(Redacted.make(testPepper)),
    jwtKeys: Option.some(Redacted.make(testJwtKeys)),
    databasePoolSize: 4,
    // Tests log in and call far more often than a person; the limits have tests of their own.
    rateLimitLogin: 100_000,
    rateLimitPerAddress: 100_000_000,
    rateLimitPerPrincipal: 100_000_000,
    ...overrides
  })

/**
 * The real service, on an ephemeral port, against a fresh database. `observability`
 * (a tracer, say) is provided to the whole service; by default nothing is.
 */
export const TestApp = <E = never>(overrides: Partial<AppConfigShape> = {}, observability?: Layer.Layer<never, E>) =>
  Layer.unwrap(Effect.map(createTestDatabase, (url) => makeApp(testConfig(url, overrides)))).pipe(
    Layer.provide(observability ?? Layer.empty),
    Layer.provideMerge(FetchHttpClient.layer)
  )

export const baseUrl = Effect.gen(function*() {
  const server = yield* HttpServer.HttpServer
  const address = server.address
  if (address._tag === "UnixPathAddress") return yield* Effect.die(new Error("expected a TCP address"))
  return `http://127.0.0.1:${address.port}`
})

/** A typed client derived from the same HttpApi definition, authenticated with `token`. */
export const clientFor = (token: string | undefined) =>
  Effect.gen(function*() {
    const url = yield* baseUrl
    return yield* HttpApiClient.make(Api, {
      baseUrl: url,
      transformClient: (client) =>
        token === undefined ? client : HttpClient.mapRequest(client, HttpClientRequest.bearerToken(token))
    })
  })

export interface RawResponse {
  readonly status: number
  readonly headers: Headers
  readonly body: unknown
  readonly text: string
}

/** A plain request, for what a typed client cannot send: malformed JSON, wrong types, odd headers. */
export const raw = (
  method: string,
  path: string,
  options: { readonly token?: string; readonly body?: string; readonly headers?: Record<string, string> } = {}
) =>
  Effect.gen(function*() {
    const url = yield* baseUrl
    const headers: Record<string, string> = { ...options.headers }
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
    if (options.body !== undefined && headers["content-type"] === undefined) headers["content-type"] = "application/json"
    return yield* Effect.promise(async (): Promise<RawResponse> => {
      const response = await fetch(url + path, { method, headers, body: options.body ?? null })
      const text = await response.text()
      let body: unknown = undefined
      try {
        body = JSON.parse(text)
      } catch {
        body = undefined
      }
      return { status: response.status, headers: response.headers, body, text }
    })
  })
