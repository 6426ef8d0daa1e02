/**
 * `autosync status`: a replica's sync state read from its file alone (no server, no lease); or,
 * pointed at a server's database (a server's SQLite file, or `--database-url`), the server log's
 * stats: rows, live keys, tombstones, superseded rows, last compaction.
 *
 * @since 0.1.0
 */
import { LocalStore, Status, SyncConfig } from "@autosync/core"
import { ReplicaFile } from "@autosync/sqlite"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as CliError from "./CliError.js"
import * as Compact from "./Compact.js"
import * as Flags from "./Flags.js"
import * as Replica from "./Replica.js"

const formatBytes = (bytes: number): string =>
  bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / (1024 * 1024)).toFixed(1)} MiB`

// The recorded stall; with the lease free no manager runs, so it is the last one's verdict.
const stalledLine = ({ leaseOwner, stalled }: Status.StatusReport) =>
  stalled === null
    ? "-"
    : `${stalled.kind} since ${stalled.since.toISOString()}: ${stalled.why}${
      leaseOwner === null ? " (recorded by the last manager; no manager runs now)" : ""
    }`

// A replica's state, read from its file alone.
const replicaStatus = (opts: { readonly db: string; readonly json: boolean }) =>
  Effect.gen(function*() {
    const store = yield* LocalStore.LocalStore
    const targetKey = SyncConfig.defaults.targetKey
    const report = Status.report(yield* store.getSyncState(targetKey), {
      file: opts.db,
      clientId: store.clientId,
      pending: yield* store.countPending(targetKey),
      nonEnrolledPending: yield* store.skipAckNonEnrolledMutations(targetKey),
      enrolled: yield* store.listEnrolled,
      now: new Date(yield* Clock.currentTimeMillis),
      journal: yield* store.journalSize
    })
    if (opts.json) return yield* Console.log(JSON.stringify(Schema.encodeSync(Status.StatusReport)(report), null, 2))
    const { nonEnrolledPending } = report
    const rows: Array<[string, unknown]> = [
      ["file", report.file],
      ["client id", report.clientId],
      ["phase", report.phase],
      [
        "pending rows",
        `${report.pending}${nonEnrolledPending > 0 ? ` (${nonEnrolledPending} in projects not enrolled)` : ""}`
      ],
      [
        "enrolled",
        report.enrolled.length > 0
          ? report.enrolled.join(", ")
          : "(none: nothing is pushed until you `autosync enroll`)"
      ],
      ["last pulled seq", report.lastPulledSeq],
      ["last acked seq", report.lastAckedSeq],
      ["failures", report.consecutiveFailures],
      ["last error", report.lastError ?? "-"],
      ["reason", report.reasonCode ?? "-"],
      ["retry at", report.backoffUntil?.toISOString() ?? "-"],
      [
        "lease holder",
        report.leaseOwner !== null ? `${report.leaseOwner} until ${report.leaseUntil?.toISOString()}` : "(free)"
      ],
      ["journal rows", `${report.journalRows} (pending and kept-aside rows; acked and applied ones are pruned)`],
      ["file size", report.fileBytes === null ? "-" : formatBytes(report.fileBytes)],
      ["stalled", stalledLine(report)]
    ]
    yield* Console.log(rows.map(([k, v]) => `${k.padEnd(16)} ${v}`).join("\n"))
  }).pipe(Effect.provide(Replica.layerExisting(opts.db)))

// No environment fallback: AUTOSYNC_DATABASE_URL set for `serve` must not turn a replica's
// status into the server's.
const serverUrl = Options.redacted("database-url").pipe(
  Options.optional,
  Options.withDescription("Show the log stats of the server on this PostgreSQL database instead.")
)

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "status",
  { db: Flags.localDb, databaseUrl: serverUrl, json: Flags.json },
  (opts) =>
    Effect.gen(function*() {
      if (Option.isSome(opts.databaseUrl)) {
        return yield* Compact.printStats({ _tag: "pg", url: opts.databaseUrl.value }, opts.json)
      }
      // A server's database: its log's stats (rows, live keys, tombstones, last compaction).
      const kind = yield* ReplicaFile.inspect(opts.db)
      if (kind._tag === "Server") return yield* Compact.printStats({ _tag: "sqlite", file: opts.db }, opts.json)
      return yield* replicaStatus(opts)
    }).pipe(CliError.explain)
).pipe(
  Command.withDescription(
    "Show a replica's sync state from its file alone (no server needed); for a server's database (--db FILE or --database-url URL), its log's stats."
  )
)
