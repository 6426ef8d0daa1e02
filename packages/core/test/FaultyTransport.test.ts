import { CloudTransport, LocalStore, Mutation, SyncConfig, SyncManager } from "@autosync/core"
import { FaultyTransport } from "@autosync/core/testing"
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Option, Random, Ref, TestClock } from "effect"
import { put } from "./fakes.js"

const batch = (clientSeq: number, clientId = "c"): Mutation.PushBatch => ({
  clientId,
  mutations: [{ clientSeq, project: "p", entity: "doc", entityKey: `k${clientSeq}`, op: "upsert", payload: clientSeq }]
})

/** A memory server and a faulty transport over it. */
const setup = (options: FaultyTransport.Options) =>
  Effect.gen(function*() {
    const server = yield* CloudTransport.makeMemoryServer
    const faulty = yield* FaultyTransport.wrap(CloudTransport.fromMemoryServer(server), options)
    return { server, faulty, transport: faulty.transport }
  })

const failure = <A>(exit: Exit.Exit<A, CloudTransport.TransportError>) => {
  assert.isTrue(Exit.isFailure(exit), "expected a failure")
  return Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined
}

const errorOf = <A>(effect: Effect.Effect<A, CloudTransport.TransportError>) =>
  Effect.flip(effect).pipe(Effect.map((e) => ({ reason: e.reason, status: e.status })))

describe("FaultyTransport", () => {
  describe("pick", () => {
    it("lays the exclusive probabilities end to end in a fixed order", () => {
      const p = { dropRequest: 0.125, duplicate: 0.25, timeout: 0.25, delay: 0.9 } // exact in binary
      assert.strictEqual(FaultyTransport.pick(p, 0), "dropRequest")
      assert.strictEqual(FaultyTransport.pick(p, 0.124), "dropRequest")
      assert.strictEqual(FaultyTransport.pick(p, 0.125), "duplicate")
      assert.strictEqual(FaultyTransport.pick(p, 0.374), "duplicate")
      assert.strictEqual(FaultyTransport.pick(p, 0.375), "timeout")
      assert.strictEqual(FaultyTransport.pick(p, 0.624), "timeout")
      assert.strictEqual(FaultyTransport.pick(p, 0.625), undefined) // delay is not exclusive
      assert.strictEqual(FaultyTransport.pick({}, 0), undefined)
      assert.strictEqual(FaultyTransport.pick({ forbidden: 1 }, 0.999), "forbidden")
    })
  })

  describe("each fault does what it says", () => {
    it.effect("no probabilities: a transparent wrapper", () =>
      Effect.gen(function*() {
        const { faulty, server, transport } = yield* setup({ seed: 1 })
        assert.deepStrictEqual(yield* transport.push(batch(1)), { acceptedSeqs: [1] })
        assert.deepStrictEqual((yield* transport.pull(0, 10)).mutations.map((m) => m.seq), [1])
        assert.strictEqual(server.log().length, 1)
        const counts = yield* faulty.counts
        assert.strictEqual(counts.requests, 2)
        assert.deepStrictEqual(FaultyTransport.allFaults.map((f) => counts[f]), [0, 0, 0, 0, 0, 0, 0, 0])
        assert.deepStrictEqual(yield* faulty.history, [])
      }))

    it.effect("dropRequest: transport_failed without a status; the server never saw it", () =>
      Effect.gen(function*() {
        const { faulty, server, transport } = yield* setup({ seed: 1, probabilities: { dropRequest: 1 } })
        const error = yield* Effect.flip(transport.push(batch(1)))
        assert.strictEqual(error.reason, "transport_failed")
        assert.strictEqual(error.status, undefined)
        assert.match(error.message, /lost on the way.*injected/)
        assert.deepStrictEqual(server.log(), [])
        assert.strictEqual((yield* faulty.counts).dropRequest, 1)
      }))

    it.effect("dropResponse: the server applied the push but the caller got an error; a retry is deduplicated", () =>
      Effect.gen(function*() {
        const { faulty, server, transport } = yield* setup({ seed: 1, probabilities: { dropResponse: 1 } })
        const error = yield* Effect.flip(transport.push(batch(1)))
        assert.strictEqual(error.reason, "transport_failed")
        assert.match(error.message, /response lost/)
        assert.deepStrictEqual(server.log().map((m) => m.entityKey), ["k1"])
        yield* faulty.setEnabled(false)
        assert.deepStrictEqual(yield* transport.push(batch(1)), { acceptedSeqs: [1] })
        assert.strictEqual(server.log().length, 1)
        const counts = yield* faulty.counts
        assert.strictEqual(counts.dropResponse, 1)
        assert.strictEqual(counts.requests, 2)
      }))

    it.effect("dropResponse and duplicate through a manager: the row is stored once and acked on the retry", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const faulty = yield* FaultyTransport.wrap(CloudTransport.fromMemoryServer(server), {
          seed: 1,
          probabilities: { dropResponse: 1 },
          operations: ["push"]
        })
        const store = yield* LocalStore.makeMemory({ clientId: "a" })
        yield* store.enroll("p")
        const manager = yield* SyncManager.make(yield* SyncConfig.make({ leaseOwner: "w1" })).pipe(
          Effect.provideService(LocalStore.LocalStore, store),
          Effect.provideService(CloudTransport.CloudTransport, faulty.transport)
        )
        yield* put(store, "k", 1)
        const failed = yield* manager.syncNow
        assert.strictEqual(failed.phase, "push_failed")
        assert.strictEqual(failed.reasonCode, "transport_failed")
        assert.strictEqual(server.log().length, 1) // stored, but the manager does not know
        assert.strictEqual(yield* store.countPending("cloud"), 1)
        const duplicating = yield* FaultyTransport.wrap(CloudTransport.fromMemoryServer(server), {
          seed: 1,
          probabilities: { duplicate: 1 }
        })
        const retry = yield* SyncManager.make(yield* SyncConfig.make({ leaseOwner: "w1" })).pipe(
          Effect.provideService(LocalStore.LocalStore, store),
          Effect.provideService(CloudTransport.CloudTransport, duplicating.transport)
        )
        assert.strictEqual((yield* retry.syncNow).phase, "healthy")
        assert.strictEqual(server.log().length, 1)
        assert.strictEqual(yield* store.countPending("cloud"), 0)
        assert.strictEqual((yield* store.getSyncState("cloud")).lastPulledSeq, 1)
        assert.deepStrictEqual(Option.getOrUndefined(yield* store.getDocument("p", "doc", "k")), 1)
      }).pipe(Effect.withRandomFixed([0.5])))

    it.effect("duplicate: sent twice, stored once thanks to the server's dedup; the second answer is returned", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const inner = CloudTransport.fromMemoryServer(server)
        const seen: Array<number> = []
        const counting = CloudTransport.CloudTransport.of({
          push: (b) => Effect.tap(inner.push(b), (r) => Effect.sync(() => seen.push(...r.acceptedSeqs))),
          pull: inner.pull
        })
        const faulty = yield* FaultyTransport.wrap(counting, { seed: 1, probabilities: { duplicate: 1 } })
        assert.deepStrictEqual(yield* faulty.transport.push(batch(1)), { acceptedSeqs: [1] })
        assert.deepStrictEqual(yield* faulty.transport.push(batch(2)), { acceptedSeqs: [2] })
        assert.deepStrictEqual(seen, [1, 1, 2, 2]) // each push reached the server twice
        assert.deepStrictEqual(server.log().map((m) => m.entityKey), ["k1", "k2"])
        const page = yield* faulty.transport.pull(0, 10)
        assert.deepStrictEqual(page.mutations.map((m) => m.seq), [1, 2])
        assert.strictEqual((yield* faulty.counts).duplicate, 3)
      }))

    it.effect("serverError / unauthorized / forbidden: 500, 401 and 403 with their reason codes", () =>
      Effect.gen(function*() {
        const cases = [
          ["serverError", { reason: "transport_failed", status: 500 }],
          ["unauthorized", { reason: "auth_required", status: 401 }],
          ["forbidden", { reason: "policy_forbidden", status: 403 }]
        ] as const
        for (const [fault, expected] of cases) {
          const { faulty, server, transport } = yield* setup({ seed: 1, probabilities: { [fault]: 1 } })
          assert.deepStrictEqual(yield* errorOf(transport.push(batch(1))), expected)
          assert.deepStrictEqual(yield* errorOf(transport.pull(0, 10)), expected)
          assert.deepStrictEqual(server.log(), [])
          assert.strictEqual((yield* faulty.counts)[fault], 2)
        }
      }))

    it.effect("401 and 403 reach the manager's status as auth_required and policy_forbidden", () =>
      Effect.gen(function*() {
        for (
          const [fault, reasonCode] of [["unauthorized", "auth_required"], ["forbidden", "policy_forbidden"]] as const
        ) {
          const server = yield* CloudTransport.makeMemoryServer
          const faulty = yield* FaultyTransport.wrap(CloudTransport.fromMemoryServer(server), {
            seed: 1,
            probabilities: { [fault]: 1 }
          })
          const store = yield* LocalStore.makeMemory({ clientId: "a" })
          yield* store.enroll("p")
          const manager = yield* SyncManager.make(yield* SyncConfig.make({ leaseOwner: "w1" })).pipe(
            Effect.provideService(LocalStore.LocalStore, store),
            Effect.provideService(CloudTransport.CloudTransport, faulty.transport)
          )
          yield* put(store, "k", 1)
          const status = yield* manager.syncNow
          assert.strictEqual(status.phase, "push_failed")
          assert.strictEqual(status.reasonCode, reasonCode)
          assert.strictEqual(yield* store.countPending("cloud"), 1)
          yield* faulty.setEnabled(false)
          assert.strictEqual((yield* manager.syncNow).phase, "healthy")
          assert.strictEqual(server.log().length, 1)
        }
      }).pipe(Effect.withRandomFixed([0.5])))

    it.effect("delay: waits the drawn time on the Clock, then goes through", () =>
      Effect.gen(function*() {
        const { faulty, server, transport } = yield* setup({ probabilities: { delay: 1 }, maxDelay: "1 second" })
        // draws: 0.9 (no exclusive fault), 0.1 (< 1: delayed), 0.25 (of 1 s: 250 ms)
        const fiber = yield* Effect.fork(transport.push(batch(1)).pipe(Effect.withRandomFixed([0.9, 0.1, 0.25])))
        yield* TestClock.adjust("249 millis")
        assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
        assert.deepStrictEqual(server.log(), [])
        yield* TestClock.adjust("1 millis")
        assert.deepStrictEqual(yield* Fiber.join(fiber), { acceptedSeqs: [1] })
        assert.deepStrictEqual(yield* faulty.history, [
          { request: 1, operation: "push", at: 0, faults: ["delay"], delayMillis: 250 }
        ])
      }))

    it.effect("delay combines with an exclusive fault: the failure comes after the wait", () =>
      Effect.gen(function*() {
        const { faulty, transport } = yield* setup({ probabilities: { delay: 0.5, serverError: 0.5 }, maxDelay: 400 })
        const fiber = yield* Effect.fork(Effect.exit(transport.pull(0, 1)).pipe(Effect.withRandomFixed([0.2, 0.2, 1])))
        yield* TestClock.adjust("399 millis")
        assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)))
        yield* TestClock.adjust("1 millis")
        const exit = yield* Fiber.join(fiber)
        assert.strictEqual(failure(exit)?.status, 500)
        assert.deepStrictEqual((yield* faulty.history)[0].faults, ["delay", "serverError"])
      }))

    it.effect("timeout: hangs for the timeout on the Clock, then transport_failed; the server never saw it", () =>
      Effect.gen(function*() {
        const { server, transport } = yield* setup({ seed: 1, probabilities: { timeout: 1 }, timeout: "10 seconds" })
        const push = yield* Effect.fork(Effect.flip(transport.push(batch(1))))
        yield* TestClock.adjust("9999 millis")
        assert.isTrue(Option.isNone(yield* Fiber.poll(push)))
        yield* TestClock.adjust("1 millis")
        const error = yield* Fiber.join(push)
        assert.strictEqual(error.reason, "transport_failed")
        assert.match(error.message, /push timed out after 10s/)
        assert.deepStrictEqual(server.log(), [])
        // a long-poll pull hangs its wait on top, as HttpCloudTransport's timeout does
        const pull = yield* Effect.fork(Effect.flip(transport.pull(0, 1, { wait: "5 seconds" })))
        yield* TestClock.adjust("14999 millis")
        assert.isTrue(Option.isNone(yield* Fiber.poll(pull)))
        yield* TestClock.adjust("1 millis")
        assert.match((yield* Fiber.join(pull)).message, /pull timed out after 15s/)
      }))
  })

  describe("determinism and counts", () => {
    const probabilities = {
      dropRequest: 0.1,
      dropResponse: 0.1,
      duplicate: 0.1,
      serverError: 0.05,
      unauthorized: 0.05,
      forbidden: 0.05,
      timeout: 0.05,
      delay: 0.3
    }

    // `requests` pushes of one new row each, one at a time; the outcome of each, and the faults injected.
    const storm = (options: FaultyTransport.Options, requests = 40) =>
      Effect.gen(function*() {
        const { faulty, server, transport } = yield* setup({
          probabilities,
          maxDelay: "1 second",
          timeout: 5000,
          ...options
        })
        const outcomes: Array<string> = []
        for (let i = 1; i <= requests; i++) {
          const fiber = yield* Effect.fork(Effect.either(transport.push(batch(i))))
          yield* TestClock.adjust("6 seconds") // the longest: a 1 s delay, then a 5 s timeout
          const result = yield* Fiber.join(fiber)
          outcomes.push(result._tag === "Right" ? "ok" : `${result.left.reason}/${result.left.status ?? "-"}`)
        }
        const history = (yield* faulty.history).map(({ at: _at, ...rest }) => rest)
        return { outcomes, history, counts: yield* faulty.counts, logLength: server.log().length }
      })

    it.effect("the same seed gives the same faults; another seed gives others", () =>
      Effect.gen(function*() {
        const first = yield* storm({ seed: 7 })
        const again = yield* storm({ seed: 7 })
        assert.deepStrictEqual(again, first)
        const other = yield* storm({ seed: 8 })
        assert.notDeepEqual(other.history, first.history)
        // without `seed`, the caller's Random drives it: a seeded one gives the same faults as `seed`
        const ambient = yield* storm({}).pipe(Effect.withRandom(Random.make(7)))
        assert.deepStrictEqual(ambient, first)
      }))

    it.effect("counts agree with what the caller and the server saw", () =>
      Effect.gen(function*() {
        const { counts, history, logLength, outcomes } = yield* storm({ seed: 11 }, 100)
        assert.strictEqual(counts.requests, 100)
        const tally = (outcome: string) => outcomes.filter((o) => o === outcome).length
        assert.strictEqual(tally("transport_failed/500"), counts.serverError)
        assert.strictEqual(tally("auth_required/401"), counts.unauthorized)
        assert.strictEqual(tally("policy_forbidden/403"), counts.forbidden)
        assert.strictEqual(tally("transport_failed/-"), counts.dropRequest + counts.dropResponse + counts.timeout)
        // what reached the server: plain and duplicated pushes, and those whose answer was lost
        assert.strictEqual(logLength, tally("ok") + counts.dropResponse)
        assert.strictEqual(
          tally("ok"),
          100 - counts.dropRequest - counts.dropResponse - counts.timeout -
            counts.serverError - counts.unauthorized - counts.forbidden
        )
        // the history holds every injection, and every kind occurred in 100 requests
        for (const fault of FaultyTransport.allFaults) {
          assert.strictEqual(history.filter((h) => h.faults.includes(fault)).length, counts[fault], fault)
          assert.isAbove(counts[fault], 0, fault)
        }
      }))
  })

  describe("switches", () => {
    it.effect("setEnabled(false) forwards untouched; requests in flight keep their fault", () =>
      Effect.gen(function*() {
        const { faulty, server, transport } = yield* setup({ probabilities: { timeout: 1 }, timeout: "1 second" })
        const hanging = yield* Effect.fork(Effect.exit(transport.push(batch(1))))
        yield* TestClock.adjust("1 millis")
        yield* faulty.setEnabled(false)
        assert.isFalse(yield* faulty.isEnabled)
        assert.deepStrictEqual(yield* transport.push(batch(2)), { acceptedSeqs: [1] })
        yield* TestClock.adjust("1 second")
        assert.isTrue(Exit.isFailure(yield* Fiber.join(hanging)))
        assert.deepStrictEqual(server.log().map((m) => m.entityKey), ["k2"])
        yield* faulty.setEnabled(true)
        assert.isTrue(yield* faulty.isEnabled)
        const counts = yield* faulty.counts
        assert.strictEqual(counts.requests, 2)
        assert.strictEqual(counts.timeout, 1)
      }).pipe(Effect.withRandom(Random.make(3))))

    it.effect("while off, nothing is drawn: the faults after switching back on are the seed's first ones", () =>
      Effect.gen(function*() {
        const faultsOf = (faulty: FaultyTransport.FaultyTransport["Type"]) =>
          Effect.map(faulty.history, (h) => h.map((i) => i.faults.join("+")))
        const options = { seed: 5, probabilities: { serverError: 0.3, forbidden: 0.3 } }
        const fresh = yield* setup(options)
        for (let i = 1; i <= 20; i++) yield* Effect.either(fresh.transport.push(batch(i)))
        const paused = yield* setup(options)
        yield* paused.faulty.setEnabled(false)
        for (let i = 1; i <= 10; i++) yield* paused.transport.push(batch(i))
        yield* paused.faulty.setEnabled(true)
        for (let i = 11; i <= 30; i++) yield* Effect.either(paused.transport.push(batch(i)))
        assert.deepStrictEqual(yield* faultsOf(paused.faulty), yield* faultsOf(fresh.faulty))
        assert.deepStrictEqual(
          (yield* paused.faulty.history).map((i) => i.request),
          (yield* fresh.faulty.history).map((i) => i.request + 10)
        )
      }))

    it.effect("the enabled option takes a Ref<boolean>", () =>
      Effect.gen(function*() {
        const enabled = yield* Ref.make(false)
        const { transport } = yield* setup({ seed: 1, probabilities: { dropRequest: 1 }, enabled })
        assert.deepStrictEqual(yield* transport.push(batch(1)), { acceptedSeqs: [1] })
        yield* Ref.set(enabled, true)
        assert.strictEqual((yield* Effect.flip(transport.push(batch(2)))).reason, "transport_failed")
      }))

    it.effect("operations limits faults to push or pull", () =>
      Effect.gen(function*() {
        const { faulty, transport } = yield* setup({ seed: 1, probabilities: { forbidden: 1 }, operations: ["pull"] })
        assert.deepStrictEqual(yield* transport.push(batch(1)), { acceptedSeqs: [1] })
        assert.strictEqual((yield* Effect.flip(transport.pull(0, 10))).reason, "policy_forbidden")
        assert.strictEqual((yield* faulty.counts).forbidden, 1)
      }))

    it.effect("history keeps the last historySize injections", () =>
      Effect.gen(function*() {
        const { faulty, transport } = yield* setup({ seed: 1, probabilities: { serverError: 1 }, historySize: 3 })
        for (let i = 1; i <= 5; i++) yield* Effect.either(transport.push(batch(i)))
        assert.deepStrictEqual((yield* faulty.history).map((h) => h.request), [3, 4, 5])
        assert.strictEqual((yield* faulty.counts).serverError, 5)
      }))

    it.effect("nonsense options are a defect with a clear message", () =>
      Effect.gen(function*() {
        const inner = CloudTransport.fromMemoryServer(yield* CloudTransport.makeMemoryServer)
        for (
          const [options, message] of [
            [{ probabilities: { delay: 1.5 } }, /probability of delay must be in \[0, 1\]/],
            [{ probabilities: { dropRequest: Number.NaN } }, /probability of dropRequest/],
            [{ probabilities: { dropRequest: 0.6, timeout: 0.6 } }, /add up to 1.2/],
            [{ maxDelay: Infinity }, /maxDelay must be a finite duration/],
            [{ timeout: "soon" as never }, /timeout must be a finite duration/]
          ] as const
        ) {
          const exit = yield* Effect.exit(FaultyTransport.wrap(inner, options))
          assert.isTrue(Exit.isFailure(exit))
          if (Exit.isFailure(exit)) assert.match(String(exit.cause), message)
        }
      }))
  })

  describe("layer", () => {
    it.effect("wraps the CloudTransport provided below it and provides its controls", () =>
      Effect.gen(function*() {
        const server = yield* CloudTransport.makeMemoryServer
        const layer = FaultyTransport.layer({ seed: 1, probabilities: { dropRequest: 1 } }).pipe(
          Layer.provide(CloudTransport.layerMemoryServer(server))
        )
        yield* Effect.gen(function*() {
          const transport = yield* CloudTransport.CloudTransport
          const faulty = yield* FaultyTransport.FaultyTransport
          assert.strictEqual(transport, faulty.transport)
          assert.isTrue(Exit.isFailure(yield* Effect.exit(transport.push(batch(1)))))
          yield* faulty.setEnabled(false)
          yield* transport.push(batch(1))
          assert.strictEqual(server.log().length, 1)
          assert.strictEqual((yield* faulty.counts).dropRequest, 1)
        }).pipe(Effect.provide(layer))
      }))
  })
})
