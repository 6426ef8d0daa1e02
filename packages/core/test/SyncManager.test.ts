import { Backoff, CloudTransport, LocalStore, Status, SyncConfig, SyncManager } from "@autosync/core"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Layer, Option, Random, Ref, Schedule, Stream, TestClock } from "effect"
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

    it.scoped("with longPollWait, a remote write is pulled at once instead of at the next poll", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const writer = yield* makeReplica({ server, clientId: "writer" })
        const { fake, manager, store } = yield* makeReplica({
          server,
          clientId: "reader",
          config: { pollInterval: "60 seconds", longPollWait: "20 seconds" }
        })
        yield* Effect.forkScoped(manager.run)
        yield* TestClock.adjust("1 seconds")
        yield* put(writer.store, "k", "remote")
        yield* writer.manager.syncNow
        yield* TestClock.adjust("1 millis")
        assert.deepStrictEqual(Option.getOrUndefined(yield* store.getDocument("p", "doc", "k")), "remote")
        // applied at 1000 ms, not at the 60 s poll, from the page the watcher brought (no second
        // request); the watcher's own pulls are held for 20 s each
        assert.deepStrictEqual(cycles(fake.log), ["pull@0"])
        yield* TestClock.adjust("59 seconds")
        assert.isAtMost(fake.pulls.length, 10)
      }))

    it.scoped("live: a cycle woken by a local write only pushes; news, syncNow and the poll interval pull", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const other = yield* makeReplica({ server, clientId: "other" })
        const { fake, manager, store } = yield* makeReplica({
          server,
          clientId: "me",
          config: { debounce: "100 millis", pollInterval: "60 seconds", longPollWait: "20 seconds" }
        })
        yield* Effect.forkScoped(manager.run)
        yield* TestClock.adjust("1 seconds")
        assert.deepStrictEqual(cycles(fake.log), ["pull@0"]) // the first cycle pulls
        yield* put(store, "k", 1)
        yield* manager.notifyDirty
        yield* TestClock.adjust("1 seconds")
        assert.deepStrictEqual(server.log().map((m) => m.entityKey), ["k"]) // pushed at 1100…
        assert.deepStrictEqual(cycles(fake.log), ["pull@0"]) // …without a pull
        // Another replica writes: the watcher brings the page, the cycle applies it as it is.
        yield* put(other.store, "j", "theirs")
        yield* other.manager.syncNow
        yield* TestClock.adjust("1 millis")
        assert.deepStrictEqual(Option.getOrUndefined(yield* store.getDocument("p", "doc", "j")), "theirs")
        assert.deepStrictEqual(cycles(fake.log), ["pull@0"])
        yield* manager.syncNow
        assert.deepStrictEqual(cycles(fake.log), ["pull@0", "pull@2001"])
        // Local writes keep coming, but a poll interval after the last pull, a cycle pulls anyway.
        for (let i = 0; i < 62; i++) {
          yield* put(store, `w${i}`, i)
          yield* manager.notifyDirty
          yield* TestClock.adjust("1 seconds")
        }
        assert.deepStrictEqual(cycles(fake.log).length, 3)
        assert.isAtLeast(Number(cycles(fake.log)[2].slice(5)), 62_001)
      }))

    it.scoped("a replica's own writes are not pulled back; its cursor moves past them to the log's end", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const other = yield* makeReplica({ server, clientId: "other" })
        const { fake, manager, store } = yield* makeReplica({ server, clientId: "me" })
        yield* put(store, "k1", 1)
        yield* put(store, "k2", 2)
        yield* manager.syncNow // pushes 1, 2; pulls nothing
        yield* put(other.store, "j", "theirs")
        yield* other.manager.syncNow // 3
        yield* put(store, "k3", 3)
        yield* manager.syncNow // pushes 4; pulls 3 only
        yield* manager.syncNow
        assert.deepStrictEqual(fake.pulls, [0, 2, 4])
        assert.strictEqual((yield* store.getSyncState("cloud")).lastPulledSeq, 4)
        assert.deepStrictEqual(Option.getOrUndefined(yield* store.getDocument("p", "doc", "j")), "theirs")
        assert.deepStrictEqual(server.log().map((m) => m.seq), [1, 2, 3, 4])
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

  describe("lease", () => {
    it.scoped("a second manager does not push while the first holds the lease, and takes over after it expires", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const first = yield* makeReplica({ server, config: { leaseOwner: "w1", leaseInterval: "60 seconds" } })
        const second = yield* makeReplica({
          server,
          store: first.store,
          enroll: [],
          config: { leaseOwner: "w2", leaseInterval: "60 seconds" }
        })
        yield* first.manager.syncNow // takes the lease until 60 s
        yield* put(first.store, "k", 1)
        yield* TestClock.adjust("30 seconds")
        yield* second.manager.syncNow
        assert.deepStrictEqual(second.fake.log, [])
        assert.strictEqual(yield* first.store.countPending("cloud"), 1)
        yield* TestClock.adjust("31 seconds") // 61 s: the first lease expired
        yield* second.manager.syncNow
        assert.deepStrictEqual(second.fake.log, ["push@61000", "pull@61000"])
        assert.strictEqual((yield* first.store.getSyncState("cloud")).leaseOwner, "w2")
        yield* first.manager.syncNow // now the first one is shut out
        assert.deepStrictEqual(first.fake.log, ["pull@0"])
      }))

    it.scoped("the lease is released when run ends, and a stopped manager can run again", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const { manager, store, fake } = yield* makeReplica({ server })
        const fiber = yield* Effect.fork(manager.run)
        yield* TestClock.adjust("1 millis")
        assert.strictEqual((yield* store.getSyncState("cloud")).leaseOwner, "w1")
        yield* manager.stop
        assert.isTrue(Exit.isSuccess(yield* Fiber.await(fiber)))
        assert.strictEqual((yield* store.getSyncState("cloud")).leaseOwner, undefined)
        yield* Effect.forkScoped(manager.run)
        yield* TestClock.adjust("1 millis")
        assert.deepStrictEqual(cycles(fake.log), ["pull@0", "pull@1"])
      }))

    it.scoped("a second concurrent run returns at once; stop before run returns", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const { manager } = yield* makeReplica({ server })
        yield* manager.stop
        yield* Effect.forkScoped(manager.run)
        yield* TestClock.adjust("1 millis")
        yield* manager.run // would hang forever without the re-entry guard
        yield* manager.stop
      }))
  })

  describe("push", () => {
    it.scoped("groups rows by project in journal order, in batches of at most pushBatchSize", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const { manager, store, fake } = yield* makeReplica({
          server,
          enroll: ["a", "b"],
          config: { pushBatchSize: 3 }
        })
        for (let i = 1; i <= 7; i++) yield* put(store, `k${i}`, i, i % 2 === 1 ? "a" : "b")
        yield* manager.syncNow
        const batches = fake.batches.map((b) => [b.mutations[0].project, b.mutations.map((m) => m.clientSeq)])
        assert.deepStrictEqual(batches, [["a", [1, 3]], ["b", [2]], ["b", [4, 6]], ["a", [5]], ["a", [7]]])
        assert.strictEqual(yield* store.countPending("cloud"), 0)
        assert.deepStrictEqual(server.log().map((m) => m.entityKey), ["k1", "k3", "k2", "k4", "k6", "k5", "k7"])
      }))

    it.scoped("a partial result acks nothing and is a failure; the retry stores nothing twice", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const { manager, store, fake } = yield* makeReplica({ server })
        yield* put(store, "k1", 1)
        yield* put(store, "k2", 2)
        fake.partial = true
        const failed = yield* manager.syncNow
        assert.strictEqual(failed.phase, "push_failed")
        assert.strictEqual(failed.reasonCode, "transport_failed")
        assert.match(failed.lastError!, /accepted 1 seqs for 2 pushed rows/)
        assert.strictEqual(yield* store.countPending("cloud"), 2)
        fake.partial = false
        const healed = yield* manager.syncNow
        assert.strictEqual(healed.phase, "healthy")
        assert.strictEqual(yield* store.countPending("cloud"), 0)
        assert.strictEqual(server.log().length, 2)
      }))

    it.scoped("one project's refusal does not stop the others; the most specific reason wins", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const { manager, store } = yield* makeReplica({ server, enroll: ["a", "b"], allowedProjects: ["b"] })
        yield* put(store, "k1", 1, "a")
        yield* put(store, "k2", 2, "b")
        const status = yield* manager.syncNow
        assert.strictEqual(status.phase, "push_failed")
        assert.strictEqual(status.reasonCode, "policy_forbidden")
        assert.deepStrictEqual(server.log().map((m) => m.project), ["b"])
        const pending = yield* store.listPendingMutations("cloud", 10)
        assert.deepStrictEqual(pending.map((m) => m.entityKey), ["k1"])
      }))

    it.scoped("non-enrolled pending rows stay pending and do not block pulls", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const other = yield* makeReplica({ server, clientId: "other" })
        yield* put(other.store, "remote", "r")
        yield* other.manager.syncNow
        const { manager, store } = yield* makeReplica({ server, enroll: ["p"] })
        yield* put(store, "local", "l", "unenrolled")
        const status = yield* manager.syncNow
        assert.strictEqual(status.phase, "healthy")
        assert.strictEqual(status.reasonCode, "non_enrolled_pending")
        assert.strictEqual(yield* store.countPending("cloud"), 1)
        assert.deepStrictEqual(Option.getOrUndefined(yield* store.getDocument("p", "doc", "remote")), "r")
        assert.strictEqual(server.log().length, 1)
      }))
  })

  describe("pull", () => {
    it.scoped("pages until has_more is false, the cursor persisted after each applied mutation", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const other = yield* makeReplica({ server, clientId: "other" })
        for (let i = 1; i <= 25; i++) yield* put(other.store, `k${i}`, i)
        yield* other.manager.syncNow
        const store = yield* LocalStore.makeMemory({ clientId: "me" })
        let failures = 0
        // The disk fills up at seq 15, once: the store keeps 11..14 applied and reports the error.
        const failing = LocalStore.LocalStore.of({
          ...store,
          applyPulledMutations: (target, ms, options) => {
            const at = ms.findIndex((m) => m.seq === 15)
            if (at < 0 || failures++ > 0) return store.applyPulledMutations(target, ms, options)
            return Effect.zipRight(
              store.applyPulledMutations(target, ms.slice(0, at)),
              Effect.fail(new LocalStore.LocalStoreError({ reason: "storage", message: "disk full" }))
            )
          }
        })
        const { manager, fake } = yield* makeReplica({ server, store: failing, config: { pullBatchSize: 10 } })
        const failed = yield* manager.syncNow
        assert.strictEqual(failed.phase, "pull_failed")
        assert.strictEqual(failed.reasonCode, "internal_error")
        assert.strictEqual((yield* store.getSyncState("cloud")).lastPulledSeq, 14)
        const healed = yield* manager.syncNow
        assert.strictEqual(healed.phase, "healthy")
        assert.deepStrictEqual(fake.pulls, [0, 10, 14, 24])
        assert.strictEqual((yield* store.getSyncState("cloud")).lastPulledSeq, 25)
        assert.strictEqual((yield* store.listDocuments("p")).length, 25)
      }))

    it.scoped("a page with has_more that does not advance is a failure, not a hot loop", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const { manager, fake } = yield* makeReplica({ server })
        fake.stuckPage = true
        const status = yield* manager.syncNow
        assert.strictEqual(status.phase, "pull_failed")
        assert.strictEqual(status.reasonCode, "transport_failed")
        assert.deepStrictEqual(fake.pulls, [0])
      }))
  })

  describe("failures and backoff", () => {
    it.scoped("backs off 1s, 2s, 4s then recovers, with the reason code of the failure", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const { manager, store, fake } = yield* makeReplica({ server, config: { debounce: "500 millis" } })
        yield* Effect.forkScoped(manager.run)
        yield* TestClock.adjust("1 millis")
        yield* put(store, "k", 1)
        fake.failPush = 3
        fake.error = new CloudTransport.TransportError({ reason: "auth_required", status: 401, message: "bad token" })
        yield* manager.notifyDirty
        yield* TestClock.adjust("600 millis")
        const first = yield* manager.status
        assert.strictEqual(first.phase, "push_failed")
        assert.strictEqual(first.reasonCode, "auth_required")
        assert.strictEqual(first.consecutiveFailures, 1)
        assert.strictEqual(first.backoffUntil!.getTime(), 1501)
        const persisted = yield* store.getSyncState("cloud")
        assert.strictEqual(persisted.consecutiveFailures, 1)
        assert.strictEqual(persisted.backoffUntil!.getTime(), 1501)
        yield* manager.notifyDirty // a wake does not shorten the backoff
        yield* TestClock.adjust("10 seconds")
        assert.deepStrictEqual(fake.log.filter((l) => l.startsWith("push")), [
          "push@501",
          "push@1501",
          "push@3501",
          "push@7501"
        ])
        const healed = yield* manager.status
        assert.strictEqual(healed.phase, "healthy")
        assert.strictEqual(healed.consecutiveFailures, 0)
        assert.strictEqual(healed.reasonCode, undefined)
        assert.strictEqual((yield* store.getSyncState("cloud")).consecutiveFailures, 0)
      }).pipe(Effect.withRandomFixed([0.5])))

    it.scoped("policy and transport failures set their own reason codes; pull failures set pull_failed", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const { manager, store, fake } = yield* makeReplica({ server })
        yield* put(store, "k", 1)
        fake.failPush = 1
        fake.error = new CloudTransport.TransportError({ reason: "policy_forbidden", status: 403, message: "no" })
        assert.strictEqual((yield* manager.syncNow).reasonCode, "policy_forbidden")
        fake.failPull = 1
        fake.error = new CloudTransport.TransportError({ reason: "transport_failed", message: "connection reset" })
        const status = yield* manager.syncNow
        assert.strictEqual(status.phase, "pull_failed")
        assert.strictEqual(status.reasonCode, "transport_failed")
        assert.strictEqual(status.consecutiveFailures, 2)
      }).pipe(Effect.withRandomFixed([0.5])))

    it.scoped("after maxConsecutiveFailures the phase is backoff, and it keeps retrying at each deadline", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const { manager, fake } = yield* makeReplica({
          server,
          config: { maxConsecutiveFailures: 3, baseBackoff: "1 second", maxBackoff: "4 seconds" }
        })
        fake.failPull = 1_000
        yield* Effect.forkScoped(manager.run)
        yield* TestClock.adjust("1 millis")
        assert.strictEqual((yield* manager.status).phase, "pull_failed")
        yield* TestClock.adjust("3 seconds") // failures at 0, 1000, 3000
        const status = yield* manager.status
        assert.strictEqual(status.phase, "backoff")
        assert.strictEqual(status.consecutiveFailures, 3)
        yield* TestClock.adjust("20 seconds") // then every 4 s (the cap): 7000, 11000, 15000, 19000, 23000
        assert.deepStrictEqual(
          cycles(fake.log),
          [0, 1000, 3000, 7000, 11000, 15000, 19000, 23000].map((t) => `pull@${t}`)
        )
        fake.failPull = 0
        yield* TestClock.adjust("4 seconds")
        assert.strictEqual((yield* manager.status).phase, "healthy")
      }).pipe(Effect.withRandomFixed([0.5])))

    it.scoped("a defect inside a cycle sets backoff/internal_error and the loop keeps running", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const { manager, store, fake } = yield* makeReplica({ server })
        yield* put(store, "k", 1)
        fake.diePush = 1
        yield* Effect.forkScoped(manager.run)
        yield* TestClock.adjust("1 millis")
        const status = yield* manager.status
        assert.strictEqual(status.phase, "backoff")
        assert.strictEqual(status.reasonCode, "internal_error")
        assert.match(status.lastError!, /boom in push/)
        yield* TestClock.adjust("2 seconds")
        assert.strictEqual((yield* manager.status).phase, "healthy")
        assert.strictEqual(yield* store.countPending("cloud"), 0)
      }).pipe(Effect.withRandomFixed([0.5])))

    it.scoped("a restarted manager honours the backoff deadline its predecessor persisted", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const first = yield* makeReplica({ server })
        first.fake.failPull = 1
        yield* first.manager.syncNow // fails at 0, retry at 1000
        const second = yield* makeReplica({ server, store: first.store, enroll: [] })
        yield* Effect.forkScoped(second.manager.run)
        yield* TestClock.adjust("1 millis")
        assert.strictEqual((yield* second.manager.status).phase, "backoff")
        assert.deepStrictEqual(second.fake.log, [])
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(second.fake.log, ["pull@1000"])
      }).pipe(Effect.withRandomFixed([0.5])))
  })

  describe("upgrade pause", () => {
    it.scoped("stopForUpgrade prevents cycles and keeps renewing the lease; resumeAfterUpgrade wakes it", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const { manager, store, fake } = yield* makeReplica({
          server,
          config: { leaseInterval: "10 seconds", pollInterval: "30 seconds", debounce: "100 millis" }
        })
        yield* Effect.forkScoped(manager.run)
        yield* TestClock.adjust("1 millis")
        yield* manager.stopForUpgrade("p")
        const paused = yield* manager.status
        assert.strictEqual(paused.phase, "disabled")
        assert.strictEqual(paused.reasonCode, "paused")
        yield* put(store, "k", 1)
        yield* manager.notifyDirty
        yield* TestClock.adjust("60 seconds")
        assert.deepStrictEqual(fake.log, ["pull@0"])
        // renewed every 5 s: another owner cannot take it, even long after the first ttl
        assert.isFalse(yield* store.acquireLease("cloud", "intruder", "10 seconds", new Date(60_001)))
        assert.strictEqual((yield* store.getSyncState("cloud")).leaseOwner, "w1")
        yield* manager.resumeAfterUpgrade("p")
        assert.strictEqual((yield* manager.status).phase, "idle")
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(fake.log, ["pull@0", "push@60101", "pull@60101"])
        yield* manager.resumeAfterUpgrade("p") // a no-op when not disabled
        assert.strictEqual((yield* manager.status).phase, "healthy")
      }))

    it.effect("both reject an empty project", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const { manager } = yield* makeReplica({ server })
        const stop = yield* Effect.flip(manager.stopForUpgrade(""))
        const resume = yield* Effect.flip(manager.resumeAfterUpgrade("  "))
        assert.strictEqual(stop._tag, "UpgradeError")
        assert.strictEqual(resume._tag, "UpgradeError")
        assert.strictEqual((yield* manager.status).phase, "idle")
      }))
  })

  describe("status", () => {
    it.scoped("changes emits every phase transition in order", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const { manager, store, fake } = yield* makeReplica({ server })
        const seen = yield* Ref.make<Array<Status.Phase>>([])
        yield* manager.changes.pipe(
          Stream.runForEach((s) => Ref.update(seen, (all) => [...all, s.phase])),
          Effect.forkScoped
        )
        yield* TestClock.adjust("1 millis")
        yield* put(store, "k", 1)
        yield* manager.syncNow
        fake.failPush = 1
        yield* put(store, "k", 2)
        yield* manager.syncNow
        yield* manager.stopForUpgrade("p")
        yield* manager.resumeAfterUpgrade("p")
        yield* TestClock.adjust("1 millis")
        assert.deepStrictEqual(yield* Ref.get(seen), [
          "idle",
          "pushing",
          "pulling",
          "healthy",
          "pushing",
          "push_failed",
          "disabled",
          "idle"
        ])
      }).pipe(Effect.withRandomFixed([0.5])))
  })

  describe("convergence", () => {
    it.effect("two replicas through one memory server converge to the log replayed in seq order", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const a = yield* makeReplica({ server, clientId: "a" })
        const b = yield* makeReplica({ server, clientId: "b" })
        for (let round = 0; round < 5; round++) {
          for (let k = 0; k < 4; k++) {
            yield* put(a.store, `k${k}`, `a${round}`)
            yield* put(b.store, `k${(k + round) % 4}`, `b${round}`)
          }
          if (round === 2) {
            yield* a.store.appendLocal("cloud", [{
              project: "p",
              entity: "doc",
              entityKey: "k1",
              op: "delete",
              payload: null
            }])
          }
          yield* (round % 2 === 0 ? a : b).manager.syncNow
        }
        for (let i = 0; i < 2; i++) {
          yield* a.manager.syncNow
          yield* b.manager.syncNow
        }
        const expected = replay(server.log())
        assert.deepStrictEqual(yield* documentsOf(a.store, ["p"]), expected)
        assert.deepStrictEqual(yield* documentsOf(b.store, ["p"]), expected)
        assert.strictEqual(yield* a.store.countPending("cloud"), 0)
        assert.strictEqual(yield* b.store.countPending("cloud"), 0)
      }))
  })

  describe("layer", () => {
    it.effect("runs in the layer's scope and releases the lease when the scope closes", () =>
      Effect.gen(function*() {
        const store = yield* LocalStore.makeMemory({ clientId: "x" })
        const config = yield* SyncConfig.make({ leaseOwner: "layered" })
        const layer = SyncManager.layer(config).pipe(
          Layer.provide(Layer.mergeAll(Layer.succeed(LocalStore.LocalStore, store), CloudTransport.layerMemory))
        )
        yield* Effect.scoped(Effect.gen(function*() {
          yield* Layer.build(layer)
          yield* TestClock.adjust("1 millis")
          assert.strictEqual((yield* store.getSyncState("cloud")).leaseOwner, "layered")
        }))
        assert.strictEqual((yield* store.getSyncState("cloud")).leaseOwner, undefined)
      }))
  })
})

describe("SyncManager recovery", () => {
  it.scoped("after an outage it cycles within 5 s of the server's return, whatever its backoff; while down it probes at a bounded rate", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const { fake, manager, store } = yield* makeReplica({
        server,
        config: { baseBackoff: "1 second", maxBackoff: "5 minutes", maxConsecutiveFailures: 100 }
      })
      yield* put(store, "k", 1)
      fake.down = true
      yield* Effect.forkScoped(manager.run)
      yield* TestClock.adjust("10 minutes")
      // Wait for a moment when the retry deadline is far away (the backoff has grown to minutes).
      let far = false
      for (let i = 0; i < 100 && !far; i++) {
        const status = yield* manager.status
        far = status.backoffUntil!.getTime() - (yield* TestClock.currentTimeMillis) > 120_000
        if (!far) yield* TestClock.adjust("5 seconds")
      }
      assert.isTrue(far)
      const downFor = yield* TestClock.currentTimeMillis
      // While down: one probe at a time, never two closer than 2.4 s (3 s − 20 % jitter).
      const probeTimes = fake.probes.map((p) => Number(p.split("@")[1]))
      assert.isAbove(probeTimes.length, 10)
      for (let i = 1; i < probeTimes.length; i++) assert.isAtLeast(probeTimes[i] - probeTimes[i - 1], 2400)
      assert.isAtMost(probeTimes.length, Math.ceil(downFor / 2400))
      assert.strictEqual((yield* manager.status).reasonCode, "transport_failed")

      fake.down = false
      const back = yield* TestClock.currentTimeMillis
      yield* TestClock.adjust("5 seconds")
      const status = yield* manager.status
      assert.strictEqual(status.phase, "healthy")
      assert.strictEqual(yield* store.countPending("cloud"), 0)
      const pushedAt = fake.log.filter((l) => l.startsWith("push@")).map((l) => Number(l.split("@")[1]))
      assert.isAtMost(pushedAt[pushedAt.length - 1] - back, 5000)
      assert.strictEqual(server.log().length, 1)
    }).pipe(Effect.withRandom(Random.make(42))))

  it.scoped("auth and identity failures are not short-circuited by the probe: they wait out their deadline", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const { fake, manager, store } = yield* makeReplica({ server, config: { maxBackoff: "5 minutes" } })
      yield* put(store, "k", 1)
      fake.failPush = 1_000
      fake.error = new CloudTransport.TransportError({ reason: "auth_required", status: 401, message: "bad token" })
      yield* Effect.forkScoped(manager.run)
      yield* TestClock.adjust("10 minutes")
      assert.deepStrictEqual(fake.probes, [])
      assert.strictEqual((yield* manager.status).reasonCode, "auth_required")
    }).pipe(Effect.withRandom(Random.make(7))))

  it.scoped("a cycle the probe woke that fails again waits out its backoff: at most one extra cycle per period", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const { fake, manager, store } = yield* makeReplica({
        server,
        config: { baseBackoff: "10 seconds", maxBackoff: "80 seconds", maxConsecutiveFailures: 100 }
      })
      yield* put(store, "k", 1)
      // Health answers, sync does not (no status: it looks unreachable).
      fake.failPush = 1_000
      fake.error = new CloudTransport.TransportError({ reason: "transport_failed", message: "socket hang up" })
      yield* Effect.forkScoped(manager.run)
      yield* TestClock.adjust("10 minutes")
      const pushes = fake.log.filter((l) => l.startsWith("push@")).length
      // Plain backoff alone: 10, 20, 40, 80, 80, … ≈ 10 cycles in 10 minutes; the probe may at
      // most double that, never a cycle every probe interval (≈ 200).
      assert.isAtMost(pushes, 25)
    }).pipe(Effect.withRandomFixed([0.5])))

  it.scoped("a persisted deadline is honoured only by a transport of the same identity", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const first = yield* makeReplica({
        server,
        identity: "http://a/ token:1111",
        config: { maxBackoff: "5 minutes" }
      })
      first.fake.failPull = 8
      first.fake.error = new CloudTransport.TransportError({
        reason: "auth_required",
        status: 401,
        message: "bad token"
      })
      for (let i = 0; i < 8; i++) yield* first.manager.syncNow // a deadline minutes away
      first.fake.failPull = 0
      const persisted = yield* first.store.getSyncState("cloud")
      assert.strictEqual(persisted.transportIdentity, "http://a/ token:1111")
      assert.isAbove(persisted.backoffUntil!.getTime(), 60_000)

      // The same server and token: the deadline holds.
      const same = yield* makeReplica({ server, store: first.store, enroll: [], identity: "http://a/ token:1111" })
      const sameRun = yield* Effect.forkScoped(same.manager.run)
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual(same.fake.log, [])
      assert.strictEqual((yield* same.manager.status).reasonCode, "auth_required")
      yield* same.manager.stop
      yield* Fiber.join(sameRun)

      // Another token: it retries at once and does not quote the old error.
      const fixed = yield* makeReplica({ server, store: first.store, enroll: [], identity: "http://a/ token:2222" })
      yield* Effect.forkScoped(fixed.manager.run)
      yield* TestClock.adjust("1 second")
      assert.isAbove(fixed.fake.log.length, 0)
      const status = yield* fixed.manager.status
      assert.strictEqual(status.phase, "healthy")
      assert.strictEqual(status.lastError, undefined)
      assert.strictEqual((yield* first.store.getSyncState("cloud")).consecutiveFailures, 0)
    }).pipe(Effect.withRandomFixed([0.5])))
})

describe("SyncManager identity conflicts", () => {
  it.scoped("a copied replica gets identity_conflict with the fix; after reidentify both converge", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const original = yield* makeReplica({ server, clientId: "twin" })
      const copy = yield* makeReplica({ server, clientId: "twin" })
      yield* put(original.store, "a", "from the original")
      assert.strictEqual((yield* original.manager.syncNow).phase, "healthy")
      yield* put(copy.store, "b", "from the copy") // the same journal seq 1, other content
      const conflict = yield* copy.manager.syncNow
      assert.strictEqual(conflict.phase, "push_failed")
      assert.strictEqual(conflict.reasonCode, "identity_conflict")
      assert.match(conflict.reasonMessage!, /copied or shares its identity.*autosync reidentify --db FILE/)

      const renamed = yield* copy.store.reidentify
      assert.strictEqual(renamed.previousClientId, "twin")
      assert.notStrictEqual(renamed.clientId, "twin")
      assert.strictEqual(renamed.pending, 1)
      assert.strictEqual(copy.store.clientId, renamed.clientId)
      assert.strictEqual((yield* copy.manager.syncNow).phase, "healthy")
      assert.strictEqual((yield* original.manager.syncNow).phase, "healthy")
      const expected = replay(server.log())
      assert.deepStrictEqual(yield* documentsOf(original.store, ["p"]), expected)
      assert.deepStrictEqual(yield* documentsOf(copy.store, ["p"]), expected)
      assert.strictEqual(expected.size, 2)
    }).pipe(Effect.withRandomFixed([0.5])))
})

describe("SyncManager pull pages that overlap the cursor", () => {
  it.scoped("seqs at or below the cursor are skipped and the rest applied", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const writer = yield* makeReplica({ server, clientId: "writer" })
      for (let i = 0; i < 5; i++) yield* put(writer.store, `k${i}`, i)
      yield* writer.manager.syncNow
      const reader = yield* makeReplica({ server, clientId: "reader", config: { pullBatchSize: 2 } })
      reader.fake.resendBoundary = true
      const status = yield* reader.manager.syncNow
      assert.strictEqual(status.phase, "healthy")
      assert.deepStrictEqual(yield* documentsOf(reader.store, ["p"]), replay(server.log()))
      assert.strictEqual((yield* reader.store.getSyncState("cloud")).lastPulledSeq, 5)
    }).pipe(Effect.withRandomFixed([0.5])))

  it.scoped("a page with has_more that brings nothing after the cursor is still a failure, not a hot loop", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const writer = yield* makeReplica({ server, clientId: "writer" })
      for (let i = 0; i < 3; i++) yield* put(writer.store, `k${i}`, i)
      yield* writer.manager.syncNow
      const reader = yield* makeReplica({ server, clientId: "reader", config: { pullBatchSize: 1 } })
      reader.fake.resendBoundary = true // each page is the boundary seq alone
      const status = yield* reader.manager.syncNow
      assert.strictEqual(status.phase, "pull_failed")
      assert.strictEqual(status.reasonCode, "transport_failed")
      assert.match(status.lastError!, /has_more/)
      assert.deepStrictEqual(reader.fake.pulls, [0, 1])
    }).pipe(Effect.withRandomFixed([0.5])))
})

describe("SyncManager recovery after a restart", () => {
  it.scoped("a restarted manager whose predecessor persisted a far deadline after an outage probes and resumes at the return", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const first = yield* makeReplica({ server, config: { maxBackoff: "5 minutes", maxConsecutiveFailures: 100 } })
      yield* put(first.store, "k", 1)
      first.fake.down = true
      for (let i = 0; i < 9; i++) yield* first.manager.syncNow // a deadline minutes away
      const persisted = yield* first.store.getSyncState("cloud")
      assert.strictEqual(persisted.reasonCode, "transport_failed")
      assert.isAbove(persisted.backoffUntil!.getTime(), 120_000)

      const second = yield* makeReplica({ server, store: first.store, enroll: [], config: { maxBackoff: "5 minutes" } })
      second.fake.down = true
      yield* Effect.forkScoped(second.manager.run)
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual((yield* second.manager.status).phase, "backoff")
      assert.isAbove(second.fake.probes.length, 0)
      assert.deepStrictEqual(second.fake.log, []) // probes only, no cycle while down
      second.fake.down = false
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual((yield* second.manager.status).phase, "healthy")
      assert.strictEqual(yield* first.store.countPending("cloud"), 0)
    }).pipe(Effect.withRandom(Random.make(3))))
})

describe("SyncManager schedules", () => {
  it.scoped("a restarted manager continues the backoff sequence from the persisted failure count", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const first = yield* makeReplica({ server })
      first.fake.failPull = 3
      // A refusal: the restarted manager waits out the deadline (no health probe cuts it short).
      first.fake.error = new CloudTransport.TransportError({
        reason: "auth_required",
        status: 401,
        message: "bad token"
      })
      for (let i = 0; i < 3; i++) yield* first.manager.syncNow // failures 1, 2, 3 at 0: retry at 0 + 4 s
      assert.strictEqual((yield* first.store.getSyncState("cloud")).backoffUntil?.getTime(), 4000)
      const second = yield* makeReplica({ server, store: first.store, enroll: [] })
      second.fake.failPull = 1
      yield* Effect.forkScoped(second.manager.run)
      yield* TestClock.adjust("4 seconds") // failure 4 at 4 s: its delay is 8 s, not the first failure's 1 s
      assert.strictEqual((yield* second.manager.status).consecutiveFailures, 4)
      assert.strictEqual((yield* second.manager.status).backoffUntil?.getTime(), 12_000)
      yield* TestClock.adjust("9 seconds")
      assert.deepStrictEqual(cycles(second.fake.log), ["pull@4000", "pull@12000"])
      assert.strictEqual((yield* second.manager.status).phase, "healthy")
    }).pipe(Effect.withRandomFixed([0.5])))

  it.scoped("a failure streak's deadlines are the successive steps of one Backoff.schedule, jitter and all", () =>
    Effect.gen(function*() {
      const options = { base: "1 second", max: "20 seconds" } as const
      const server = yield* CloudTransport.makeMemoryServer
      const { fake, manager } = yield* makeReplica({
        server,
        config: { baseBackoff: options.base, maxBackoff: options.max, maxConsecutiveFailures: 100 }
      })
      fake.failPull = 8
      fake.error = new CloudTransport.TransportError({ reason: "auth_required", status: 401, message: "bad token" })
      const seed = "streak"
      const deadlines = yield* Effect.forEach(
        Array.from({ length: 8 }),
        () => Effect.map(manager.syncNow, (s) => s.backoffUntil!.getTime())
      ).pipe(Effect.withRandom(Random.make(seed)))
      const delays = yield* Schedule.run(Schedule.delays(Backoff.schedule(options)), 0, Array.from({ length: 8 })).pipe(
        Effect.withRandom(Random.make(seed))
      )
      assert.deepStrictEqual(deadlines, [...delays].map(Duration.toMillis)) // every syncNow at 0
      // A success ends the streak: the next failure starts over at the first delay.
      assert.strictEqual((yield* manager.syncNow).phase, "healthy")
      fake.failPull = 1
      assert.strictEqual((yield* Effect.withRandomFixed(manager.syncNow, [0.5])).backoffUntil!.getTime(), 1000)
    }))

  it.scoped("the poll comes a poll interval after the last cycle, whatever woke that cycle", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const { fake, manager } = yield* makeReplica({
        server,
        config: { pollInterval: "30 seconds", debounce: "100 millis" }
      })
      yield* Effect.forkScoped(manager.run)
      yield* TestClock.adjust("10 seconds")
      yield* manager.notifyDirty // a cycle at 10.1 s puts the poll off to 40.1 s
      yield* TestClock.adjust("70 seconds")
      assert.deepStrictEqual(cycles(fake.log), ["pull@0", "pull@10100", "pull@40100", "pull@70100"])
    }))

  it.scoped("the live-sync watcher reconnects max(baseBackoff, probeInterval) after each failed long-poll", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const { fake, manager } = yield* makeReplica({
        server,
        config: { pollInterval: "60 seconds", longPollWait: "20 seconds" }
      })
      yield* Effect.forkScoped(manager.run)
      yield* TestClock.adjust("1 millis")
      fake.failPull = 2 // the next two long-polls fail; the watcher's first one is held until 20 s
      yield* TestClock.adjust("30 seconds")
      assert.deepStrictEqual(fake.log.filter((l) => l.startsWith("watch@")), [
        "watch@0",
        "watch@20000",
        "watch@23000",
        "watch@26000"
      ])
    }).pipe(Effect.withRandomFixed([0.5])))

  it.scoped("interrupting run (not stop) also ends the loop and releases the lease; run can start again", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const { fake, manager, store } = yield* makeReplica({ server, config: { pollInterval: "30 seconds" } })
      const fiber = yield* Effect.fork(manager.run)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual((yield* store.getSyncState("cloud")).leaseOwner, "w1")
      yield* Fiber.interrupt(fiber)
      assert.strictEqual((yield* store.getSyncState("cloud")).leaseOwner, undefined)
      yield* TestClock.adjust("60 seconds") // no poll: the loop is gone
      assert.deepStrictEqual(cycles(fake.log), ["pull@0"])
      yield* Effect.forkScoped(manager.run)
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(cycles(fake.log), ["pull@0", "pull@60001"])
    }))
})
