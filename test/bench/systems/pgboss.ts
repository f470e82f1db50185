/**
 * pg-boss 12 in this process, in the fastest configuration its options document:
 * LISTEN/NOTIFY on (`useListenNotify` and a `notify` queue), batch fetches
 * (`batchSize`) with `burstWhenBatchFull` so a full batch is followed by the
 * next fetch at once, several local fetch loops, the shortest base poll, and
 * the cron scheduler off. pg-boss hands a worker a batch; the handler calls the
 * no-op once per job and the batch completes together.
 */
import { PgBoss, type ConstructorOptions, type WorkOptions } from "pg-boss"
import { awaitDrain, type DrainResult, startDrain, latencyLoop, type LatencyResult, query } from "../common.ts"
import { hit, probe } from "../probe.ts"

export const pgbossSettings = {
  constructor: { useListenNotify: true, schedule: false, max: 10 } satisfies Omit<ConstructorOptions, "connectionString">,
  queue: { notify: true },
  work: {
    batchSize: 100,
    localConcurrency: 4,
    burstWhenBatchFull: true,
    pollingIntervalSeconds: 0.5
  } satisfies WorkOptions
}

const queueName = "bench"

export const runPgBoss = async (
  url: string,
  options: { readonly jobs: number; readonly latencyJobs: number }
): Promise<{ readonly drain: DrainResult; readonly latency: LatencyResult | undefined }> => {
  const boss = new PgBoss({ connectionString: url, ...pgbossSettings.constructor })
  boss.on("error", (error) => process.stderr.write(`pg-boss: ${String(error)}\n`))
  await boss.start()
  try {
    await boss.createQueue(queueName, pgbossSettings.queue)
    for (let offset = 0; offset < options.jobs; offset += 5000) {
      const size = Math.min(5000, options.jobs - offset)
      await boss.insert(queueName, Array.from({ length: size }, () => ({ data: {} })))
    }
    probe.reset()
    const clock = startDrain()
    await boss.work<unknown>(queueName, pgbossSettings.work, async (jobs) => {
      for (const job of jobs) hit(job.data)
    })
    await awaitDrain(options.jobs, async () => {
      const [row] = await query<{ readonly busy: boolean }>(
        url,
        "SELECT EXISTS (SELECT 1 FROM pgboss.job WHERE name = $1 AND state IN ('created', 'retry', 'active')) AS busy",
        [queueName]
      )
      return row?.busy === false
    })
    const drain = clock.stop(options.jobs)
    const latency = options.latencyJobs === 0
      ? undefined
      : await latencyLoop(url, options.latencyJobs, (i) => boss.send(queueName, { i }))
    return { drain, latency }
  } finally {
    await boss.stop({ graceful: true, timeout: 5000 })
  }
}
