/**
 * `autosync compact`: one compaction of the server's log on demand (the server also compacts by
 * itself, see `serve --compact-threshold`), in a SQLite file or PostgreSQL, safe while servers
 * run on it (each batch of rows is its own short transaction under the servers' append lock).
 * A replica's file is refused unchanged. Also the server's log stats that `autosync status`
 * prints when pointed at a server's database.
 *
 * @since 0.1.0
 */
import type { MutationLog } from "@autosync/server"
import * as Command from "@effect/cli/Command"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as CliError from "./CliError.js"
import * as Flags from "./Flags.js"
import * as ServerStore from "./ServerStore.js"

/**
 * Runs `f` with the store's `MutationLog` (migrated first, as a server would).
 *
 * @since 0.1.0
 * @category constructors
 */
export const withLog = <A, E>(
  where: ServerStore.Where,
  f: (log: MutationLog.MutationLog["Type"]) => Effect.Effect<A, E>
): Effect.Effect<A, unknown> =>
  Effect.gen(function*() {
    const { MutationLog, PgMutationLog, SqliteMutationLog } = yield* ServerStore.load
    const layer = where._tag === "sqlite"
      ? SqliteMutationLog.layerFile({ file: where.file })
      : PgMutationLog.layerUrl({ url: where.url, maxConnections: 2, listen: false })
    return yield* Effect.scoped(Effect.flatMap(MutationLog.MutationLog, f).pipe(Effect.provide(layer)))
  })

/**
 * The server's log stats as `autosync status` prints them (JSON with `json`), read without
 * changing anything.
 *
 * @since 0.1.0
 * @category constructors
 */
export const printStats = (where: ServerStore.Where, json: boolean): Effect.Effect<void, unknown> =>
  Effect.gen(function*() {
    // Read only: nothing of the database changes (no migration either).
    const { PgMutationLog, SqliteMutationLog } = yield* ServerStore.load
    const stats = yield* (where._tag === "sqlite"
      ? SqliteMutationLog.readStats(where.file)
      : PgMutationLog.readStats(where.url))
    const last = stats.lastCompaction
    if (json) {
      return yield* Console.log(JSON.stringify(
        {
          server: ServerStore.describe(where),
          rows: stats.rows,
          live_keys: stats.liveKeys,
          tombstones: stats.tombstones,
          superseded: stats.superseded,
          latest_seq: stats.latestSeq,
          identities: stats.identities,
          last_compaction: last === undefined
            ? null
            : { at: new Date(last.at).toISOString(), removed: last.removed, duration_ms: last.durationMs }
        },
        null,
        2
      ))
    }
    const rows: Array<[string, unknown]> = [
      ["server log", ServerStore.describe(where)],
      ["rows", stats.rows],
      ["live keys", stats.liveKeys],
      ["tombstones", stats.tombstones],
      ["superseded rows", stats.superseded],
      ["latest seq", stats.latestSeq],
      ["kept identities", stats.identities],
      [
        "last compaction",
        last === undefined
          ? "never"
          : `${new Date(last.at).toISOString()}: ${last.removed} rows removed in ${last.durationMs} ms`
      ]
    ]
    yield* Console.log(rows.map(([k, v]) => `${k.padEnd(16)} ${v}`).join("\n"))
  })

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "compact",
  {
    db: Flags.serverDb,
    databaseUrl: Flags.databaseUrl,
    batchSize: Flags.positiveInt(
      "batch-size",
      1000,
      "Rows removed per transaction (pushes and pulls wait at most one). Defaults to 1000."
    ),
    json: Flags.json
  },
  (opts) =>
    Effect.gen(function*() {
      const where = yield* ServerStore.choose(opts.db, opts.databaseUrl)
      yield* ServerStore.requireExisting(where)
      const { Compactor } = yield* ServerStore.load
      const report = yield* withLog(where, (log) => log.compact({ batchSize: opts.batchSize }))
      if (opts.json) {
        return yield* Console.log(JSON.stringify({
          removed: report.removed,
          tombstones_dropped: report.tombstonesDropped,
          identities_kept: report.identitiesKept,
          duration_ms: report.durationMs
        }))
      }
      yield* Console.log(`${ServerStore.describe(where)}: ${Compactor.describe(report)}`)
    }).pipe(CliError.explain)
).pipe(
  Command.withDescription(
    "Compact the server's log now: keep only the newest mutation of each key (deletes as tombstones); prints rows removed and time taken."
  )
)
