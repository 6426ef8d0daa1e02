import { CloudTransport, LocalStore, Status, SyncManager } from "@autosync/core"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Fiber, Ref, Stream, TestClock } from "effect"
import { documentsOf, makeReplica, put, replay } from "./fakes.js"

const cycles = (log: ReadonlyArray<string>) => log.filter((l) => l.startsWith("pull@"))

describe("SyncManager", () => {
  describe("wake-ups", () => {
    it.scoped("50 notifyDirty calls inside the window give one cycle, one window after the last call", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const { fake, manager } = yield* makeReplica({ server, config: { debounce: "500 millis" } })
        yield* Effect.forkScoped(manager.run)
        yield* TestClock.adjust("1 millis") // the start-up cycle at 0
        for (let i = 0; i < 50; i++) {
          yield* manager.notifyDirty
          yield* TestClock.adjust("5 millis")
        }
        // last call at 1 + 49 * 5 = 246 ms; the cycle is due at 746 ms
        yield* TestClock.adjust("494 millis") // now 745: the last call was at 246, so not yet
        assert.deepStrictEqual(cycles(fake.log), ["pull@0"])
        yield* TestClock.adjust("10 seconds")
        assert.deepStrictEqual(cycles(fake.log), ["pull@0", "pull@746"])
      }))

    it.scoped("a steady stream of writes still syncs every debounceMaxWait", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const { fake, manager } = yield* makeReplica({
          server,
          config: { debounce: "500 millis", debounceMaxWait: "2 seconds" }
        })
        yield* Effect.forkScoped(manager.run)
        yield* TestClock.adjust("1 millis")
        for (let i = 0; i < 50; i++) {
          yield* manager.notifyDirty
          yield* TestClock.adjust("100 millis")
        }
        // wakes every 100 ms from 1 ms on, never quiet for 500 ms: cycles every 2 s (the wake at 2001 comes after that cycle)
        assert.deepStrictEqual(cycles(fake.log), ["pull@0", "pull@2001", "pull@4001"])
      }))

    it.scoped("an idle manager runs a cycle every pollInterval", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const { fake, manager } = yield* makeReplica({ server, config: { pollInterval: "30 seconds" } })
        yield* Effect.forkScoped(manager.run)
        yield* TestClock.adjust("95 seconds")
        assert.deepStrictEqual(cycles(fake.log), ["pull@0", "pull@30000", "pull@60000", "pull@90000"])
      }))

    it.scoped("writes made during a cycle get a cycle of their own", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const { fake, manager, store } = yield* makeReplica({ server, config: { debounce: "100 millis" } })
        yield* Effect.forkScoped(manager.run)
        yield* TestClock.adjust("1 millis")
        yield* put(store, "k", 1)
        yield* manager.notifyDirty
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(fake.log, ["pull@0", "push@101", "pull@101"])
        assert.strictEqual(yield* store.countPending("cloud"), 0)
      }))
  })
})
