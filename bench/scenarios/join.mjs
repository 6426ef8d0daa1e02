// 11. Join: what a new replica pays to join a server whose log is long and compacted. A server
// log (SQLite) of `joinRows` mutations (1,000,000) over `joinKeys` keys (10,000) is built in the
// runner's process through the server's own `MutationLog.append`, `joinBatch` rows per append
// (not one HTTP request per row), then compacted (`MutationLog.compact`). A real server serves
// the file and a new replica (a SQLite replica file, `HttpCloudTransport`, `SyncManager`, in the
// runner's process) syncs from seq 0 until its cursor reaches the log's latest seq: seconds to
// synced and rows pulled. Beside it, in the same run: (a) the floor, a fresh log of `joinKeys`
// mutations (one per key) joined the same way — the target is a join within 2x of it; (b) the
// same join as the first without compaction (every superseded row pulled).
import { LocalStore, SyncConfig, SyncManager } from "@autosync/core"
import { HttpCloudTransport } from "@autosync/http"
import { MutationLog, SqliteMutationLog } from "@autosync/server"
import { SqliteLocalStore } from "@autosync/sqlite"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import { copyFileSync, statSync } from "node:fs"
import { startServer } from "../lib/cluster.mjs"
import { removeDir, tempDir } from "../lib/proc.mjs"
import { round } from "../lib/stats.mjs"

const appendBatch = 10_000
const pullBatch = 1000

const entry = (n, keys) => ({
  clientSeq: n + 1,
  project: "bench",
  entity: "note",
  entityKey: `note-${String(n % keys).padStart(6, "0")}`,
  op: "upsert",
  payload: { n, title: `Note ${n}`, tags: ["bench", n % 2 === 0 ? "even" : "odd"] }
})

/** Runs `use(log)` on the server log in `file`, in this process, then closes it. */
const withLog = async (file, use) => {
  const scope = Effect.runSync(Scope.make())
  try {
    const context = await Effect.runPromise(Layer.buildWithScope(SqliteMutationLog.layerFile({ file }), scope))
    return await use(Context.get(context, MutationLog.MutationLog))
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** Appends `rows` mutations over `keys` keys, as one writer acking each batch before the next. */
const build = (file, rows, keys) =>
  withLog(file, async (log) => {
    for (let from = 0; from < rows; from += appendBatch) {
      const entries = Array.from({ length: Math.min(appendBatch, rows - from) }, (_, i) => entry(from + i, keys))
      await Effect.runPromise(log.append("seed-writer", entries, from))
    }
  })

/** A new replica on a fresh file joins the server: seconds until its cursor is at the latest seq. */
const join = async (ctx, dir, label, server, latest) => {
  const scope = Effect.runSync(Scope.make())
  try {
    const layer = Layer.merge(
      SqliteLocalStore.layerFile(`${dir}/${label}-replica.db`),
      HttpCloudTransport.layer({ baseUrl: server.info.url, token: server.info.token })
    )
    const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
    const raw = Context.get(context, LocalStore.LocalStore)
    let pulled = 0
    const store = {
      ...raw,
      applyPulledMutations: (targetKey, mutations, options) => {
        pulled += mutations.length
        return raw.applyPulledMutations(targetKey, mutations, options)
      }
    }
    await Effect.runPromise(raw.enroll("bench"))
    const config = await Effect.runPromise(SyncConfig.make({ leaseOwner: `join-${label}`, pullBatchSize: pullBatch }))
    const manager = await Effect.runPromise(
      SyncManager.make(config).pipe(Effect.provideService(LocalStore.LocalStore, store), Effect.provide(context))
    )
    const started = performance.now()
    for (;;) {
      await Effect.runPromise(manager.syncNow)
      if ((await Effect.runPromise(raw.getSyncState("cloud"))).lastPulledSeq >= latest) break
    }
    const seconds = (performance.now() - started) / 1000
    const documents = (await Effect.runPromise(raw.listDocuments("bench"))).length
    ctx.log(`join ${label}: ${pulled} rows pulled in ${seconds.toFixed(2)} s, ${documents} documents`)
    return { seconds: round(seconds, 2), rows_pulled: pulled, documents }
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const serveAndJoin = async (ctx, dir, label, file) => {
  const latest = await withLog(file, (log) => Effect.runPromise(log.latestSeq))
  const server = await startServer(ctx, `join-${label}`, { file, createToken: true, compactThreshold: 0 })
  try {
    return await join(ctx, dir, label, server, latest)
  } finally {
    await server.stop()
  }
}

export const run = async (ctx) => {
  const rows = ctx.flags.joinRows
  const keys = ctx.flags.joinKeys
  const dir = tempDir()
  try {
    ctx.log(`join: building a log of ${rows} mutations over ${keys} keys…`)
    const t0 = performance.now()
    await build(`${dir}/full.db`, rows, keys)
    const buildSeconds = (performance.now() - t0) / 1000
    copyFileSync(`${dir}/full.db`, `${dir}/compacted.db`)
    const t1 = performance.now()
    const compacted = await withLog(`${dir}/compacted.db`, async (log) => {
      const report = await Effect.runPromise(log.compact())
      return { report, stats: await Effect.runPromise(log.stats) }
    })
    const compactSeconds = (performance.now() - t1) / 1000
    ctx.log(`join: built in ${buildSeconds.toFixed(1)} s, compacted in ${compactSeconds.toFixed(1)} s`)
    await build(`${dir}/fresh.db`, keys, keys)

    // A first join, not measured: JIT and caches warm for every measured one alike.
    await serveAndJoin(ctx, dir, "warm-up", `${dir}/fresh.db`)
    const floor = await serveAndJoin(ctx, dir, "fresh", `${dir}/fresh.db`)
    const joined = await serveAndJoin(ctx, dir, "compacted", `${dir}/compacted.db`)
    const uncompacted = await serveAndJoin(ctx, dir, "uncompacted", `${dir}/full.db`)
    const result = {
      scenario: "join",
      processes: "server: child process; the joining replica and the log's builder: the runner's process",
      log_rows: rows,
      keys,
      pull_batch: pullBatch,
      build_s: round(buildSeconds, 1),
      compact_s: round(compactSeconds, 1),
      compaction: { removed: compacted.report.removed, rows_left: compacted.stats.rows },
      server_file_bytes: {
        uncompacted: statSync(`${dir}/full.db`).size,
        compacted: statSync(`${dir}/compacted.db`).size
      },
      compacted: joined,
      uncompacted,
      floor: { what: `a fresh log of ${keys} mutations`, ...floor },
      ratio_to_floor: round(joined.seconds / floor.seconds, 2),
      uncompacted_ratio_to_floor: round(uncompacted.seconds / floor.seconds, 2),
      target: "join of the compacted log within 2x of the fresh log's",
      target_met: joined.seconds <= 2 * floor.seconds
    }
    ctx.emit(result)
    return [result]
  } finally {
    removeDir(dir)
  }
}

export const tableRows = (results) =>
  results.flatMap((r) => [
    [
      `join, ${r.log_rows} rows over ${r.keys} keys, compacted`,
      `${r.compacted.seconds} s, ${r.compacted.rows_pulled} rows`,
      `${r.floor.seconds} s, ${r.floor.rows_pulled} rows`,
      `${r.ratio_to_floor}x`,
      `2x: ${r.target_met ? "met" : "NOT met"}`
    ],
    [
      `join, same log, not compacted`,
      `${r.uncompacted.seconds} s, ${r.uncompacted.rows_pulled} rows`,
      "",
      `${r.uncompacted_ratio_to_floor}x`,
      ""
    ]
  ])
