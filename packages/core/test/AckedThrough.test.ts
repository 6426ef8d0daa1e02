import { CloudTransport } from "@autosync/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeReplica, put } from "./fakes.js"

describe("SyncManager: the ackedThrough watermark", () => {
  it.scoped("every push carries it, exact: below every pending row, enrolled or not, acked out of order", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const { fake, manager, store } = yield* makeReplica({ server, clientId: "me" })
      const pushed = () => fake.batches.map((b) => [b.mutations.map((m) => m.clientSeq), b.ackedThrough])
      yield* put(store, "k1", 1) // 1
      yield* put(store, "k2", 2) // 2
      yield* put(store, "k3", 3, "q") // 3: project q is not enrolled, it stays pending
      yield* manager.syncNow
      assert.deepStrictEqual(pushed(), [[[1, 2], 0]])
      yield* put(store, "k4", 4) // 4
      yield* manager.syncNow
      // 3 is still pending: the watermark stays below it, although 4 is acked now.
      assert.deepStrictEqual(pushed().slice(1), [[[4], 2]])
      assert.strictEqual(yield* store.ackedThrough, 2)
      yield* store.enroll("q")
      yield* put(store, "k5", 5) // 5
      yield* manager.syncNow
      // One push per project: q's (3) first, then p's (5), whose watermark has 3 acked.
      assert.deepStrictEqual(pushed().slice(2), [[[3], 2], [[5], 4]])
      assert.strictEqual(yield* store.ackedThrough, 5)
      // The journal kept nothing of it: every row is acked.
      assert.strictEqual((yield* store.journalSize).rows, 0)
      assert.deepStrictEqual(server.log().map((m) => m.entityKey), ["k1", "k2", "k4", "k3", "k5"])
    }))
})
