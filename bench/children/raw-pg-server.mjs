// The floor of the server-scale bench on PostgreSQL: push and pull (no wait_ms) in plain
// node:http and node-postgres (a pool of 10, as the server's), with the server's table and the
// same transaction per push (advisory lock, max(seq), one multi-row insert, commit), but none of
// its logic (no schemas, no Effect, one fixed token, no identity-conflict check, no notify).
import { createServer } from "node:http"
import { options, serve } from "../lib/child.mjs"
import { loadPg } from "../lib/deps.mjs"

const { Pool } = loadPg()
const opts = options()
const token = "floor-token"
const pool = new Pool({ connectionString: opts.url, max: 10 })
await pool.query(`CREATE TABLE IF NOT EXISTS autosync_log (
  seq BIGINT PRIMARY KEY, client_id TEXT NOT NULL, client_seq BIGINT NOT NULL, project TEXT NOT NULL,
  entity TEXT NOT NULL, entity_key TEXT NOT NULL, op TEXT NOT NULL, payload TEXT NOT NULL,
  occurred_at BIGINT NOT NULL, UNIQUE (client_id, client_seq));
  CREATE INDEX IF NOT EXISTS autosync_log_project_seq ON autosync_log (project, seq)`)

const append = async (clientId, mutations, at) => {
  const client = await pool.connect()
  try {
    await client.query("BEGIN")
    await client.query("SELECT pg_advisory_xact_lock(hashtext('autosync_bench_floor'))")
    const { rows: [{ latest }] } = await client.query("SELECT COALESCE(MAX(seq), 0)::int AS latest FROM autosync_log")
    const values = []
    const params = []
    mutations.forEach((m, i) => {
      const p = params.length
      values.push(`($${p + 1}, $${p + 2}, $${p + 3}, $${p + 4}, $${p + 5}, $${p + 6}, $${p + 7}, $${p + 8}, $${p + 9})`)
      params.push(
        latest + i + 1,
        clientId,
        m.client_seq,
        m.project,
        m.entity,
        m.entity_key,
        m.op,
        JSON.stringify(m.payload),
        at
      )
    })
    await client.query(
      `INSERT INTO autosync_log (seq, client_id, client_seq, project, entity, entity_key, op, payload, occurred_at)
       VALUES ${values.join(", ")}`,
      params
    )
    await client.query("COMMIT")
    return mutations.map((_, i) => latest + i + 1)
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {})
    throw error
  } finally {
    client.release()
  }
}

const send = (res, status, body) => {
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
  res.end(text)
}

const server = createServer((req, res) => {
  if (req.headers.authorization !== `Bearer ${token}`) return send(res, 401, { message: "unauthorized" })
  const url = new URL(req.url, "http://127.0.0.1")
  const fail = (error) => send(res, 500, { message: String(error) })
  if (req.method === "POST" && url.pathname === "/v1/push") {
    const chunks = []
    req.on("data", (c) => chunks.push(c))
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8"))
      append(body.client_id, body.mutations, Date.now()).then((seqs) => send(res, 200, { accepted_seqs: seqs }), fail)
    })
    return
  }
  if (req.method === "GET" && url.pathname === "/v1/pull") {
    const since = Number(url.searchParams.get("since_seq") ?? 0)
    const limit = Math.min(1000, Number(url.searchParams.get("limit") ?? 100))
    Promise.all([
      pool.query("SELECT COALESCE(MAX(seq), 0)::int AS latest FROM autosync_log"),
      pool.query(
        `SELECT seq::int, project, entity, entity_key, op, payload, occurred_at::float8 AS occurred_at
         FROM autosync_log WHERE seq > $1 AND project = $2 ORDER BY seq LIMIT $3`,
        [since, opts.project ?? "bench", limit + 1]
      )
    ]).then(([latest, page]) => {
      const rows = page.rows
      send(res, 200, {
        mutations: rows.slice(0, limit).map((r) => ({
          seq: r.seq,
          project: r.project,
          entity: r.entity,
          entity_key: r.entity_key,
          op: r.op,
          payload: JSON.parse(r.payload),
          occurred_at: new Date(r.occurred_at).toISOString()
        })),
        has_more: rows.length > limit,
        latest_seq: latest.rows[0].latest
      })
    }, fail)
    return
  }
  send(res, 404, { message: "not found" })
})
server.keepAliveTimeout = 60_000
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve))

serve({ url: `http://127.0.0.1:${server.address().port}`, token }, {}, async () => {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
  await pool.end()
})
