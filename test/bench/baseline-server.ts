/**
 * The HTTP baseline: a bare `node:http` + `pg` server that does what an enqueue
 * must at least do, the same INSERT into Foreman's own `jobs` table (same
 * indexes, same database), and the same single-row read, without
 * authentication, validation, events, NOTIFY, logging or metrics.
 *
 * `node test/bench/baseline-server.ts` with PORT, DATABASE_URL, BENCH_PROJECT_ID,
 * BENCH_QUEUE and BENCH_POOL_SIZE; prints `ready` once listening.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import { Pool } from "pg"
import { v7 } from "uuid"

const projectId = process.env.BENCH_PROJECT_ID ?? ""
const queue = process.env.BENCH_QUEUE ?? "bench"
const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.BENCH_POOL_SIZE ?? 10) })

const columns = "id, project_id, queue, kind, payload, priority, state, attempt, max_attempts, timeout_ms, run_at, created_at, updated_at"
const insertOne = `INSERT INTO jobs (id, project_id, queue, kind, payload, priority, state, run_at, max_attempts, timeout_ms)
  VALUES ($1, $2, $3, $4, $5, 2, 'available', now(), 25, 60000) RETURNING ${columns}`
const insertMany = `INSERT INTO jobs (id, project_id, queue, kind, payload, priority, state, run_at, max_attempts, timeout_ms)
  SELECT i.id, $2, $3, i.kind, i.payload, 2, 'available', now(), 25, 60000
  FROM unnest($1::uuid[], $4::text[], $5::jsonb[]) AS i(id, kind, payload) RETURNING ${columns}`
const selectOne = `SELECT ${columns} FROM jobs WHERE project_id = $1 AND id = $2`

interface JobInput {
  readonly kind: string
  readonly payload: unknown
}

const isJobInput = (u: unknown): u is JobInput =>
  typeof u === "object" && u !== null && "kind" in u && typeof u.kind === "string" && "payload" in u

const body = (request: IncomingMessage) =>
  new Promise<unknown>((resolve, reject) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")))
      } catch (error) {
        reject(error)
      }
    })
    request.on("error", reject)
  })

const send = (response: ServerResponse, status: number, value: unknown) => {
  const text = JSON.stringify(value)
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
  response.end(text)
}

const jobsPath = /^\/v1\/projects\/[^/]+\/jobs(\/batch|\/[0-9a-f-]{36})?$/

const handle = async (request: IncomingMessage, response: ServerResponse) => {
  const match = jobsPath.exec(request.url ?? "")
  if (match === null) return send(response, 404, { code: "NotFound" })
  const rest = match[1]
  if (request.method === "POST" && rest === undefined) {
    const input = await body(request)
    if (!isJobInput(input)) return send(response, 400, { code: "ValidationError" })
    const result = await pool.query(insertOne, [v7(), projectId, queue, input.kind, JSON.stringify(input.payload)])
    return send(response, 201, result.rows[0])
  }
  if (request.method === "POST" && rest === "/batch") {
    const input = await body(request)
    const jobs = typeof input === "object" && input !== null && "jobs" in input && Array.isArray(input.jobs) ? input.jobs : []
    if (jobs.length === 0 || !jobs.every(isJobInput)) return send(response, 400, { code: "ValidationError" })
    const result = await pool.query(insertMany, [
      jobs.map(() => v7()),
      projectId,
      queue,
      jobs.map((job) => job.kind),
      jobs.map((job) => JSON.stringify(job.payload))
    ])
    return send(response, 201, { jobs: result.rows })
  }
  if (request.method === "GET" && rest !== undefined && rest !== "/batch") {
    const result = await pool.query(selectOne, [projectId, rest.slice(1)])
    return result.rows.length === 0 ? send(response, 404, { code: "NotFound" }) : send(response, 200, result.rows[0])
  }
  return send(response, 405, { code: "MethodNotAllowed" })
}

const server = createServer((request, response) => {
  handle(request, response).catch((error: unknown) => send(response, 500, { code: "Internal", message: String(error) }))
})
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => process.stdout.write("ready\n"))
process.on("SIGTERM", () => {
  server.close()
  pool.end().finally(() => process.exit(0))
})
