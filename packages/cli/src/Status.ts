/**
 * `autosync status`: a replica's sync state read from its file alone (no server, no lease).
 *
 * @since 0.1.0
 */
import { LocalStore, Status, SyncConfig } from "@autosync/core"
import * as Command from "@effect/cli/Command"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as CliError from "./CliError.js"
import * as Flags from "./Flags.js"
import * as Replica from "./Replica.js"

const formatBytes = (bytes: number): string =>
  bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / (1024 * 1024)).toFixed(1)} MiB`

/**
 * @since 0.1.0
 * @category commands
 */
export const command = Command.make(
  "status",
  { db: Flags.localDb, json: Flags.json },
  (opts) =>
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
        ["file size", report.fileBytes === null ? "-" : formatBytes(report.fileBytes)]
      ]
      yield* Console.log(rows.map(([k, v]) => `${k.padEnd(16)} ${v}`).join("\n"))
    }).pipe(Effect.provide(Replica.layerExisting(opts.db)), CliError.explain)
).pipe(
  Command.withDescription("Show a replica's sync state from its file alone (no server needed).")
)
