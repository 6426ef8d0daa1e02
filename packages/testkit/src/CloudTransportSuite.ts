/**
 * One conformance suite for the `CloudTransport` contract, run against core's in-process server
 * (`CloudTransport.layerMemory` and friends) and against `HttpCloudTransport` over a real
 * `SyncServer`: what DESIGN.md calls "the same rules as the real one" is checked, not claimed.
 *
 * Tests run on the live clock (a real server cannot follow a `TestClock`); waits are short.
 */
import { CloudTransport } from "@autosync/core"
import type { Mutation } from "@autosync/core"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { entry, failureOf } from "./Fixtures.js"

/**
 * A fresh server per build; `transport(projects)` talks to it with a token for those projects.
 *
 * @since 0.1.0
 * @category harness
 */
export class Harness extends Context.Tag("test/CloudTransportHarness")<Harness, {
  readonly transport: (projects: ReadonlyArray<string>) => Effect.Effect<CloudTransport.CloudTransport["Type"]>
}>() {}

/**
 * The harness over core's memory server.
 *
 * @since 0.1.0
 * @category harness
 */
export const layerMemoryHarness: Layer.Layer<Harness> = Layer.effect(
  Harness,
  Effect.map(CloudTransport.makeMemoryServer, (server) => ({
    transport: (projects) => Effect.succeed(CloudTransport.fromMemoryServer(server, { allowedProjects: projects }))
  }))
)

const failure = <A>(effect: Effect.Effect<A, CloudTransport.TransportError>) => failureOf(effect)

const seqsOf = (page: Mutation.PullResponse) => page.mutations.map((m) => m.seq)

/** Registers one test against a fresh server. */
type Test = (title: string, body: Effect.Effect<void, CloudTransport.TransportError, Harness>) => void

// Push and pull: seqs, content, paging, dedup, conflicts.
const pushAndPull = (test: Test) => {
  test(
    "push assigns one increasing seq per entry; pull returns them in order, content intact",
    Effect.gen(function*() {
      const t = yield* (yield* Harness).transport(["p1"])
      const payload = {
        text: "héllo ✓ 𝄞",
        nested: { list: [1, 2.5, -3, true, false, null, "x"], empty: {}, none: [] },
        big: Number.MAX_SAFE_INTEGER,
        small: -Number.MAX_SAFE_INTEGER,
        z: 1,
        a: 2
      }
      const result = yield* t.push({
        clientId: "c1",
        mutations: [entry(1, { payload }), entry(2, { op: "delete", payload: null }), entry(3)]
      })
      assert.deepStrictEqual(result.acceptedSeqs, [1, 2, 3])
      const page = yield* t.pull(0, 10)
      assert.deepStrictEqual(seqsOf(page), [1, 2, 3])
      assert.strictEqual(page.hasMore, false)
      assert.strictEqual(page.latestSeq, 3)
      const [first, second] = page.mutations
      assert.deepStrictEqual(first.payload, payload)
      assert.deepStrictEqual(Object.keys(first.payload as object), Object.keys(payload)) // key order kept
      assert.strictEqual(first.project, "p1")
      assert.strictEqual(first.entity, "document")
      assert.strictEqual(first.entityKey, "k1")
      assert.strictEqual(first.op, "upsert")
      assert.instanceOf(first.occurredAt, Date)
      assert.strictEqual(second.op, "delete")
      assert.strictEqual(second.payload, null)
    })
  )

  test(
    "a retried push gets the same seqs and stores nothing twice",
    Effect.gen(function*() {
      const t = yield* (yield* Harness).transport(["p1"])
      const batch = { clientId: "c1", mutations: [entry(1), entry(2)] }
      const first = yield* t.push(batch)
      const again = yield* t.push(batch)
      assert.deepStrictEqual(again.acceptedSeqs, first.acceptedSeqs)
      // A batch overlapping an earlier one: old entries keep their seqs, new ones get new seqs.
      const overlap = yield* t.push({ clientId: "c1", mutations: [entry(2), entry(3)] })
      assert.deepStrictEqual(overlap.acceptedSeqs, [2, 3])
      assert.deepStrictEqual(seqsOf(yield* t.pull(0, 10)), [1, 2, 3])
    })
  )

  test(
    "the same client_seq from another client is another mutation",
    Effect.gen(function*() {
      const t = yield* (yield* Harness).transport(["p1"])
      assert.deepStrictEqual((yield* t.push({ clientId: "a", mutations: [entry(1)] })).acceptedSeqs, [1])
      assert.deepStrictEqual((yield* t.push({ clientId: "b", mutations: [entry(1)] })).acceptedSeqs, [2])
    })
  )

  test(
    "an identity pushed again with different content is refused with 409 naming the seq; nothing of the batch is stored",
    Effect.gen(function*() {
      const t = yield* (yield* Harness).transport(["p1"])
      yield* t.push({ clientId: "c1", mutations: [entry(1), entry(2)] })
      const error = yield* failure(
        t.push({ clientId: "c1", mutations: [entry(3), entry(2, { payload: { changed: true } })] })
      )
      assert.strictEqual(error.reason, "identity_conflict")
      assert.strictEqual(error.status, 409)
      assert.include(error.message, "server seq 2")
      const page = yield* t.pull(0, 10)
      assert.deepStrictEqual(seqsOf(page), [1, 2])
      assert.deepStrictEqual(page.mutations[1].payload, { n: 2 })
    })
  )

  test(
    "a batch touching a project the token may not use is refused with 403; nothing of it is stored",
    Effect.gen(function*() {
      const harness = yield* Harness
      const t = yield* harness.transport(["p1"])
      const error = yield* failure(t.push({ clientId: "c1", mutations: [entry(1), entry(2, { project: "p2" })] }))
      assert.strictEqual(error.reason, "policy_forbidden")
      assert.strictEqual(error.status, 403)
      assert.include(error.message, "p2")
      const all = yield* harness.transport(["p1", "p2"])
      assert.deepStrictEqual(seqsOf(yield* all.pull(0, 10)), [])
    })
  )

  test(
    "pulls return only the token's projects, in seq order",
    Effect.gen(function*() {
      const harness = yield* Harness
      const both = yield* harness.transport(["p1", "p2"])
      yield* both.push({
        clientId: "c1",
        mutations: [entry(1), entry(2, { project: "p2" }), entry(3), entry(4, { project: "p2" })]
      })
      const onlyP2 = yield* harness.transport(["p2"])
      const page = yield* onlyP2.pull(0, 10)
      assert.deepStrictEqual(seqsOf(page), [2, 4])
      assert.deepStrictEqual(page.mutations.map((m) => m.project), ["p2", "p2"])
      assert.strictEqual(page.latestSeq, 4)
      // A page of the token's projects: has_more counts only what the token can see.
      const first = yield* onlyP2.pull(0, 1)
      assert.deepStrictEqual(seqsOf(first), [2])
      assert.strictEqual(first.hasMore, true)
      const second = yield* onlyP2.pull(2, 1)
      assert.deepStrictEqual(seqsOf(second), [4])
      assert.strictEqual(second.hasMore, false)
    })
  )

  test(
    "pages: limit, has_more, and the cursor",
    Effect.gen(function*() {
      const t = yield* (yield* Harness).transport(["p1"])
      yield* t.push({ clientId: "c1", mutations: Array.from({ length: 5 }, (_, i) => entry(i + 1)) })
      const pages: Array<ReadonlyArray<number>> = []
      let cursor = 0
      while (true) {
        const page = yield* t.pull(cursor, 2)
        pages.push(seqsOf(page))
        assert.strictEqual(page.latestSeq, 5)
        if (!page.hasMore) break
        cursor = page.mutations[page.mutations.length - 1].seq
      }
      assert.deepStrictEqual(pages, [[1, 2], [3, 4], [5]])
      const past = yield* t.pull(5, 2)
      assert.deepStrictEqual(seqsOf(past), [])
      assert.strictEqual(past.hasMore, false)
    })
  )
}

// Projects, refusals, held pulls.
const policyAndWaits = (test: Test) => {
  test(
    "a limit above the maximum is clamped to it",
    Effect.gen(function*() {
      const t = yield* (yield* Harness).transport(["p1"])
      const n = CloudTransport.maxPullLimit + 5
      yield* t.push({ clientId: "c1", mutations: Array.from({ length: n }, (_, i) => entry(i + 1)) })
      const page = yield* t.pull(0, 1_000_000)
      assert.strictEqual(page.mutations.length, CloudTransport.maxPullLimit)
      assert.strictEqual(page.hasMore, true)
    })
  )

  test(
    "bad arguments fail with 400 and change nothing",
    Effect.gen(function*() {
      const t = yield* (yield* Harness).transport(["p1"])
      for (
        const call of <ReadonlyArray<Effect.Effect<unknown, CloudTransport.TransportError>>> [
          t.pull(-1, 10),
          t.pull(1.5, 10),
          t.pull(0, 0),
          t.push({ clientId: "", mutations: [entry(1)] }),
          t.push({ clientId: "c1", mutations: [entry(1, { project: "" })] }),
          t.push({ clientId: "c1", mutations: [entry(0)] }),
          t.push({ clientId: "c1", mutations: [entry(1, { payload: { n: 2 ** 53 } })] })
        ]
      ) {
        const error = yield* failure(call)
        assert.strictEqual(error.reason, "transport_failed")
        assert.strictEqual(error.status, 400)
      }
      assert.deepStrictEqual(seqsOf(yield* t.pull(0, 10)), [])
    })
  )

  test(
    "an empty batch is accepted and stores nothing",
    Effect.gen(function*() {
      const t = yield* (yield* Harness).transport(["p1"])
      assert.deepStrictEqual((yield* t.push({ clientId: "c1", mutations: [] })).acceptedSeqs, [])
      assert.strictEqual((yield* t.pull(0, 10)).latestSeq, 0)
    })
  )

  test(
    "a long-poll pull is held until a push lands",
    Effect.gen(function*() {
      const harness = yield* Harness
      const puller = yield* harness.transport(["p1"])
      const pusher = yield* harness.transport(["p1"])
      const held = yield* Effect.fork(Effect.timed(puller.pull(0, 10, { wait: "5 seconds" })))
      yield* Effect.sleep("200 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(held)), "the pull answered before anything was pushed")
      yield* pusher.push({ clientId: "c1", mutations: [entry(1)] })
      const [elapsed, page] = yield* Fiber.join(held)
      assert.deepStrictEqual(seqsOf(page), [1])
      assert.isBelow(Duration.toMillis(elapsed), 4000)
    })
  )

  test(
    "a long-poll pull with nothing new answers an empty page when the wait ends",
    Effect.gen(function*() {
      const t = yield* (yield* Harness).transport(["p1"])
      yield* t.push({ clientId: "c1", mutations: [entry(1)] })
      const [elapsed, page] = yield* Effect.timed(t.pull(1, 10, { wait: "300 millis" }))
      assert.deepStrictEqual(seqsOf(page), [])
      assert.strictEqual(page.hasMore, false)
      assert.isAtLeast(Duration.toMillis(elapsed), 250)
      assert.isBelow(Duration.toMillis(elapsed), 3000)
    })
  )

  test(
    "a long-poll pull with something to return answers at once",
    Effect.gen(function*() {
      const t = yield* (yield* Harness).transport(["p1"])
      yield* t.push({ clientId: "c1", mutations: [entry(1)] })
      const [elapsed, page] = yield* Effect.timed(t.pull(0, 10, { wait: "5 seconds" }))
      assert.deepStrictEqual(seqsOf(page), [1])
      assert.isBelow(Duration.toMillis(elapsed), 2000)
    })
  )

  test(
    "excludeClientId leaves out that client's writes; the last page covers the log up to latestSeq",
    Effect.gen(function*() {
      const t = yield* (yield* Harness).transport(["p1"])
      yield* t.push({ clientId: "mine", mutations: [entry(1), entry(2)] }) // seqs 1, 2
      yield* t.push({ clientId: "theirs", mutations: [entry(1)] }) // 3
      yield* t.push({ clientId: "mine", mutations: [entry(3)] }) // 4
      yield* t.push({ clientId: "theirs", mutations: [entry(2)] }) // 5
      yield* t.push({ clientId: "mine", mutations: [entry(4)] }) // 6
      const first = yield* t.pull(0, 1, { excludeClientId: "mine" })
      assert.deepStrictEqual(seqsOf(first), [3])
      assert.strictEqual(first.hasMore, true)
      const last = yield* t.pull(3, 1, { excludeClientId: "mine" })
      assert.deepStrictEqual(seqsOf(last), [5])
      assert.strictEqual(last.hasMore, false)
      assert.strictEqual(last.latestSeq, 6)
      const nothing = yield* t.pull(5, 10, { excludeClientId: "mine" })
      assert.deepStrictEqual([seqsOf(nothing), nothing.hasMore, nothing.latestSeq], [[], false, 6])
      // Without the option, everything.
      assert.deepStrictEqual(seqsOf(yield* t.pull(0, 10)), [1, 2, 3, 4, 5, 6])
    })
  )

  test(
    "a long-poll pull that leaves out its own writes keeps waiting through them, and answers another's",
    Effect.gen(function*() {
      const t = yield* (yield* Harness).transport(["p1"])
      const held = yield* Effect.fork(Effect.timed(t.pull(0, 10, { wait: "5 seconds", excludeClientId: "mine" })))
      yield* Effect.sleep("100 millis")
      yield* t.push({ clientId: "mine", mutations: [entry(1)] })
      yield* Effect.sleep("200 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(held)), "answered for its own write")
      yield* t.push({ clientId: "theirs", mutations: [entry(1)] })
      const [elapsed, page] = yield* Fiber.join(held)
      assert.deepStrictEqual(seqsOf(page), [2])
      assert.isBelow(Duration.toMillis(elapsed), 4000)
    })
  )
}

/**
 * Registers, under `describe`, the tests every `CloudTransport` and the server behind it must
 * pass; `layer` gives a fresh server per test and transports to it (see `Harness`).
 *
 * @since 0.1.0
 * @category suites
 */
export const CloudTransportSuite = (name: string, layer: Layer.Layer<Harness>) =>
  describe(`CloudTransport conformance: ${name}`, () => {
    const test = (title: string, body: Effect.Effect<void, CloudTransport.TransportError, Harness>) =>
      it.live(title, () => body.pipe(Effect.provide(layer)))

    pushAndPull(test)
    policyAndWaits(test)
  })
