// The floor of the propagation bench: a writer and a reader in plain better-sqlite3 and fetch,
// against raw-server.mjs. The writer journals each tick's rows in one transaction and pushes them
// at once (no debounce, no lease, no status); the reader holds a long-poll pull and upserts each
// page in one transaction.
import Database from "better-sqlite3"
import { setTimeout as sleep } from "node:timers/promises"
import { options, serve } from "../lib/child.mjs"

const opts = options()
const open = (file, ddl) => {
  const db = new Database(file)
  db.pragma("journal_mode = WAL")
  db.exec(ddl)
  return db
}
const a = open(
  `${opts.dir}/floor-a.db`,
  "CREATE TABLE journal (seq INTEGER PRIMARY KEY, entity_key TEXT NOT NULL, payload TEXT NOT NULL, acked INTEGER)"
)
const b = open(
  `${opts.dir}/floor-b.db`,
  "CREATE TABLE docs (entity_key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"
)
const journal = a.prepare("INSERT INTO journal (entity_key, payload) VALUES (?, ?)")
const write = a.transaction((rows) => rows.map((r) => Number(journal.run(r.entity_key, r.text).lastInsertRowid)))
const ack = a.prepare("UPDATE journal SET acked = 1 WHERE seq BETWEEN ? AND ?")
const upsert = b.prepare(
  "INSERT INTO docs (entity_key, value) VALUES (?, ?) ON CONFLICT (entity_key) DO UPDATE SET value = excluded.value"
)
const apply = b.transaction((mutations) => {
  for (const m of mutations) upsert.run(m.entity_key, JSON.stringify(m.payload))
})

const runLatency = async ({ rate, seconds, tickMs, token, url }) => {
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" }
  const total = Math.round(rate * seconds)
  const delays = []
  let stopReader = false
  const reader = (async () => {
    let cursor = 0
    while (!stopReader && delays.length < total) {
      const res = await fetch(`${url}/v1/pull?since_seq=${cursor}&limit=1000&wait_ms=1000`, { headers })
      const page = await res.json()
      if (page.mutations.length === 0) continue
      apply(page.mutations)
      const at = Date.now()
      for (const m of page.mutations) delays.push(at - m.payload.t)
      cursor = page.mutations[page.mutations.length - 1].seq
    }
  })()
  const startedAt = Date.now()
  let written = 0
  while (written < total) {
    const tickStart = Date.now()
    const due = Math.min(total, Math.floor(((tickStart - startedAt) * rate) / 1000)) - written
    if (due > 0) {
      const t = Date.now()
      const rows = Array.from({ length: due }, (_, i) => {
        const n = written + i
        const payload = { n, t, title: `Note ${n}`, tags: ["bench", n % 2 === 0 ? "even" : "odd"] }
        return { entity_key: `note-${String(n).padStart(7, "0")}`, payload, text: JSON.stringify(payload) }
      })
      const seqs = write(rows)
      const res = await fetch(`${url}/v1/push`, {
        method: "POST",
        headers,
        body: JSON.stringify({
          client_id: "floor-writer",
          mutations: rows.map((r, i) => ({
            client_seq: seqs[i],
            project: "bench",
            entity: "note",
            entity_key: r.entity_key,
            op: "upsert",
            payload: r.payload
          }))
        })
      })
      await res.json()
      ack.run(seqs[0], seqs[seqs.length - 1])
      written += due
    }
    await sleep(Math.max(1, tickMs - (Date.now() - tickStart)))
  }
  const deadline = Date.now() + 30_000
  while (delays.length < total && Date.now() < deadline) await sleep(20)
  stopReader = true
  await reader.catch(() => {})
  return { delays, written }
}

serve({}, { runLatency }, async () => {
  a.close()
  b.close()
})
