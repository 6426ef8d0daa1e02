/**
 * One suite for the `MutationLog` contract, run against the memory, SQLite and PostgreSQL logs.
 * Each test builds the layer afresh (an empty log). Time is the `TestClock`: `occurredAt` is
 * exact, and `awaitAfter` is checked by polling its fiber, without sleeping.
 */
import type { Mutation } from "@autosync/core"
import { LogRules } from "@autosync/core"
import { MutationLog } from "@autosync/server"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as fc from "effect/FastCheck"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as TestClock from "effect/TestClock"
import { entry, failureOf } from "./Fixtures.js"

const logError = <A>(effect: Effect.Effect<A, MutationLog.MutationLogError>) => failureOf(effect)

const t0 = 1_700_000_000_123

const seqs = (page: Mutation.PullResponse) => page.mutations.map((m) => m.seq)

/** Every mutation after `cursor`, pulled page by page as a replica does. */
const pullAll = (log: MutationLog.MutationLog["Type"], cursor: number, limit: number) =>
  Effect.gen(function*() {
    const pulled: Array<Mutation.PulledMutation> = []
    let at = cursor
    for (;;) {
      const page = yield* log.since(at, undefined, limit)
      pulled.push(...page.mutations)
      if (!page.hasMore) return pulled
      at = page.mutations.at(-1)!.seq
    }
  })

/** A reference model of the append rules, to compare a log against. */
const model = (base: number) => {
  const byIdentity = new Map<string, { seq: number; content: string }>()
  let next = base + 1
  return (clientId: string, entries: ReadonlyArray<Mutation.MutationEntry>): ReadonlyArray<number> | "conflict" => {
    const content = (e: Mutation.MutationEntry) => JSON.stringify([e.project, e.entity, e.entityKey, e.op, e.payload])
    const inBatch = new Map<number, string>()
    for (const e of entries) {
      const before = byIdentity.get(`${clientId}/${e.clientSeq}`)?.content ?? inBatch.get(e.clientSeq)
      if (before !== undefined && before !== content(e)) return "conflict"
      inBatch.set(e.clientSeq, content(e))
    }
    return entries.map((e) => {
      const key = `${clientId}/${e.clientSeq}`
      const existing = byIdentity.get(key)
      if (existing) return existing.seq
      byIdentity.set(key, { seq: next, content: content(e) })
      return next++
    })
  }
}

/** Registers one test against a fresh log. */
type Test = (title: string, body: Effect.Effect<void, MutationLog.MutationLogError, MutationLog.MutationLog>) => void

// Appends, seqs, pages, payloads as pushed, excluding one's own writes.
const appendsAndPages = (test: Test) => {
  test(
    "an empty log",
    Effect.gen(function*() {
      const log = yield* MutationLog.MutationLog
      assert.strictEqual(yield* log.latestSeq, 0)
      assert.deepStrictEqual(yield* log.since(0, undefined, 10), { mutations: [], hasMore: false, latestSeq: 0 })
      assert.deepStrictEqual(yield* log.append("c1", []), [])
    })
  )

  test(
    "since leaves out the writes of excludeClientId, with the projects filter too; stored pages alike",
    Effect.gen(function*() {
      const log = yield* MutationLog.MutationLog
      yield* log.append("mine", [entry(1), entry(2, { project: "p2" })]) // 1, 2
      yield* log.append("theirs", [entry(1), entry(2, { project: "p2" }), entry(3)]) // 3, 4, 5
      yield* log.append("mine", [entry(3)]) // 6
      assert.deepStrictEqual(seqs(yield* log.since(0, undefined, 10, "mine")), [3, 4, 5])
      assert.deepStrictEqual(seqs(yield* log.since(0, ["p1"], 10, "mine")), [3, 5])
      const page = yield* log.since(3, ["p1"], 1, "mine")
      assert.deepStrictEqual([seqs(page), page.hasMore, page.latestSeq], [[5], false, 6])
      const stored = yield* log.sinceStored(0, undefined, 2, "theirs")
      assert.deepStrictEqual([stored.mutations.map((m) => m.seq), stored.hasMore], [[1, 2], true])
    })
  )

  test(
    "append assigns 1, 2, 3… in batch order; since returns the mutations with the time of the append",
    Effect.gen(function*() {
      const log = yield* MutationLog.MutationLog
      assert.deepStrictEqual(yield* log.append("c1", [entry(10), entry(11)]), [1, 2])
      yield* TestClock.adjust("877 millis")
      assert.deepStrictEqual(yield* log.append("c2", [entry(10, { project: "p2", op: "delete", payload: null })]), [
        3
      ])
      assert.strictEqual(yield* log.latestSeq, 3)
      const page = yield* log.since(0, undefined, 10)
      assert.deepStrictEqual(page, {
        mutations: [
          {
            seq: 1,
            project: "p1",
            entity: "document",
            entityKey: "k10",
            op: "upsert",
            payload: { n: 10 },
            occurredAt: new Date(1_700_000_000_123)
          },
          {
            seq: 2,
            project: "p1",
            entity: "document",
            entityKey: "k11",
            op: "upsert",
            payload: { n: 11 },
            occurredAt: new Date(1_700_000_000_123)
          },
          {
            seq: 3,
            project: "p2",
            entity: "document",
            entityKey: "k10",
            op: "delete",
            payload: null,
            occurredAt: new Date(1_700_000_001_000)
          }
        ],
        hasMore: false,
        latestSeq: 3
      })
    })
  )

  test(
    "payloads round-trip exactly (key order, unicode, escapes, numbers)",
    Effect.gen(function*() {
      const log = yield* MutationLog.MutationLog
      const payloads: ReadonlyArray<unknown> = [
        { z: 1, a: { y: [1, 2, { x: null }], b: "" } },
        "a plain string with \"quotes\", \\ backslashes, \n newlines and \u2028",
        "unicode: é ✓ 𝄞 中文 \uFEFF",
        [Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 0.1, 1e-7, 123456.789, 0],
        true,
        null,
        { "key with spaces": 1, "": 2, "ünï": 3 }
      ]
      yield* log.append("c1", payloads.map((payload, i) => entry(i + 1, { payload })))
      const page = yield* log.since(0, undefined, 100)
      assert.deepStrictEqual(page.mutations.map((m) => m.payload), payloads)
      assert.deepStrictEqual(Object.keys(page.mutations[0].payload as object), ["z", "a"])
    })
  )

  test(
    "sinceStored is the page of since, each payload the JSON text it was pushed as",
    Effect.gen(function*() {
      const log = yield* MutationLog.MutationLog
      const payloads: ReadonlyArray<unknown> = [{ z: 1, a: [1, "é\n"] }, null, "text", 0.1]
      yield* log.append("c1", payloads.map((payload, i) => entry(i + 1, { payload, project: i === 1 ? "p2" : "p1" })))
      for (const [projects, limit] of [[undefined, 10], [["p1"], 10], [["p1"], 2], [[], 10]] as const) {
        const stored = yield* log.sinceStored(0, projects, limit)
        const parsed = yield* log.since(0, projects, limit)
        assert.deepStrictEqual(MutationLog.toPullResponse(stored), parsed)
        assert.deepStrictEqual(
          stored.mutations.map((m) => m.payloadJson),
          parsed.mutations.map((m) => JSON.stringify(m.payload))
        )
      }
      const [first] = (yield* log.sinceStored(0, undefined, 1)).mutations
      assert.deepStrictEqual(first, {
        seq: 1,
        project: "p1",
        entity: "document",
        entityKey: "k1",
        op: "upsert",
        payloadJson: "{\"z\":1,\"a\":[1,\"é\\n\"]}",
        occurredAt: t0
      })
    })
  )
}

// Idempotent retries, identity conflicts, since's filters, held pulls.
const dedupAndWaits = (test: Test) => {
  test(
    "append is idempotent on (client_id, client_seq): a retry gets the first seqs and stores nothing",
    Effect.gen(function*() {
      const log = yield* MutationLog.MutationLog
      assert.deepStrictEqual(yield* log.append("c1", [entry(1), entry(2)]), [1, 2])
      assert.deepStrictEqual(yield* log.append("c1", [entry(1), entry(2)]), [1, 2])
      assert.deepStrictEqual(yield* log.append("c1", [entry(2), entry(3), entry(1)]), [2, 3, 1])
      // The same entry twice in one batch is one mutation.
      assert.deepStrictEqual(yield* log.append("c1", [entry(4), entry(4)]), [4, 4])
      assert.deepStrictEqual(seqs(yield* log.since(0, undefined, 100)), [1, 2, 3, 4])
    })
  )

  test(
    "a used identity with different content is a conflict naming its seq; nothing of the batch is stored",
    Effect.gen(function*() {
      const log = yield* MutationLog.MutationLog
      yield* log.append("c1", [entry(1), entry(2)])
      for (
        const changed of [
          entry(2, { payload: { n: 3 } }),
          entry(2, { project: "p2" }),
          entry(2, { entity: "other" }),
          entry(2, { entityKey: "other" }),
          entry(2, { op: "delete" }),
          entry(2, { payload: { n: 2, extra: true } })
        ]
      ) {
        const error = yield* logError(log.append("c1", [entry(3), changed]))
        assert.strictEqual(error.reason, "conflict")
        assert.strictEqual(error.seq, 2)
        assert.include(error.message, "server seq 2")
      }
      // Key order is content too: payloads compare as JSON text.
      const reordered = yield* logError(
        log.append("c1", [entry(5, { payload: { a: 1, b: 2 } })]).pipe(
          Effect.zipRight(log.append("c1", [entry(5, { payload: { b: 2, a: 1 } })]))
        )
      )
      assert.strictEqual(reordered.seq, 3)
      const inBatch = yield* logError(log.append("c1", [entry(9), entry(9, { payload: "other" })]))
      assert.strictEqual(inBatch.reason, "conflict")
      assert.deepStrictEqual(seqs(yield* log.since(0, undefined, 100)), [1, 2, 3])
    })
  )

  test(
    "since: after a seq, of some projects, at most limit, with has_more and the latest seq of the whole log",
    Effect.gen(function*() {
      const log = yield* MutationLog.MutationLog
      yield* log.append(
        "c1",
        [1, 2, 3, 4, 5, 6].map((i) => entry(i, { project: i % 2 === 0 ? "even" : "odd" }))
      )
      assert.deepStrictEqual(seqs(yield* log.since(0, ["even"], 10)), [2, 4, 6])
      assert.deepStrictEqual(yield* Effect.map(log.since(0, ["even"], 2), (p) => [seqs(p), p.hasMore]), [
        [2, 4],
        true
      ])
      assert.deepStrictEqual(yield* Effect.map(log.since(4, ["even"], 2), (p) => [seqs(p), p.hasMore]), [[6], false])
      assert.deepStrictEqual(seqs(yield* log.since(2, ["odd", "even"], 3)), [3, 4, 5])
      assert.deepStrictEqual(seqs(yield* log.since(0, ["none"], 10)), [])
      const nothing = yield* log.since(0, [], 10)
      assert.deepStrictEqual(nothing, { mutations: [], hasMore: false, latestSeq: 6 })
      assert.strictEqual((yield* log.since(0, ["odd"], 1)).latestSeq, 6)
      assert.deepStrictEqual(yield* Effect.map(log.since(5, undefined, 1), (p) => [seqs(p), p.hasMore]), [[6], false])
      assert.deepStrictEqual(seqs(yield* log.since(6, undefined, 10)), [])
      assert.deepStrictEqual(seqs(yield* log.since(100, undefined, 10)), [])
    })
  )

  test(
    "awaitAfter completes once a newer seq exists, not before",
    Effect.gen(function*() {
      const log = yield* MutationLog.MutationLog
      yield* log.append("c1", [entry(1)])
      assert.isTrue(Exit.isSuccess(yield* Effect.exit(log.awaitAfter(0))), "seq 1 > 0 exists already")
      const waiting = yield* Effect.fork(log.awaitAfter(1))
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
      yield* log.since(0, undefined, 10) // a round trip to the store
      assert.isTrue(Option.isNone(yield* Fiber.poll(waiting)))
      yield* log.append("c1", [entry(1)]) // a retry stores nothing: still waiting
      assert.isTrue(Option.isNone(yield* Fiber.poll(waiting)))
      yield* log.append("c2", [entry(1)])
      yield* Fiber.join(waiting)
    })
  )
}

// Appends racing each other or stored together.
const concurrentAppends = (test: Test) => {
  test(
    "concurrent appends get distinct, gap-free seqs; each client's retry still gets its own",
    Effect.gen(function*() {
      const log = yield* MutationLog.MutationLog
      const clients = Array.from({ length: 8 }, (_, i) => `client-${i}`)
      const batches = (c: string) =>
        Array.from({ length: 6 }, (_, b) => [1, 2, 3].map((k) => entry(b * 3 + k, { entityKey: `${c}-${b}-${k}` })))
      const results = yield* Effect.forEach(
        clients,
        (c) => Effect.forEach(batches(c), (batch) => log.append(c, batch)),
        { concurrency: "unbounded" }
      )
      const all = results.flat(2).sort((a, b) => a - b)
      assert.deepStrictEqual(all, Array.from({ length: 8 * 18 }, (_, i) => i + 1))
      const page = yield* log.since(0, undefined, 1000)
      assert.deepStrictEqual(seqs(page), all)
      // Every seq holds what its client pushed.
      for (const [i, c] of clients.entries()) {
        const retried = yield* Effect.forEach(batches(c), (batch) => log.append(c, batch))
        assert.deepStrictEqual(retried, results[i])
        for (const [b, batch] of batches(c).entries()) {
          for (const [k, e] of batch.entries()) {
            assert.strictEqual(page.mutations[results[i][b][k] - 1].entityKey, e.entityKey)
          }
        }
      }
    })
  )

  test(
    "appends at the same moment (stored together by the SQL logs) each get their own outcome",
    Effect.gen(function*() {
      const log = yield* MutationLog.MutationLog
      const results = yield* Effect.all([
        Effect.either(log.append("a", [entry(1), entry(2)])),
        Effect.either(log.append("b", [entry(1)])),
        // The same push twice at once (a retry while the first is in flight): the same seqs.
        Effect.either(log.append("a", [entry(1), entry(2)])),
        // A reused identity with other content: refused alone, nothing of it stored.
        Effect.either(log.append("a", [entry(3), entry(2, { payload: { other: true } })])),
        Effect.either(log.append("b", [entry(2), entry(2)])),
        Effect.either(log.append("c", []))
      ], { concurrency: "unbounded" })
      const [first, second, retry, conflict, repeated, empty] = results
      assert.deepStrictEqual(first, Either.right([1, 2]))
      assert.deepStrictEqual(second, Either.right([3]))
      assert.deepStrictEqual(retry, Either.right([1, 2]))
      assert.isTrue(Either.isLeft(conflict))
      if (Either.isLeft(conflict)) {
        assert.strictEqual(conflict.left.reason, "conflict")
        assert.strictEqual(conflict.left.seq, 2)
      }
      assert.deepStrictEqual(repeated, Either.right([4, 4]))
      assert.deepStrictEqual(empty, Either.right([]))
      const page = yield* log.since(0, undefined, 100)
      assert.deepStrictEqual(page.mutations.map((m) => m.entityKey), ["k1", "k2", "k1", "k2"])
      assert.strictEqual(yield* log.latestSeq, 4)
      // The refused push left nothing behind: its new identity is free.
      assert.deepStrictEqual(yield* log.append("a", [entry(3)]), [5])
    })
  )
}

// Compaction: the newest row of each key, tombstones, stats, pulls across a compaction.
const compaction = (test: Test) => {
  test(
    "compaction keeps exactly the newest row of each key, deletes as tombstones; stats count it",
    Effect.gen(function*() {
      const log = yield* MutationLog.MutationLog
      yield* log.append("c1", [
        entry(1, { entityKey: "k1", payload: { v: 1 } }), // 1: superseded by 3
        entry(2, { entityKey: "k2" }), // 2
        entry(3, { entityKey: "k1", payload: { v: 2 } }), // 3: superseded by 7
        entry(4, { entityKey: "k3" }), // 4: superseded by 5
        entry(5, { entityKey: "k3", op: "delete", payload: { was: "k3" } }), // 5: a tombstone
        entry(6, { entityKey: "k2", project: "p2" }) // 6: another project's k2
      ])
      assert.deepStrictEqual(yield* log.append("c2", [entry(1, { entityKey: "k1", payload: { v: 3 } })]), [7])
      const before = yield* log.stats
      assert.deepStrictEqual(
        { ...before, lastCompaction: undefined },
        {
          rows: 7,
          liveKeys: 3,
          tombstones: 1,
          superseded: 3,
          latestSeq: 7,
          identities: 0,
          lastCompaction: undefined
        }
      )
      const all = (yield* log.since(0, undefined, 100)).mutations
      const report = yield* log.compact()
      assert.deepStrictEqual({ ...report, durationMs: 0 }, {
        removed: 3,
        tombstonesDropped: 1,
        identitiesKept: 3,
        durationMs: 0
      })
      const after = yield* log.since(0, undefined, 100)
      // Exactly the rows the rule keeps: those no newer row of their key supersedes.
      const superseded = LogRules.compactable(all)
      assert.deepStrictEqual(seqs(after), all.filter((m) => !superseded.has(m.seq)).map((m) => m.seq))
      assert.deepStrictEqual(seqs(after), [2, 5, 6, 7])
      assert.deepStrictEqual(after.mutations[1], { ...all[4], payload: null }, "the tombstone lost its payload")
      assert.strictEqual(after.latestSeq, 7)
      const stats = yield* log.stats
      assert.deepStrictEqual(
        { ...stats, lastCompaction: undefined },
        {
          rows: 4,
          liveKeys: 3,
          tombstones: 1,
          superseded: 0,
          latestSeq: 7,
          identities: 3,
          lastCompaction: undefined
        }
      )
      assert.deepStrictEqual(stats.lastCompaction, { at: t0, removed: 3, durationMs: report.durationMs })
      // Nothing left to do; and seqs go on after the last one.
      assert.strictEqual((yield* log.compact()).removed, 0)
      assert.deepStrictEqual(yield* log.append("c3", [entry(1)]), [8])
    })
  )

  test(
    "size is the rows and latest seq of stats, empty, after appends, and after compaction",
    Effect.gen(function*() {
      const log = yield* MutationLog.MutationLog
      const agree = Effect.gen(function*() {
        const { latestSeq, rows } = yield* log.stats
        assert.deepStrictEqual(yield* log.size, { rows, latestSeq })
        return rows
      })
      assert.strictEqual(yield* agree, 0)
      yield* log.append("c1", [entry(1), entry(2, { entityKey: "k1" }), entry(3, { op: "delete", payload: null })])
      assert.strictEqual(yield* agree, 3)
      yield* log.compact()
      assert.strictEqual(yield* agree, 2)
    })
  )

  test(
    "after compaction a pull from any cursor (any page size) gives every key's newest row after it",
    Effect.gen(function*() {
      const log = yield* MutationLog.MutationLog
      // 40 writes to 6 keys of 2 projects, some deletes, from 3 clients.
      for (let i = 1; i <= 40; i++) {
        const k = (i * 7) % 6
        yield* log.append(`c${i % 3}`, [
          entry(i, {
            entityKey: `k${k}`,
            project: k % 2 === 0 ? "even" : "odd",
            ...(i % 5 === 0 ? { op: "delete", payload: null } : { payload: { i } })
          })
        ])
      }
      const all = (yield* log.since(0, undefined, 100)).mutations
      const superseded = LogRules.compactable(all)
      yield* log.compact({ batchSize: 4 })
      const kept = all.filter((m) => !superseded.has(m.seq)).map((m) => m.op === "delete" ? { ...m, payload: null } : m)
      assert.strictEqual(kept.length, 6, "a pull from 0 is a snapshot: one row per key")
      for (let cursor = 0; cursor <= 41; cursor++) {
        for (const limit of [1, 3, 100]) {
          const pulled = yield* pullAll(log, cursor, limit)
          assert.deepStrictEqual(pulled, kept.filter((m) => m.seq > cursor), `cursor ${cursor}, limit ${limit}`)
        }
        const even = yield* log.since(cursor, ["even"], 100)
        assert.deepStrictEqual(even.mutations, kept.filter((m) => m.seq > cursor && m.project === "even"))
        assert.strictEqual(even.latestSeq, 40, "latest_seq still moves the cursor")
      }
    })
  )
}

// Compaction against pullers and retries; acked_through forgetting identities.
const compactionWithTraffic = (test: Test) => {
  test(
    "a puller interleaved with compaction batches and appends ends with every key's newest version",
    Effect.gen(function*() {
      const log = yield* MutationLog.MutationLog
      const write = (from: number, to: number) =>
        Effect.forEach(
          Array.from({ length: to - from + 1 }, (_, i) => from + i),
          (i) => log.append("w", [entry(i, { entityKey: `k${i % 5}`, payload: { i } })]),
          { discard: true }
        )
      yield* write(1, 60)
      // A puller half way through the log when compaction starts.
      const state = new Map<string, { seq: number; payload: unknown }>()
      let cursor = 0
      const pullPage = Effect.gen(function*() {
        const page = yield* log.since(cursor, undefined, 2)
        for (const m of page.mutations) state.set(m.entityKey, { seq: m.seq, payload: m.payload })
        cursor = page.mutations.at(-1)?.seq ?? page.latestSeq
        return page
      })
      for (let i = 0; i < 10; i++) yield* pullPage
      const compaction = yield* Effect.fork(log.compact({ batchSize: 1 }))
      const writes = yield* Effect.fork(write(61, 80))
      for (let i = 0; i < 30; i++) yield* pullPage
      yield* Fiber.join(compaction)
      yield* Fiber.join(writes)
      while ((yield* pullPage).hasMore || cursor < (yield* log.latestSeq)) {
        // until caught up
      }
      const newest = new Map((yield* log.since(0, undefined, 100)).mutations.map((m) => [m.entityKey, m]))
      assert.strictEqual(newest.size, 5)
      for (const [key, m] of newest) assert.deepStrictEqual(state.get(key), { seq: m.seq, payload: m.payload }, key)
    })
  )

  test(
    "a retry after compaction gets its original seqs and stores nothing (a tombstone's too)",
    Effect.gen(function*() {
      const log = yield* MutationLog.MutationLog
      const first = [entry(1, { entityKey: "k1" }), entry(2, { entityKey: "k1", payload: "v2" })]
      const gone = entry(4, { entityKey: "k2", op: "delete", payload: { last: "words" } })
      assert.deepStrictEqual(yield* log.append("c1", first), [1, 2])
      assert.deepStrictEqual(yield* log.append("c2", [entry(1, { entityKey: "k1", payload: "v3" })]), [3])
      assert.deepStrictEqual(yield* log.append("c1", [entry(3, { entityKey: "k2" }), gone]), [4, 5])
      assert.strictEqual((yield* log.compact()).removed, 3)
      assert.deepStrictEqual(yield* log.append("c1", first), [1, 2])
      assert.deepStrictEqual(yield* log.append("c1", [entry(3, { entityKey: "k2" }), gone]), [4, 5])
      assert.deepStrictEqual(yield* log.append("c1", [gone, entry(5, { entityKey: "k5" })]), [5, 6])
      assert.deepStrictEqual(seqs(yield* log.since(0, undefined, 100)), [3, 5, 6])
      // Other content under a compacted identity is still a conflict naming its seq.
      const error = yield* logError(log.append("c1", [entry(2, { entityKey: "k1", payload: "other" })]))
      assert.deepStrictEqual([error.reason, error.seq], ["conflict", 2])
      assert.strictEqual(yield* log.latestSeq, 6)
    })
  )

  test(
    "acked_through forgets the kept identities at or below it; a re-push of one is then a conflict",
    Effect.gen(function*() {
      const log = yield* MutationLog.MutationLog
      yield* log.append("c1", [1, 2, 3].map((i) => entry(i, { entityKey: "k1", payload: i })))
      yield* log.append("c2", [entry(1, { entityKey: "k1", payload: "theirs" })]) // 4: supersedes c1's
      assert.strictEqual((yield* log.compact()).identitiesKept, 3)
      assert.strictEqual((yield* log.stats).identities, 3)
      // Not yet acked: a retry gets its seq.
      assert.deepStrictEqual(yield* log.append("c1", [entry(3, { entityKey: "k1", payload: 3 })]), [3])
      assert.deepStrictEqual(yield* log.append("c1", [entry(4, { entityKey: "k4" })], 2), [5])
      assert.strictEqual((yield* log.stats).identities, 1, "c1's 1 and 2 forgotten, 3 kept")
      const conflict = yield* logError(log.append("c1", [entry(2, { entityKey: "k1", payload: 2 })]))
      assert.strictEqual(conflict.reason, "conflict")
      assert.include(conflict.message, "acked_through")
      assert.deepStrictEqual(yield* log.append("c1", [entry(3, { entityKey: "k1", payload: 3 })]), [3])
      // A watermark never goes down; an append with no entries may carry one.
      assert.deepStrictEqual(yield* log.append("c1", [], 1), [])
      assert.isTrue(
        Either.isLeft(yield* Effect.either(log.append("c1", [entry(1, { entityKey: "k1", payload: 1 })])))
      )
      assert.deepStrictEqual(yield* log.append("c1", [], 4), [])
      assert.strictEqual((yield* log.stats).identities, 0)
      // A row still in the log keeps its identity whatever the watermark: a retry of it is fine.
      assert.deepStrictEqual(yield* log.append("c1", [entry(4, { entityKey: "k4" })]), [5])
      // Compacting a row at or below its client's watermark keeps no identity.
      yield* log.append("c2", [entry(2, { entityKey: "k4" })]) // 6: supersedes 5
      assert.deepStrictEqual({ ...(yield* log.compact()), durationMs: 0 }, {
        removed: 1,
        tombstonesDropped: 0,
        identitiesKept: 0,
        durationMs: 0
      })
      // Nothing of the refused pushes was stored; other clients are not concerned.
      assert.strictEqual(yield* log.latestSeq, 6)
      assert.deepStrictEqual(yield* log.append("c3", [entry(1)]), [7])
    })
  )
}

// Against the reference model.
const modelChecks = (layer: Layer.Layer<MutationLog.MutationLog, unknown>) => {
  it.effect("property: appends with retries and conflicts follow the reference model", () =>
    Effect.gen(function*() {
      const log = yield* MutationLog.MutationLog
      let run = 0
      const arbitrary = fc.array(
        fc.record({
          client: fc.constantFrom("a", "b"),
          entries: fc.array(
            fc.record({ seq: fc.integer({ min: 1, max: 6 }), variant: fc.integer({ min: 0, max: 1 }) }),
            {
              maxLength: 5
            }
          )
        }),
        { minLength: 1, maxLength: 8 }
      )
      const samples = fc.sample(arbitrary, { numRuns: 15, seed: 42 })
      for (const batches of samples) {
        run++
        const base = yield* log.latestSeq
        const expect = model(base)
        for (const batch of batches) {
          const clientId = `${batch.client}-${run}`
          const entries = batch.entries.map((e) => entry(e.seq, { payload: { variant: e.variant } }))
          const expected = expect(clientId, entries)
          const actual = yield* log.append(clientId, entries).pipe(
            Effect.catchTag("MutationLogError", (e) => Effect.succeed(e.reason))
          )
          assert.deepStrictEqual(actual, expected, JSON.stringify({ batches, clientId, entries }))
        }
        const latest = yield* log.latestSeq
        const page = yield* log.since(base, undefined, 1000)
        assert.deepStrictEqual(seqs(page), Array.from({ length: latest - base }, (_, i) => base + i + 1))
      }
    }).pipe(Effect.provide(Layer.orDie(layer))))
}

/**
 * Registers, under `describe`, the tests every `MutationLog` backend must pass; `layer` is built
 * afresh for each test and must give an empty log.
 *
 * @since 0.1.0
 * @category suites
 */
export const MutationLogSuite = (name: string, layer: Layer.Layer<MutationLog.MutationLog, unknown>) =>
  describe(`MutationLog: ${name}`, () => {
    const test = (title: string, body: Effect.Effect<void, MutationLog.MutationLogError, MutationLog.MutationLog>) =>
      it.effect(title, () =>
        // The clock is set before the log exists: a jump later would replay every tick of its poller.
        Effect.zipRight(TestClock.setTime(t0), body.pipe(Effect.provide(Layer.orDie(layer)))))

    appendsAndPages(test)
    dedupAndWaits(test)
    concurrentAppends(test)
    compaction(test)
    compactionWithTraffic(test)
    modelChecks(layer)
  })
