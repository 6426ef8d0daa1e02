import { LocalStore } from "@autosync/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { join } from "node:path"
import { Applier, SqliteLocalStore } from "../src/index.js"
import { tempDir } from "./utils.js"

// A custom entity: counters in a table of their own, op "increment" only.
const counters: Applier.EntityApplier = {
  validate: (w) =>
    w.op !== "increment"
      ? `counters do not support ${JSON.stringify(w.op)}`
      : typeof w.payload === "number"
      ? undefined
      : "an increment needs a number",
  apply: (change) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`INSERT INTO counters (name, total) VALUES (${change.entityKey}, ${change.payload as number})
        ON CONFLICT (name) DO UPDATE SET total = total + excluded.total`
      // Refused after a partial write: the applier's savepoint must roll the write back.
      if (change.payload === 13) return yield* new Applier.ApplyRejected({ reason: "13 is unlucky" })
    })
}

// An applier whose SQL fails (a storage failure, not a rejection).
const broken: Applier.EntityApplier = {
  validate: () => undefined,
  apply: (change) =>
    Effect.zipRight(
      Applier.documents.apply(change),
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql`INSERT INTO no_such_table VALUES (1)`)
    )
}

const TestLayer = Layer.unwrapScoped(Effect.gen(function*() {
  const dir = yield* tempDir
  return SqliteLocalStore.layerFile(join(dir, "appliers.db")).pipe(
    Layer.tap((ctx) =>
      SqlClient.SqlClient.pipe(
        Effect.flatMap((sql) => sql`CREATE TABLE counters (name TEXT PRIMARY KEY, total INTEGER NOT NULL)`),
        Effect.provide(ctx),
        Effect.orDie
      )
    ),
    Layer.provide(Applier.layer({ counter: counters })),
    Layer.provide(Applier.register("broken", broken))
  )
}))

const total = (name: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql<{ total: number }>`SELECT total FROM counters WHERE name = ${name}`,
      (rows) => Option.fromNullable(rows[0]?.total)
    ))

const counter = (entityKey: string, payload: unknown, op = "increment") => ({
  project: "p",
  entity: "counter",
  entityKey,
  op,
  payload
})

const pulledCounter = (seq: number, entityKey: string, payload: unknown, op = "increment") => ({
  ...counter(entityKey, payload, op),
  seq,
  occurredAt: new Date(0)
})

describe("Applier", () => {
  it.effect("a registered applier applies local writes and pulls in the store's transaction", () =>
    Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      assert.deepStrictEqual(yield* store.appendLocal("cloud", [counter("c", 2), counter("c", 3)]), [1, 2])
      assert.deepStrictEqual(yield* total("c"), Option.some(5))
      assert.deepStrictEqual(yield* store.listDocuments("p"), [])
      assert.strictEqual(yield* store.countPending("cloud"), 2)
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulledCounter(1, "d", 10)), "applied")
      assert.deepStrictEqual(yield* total("d"), Option.some(10))
      // The convergence rule holds for custom entities too.
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulledCounter(2, "c", 100)), "kept_aside")
      assert.deepStrictEqual(yield* total("c"), Option.some(5))
      yield* store.ackMutationSeqs("cloud", [{ seq: 1, serverSeq: 1 }])
      assert.deepStrictEqual(yield* total("c"), Option.some(5))
      yield* store.ackMutationSeqs("cloud", [{ seq: 2, serverSeq: 1 }])
      assert.deepStrictEqual(yield* total("c"), Option.some(105))
    }).pipe(Effect.provide(TestLayer)))

  it.effect("an op the applier refuses: invalid_input for a local write, a dead letter for a pull", () =>
    Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      const error = yield* Effect.flip(store.appendLocal("cloud", [counter("c", 1), counter("c", 1, "reset")]))
      assert.strictEqual(error.reason, "invalid_input")
      assert.include(error.message, "counters do not support \"reset\"")
      assert.deepStrictEqual(yield* total("c"), Option.none())
      assert.strictEqual(yield* store.countPending("cloud"), 0)
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulledCounter(1, "c", 1, "reset")), "dead_letter")
      assert.strictEqual((yield* store.getSyncState("cloud")).lastPulledSeq, 1)
      assert.deepStrictEqual((yield* store.listDeadLetters).map((d) => d.reason), [
        "counters do not support \"reset\""
      ])
    }).pipe(Effect.provide(TestLayer)))

  it.effect("a rejection at apply time rolls back the applier's writes", () =>
    Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      // Local: the whole batch is refused, including the write before it.
      const error = yield* Effect.flip(store.appendLocal("cloud", [counter("c", 1), counter("c", 13)]))
      assert.strictEqual(error.reason, "invalid_input")
      assert.strictEqual(error.message, "13 is unlucky")
      assert.deepStrictEqual(yield* total("c"), Option.none())
      assert.strictEqual(yield* store.countPending("cloud"), 0)
      // Pulled: dead-lettered, the counter untouched, the cursor advanced, sync goes on.
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulledCounter(1, "c", 13)), "dead_letter")
      assert.deepStrictEqual(yield* total("c"), Option.none())
      assert.strictEqual(yield* store.applyPulledMutation("cloud", pulledCounter(2, "c", 4)), "applied")
      assert.deepStrictEqual(yield* total("c"), Option.some(4))
      assert.deepStrictEqual((yield* store.listDeadLetters).map((d) => [d.seq, d.reason]), [[1, "13 is unlucky"]])
    }).pipe(Effect.provide(TestLayer)))

  it.effect("a storage failure inside an applier rolls back everything, the cursor included", () =>
    Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      const local = yield* Effect.flip(
        store.appendLocal("cloud", [{ ...counter("x", 1), entity: "broken", op: "upsert" }])
      )
      assert.strictEqual(local.reason, "storage")
      assert.include(local.message, "no_such_table")
      const pull = yield* Effect.flip(
        store.applyPulledMutation("cloud", { ...pulledCounter(1, "x", 1), entity: "broken", op: "upsert" })
      )
      assert.strictEqual(pull.reason, "storage")
      assert.strictEqual((yield* store.getSyncState("cloud")).lastPulledSeq, 0)
      assert.deepStrictEqual(yield* store.getDocument("p", "broken", "x"), Option.none())
      assert.strictEqual(yield* store.countPending("cloud"), 0)
    }).pipe(Effect.provide(TestLayer)))

  it.effect("entities without an applier use the document table", () =>
    Effect.gen(function*() {
      const store = yield* LocalStore.LocalStore
      yield* store.appendLocal("cloud", [{ project: "p", entity: "note", entityKey: "n", op: "upsert", payload: "hi" }])
      assert.deepStrictEqual(yield* store.getDocument("p", "note", "n"), Option.some("hi"))
      const registry = yield* Applier.Applier
      assert.strictEqual(registry.get("note"), Applier.documents)
      assert.strictEqual(registry.get("counter"), counters)
    }).pipe(Effect.provide(Layer.merge(TestLayer, Applier.layer({ counter: counters })))))

  it.effect("without a registry layer every entity goes to the document table", () =>
    Effect.gen(function*() {
      const registry = yield* Applier.Applier
      assert.strictEqual(registry.get("counter"), Applier.documents)
      assert.strictEqual(registry.entities.size, 0)
    }))
})
