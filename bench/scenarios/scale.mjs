// 4. Server scale: `clients` simulated clients (raw fetch, one process: children/load.mjs), each
// pushing `pushBatch` documents then pulling a page of `pullLimit` from its cursor, in a loop, for
// `seconds`; against one server on SQLite, one on PostgreSQL and two on one PostgreSQL schema
// (half the clients each). Floors: raw-server.mjs (node:http + better-sqlite3) and
// raw-pg-server.mjs (node:http + node-postgres) under the same load.
import { logSqlStats, startChild, startRawServer, startServer } from "../lib/cluster.mjs"
import * as Pg from "../lib/pg.mjs"
import { removeDir, tempDir } from "../lib/proc.mjs"
import { cpuMs, round } from "../lib/stats.mjs"

const load = async (ctx, label, servers) => {
  const { clients, scaleSeconds: seconds, scalePullLimit: pullLimit, scalePushBatch: pushBatch } = ctx.flags
  const loader = await startChild(ctx, "load.mjs", `load-${label}`)
  try {
    const before = await Promise.all(servers.map((s) => s.call("stats")))
    const figures = await loader.call("run", {
      urls: servers.map((s) => s.info.url),
      token: servers[0].info.token,
      clients,
      seconds,
      warmupSeconds: 1,
      pushBatch,
      pullLimit
    })
    const after = await Promise.all(servers.map((s) => s.call("stats")))
    for (const server of servers) await logSqlStats(ctx, server)
    return {
      scenario: "scale",
      backend: label,
      processes: `${servers.length} server process(es), the clients in one more`,
      clients,
      seconds: figures.seconds,
      push_batch: pushBatch,
      pull_limit: pullLimit,
      mutations_per_s: figures.mutationsPerS,
      pulled_per_s: figures.pulledPerS,
      push_p50_ms: figures.push.p50,
      push_p99_ms: figures.push.p99,
      pull_p50_ms: figures.pull.p50,
      pull_p99_ms: figures.pull.p99,
      requests: figures.push.count + figures.pull.count,
      errors: figures.errors,
      ...(figures.firstError ? { first_error: figures.firstError } : {}),
      server_cpu_ms: servers.map((_, i) => cpuMs(before[i], after[i])),
      server_cpu_ms_per_1000_requests: Math.round(
        (1000 * servers.reduce((sum, _, i) => sum + cpuMs(before[i], after[i]), 0)) /
          Math.max(1, figures.push.count + figures.pull.count)
      ),
      server_peak_rss_mib: after.map((s) => Math.round(s.peakRssMiB))
    }
  } finally {
    await loader.stop()
  }
}

export const run = async (ctx) => {
  const results = []
  const record = (result) => {
    ctx.emit(result)
    results.push(result)
  }
  const dir = tempDir()
  try {
    ctx.log(`scale: floor (node:http + better-sqlite3), ${ctx.flags.clients} clients…`)
    const raw = await startRawServer(ctx, "scale-floor", { file: `${dir}/floor.db` })
    const floor = await load(ctx, "floor-sqlite", [raw])
    await raw.stop()
    record(floor)

    ctx.log(`scale: SQLite server, ${ctx.flags.clients} clients…`)
    const sqlite = await startServer(ctx, "scale-sqlite", { file: `${dir}/server.db`, createToken: true })
    const ours = await load(ctx, "sqlite", [sqlite])
    await sqlite.stop()
    record({
      ...ours,
      floor_mutations_per_s: floor.mutations_per_s,
      ratio_to_floor: round(ours.mutations_per_s / floor.mutations_per_s, 4)
    })
  } finally {
    removeDir(dir)
  }

  const pgUrl = ctx.flags.pgUrl
  const why = await Pg.unreachable(pgUrl)
  if (why !== undefined) {
    const skipped = { scenario: "scale", backend: "pg", skipped: `PostgreSQL not reachable: ${why}` }
    ctx.log(`scale: skipping PostgreSQL (${why})`)
    record(skipped)
    return results
  }
  try {
    ctx.log(`scale: floor on PostgreSQL (node:http + node-postgres), ${ctx.flags.clients} clients…`)
    const floorSchema = await Pg.freshSchema(pgUrl)
    let pgFloor
    try {
      const raw = await startChild(ctx, "raw-pg-server.mjs", "scale-floor-pg", { url: floorSchema.url })
      try {
        pgFloor = await load(ctx, "floor-pg", [raw])
      } finally {
        await raw.stop()
      }
      record(pgFloor)
    } finally {
      await Pg.dropSchema(pgUrl, floorSchema.name)
    }
    for (const count of [1, 2]) {
      ctx.log(`scale: ${count} PostgreSQL server(s), ${ctx.flags.clients} clients…`)
      const schema = await Pg.freshSchema(pgUrl)
      const servers = []
      try {
        servers.push(await startServer(ctx, `scale-pg-1of${count}`, { url: schema.url, createToken: true }))
        for (let i = 1; i < count; i++) {
          servers.push(
            await startServer(ctx, `scale-pg-${i + 1}of${count}`, { url: schema.url, token: servers[0].info.token })
          )
        }
        const figures = await load(ctx, count === 1 ? "pg" : "pg-2-servers", servers)
        record({
          ...figures,
          floor_mutations_per_s: pgFloor.mutations_per_s,
          ratio_to_floor: round(figures.mutations_per_s / pgFloor.mutations_per_s, 4)
        })
      } finally {
        await Promise.all(servers.map((s) => s.stop()))
        await Pg.dropSchema(pgUrl, schema.name)
      }
    }
  } finally {
    await Pg.dropAll(pgUrl)
  }
  return results
}

export const tableRows = (results) => {
  const floors = {
    sqlite: results.find((r) => r.backend === "floor-sqlite"),
    pg: results.find((r) => r.backend === "floor-pg")
  }
  return results.filter((r) => !r.backend.startsWith("floor-")).map((r) => {
    if (r.skipped) return [`scale, ${r.backend}`, "skipped", "", "", r.skipped]
    const floor = r.backend === "sqlite" ? floors.sqlite : floors.pg
    return [
      `scale, ${r.backend}, ${r.clients} clients`,
      `${r.mutations_per_s} mut/s, p99 push ${r.push_p99_ms} / pull ${r.pull_p99_ms} ms`,
      floor ? `${floor.mutations_per_s} mut/s, p99 ${floor.push_p99_ms} / ${floor.pull_p99_ms} ms` : "",
      floor ? `${((100 * r.mutations_per_s) / floor.mutations_per_s).toFixed(1)} %` : "",
      r.errors > 0 ? `${r.errors} errors` : ""
    ]
  })
}
