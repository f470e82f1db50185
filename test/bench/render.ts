/**
 * Turns results.json into the generated section of docs/benchmarks.md (between
 * the markers below, so the hand-written text around it survives) and a
 * hand-rolled SVG bar chart, docs/benchmarks.svg.
 */
import type { Summary } from "./stats.ts"

export const startMarker = "<!-- bench:generated:start (npm run bench rewrites this section) -->"
export const endMarker = "<!-- bench:generated:end -->"

interface Scenario {
  readonly requestsPerSecond: Summary
  readonly p50: Summary
  readonly p95: Summary
  readonly p99: Summary
  /** Non-2xx responses and socket errors, over all runs. */
  readonly failed: number
}

interface HttpSide {
  readonly single: Scenario
  readonly batch: Scenario & { readonly jobsPerSecond: Summary }
  readonly get: Scenario
}

export interface Target {
  readonly target: string
  readonly measured: string
  readonly ratio: number | undefined
  /** undefined when the workload did not run. */
  readonly pass: boolean | undefined
}

export type DrainSystem = "foreman" | "foremanRetained" | "graphileDefault" | "graphileBatched" | "pgboss"

export interface Results {
  readonly generatedAt: string
  readonly quick: boolean
  readonly machine: { readonly cpu: string; readonly cores: number; readonly memoryGiB: number; readonly os: string }
  readonly versions: Readonly<Record<"node" | "postgres" | "foreman" | "graphileWorker" | "pgBoss" | "autocannon", string>>
  readonly config: Readonly<Record<string, unknown>> & {
    readonly runs: number
    readonly jobs: number
    readonly latencyJobs: number
    readonly retained: number
    readonly retainedRows: number
  }
  readonly drain: Readonly<Partial<Record<DrainSystem, Summary>>>
  /** CPU µs per job over the timed drain: this process (the system's workers) and PostgreSQL (embedded server only). */
  readonly drainCpu: Readonly<Partial<Record<DrainSystem, { readonly process: Summary; readonly postgres: Summary | undefined }>>>
  readonly latency: Readonly<
    Partial<Record<"foreman" | "graphileDefault" | "graphileBatched" | "pgboss", { readonly p50: Summary; readonly p99: Summary }>>
  >
  readonly http:
    | {
      readonly foreman: HttpSide
      readonly baseline: HttpSide
      readonly foremanPeakRssMB: Summary
      readonly foremanSampledRssMB: Summary
      readonly foremanIdleRssMB: Summary
    }
    | undefined
  readonly targets: ReadonlyArray<Target>
}

const systemNames: Record<string, string> = {
  foreman: "Foreman",
  foremanRetained: "Foreman, finished jobs retained",
  graphileDefault: "graphile-worker, defaults",
  graphileBatched: "graphile-worker, batched",
  pgboss: "pg-boss, batch fetch + NOTIFY"
}

const int = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–")
const ms = (n: number) => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(1)) : "–")
const us = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "–")
const x = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : "–")

const target = (name: string, ratio: number | undefined, measured: string, pass: (r: number) => boolean): Target =>
  ratio === undefined || !Number.isFinite(ratio)
    ? { target: name, measured: "not run", ratio: undefined, pass: undefined }
    : { target: name, measured, ratio, pass: pass(ratio) }

/** One row per target of the issue, each from the medians of this invocation. */
export const targets = (r: Results): ReadonlyArray<Target> => {
  const drain = r.drain.foreman?.median
  const gBatched = r.drain.graphileBatched?.median
  const lat = r.latency.foreman
  const gLat = [r.latency.graphileDefault, r.latency.graphileBatched].filter((v) => v !== undefined)
  const gP50 = gLat.length === 0 ? undefined : Math.min(...gLat.map((v) => v.p50.median))
  const h = r.http
  const retained = r.drain.foremanRetained?.median
  const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : a / b)
  return [
    target("Drain ≥ 1.5× graphile-worker batched", ratio(drain, gBatched),
      `${int(drain ?? NaN)} vs ${int(gBatched ?? NaN)} jobs/s = ${x(ratio(drain, gBatched) ?? NaN)}`, (v) => v >= 1.5),
    target("Enqueue→start p50 ≤ graphile-worker's (best of its two configurations)", ratio(lat?.p50.median, gP50),
      `${ms(lat?.p50.median ?? NaN)} vs ${ms(gP50 ?? NaN)} ms = ${x(ratio(lat?.p50.median, gP50) ?? NaN)}`, (v) => v <= 1),
    target("Enqueue→start p99 ≤ 10 ms", ratio(lat?.p99.median, 10),
      `${ms(lat?.p99.median ?? NaN)} ms = ${x(ratio(lat?.p99.median, 10) ?? NaN)} of the limit`, (v) => v <= 1),
    target("HTTP single enqueue ≥ 0.5× baseline req/s",
      ratio(h?.foreman.single.requestsPerSecond.median, h?.baseline.single.requestsPerSecond.median),
      `${int(h?.foreman.single.requestsPerSecond.median ?? NaN)} vs ${int(h?.baseline.single.requestsPerSecond.median ?? NaN)} req/s = ${
        x(ratio(h?.foreman.single.requestsPerSecond.median, h?.baseline.single.requestsPerSecond.median) ?? NaN)
      }`, (v) => v >= 0.5),
    target("HTTP single enqueue p99 ≤ 2× baseline p99", ratio(h?.foreman.single.p99.median, h?.baseline.single.p99.median),
      `${ms(h?.foreman.single.p99.median ?? NaN)} vs ${ms(h?.baseline.single.p99.median ?? NaN)} ms = ${
        x(ratio(h?.foreman.single.p99.median, h?.baseline.single.p99.median) ?? NaN)
      }`, (v) => v <= 2),
    target("HTTP batch enqueue ≥ 50,000 jobs/s", ratio(h?.foreman.batch.jobsPerSecond.median, 50_000),
      `${int(h?.foreman.batch.jobsPerSecond.median ?? NaN)} jobs/s = ${x(ratio(h?.foreman.batch.jobsPerSecond.median, 50_000) ?? NaN)} of the target`,
      (v) => v >= 1),
    target(`Drain with ${int(r.config.retainedRows || r.config.retained)} finished jobs retained within 10% of empty`, ratio(retained, drain),
      `${int(retained ?? NaN)} vs ${int(drain ?? NaN)} jobs/s = ${x(ratio(retained, drain) ?? NaN)}`, (v) => v >= 0.9),
    target("Peak RSS under HTTP load ≤ 200 MB", ratio(h?.foremanPeakRssMB.median, 200),
      `${int(h?.foremanPeakRssMB.median ?? NaN)} MB (VmHWM) = ${x(ratio(h?.foremanPeakRssMB.median, 200) ?? NaN)} of the limit`, (v) => v <= 1)
  ]
}

const row = (cells: ReadonlyArray<string>) => `| ${cells.join(" | ")} |`
const spread = (s: Summary, f: (n: number) => string) => [f(s.median), f(s.min), f(s.max)]

const nameRetained = (r: Results) => {
  systemNames.foremanRetained = `Foreman, ${compact(r.config.retainedRows)} finished retained`
}
const compact = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : String(n))

export const renderSection = (r: Results): string => {
  nameRetained(r)
  const lines: Array<string> = []
  const c = r.config
  lines.push(
    `Generated ${r.generatedAt} by \`npm run bench\`${r.quick ? " (BENCH_QUICK=1: indicative only)" : ""}. ` +
      `Each figure is the median of ${c.runs} run${c.runs === 1 ? "" : "s"} (min and max beside it), every system on a fresh database of the same PostgreSQL.`,
    "",
    `Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memoryGiB} GiB RAM, ${r.machine.os}. ` +
      `Versions: Node ${r.versions.node}, PostgreSQL ${r.versions.postgres}, Foreman ${r.versions.foreman}, ` +
      `graphile-worker ${r.versions.graphileWorker}, pg-boss ${r.versions.pgBoss}, autocannon ${r.versions.autocannon}.`,
    "",
    "### Targets",
    "",
    row(["Target", "Measured (medians)", "Result"]),
    row(["---", "---", "---"]),
    ...r.targets.map((t) => row([t.target, t.measured, t.pass === undefined ? "not run" : t.pass ? "**PASS**" : "**MISS**"])),
    "",
    "![Benchmark chart](benchmarks.svg)"
  )
  const cpuBy = new Map(Object.entries(r.drainCpu))
  const cpu = (key: string) => {
    const found = cpuBy.get(key)
    return [us(found?.process.median ?? NaN), us(found?.postgres?.median ?? NaN)]
  }
  const drains = Object.entries(r.drain).flatMap(([key, s]) =>
    s === undefined ? [] : [row([systemNames[key] ?? key, ...spread(s, int), ...cpu(key)])]
  )
  if (drains.length > 0) {
    lines.push(
      "",
      `### Drain: ${int(c.jobs)} no-op jobs, bulk-inserted, then executed`,
      "",
      row(["System", "jobs/s (median)", "min", "max", "worker process CPU µs/job", "PostgreSQL CPU µs/job"]),
      row(["---", "---:", "---:", "---:", "---:", "---:"]),
      ...drains,
      "",
      "CPU per job is user plus system time over the timed drain, divided by the jobs (medians of the runs): the benchmark process, " +
        "where each system's workers run, and every `postgres` process of the embedded server (– with `BENCH_DATABASE_URL`)."
    )
  }
  const latencies = Object.entries(r.latency).flatMap(([key, l]) =>
    l === undefined ? [] : [row([systemNames[key] ?? key, ...spread(l.p50, ms), ...spread(l.p99, ms)])]
  )
  if (latencies.length > 0) {
    lines.push(
      "",
      `### Enqueue → handler start: ${int(c.latencyJobs)} sequential enqueues into an idle system (ms)`,
      "",
      row(["System", "p50", "p50 min", "p50 max", "p99", "p99 min", "p99 max"]),
      row(["---", "---:", "---:", "---:", "---:", "---:", "---:"]),
      ...latencies
    )
  }
  const h = r.http
  if (h !== undefined) {
    lines.push(
      "",
      "### HTTP API on loopback (autocannon)",
      "",
      row(["Scenario", "Server", "req/s", "min", "max", "p50 ms", "p95 ms", "p99 ms", "failed"]),
      row(["---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---:"])
    )
    const scenarioRows = (name: string, pick: (side: HttpSide) => Scenario) => {
      for (const [label, side] of [["Foreman", h.foreman], ["baseline", h.baseline]] as const) {
        const s = pick(side)
        lines.push(row([name, label, ...spread(s.requestsPerSecond, int), ms(s.p50.median), ms(s.p95.median), ms(s.p99.median), String(s.failed)]))
      }
    }
    scenarioRows("Enqueue one job", (s) => s.single)
    scenarioRows("Enqueue a batch of 100", (s) => s.batch)
    scenarioRows("Get one job", (s) => s.get)
    lines.push(
      "",
      `Batch enqueue in jobs/s: Foreman ${int(h.foreman.batch.jobsPerSecond.median)} (${int(h.foreman.batch.jobsPerSecond.min)}–${
        int(h.foreman.batch.jobsPerSecond.max)
      }), baseline ${int(h.baseline.batch.jobsPerSecond.median)}. ` +
        `Foreman peak RSS (VmHWM of the server process, whole run): ${int(h.foremanPeakRssMB.median)} MB ` +
        `(${int(h.foremanPeakRssMB.min)}–${int(h.foremanPeakRssMB.max)}); highest 100 ms sample under load ${int(h.foremanSampledRssMB.median)} MB; ` +
        `RSS when ready, before any load: ${int(h.foremanIdleRssMB.median)} MB.`
    )
  }
  lines.push("", "<details><summary>Configuration used</summary>", "", "```json", JSON.stringify(c, null, 2), "```", "", "</details>")
  return lines.join("\n")
}

/** Replaces the generated section of `markdown` (appends one when the markers are missing). */
export const renderMarkdown = (markdown: string, r: Results): string => {
  const section = `${startMarker}\n${renderSection(r)}\n${endMarker}`
  const start = markdown.indexOf(startMarker)
  const end = markdown.indexOf(endMarker)
  if (start === -1 || end === -1 || end < start) return `${markdown.trimEnd()}\n\n## Latest results\n\n${section}\n`
  return `${markdown.slice(0, start)}${section}${markdown.slice(end + endMarker.length)}`
}

// ---- SVG ----

interface Bar {
  readonly label: string
  readonly value: number
  readonly min?: number
  readonly max?: number
  readonly highlight: boolean
}

const escapeXml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")

const width = 760
const labelWidth = 250
const barHeight = 18
const gap = 6

/** A horizontal bar panel with min–max whiskers; returns the SVG fragment and its height. */
const panel = (title: string, unit: string, bars: ReadonlyArray<Bar>, top: number, format: (n: number) => string) => {
  const plot = width - labelWidth - 90
  const top2 = top + 28
  const finite = bars.flatMap((b) => [b.value, b.max ?? b.value]).filter(Number.isFinite)
  const scale = Math.max(1, ...finite)
  const parts: Array<string> = [
    `<text x="10" y="${top + 18}" font-size="14" font-weight="bold">${escapeXml(title)} <tspan font-weight="normal" fill="#555">(${escapeXml(unit)})</tspan></text>`
  ]
  bars.forEach((b, i) => {
    const y = top2 + i * (barHeight + gap)
    const w = Number.isFinite(b.value) ? (b.value / scale) * plot : 0
    parts.push(
      `<text x="${labelWidth - 8}" y="${y + 13}" font-size="12" text-anchor="end">${escapeXml(b.label)}</text>`,
      `<rect x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${b.highlight ? "#2f6fdf" : "#9aa5b1"}"/>`
    )
    if (b.min !== undefined && b.max !== undefined && Number.isFinite(b.min) && Number.isFinite(b.max)) {
      const x1 = labelWidth + (b.min / scale) * plot
      const x2 = labelWidth + (b.max / scale) * plot
      const cy = y + barHeight / 2
      parts.push(
        `<line x1="${x1.toFixed(1)}" y1="${cy}" x2="${x2.toFixed(1)}" y2="${cy}" stroke="#222" stroke-width="1"/>`,
        `<line x1="${x1.toFixed(1)}" y1="${cy - 4}" x2="${x1.toFixed(1)}" y2="${cy + 4}" stroke="#222"/>`,
        `<line x1="${x2.toFixed(1)}" y1="${cy - 4}" x2="${x2.toFixed(1)}" y2="${cy + 4}" stroke="#222"/>`
      )
    }
    const end = labelWidth + Math.max(w, b.max !== undefined && Number.isFinite(b.max) ? (b.max / scale) * plot : 0)
    parts.push(`<text x="${(end + 6).toFixed(1)}" y="${y + 13}" font-size="12">${escapeXml(format(b.value))}</text>`)
  })
  return { svg: parts.join("\n"), height: 28 + bars.length * (barHeight + gap) + 16 }
}

export const renderSvg = (r: Results): string => {
  nameRetained(r)
  const panels: Array<{ readonly title: string; readonly unit: string; readonly bars: ReadonlyArray<Bar>; readonly format: (n: number) => string }> = []
  const fromSummary = (label: string, s: Summary, highlight: boolean): Bar => ({ label, value: s.median, min: s.min, max: s.max, highlight })
  const drainBars = Object.entries(r.drain).flatMap(([k, s]) => (s === undefined ? [] : [fromSummary(systemNames[k] ?? k, s, k.startsWith("foreman"))]))
  if (drainBars.length > 0) panels.push({ title: `Drain of ${int(r.config.jobs)} no-op jobs`, unit: "jobs/s, higher is better", bars: drainBars, format: int })
  const latencyBars = Object.entries(r.latency).flatMap(([k, l]) =>
    l === undefined
      ? []
      : [fromSummary(`${systemNames[k] ?? k} p50`, l.p50, k === "foreman"), fromSummary(`${systemNames[k] ?? k} p99`, l.p99, k === "foreman")]
  )
  if (latencyBars.length > 0) panels.push({ title: "Enqueue → handler start", unit: "ms, lower is better", bars: latencyBars, format: ms })
  const h = r.http
  if (h !== undefined) {
    panels.push({
      title: "HTTP API, loopback",
      unit: "req/s, higher is better",
      bars: [
        fromSummary("Foreman: enqueue one", h.foreman.single.requestsPerSecond, true),
        fromSummary("baseline: enqueue one", h.baseline.single.requestsPerSecond, false),
        fromSummary("Foreman: batch of 100", h.foreman.batch.requestsPerSecond, true),
        fromSummary("baseline: batch of 100", h.baseline.batch.requestsPerSecond, false),
        fromSummary("Foreman: get one job", h.foreman.get.requestsPerSecond, true),
        fromSummary("baseline: get one job", h.baseline.get.requestsPerSecond, false)
      ],
      format: int
    })
  }
  let y = 40
  const body: Array<string> = []
  for (const p of panels) {
    const rendered = panel(p.title, p.unit, p.bars, y, p.format)
    body.push(rendered.svg)
    y += rendered.height
  }
  const height = y + 10
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="10" y="22" font-size="16" font-weight="bold">Foreman benchmarks${r.quick ? " (quick mode)" : ""}: medians of ${r.config.runs} run(s), whiskers min–max</text>`,
    ...body,
    "</svg>",
    ""
  ].join("\n")
}
