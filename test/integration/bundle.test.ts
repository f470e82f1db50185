/**
 * The esbuild bundles (ADR 0002), end to end. `npm run build` builds both; the
 * server, started as `npm start` starts it, migrates, serves the API, runs a job
 * through a TypeScript handler module loaded at run time, and exits 0 on
 * SIGTERM; the migration CLI (what the image has instead of `node src/Sql/cli.ts`)
 * applies and reverts migrations. Every other test runs the sources.
 */
import { assert, beforeAll, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { spawnSync } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import path from "node:path"
import { exitWithin, root, rows, sideEffectDatabases, startService, stopNow, waitFor } from "../support/processes.ts"
import { buildBundle, startCommand } from "../support/startScript.ts"

const adminKey = "bundle-test-admin-key-0123456789abcdef"

const freshDatabase = sideEffectDatabases()

/** Every JavaScript file `npm run build` wrote: the two entry points and their chunks. */
const bundleFiles = () =>
  ["dist/server", "dist/server/chunks"].flatMap((dir) =>
    readdirSync(path.join(root, dir)).filter((name) => name.endsWith(".js")).map((name) => path.join(root, dir, name))
  )

beforeAll(() => {
  buildBundle()
})

const Created = Schema.Struct({ id: Schema.String })
const JobView = Schema.Struct({ id: Schema.String, state: Schema.String, result: Schema.NullOr(Schema.Json) })

/** One API call over HTTP with the admin key: the status and the decoded JSON body. */
const call = async (baseUrl: string, method: string, urlPath: string, body?: unknown) => {
  const response = await fetch(`${baseUrl}${urlPath}`, {
    method,
    headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
    body: body === undefined ? null : JSON.stringify(body),
    signal: AbortSignal.timeout(5000)
  })
  const json: unknown = await response.json()
  return { status: response.status, body: json }
}

const latestMigration = () =>
  Math.max(...readdirSync(path.join(root, "migrations")).flatMap((file) => {
    const match = /^(\d+)_.*\.up\.sql$/.exec(file)
    return match?.[1] === undefined ? [] : [Number(match[1])]
  }))

const AppliedVersion = Schema.Struct({ version: Schema.NullOr(Schema.Number) })
const appliedVersion = "SELECT max(version)::int AS version FROM foreman_schema_migrations"

const packageVersion = () =>
  Schema.decodeUnknownSync(Schema.fromJsonString(Schema.Struct({ version: Schema.String })))(
    readFileSync(path.join(root, "package.json"), "utf8")
  ).version

describe("the esbuild bundles (npm run build)", () => {
  it("every file of the bundle is one-byte text: V8 would keep a module's whole source as two bytes per character for one character above U+00FF", () => {
    const files = bundleFiles()
    assert.isAbove(files.length, 2, "main.js, cli.js and their chunks")
    const wide: Array<string> = []
    for (const file of files) {
      const source = readFileSync(file, "utf8")
      for (let i = 0; i < source.length && wide.length < 5; i++) {
        if (source.charCodeAt(i) <= 0xff) continue
        const line = source.slice(0, i).split("\n").length
        wide.push(`${path.relative(root, file)} line ${line}: ${JSON.stringify(source.slice(Math.max(0, i - 40), i + 10))}`)
      }
    }
    assert.deepStrictEqual(wide, [], "characters above U+00FF in the bundle (from a template literal in src/?)")
  })

  it("the server does not load Scalar's script (about 3 MB) until /docs is asked for (docs/adr/0011)", () => {
    // main.js and the chunks it imports statically, transitively: what starting the server loads.
    const loaded = new Set<string>()
    const visit = (file: string) => {
      if (loaded.has(file)) return
      loaded.add(file)
      const source = readFileSync(file, "utf8")
      for (const match of source.matchAll(/^import\s[^;]*?from\s*"(\.[^"]+)"|^import\s*"(\.[^"]+)"/gm)) {
        const target = match[1] ?? match[2]
        if (target !== undefined) visit(path.resolve(path.dirname(file), target))
      }
    }
    visit(path.join(root, "dist/server/main.js"))
    assert.isAbove(loaded.size, 1, "main.js imports shared chunks")
    const scalar = "Original file: /npm/@scalar/api-reference"
    assert.deepStrictEqual([...loaded].filter((file) => readFileSync(file, "utf8").includes(scalar)), [])
    assert.isTrue(bundleFiles().some((file) => readFileSync(file, "utf8").includes(scalar)), "Scalar's script is a chunk of its own")
  })

  it("the server, started as npm start starts it, migrates, serves the API, runs a handler module's job, and exits 0 on SIGTERM", async () => {
    const { url, db } = await freshDatabase()
    const { env, flags, script } = startCommand()
    assert.strictEqual(script, "dist/server/main.js")
    const service = await startService({
      databaseUrl: url,
      nodeArgs: [...flags, script],
      env: { ...env, FOREMAN_INSTANCE_ID: "bundle", FOREMAN_ADMIN_API_KEY: adminKey, FOREMAN_POLL_INTERVAL_MS: "100" }
    })
    try {
      // The migrations directory resolved from the bundle's chunks is the repository's.
      const applied = await rows(db, AppliedVersion, appliedVersion)
      assert.deepStrictEqual(applied, [{ version: latestMigration() }])

      const project = await call(service.baseUrl, "POST", "/v1/projects", { name: "bundle" })
      assert.strictEqual(project.status, 201, JSON.stringify(project.body))
      const projectId = Schema.decodeUnknownSync(Created)(project.body).id
      const queue = await call(service.baseUrl, "POST", `/v1/projects/${projectId}/queues`, { name: "work" })
      assert.strictEqual(queue.status, 201, JSON.stringify(queue.body))
      const payload = { from: "bundle", n: 7 }
      const enqueued = await call(service.baseUrl, "POST", `/v1/projects/${projectId}/jobs`, { queue: "work", kind: "echo", payload })
      assert.strictEqual(enqueued.status, 201, JSON.stringify(enqueued.body))
      const jobId = Schema.decodeUnknownSync(Created)(enqueued.body).id

      const read = async () => {
        const answer = await call(service.baseUrl, "GET", `/v1/projects/${projectId}/jobs/${jobId}`)
        assert.strictEqual(answer.status, 200, JSON.stringify(answer.body))
        return Schema.decodeUnknownSync(JobView)(answer.body)
      }
      assert.strictEqual((await read()).id, jobId)
      await waitFor(`job ${jobId} to succeed`, async () => (await read()).state === "succeeded", {
        timeoutMs: 20_000,
        describe: () => service.output().slice(-4000)
      })
      // `echo` (test/support/handlers.ts) returns its payload.
      assert.deepStrictEqual((await read()).result, payload)

      // /docs loads Scalar's script from its own chunk at the first request (docs/adr/0011).
      const docs = await fetch(`${service.baseUrl}/docs`)
      const page = await docs.text()
      assert.strictEqual(docs.status, 200, page.slice(0, 400))
      assert.include(page, "@scalar/api-reference", "the page inlines Scalar's script")

      // package.json resolved from the bundle is the repository's: the instance registers its version.
      const instances = await rows(db, Schema.Struct({ version: Schema.NullOr(Schema.String) }), "SELECT version FROM workers WHERE name = 'bundle'")
      assert.deepStrictEqual(instances, [{ version: packageVersion() }])

      service.kill("SIGTERM")
      const exit = await exitWithin(service, 15_000)
      assert.deepStrictEqual(exit, { code: 0, signal: null }, `exit after SIGTERM\n${service.output().slice(-4000)}`)
    } finally {
      await stopNow(service)
    }
  }, 60_000)

  it("the migration CLI bundle applies every migration, then reverts the latest", async () => {
    const { url, db } = await freshDatabase()
    const cli = (command: string) =>
      spawnSync(process.execPath, ["dist/server/cli.js", command], {
        cwd: root,
        env: { ...process.env, DATABASE_URL: url },
        encoding: "utf8",
        timeout: 30_000
      })
    const latest = latestMigration()

    const up = cli("up")
    assert.strictEqual(up.status, 0, `${up.stdout}\n${up.stderr}`)
    assert.include(up.stdout, "migrations: applied 1_foundation,")
    assert.deepStrictEqual(await rows(db, AppliedVersion, appliedVersion), [{ version: latest }])

    const down = cli("down")
    assert.strictEqual(down.status, 0, `${down.stdout}\n${down.stderr}`)
    assert.include(down.stdout, `migrations: reverted ${latest}_`)
    assert.deepStrictEqual(await rows(db, AppliedVersion, appliedVersion), [{ version: latest - 1 }])
  }, 60_000)
})
