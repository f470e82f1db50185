/**
 * graphile-worker 0.18 in this process, with its defaults or with the batched
 * settings its performance guide documents (https://worker.graphile.org/docs/performance#batching).
 */
import { Logger, makeWorkerUtils, run, type RunnerOptions } from "graphile-worker"
import { awaitDrain, type DrainResult, startDrain, latencyLoop, type LatencyResult, query } from "../common.ts"
import { hit, probe } from "../probe.ts"

export type GraphileMode = "default" | "batched"

/** The options the run passed besides the connection, task list and logger, for the report. */
export const graphileSettings = (mode: GraphileMode): Partial<RunnerOptions> =>
  mode === "default"
    ? {}
    : {
      concurrency: 24,
      maxPoolSize: 25,
      preset: {
        worker: {
          concurrentJobs: 24,
          maxPoolSize: 25,
          localQueue: { size: 500 },
          completeJobBatchDelay: 0,
          failJobBatchDelay: 0
        }
      }
    }

const silent = new Logger(() => () => {})

export const runGraphile = async (
  url: string,
  mode: GraphileMode,
  options: { readonly jobs: number; readonly latencyJobs: number }
): Promise<{ readonly drain: DrainResult; readonly latency: LatencyResult | undefined }> => {
  const utils = await makeWorkerUtils({ connectionString: url, logger: silent })
  try {
    await utils.migrate()
    // The bulk API (add_jobs), in chunks so one statement's JSON stays small.
    for (let offset = 0; offset < options.jobs; offset += 5000) {
      const size = Math.min(5000, options.jobs - offset)
      await utils.addJobs(Array.from({ length: size }, () => ({ identifier: "bench_noop", payload: {} })))
    }
    probe.reset()
    const clock = startDrain()
    const runner = await run({
      connectionString: url,
      noHandleSignals: true,
      logger: silent,
      parsedCronItems: [],
      taskList: {
        bench_noop: (payload) => {
          hit(payload)
        }
      },
      ...graphileSettings(mode)
    })
    try {
      await awaitDrain(options.jobs, async () => {
        const [row] = await query<{ readonly busy: boolean }>(
          url,
          "SELECT EXISTS (SELECT 1 FROM graphile_worker._private_jobs) AS busy"
        )
        return row?.busy === false
      })
      const drain = clock.stop(options.jobs)
      const latency = options.latencyJobs === 0
        ? undefined
        : await latencyLoop(url, options.latencyJobs, (i) => utils.addJob("bench_noop", { i }))
      return { drain, latency }
    } finally {
      await runner.stop()
    }
  } finally {
    await utils.release()
  }
}
