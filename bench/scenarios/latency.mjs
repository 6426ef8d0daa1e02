// 2. Propagation latency: A writes `rate` documents per second for `seconds` (every 10 ms, one
// transaction with the rows due), B follows with live sync (longPollWait); the delay of each
// document from A's write call to B's apply. Server, A and B are three processes.
// Floor: raw-server.mjs and raw-replicas.mjs (push per tick, long-poll pull, no sync logic).
import { logSqlStats, startChild, startRawServer, startReplica, startServer, withStallCheck } from "../lib/cluster.mjs"
import { removeDir, tempDir } from "../lib/proc.mjs"
import { percentile, round } from "../lib/stats.mjs"

const tickMs = 10

const summary = (delays) => ({
  p50_ms: round(percentile(delays, 50)),
  p99_ms: round(percentile(delays, 99)),
  max_ms: round(Math.max(0, ...delays))
})

const floor = async (ctx, rate, seconds) => {
  const dir = tempDir()
  try {
    const server = await startRawServer(ctx, "floor-server", { file: `${dir}/floor-server.db` })
    const pair = await startChild(ctx, "raw-replicas.mjs", "floor-replicas", { dir })
    const { delays } = await pair.call("runLatency", {
      rate,
      seconds,
      tickMs,
      url: server.info.url,
      token: server.info.token
    })
    await pair.stop()
    await server.stop()
    return summary(delays)
  } finally {
    removeDir(dir)
  }
}

export const run = async (ctx) => {
  const { latencySeconds: seconds, rate } = ctx.flags
  const total = Math.round(rate * seconds)
  ctx.log(`latency: floor, ${rate} docs/s for ${seconds} s…`)
  const floorFigures = await floor(ctx, rate, seconds)
  const results = []
  for (const variant of ctx.flags.latencyVariants) {
    const dir = tempDir()
    try {
      ctx.log(`latency: debounce ${variant.debounce} ms${variant.maxWait ? `, max wait ${variant.maxWait} ms` : ""}…`)
      const server = await startServer(ctx, `server-d${variant.debounce}`, {
        file: `${dir}/server.db`,
        createToken: true
      })
      // Both live, as `autosync agent` runs them.
      const config = {
        debounce: variant.debounce,
        ...(variant.maxWait ? { debounceMaxWait: variant.maxWait } : {}),
        pushBatchSize: 1000,
        pullBatchSize: 1000,
        longPollWait: "25 seconds"
      }
      const a = await startReplica(ctx, `a-d${variant.debounce}`, { file: `${dir}/a.db`, server, config })
      const b = await startReplica(ctx, `b-d${variant.debounce}`, { file: `${dir}/b.db`, server, config })
      // Warm-up: one document through, so both managers hold their lease and B's long-poll is open.
      await a.call("write", { rows: 1, batch: 1, from: 9_000_000 })
      await b.call("awaitApplied", { count: 1 }, 60_000)
      await new Promise((resolve) => setTimeout(resolve, 500))
      await b.call("resetDelays")

      const applied = b.call("awaitApplied", { count: total + 1 }, 3_600_000)
      const written = await a.call("writeAtRate", { rate, seconds, tickMs })
      await withStallCheck(applied, async () => (await b.call("applied")).applied, ctx.flags.stallSeconds * 1000, "B")
      const { delays } = await b.call("delays")
      await logSqlStats(ctx, a)
      await logSqlStats(ctx, b)
      await Promise.all([a.stop(), b.stop()])
      await server.stop()
      const ours = summary(delays)
      const target = 100 + variant.debounce
      const result = {
        scenario: "latency",
        processes: "server, A and B in three processes; both with longPollWait 25 s",
        rate_per_s: rate,
        seconds,
        write_tick_ms: tickMs,
        debounce_ms: variant.debounce,
        debounce_max_wait_ms: variant.maxWait ?? 5000,
        documents: delays.length,
        writer_slowest_tick_ms: written.maxWriteMs,
        ...ours,
        floor: floorFigures,
        target: `p99 < ${target} ms`,
        target_met: ours.p99_ms < target
      }
      ctx.emit(result)
      results.push(result)
    } finally {
      removeDir(dir)
    }
  }
  return results
}

export const tableRows = (results) =>
  results.map((r) => [
    `latency, debounce ${r.debounce_ms} ms${
      r.debounce_max_wait_ms !== 5000 ? ` (max wait ${r.debounce_max_wait_ms})` : ""
    }`,
    `p50 ${r.p50_ms} / p99 ${r.p99_ms} / max ${r.max_ms} ms`,
    `p50 ${r.floor.p50_ms} / p99 ${r.floor.p99_ms} / max ${r.floor.max_ms} ms`,
    "",
    `${r.target}: ${r.target_met ? "met" : "NOT met"}`
  ])
