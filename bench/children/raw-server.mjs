// The floor of the server benches: the same wire protocol (push, pull with wait_ms) in plain
// node:http and better-sqlite3, with the same table and transaction per push, but none of the
// sync server's logic (no schemas, no Effect, one fixed token, no identity-conflict check, no
// body limit or error mapping). With `platform: true`, the same push and pull (no wait_ms)
// served through @effect/platform's Node HTTP server instead: what serving over the platform
// costs by itself (the `cost` bench's second floor).
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import Database from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"
import { options, serve } from "../lib/child.mjs"

const opts = options()
const token = "floor-token"
const db = new Database(opts.file)
db.pragma("journal_mode = WAL")
db.pragma("synchronous = FULL")
db.exec(`CREATE TABLE IF NOT EXISTS autosync_log (
  seq INTEGER PRIMARY KEY, client_id TEXT NOT NULL, client_seq BIGINT NOT NULL, project TEXT NOT NULL,
  entity TEXT NOT NULL, entity_key TEXT NOT NULL, op TEXT NOT NULL, payload TEXT NOT NULL,
  occurred_at BIGINT NOT NULL, UNIQUE (client_id, client_seq));
  CREATE INDEX IF NOT EXISTS autosync_log_project_seq ON autosync_log (project, seq)`)

const insert = db.prepare(`INSERT INTO autosync_log
  (seq, client_id, client_seq, project, entity, entity_key, op, payload, occurred_at)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
const seqOf = db.prepare("SELECT seq FROM autosync_log WHERE client_id = ? AND client_seq = ?")
const latestStmt = db.prepare("SELECT COALESCE(MAX(seq), 0) AS latest FROM autosync_log")
const page = db.prepare(`SELECT seq, project, entity, entity_key, op, payload, occurred_at FROM autosync_log
  WHERE seq > ? AND project = ? ORDER BY seq LIMIT ?`)
let latest = latestStmt.get().latest
let waiters = []

const append = db.transaction((clientId, mutations, at) => {
  const seqs = []
  for (const m of mutations) {
    const result = insert.run(
      latest + 1,
      clientId,
      m.client_seq,
      m.project,
      m.entity,
      m.entity_key,
      m.op,
      JSON.stringify(m.payload),
      at
    )
    if (result.changes > 0) latest++
    seqs.push(seqOf.get(clientId, m.client_seq).seq)
  }
  return seqs
})

const readPage = (since, project, limit) => {
  const rows = page.all(since, project, limit + 1)
  const mutations = rows.slice(0, limit).map((r) => ({
    seq: r.seq,
    project: r.project,
    entity: r.entity,
    entity_key: r.entity_key,
    op: r.op,
    payload: JSON.parse(r.payload),
    occurred_at: new Date(r.occurred_at).toISOString()
  }))
  return { mutations, has_more: rows.length > limit, latest_seq: latest }
}

const send = (res, status, body) => {
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
  res.end(text)
}

// The same push and pull as below, as an @effect/platform app (plain code inside one Effect each).
const platformApp = Effect.gen(function*() {
  const req = yield* HttpServerRequest.HttpServerRequest
  if (req.headers.authorization !== `Bearer ${token}`) {
    return HttpServerResponse.unsafeJson({ message: "unauthorized" }, { status: 401 })
  }
  const url = new URL(req.url, "http://127.0.0.1")
  if (req.method === "POST" && url.pathname === "/v1/push") {
    const body = yield* req.json
    const before = latest
    const seqs = append(body.client_id, body.mutations, Date.now())
    if (latest > before) { for (const wake of waiters.splice(0)) wake() }
    return HttpServerResponse.unsafeJson({ accepted_seqs: seqs })
  }
  if (req.method === "GET" && url.pathname === "/v1/pull") {
    const since = Number(url.searchParams.get("since_seq") ?? 0)
    const limit = Math.min(1000, Number(url.searchParams.get("limit") ?? 100))
    return HttpServerResponse.unsafeJson(
      readPage(since, url.searchParams.get("project") ?? opts.project ?? "bench", limit)
    )
  }
  return HttpServerResponse.unsafeJson({ message: "not found" }, { status: 404 })
})

const server = createServer(
  opts.platform ? undefined : (req, res) => {
    if (req.headers.authorization !== `Bearer ${token}`) return send(res, 401, { message: "unauthorized" })
    const url = new URL(req.url, "http://127.0.0.1")
    if (req.method === "POST" && url.pathname === "/v1/push") {
      const chunks = []
      req.on("data", (c) => chunks.push(c))
      req.on("end", () => {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8"))
        const before = latest
        const seqs = append(body.client_id, body.mutations, Date.now())
        send(res, 200, { accepted_seqs: seqs })
        if (latest > before) {
          const woken = waiters
          waiters = []
          for (const wake of woken) wake()
        }
      })
      return
    }
    if (req.method === "GET" && url.pathname === "/v1/pull") {
      const since = Number(url.searchParams.get("since_seq") ?? 0)
      const limit = Math.min(1000, Number(url.searchParams.get("limit") ?? 100))
      const wait = Math.min(30_000, Number(url.searchParams.get("wait_ms") ?? 0))
      const project = url.searchParams.get("project") ?? opts.project ?? "bench"
      const first = readPage(since, project, limit)
      if (first.mutations.length > 0 || wait === 0) return send(res, 200, first)
      let done = false
      const answer = () => {
        if (done) return
        done = true
        clearTimeout(timer)
        send(res, 200, readPage(since, project, limit))
      }
      const timer = setTimeout(answer, wait)
      waiters.push(answer)
      return
    }
    send(res, 404, { message: "not found" })
  }
)
server.keepAliveTimeout = 60_000
if (opts.platform) {
  await Effect.runPromise(
    Layer.launch(HttpServer.serve(platformApp)).pipe(
      Effect.provide(NodeHttpServer.layer(() => server, { port: 0, host: "127.0.0.1" })),
      Effect.forkDaemon
    )
  )
  while (!server.listening) await new Promise((resolve) => setTimeout(resolve, 10))
} else {
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve))
}

serve({ url: `http://127.0.0.1:${server.address().port}`, token }, {}, async () => {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
  db.close()
})
