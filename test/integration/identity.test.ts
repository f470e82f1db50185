import { assert, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { SignJWT } from "jose"
import { createPrivateKey, createPublicKey, createSecretKey, randomUUID } from "node:crypto"
import { Me, TokenPair } from "../../src/Auth/IdentityApi.ts"
import { type Ed25519Jwk, generateJwk } from "../../src/Auth/Secrets.ts"
import type { ProjectId } from "../../src/Domain/Ids.ts"
import { Member } from "../../src/Members/Api.ts"
import { User } from "../../src/Users/Api.ts"
import {
  assertEnvelope,
  createQueue,
  jobRequest,
  missingId,
  setupProject,
  withoutRequestId
} from "../support/fixtures.ts"
import { testJwk } from "../support/identity.ts"
import { adminToken, raw, type RawResponse, TestApp } from "../support/TestApp.ts"

const json = (body: unknown) => JSON.stringify(body)
const decodeUser = Schema.decodeUnknownSync(Schema.toCodecJson(User))
const decodePair = Schema.decodeUnknownSync(TokenPair)
const decodeMe = Schema.decodeUnknownSync(Me)
const decodeMember = Schema.decodeUnknownSync(Schema.toCodecJson(Member))
const password = "correct horse battery staple"

const expectStatus = (response: RawResponse, status: number, what: string) =>
  assert.strictEqual(response.status, status, `${what}: expected ${status}, got ${response.status} ${response.text}`)

let counter = 0
/** Creates a user through the platform-admin API and returns it with its email. */
const createUser = (name = "Some One") =>
  Effect.gen(function*() {
    counter += 1
    const email = `user${counter}-${randomUUID().slice(0, 8)}@example.com`
    const response = yield* raw("POST", "/v1/users", { token: adminToken, body: json({ email, password, name }) })
    expectStatus(response, 201, "create user")
    return decodeUser(response.body)
  })

const login = (email: string, pass = password) =>
  raw("POST", "/v1/auth/login", { body: json({ email, password: pass }) })

/** A user logged in: its id and a token pair. */
const loggedIn = (name?: string) =>
  Effect.gen(function*() {
    const user = yield* createUser(name)
    const response = yield* login(user.email)
    expectStatus(response, 200, "login")
    return { user, tokens: decodePair(response.body) }
  })

const refresh = (token: string) => raw("POST", "/v1/auth/refresh", { body: json({ refresh_token: token }) })

const addMember = (token: string, projectId: ProjectId, userId: string, role: string) =>
  raw("POST", `/v1/projects/${projectId}/members`, { token, body: json({ user_id: userId, role }) })

layer(TestApp(), { timeout: 120_000, excludeTestServices: true })("identity", (it) => {
  it.effect("platform admins create and list users; passwords are bounded; emails unique case-insensitively", () =>
    Effect.gen(function*() {
      const user = yield* createUser("Ada")
      assert.strictEqual(user.name, "Ada")
      assert.notProperty(user, "password_hash")
      assert.notProperty(user, "password")

      const duplicate = yield* raw("POST", "/v1/users", {
        token: adminToken,
        body: json({ email: `  ${user.email.toUpperCase()} `, password, name: "Copy" })
      })
      assertEnvelope(duplicate, 409, "Conflict")

      const short = yield* raw("POST", "/v1/users", {
        token: adminToken,
        body: json({ email: "short@example.com", password: "elevenchars", name: "S" })
      })
      assertEnvelope(short, 400, "ValidationError")
      const long = yield* raw("POST", "/v1/users", {
        token: adminToken,
        body: json({ email: "long@example.com", password: "x".repeat(1025), name: "L" })
      })
      assertEnvelope(long, 400, "ValidationError")
      const nul = yield* raw("POST", "/v1/users", {
        token: adminToken,
        body: json({ email: "nul@example.com", password: "abcdefghijkl\u0000mn", name: "N" })
      })
      assertEnvelope(nul, 400, "ValidationError")

      // A client cannot choose the id.
      const chosenId = "01a20623-99f0-7045-96c5-2e9f574d7199"
      const withId = yield* raw("POST", "/v1/users", {
        token: adminToken,
        body: json({ id: chosenId, email: "chosen@example.com", password, name: "Chosen" })
      })
      if (withId.status === 201) assert.notStrictEqual(decodeUser(withId.body).id, chosenId)
      else assertEnvelope(withId, 400, "ValidationError")

      // Non-ASCII emails are lower-cased by the application (İ grows when lower-cased) and still log in.
      const unicode = yield* raw("POST", "/v1/users", {
        token: adminToken,
        body: json({ email: "ÖZİL@Example.com", password, name: "Unicode" })
      })
      expectStatus(unicode, 201, "unicode email")
      expectStatus(yield* login("özİl@example.COM"), 200, "unicode login")
      assertValidation(
        yield* raw("POST", "/v1/users", {
          token: adminToken,
          body: json({ email: `${"İ".repeat(200)}@example.com`, password, name: "Long" })
        })
      )

      const list = yield* raw("GET", "/v1/users?limit=200", { token: adminToken })
      expectStatus(list, 200, "list users")
      assert.include(list.text, user.email)
      assert.notInclude(list.text, "argon2")

      const project = yield* setupProject("users are platform-only")
      for (const token of [project.tokens.admin, project.tokens.viewer]) {
        assertEnvelope(yield* raw("GET", "/v1/users", { token }), 403, "Forbidden")
        assertEnvelope(
          yield* raw("POST", "/v1/users", { token, body: json({ email: "x@example.com", password, name: "X" }) }),
          403,
          "Forbidden"
        )
      }
      const { tokens } = yield* loggedIn()
      assertEnvelope(yield* raw("GET", "/v1/users", { token: tokens.access_token }), 403, "Forbidden")
    }))

  it.effect("login returns a token pair; a wrong password and an unknown email are the same 401", () =>
    Effect.gen(function*() {
      const user = yield* createUser()
      const ok = yield* login(`  ${user.email.toUpperCase()}  `)
      expectStatus(ok, 200, "login")
      const pair = decodePair(ok.body)
      assert.strictEqual(pair.token_type, "Bearer")
      assert.strictEqual(pair.expires_in, 900)
      assert.match(pair.access_token, /^eyJ[\w-]+\.[\w-]+\.[\w-]+$/)
      assert.match(pair.refresh_token, /^fmr_[\w-]{43}$/)

      const wrong = assertEnvelope(yield* login(user.email, "not the password at all"), 401, "Unauthorized")
      const unknown = assertEnvelope(yield* login("nobody@example.com", "not the password at all"), 401, "Unauthorized")
      assert.deepStrictEqual(withoutRequestId(wrong), withoutRequestId(unknown))
    }))

  it.effect("an unknown email costs the same Argon2 work as a wrong password (dummy hash)", () =>
    Effect.gen(function*() {
      const user = yield* createUser()
      const once = (email: string) =>
        Effect.gen(function*() {
          const start = performance.now()
          expectStatus(yield* login(email, "wrong password here"), 401, "login")
          return performance.now() - start
        })
      // Interleaved, so load on the machine shifts both series alike; medians of seven.
      const known: Array<number> = []
      const unknown: Array<number> = []
      for (let i = 0; i < 7; i++) {
        known.push(yield* once(user.email))
        unknown.push(yield* once(`missing-${randomUUID()}@example.com`))
      }
      const median = (values: Array<number>) => values.sort((a, b) => a - b)[3] ?? 0
      const wrongPassword = median(known)
      const unknownEmail = median(unknown)
      // Without the dummy verification an unknown email would answer in a small fraction
      // (well under a tenth) of the time of an Argon2 verification.
      assert.isAbove(unknownEmail, wrongPassword * 0.3, `unknown ${unknownEmail}ms vs wrong ${wrongPassword}ms`)
    }))

  it.effect("GET /v1/me shows an API key's and a user's identity and roles", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("me")
      const asPlatform = decodeMe((yield* raw("GET", "/v1/me", { token: adminToken })).body)
      assert.strictEqual(asPlatform.kind, "api_key")
      assert.isTrue(asPlatform.platform_admin)
      assert.deepStrictEqual(asPlatform.roles, [])

      const asProducer = decodeMe((yield* raw("GET", "/v1/me", { token: project.tokens.producer })).body)
      assert.deepStrictEqual(asProducer, {
        kind: "api_key",
        id: project.keyIds.producer,
        email: null,
        name: null,
        platform_admin: false,
        roles: [{ project_id: project.projectId, role: "producer" }]
      })

      const { tokens, user } = yield* loggedIn("Grace")
      expectStatus(yield* addMember(adminToken, project.projectId, user.id, "reviewer"), 201, "add member")
      const asUser = decodeMe((yield* raw("GET", "/v1/me", { token: tokens.access_token })).body)
      assert.deepStrictEqual(asUser, {
        kind: "user",
        id: user.id,
        email: user.email,
        name: "Grace",
        platform_admin: false,
        roles: [{ project_id: project.projectId, role: "reviewer" }]
      })
      assertEnvelope(yield* raw("GET", "/v1/me"), 401, "Unauthorized")
    }))

  it.effect("refresh rotates the token; replaying a used one revokes the family: siblings and access tokens 401", () =>
    Effect.gen(function*() {
      const { tokens } = yield* loggedIn()
      const first = yield* refresh(tokens.refresh_token)
      expectStatus(first, 200, "first refresh")
      const second = decodePair(first.body)
      assert.notStrictEqual(second.refresh_token, tokens.refresh_token)
      assert.notStrictEqual(second.access_token, tokens.access_token)
      expectStatus(yield* raw("GET", "/v1/me", { token: second.access_token }), 200, "new access token")

      // The first token again: reuse. 401, and the whole family is gone.
      assertEnvelope(yield* refresh(tokens.refresh_token), 401, "Unauthorized")
      assertEnvelope(yield* refresh(second.refresh_token), 401, "Unauthorized")
      assertEnvelope(yield* raw("GET", "/v1/me", { token: second.access_token }), 401, "Unauthorized")
      assertEnvelope(yield* raw("GET", "/v1/me", { token: tokens.access_token }), 401, "Unauthorized")

      // Another login is a new family, unaffected.
      assertEnvelope(yield* refresh("fmr_not-a-token"), 401, "Unauthorized")
    }))

  it.effect("two concurrent refreshes of one token: exactly one wins, the other is reuse and ends the family", () =>
    Effect.gen(function*() {
      const { tokens } = yield* loggedIn()
      const [a, b] = yield* Effect.all([refresh(tokens.refresh_token), refresh(tokens.refresh_token)], {
        concurrency: 2
      })
      const statuses = [a.status, b.status].sort()
      assert.deepStrictEqual(statuses, [200, 401], `got ${a.text} / ${b.text}`)
      const winner = decodePair((a.status === 200 ? a : b).body)
      assertEnvelope(yield* refresh(winner.refresh_token), 401, "Unauthorized")
      assertEnvelope(yield* raw("GET", "/v1/me", { token: winner.access_token }), 401, "Unauthorized")
    }))

  it.effect("logout revokes the family: refresh and access tokens stop working; logout is idempotent", () =>
    Effect.gen(function*() {
      const { tokens } = yield* loggedIn()
      const other = yield* loggedIn()
      const out = yield* raw("POST", "/v1/auth/logout", { body: json({ refresh_token: tokens.refresh_token }) })
      expectStatus(out, 204, "logout")
      assertEnvelope(yield* refresh(tokens.refresh_token), 401, "Unauthorized")
      assertEnvelope(yield* raw("GET", "/v1/me", { token: tokens.access_token }), 401, "Unauthorized")
      expectStatus(
        yield* raw("POST", "/v1/auth/logout", { body: json({ refresh_token: tokens.refresh_token }) }),
        204,
        "second logout"
      )
      expectStatus(
        yield* raw("POST", "/v1/auth/logout", { body: json({ refresh_token: "fmr_unknown" }) }),
        204,
        "unknown logout"
      )
      // Another session of another user is untouched.
      expectStatus(yield* raw("GET", "/v1/me", { token: other.tokens.access_token }), 200, "other session")
    }))

  it.effect("memberships: roles per project for users, owner/admin manage members, others 403, non-members 404", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("members")
      const { projectId } = project
      yield* createQueue(projectId, "work")
      const owner = yield* loggedIn("Owner")
      const admin = yield* loggedIn("Admin")
      const producer = yield* loggedIn("Producer")
      const viewer = yield* loggedIn("Viewer")
      const outsider = yield* loggedIn("Outsider")

      // The platform admin seeds the first owner; the project admin key cannot grant owner.
      assertEnvelope(yield* addMember(project.tokens.admin, projectId, owner.user.id, "owner"), 403, "Forbidden")
      const seeded = yield* addMember(adminToken, projectId, owner.user.id, "owner")
      expectStatus(seeded, 201, "seed owner")
      assert.strictEqual(decodeMember(seeded.body).role, "owner")

      const ownerToken = owner.tokens.access_token
      expectStatus(yield* addMember(ownerToken, projectId, admin.user.id, "admin"), 201, "owner adds admin")
      const adminToken_ = admin.tokens.access_token
      expectStatus(yield* addMember(adminToken_, projectId, producer.user.id, "producer"), 201, "admin adds producer")
      expectStatus(yield* addMember(adminToken_, projectId, viewer.user.id, "viewer"), 201, "admin adds viewer")
      assertEnvelope(yield* addMember(adminToken_, projectId, viewer.user.id, "viewer"), 409, "Conflict")
      assertEnvelope(yield* addMember(adminToken_, projectId, missingId, "viewer"), 404, "NotFound")
      assertEnvelope(yield* addMember(adminToken_, projectId, outsider.user.id, "owner"), 403, "Forbidden")
      assertValidation(yield* addMember(adminToken_, projectId, outsider.user.id, "platform_admin"))

      const base = `/v1/projects/${projectId}/members`
      const list = yield* raw("GET", base, { token: adminToken_ })
      expectStatus(list, 200, "list members")
      assert.lengthOf(Schema.decodeUnknownSync(Schema.toCodecJson(Schema.Struct({ items: Schema.Array(Member) })))(list.body).items, 4)

      // Admins cannot touch owners; owners can.
      assertEnvelope(
        yield* raw("PATCH", `${base}/${owner.user.id}`, { token: adminToken_, body: json({ role: "viewer" }) }),
        403,
        "Forbidden"
      )
      assertEnvelope(yield* raw("DELETE", `${base}/${owner.user.id}`, { token: adminToken_ }), 403, "Forbidden")
      // The last owner cannot step down.
      assertEnvelope(
        yield* raw("PATCH", `${base}/${owner.user.id}`, { token: ownerToken, body: json({ role: "admin" }) }),
        409,
        "Conflict"
      )
      // Fields a client does not own are not settable through PATCH.
      const patched = yield* raw("PATCH", `${base}/${viewer.user.id}`, {
        token: adminToken_,
        body: json({ role: "viewer", project_id: missingId, user_id: missingId })
      })
      if (patched.status === 200) {
        const member = decodeMember(patched.body)
        assert.strictEqual(member.project_id, projectId)
        assert.strictEqual(member.user_id, viewer.user.id)
      } else assertEnvelope(patched, 400, "ValidationError")

      // Role enforcement for users, through the same policy as keys.
      const producerToken = producer.tokens.access_token
      const viewerToken = viewer.tokens.access_token
      expectStatus(
        yield* raw("POST", `/v1/projects/${projectId}/jobs`, { token: producerToken, body: json(jobRequest("work")) }),
        201,
        "producer enqueues"
      )
      assertEnvelope(
        yield* raw("POST", `/v1/projects/${projectId}/jobs`, { token: viewerToken, body: json(jobRequest("work")) }),
        403,
        "Forbidden"
      )
      expectStatus(yield* raw("GET", `/v1/projects/${projectId}/jobs`, { token: viewerToken }), 200, "viewer reads")
      assertEnvelope(yield* raw("GET", base, { token: viewerToken }), 403, "Forbidden")
      assertEnvelope(yield* raw("GET", base, { token: producerToken }), 403, "Forbidden")
      assertEnvelope(
        yield* raw("POST", `/v1/projects/${projectId}/queues`, { token: viewerToken, body: json({ name: "nope" }) }),
        403,
        "Forbidden"
      )
      assertEnvelope(
        yield* raw("POST", `/v1/projects/${projectId}/api-keys`, {
          token: viewerToken,
          body: json({ name: "k", role: "admin" })
        }),
        403,
        "Forbidden"
      )
      expectStatus(
        yield* raw("POST", `/v1/projects/${projectId}/api-keys`, {
          token: adminToken_,
          body: json({ name: "k", role: "viewer" })
        }),
        201,
        "admin user creates a key"
      )
      assertEnvelope(yield* raw("POST", "/v1/projects", { token: ownerToken, body: json({ name: "p" }) }), 403, "Forbidden")

      // A user sees only the projects they belong to.
      const other = yield* setupProject("someone else's")
      const listed = yield* raw("GET", "/v1/projects", { token: viewerToken })
      assert.include(listed.text, projectId)
      assert.notInclude(listed.text, other.projectId)
      const outsiderList = yield* raw("GET", "/v1/projects", { token: outsider.tokens.access_token })
      assert.deepStrictEqual(outsiderList.body, { items: [], next_cursor: null })

      // A project the user is not a member of is 404, identical to a missing one.
      for (const token of [outsider.tokens.access_token, ownerToken]) {
        const foreign = assertEnvelope(yield* raw("GET", `/v1/projects/${other.projectId}`, { token }), 404, "NotFound")
        const missing = assertEnvelope(yield* raw("GET", `/v1/projects/${missingId}`, { token }), 404, "NotFound")
        assert.deepStrictEqual(withoutRequestId(foreign), withoutRequestId(missing))
        assertEnvelope(yield* raw("GET", `/v1/projects/${other.projectId}/members`, { token }), 404, "NotFound")
      }

      // Role changes apply to the next request of the same access token.
      expectStatus(
        yield* raw("PATCH", `${base}/${viewer.user.id}`, { token: ownerToken, body: json({ role: "producer" }) }),
        200,
        "promote"
      )
      expectStatus(
        yield* raw("POST", `/v1/projects/${projectId}/jobs`, { token: viewerToken, body: json(jobRequest("work")) }),
        201,
        "promoted viewer enqueues"
      )
      expectStatus(yield* raw("DELETE", `${base}/${viewer.user.id}`, { token: adminToken_ }), 204, "remove")
      assertEnvelope(yield* raw("GET", `/v1/projects/${projectId}/jobs`, { token: viewerToken }), 404, "NotFound")
      assertEnvelope(yield* raw("DELETE", `${base}/${viewer.user.id}`, { token: adminToken_ }), 404, "NotFound")

      // A second owner lets the first one step down.
      expectStatus(
        yield* raw("PATCH", `${base}/${admin.user.id}`, { token: ownerToken, body: json({ role: "owner" }) }),
        200,
        "promote to owner"
      )
      expectStatus(
        yield* raw("PATCH", `${base}/${owner.user.id}`, { token: adminToken_, body: json({ role: "admin" }) }),
        200,
        "new owner demotes the old one"
      )
    }))

  it.effect("forged, tampered and malformed access tokens are all the same 401", () =>
    Effect.gen(function*() {
      const { tokens, user } = yield* loggedIn()
      const valid = yield* raw("GET", "/v1/me", { token: tokens.access_token })
      expectStatus(valid, 200, "genuine token")
      const { sid } = Schema.decodeUnknownSync(Schema.fromJsonString(Schema.Struct({ sid: Schema.String })))(
        Buffer.from(tokens.access_token.split(".")[1] ?? "", "base64url").toString("utf8")
      )
      const now = Math.floor(Date.now() / 1000)
      const claims = { iss: "foreman", aud: "foreman-api", sub: user.id, sid, jti: randomUUID(), iat: now, nbf: now, exp: now + 600 }
      const ownKey = createPrivateKeyFrom(testJwk)
      const sign = (
        payload: Record<string, unknown>,
        header: Record<string, unknown> = {},
        key: Parameters<SignJWT["sign"]>[0] = ownKey
      ) =>
        Effect.promise(() =>
          new SignJWT(payload).setProtectedHeader({ alg: "EdDSA", kid: testJwk.kid, typ: "at+jwt", ...header }).sign(key)
        )
      // Sanity check: the forging helper produces a token the server accepts.
      expectStatus(yield* raw("GET", "/v1/me", { token: yield* sign(claims) }), 200, "forged with the real key")

      const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")
      const publicDer = createPublicKey(ownKey).export({ format: "der", type: "spki" })
      const otherKey = createPrivateKeyFrom(generateJwk(testJwk.kid))
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["alg none", `${b64({ alg: "none", typ: "at+jwt", kid: testJwk.kid })}.${b64(claims)}.`],
        ["alg none with a signature", `${b64({ alg: "none", typ: "at+jwt", kid: testJwk.kid })}.${b64(claims)}.AAAA`],
        ["HS256 keyed with the public key", yield* sign(claims, { alg: "HS256" }, createSecretKey(publicDer))],
        ["signed by another key with the same kid", yield* sign(claims, {}, otherKey)],
        ["unknown kid", yield* sign(claims, { kid: "no-such-key" })],
        ["no kid", yield* sign(claims, { kid: undefined })],
        ["wrong audience", yield* sign({ ...claims, aud: "someone-else" })],
        ["wrong issuer", yield* sign({ ...claims, iss: "evil" })],
        ["wrong typ", yield* sign(claims, { typ: "JWT" })],
        ["missing typ", yield* sign(claims, { typ: undefined })],
        ["expired beyond the leeway", yield* sign({ ...claims, iat: now - 3600, nbf: now - 3600, exp: now - 60 })],
        ["not yet valid beyond the leeway", yield* sign({ ...claims, nbf: now + 120 })],
        ["missing jti", yield* sign({ ...claims, jti: undefined })],
        ["unknown session", yield* sign({ ...claims, sid: randomUUID() })],
        ["another user's id in the session", yield* sign({ ...claims, sub: randomUUID() })],
        ["tampered payload", `${tokens.access_token.split(".")[0]}.${b64({ ...claims, sub: randomUUID() })}.${tokens.access_token.split(".")[2]}`],
        ["malformed", "eyJhbGciOiJFZERTQSJ9.not-json.sig"],
        ["truncated", tokens.access_token.slice(0, -5)],
        ["garbage", "eyJ.x.y"]
      ]
      const reference = withoutRequestId(
        assertEnvelope(yield* raw("GET", "/v1/me", { token: "eyJ.x.y" }), 401, "Unauthorized")
      )
      for (const [name, token] of cases) {
        const response = yield* raw("GET", "/v1/me", { token })
        assert.strictEqual(response.status, 401, `${name}: ${response.status} ${response.text}`)
        assert.deepStrictEqual(withoutRequestId(assertEnvelope(response, 401, "Unauthorized")), reference, name)
      }
      // Within the clock-skew leeway (30 s) a just-expired token is still accepted.
      expectStatus(
        yield* raw("GET", "/v1/me", { token: yield* sign({ ...claims, exp: now - 5 }) }),
        200,
        "expired within the leeway"
      )
    }))

  it.effect("API keys keep working beside JWTs: revoked and malformed keys are 401", () =>
    Effect.gen(function*() {
      const project = yield* setupProject("keys and users")
      expectStatus(yield* raw("GET", "/v1/me", { token: project.tokens.viewer }), 200, "key works")
      const revoked = yield* raw("DELETE", `/v1/projects/${project.projectId}/api-keys/${project.keyIds.viewer}`, {
        token: project.tokens.admin
      })
      expectStatus(revoked, 200, "revoke")
      assertEnvelope(yield* raw("GET", "/v1/me", { token: project.tokens.viewer }), 401, "Unauthorized")
      assertEnvelope(yield* raw("GET", "/v1/me", { token: `${project.tokens.admin}x` }), 401, "Unauthorized")
      assertEnvelope(yield* raw("GET", "/v1/me", { token: "fmn_short" }), 401, "Unauthorized")
      // A refresh token is not a bearer credential.
      const { tokens } = yield* loggedIn()
      assertEnvelope(yield* raw("GET", "/v1/me", { token: tokens.refresh_token }), 401, "Unauthorized")
    }))
})

const assertValidation = (response: RawResponse) => assertEnvelope(response, 400, "ValidationError")

function createPrivateKeyFrom(jwk: Ed25519Jwk) {
  return createPrivateKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, d: jwk.d ?? "" }, format: "jwk" })
}
