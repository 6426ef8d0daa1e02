/**
 * `autosync status`: a replica's sync state read from its file alone (no server, no lease).
 *
 * @since 0.1.0
 */
import { LocalStore, type Status } from "@autosync/core"
import * as Command from "@effect/cli/Command"
import * as Clock from "effect/Clock"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as CliError from "./CliError.js"
import * as Flags from "./Flags.js"
import * as Replica from "./Replica.js"

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
      const state = yield* store.getSyncState("cloud")
      const pending = yield* store.countPending("cloud")
      const nonEnrolled = yield* store.skipAckNonEnrolledMutations("cloud")
      const enrolled = yield* store.listEnrolled
      const now = new Date(yield* Clock.currentTimeMillis)
      const leaseActive = state.leaseOwner !== undefined && state.leaseUntil !== undefined && state.leaseUntil > now
      // The file holds no live phase (that lives in the running manager): derive one from the state.
      const phase: Status.Phase = state.consecutiveFailures > 0
        ? "backoff"
        : state.lastPulledSeq > 0 || state.lastAckedSeq > 0
        ? "healthy"
        : "idle"
      const report = {
        file: opts.db,
        client_id: store.clientId,
        phase,
        pending,
        non_enrolled_pending: nonEnrolled,
        enrolled,
        last_enqueued_seq: state.lastEnqueuedSeq,
        last_acked_seq: state.lastAckedSeq,
        last_pulled_seq: state.lastPulledSeq,
        consecutive_failures: state.consecutiveFailures,
        last_error: state.lastError ?? null,
        reason_code: state.reasonCode ?? null,
        backoff_until: state.backoffUntil?.toISOString() ?? null,
        lease_owner: leaseActive ? state.leaseOwner! : null,
        lease_until: leaseActive ? state.leaseUntil!.toISOString() : null
      }
      if (opts.json) return yield* Console.log(JSON.stringify(report, null, 2))
      const rows: Array<[string, unknown]> = [
        ["file", report.file],
        ["client id", report.client_id],
        ["phase", report.phase],
        ["pending rows", `${report.pending}${nonEnrolled > 0 ? ` (${nonEnrolled} in projects not enrolled)` : ""}`],
        [
          "enrolled",
          enrolled.length > 0 ? enrolled.join(", ") : "(none: nothing is pushed until you `autosync enroll`)"
        ],
        ["last pulled seq", report.last_pulled_seq],
        ["last acked seq", report.last_acked_seq],
        ["failures", report.consecutive_failures],
        ["last error", report.last_error ?? "-"],
        ["reason", report.reason_code ?? "-"],
        ["retry at", report.backoff_until ?? "-"],
        ["lease holder", report.lease_owner ? `${report.lease_owner} until ${report.lease_until}` : "(free)"]
      ]
      yield* Console.log(rows.map(([k, v]) => `${k.padEnd(16)} ${v}`).join("\n"))
    }).pipe(Effect.provide(Replica.layerExisting(opts.db)), CliError.explain)
).pipe(
  Command.withDescription("Show a replica's sync state from its file alone (no server needed).")
)
