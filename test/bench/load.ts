/**
 * The load generator, run as its own process (pinned to core 1 by http.ts):
 * `node test/bench/load.ts '<json LoadSpec>'` prints one JSON LoadResult line.
 * Latencies are every response's own time as autocannon measured it, so the
 * percentiles are exact rather than read off a histogram.
 */
import autocannon from "autocannon"
import { percentile, sorted } from "./stats.ts"

export interface LoadSpec {
  readonly url: string
  readonly method: "GET" | "POST"
  readonly headers: Readonly<Record<string, string>>
  readonly body?: string
  readonly connections: number
  readonly seconds: number
}

export interface LoadResult {
  readonly requestsPerSecond: number
  readonly ok: number
  readonly non2xx: number
  readonly errors: number
  readonly p50: number
  readonly p95: number
  readonly p99: number
}

const isLoadSpec = (u: unknown): u is LoadSpec =>
  typeof u === "object" && u !== null && "url" in u && "method" in u && "connections" in u && "seconds" in u

const main = async () => {
  const spec: unknown = JSON.parse(process.argv[2] ?? "null")
  if (!isLoadSpec(spec)) throw new Error("load.ts: expected a LoadSpec as its JSON argument")
  const times: Array<number> = []
  const instance = autocannon({
    url: spec.url,
    method: spec.method,
    headers: spec.headers,
    ...(spec.body === undefined ? {} : { body: spec.body }),
    connections: spec.connections,
    pipelining: 1,
    duration: spec.seconds,
    timeout: 30
  })
  instance.on("response", (_client: unknown, status: number, _bytes: number, ms: number) => {
    if (status >= 200 && status < 300) times.push(ms)
  })
  const result = await instance
  const s = sorted(times)
  const out: LoadResult = {
    requestsPerSecond: result["2xx"] / result.duration,
    ok: result["2xx"],
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    p50: percentile(s, 50),
    p95: percentile(s, 95),
    p99: percentile(s, 99)
  }
  process.stdout.write(`${JSON.stringify(out)}\n`)
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`)
  process.exit(1)
})
