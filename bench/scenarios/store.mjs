// 7. The replica's store, operation by operation (no server, no manager): the time per row of
// each LocalStore step of a sync cycle on a SQLite file, `storeRows` rows in batches of 1,000:
// appendLocal (a write), listPendingMutations + ackMutationSeqs (a push, without the HTTP),
// applyPulledMutations (a pulled page, fresh keys). Run in the runner's process. Floor: the same
// statements in plain better-sqlite3, one transaction per batch. Finds per-row costs in
// @autosync/sqlite that the end-to-end scenarios only show as a lower rate.
import { LocalStore } from "@autosync/core"
import { SqliteLocalStore } from "@autosync/sqlite"
import Database from "better-sqlite3"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { removeDir, tempDir } from "../lib/proc.mjs"
import { round } from "../lib/stats.mjs"

const batch = 1000
const target = "cloud"

const write = (n) => ({
  project: "bench",
  entity: "note",
  entityKey: `note-${String(n).padStart(7, "0")}`,
  op: "upsert",
  payload: { n, t: 0, title: `Note ${n}`, tags: ["bench", n % 2 === 0 ? "even" : "odd"] }
})

const pulled = (seq) => ({ seq, ...write(1_000_000 + seq), occurredAt: new Date(0) })

const ours = async (dir, rows) => {
  const scope = Effect.runSync(Scope.make())
  const open = async (file) => {
    const context = await Effect.runPromise(Layer.buildWithScope(SqliteLocalStore.layerFile(file), scope))
    return Context.get(context, LocalStore.LocalStore)
  }
  try {
    const a = await open(`${dir}/store-a.db`)
    const b = await open(`${dir}/store-b.db`)
    await Effect.runPromise(a.enroll("bench"))
    const spent = { appendLocal: 0, listPendingMutations: 0, ackMutationSeqs: 0, applyPulledMutations: 0 }
    const timed = async (name, effect) => {
      const t = performance.now()
      const result = await Effect.runPromise(effect)
      spent[name] += performance.now() - t
      return result
    }
    let serverSeq = 0
    for (let from = 0; from < rows; from += batch) {
      const n = Math.min(batch, rows - from)
      await timed("appendLocal", a.appendLocal(target, Array.from({ length: n }, (_, i) => write(from + i))))
      const pending = await timed("listPendingMutations", a.listPendingMutations(target, batch))
      await timed(
        "ackMutationSeqs",
        a.ackMutationSeqs(target, pending.map((m) => ({ seq: m.seq, serverSeq: ++serverSeq })))
      )
      const page = Array.from({ length: n }, (_, i) => pulled(from + i + 1))
      await timed(
        "applyPulledMutations",
        b.applyPulledMutations
          ? b.applyPulledMutations(target, page)
          : Effect.forEach(page, (m) => b.applyPulledMutation(target, m))
      )
    }
    if ((await Effect.runPromise(a.countPending(target))) !== 0) throw new Error("rows still pending after their ack")
    return Object.fromEntries(Object.entries(spent).map(([k, ms]) => [k, round((1000 * ms) / rows, 1)]))
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const floor = (dir, rows) => {
  const open = (file) => {
    const db = new Database(file)
    db.pragma("journal_mode = WAL")
    db.pragma("synchronous = FULL")
    db.exec(`CREATE TABLE journal (seq INTEGER PRIMARY KEY, project TEXT, entity TEXT, entity_key TEXT, op TEXT,
      payload TEXT, occurred_at INTEGER, acked_at INTEGER, server_seq INTEGER, source TEXT);
      CREATE TABLE docs (project TEXT, entity TEXT, entity_key TEXT, value TEXT, updated_at INTEGER,
      PRIMARY KEY (project, entity, entity_key)) WITHOUT ROWID`)
    return db
  }
  const a = open(`${dir}/floor-store-a.db`)
  const b = open(`${dir}/floor-store-b.db`)
  const upsert = (db) =>
    db.prepare(`INSERT INTO docs VALUES (?, ?, ?, ?, ?) ON CONFLICT (project, entity, entity_key)
      DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`)
  const journal = (db) =>
    db.prepare(
      "INSERT INTO journal (project, entity, entity_key, op, payload, occurred_at, source) VALUES (?, ?, ?, ?, ?, ?, ?)"
    )
  const [upsertA, journalA, upsertB, journalB] = [upsert(a), journal(a), upsert(b), journal(b)]
  const append = a.transaction((ws) => {
    for (const w of ws) {
      const text = JSON.stringify(w.payload)
      upsertA.run(w.project, w.entity, w.entityKey, text, 0)
      journalA.run(w.project, w.entity, w.entityKey, w.op, text, 0, "local")
    }
  })
  const pending = a.prepare("SELECT * FROM journal WHERE acked_at IS NULL AND source = 'local' ORDER BY seq LIMIT ?")
  const ackOne = a.prepare("UPDATE journal SET acked_at = 1, server_seq = ? WHERE seq = ?")
  const ack = a.transaction((acks) => acks.forEach(([seq, s]) => ackOne.run(s, seq)))
  const apply = b.transaction((ms) => {
    for (const m of ms) {
      const text = JSON.stringify(m.payload)
      upsertB.run(m.project, m.entity, m.entityKey, text, 0)
      journalB.run(m.project, m.entity, m.entityKey, m.op, text, 0, "remote")
    }
  })
  const spent = { appendLocal: 0, listPendingMutations: 0, ackMutationSeqs: 0, applyPulledMutations: 0 }
  const timed = (name, f) => {
    const t = performance.now()
    const result = f()
    spent[name] += performance.now() - t
    return result
  }
  let serverSeq = 0
  for (let from = 0; from < rows; from += batch) {
    const n = Math.min(batch, rows - from)
    timed("appendLocal", () => append(Array.from({ length: n }, (_, i) => write(from + i))))
    const rowsPending = timed(
      "listPendingMutations",
      () => pending.all(batch).map((r) => ({ ...r, payload: JSON.parse(r.payload) }))
    )
    timed("ackMutationSeqs", () => ack(rowsPending.map((r) => [r.seq, ++serverSeq])))
    timed("applyPulledMutations", () => apply(Array.from({ length: n }, (_, i) => pulled(from + i + 1))))
  }
  a.close()
  b.close()
  return Object.fromEntries(Object.entries(spent).map(([k, ms]) => [k, round((1000 * ms) / rows, 1)]))
}

export const run = async (ctx) => {
  const rows = ctx.flags.storeRows
  const dir = tempDir()
  try {
    ctx.log(`store: ${rows} rows through each LocalStore step…`)
    const result = {
      scenario: "store",
      processes: "the runner's own process, no server",
      rows,
      batch_size: batch,
      us_per_row: await ours(dir, rows),
      floor_us_per_row: floor(dir, rows)
    }
    ctx.emit(result)
    return [result]
  } finally {
    removeDir(dir)
  }
}

export const tableRows = (results) =>
  results.flatMap((r) =>
    Object.keys(r.us_per_row).map((step) => [
      `store, ${step}`,
      `${r.us_per_row[step]} µs/row`,
      `${r.floor_us_per_row[step]} µs/row`,
      `${((100 * r.floor_us_per_row[step]) / r.us_per_row[step]).toFixed(1)} %`,
      ""
    ])
  )
