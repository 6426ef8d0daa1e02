// 1. Replication throughput: `rows` documents written on A (transactions of `batch` rows), time
// until B has applied them all, through a real server on 127.0.0.1. Server, A and B are three
// processes. Floor: the same inserts and upserts in plain better-sqlite3 (lib/floors.mjs).
import { logSqlStats, startReplica, startServer, withStallCheck } from "../lib/cluster.mjs"
import * as Floors from "../lib/floors.mjs"
import { removeDir, tempDir } from "../lib/proc.mjs"
import { cpuMs, rate, round } from "../lib/stats.mjs"

export const run = async (ctx) => {
  const results = []
  for (const batch of ctx.flags.batches) {
    const rows = ctx.flags.rows
    const dir = tempDir()
    try {
      ctx.log(`throughput: ${rows} rows in batches of ${batch}…`)
      const server = await startServer(ctx, `server-b${batch}`, { file: `${dir}/server.db`, createToken: true })
      const config = { debounce: 0, pushBatchSize: batch, pullBatchSize: batch }
      const a = await startReplica(ctx, `a-b${batch}`, { file: `${dir}/a.db`, server, config })
      const b = await startReplica(ctx, `b-b${batch}`, {
        file: `${dir}/b.db`,
        server,
        config: { ...config, longPollWait: "25 seconds" }
      })
      const before = await Promise.all([server, a, b].map((c) => c.call("stats")))
      const applied = b.call("awaitApplied", { count: rows }, 3_600_000)
      const written = await a.call("write", { rows, batch }, 3_600_000)
      const done = await withStallCheck(
        applied,
        async () => (await b.call("applied")).applied,
        ctx.flags.stallSeconds * 1000,
        "replica B"
      )
      const after = await Promise.all([server, a, b].map((c) => c.call("stats")))
      await logSqlStats(ctx, a)
      await logSqlStats(ctx, b)
      await Promise.all([a.stop(), b.stop()])
      await server.stop()

      const floorMs = Floors.replication(dir, rows, batch)
      const convergeMs = done.lastAppliedAt - written.startedAt
      const ours = rate(rows, convergeMs)
      const floor = rate(rows, floorMs)
      const result = {
        scenario: "throughput",
        processes: "server, A and B in three processes",
        rows,
        batch_size: batch,
        write_ms: written.endedAt - written.startedAt,
        converge_ms: convergeMs,
        rows_per_s: round(ours),
        floor_ms: round(floorMs),
        floor_rows_per_s: round(floor),
        ratio_to_floor: round(ours / floor, 4),
        cpu_ms: { server: cpuMs(before[0], after[0]), a: cpuMs(before[1], after[1]), b: cpuMs(before[2], after[2]) },
        target: batch === 1000 ? "rows_per_s >= 25 % of floor" : undefined,
        target_met: batch === 1000 ? ours / floor >= 0.25 : undefined
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
    `throughput, batch ${r.batch_size}`,
    `${r.rows_per_s} rows/s (${r.rows} rows)`,
    `${r.floor_rows_per_s} rows/s`,
    `${(r.ratio_to_floor * 100).toFixed(2)} %`,
    r.target ? `${r.target}: ${r.target_met ? "met" : "NOT met"}` : ""
  ])
