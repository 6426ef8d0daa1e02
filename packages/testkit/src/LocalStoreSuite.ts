/**
 * The behaviour every `LocalStore` must have, run once per backend (memory and SQLite).
 */
import { LocalStore, Mutation } from "@autosync/core"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as fc from "effect/FastCheck"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as TestClock from "effect/TestClock"

const write = (entityKey: string, payload: unknown, project = "p", entity = "doc"): Mutation.LocalWrite => ({
  project,
  entity,
  entityKey,
  op: "upsert",
  payload
})

const pulled = (
  seq: number,
  entityKey: string,
  payload: unknown,
  op = "upsert",
  project = "p"
): Mutation.PulledMutation => ({
  seq,
  project,
  entity: "doc",
  entityKey,
  op,
  payload,
  occurredAt: new Date(1_000)
})

const doc = (entityKey: string, project = "p") =>
  Effect.flatMap(LocalStore.LocalStore, (s) => s.getDocument(project, "doc", entityKey))

const pendingSeqs = (limit = 100, options?: LocalStore.ListPendingOptions) =>
  Effect.flatMap(
    LocalStore.LocalStore,
    (s) => Effect.map(s.listPendingMutations("cloud", limit, options), (rows) => rows.map((r) => r.seq))
  )

/** Provides a fresh store to one test. */
type Run = <A, E>(
  effect: Effect.Effect<A, E, LocalStore.LocalStore>
) => Effect.Effect<A, E | LocalStore.LocalStoreError>

// The client id, a fresh state, the journal, pending rows, enrollment.
const identityAndJournal = (run: Run) => {
  it.effect("clientId is a valid identity, the same on every access", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      assert.isTrue(Schema.is(Mutation.ClientId)(store.clientId))
      assert.strictEqual((yield* LocalStore.LocalStore).clientId, store.clientId)
    })))

  it.effect("a target without history has a fresh state", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      yield* TestClock.adjust(2_000)
      assert.deepStrictEqual(yield* store.getSyncState("cloud"), LocalStore.emptyState("cloud", new Date(2_000)))
    })))

  it.effect("appendLocal applies each write, journals it and returns increasing seqs", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      yield* TestClock.adjust(1_000)
      const seqs = yield* store.appendLocal("cloud", [write("a", { n: 1 }), write("b", [1, "x", null])])
      assert.deepStrictEqual(seqs, [1, 2])
      assert.deepStrictEqual(yield* store.appendLocal("cloud", [write("a", { n: 2 })]), [3])
      assert.deepStrictEqual(yield* doc("a"), Option.some({ n: 2 }))
      assert.deepStrictEqual(yield* doc("b"), Option.some([1, "x", null]))
      assert.strictEqual((yield* store.getSyncState("cloud")).lastEnqueuedSeq, 3)
      yield* store.enroll("p")
      const rows = yield* store.listPendingMutations("cloud", 10)
      assert.deepStrictEqual(rows[0], {
        seq: 1,
        targetKey: "cloud",
        project: "p",
        entity: "doc",
        entityKey: "a",
        op: "upsert",
        payload: { n: 1 },
        source: "local",
        occurredAt: new Date(1_000)
      })
      assert.deepStrictEqual(rows.map((r) => r.seq), [1, 2, 3])
      assert.deepStrictEqual(yield* store.appendLocal("cloud", []), [])
      assert.strictEqual((yield* store.getSyncState("cloud")).lastEnqueuedSeq, 3)
    })))

  it.effect("pending: un-acked local rows of enrolled projects, in journal order, limited, excludable", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      yield* store.appendLocal("cloud", [
        write("1", 1, "a"),
        write("2", 2, "c"),
        write("3", 3, "b"),
        write("4", 4, "a"),
        write("5", 5, "c")
      ])
      yield* store.appendLocal("other", [write("6", 6, "a")])
      assert.deepStrictEqual(yield* pendingSeqs(), [])
      yield* store.enroll("a")
      yield* store.enroll("b")
      assert.deepStrictEqual(yield* pendingSeqs(), [1, 3, 4])
      assert.deepStrictEqual(yield* pendingSeqs(2), [1, 3])
      assert.deepStrictEqual(yield* pendingSeqs(0), [])
      assert.deepStrictEqual(yield* pendingSeqs(100, { excludeProjects: ["a"] }), [3])
      assert.deepStrictEqual(yield* pendingSeqs(100, { excludeProjects: ["a", "b"] }), [])
      assert.strictEqual(yield* store.countPending("cloud"), 5)
      assert.strictEqual(yield* store.countPending("other"), 1)
      // Non-enrolled rows are counted, never acked: they stay pending until enrolled.
      assert.strictEqual(yield* store.skipAckNonEnrolledMutations("cloud"), 2)
      assert.strictEqual(yield* store.skipAckNonEnrolledMutations("cloud"), 2)
      assert.strictEqual(yield* store.countPending("cloud"), 5)
      yield* store.enroll("c")
      assert.deepStrictEqual(yield* pendingSeqs(), [1, 2, 3, 4, 5])
      assert.strictEqual(yield* store.skipAckNonEnrolledMutations("cloud"), 0)
      yield* store.unenroll("b")
      assert.deepStrictEqual(yield* pendingSeqs(), [1, 2, 4, 5])
      const other = yield* store.listPendingMutations("other", 10)
      assert.deepStrictEqual(other.map((r) => [r.seq, r.targetKey]), [[6, "other"]])
    })))

  it.effect("enrollment: idempotent, sorted, and validated", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      yield* store.enroll("zeta")
      yield* store.enroll("alpha")
      yield* store.enroll("alpha")
      assert.deepStrictEqual(yield* store.listEnrolled, ["alpha", "zeta"])
      yield* store.unenroll("zeta")
      yield* store.unenroll("never-enrolled")
      assert.deepStrictEqual(yield* store.listEnrolled, ["alpha"])
      const bad = yield* Effect.flip(store.enroll(""))
      assert.strictEqual(bad.reason, "invalid_input")
      assert.strictEqual((yield* Effect.flip(store.unenroll("a\u0000b"))).reason, "invalid_input")
      assert.deepStrictEqual(yield* store.listEnrolled, ["alpha"])
    })))
}

// The pull cursor and the acks of pushed rows.
const cursorAndAcks = (run: Run) => {
  it.effect("a pulled write older than our acked write of the same key is superseded; a newer one applies", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      yield* store.enroll("p")
      const [seq] = yield* store.appendLocal("cloud", [write("k", "mine")])
      yield* store.ackMutationSeqs("cloud", [{ seq, serverSeq: 10 }])
      // Our own write (10) is not pulled back: 9 comes before it in the log, so ours stands.
      assert.deepStrictEqual(
        yield* store.applyPulledMutations("cloud", [pulled(9, "k", "theirs"), pulled(11, "j", "other")]),
        ["superseded", "applied"]
      )
      assert.deepStrictEqual(yield* doc("k"), Option.some("mine"))
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(12, "k", "later")), "applied")
      assert.deepStrictEqual(yield* doc("k"), Option.some("later"))
    })))

  it.effect("throughSeq moves the cursor on after the page, even an empty one; never back; bad ones change nothing", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      const cursor = Effect.map(store.getSyncState("cloud"), (s) => s.lastPulledSeq)
      yield* store.applyPulledMutations("cloud", [pulled(3, "a", 1)], { throughSeq: 7 })
      assert.strictEqual(yield* cursor, 7)
      yield* store.applyPulledMutations("cloud", [], { throughSeq: 9 })
      assert.strictEqual(yield* cursor, 9)
      yield* store.applyPulledMutations("cloud", [], { throughSeq: 5 })
      assert.strictEqual(yield* cursor, 9)
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(8, "b", 1)), "duplicate")
      for (const bad of [-1, 1.5, Number.NaN]) {
        const error = yield* Effect.flip(
          store.applyPulledMutations("cloud", [pulled(10, "c", 1)], { throughSeq: bad })
        )
        assert.strictEqual(error.reason, "invalid_input")
      }
      assert.strictEqual(yield* cursor, 9)
      assert.deepStrictEqual(yield* doc("c"), Option.none())
    })))

  it.effect("ackMutationSeqs over rows acked before and seqs that do not exist: lastAckedSeq is the highest real one", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      yield* store.enroll("p")
      const seqs = yield* store.appendLocal("cloud", ["a", "b", "c", "d"].map((k) => write(k, 1)))
      yield* store.ackMutationSeqs("cloud", [{ seq: seqs[1], serverSeq: 11 }])
      yield* store.ackMutationSeqs("cloud", [0, 1, 2].map((i) => ({ seq: seqs[i], serverSeq: 10 + i })))
      assert.strictEqual((yield* store.getSyncState("cloud")).lastAckedSeq, seqs[2])
      yield* store.ackMutationSeqs("cloud", [{ seq: seqs[3], serverSeq: 13 }, { seq: seqs[3] + 1, serverSeq: 14 }])
      assert.strictEqual((yield* store.getSyncState("cloud")).lastAckedSeq, seqs[3])
      assert.deepStrictEqual(yield* pendingSeqs(), [])
    })))

  it.effect("ackMutationSeqs in any order, with gaps and scattered server seqs: each row settles with its own", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      yield* store.enroll("p")
      const seqs = yield* store.appendLocal(
        "cloud",
        ["k1", "k2", "k3", "k4", "k5", "k6"].map((k) => write(k, "mine"))
      )
      // Another replica's writes, kept aside; each sits just between two of our server seqs.
      for (const [seq, key] of [[9, "k2"], [11, "k1"], [21, "k3"], [40, "k5"], [41, "k6"]] as const) {
        assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(seq, key, "theirs")), "kept_aside")
      }
      // Server seqs 10, 12, 20 (k1..k3), k4 not acked, 42 and 43 (k5, k6), given out of order.
      yield* store.ackMutationSeqs("cloud", [
        { seq: seqs[4], serverSeq: 42 },
        { seq: seqs[1], serverSeq: 12 },
        { seq: seqs[0], serverSeq: 10 },
        { seq: seqs[5], serverSeq: 43 },
        { seq: seqs[2], serverSeq: 20 }
      ])
      assert.deepStrictEqual(yield* pendingSeqs(), [seqs[3]])
      assert.deepStrictEqual(yield* doc("k1"), Option.some("theirs")) // 11 after our 10
      assert.deepStrictEqual(yield* doc("k2"), Option.some("mine")) // 9 before our 12
      assert.deepStrictEqual(yield* doc("k3"), Option.some("theirs")) // 21 after our 20
      assert.deepStrictEqual(yield* doc("k4"), Option.some("mine")) // still pending
      assert.deepStrictEqual(yield* doc("k5"), Option.some("mine")) // 40 before our 42
      assert.deepStrictEqual(yield* doc("k6"), Option.some("mine")) // 41 before our 43
    })))

  it.effect("ackMutationSeqs acks exactly the given rows; ackMutations acks up to a seq", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      yield* store.enroll("p")
      yield* store.appendLocal("cloud", [write("a", 1), write("b", 2), write("c", 3), write("d", 4)])
      yield* store.appendLocal("other", [write("e", 5)])
      yield* store.ackMutationSeqs("cloud", [{ seq: 2, serverSeq: 10 }])
      assert.deepStrictEqual(yield* pendingSeqs(), [1, 3, 4])
      assert.strictEqual((yield* store.getSyncState("cloud")).lastAckedSeq, 2)
      // An unknown seq, a seq of another target and an already-acked seq change nothing.
      yield* store.ackMutationSeqs("cloud", [{ seq: 1, serverSeq: 11 }, { seq: 99, serverSeq: 12 }, {
        seq: 5,
        serverSeq: 13
      }])
      assert.deepStrictEqual(yield* pendingSeqs(), [3, 4])
      assert.strictEqual((yield* store.getSyncState("cloud")).lastAckedSeq, 2)
      assert.strictEqual(yield* store.countPending("other"), 1)
      yield* store.ackMutations("cloud", 3)
      assert.deepStrictEqual(yield* pendingSeqs(), [4])
      assert.strictEqual((yield* store.getSyncState("cloud")).lastAckedSeq, 3)
      yield* store.ackMutations("cloud", 100)
      assert.deepStrictEqual(yield* pendingSeqs(), [])
      assert.strictEqual((yield* store.getSyncState("cloud")).lastAckedSeq, 4)
      assert.strictEqual(yield* store.countPending("other"), 1)
      assert.strictEqual((yield* store.getSyncState("other")).lastAckedSeq, 0)
      // Acked rows keep their documents.
      assert.deepStrictEqual(yield* doc("d"), Option.some(4))
    })))
}

// Pulled mutations: applied, kept aside behind un-acked writes and settled by the ack, duplicates.
const pulls = (run: Run) => {
  it.effect("a pulled mutation for a key without un-acked writes is applied and advances the cursor", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(3, "a", { v: 1 })), "applied")
      assert.deepStrictEqual(yield* doc("a"), Option.some({ v: 1 }))
      assert.strictEqual((yield* store.getSyncState("cloud")).lastPulledSeq, 3)
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(4, "a", null, "delete")), "applied")
      assert.deepStrictEqual(yield* doc("a"), Option.none())
      assert.strictEqual((yield* store.getSyncState("cloud")).lastPulledSeq, 4)
      // Pulled rows are never pending.
      assert.strictEqual(yield* store.countPending("cloud"), 0)
    })))

  it.effect("a pulled mutation for a key with an un-acked write is kept aside, not applied, not dropped", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      yield* store.appendLocal("cloud", [write("k", "mine")])
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(1, "k", "theirs")), "kept_aside")
      assert.deepStrictEqual(yield* doc("k"), Option.some("mine"))
      assert.strictEqual((yield* store.getSyncState("cloud")).lastPulledSeq, 1)
      // Other keys are not held back.
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(2, "other", "x")), "applied")
      assert.deepStrictEqual(yield* doc("other"), Option.some("x"))
      // Another target's un-acked writes do not hold this target's pulls.
      yield* store.appendLocal("elsewhere", [write("z", "local")])
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(3, "z", "remote")), "applied")
    })))

  it.effect("lost push response: a kept-aside remote write with a higher seq than ours wins after the ack", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      // Our write was accepted as seq 5 but the response was lost; another replica wrote seq 6.
      const [seq] = yield* store.appendLocal("cloud", [write("k", "mine")])
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(5, "k", "mine")), "kept_aside")
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(6, "k", "theirs")), "kept_aside")
      assert.deepStrictEqual(yield* doc("k"), Option.some("mine"))
      // The retried push returns seq 5 again: the log replayed in seq order ends with "theirs".
      yield* store.ackMutationSeqs("cloud", [{ seq, serverSeq: 5 }])
      assert.deepStrictEqual(yield* doc("k"), Option.some("theirs"))
    })))

  it.effect("a kept-aside remote write with a lower seq than ours is discarded after the ack", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      const [seq] = yield* store.appendLocal("cloud", [write("k", "mine")])
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(3, "k", "theirs")), "kept_aside")
      yield* store.ackMutationSeqs("cloud", [{ seq, serverSeq: 4 }])
      assert.deepStrictEqual(yield* doc("k"), Option.some("mine"))
      // Settled: a later ack of nothing changes nothing, a later pull applies normally.
      yield* store.ackMutations("cloud", 100)
      assert.deepStrictEqual(yield* doc("k"), Option.some("mine"))
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(7, "k", "later")), "applied")
      assert.deepStrictEqual(yield* doc("k"), Option.some("later"))
    })))

  it.effect("kept-aside mutations wait for the key's last un-acked write, then apply in seq order", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      // Server log: 1 = a (ours), 2 = b (ours), 3 = theirs, 4 = theirs-again, 5 = delete.
      const [s1, s2] = yield* store.appendLocal("cloud", [write("k", "a"), write("k", "b")])
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(3, "k", "theirs")), "kept_aside")
      yield* store.ackMutationSeqs("cloud", [{ seq: s1, serverSeq: 1 }])
      assert.deepStrictEqual(yield* doc("k"), Option.some("b"))
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(4, "k", "theirs-again")), "kept_aside")
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(5, "k", null, "delete")), "kept_aside")
      yield* store.ackMutationSeqs("cloud", [{ seq: s2, serverSeq: 2 }])
      assert.deepStrictEqual(yield* doc("k"), Option.none())
    })))

  it.effect("ackMutations without server seqs applies the kept-aside mutations", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      yield* store.appendLocal("cloud", [write("k", "mine")])
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(7, "k", "theirs")), "kept_aside")
      yield* store.ackMutations("cloud", 1)
      assert.deepStrictEqual(yield* doc("k"), Option.some("theirs"))
    })))

  it.effect("a seq at or below the cursor is a duplicate and changes nothing", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(5, "a", "first")), "applied")
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(5, "a", "again")), "duplicate")
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(3, "a", "older")), "duplicate")
      assert.deepStrictEqual(yield* doc("a"), Option.some("first"))
      assert.strictEqual((yield* store.getSyncState("cloud")).lastPulledSeq, 5)
      assert.deepStrictEqual(yield* store.listDeadLetters, [])
      // Cursors are per target.
      assert.strictEqual(yield* store.applyPulledMutation("other", pulled(5, "b", "x")), "applied")
    })))
}

// Pages applied as one, the last write of a key, dead letters.
const pagesAndDeadLetters = (run: Run) => {
  it.effect("a page applies like one mutation at a time: results in order, duplicates, kept aside, dead letters", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      yield* store.applyPulledMutation("cloud", pulled(2, "a", "seen"))
      yield* store.appendLocal("cloud", [write("mine", "local")])
      const results = yield* store.applyPulledMutations("cloud", [
        pulled(1, "a", "old"),
        pulled(2, "a", "again"),
        pulled(3, "b", "new"),
        pulled(4, "mine", "remote"),
        pulled(5, "c", 1, "frobnicate"),
        pulled(6, "b", null, "delete"),
        pulled(7, "d", { deep: [1, 2] })
      ])
      assert.deepStrictEqual(results, [
        "duplicate",
        "duplicate",
        "applied",
        "kept_aside",
        "dead_letter",
        "applied",
        "applied"
      ])
      assert.strictEqual((yield* store.getSyncState("cloud")).lastPulledSeq, 7)
      assert.deepStrictEqual(yield* doc("a"), Option.some("seen"))
      assert.deepStrictEqual(yield* doc("b"), Option.none())
      assert.deepStrictEqual(yield* doc("mine"), Option.some("local"))
      assert.deepStrictEqual(yield* doc("d"), Option.some({ deep: [1, 2] }))
      assert.deepStrictEqual(yield* store.applyPulledMutations("cloud", []), [])
      assert.deepStrictEqual(yield* store.applyPulledMutations("cloud", [pulled(7, "d", 0)]), ["duplicate"])
    })))

  it.effect("one key written several times in one batch or one page ends at the last write", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      const del = (entityKey: string): Mutation.LocalWrite => ({ ...write(entityKey, null), op: "delete" })
      yield* store.appendLocal("cloud", [
        write("x", 1),
        write("y", 1),
        write("x", 2),
        del("y"),
        write("z", 1),
        del("z")
      ])
      yield* store.appendLocal("cloud", [write("z", 3)])
      assert.deepStrictEqual(yield* doc("x"), Option.some(2))
      assert.deepStrictEqual(yield* doc("y"), Option.none())
      assert.deepStrictEqual(yield* doc("z"), Option.some(3))
      const results = yield* store.applyPulledMutations("cloud", [
        pulled(1, "p1", "a"),
        pulled(2, "p2", "a"),
        pulled(3, "p1", null, "delete"),
        pulled(4, "p2", "b"),
        pulled(5, "p1", "c")
      ])
      assert.deepStrictEqual(results, ["applied", "applied", "applied", "applied", "applied"])
      assert.deepStrictEqual(yield* doc("p1"), Option.some("c"))
      assert.deepStrictEqual(yield* doc("p2"), Option.some("b"))
    })))

  it.effect("a mutation that cannot be applied goes to the dead letters with the reason; sync goes on", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      const bad = pulled(1, "a", { x: 1 }, "frobnicate")
      assert.strictEqual(yield* store.applyPulledMutation("cloud", bad), "dead_letter")
      assert.strictEqual((yield* store.getSyncState("cloud")).lastPulledSeq, 1)
      assert.strictEqual(
        yield* store.applyPulledMutation("cloud", { ...pulled(2, "b", "x"), payload: undefined }),
        "dead_letter"
      )
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(3, "a", "ok")), "applied")
      assert.deepStrictEqual(yield* doc("a"), Option.some("ok"))
      assert.deepStrictEqual(yield* doc("b"), Option.none())
      const letters = yield* store.listDeadLetters
      assert.deepStrictEqual(letters[0], { seq: 1, reason: "no applier for op \"frobnicate\"", mutation: bad })
      assert.deepStrictEqual(letters.map((l) => [l.seq, l.reason]), [
        [1, "no applier for op \"frobnicate\""],
        [2, "upsert without a payload"]
      ])
      // A dead letter is not kept aside either, even for a key with an un-acked write.
      yield* store.appendLocal("cloud", [write("a", "mine")])
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(4, "a", 1, "frobnicate")), "dead_letter")
      assert.strictEqual((yield* store.listDeadLetters).length, 3)
    })))
}

// The lease, and the failures recorded in the state.
const leaseAndFailures = (run: Run) => {
  it.effect("lease: taken when free, renewed by its owner, refused to others until it expires, released", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      const t = (ms: number) => new Date(1_000_000 + ms)
      assert.isTrue(yield* store.acquireLease("cloud", "A", "10 seconds", t(0)))
      let state = yield* store.getSyncState("cloud")
      assert.strictEqual(state.leaseOwner, "A")
      assert.deepStrictEqual(state.leaseUntil, t(10_000))
      assert.isFalse(yield* store.acquireLease("cloud", "B", "10 seconds", t(5_000)))
      assert.isTrue(yield* store.acquireLease("cloud", "A", "10 seconds", t(5_000)))
      assert.deepStrictEqual((yield* store.getSyncState("cloud")).leaseUntil, t(15_000))
      assert.isFalse(yield* store.acquireLease("cloud", "B", "10 seconds", t(14_999)))
      // Expired exactly at leaseUntil.
      assert.isTrue(yield* store.acquireLease("cloud", "B", "10 seconds", t(15_000)))
      assert.isFalse(yield* store.acquireLease("cloud", "A", "10 seconds", t(15_001)))
      // Releasing a lease one does not hold does nothing.
      yield* store.releaseLease("cloud", "A")
      assert.strictEqual((yield* store.getSyncState("cloud")).leaseOwner, "B")
      yield* store.releaseLease("cloud", "B")
      state = yield* store.getSyncState("cloud")
      assert.isUndefined(state.leaseOwner)
      assert.isUndefined(state.leaseUntil)
      assert.isTrue(yield* store.acquireLease("cloud", "A", "1 second", t(15_002)))
      // Leases are per target.
      assert.isTrue(yield* store.acquireLease("other", "B", "1 second", t(15_002)))
    })))

  it.effect("lease: never two holders (random schedules against a model)", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      const step = fc.record({
        owner: fc.constantFrom("A", "B", "C"),
        action: fc.constantFrom("acquire", "acquire", "acquire", "release"),
        advance: fc.integer({ min: 0, max: 4_000 }),
        ttl: fc.integer({ min: 0, max: 5_000 })
      })
      const schedules = fc.sample(fc.array(step, { minLength: 1, maxLength: 30 }), { numRuns: 40, seed: 42 })
      for (const [run, schedule] of schedules.entries()) {
        const target = `lease-${run}`
        let now = 0
        let holder: { owner: string; until: number } | undefined
        for (const s of schedule) {
          now += s.advance
          if (s.action === "release") {
            yield* store.releaseLease(target, s.owner)
            if (holder?.owner === s.owner) holder = undefined
          } else {
            const got = yield* store.acquireLease(target, s.owner, s.ttl, new Date(now))
            const free = holder === undefined || holder.owner === s.owner || holder.until <= now
            assert.strictEqual(got, free, `run ${run}: ${s.owner} at ${now}`)
            // The invariant itself: a different, unexpired holder means refusal.
            if (holder !== undefined && holder.owner !== s.owner && holder.until > now) assert.isFalse(got)
            if (got) holder = { owner: s.owner, until: now + s.ttl }
          }
          const state = yield* store.getSyncState(target)
          assert.strictEqual(state.leaseOwner, holder?.owner)
        }
      }
    })))

  it.effect("markFailure counts failures and records the error; markHealthy resets them", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      yield* store.applyPulledMutation("cloud", pulled(9, "a", 1))
      yield* TestClock.adjust(1_000)
      yield* store.markFailure("cloud", "boom", new Date(5_000), "transport_failed")
      yield* store.markFailure("cloud", "bang", new Date(9_000), "auth_required")
      let state = yield* store.getSyncState("cloud")
      assert.strictEqual(state.consecutiveFailures, 2)
      assert.strictEqual(state.lastError, "bang")
      assert.deepStrictEqual(state.backoffUntil, new Date(9_000))
      assert.strictEqual(state.reasonCode, "auth_required")
      assert.deepStrictEqual(state.updatedAt, new Date(1_000))
      yield* TestClock.adjust(1_000)
      yield* store.markHealthy("cloud")
      state = yield* store.getSyncState("cloud")
      assert.deepStrictEqual(state, { ...LocalStore.emptyState("cloud", new Date(2_000)), lastPulledSeq: 9 })
    })))
}

// Bad input: refused, nothing changed.
const badInput = (run: Run) => {
  it.effect("appendLocal refuses bad input with invalid_input and changes nothing", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      yield* store.enroll("p")
      let deep: unknown = 1
      for (let i = 0; i < 100; i++) deep = [deep]
      const bad: ReadonlyArray<ReadonlyArray<unknown>> = [
        [{ ...write("a", 1), project: "" }],
        [{ ...write("a", 1), op: "frobnicate" }],
        [{ ...write("a", 1), op: "" }],
        [write("a", deep)],
        [write("a", Number.NaN)],
        [write("a", 2 ** 60)],
        [write("a", "nul\u0000")],
        [{ project: "p", entity: "doc", op: "upsert", payload: 1 }],
        [write("a", undefined)],
        [write("good", 1), { ...write("b", 1), entity: "" }]
      ]
      for (const entries of bad) {
        const error = yield* Effect.flip(store.appendLocal("cloud", entries as ReadonlyArray<Mutation.LocalWrite>))
        assert.strictEqual(error.reason, "invalid_input", JSON.stringify(entries).slice(0, 100))
      }
      assert.strictEqual(yield* store.countPending("cloud"), 0)
      assert.deepStrictEqual(yield* store.listDocuments("p"), [])
      assert.strictEqual((yield* store.getSyncState("cloud")).lastEnqueuedSeq, 0)
      // No seq was burned.
      assert.deepStrictEqual(yield* store.appendLocal("cloud", [write("a", 1)]), [1])
    })))

  it.effect("a project that is empty, only whitespace, or starts or ends with whitespace is refused, naming why", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      yield* store.enroll("p")
      const cases: ReadonlyArray<readonly [project: string, message: string]> = [
        ["", "project must not be empty"],
        ["   ", "project must not be empty"],
        ["\t\n", "project must not be empty"],
        [" p", "project must not start or end with whitespace"],
        ["p ", "project must not start or end with whitespace"],
        ["p\n", "project must not start or end with whitespace"]
      ]
      for (const [project, message] of cases) {
        const what = JSON.stringify(project)
        for (
          const attempt of [
            store.appendLocal("cloud", [write("a", 1, project)]),
            store.appendLocal("cloud", [write("ok", 1), write("a", 1, project)]),
            store.enroll(project),
            store.unenroll(project)
          ]
        ) {
          const error = yield* Effect.flip(attempt)
          assert.strictEqual(error.reason, "invalid_input", what)
          assert.include(error.message, message, what)
          assert.notInclude(error.message, "\n", `${what}: one line`)
        }
      }
      // Nothing was written: no journal row, no document, no enrollment, no seq burned.
      assert.strictEqual(yield* store.countPending("cloud"), 0)
      assert.deepStrictEqual(yield* store.listDocuments("p"), [])
      assert.deepStrictEqual(yield* store.listEnrolled, ["p"])
      assert.strictEqual((yield* store.getSyncState("cloud")).lastEnqueuedSeq, 0)
      // Inner spaces are fine.
      assert.deepStrictEqual(yield* store.appendLocal("cloud", [write("a", 1, "my notes")]), [1])
      yield* store.enroll("my notes")
      assert.deepStrictEqual(yield* store.listEnrolled, ["my notes", "p"])
    })))
}

// Documents, the transport identity of a failure, reidentify.
const documentsAndIdentity = (run: Run) => {
  it.effect("documents: get, delete, and list ordered by entity then key", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      yield* store.appendLocal("cloud", [
        write("b", 2, "p", "note"),
        write("a", 1, "p", "note"),
        write("z", 3, "p", "card"),
        write("a", 4, "q", "note")
      ])
      assert.deepStrictEqual(
        (yield* store.listDocuments("p")).map((d) => [d.entity, d.entityKey, d.value]),
        [["card", "z", 3], ["note", "a", 1], ["note", "b", 2]]
      )
      assert.deepStrictEqual(yield* store.listDocuments("p", "note"), [
        { project: "p", entity: "note", entityKey: "a", value: 1 },
        { project: "p", entity: "note", entityKey: "b", value: 2 }
      ])
      const [deleted] = yield* store.appendLocal("cloud", [{ ...write("a", null, "p", "note"), op: "delete" }])
      assert.deepStrictEqual(yield* store.getDocument("p", "note", "a"), Option.none())
      // A JSON null payload stays null in the journal (it is not a missing payload).
      yield* store.enroll("p")
      const rows = yield* store.listPendingMutations("cloud", 10)
      assert.deepStrictEqual(rows.filter((r) => r.seq === deleted).map((r) => [r.op, r.payload]), [["delete", null]])
      assert.deepStrictEqual(yield* store.getDocument("q", "note", "a"), Option.some(4))
      assert.deepStrictEqual(yield* store.listDocuments("nobody"), [])
    })))

  it.effect("markFailure records the transport identity; markHealthy and a failure without one clear it", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      yield* store.markFailure("cloud", "bad token", new Date(60_000), "auth_required", "http://a/ token:1")
      assert.strictEqual((yield* store.getSyncState("cloud")).transportIdentity, "http://a/ token:1")
      yield* store.markFailure("cloud", "down", new Date(60_000), "transport_failed")
      assert.strictEqual((yield* store.getSyncState("cloud")).transportIdentity, undefined)
      yield* store.markFailure("cloud", "bad token", new Date(60_000), "auth_required", "http://a/ token:1")
      yield* store.markHealthy("cloud")
      assert.strictEqual((yield* store.getSyncState("cloud")).transportIdentity, undefined)
    })))

  it.effect("reidentify: a new client id, pending rows kept for the new identity, cursor back to 0", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      yield* store.enroll("p")
      const [acked] = yield* store.appendLocal("cloud", [write("a", 1)])
      yield* store.ackMutationSeqs("cloud", [{ seq: acked, serverSeq: 1 }])
      const pending = yield* store.appendLocal("cloud", [write("b", 2), write("c", 3)])
      // "c" has a kept-aside remote write; "d" was pulled and applied.
      yield* store.applyPulledMutations("cloud", [pulled(2, "c", "remote c"), pulled(3, "d", "remote d")], {
        throughSeq: 3
      })
      yield* store.markFailure("cloud", "conflict", new Date(60_000), "identity_conflict", "http://a/ token:1")
      const before = store.clientId
      const result = yield* store.reidentify
      assert.strictEqual(result.previousClientId, before)
      assert.notStrictEqual(result.clientId, before)
      assert.isTrue(Schema.is(Mutation.ClientId)(result.clientId))
      assert.strictEqual(store.clientId, result.clientId)
      assert.strictEqual((yield* LocalStore.LocalStore).clientId, result.clientId)
      assert.strictEqual(result.pending, 2)
      assert.deepStrictEqual(yield* pendingSeqs(), [...pending])
      const state = yield* store.getSyncState("cloud")
      assert.strictEqual(state.lastPulledSeq, 0)
      assert.strictEqual(state.consecutiveFailures, 0)
      assert.strictEqual(state.reasonCode, undefined)
      assert.strictEqual(state.backoffUntil, undefined)
      // Pulled again from 0: nothing is refused as a duplicate; "c" is kept aside again.
      const results = yield* store.applyPulledMutations("cloud", [
        pulled(2, "c", "remote c"),
        pulled(3, "d", "remote d")
      ], { throughSeq: 3 })
      assert.deepStrictEqual(results, ["kept_aside", "applied"])
      assert.deepStrictEqual(yield* doc("c"), Option.some(3))
      assert.deepStrictEqual(yield* doc("d"), Option.some("remote d"))
    })))
}

// Journal pruning and its seqs; the error type.
const pruningAndErrors = (run: Run) => {
  it.effect("pruning: acked and applied rows leave the journal; every convergence case still holds", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      const size = Effect.map(store.journalSize, ({ keyFacts, rows }) => ({ rows, keyFacts }))
      yield* store.enroll("p")
      const [a, b, c] = yield* store.appendLocal("cloud", [
        write("a", "mine a"),
        write("b", "mine b"),
        write("c", "c")
      ])
      assert.deepStrictEqual(yield* size, { rows: 3, keyFacts: 0 })
      // Acked rows are pruned; their server seqs stay as per-key facts while the cursor is below them.
      yield* store.ackMutationSeqs("cloud", [{ seq: a, serverSeq: 10 }, { seq: b, serverSeq: 11 }])
      assert.deepStrictEqual(yield* size, { rows: 1, keyFacts: 2 })
      assert.deepStrictEqual(yield* pendingSeqs(), [c])
      // Applied: not journalled. Kept aside: journalled until settled.
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(5, "x", "theirs x")), "applied")
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(6, "c", "theirs c")), "kept_aside")
      assert.deepStrictEqual(yield* size, { rows: 2, keyFacts: 2 })
      // Settle after the ack: 6 is below our 12, discarded; the journal is empty.
      yield* store.ackMutationSeqs("cloud", [{ seq: c, serverSeq: 12 }])
      assert.deepStrictEqual(yield* doc("c"), Option.some("c"))
      assert.deepStrictEqual(yield* size, { rows: 0, keyFacts: 3 })
      // Duplicate and superseded still hold with the rows gone.
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(5, "x", "theirs x")), "duplicate")
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(9, "a", "older a")), "superseded")
      assert.deepStrictEqual(yield* doc("a"), Option.some("mine a"))
      // The cursor passing a fact forgets it; what it told is no longer needed.
      yield* store.applyPulledMutations("cloud", [], { throughSeq: 11 })
      assert.deepStrictEqual(yield* size, { rows: 0, keyFacts: 1 })
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(13, "a", "newer a")), "applied")
      assert.deepStrictEqual(yield* doc("a"), Option.some("newer a"))
      assert.deepStrictEqual(yield* size, { rows: 0, keyFacts: 0 })
      // Dead letters stay in their own table, not in the journal.
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(14, "y", 1, "bogus")), "dead_letter")
      assert.deepStrictEqual((yield* store.listDeadLetters).map((d) => d.seq), [14])
      assert.deepStrictEqual(yield* size, { rows: 0, keyFacts: 0 })
      // Settled after the ack of a later write: a kept-aside write above ours applies, and goes.
      const [d] = yield* store.appendLocal("cloud", [write("a", "mine again")])
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulled(16, "a", "theirs a")), "kept_aside")
      yield* store.ackMutationSeqs("cloud", [{ seq: d, serverSeq: 15 }])
      assert.deepStrictEqual(yield* doc("a"), Option.some("theirs a"))
      assert.deepStrictEqual(yield* size, { rows: 0, keyFacts: 0 })
    })))

  it.effect("journal seqs are never reused once pruned; ackedThrough is exact across projects and targets", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      assert.strictEqual(yield* store.ackedThrough, 0)
      yield* store.enroll("p")
      const [s1, s2] = yield* store.appendLocal("cloud", [write("a", 1), write("b", 2, "q")])
      const [s3] = yield* store.appendLocal("elsewhere", [write("c", 3)])
      assert.deepStrictEqual([s1, s2, s3], [1, 2, 3])
      assert.strictEqual(yield* store.ackedThrough, 0)
      yield* store.ackMutationSeqs("cloud", [{ seq: s1, serverSeq: 1 }])
      // 2 is pending in a project not enrolled: it holds the watermark.
      assert.strictEqual(yield* store.ackedThrough, 1)
      yield* store.enroll("q")
      yield* store.ackMutationSeqs("cloud", [{ seq: s2, serverSeq: 2 }])
      // 3 is pending for another target: a clientSeq is the replica's, whatever the target.
      assert.strictEqual(yield* store.ackedThrough, 2)
      yield* store.ackMutationSeqs("elsewhere", [{ seq: s3, serverSeq: 1 }])
      assert.strictEqual(yield* store.ackedThrough, 3)
      assert.strictEqual((yield* store.journalSize).rows, 0)
      // An empty journal does not give seqs out again.
      const [s4, s5, s6] = yield* store.appendLocal("cloud", [write("a", 4), write("b", 5), write("c", 6)])
      assert.deepStrictEqual([s4, s5, s6], [4, 5, 6])
      assert.strictEqual(yield* store.ackedThrough, 3)
      // Acked out of order: the watermark stays below the first pending row.
      yield* store.ackMutationSeqs("cloud", [{ seq: s6, serverSeq: 6 }, { seq: s4, serverSeq: 4 }])
      assert.strictEqual(yield* store.ackedThrough, 4)
      yield* store.ackMutations("cloud", s5)
      assert.strictEqual(yield* store.ackedThrough, 6)
    })))

  it.effect("every failure is a LocalStoreError", () =>
    run(Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      const result = yield* Effect.either(store.appendLocal("cloud", [null as unknown as Mutation.LocalWrite]))
      assert.isTrue(Either.isLeft(result) && result.left._tag === "LocalStoreError")
    })))
}

/**
 * Registers, under `describe`, the tests every `LocalStore` must pass; `layer` is built afresh
 * for each test (an empty store). Run it from a vitest test file with your own layer.
 *
 * @since 0.1.0
 * @category suites
 */
export const LocalStoreSuite = (
  name: string,
  layer: Layer.Layer<LocalStore.LocalStore, LocalStore.LocalStoreError>
) =>
  describe(`LocalStore contract: ${name}`, () => {
    const run = <A, E>(effect: Effect.Effect<A, E, LocalStore.LocalStore>) => Effect.provide(effect, layer)

    identityAndJournal(run)
    cursorAndAcks(run)
    pulls(run)
    pagesAndDeadLetters(run)
    leaseAndFailures(run)
    badInput(run)
    documentsAndIdentity(run)
    pruningAndErrors(run)
  })
