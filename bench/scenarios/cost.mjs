// 6. Server cost per request: one client, one request at a time, after 300 of each to warm up,
// `costRequests` pushes of 10 documents then as many pulls of 100; the server process's CPU time (process.cpuUsage) per
// request, and the wall time the client saw. CPU time barely depends on what else the machine
// runs, so this is the figure to compare before and after a server change.
// Floor: raw-server.mjs under the same requests.
import { startChild, startRawServer, startServer } from "../lib/cluster.mjs"
import * as Pg from "../lib/pg.mjs"
import { removeDir, tempDir } from "../lib/proc.mjs"
import { percentile, round } from "../lib/stats.mjs"

/** Requests of each kind before the measured ones. */
const warmup = 300

const measure = async (server, requests) => {
  const { token, url } = server.info
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" }
  let clientSeq = 0
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
  const pull = async (i, rows = requests * 10) => {
    const res = await fetch(`${url}/v1/pull?since_seq=${(i * 10) % (rows - 100)}&limit=100`, { headers })
    const page = await res.json()
    if (page.mutations.length !== 100) throw new Error(`pull: expected 100 mutations, got ${page.mutations.length}`)
  }
  const cpu = async () => {
    const s = await server.call("stats")
    return (s.cpuUserUs + s.cpuSystemUs) / 1000
  }
  const run = async (request) => {
    const walls = []
    const before = await cpu()
    for (let i = 0; i < requests; i++) {
      const t = performance.now()
      await request(i)
      walls.push(performance.now() - t)
    }
    return { cpu_ms: round((await cpu() - before) / requests, 3), wall_p50_ms: round(percentile(walls, 50), 2) }
  }
  // Warm-up, so that both servers are measured at steady state, not while V8 still compiles
  // them (the floor's few plain functions warm up in tens of requests, Effect's code paths in
  // hundreds).
  for (let i = 0; i < warmup; i++) await push()
  for (let i = 0; i < warmup; i++) await pull(i, warmup * 10)
  const pushes = await run(push)
  const pulls = await run(pull)
  return { push_10: pushes, pull_100: pulls }
}

export const run = async (ctx) => {
  const requests = ctx.flags.costRequests
  const results = []
  const record = (r) => {
    ctx.emit(r)
    results.push(r)
  }
  const dir = tempDir()
  let floor
  try {
    ctx.log(`cost: ${requests} pushes and pulls, one at a time…`)
    const raw = await startRawServer(ctx, "cost-floor", { file: `${dir}/floor.db` })
    floor = await measure(raw, requests)
    await raw.stop()
    const sqlite = await startServer(ctx, "cost-sqlite", { file: `${dir}/server.db`, createToken: true })
    record({ scenario: "cost", backend: "sqlite", requests, ...(await measure(sqlite, requests)), floor })
    await sqlite.stop()
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
    const pgFloor = await measure(raw, requests)
    await raw.stop()
    const pg = await startServer(ctx, "cost-pg", { url: schema.url, createToken: true })
    record({ scenario: "cost", backend: "pg", requests, ...(await measure(pg, requests)), floor: pgFloor })
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
        `${r.floor.push_10.cpu_ms} ms, ${r.floor.pull_100.cpu_ms} ms`,
        "",
        ""
      ]
  )
