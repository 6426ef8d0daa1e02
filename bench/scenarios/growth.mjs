// 10. Growth: does a replica's file grow with its data or with its history? One replica store
// on a SQLite file (no server, the runner's process) takes writes to `growthKeys` keys (10,000)
// in batches of 1,000, each batch synced as the manager would: pushed (listPendingMutations,
// ackMutationSeqs with the server seqs a log would give), then pulled (100 writes of another
// replica to the same keys, and the cursor moved past our own writes). At each checkpoint of
// `growthWrites` (10k, 100k, 1M writes): the file's size after the incremental vacuum
// (`SqliteLocalStore.reclaimSpace`) and a WAL checkpoint, the journal's rows and per-key facts,
// and the time the writes took. Target (issue 14): the size after 1M within 2x of after 10k.
//
// The server log column: a real server log (`SqliteMutationLog`, a file, in the same process) is
// fed the same writes — ours as one client acking through what it pushed before, the other
// replica's as another — and gives the seqs the replica acks and pulls. It is compacted
// (`MutationLog.compact`) every `compactEvery` batches, about when the server's Compactor would at
// its default threshold (10,000 superseded rows), and at each checkpoint, then measured: rows,
// identities kept, the file's bytes after a WAL checkpoint and its free pages (SQLite reuses them;
// the file does not shrink without a vacuum, so the bytes are the high-water mark between runs).
// `seconds` is the replica's time only; `log_seconds` the log's appends and compactions.
import { LocalStore } from "@autosync/core"
import { MutationLog, SqliteMutationLog } from "@autosync/server"
import { SqliteLocalStore } from "@autosync/sqlite"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { statSync } from "node:fs"
import { removeDir, tempDir } from "../lib/proc.mjs"
import { round } from "../lib/stats.mjs"

const batch = 1000
const theirsPerBatch = 100
const compactEvery = 10
const target = "cloud"

const write = (n, keys) => ({
  project: "bench",
  entity: "note",
  entityKey: `note-${String(n % keys).padStart(6, "0")}`,
  op: "upsert",
  payload: { n, title: `Note ${n}`, tags: ["bench", n % 2 === 0 ? "even" : "odd"] }
})

/** The server log's size at a checkpoint, after compaction (see the header). */
const serverLogSize = async (log, withLogSql, file) => {
  const report = await Effect.runPromise(log.compact())
  const stats = await Effect.runPromise(log.stats)
  await withLogSql(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe("PRAGMA wal_checkpoint(TRUNCATE)")))
  const [{ freelist_count }] = await withLogSql(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe("PRAGMA freelist_count"))
  )
  return {
    rows: stats.rows,
    identities_kept: stats.identities,
    removed_by_compaction: report.removed,
    bytes: statSync(file).size,
    free_pages: freelist_count
  }
}

export const run = async (ctx) => {
  const keys = ctx.flags.growthKeys
  const checkpoints = [...ctx.flags.growthWrites].sort((a, b) => a - b)
  const dir = tempDir()
  const file = `${dir}/growth.db`
  const scope = Effect.runSync(Scope.make())
  try {
    ctx.log(`growth: ${checkpoints.at(-1)} writes to ${keys} keys, size at ${checkpoints.join(", ")}…`)
    const context = await Effect.runPromise(Layer.buildWithScope(SqliteLocalStore.layerFile(file), scope))
    const logFile = `${dir}/server.db`
    const logContext = await Effect.runPromise(Layer.buildWithScope(
      SqliteMutationLog.layer().pipe(Layer.provideMerge(SqliteMutationLog.layerClient({ file: logFile }))),
      scope
    ))
    const log = Context.get(logContext, MutationLog.MutationLog)
    const withLogSql = (effect) =>
      Effect.runPromise(
        Effect.provideService(effect, SqlClient.SqlClient, Context.get(logContext, SqlClient.SqlClient))
      )
    let logMillis = 0
    const timed = async (promise) => {
      const t = performance.now()
      try {
        return await promise
      } finally {
        logMillis += performance.now() - t
      }
    }
    const store = Context.get(context, LocalStore.LocalStore)
    const withSql = (effect) =>
      Effect.runPromise(Effect.provideService(effect, SqlClient.SqlClient, Context.get(context, SqlClient.SqlClient)))
    await Effect.runPromise(store.enroll("bench"))
    let ackedThrough = 0
    let batches = 0
    let written = 0
    let theirs = 0
    const started = performance.now()
    const points = []
    for (const checkpoint of checkpoints) {
      while (written < checkpoint) {
        const n = Math.min(batch, checkpoint - written)
        await Effect.runPromise(
          store.appendLocal(target, Array.from({ length: n }, (_, i) => write(written + i, keys)))
        )
        written += n
        // Push: every pending row appended to the log and acked with the seqs it gave.
        const pending = await Effect.runPromise(store.listPendingMutations(target, batch))
        const ours = await timed(Effect.runPromise(log.append(
          "growth",
          pending.map((m) => ({ clientSeq: m.seq, ...write(m.seq - 1, keys) })),
          ackedThrough
        )))
        ackedThrough = pending.at(-1).seq
        await Effect.runPromise(
          store.ackMutationSeqs(target, pending.map((m, i) => ({ seq: m.seq, serverSeq: ours[i] })))
        )
        // Pull: another replica's writes to the same keys, then the cursor past our own.
        const entries = Array.from({ length: theirsPerBatch }, () => ++theirs).map((t) => ({
          clientSeq: t,
          ...write(t * 7919, keys)
        }))
        const seqs = await timed(Effect.runPromise(log.append("other", entries, theirs - theirsPerBatch)))
        const page = entries.map(({ clientSeq: _, ...entry }, i) => ({
          seq: seqs[i],
          ...entry,
          occurredAt: new Date(0)
        }))
        await Effect.runPromise(store.applyPulledMutations(target, page, { throughSeq: seqs.at(-1) }))
        if (++batches % compactEvery === 0) await timed(Effect.runPromise(log.compact()))
      }
      const elapsed = performance.now() - started - logMillis
      const serverLog = await timed(serverLogSize(log, withLogSql, logFile))
      const reclaimed = await withSql(SqliteLocalStore.reclaimSpace)
      await withSql(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe("PRAGMA wal_checkpoint(TRUNCATE)")))
      const journal = await Effect.runPromise(store.journalSize)
      const point = {
        writes: checkpoint,
        file_bytes: statSync(file).size,
        journal_rows: journal.rows,
        key_facts: journal.keyFacts,
        pages_reclaimed_at_checkpoint: reclaimed,
        seconds: round(elapsed / 1000, 1),
        log_seconds: round(logMillis / 1000, 1),
        server_log: serverLog
      }
      ctx.log(`growth: ${checkpoint} writes: ${point.file_bytes} bytes, ${point.journal_rows} journal rows`)
      points.push(point)
    }
    const first = points[0].file_bytes
    const last = points.at(-1).file_bytes
    const result = {
      scenario: "growth",
      processes: "the runner's own process: the replica's store and a server log, no HTTP",
      keys,
      batch_size: batch,
      their_writes_per_batch: theirsPerBatch,
      points,
      ratio_last_to_first: round(last / first, 2),
      target: `file after ${checkpoints.at(-1)} writes within 2x of after ${checkpoints[0]}`,
      target_met: last <= 2 * first
    }
    ctx.emit(result)
    return [result]
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    removeDir(dir)
  }
}

const mib = (bytes) => `${(bytes / (1024 * 1024)).toFixed(2)} MiB`

export const tableRows = (results) =>
  results.flatMap((r) =>
    r.points.map((p, i) => [
      `growth, ${p.writes} writes to ${r.keys} keys`,
      `${mib(p.file_bytes)}, ${p.journal_rows} journal rows`,
      p.server_log === null ? "" : `log ${p.server_log.rows} rows, ${mib(p.server_log.bytes)}`,
      "",
      i === r.points.length - 1 ? `${r.ratio_last_to_first}x of first (2x: ${r.target_met ? "met" : "NOT met"})` : ""
    ])
  )
