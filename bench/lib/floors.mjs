// Floors computed in the runner with plain better-sqlite3: the same rows, in the same
// transaction sizes, with none of the sync logic. Same pragmas as the real files (WAL mode,
// synchronous FULL, as the replicas' default and the server's), on the same disk.
import Database from "better-sqlite3"

const open = (file, ddl) => {
  const db = new Database(file)
  db.pragma("journal_mode = WAL")
  db.pragma("synchronous = FULL")
  db.exec(ddl)
  return db
}

const journalDdl = `CREATE TABLE journal (seq INTEGER PRIMARY KEY, project TEXT NOT NULL, entity TEXT NOT NULL,
  entity_key TEXT NOT NULL, op TEXT NOT NULL, payload TEXT, occurred_at INTEGER NOT NULL, acked_at INTEGER)`
const logDdl = `CREATE TABLE log (seq INTEGER PRIMARY KEY, client_id TEXT NOT NULL, client_seq INTEGER NOT NULL,
  project TEXT NOT NULL, entity TEXT NOT NULL, entity_key TEXT NOT NULL, op TEXT NOT NULL, payload TEXT NOT NULL,
  occurred_at INTEGER NOT NULL, UNIQUE (client_id, client_seq))`
const docsDdl = `CREATE TABLE docs (project TEXT NOT NULL, entity TEXT NOT NULL, entity_key TEXT NOT NULL,
  value TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (project, entity, entity_key)) WITHOUT ROWID`

const row = (n) => {
  const payload = { n, t: Date.now(), title: `Note ${n}`, tags: ["bench", n % 2 === 0 ? "even" : "odd"] }
  return { key: `note-${String(n).padStart(7, "0")}`, payload: JSON.stringify(payload) }
}

/**
 * Replication without sync logic: per batch, the journal insert on A, the log insert on the
 * server's database and the upsert on B, each one transaction. Returns the elapsed ms.
 */
export const replication = (dir, rows, batch) => {
  const a = open(`${dir}/floor-a.db`, journalDdl)
  const s = open(`${dir}/floor-server.db`, logDdl)
  const b = open(`${dir}/floor-b.db`, docsDdl)
  const journal = a.prepare(
    "INSERT INTO journal (seq, project, entity, entity_key, op, payload, occurred_at) VALUES (?, 'bench', 'note', ?, 'upsert', ?, ?)"
  )
  const log = s.prepare(
    "INSERT INTO log (seq, client_id, client_seq, project, entity, entity_key, op, payload, occurred_at) VALUES (?, 'a', ?, 'bench', 'note', ?, 'upsert', ?, ?)"
  )
  const upsert = b.prepare(`INSERT INTO docs (project, entity, entity_key, value, updated_at)
    VALUES ('bench', 'note', ?, ?, ?) ON CONFLICT (project, entity, entity_key)
    DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`)
  const write = a.transaction((items, from, at) => items.forEach((r, i) => journal.run(from + i, r.key, r.payload, at)))
  const append = s.transaction((items, from, at) =>
    items.forEach((r, i) => log.run(from + i, from + i, r.key, r.payload, at))
  )
  const apply = b.transaction((items, at) => items.forEach((r) => upsert.run(r.key, r.payload, at)))
  const started = performance.now()
  for (let from = 1; from <= rows; from += batch) {
    const items = Array.from({ length: Math.min(batch, rows - from + 1) }, (_, i) => row(from + i))
    const at = Date.now()
    write(items, from, at)
    append(items, from, at)
    apply(items, at)
  }
  const ms = performance.now() - started
  for (const db of [a, s, b]) db.close()
  return ms
}

/**
 * Pushing a backlog without sync logic: `rows` pending journal rows on A (written first, not
 * timed); then per batch, read the oldest pending rows, insert them in the server's log, mark
 * them acked on A, each one transaction. Returns the elapsed ms.
 */
export const backlog = (dir, rows, batch) => {
  const a = open(`${dir}/floor-backlog-a.db`, journalDdl)
  const s = open(`${dir}/floor-backlog-server.db`, logDdl)
  const journal = a.prepare(
    "INSERT INTO journal (seq, project, entity, entity_key, op, payload, occurred_at) VALUES (?, 'bench', 'note', ?, 'upsert', ?, ?)"
  )
  const fill = a.transaction((from, count, at) => {
    for (let i = 0; i < count; i++) {
      const r = row(from + i)
      journal.run(from + i, r.key, r.payload, at)
    }
  })
  for (let from = 1; from <= rows; from += 10_000) fill(from, Math.min(10_000, rows - from + 1), Date.now())
  // As the replicas' journal has: an index of the pending rows, so reading the oldest ones does
  // not walk past every row acked before.
  a.exec("CREATE INDEX journal_pending ON journal (seq) WHERE acked_at IS NULL")
  const pending = a.prepare("SELECT * FROM journal WHERE acked_at IS NULL ORDER BY seq LIMIT ?")
  const ack = a.prepare("UPDATE journal SET acked_at = ? WHERE seq = ?")
  const log = s.prepare(
    "INSERT INTO log (seq, client_id, client_seq, project, entity, entity_key, op, payload, occurred_at) VALUES (?, 'a', ?, ?, ?, ?, ?, ?, ?)"
  )
  const append = s.transaction((items, at) =>
    items.forEach((r) => log.run(r.seq, r.seq, r.project, r.entity, r.entity_key, r.op, r.payload, at))
  )
  const acked = a.transaction((items, at) => items.forEach((r) => ack.run(at, r.seq)))
  const started = performance.now()
  while (true) {
    const items = pending.all(batch)
    if (items.length === 0) break
    const at = Date.now()
    append(items, at)
    acked(items, at)
  }
  const ms = performance.now() - started
  a.close()
  s.close()
  return ms
}
