/**
 * The observable state of a sync manager, and the pure rule that turns the outcome of a cycle
 * into the next status.
 *
 * ```
 *            notifyDirty / poll
 *   idle ─────────────────────▶ pushing ──▶ pulling ──▶ healthy ◀──┐
 *    ▲                             │           │                    │ next cycle succeeds
 *    │ resumeAfterUpgrade          ▼           ▼                    │
 * disabled ◀─ stopForUpgrade   push_failed  pull_failed ──▶ (wait backoffUntil) ─┘
 *                                   └─ after maxConsecutiveFailures, or a defect: backoff
 * ```
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import type { SyncState } from "./Mutation.js"

/**
 * @since 0.1.0
 * @category models
 */
export const Phase = Schema.Literal(
  "idle",
  "pushing",
  "pulling",
  "push_failed",
  "pull_failed",
  "backoff",
  "healthy",
  "disabled"
)
/**
 * @since 0.1.0
 * @category models
 */
export type Phase = typeof Phase.Type

/**
 * Why the manager is not simply healthy.
 * - `auth_required`: the server refused the token (401).
 * - `policy_forbidden`: the token may not write or read a project (403).
 * - `identity_conflict`: the server refused a push because this replica's identity was used
 *   before with other content (409): the database file was copied, or shares its identity with
 *   another replica. Retried on the backoff, but only `autosync reidentify` fixes it.
 * - `rate_limited`: the server is overloaded or rate-limits the token (429, or 503 with
 *   `Retry-After`); the next try waits at least what it asked. Counts as a failure for backoff.
 * - `transport_failed`: the server could not be reached or answered badly.
 * - `internal_error`: the local store failed, or a defect inside a cycle.
 * - `paused`: `stopForUpgrade` disabled the manager.
 * - `non_enrolled_pending`: local rows wait in projects that are not enrolled (not an error).
 *
 * @since 0.1.0
 * @category models
 */
export const ReasonCode = Schema.Literal(
  "auth_required",
  "policy_forbidden",
  "identity_conflict",
  "rate_limited",
  "transport_failed",
  "internal_error",
  "paused",
  "non_enrolled_pending"
)
/**
 * @since 0.1.0
 * @category models
 */
export type ReasonCode = typeof ReasonCode.Type

const optional = <S extends Schema.Schema.All, K extends string>(schema: S, key: K) =>
  Schema.optionalWith(schema, { exact: true }).pipe(Schema.fromKey(key))

/**
 * What the stall watchdog found stuck:
 * - `push`: pushes the server answers, yet no pending row gets acked (a short or empty result
 *   the push plan refuses, a store that does not record its acks);
 * - `pull`: the pull cursor stays behind the server's `latest_seq` (a store that does not
 *   advance it);
 * - `watcher`: live sync's long-poll keeps failing (a proxy that cuts held requests).
 *
 * @since 0.1.0
 * @category models
 */
export const StallKind = Schema.Literal("push", "pull", "watcher")
/**
 * @since 0.1.0
 * @category models
 */
export type StallKind = typeof StallKind.Type

/**
 * A stall: the manager has made no progress of this `kind` since `since`, although each step
 * may look fine; `why` says what the watchdog saw. It clears by itself when progress resumes.
 *
 * @since 0.1.0
 * @category models
 */
export const Stalled = Schema.Struct({ kind: StallKind, since: Schema.Date, why: Schema.String })
/**
 * @since 0.1.0
 * @category models
 */
export interface Stalled extends Schema.Schema.Type<typeof Stalled> {}

/**
 * A snapshot of the manager. Dates are `Date`s; the encoded form uses ISO strings and
 * snake_case keys. `stalled` is present only while the watchdog sees a stall (the oldest one,
 * when there are several); the phase and reason stay those of the last cycle.
 *
 * @since 0.1.0
 * @category models
 */
export const Status = Schema.Struct({
  phase: Phase,
  lastError: optional(Schema.String, "last_error"),
  consecutiveFailures: Schema.propertySignature(Schema.NonNegativeInt).pipe(Schema.fromKey("consecutive_failures")),
  backoffUntil: optional(Schema.Date, "backoff_until"),
  lastSyncAt: optional(Schema.Date, "last_sync_at"),
  reasonCode: optional(ReasonCode, "reason_code"),
  reasonMessage: optional(Schema.String, "reason_message"),
  stalled: optional(Stalled, "stalled")
})
/**
 * @since 0.1.0
 * @category models
 */
export interface Status extends Schema.Schema.Type<typeof Status> {}

/**
 * The status of a manager that has not run a cycle yet.
 *
 * @since 0.1.0
 * @category constructors
 */
export const initial: Status = { phase: "idle", consecutiveFailures: 0 }

/**
 * How a cycle ended.
 *
 * @since 0.1.0
 * @category models
 */
export type Outcome =
  | {
    readonly _tag: "Synced"
    readonly at: Date
    /** Local rows left pending because their project is not enrolled. */
    readonly nonEnrolledPending: number
  }
  | {
    readonly _tag: "Failed"
    readonly step: "push" | "pull" | "cycle"
    readonly reasonCode: ReasonCode
    readonly message: string
    readonly backoffUntil: Date
  }

/**
 * The next status after a cycle. Pure, so the whole table of transitions is tested directly.
 *
 * A success resets the failure count. A failure counts one more; its phase is the failing
 * step's (`push_failed` / `pull_failed`), or `backoff` for a defect (`step: "cycle"`) and once
 * `maxConsecutiveFailures` is reached: the manager then waits for `backoffUntil` and tries
 * again, it never gives up for good.
 *
 * @since 0.1.0
 * @category transitions
 */
export const fromOutcome = (previous: Status, outcome: Outcome, maxConsecutiveFailures: number): Status => {
  if (outcome._tag === "Synced") {
    const base: Status = { phase: "healthy", consecutiveFailures: 0, lastSyncAt: outcome.at }
    return outcome.nonEnrolledPending > 0
      ? {
        ...base,
        reasonCode: "non_enrolled_pending",
        reasonMessage: `${outcome.nonEnrolledPending} local rows wait in projects that are not enrolled`
      }
      : base
  }
  const consecutiveFailures = previous.consecutiveFailures + 1
  const phase: Phase = outcome.step === "cycle" || consecutiveFailures >= maxConsecutiveFailures
    ? "backoff"
    : outcome.step === "push"
    ? "push_failed"
    : "pull_failed"
  return {
    phase,
    consecutiveFailures,
    lastError: outcome.message,
    backoffUntil: outcome.backoffUntil,
    reasonCode: outcome.reasonCode,
    reasonMessage: outcome.message,
    ...(previous.lastSyncAt ? { lastSyncAt: previous.lastSyncAt } : {})
  }
}

/**
 * What the status says after an identity conflict's own message: what happened and the fix.
 *
 * @since 0.1.0
 * @category models
 */
export const identityConflictHint =
  "this database file was copied or shares its identity (client id) with another replica; " +
  "stop its agent and run `autosync reidentify --db FILE` to give it a new identity"

/**
 * The more specific of two failure reasons: a refusal (`auth_required`, `policy_forbidden`,
 * `identity_conflict`) tells the user more than a generic `transport_failed`, and so does the
 * server's `rate_limited`.
 *
 * @since 0.1.0
 * @category transitions
 */
export const mostSpecific = (a: ReasonCode, b: ReasonCode): ReasonCode => rank(b) > rank(a) ? b : a

const rank = (code: ReasonCode): number =>
  code === "auth_required"
    ? 4
    : code === "identity_conflict"
    ? 3
    : code === "policy_forbidden"
    ? 2
    : code === "internal_error"
    ? 1
    : code === "rate_limited"
    ? 0.5
    : 0

const nullable = <S extends Schema.Schema.Any, K extends string>(schema: S, key: K) =>
  Schema.propertySignature(Schema.NullOr(schema)).pipe(Schema.fromKey(key))

const count = <K extends string>(key: K) => Schema.propertySignature(Schema.NonNegativeInt).pipe(Schema.fromKey(key))

/**
 * What `autosync status` reports about a replica file, read from the file alone (no running
 * manager, no server). `null` where there is nothing to tell; the encoded form (what
 * `status --json` prints) has snake_case keys and ISO dates.
 *
 * @since 0.1.0
 * @category models
 */
export const StatusReport = Schema.Struct({
  file: Schema.String,
  clientId: Schema.propertySignature(Schema.String).pipe(Schema.fromKey("client_id")),
  phase: Phase,
  pending: Schema.NonNegativeInt,
  nonEnrolledPending: count("non_enrolled_pending"),
  enrolled: Schema.Array(Schema.String),
  lastEnqueuedSeq: count("last_enqueued_seq"),
  lastAckedSeq: count("last_acked_seq"),
  lastPulledSeq: count("last_pulled_seq"),
  consecutiveFailures: count("consecutive_failures"),
  lastError: nullable(Schema.String, "last_error"),
  reasonCode: nullable(Schema.String, "reason_code"),
  backoffUntil: nullable(Schema.Date, "backoff_until"),
  leaseOwner: nullable(Schema.String, "lease_owner"),
  leaseUntil: nullable(Schema.Date, "lease_until"),
  /** Rows in the journal: pending local writes and kept-aside pulled ones (`LocalStore.JournalSize`). */
  journalRows: count("journal_rows"),
  /** The replica file's size in bytes (without its WAL); `null` for a store without a file. */
  fileBytes: nullable(Schema.NonNegativeInt, "file_bytes"),
  /**
   * The stall the manager last recorded (`SyncState.stalled`), `null` when none. With no lease
   * held, no manager runs: it is the last one's verdict, and the next manager's first cycle
   * clears it unless it still sees no progress.
   */
  stalled: nullable(Stalled, "stalled")
})
/**
 * @since 0.1.0
 * @category models
 */
export interface StatusReport extends Schema.Schema.Type<typeof StatusReport> {}

/**
 * What a report needs beside the target's `SyncState`, all read from the same file.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReportFacts {
  readonly file: string
  readonly clientId: string
  /** Local rows not yet acked, enrolled or not. */
  readonly pending: number
  /** Of those, the rows in projects that are not enrolled. */
  readonly nonEnrolledPending: number
  readonly enrolled: ReadonlyArray<string>
  readonly now: Date
  /** What the journal holds (`LocalStore.journalSize`). */
  readonly journal: { readonly rows: number; readonly fileBytes: number | undefined }
}

/**
 * The report of a replica file. The file holds no live phase (that lives in the running
 * manager), so one is derived from the state: `backoff` after failures, `healthy` once anything
 * was acked or pulled, else `idle`. A lease shows only while it is held (not yet expired).
 *
 * @since 0.1.0
 * @category constructors
 */
export const report = (state: SyncState, facts: ReportFacts): StatusReport => {
  const leaseHeld = state.leaseOwner !== undefined && state.leaseUntil !== undefined && state.leaseUntil > facts.now
  return {
    file: facts.file,
    clientId: facts.clientId,
    phase: state.consecutiveFailures > 0
      ? "backoff"
      : state.lastPulledSeq > 0 || state.lastAckedSeq > 0
      ? "healthy"
      : "idle",
    pending: facts.pending,
    nonEnrolledPending: facts.nonEnrolledPending,
    enrolled: facts.enrolled,
    lastEnqueuedSeq: state.lastEnqueuedSeq,
    lastAckedSeq: state.lastAckedSeq,
    lastPulledSeq: state.lastPulledSeq,
    consecutiveFailures: state.consecutiveFailures,
    lastError: state.lastError ?? null,
    reasonCode: state.reasonCode ?? null,
    backoffUntil: state.backoffUntil ?? null,
    leaseOwner: leaseHeld ? state.leaseOwner! : null,
    leaseUntil: leaseHeld ? state.leaseUntil! : null,
    journalRows: facts.journal.rows,
    fileBytes: facts.journal.fileBytes ?? null,
    stalled: state.stalled ?? null
  }
}
