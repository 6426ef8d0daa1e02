/**
 * The server's rules as pure functions (table tests), and the one long-poll under `TestClock`.
 * The conformance suites (CloudTransportSuite, MutationLogSuite, in packages/server) check every
 * backend follows them end to end.
 */
import { LogRules } from "@autosync/core"
import type { Mutation } from "@autosync/core"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Either, Fiber, Option, TestClock } from "effect"

const stored = (
  clientSeq: number,
  over: Partial<LogRules.StoredEntry> = {}
): LogRules.StoredEntry => ({
  clientSeq,
  project: "p",
  entity: "document",
  entityKey: `k${clientSeq}`,
  op: "upsert",
  payloadJson: JSON.stringify({ n: clientSeq }),
  ...over
})

const entry = (clientSeq: number, over: Partial<Mutation.MutationEntry> = {}): Mutation.MutationEntry => ({
  clientSeq,
  project: "p",
  entity: "document",
  entityKey: `k${clientSeq}`,
  op: "upsert",
  payload: { n: clientSeq },
  ...over
})

/** What `plan` decides, as `seqs/fresh seqs` or `conflict@seq` (`conflict@batch` inside the batch). */
const decide = (
  entries: ReadonlyArray<LogRules.StoredEntry>,
  known: ReadonlyArray<LogRules.Identity & { readonly clientSeq: number }>,
  latestSeq: number
): string =>
  Either.match(LogRules.plan("c", entries, (s) => known.find((k) => k.clientSeq === s), latestSeq), {
    onLeft: (conflict) => `conflict@${conflict.seq ?? "batch"}`,
    onRight: (plan) => `${plan.seqs.join(",")}/${plan.fresh.map((f) => f.seq).join(",")}`
  })

const page = (mutations: ReadonlyArray<unknown>, latestSeq: number) => ({ mutations, latestSeq })

describe("LogRules.plan", () => {
  it("retries get their first seq, new entries the seqs after the latest, in batch order; conflicts store nothing", () => {
    const k2 = { ...stored(2), seq: 7 }
    const table: Array<[string, ReadonlyArray<LogRules.StoredEntry>, number, string]> = [
      ["new entries after the latest seq", [stored(1), stored(3)], 9, "10,11/10,11"],
      ["a retry gets its first seq back and stores nothing", [stored(2)], 9, "7/"],
      ["a retry among new entries", [stored(1), stored(2), stored(3)], 9, "10,7,11/10,11"],
      ["a repeat inside the batch gets the seq of its first", [stored(1), stored(1)], 9, "10,10/10"],
      ["a retry repeated inside the batch", [stored(2), stored(2)], 9, "7,7/"],
      ["other payload under a stored identity", [stored(1), stored(2, { payloadJson: "{}" })], 9, "conflict@7"],
      ["other key order is other content", [stored(2, { payloadJson: "{\"n\":2,\"x\":1}" })], 9, "conflict@7"],
      ["other project", [stored(2, { project: "q" })], 9, "conflict@7"],
      ["other entity", [stored(2, { entity: "e" })], 9, "conflict@7"],
      ["other entity key", [stored(2, { entityKey: "x" })], 9, "conflict@7"],
      ["other op", [stored(2, { op: "delete" })], 9, "conflict@7"],
      ["different content twice inside the batch", [stored(4), stored(4, { op: "delete" })], 9, "conflict@batch"],
      ["an empty batch", [], 9, "/"]
    ]
    for (const [title, entries, latest, expected] of table) {
      assert.strictEqual(decide(entries, [k2], latest), expected, title)
    }
  })

  it("a conflict names the identity and the seq it got", () => {
    const result = LogRules.plan("c1", [stored(2, { op: "delete" })], () => ({ ...stored(2), seq: 5 }), 9)
    const conflict = Either.getOrThrow(Either.flip(result))
    assert.strictEqual(conflict.seq, 5)
    assert.strictEqual(
      conflict.message,
      "client_seq 2 of client c1 was already pushed with different content (server seq 5)"
    )
  })

  it("encodeEntries stores each payload as its JSON text, keys in order", () => {
    assert.deepStrictEqual(LogRules.encodeEntries([entry(1, { payload: { z: 1, a: [null, "x"] } })]), [
      {
        clientSeq: 1,
        project: "p",
        entity: "document",
        entityKey: "k1",
        op: "upsert",
        payloadJson: "{\"z\":1,\"a\":[null,\"x\"]}"
      }
    ])
  })
})

describe("LogRules: compaction rules", () => {
  it("a delete's content is its key and op: a tombstone (payload dropped) matches its retry", () => {
    const gone = stored(3, { op: "delete", payloadJson: "{\"last\":1}" })
    const tombstone = { ...gone, payloadJson: LogRules.tombstonePayload, seq: 4 }
    assert.strictEqual(decide([gone], [tombstone], 9), "4/")
    assert.strictEqual(decide([{ ...gone, entityKey: "other" }], [tombstone], 9), "conflict@4")
    // An upsert's payload is still content.
    assert.strictEqual(decide([stored(2, { payloadJson: "null" })], [{ ...stored(2), seq: 7 }], 9), "conflict@7")
  })

  it("at or below the watermark, an identity the log does not hold is a conflict; one it holds is a retry", () => {
    const held = [{ ...stored(2), seq: 7 }]
    const at = (entries: ReadonlyArray<LogRules.StoredEntry>, watermark: number) =>
      Either.match(LogRules.plan("c", entries, (s) => held.find((k) => k.clientSeq === s), 9, watermark), {
        onLeft: (conflict) => conflict.message,
        onRight: (plan) => plan.seqs.join(",")
      })
    assert.strictEqual(at([stored(2)], 5), "7")
    assert.strictEqual(at([stored(6), stored(7)], 5), "10,11")
    assert.include(at([stored(6), stored(5)], 5), "client_seq 5 of client c is at or below the acked_through 5")
    assert.strictEqual(at([stored(1)], 0), "10")
  })

  it("compactable: every row of which a newer row of its key exists, whatever the order", () => {
    const row = (seq: number, entityKey: string, project = "p") => ({ seq, project, entity: "doc", entityKey })
    const rows = [row(5, "a"), row(1, "a"), row(2, "b"), row(3, "a", "q"), row(4, "b"), row(6, "c")]
    assert.deepStrictEqual([...LogRules.compactable(rows)].sort(), [1, 2])
    assert.deepStrictEqual([...LogRules.compactable([])], [])
    assert.isTrue(LogRules.keepsIdentity(3, 2))
    assert.isFalse(LogRules.keepsIdentity(2, 2))
  })
})

describe("LogRules.forbidden", () => {
  it("names the first project the token may not use; no policy allows all", () => {
    const entries = [{ project: "a" }, { project: "b" }, { project: "c" }]
    assert.deepStrictEqual(
      LogRules.forbidden(entries, new Set(["a"])),
      Option.some(`project "b" is not allowed for this token`)
    )
    assert.deepStrictEqual(LogRules.forbidden(entries, new Set(["a", "b", "c"])), Option.none())
    assert.deepStrictEqual(LogRules.forbidden(entries, undefined), Option.none())
    assert.deepStrictEqual(LogRules.forbidden([], new Set()), Option.none())
  })
})

describe("LogRules.page", () => {
  it("at most limit, hasMore when one more exists, latestSeq never behind the page", () => {
    const rows = [2, 4, 6].map((seq) => ({ seq }))
    const table: Array<[number, number, [ReadonlyArray<number>, boolean, number]]> = [
      [10, 9, [[2, 4, 6], false, 9]],
      [3, 9, [[2, 4, 6], false, 9]],
      [2, 9, [[2, 4], true, 9]],
      [1, 9, [[2], true, 9]],
      [3, 4, [[2, 4, 6], false, 6]], // latest read before a later commit: raised to the page
      [0, 9, [[], true, 9]]
    ]
    for (const [limit, latest, expected] of table) {
      const result = LogRules.page(rows, limit, latest)
      assert.deepStrictEqual([result.mutations.map((r) => r.seq), result.hasMore, result.latestSeq], expected)
    }
    assert.deepStrictEqual(LogRules.page([], 5, 3), { mutations: [], hasMore: false, latestSeq: 3 })
  })

  it("reads no further than one candidate past the page", () => {
    let read = 0
    function* candidates() {
      for (let seq = 1; seq <= 1000; seq++) {
        read++
        yield { seq }
      }
    }
    assert.strictEqual(LogRules.page(candidates(), 10, 1000).mutations.length, 10)
    assert.strictEqual(read, 11)
  })
})

describe("LogRules.makeMemory", () => {
  it.effect("stores by the rules: seqs from 1, retries deduplicated, conflicts refused whole", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(1_000)
      const log = yield* LogRules.makeMemory
      assert.deepStrictEqual(yield* log.append("a", [entry(1), entry(2)]), [1, 2])
      assert.deepStrictEqual(yield* log.append("a", [entry(2), entry(3)]), [2, 3])
      assert.deepStrictEqual(yield* log.append("b", [entry(1)]), [4])
      const conflict = yield* Effect.flip(log.append("a", [entry(4), entry(1, { op: "delete" })]))
      assert.strictEqual(conflict.seq, 1)
      assert.strictEqual(log.latestSeq(), 4)
      assert.deepStrictEqual(log.mutations().map((m) => [m.seq, m.entityKey, m.occurredAt]), [
        [1, "k1", 1_000],
        [2, "k2", 1_000],
        [3, "k3", 1_000],
        [4, "k1", 1_000]
      ])
    }))

  it.effect("pages leave out other projects and excludeClientId's writes", () =>
    Effect.gen(function*() {
      const log = yield* LogRules.makeMemory
      yield* log.append("a", [entry(1), entry(2, { project: "q" }), entry(3)])
      yield* log.append("b", [entry(1), entry(2)])
      const seqs = (p: LogRules.StoredPage) => [p.mutations.map((m) => m.seq), p.hasMore, p.latestSeq]
      assert.deepStrictEqual(seqs(yield* log.since(0, undefined, 10)), [[1, 2, 3, 4, 5], false, 5])
      assert.deepStrictEqual(seqs(yield* log.since(0, new Set(["p"]), 10)), [[1, 3, 4, 5], false, 5])
      assert.deepStrictEqual(seqs(yield* log.since(0, new Set(["p"]), 2, "a")), [[4, 5], false, 5])
      assert.deepStrictEqual(seqs(yield* log.since(1, new Set(["p"]), 1, "b")), [[3], false, 5])
      assert.deepStrictEqual(seqs(yield* log.since(0, new Set(), 10)), [[], false, 5])
      assert.deepStrictEqual(seqs(yield* log.since(9, undefined, 10)), [[], false, 5])
    }))
})

describe("LogRules.hold", () => {
  it.effect("answers at once when the page has something, or when there is no wait", () =>
    Effect.gen(function*() {
      const log = yield* LogRules.makeMemory
      yield* log.append("a", [entry(1)])
      const options = { awaitAfter: log.awaitAfter, wait: "10 seconds" as const }
      assert.strictEqual((yield* LogRules.hold(log.since(0, undefined, 10), options)).mutations.length, 1)
      const empty = yield* LogRules.hold(log.since(1, undefined, 10), { ...options, wait: 0 })
      assert.deepStrictEqual(empty, { mutations: [], hasMore: false, latestSeq: 1 })
    }))

  it.effect("waits until a seq lands that the page shows, through ones it leaves out, until the wait ends", () =>
    Effect.gen(function*() {
      const log = yield* LogRules.makeMemory
      const held = yield* Effect.fork(
        LogRules.hold(log.since(0, undefined, 10, "me"), { awaitAfter: log.awaitAfter, wait: "10 seconds" })
      )
      yield* TestClock.adjust("3 seconds")
      yield* log.append("me", [entry(1)]) // the puller's own write: read again, still nothing
      yield* TestClock.adjust("3 seconds")
      assert.isTrue(Option.isNone(yield* Fiber.poll(held)))
      yield* log.append("other", [entry(1)])
      const answered = yield* Fiber.join(held)
      assert.deepStrictEqual(answered.mutations.map((m) => m.seq), [2])

      const idle = yield* Effect.fork(
        LogRules.hold(log.since(2, undefined, 10), { awaitAfter: log.awaitAfter, wait: "10 seconds" })
      )
      yield* TestClock.adjust("9999 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(idle)))
      yield* TestClock.adjust("1 millis")
      assert.deepStrictEqual(yield* Fiber.join(idle), { mutations: [], hasMore: false, latestSeq: 2 })
    }))

  it.effect("answers the empty page when stop completes or awaitAfter fails", () =>
    Effect.gen(function*() {
      const log = yield* LogRules.makeMemory
      const stop = yield* Deferred.make<void>()
      const held = yield* Effect.fork(
        LogRules.hold(log.since(0, undefined, 10), {
          awaitAfter: log.awaitAfter,
          wait: "30 seconds",
          stop: Deferred.await(stop)
        })
      )
      yield* TestClock.adjust("1 second")
      yield* Deferred.succeed(stop, undefined)
      assert.deepStrictEqual((yield* Fiber.join(held)).mutations, [])
      const failing = yield* LogRules.hold(Effect.succeed(page([], 0)), {
        awaitAfter: () => Effect.fail("store gone"),
        wait: "30 seconds"
      })
      assert.deepStrictEqual(failing, page([], 0))
    }))
})
