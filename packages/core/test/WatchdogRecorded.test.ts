import { CloudTransport, LocalStore, Metrics, type Status, SyncConfig, SyncManager } from "@autosync/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric, TestClock } from "effect"
import { makeFake, makeReplica, put } from "./fakes.js"

// A memory store that counts its `markStalled` calls.
const countingStore = Effect.gen(function*() {
  const inner = yield* LocalStore.makeMemory({ clientId: "replica-a" })
  const marks: Array<string> = []
  const store: LocalStore.LocalStore["Type"] = {
    ...inner,
    get clientId() {
      return inner.clientId
    },
    markStalled: (targetKey, stalled) =>
      Effect.zipRight(Effect.sync(() => marks.push(stalled?.kind ?? "-")), inner.markStalled(targetKey, stalled))
  }
  return { store, marks }
})

const gauge = Effect.map(Metric.value(Metrics.stalled), (state) => state.value)

describe("LocalStore.markStalled (memory)", () => {
  it.effect("records a stall in the sync state and clears it; other fields stay as they were", () =>
    Effect.gen(function*() {
      const store = yield* LocalStore.makeMemory({ clientId: "c1" })
      const stalled: Status.Stalled = { kind: "pull", since: new Date(5000), why: "cursor stuck" }
      yield* store.markFailure("cloud", "down", new Date(9000), "transport_failed")
      yield* store.markStalled("cloud", stalled)
      const state = yield* store.getSyncState("cloud")
      assert.deepStrictEqual(state.stalled, stalled)
      assert.strictEqual(state.consecutiveFailures, 1)
      yield* store.markHealthy("cloud") // a healthy cycle is no end of a stall
      assert.deepStrictEqual((yield* store.getSyncState("cloud")).stalled, stalled)
      yield* store.markStalled("cloud", undefined)
      assert.isUndefined((yield* store.getSyncState("cloud")).stalled)
      assert.isUndefined((yield* store.getSyncState("other")).stalled)
    }))
})

describe("SyncManager records its stall in the store and the gauge", () => {
  it.scoped("a push stall is stored when it starts and cleared when it ends, written only on those changes", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const { marks, store } = yield* countingStore
      const { fake, manager } = yield* makeReplica({ server, store, config: { stallCycles: 3 } })
      yield* put(store, "k1", 1)
      fake.partial = true // every result is one seq short: nothing is acked
      yield* Effect.forkScoped(manager.run)
      yield* TestClock.adjust("2999 millis") // cycles at 0 and 1000
      assert.isUndefined((yield* store.getSyncState("cloud")).stalled)
      assert.strictEqual(yield* gauge, 0)
      yield* TestClock.adjust("1 millis") // the third cycle, at 3000: a stall
      const shown = (yield* manager.status).stalled
      assert.strictEqual(shown?.kind, "push")
      assert.deepStrictEqual((yield* store.getSyncState("cloud")).stalled, shown)
      assert.strictEqual(yield* gauge, 1)
      yield* TestClock.adjust("4 seconds") // the cycle at 7000 is still stuck: the same stall, nothing written
      assert.match((yield* manager.status).stalled!.why, /4 cycles in a row/)
      assert.deepStrictEqual((yield* store.getSyncState("cloud")).stalled, shown)
      assert.deepStrictEqual(marks, ["push"])
      fake.partial = false
      yield* TestClock.adjust("8 seconds") // the retry at 15000 is acked
      assert.isUndefined((yield* manager.status).stalled)
      assert.isUndefined((yield* store.getSyncState("cloud")).stalled)
      assert.strictEqual(yield* gauge, 0)
      assert.deepStrictEqual(marks, ["push", "-"])
    }).pipe(Effect.withRandomFixed([0.5])))

  it.scoped("a watcher stall, found between cycles, is stored when it starts and cleared when a long-poll is answered", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const { marks, store } = yield* countingStore
      yield* store.enroll("p")
      const fake = makeFake(CloudTransport.fromMemoryServer(server))
      let cutHeld = true
      // Short pulls pass; a held one (live sync's long-poll) is cut, as by a proxy's idle timeout.
      const transport = CloudTransport.CloudTransport.of({
        ...fake.transport,
        pull: (sinceSeq, limit, options) =>
          cutHeld && options?.wait !== undefined
            ? new CloudTransport.TransportError({ reason: "transport_failed", status: 502, message: "socket hang up" })
            : fake.transport.pull(sinceSeq, limit, options)
      })
      const config = yield* SyncConfig.make({
        leaseOwner: "w1",
        pollInterval: "60 seconds",
        longPollWait: "20 seconds",
        watcherStallAfter: "30 seconds"
      })
      const manager = yield* SyncManager.make(config).pipe(Effect.provide(Layer.mergeAll(
        Layer.succeed(LocalStore.LocalStore, store),
        Layer.succeed(CloudTransport.CloudTransport, transport)
      )))
      yield* Effect.forkScoped(manager.run)
      yield* TestClock.adjust("30 seconds") // failing for 30 s, between two polls
      const shown = (yield* manager.status).stalled
      assert.strictEqual(shown?.kind, "watcher")
      assert.deepStrictEqual((yield* store.getSyncState("cloud")).stalled, shown)
      assert.strictEqual(yield* gauge, 1)
      cutHeld = false
      yield* TestClock.adjust("23 seconds") // the long-poll at 33000 is answered at 53000
      assert.isUndefined((yield* manager.status).stalled)
      assert.isUndefined((yield* store.getSyncState("cloud")).stalled)
      assert.strictEqual(yield* gauge, 0)
      assert.deepStrictEqual(marks, ["watcher", "-"])
    }).pipe(Effect.withRandomFixed([0.5])))

  it.scoped("a stall left in the store by an earlier manager is cleared by the next one's first cycle", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const { marks, store } = yield* countingStore
      yield* store.markStalled("cloud", { kind: "watcher", since: new Date(0), why: "from the last run" })
      marks.length = 0
      const { manager } = yield* makeReplica({ server, store })
      yield* put(store, "k1", 1)
      yield* manager.syncNow
      assert.strictEqual((yield* manager.status).phase, "healthy")
      assert.isUndefined((yield* store.getSyncState("cloud")).stalled)
      assert.deepStrictEqual(marks, ["-"])
      yield* manager.syncNow // no change: no write
      assert.deepStrictEqual(marks, ["-"])
    }))
})
