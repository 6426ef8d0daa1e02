import { CloudTransport, DirtySignal, LocalStore, SyncConfig, SyncManager } from "@autosync/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, Queue, Stream, TestClock } from "effect"
import { Applier, Documents } from "../src/index.js"
import { layerTempFile } from "./utils.js"

// Writes the document, then fails: the document row must be rolled back with the journal row.
const rejectsAfterWriting: Applier.EntityApplier = {
  validate: () => undefined,
  apply: (change) => Effect.zipRight(Applier.documents.apply(change), new Applier.ApplyRejected({ reason: "no" }))
}
const failsAfterWriting: Applier.EntityApplier = {
  validate: () => undefined,
  apply: (change) =>
    Effect.zipRight(
      Applier.documents.apply(change),
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql`SELECT * FROM no_such_table`)
    )
}

const StoreLayer = layerTempFile.pipe(
  Layer.provide(Applier.layer({ rejecting: rejectsAfterWriting, failing: failsAfterWriting }))
)
const TestLayer = Documents.layer.pipe(Layer.provideMerge(Layer.merge(StoreLayer, DirtySignal.layer)))

describe("Documents", () => {
  it.scoped("put, get, list and remove; each write is journaled and wakes the DirtySignal", () =>
    Effect.gen(function*() {
      const docs = yield* Documents.Documents
      const store = yield* LocalStore.LocalStore
      const wakes = yield* (yield* DirtySignal.DirtySignal).subscribe
      assert.strictEqual(yield* docs.put("p", "note", "b", { text: "bee" }), 1)
      assert.strictEqual(yield* Queue.size(wakes), 1)
      yield* Queue.takeAll(wakes)
      assert.strictEqual(yield* docs.put("p", "note", "a", { text: "ay" }), 2)
      assert.strictEqual(yield* docs.put("p", "card", "z", [1, 2]), 3)
      assert.deepStrictEqual(yield* docs.get("p", "note", "a"), Option.some({ text: "ay" }))
      assert.deepStrictEqual((yield* docs.list("p")).map((d) => `${d.entity}/${d.entityKey}`), [
        "card/z",
        "note/a",
        "note/b"
      ])
      assert.deepStrictEqual((yield* docs.list("p", "note")).map((d) => d.value), [{ text: "ay" }, { text: "bee" }])
      assert.strictEqual(yield* docs.remove("p", "note", "a"), 4)
      assert.deepStrictEqual(yield* docs.get("p", "note", "a"), Option.none())
      assert.strictEqual(yield* Queue.size(wakes), 1)
      yield* store.enroll("p")
      const journal = yield* store.listPendingMutations("cloud", 10)
      assert.deepStrictEqual(journal.map((m) => [m.seq, m.op, m.entityKey, m.payload]), [
        [1, "upsert", "b", { text: "bee" }],
        [2, "upsert", "a", { text: "ay" }],
        [3, "upsert", "z", [1, 2]],
        [4, "delete", "a", null]
      ])
    }).pipe(Effect.provide(TestLayer)))

  it.scoped("bad input fails with invalid_input, writes nothing and wakes nobody", () =>
    Effect.gen(function*() {
      const docs = yield* Documents.Documents
      const store = yield* LocalStore.LocalStore
      const wakes = yield* (yield* DirtySignal.DirtySignal).subscribe
      const attempts = [
        docs.put("", "note", "a", 1),
        docs.put("  ", "note", "a", 1),
        docs.put(" p", "note", "a", 1),
        docs.put("p ", "note", "a", 1),
        docs.remove("", "note", "a"),
        docs.remove("\t", "note", "a"),
        docs.remove("p\n", "note", "a"),
        docs.put("p", "", "a", 1),
        docs.put("p", "note", "", 1),
        docs.put("p", "note", "a", undefined),
        docs.put("p", "note", "a", { big: 2 ** 60 }),
        docs.put("p", "note", "a", new Map()),
        docs.remove("p", "note", "")
      ]
      for (const attempt of attempts) {
        assert.strictEqual((yield* Effect.flip(attempt)).reason, "invalid_input")
      }
      assert.strictEqual(yield* store.countPending("cloud"), 0)
      assert.strictEqual((yield* store.getSyncState("cloud")).lastEnqueuedSeq, 0)
      assert.deepStrictEqual(yield* docs.list("p"), [])
      assert.deepStrictEqual(yield* docs.list(" p"), [])
      assert.strictEqual(yield* Queue.size(wakes), 0)
    }).pipe(Effect.provide(TestLayer)))

  it.scoped("an applier failing after writing the document rolls back the document row and the journal row", () =>
    Effect.gen(function*() {
      const docs = yield* Documents.Documents
      const store = yield* LocalStore.LocalStore
      const wakes = yield* (yield* DirtySignal.DirtySignal).subscribe
      const rejected = yield* Effect.flip(docs.put("p", "rejecting", "a", 1))
      assert.strictEqual(rejected.reason, "invalid_input")
      const failed = yield* Effect.flip(docs.put("p", "failing", "a", 1))
      assert.strictEqual(failed.reason, "storage")
      assert.deepStrictEqual(yield* docs.get("p", "rejecting", "a"), Option.none())
      assert.deepStrictEqual(yield* docs.get("p", "failing", "a"), Option.none())
      assert.strictEqual(yield* store.countPending("cloud"), 0)
      assert.strictEqual((yield* store.getSyncState("cloud")).lastEnqueuedSeq, 0)
      assert.strictEqual(yield* Queue.size(wakes), 0)
      // The next write gets the first seq: nothing was burned.
      assert.strictEqual(yield* docs.put("p", "note", "a", 1), 1)
    }).pipe(Effect.provide(TestLayer)))

  it.scoped("works without a DirtySignal, and journals for the configured target", () =>
    Effect.gen(function*() {
      const docs = yield* Documents.Documents
      const store = yield* LocalStore.LocalStore
      yield* docs.put("p", "note", "a", 1)
      assert.strictEqual(yield* store.countPending("backup"), 1)
      assert.strictEqual(yield* store.countPending("cloud"), 0)
    }).pipe(Effect.provide(Documents.layerWith({ targetKey: "backup" }).pipe(Layer.provideMerge(layerTempFile)))))

  it.scoped("a SyncManager in the same process is woken by a put, without notifyDirty", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const config = yield* SyncConfig.make({ leaseOwner: "me", debounce: "50 millis", pollInterval: "1 hour" })
      const ManagerLayer = SyncManager.layer(config).pipe(
        Layer.provideMerge(TestLayer),
        Layer.provide(CloudTransport.layerMemoryServer(server))
      )
      yield* Effect.gen(function*() {
        const docs = yield* Documents.Documents
        const manager = yield* SyncManager.SyncManager
        yield* (yield* LocalStore.LocalStore).enroll("p")
        // The first cycle runs at start; wait for it, then write.
        yield* TestClock.adjust("1 millis")
        const synced = yield* manager.changes.pipe(
          Stream.filter((s) => s.phase === "healthy" && s.lastSyncAt !== undefined && s.lastSyncAt.getTime() >= 50),
          Stream.runHead,
          Effect.fork
        )
        yield* docs.put("p", "note", "a", "hello")
        assert.strictEqual(server.latestSeq(), 0)
        yield* TestClock.adjust("50 millis")
        yield* Fiber.join(synced)
        assert.deepStrictEqual(server.log().map((m) => [m.entityKey, m.payload]), [["a", "hello"]])
      }).pipe(Effect.provide(ManagerLayer))
    }))
})
