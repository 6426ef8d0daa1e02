// 6. Server cost per request: one client, one request at a time, after 300 of each to warm up,
// `costRequests` pushes of 10 documents then as many pulls of 100; the server process's CPU time
// (process.cpuUsage) per request, and the wall time the client saw. Floor: raw-server.mjs
// (SQLite) and raw-pg-server.mjs (PostgreSQL) under the same requests, in rounds taking turns
// with autosync's server, so that other work on the machine weighs on both alike (CPU time
// still grows with the load: caches and cores are shared).
import { startChild, startRawServer, startServer } from "../lib/cluster.mjs"
import * as Pg from "../lib/pg.mjs"
import { removeDir, tempDir } from "../lib/proc.mjs"
import { percentile, round } from "../lib/stats.mjs"

/** Requests of each kind before the measured ones. */
const warmup = 300
/** The measured requests of each kind come in this many rounds, the two servers taking turns. */
const rounds = 5

// One client of one server: pushes of 10 documents and pulls of 100, one request at a time, and
// the server process's CPU time (`process.cpuUsage`, from its stats) around a run of them.
const clientOf = (server, requests) => {
  const { token, url } = server.info
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" }
  let clientSeq = 0
  let pulls = 0
  const push = async () => {
    const mutations = Array.from({ length: 10 }, () => {
      const n = ++clientSeq
      return {
        client_seq: n,
        project: "bench",
        entity: "note",
        entity_key: `k${n % 500}`,
        op: "upsert",
        payload: { n, t: Date.now(), title: `Note ${n}`, tags: ["bench"] }
      }
    })
    const res = await fetch(`${url}/v1/push`, {
      method: "POST",
      headers,
      body: JSON.stringify({ client_id: "cost", mutations })
    })
    if (res.status !== 200) throw new Error(`push: ${res.status} ${await res.text()}`)
    await res.json()
  }
  // Cursors spread over the first `rows` of the log, each with at least 100 rows after it.
  const pull = async (rows = requests * 10) => {
    const i = pulls++
    const res = await fetch(`${url}/v1/pull?since_seq=${(i * 10) % (rows - 100)}&limit=100`, { headers })
    const page = await res.json()
    if (page.mutations.length !== 100) throw new Error(`pull: expected 100 mutations, got ${page.mutations.length}`)
  }
  const cpu = async () => {
    const s = await server.call("stats")
    return (s.cpuUserUs + s.cpuSystemUs) / 1000
  }
  const spent = { push: { cpu: 0, walls: [] }, pull: { cpu: 0, walls: [] } }
  const run = async (kind, n) => {
    const request = kind === "push" ? push : () => pull()
    const before = await cpu()
    for (let i = 0; i < n; i++) {
      const t = performance.now()
      await request()
      spent[kind].walls.push(performance.now() - t)
    }
    spent[kind].cpu += await cpu() - before
  }
  const result = () =>
    Object.fromEntries([["push_10", spent.push], ["pull_100", spent.pull]].map(([name, s]) => [name, {
      cpu_ms: round(s.cpu / s.walls.length, 3),
      wall_p50_ms: round(percentile(s.walls, 50), 2)
    }]))
  // Warm-up, so that both servers are measured at steady state, not while V8 still compiles
  // them (the floor's few plain functions warm up in tens of requests, Effect's code paths in
  // hundreds).
  const warm = async () => {
    for (let i = 0; i < warmup; i++) await push()
    for (let i = 0; i < warmup; i++) await pull(warmup * 10)
    pulls = 0
  }
  return { warm, run, result }
}

/**
 * The floors and autosync under the same requests, measured in rounds that take turns (pushes,
 * then pulls), so that other work on the machine weighs on all alike. `platform_floor`: the
 * floor's code served through @effect/platform's HTTP server, i.e. what the platform costs.
 */
const measureAll = async (servers, requests) => {
  const clients = Object.entries(servers).filter(([, server]) => server !== undefined)
    .map(([name, server]) => [name, clientOf(server, requests)])
  for (const [, client] of clients) await client.warm()
  const perRound = Math.max(1, Math.floor(requests / rounds))
  for (const kind of ["push", "pull"]) {
    for (let r = 0; r < rounds; r++) {
      for (const [, client] of clients) await client.run(kind, perRound)
    }
  }
  const { ours, ...floors } = Object.fromEntries(clients.map(([name, client]) => [name, client.result()]))
  return { ...ours, ...floors }
}

export const run = async (ctx) => {
  const requests = ctx.flags.costRequests
  const results = []
  const record = (r) => {
    ctx.emit(r)
    results.push(r)
  }
  const dir = tempDir()
  try {
    ctx.log(`cost: ${requests} pushes and pulls, one at a time, in ${rounds} rounds beside the floor's…`)
    const raw = await startRawServer(ctx, "cost-floor", { file: `${dir}/floor.db` })
    const platform = await startRawServer(ctx, "cost-platform-floor", { file: `${dir}/platform.db`, platform: true })
    const sqlite = await startServer(ctx, "cost-sqlite", { file: `${dir}/server.db`, createToken: true })
    const measured = await measureAll({ floor: raw, platform_floor: platform, ours: sqlite }, requests)
    record({ scenario: "cost", backend: "sqlite", requests, ...measured })
    await Promise.all([raw.stop(), platform.stop(), sqlite.stop()])
  } finally {
    removeDir(dir)
  }
  const why = await Pg.unreachable(ctx.flags.pgUrl)
  if (why !== undefined) {
    record({ scenario: "cost", backend: "pg", skipped: `PostgreSQL not reachable: ${why}` })
    return results
  }
  const schema = await Pg.freshSchema(ctx.flags.pgUrl)
  const floorSchema = await Pg.freshSchema(ctx.flags.pgUrl)
  try {
    // The PostgreSQL floor: node:http + node-postgres doing the same transaction per push.
    const raw = await startChild(ctx, "raw-pg-server.mjs", "cost-floor-pg", { url: floorSchema.url })
    const pg = await startServer(ctx, "cost-pg", { url: schema.url, createToken: true })
    record({ scenario: "cost", backend: "pg", requests, ...(await measureAll({ floor: raw, ours: pg }, requests)) })
    await raw.stop()
    await pg.stop()
  } finally {
    await Pg.dropAll(ctx.flags.pgUrl)
  }
  return results
}

export const tableRows = (results) =>
  results.map((r) =>
    r.skipped
      ? [`server cost, ${r.backend}`, "skipped", "", "", r.skipped]
      : [
        `server cost, ${r.backend}`,
        `CPU/request: push(10) ${r.push_10.cpu_ms} ms, pull(100) ${r.pull_100.cpu_ms} ms`,
        `${r.floor.push_10.cpu_ms} ms, ${r.floor.pull_100.cpu_ms} ms` + (r.platform_floor === undefined
          ? ""
          : ` (over @effect/platform: ${r.platform_floor.push_10.cpu_ms} ms, ${r.platform_floor.pull_100.cpu_ms} ms)`),
        `${round(r.push_10.cpu_ms / r.floor.push_10.cpu_ms, 2)}x, ${
          round(r.pull_100.cpu_ms / r.floor.pull_100.cpu_ms, 2)
        }x`,
        "within 2x of the floor"
      ]
  )
