// 3. Backlog: `rows` documents written on A while no server runs (the outage), then A's manager
// starts against a fresh server and pushes them, `batch` per push. Rows per second from the
// manager's start until nothing is pending, and the peak RSS of A's process (which only starts
// and pushes: the rows were written by an earlier process). Floor: lib/floors.mjs `backlog`.
import { logSqlStats, startReplica, startServer, withStallCheck } from "../lib/cluster.mjs"
import * as Floors from "../lib/floors.mjs"
import { removeDir, tempDir } from "../lib/proc.mjs"
import { rate, round } from "../lib/stats.mjs"

// One push of `rows` pending rows: prefill (no server), then A's manager against a fresh server.
const measure = async (ctx, { batch, label, nodeArgs = [], rows }) => {
  const dir = tempDir()
  try {
    ctx.log(`backlog${label}: writing ${rows} rows while the server is down…`)
    const writer = await startReplica(ctx, "backlog-writer", { file: `${dir}/a.db`, sync: false })
    const written = await writer.call("write", { rows, batch: 5000 }, 3_600_000)
    await writer.stop()

    ctx.log(`backlog${label}: pushing ${rows} rows in batches of ${batch}…`)
    const server = await startServer(ctx, "backlog-server", { file: `${dir}/server.db`, createToken: true })
    const a = await startReplica(ctx, "backlog-a", {
      file: `${dir}/a.db`,
      server,
      nodeArgs,
      config: { debounce: 0, pushBatchSize: batch, pullBatchSize: batch }
    })
    const pushed = await withStallCheck(
      a.call("awaitPushed", { pollMs: 100 }, 3_600_000),
      async () => (await a.call("pending")).pending,
      ctx.flags.stallSeconds * 1000,
      "the backlog push"
    )
    const [aStats, serverStats] = await Promise.all([a.call("stats"), server.call("stats")])
    await logSqlStats(ctx, a)
    await a.stop()
    await server.stop()

    const floorMs = Floors.backlog(dir, rows, batch)
    const ms = pushed.at - a.info.syncStartedAt
    const ours = rate(rows, ms)
    const floor = rate(rows, floorMs)
    return {
      scenario: "backlog",
      processes: "server and A in two processes; the rows were written by a third, before",
      rows,
      push_batch_size: batch,
      node_args: nodeArgs,
      prefill_ms: written.endedAt - written.startedAt,
      push_ms: ms,
      rows_per_s: round(ours),
      peak_rss_mib: round(aStats.peakRssMiB, 1),
      peak_heap_used_mib: round(pushed.peakMiB.heapUsed, 1),
      peak_heap_total_mib: round(pushed.peakMiB.heapTotal, 1),
      rss_after_start_mib: round(a.info.rssMiB, 1),
      server_peak_rss_mib: round(serverStats.peakRssMiB, 1),
      floor_ms: round(floorMs),
      floor_rows_per_s: round(floor),
      ratio_to_floor: round(ours / floor, 4),
      target: "peak_rss_mib < 200",
      target_met: aStats.peakRssMiB < 200
    }
  } finally {
    removeDir(dir)
  }
}

export const run = async (ctx) => {
  const { backlogBatch: batch, backlogHeapCap: cap, backlogRows: rows } = ctx.flags
  const results = [await measure(ctx, { batch, label: "", rows })]
  ctx.emit(results[0])
  // The same push with V8's old space capped: the peak RSS above is mostly garbage V8 has not
  // collected yet; this shows the working set (the rows/s tell whether the cap costs anything).
  if (cap > 0) {
    const capped = await measure(ctx, {
      batch,
      label: `, heap capped at ${cap} MiB`,
      nodeArgs: [`--max-old-space-size=${cap}`],
      rows: Math.min(rows, 200_000)
    })
    ctx.emit(capped)
    results.push(capped)
  }
  return results
}

export const tableRows = (results) =>
  results.flatMap((r) => [
    [
      `backlog, ${r.rows} rows, batch ${r.push_batch_size}${
        r.node_args.length > 0 ? `, ${r.node_args.join(" ")}` : ""
      }`,
      `${r.rows_per_s} rows/s, peak RSS ${r.peak_rss_mib} MiB`,
      `${r.floor_rows_per_s} rows/s`,
      `${(r.ratio_to_floor * 100).toFixed(2)} %`,
      `${r.target}: ${r.target_met ? "met" : "NOT met"}`
    ]
  ])
