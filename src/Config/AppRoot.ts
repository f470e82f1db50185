import { existsSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"

/**
 * The directory that holds package.json and migrations/: the checkout, or /app in the
 * image. Found by walking up from this module rather than at a fixed depth, because the
 * same code runs from src/Config/ (tests, the benchmark) and from the bundle's chunks
 * (dist/server/ or dist/server/chunks/, docs/adr/0011).
 */
const findAppRoot = (start: string): string => {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, "package.json")) && existsSync(path.join(dir, "migrations"))) return dir
    if (path.dirname(dir) === dir) return path.resolve(start, "../..")
  }
}

export const appRoot = findAppRoot(path.dirname(fileURLToPath(import.meta.url)))
