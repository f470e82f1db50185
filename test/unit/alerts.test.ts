import { assert, describe, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { parse } from "yaml"

/**
 * docs/deploy/prometheus/alerts.yaml is checked against the code and the docs:
 * every rule is complete, every `foreman_*` metric it queries is one that
 * src/Observability/Metrics.ts defines, and every runbook link lands on a
 * heading of docs/operations.md. No Prometheus is needed.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const read = (file: string) => readFileSync(path.join(root, file), "utf8")

type Obj = Record<string, unknown>
const isObj = (value: unknown): value is Obj => typeof value === "object" && value !== null && !Array.isArray(value)

/** The names passed to `Metric.counter/gauge/histogram/...`, expanding the `foreman_jobs_${outcome}` helper. */
const definedMetrics = (source: string): { readonly counters: Set<string>; readonly others: Set<string> } => {
  const counters = new Set<string>()
  const others = new Set<string>()
  for (const match of source.matchAll(/Metric\.(\w+)\(\s*["`](foreman_[\w${}]+)["`]/g)) {
    const [, type, name] = match as unknown as [string, string, string]
    const names = name.includes("${")
      ? [...source.matchAll(/jobCounter\(\s*"(\w+)"/g)].map((call) => name.replace(/\$\{\w+\}/, call[1] ?? ""))
      : [name]
    for (const each of names) (type === "counter" ? counters : others).add(each)
  }
  return { counters, others }
}

/** The exposed series names: counters get `_total`; histograms add `_bucket`, `_sum` and `_count`. */
const exposedNames = (defined: ReturnType<typeof definedMetrics>): Set<string> => {
  const names = new Set<string>()
  for (const name of defined.counters) names.add(`${name}_total`)
  for (const name of defined.others) {
    names.add(name)
    for (const suffix of ["_bucket", "_sum", "_count"]) names.add(`${name}${suffix}`)
  }
  return names
}

/** GitHub's heading anchors: lower case, punctuation other than `-`/`_` removed, spaces to `-`, duplicates numbered. */
const headingSlugs = (markdown: string): Set<string> => {
  const slugs = new Set<string>()
  const counts = new Map<string, number>()
  let fenced = false
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced
    const heading = fenced ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)
    if (heading === null) continue
    const base = (heading[1] ?? "")
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-")
    const seen = counts.get(base) ?? 0
    counts.set(base, seen + 1)
    slugs.add(seen === 0 ? base : `${base}-${seen}`)
  }
  return slugs
}

const metricsSource = read("src/Observability/Metrics.ts")
const defined = definedMetrics(metricsSource)
const exposed = exposedNames(defined)
const slugs = headingSlugs(read("docs/operations.md"))
const alertsFile = "docs/deploy/prometheus/alerts.yaml"
const document: unknown = parse(read(alertsFile))

const rules = (): ReadonlyArray<Obj> => {
  assert.isTrue(isObj(document), `${alertsFile}: a mapping`)
  const groups = (document as Obj).groups
  assert.isTrue(Array.isArray(groups) && groups.length > 0, "groups: a non-empty list")
  return (groups as ReadonlyArray<unknown>).flatMap((group, index) => {
    assert.isTrue(isObj(group), `group ${index}: a mapping`)
    assert.strictEqual(typeof (group as Obj).name, "string", `group ${index}: name`)
    const list = (group as Obj).rules
    assert.isTrue(Array.isArray(list) && list.length > 0, `group ${index}: rules`)
    return (list as ReadonlyArray<unknown>).map((rule) => {
      assert.isTrue(isObj(rule), `group ${index}: every rule is a mapping`)
      return rule as Obj
    })
  })
}

describe("alert rules (docs/deploy/prometheus/alerts.yaml)", () => {
  it("the metric names are read from src/Observability/Metrics.ts", () => {
    for (
      const name of [
        "foreman_http_request_duration_seconds_bucket",
        "foreman_http_request_duration_seconds_count",
        "foreman_jobs_dead_total",
        "foreman_jobs_enqueued_total",
        "foreman_job_leases_expired_total",
        "foreman_queue_depth",
        "foreman_job_enqueue_to_start_seconds_bucket",
        "foreman_event_loop_lag_seconds",
        "foreman_process_memory_bytes"
      ]
    ) assert.isTrue(exposed.has(name), name)
    assert.isFalse(exposed.has("foreman_jobs_dead"), "counters are exposed with _total only")
  })

  it("every rule has alert, expr, for, severity, summary, description and runbook_url", () => {
    const all = rules()
    const names = all.map((rule) => rule.alert)
    assert.strictEqual(new Set(names).size, names.length, "alert names are unique")
    for (const rule of all) {
      const name = String(rule.alert)
      assert.match(name, /^[A-Za-z_][A-Za-z0-9_]*$/, "alert name")
      assert.isTrue(typeof rule.expr === "string" && rule.expr.trim() !== "", `${name}: expr`)
      assert.match(String(rule.for), /^\d+[smh]$/, `${name}: for`)
      assert.isTrue(isObj(rule.labels), `${name}: labels`)
      assert.include(["critical", "warning", "info"], (rule.labels as Obj).severity, `${name}: labels.severity`)
      assert.isTrue(isObj(rule.annotations), `${name}: annotations`)
      const annotations = rule.annotations as Obj
      for (const key of ["summary", "description", "runbook_url"]) {
        assert.isTrue(typeof annotations[key] === "string" && annotations[key] !== "", `${name}: annotations.${key}`)
      }
    }
  })

  it("covers the alerts operators need", () => {
    const exprs = rules().map((rule) => String(rule.expr))
    for (
      const needle of [
        /foreman_http_request_duration_seconds_count\{status=~"5\.\."\}/,
        /histogram_quantile\(0\.99,[\s\S]*foreman_http_request_duration_seconds_bucket/,
        /foreman_jobs_dead_total/,
        /foreman_job_leases_expired_total/,
        /foreman_queue_depth\{state="available"\}/,
        /foreman_job_enqueue_to_start_seconds_bucket/,
        /foreman_event_loop_lag_seconds/,
        /\bup\{[^}]*\}\s*==\s*0/
      ]
    ) assert.isTrue(exprs.some((expr) => needle.test(expr)), String(needle))
  })

  it("queries only metrics the code exports", () => {
    for (const rule of rules()) {
      for (const match of String(rule.expr).matchAll(/\bforeman_\w+/g)) {
        assert.isTrue(exposed.has(match[0]), `${String(rule.alert)}: ${match[0]} is not defined in src/Observability/Metrics.ts`)
      }
    }
  })

  it("every runbook_url points at a heading of docs/operations.md", () => {
    for (const rule of rules()) {
      const url = String((rule.annotations as Obj).runbook_url)
      const found = /docs\/operations\.md#([\w-]+)$/.exec(url)
      assert.isNotNull(found, `${String(rule.alert)}: runbook_url links to docs/operations.md#<anchor>`)
      assert.isTrue(slugs.has(found?.[1] ?? ""), `${String(rule.alert)}: no heading for #${found?.[1]}`)
    }
  })

  it("the slug helper follows GitHub's rules", () => {
    const sample = headingSlugs("## HTTP errors and latency\n### Waking up: `LISTEN/NOTIFY` and polling\n## Logs\n## Logs\n")
    assert.deepStrictEqual([...sample], ["http-errors-and-latency", "waking-up-listennotify-and-polling", "logs", "logs-1"])
  })
})
