import { LocalStore, Status } from "@autosync/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"

const at = new Date("2026-01-01T00:00:00Z")
const until = new Date("2026-01-01T00:00:02Z")
const failed = (step: "push" | "pull" | "cycle", reasonCode: Status.ReasonCode = "transport_failed") =>
  ({ _tag: "Failed", step, reasonCode, message: "it broke", backoffUntil: until }) as const

describe("Status.fromOutcome", () => {
  it("a success is healthy and resets failures; non-enrolled rows show as a reason", () => {
    const previous: Status.Status = {
      phase: "push_failed",
      consecutiveFailures: 4,
      lastError: "x",
      reasonCode: "auth_required"
    }
    assert.deepStrictEqual(Status.fromOutcome(previous, { _tag: "Synced", at, nonEnrolledPending: 0 }, 10), {
      phase: "healthy",
      consecutiveFailures: 0,
      lastSyncAt: at
    })
    const withPending = Status.fromOutcome(previous, { _tag: "Synced", at, nonEnrolledPending: 3 }, 10)
    assert.strictEqual(withPending.reasonCode, "non_enrolled_pending")
    assert.match(withPending.reasonMessage!, /3 local rows/)
  })

  it("failures count up with the failing step's phase, then backoff at the ceiling", () => {
    const table: Array<[Status.Status, ReturnType<typeof failed>, Status.Phase, number]> = [
      [Status.initial, failed("push"), "push_failed", 1],
      [Status.initial, failed("pull"), "pull_failed", 1],
      [Status.initial, failed("cycle", "internal_error"), "backoff", 1],
      [{ phase: "push_failed", consecutiveFailures: 8 }, failed("push"), "push_failed", 9],
      [{ phase: "push_failed", consecutiveFailures: 9 }, failed("push"), "backoff", 10],
      [{ phase: "backoff", consecutiveFailures: 50 }, failed("pull"), "backoff", 51]
    ]
    for (const [previous, outcome, phase, count] of table) {
      const next = Status.fromOutcome(previous, outcome, 10)
      assert.strictEqual(next.phase, phase)
      assert.strictEqual(next.consecutiveFailures, count)
      assert.strictEqual(next.reasonCode, outcome.reasonCode)
      assert.deepStrictEqual(next.backoffUntil, until)
      assert.strictEqual(next.lastError, "it broke")
    }
  })

  it("keeps lastSyncAt across failures", () => {
    const next = Status.fromOutcome({ phase: "healthy", consecutiveFailures: 0, lastSyncAt: at }, failed("pull"), 10)
    assert.deepStrictEqual(next.lastSyncAt, at)
  })

  it("the most specific reason wins", () => {
    assert.strictEqual(Status.mostSpecific("transport_failed", "policy_forbidden"), "policy_forbidden")
    assert.strictEqual(Status.mostSpecific("auth_required", "policy_forbidden"), "auth_required")
    assert.strictEqual(Status.mostSpecific("transport_failed", "transport_failed"), "transport_failed")
  })

  it.effect("encodes to snake_case JSON with ISO dates and back", () =>
    Effect.gen(function*() {
      const status: Status.Status = {
        phase: "push_failed",
        consecutiveFailures: 2,
        backoffUntil: until,
        lastSyncAt: at,
        reasonCode: "transport_failed",
        lastError: "x",
        reasonMessage: "x"
      }
      const json = yield* Schema.encode(Status.Status)(status)
      assert.deepStrictEqual(json, {
        phase: "push_failed",
        consecutive_failures: 2,
        backoff_until: "2026-01-01T00:00:02.000Z",
        last_sync_at: "2026-01-01T00:00:00.000Z",
        reason_code: "transport_failed",
        last_error: "x",
        reason_message: "x"
      })
      assert.deepStrictEqual(yield* Schema.decodeUnknown(Status.Status)(json), status)
    }))
})

describe("Status.report", () => {
  const facts: Status.ReportFacts = {
    file: "a.db",
    clientId: "c1",
    pending: 3,
    nonEnrolledPending: 1,
    enrolled: ["notes"],
    now: at,
    journal: { rows: 4, fileBytes: 8192 }
  }
  const fresh = LocalStore.emptyState("cloud", at)

  it("derives the phase from the file: idle before any sync, healthy after one, backoff after failures", () => {
    assert.strictEqual(Status.report(fresh, facts).phase, "idle")
    assert.strictEqual(Status.report({ ...fresh, lastAckedSeq: 1 }, facts).phase, "healthy")
    assert.strictEqual(Status.report({ ...fresh, lastPulledSeq: 1 }, facts).phase, "healthy")
    assert.strictEqual(Status.report({ ...fresh, lastPulledSeq: 1, consecutiveFailures: 2 }, facts).phase, "backoff")
  })

  it("shows a lease only while it is held", () => {
    const leased = { ...fresh, leaseOwner: "agent-1", leaseUntil: until }
    const held = Status.report(leased, facts)
    assert.deepStrictEqual([held.leaseOwner, held.leaseUntil], ["agent-1", until])
    const expired = Status.report(leased, { ...facts, now: until })
    assert.deepStrictEqual([expired.leaseOwner, expired.leaseUntil], [null, null])
  })

  it.effect("encodes as the status --json report: snake_case keys, ISO dates, null for nothing", () =>
    Effect.gen(function*() {
      const report = Status.report({
        ...fresh,
        lastEnqueuedSeq: 5,
        lastAckedSeq: 2,
        lastPulledSeq: 7,
        consecutiveFailures: 1,
        lastError: "down",
        reasonCode: "transport_failed",
        backoffUntil: until
      }, facts)
      const json = yield* Schema.encode(Status.StatusReport)(report)
      assert.deepStrictEqual(json, {
        file: "a.db",
        client_id: "c1",
        phase: "backoff",
        pending: 3,
        non_enrolled_pending: 1,
        enrolled: ["notes"],
        last_enqueued_seq: 5,
        last_acked_seq: 2,
        last_pulled_seq: 7,
        consecutive_failures: 1,
        last_error: "down",
        reason_code: "transport_failed",
        backoff_until: "2026-01-01T00:00:02.000Z",
        lease_owner: null,
        lease_until: null,
        journal_rows: 4,
        file_bytes: 8192,
        stalled: null
      })
      // A store without a file has no file size.
      assert.strictEqual(Status.report(fresh, { ...facts, journal: { rows: 0, fileBytes: undefined } }).fileBytes, null)
      assert.deepStrictEqual(yield* Schema.decodeUnknown(Status.StatusReport)(json), report)
    }))

  it.effect("carries the recorded stall: { kind, since, why } in --json", () =>
    Effect.gen(function*() {
      const stalled = { kind: "push" as const, since: until, why: "no pending row was acked" }
      const report = Status.report({ ...fresh, stalled }, facts)
      assert.deepStrictEqual(report.stalled, stalled)
      const json = yield* Schema.encode(Status.StatusReport)(report)
      assert.deepStrictEqual(json.stalled, {
        kind: "push",
        since: "2026-01-01T00:00:02.000Z",
        why: "no pending row was acked"
      })
    }))
})
