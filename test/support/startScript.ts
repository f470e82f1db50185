/**
 * What `npm start` runs, read from package.json, so the bundle test, the
 * HTTP benchmark and the Dockerfile check (deploy.test.ts) use exactly the
 * command `npm start` runs (ADR 0002). No vitest import here: the benchmark
 * harness uses this module too.
 */
import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

export interface NodeCommand {
  /** Environment assignments before `node`, e.g. `MALLOC_ARENA_MAX=2`. */
  readonly env: Readonly<Record<string, string>>
  /** The `node` flags before the script, e.g. `--max-semi-space-size=8`. */
  readonly flags: ReadonlyArray<string>
  /** The script, relative to the repository root, e.g. `dist/server/main.js`. */
  readonly script: string
}

const assignment = /^([A-Z_][A-Z0-9_]*)=(\S*)$/

/** Parses `build && NAME=value… node <flags…> <script>`: the command after the last `&&`, split on spaces. */
export const parseStartScript = (start: string): NodeCommand => {
  const words = (start.split("&&").at(-1) ?? "").split(" ").filter((word) => word !== "")
  const env: Record<string, string> = {}
  let at = 0
  for (let match = assignment.exec(words[at] ?? ""); match !== null; match = assignment.exec(words[at] ?? "")) {
    env[match[1] ?? ""] = match[2] ?? ""
    at++
  }
  const [program, ...args] = words.slice(at)
  const flags = args.slice(0, -1)
  const script = args.at(-1)
  if (program !== "node" || script === undefined || script.startsWith("-") || flags.some((flag) => !flag.startsWith("-"))) {
    throw new Error(`expected the start script to end in '[NAME=value…] node <flags…> <script>', got '${start}'`)
  }
  return { env, flags, script }
}

/** The `node` command of package.json's `scripts.start`. */
export const startCommand = (): NodeCommand => {
  const manifest: unknown = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"))
  const scripts: unknown = typeof manifest === "object" && manifest !== null ? Reflect.get(manifest, "scripts") : undefined
  const start: unknown = typeof scripts === "object" && scripts !== null ? Reflect.get(scripts, "start") : undefined
  if (typeof start !== "string") throw new Error("package.json has no scripts.start")
  return parseStartScript(start)
}

/** `npm run build` in the repository root; throws with the build's output when it fails. */
export const buildBundle = () => {
  const result = spawnSync("npm", ["run", "build"], { cwd: root, encoding: "utf8" })
  if (result.error !== undefined) throw result.error
  if (result.status !== 0) {
    throw new Error(`npm run build exited with ${result.status ?? result.signal}\n${result.stdout}\n${result.stderr}`)
  }
}
