import { CloudTransport, LocalStore, Status, SyncConfig, SyncManager } from "@autosync/core"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Layer, Ref, Schema, Stream, TestClock } from "effect"
import { type CycleEnd, type CycleFacts, initial, pullRule, pushRule, stalled } from "../src/internal/watchdog.js"
import { makeFake, makeReplica, put } from "./fakes.js"

const facts = (over: Partial<CycleFacts> = {}): CycleFacts => ({
  ackedBefore: 4,
  cursorBefore: 10,
  pushAnswered: false,
  latestSeq: undefined,
  ...over
})
const end = (over: Partial<CycleEnd> = {}): CycleEnd => ({ ackedAfter: 4, cursorAfter: 10, pending: true, ...over })
const run = { since: 1000, cycles: 2, why: "before" }

describe("watchdog rules", () => {
  it("push: an answered push that acked nothing extends the run; an ack or an empty queue ends it", () => {
    const answered = facts({ pushAnswered: true })
    assert.deepStrictEqual(pushRule(undefined, answered, end(), 5000)?.cycles, 1)
    assert.deepStrictEqual(pushRule(undefined, answered, end(), 5000)?.since, 5000)
    assert.deepStrictEqual(pushRule(run, answered, end(), 5000)?.cycles, 3)
    assert.deepStrictEqual(pushRule(run, answered, end(), 5000)?.since, 1000)
    assert.isUndefined(pushRule(run, answered, end({ ackedAfter: 5 }), 5000)) // progress
    assert.isUndefined(pushRule(run, answered, end({ pending: false }), 5000)) // nothing left to push
    // No answer (an outage, already a failure of its own) counts neither way.
    assert.strictEqual(pushRule(run, facts(), end(), 5000), run)
    assert.isUndefined(pushRule(undefined, facts(), end(), 5000))
  })

  it("pull: an answered pull that ends behind the log without moving extends the run; catching up or moving ends it", () => {
    const behind = facts({ latestSeq: 20 })
    assert.strictEqual(pullRule(undefined, behind, end(), 5000)?.cycles, 1)
    assert.strictEqual(pullRule(run, behind, end(), 5000)?.cycles, 3)
    assert.match(pullRule(run, behind, end(), 5000)!.why, /stays at seq 10 while the server's log is at seq 20/)
    assert.isUndefined(pullRule(run, behind, end({ cursorAfter: 12 }), 5000)) // moved
    assert.isUndefined(pullRule(run, behind, end({ cursorAfter: 20 }), 5000)) // caught up
    assert.isUndefined(pullRule(run, facts({ latestSeq: 10 }), end(), 5000)) // nothing to pull
    assert.strictEqual(pullRule(run, facts(), end(), 5000), run) // no pull answered: neither way
  })

  it("a run is a stall from stallCycles on; the watcher after watcherStallAfter; the oldest stall is shown", () => {
    const config = { stallCycles: 3, watcherStallAfter: Duration.seconds(30) }
    assert.isUndefined(stalled({ ...initial, push: run }, config, 9000))
    const push = stalled({ ...initial, push: { ...run, cycles: 3 } }, config, 9000)
    assert.deepStrictEqual(push, { kind: "push", since: new Date(1000), why: "before, 3 cycles in a row" })
    const watcher = { since: 500, error: "socket hang up" }
    assert.isUndefined(stalled({ ...initial, watcher }, config, 30_499))
    const both = stalled({ ...initial, watcher, push: { ...run, cycles: 3 } }, config, 30_500)
    assert.strictEqual(both?.kind, "watcher")
    assert.match(both!.why, /long-poll has failed for over 30s without an answer: socket hang up/)
  })
})

// The `stalled` kinds the status went through, in order, "-" for none.
const stallTrail = (manager: SyncManager.SyncManager["Type"]) =>
  Effect.gen(function*() {
    const trail = yield* Ref.make<Array<string>>([])
    yield* manager.changes.pipe(
      Stream.map((s) => s.stalled?.kind ?? "-"),
      Stream.changes,
      Stream.runForEach((kind) => Ref.update(trail, (all) => [...all, kind])),
      Effect.forkScoped
    )
    return trail
  })

const stalledAt = (status: Status.Status) =>
  status.stalled && { ...status.stalled, since: status.stalled.since.getTime() }

describe("SyncManager stall watchdog", () => {
  it.scoped("push: a server that stores the rows but answers with a short result stalls after stallCycles cycles; an ack clears it", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const { fake, manager, store } = yield* makeReplica({ server, config: { stallCycles: 3 } })
      const trail = yield* stallTrail(manager)
      yield* put(store, "k1", 1)
      yield* put(store, "k2", 2)
      fake.partial = true // every result is one seq short: the push plan refuses it, nothing is acked
      yield* Effect.forkScoped(manager.run)
      yield* TestClock.adjust("2999 millis") // cycles at 0 and 1000 (backoff 1 s, 2 s, …)
      assert.isUndefined((yield* manager.status).stalled)
      yield* TestClock.adjust("1 millis") // the third cycle, at 3000
      const status = yield* manager.status
      assert.strictEqual(status.phase, "push_failed")
      assert.strictEqual(status.stalled?.kind, "push")
      assert.strictEqual(status.stalled?.since.getTime(), 0)
      assert.match(status.stalled!.why, /answered pushes but no pending row was acked.*3 cycles in a row/)
      fake.partial = false
      yield* TestClock.adjust("4 seconds") // the retry at 7000 is acked
      const healed = yield* manager.status
      assert.strictEqual(healed.phase, "healthy")
      assert.isUndefined(healed.stalled)
      assert.strictEqual(yield* store.countPending("cloud"), 0)
      assert.deepStrictEqual(fake.log.filter((l) => l.startsWith("push")), [
        "push@0",
        "push@1000",
        "push@3000",
        "push@7000"
      ])
      assert.deepStrictEqual(yield* Ref.get(trail), ["-", "push", "-"])
    }).pipe(Effect.withRandomFixed([0.5])))

  it.scoped("push: an unreachable server is an outage, not a stall, however long it lasts", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const { fake, manager, store } = yield* makeReplica({ server, config: { stallCycles: 2 } })
      yield* put(store, "k1", 1)
      fake.down = true
      yield* Effect.forkScoped(manager.run)
      yield* TestClock.adjust("3 minutes")
      const status = yield* manager.status
      assert.isAbove(status.consecutiveFailures, 3)
      assert.isUndefined(status.stalled)
    }).pipe(Effect.withRandomFixed([0.5])))

  it.scoped("pull: a store that ignores throughSeq keeps the cursor behind the log while every cycle is healthy; a pulled row clears it", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      // A store written before `throughSeq`: it moves the cursor only to the mutations it applies,
      // so pages of this replica's own writes (left out by the server) never move it.
      const inner = yield* LocalStore.makeMemory({ clientId: "replica-a" })
      const store: LocalStore.LocalStore["Type"] = {
        ...inner,
        applyPulledMutations: (targetKey, mutations) => inner.applyPulledMutations(targetKey, mutations)
      }
      const { manager } = yield* makeReplica({ server, store, config: { stallCycles: 3, pollInterval: "30 seconds" } })
      const writer = yield* makeReplica({ server, clientId: "writer" })
      const trail = yield* stallTrail(manager)
      yield* put(store, "k1", 1)
      yield* put(store, "k2", 2)
      yield* Effect.forkScoped(manager.run)
      yield* TestClock.adjust("59999 millis") // cycles at 0 and 30000
      assert.strictEqual((yield* manager.status).phase, "healthy")
      assert.isUndefined((yield* manager.status).stalled)
      yield* TestClock.adjust("1 millis") // the third, at 60000
      const status = yield* manager.status
      assert.strictEqual(status.phase, "healthy") // what the phase alone would tell an operator
      assert.deepStrictEqual(stalledAt(status), {
        kind: "pull",
        since: 0,
        why: "the pull cursor stays at seq 0 while the server's log is at seq 2, 3 cycles in a row"
      })
      // Another replica writes: the next poll applies its row and the cursor reaches the log's end.
      yield* put(writer.store, "k3", 3)
      yield* writer.manager.syncNow
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual((yield* store.getSyncState("cloud")).lastPulledSeq, 3)
      assert.isUndefined((yield* manager.status).stalled)
      assert.deepStrictEqual(yield* Ref.get(trail), ["-", "pull", "-"])
    }))

  it.scoped("watcher: a proxy that cuts held requests stalls live sync after watcherStallAfter; an answered long-poll clears it", () =>
    Effect.gen(function*() {
      const server = yield* CloudTransport.makeMemoryServer
      const store = yield* LocalStore.makeMemory({ clientId: "replica-a" })
      yield* store.enroll("p")
      const fake = makeFake(CloudTransport.fromMemoryServer(server))
      let cutHeld = true
      // Short pulls pass; a pull held open (live sync's long-poll) is cut, as by a proxy's idle timeout.
      const transport = CloudTransport.CloudTransport.of({
        ...fake.transport,
        pull: (sinceSeq, limit, options) =>
          cutHeld && options?.wait !== undefined
            ? Effect.zipRight(
              Effect.sync(() => fake.log.push("cut")),
              new CloudTransport.TransportError({ reason: "transport_failed", status: 502, message: "socket hang up" })
            )
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
      const trail = yield* stallTrail(manager)
      yield* Effect.forkScoped(manager.run)
      yield* TestClock.adjust("29999 millis") // long-polls cut at 0, 3000, …, 27000
      assert.isUndefined((yield* manager.status).stalled)
      yield* TestClock.adjust("1 millis") // cut again at 30000: failing for 30 s
      const status = yield* manager.status
      assert.strictEqual(status.phase, "healthy") // the cycles' own pulls pass
      assert.strictEqual(status.stalled?.kind, "watcher")
      assert.strictEqual(status.stalled?.since.getTime(), 0)
      assert.match(status.stalled!.why, /failed for over 30s without an answer: socket hang up/)
      cutHeld = false
      yield* TestClock.adjust("22999 millis") // the long-poll at 33000 is held until 53000
      assert.strictEqual((yield* manager.status).stalled?.kind, "watcher")
      yield* TestClock.adjust("1 millis")
      assert.isUndefined((yield* manager.status).stalled)
      assert.deepStrictEqual(yield* Ref.get(trail), ["-", "watcher", "-"])
    }).pipe(Effect.withRandomFixed([0.5])))
})

describe("Status.stalled", () => {
  it("is encoded with an ISO date under the key stalled, and absent when there is no stall", () => {
    const encode = Schema.encodeSync(Status.Status)
    const stall = { kind: "pull" as const, since: new Date(0), why: "cursor stuck" }
    assert.deepStrictEqual(encode({ phase: "healthy", consecutiveFailures: 0, stalled: stall }), {
      phase: "healthy",
      consecutive_failures: 0,
      stalled: { kind: "pull", since: "1970-01-01T00:00:00.000Z", why: "cursor stuck" }
    })
    assert.notProperty(encode(Status.initial), "stalled")
  })
})

describe("SyncConfig stall thresholds", () => {
  it.effect("default to 5 cycles and 1 minute; nonsense is refused naming the field", () =>
    Effect.gen(function*() {
      const config = yield* SyncConfig.make({})
      assert.strictEqual(config.stallCycles, 5)
      assert.strictEqual(Duration.toMillis(config.watcherStallAfter), 60_000)
      const zero = yield* Effect.flip(SyncConfig.make({ stallCycles: 0 }))
      assert.match(String(zero), /stallCycles must be a positive integer, got 0/)
      const never = yield* Effect.flip(SyncConfig.make({ watcherStallAfter: "0 millis" }))
      assert.match(String(never), /watcherStallAfter must be a positive, finite duration/)
      const env = ConfigProvider.fromMap(
        new Map([["AUTOSYNC_STALL_CYCLES", "8"], ["AUTOSYNC_WATCHER_STALL_AFTER", "90 seconds"]]),
        { pathDelim: "_" }
      )
      const fromEnv = yield* SyncConfig.fromEnv().pipe(Effect.withConfigProvider(env))
      assert.strictEqual(fromEnv.stallCycles, 8)
      assert.strictEqual(Duration.toMillis(fromEnv.watcherStallAfter), 90_000)
    }))
})
